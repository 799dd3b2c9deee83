package workflows

import (
	"fmt"
	"sort"

	"go.temporal.io/sdk/workflow"
)

// ErasureInput starts the erasure of one person's data. Identity is sealed
// with the person's data key; the activities open it to find their rows.
type ErasureInput struct {
	RequestID    string
	SubjectRef   string
	Identity     []byte
	Jurisdiction string
}

// Request statuses shared by every workflow.
const (
	StatusReceived   = "received"
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
)

// Step statuses of one system in an erasure.
const (
	StepPending = "pending"
	StepDone    = "done"
)

// SystemProgress is how far the erasure got in one system of the data map.
type SystemProgress struct {
	System string `json:"system"` // "postgres" or "s3"
	Status string `json:"status"`
	// Counts per table or location: names of tables and buckets, never personal data.
	Deleted map[string]int `json:"deleted,omitempty"`
	Kept    []string       `json:"kept,omitempty"` // under legal holds, with their reason
}

// ErasureProgress is the erasure's state, readable at any moment with the
// QueryProgress query.
type ErasureProgress struct {
	RequestID string           `json:"request_id"`
	Status    string           `json:"status"`
	Systems   []SystemProgress `json:"systems"`
}

// Summary says what was erased, one line per table or location.
func (p ErasureProgress) Summary() []string {
	var lines []string
	for _, s := range p.Systems {
		names := make([]string, 0, len(s.Deleted))
		for n := range s.Deleted {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			unit := "rows"
			if s.System == "s3" {
				unit = "files"
			}
			lines = append(lines, fmt.Sprintf("Deleted %d %s from %s", s.Deleted[n], unit, n))
		}
		lines = append(lines, s.Kept...)
	}
	return lines
}

// QueryProgress is the name of the query every Lethe workflow answers.
const QueryProgress = "progress"

// EraseTablesInput asks for one person's rows to go from every table of the data map.
type EraseTablesInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}

// EraseTablesResult counts deleted rows per table, and says what legal holds keep.
type EraseTablesResult struct {
	Deleted map[string]int
	Kept    []string // e.g. "Kept 1 rows in demo.purchases: tax law (for 120mo)"
}

// EraseObjectsInput asks for one person's objects to go from every S3 location of the data map.
type EraseObjectsInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}

// EraseObjectsResult counts deleted objects per location.
type EraseObjectsResult struct {
	Deleted map[string]int
}

// EraseSubject erases one person's data: their rows in the application
// database, then their objects in S3. Each system is one idempotent activity;
// a completed system is never redone when a later one fails and is retried.
// It runs as the child of a PrivacyRequest, which owns the lifecycle.
func EraseSubject(ctx workflow.Context, in ErasureInput) (ErasureProgress, error) {
	progress := ErasureProgress{
		RequestID: in.RequestID,
		Status:    StatusInProgress,
		Systems: []SystemProgress{
			{System: "postgres", Status: StepPending},
			{System: "s3", Status: StepPending},
		},
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (ErasureProgress, error) { return progress, nil }); err != nil {
		return progress, err
	}
	ctx = withActivityDefaults(ctx)

	var tables EraseTablesResult
	if err := workflow.ExecuteActivity(ctx, ActivityEraseTables, EraseTablesInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: in.Identity}).Get(ctx, &tables); err != nil {
		progress.Status = StatusFailed
		return progress, fmt.Errorf("erase tables: %w", err)
	}
	progress.Systems[0] = SystemProgress{System: "postgres", Status: StepDone, Deleted: tables.Deleted, Kept: tables.Kept}

	var objects EraseObjectsResult
	if err := workflow.ExecuteActivity(ctx, ActivityEraseObjects, EraseObjectsInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: in.Identity}).Get(ctx, &objects); err != nil {
		progress.Status = StatusFailed
		return progress, fmt.Errorf("erase objects: %w", err)
	}
	progress.Systems[1] = SystemProgress{System: "s3", Status: StepDone, Deleted: objects.Deleted}
	progress.Status = StatusCompleted
	return progress, nil
}
