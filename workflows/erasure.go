package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// ErasureInput starts the erasure of one person's data.
// UserID is personal data: it travels only inside encrypted payloads.
type ErasureInput struct {
	RequestID    string
	SubjectRef   string
	UserID       string
	Jurisdiction string
}

// Request statuses, as shown by the API, the query and the LetheStatus search attribute.
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
	System string `json:"system"` // e.g. "postgres" or "s3:lethe-app-data/projects/{user_id}/"
	Status string `json:"status"`
	// Counts per table or location; ids of tables and buckets, never personal data.
	Deleted map[string]int `json:"deleted,omitempty"`
}

// ErasureProgress is the erasure's state, readable at any moment with the
// QueryProgress query (the API's GET /v1/requests/{id} shows it).
type ErasureProgress struct {
	RequestID string           `json:"request_id"`
	Status    string           `json:"status"`
	Systems   []SystemProgress `json:"systems"`
}

// QueryProgress is the name of the query every request workflow answers.
const QueryProgress = "progress"

// EraseTablesInput asks for one person's rows to go from every table of the data map.
type EraseTablesInput struct {
	RequestID string
	UserID    string
}

// EraseTablesResult counts deleted rows per table.
type EraseTablesResult struct {
	Deleted map[string]int
}

// EraseObjectsInput asks for one person's objects to go from every S3 location of the data map.
type EraseObjectsInput struct {
	RequestID string
	UserID    string
}

// EraseObjectsResult counts deleted objects per location.
type EraseObjectsResult struct {
	Deleted map[string]int
}

// RecordRequestInput projects a request's state into Lethe's database.
type RecordRequestInput struct {
	RequestID    string
	Type         string
	SubjectRef   string
	Jurisdiction string
	Status       string
	ReceivedAt   time.Time
	Outcome      map[string]map[string]int `json:",omitempty"`
}

// EraseSubject erases one person's data: their rows in the application
// database, then their objects in S3. Each system is one idempotent activity;
// a completed system is never redone when a later one fails and is retried.
func EraseSubject(ctx workflow.Context, in ErasureInput) (ErasureProgress, error) {
	progress := ErasureProgress{
		RequestID: in.RequestID,
		Status:    StatusReceived,
		Systems: []SystemProgress{
			{System: "postgres", Status: StepPending},
			{System: "s3", Status: StepPending},
		},
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (ErasureProgress, error) { return progress, nil }); err != nil {
		return progress, err
	}
	ctx = withActivityDefaults(ctx)
	receivedAt := workflow.GetInfo(ctx).WorkflowStartTime
	record := func(status string) error {
		progress.Status = status
		if err := workflow.UpsertTypedSearchAttributes(ctx, StatusKey.ValueSet(status)); err != nil {
			return err
		}
		outcome := map[string]map[string]int{}
		for _, s := range progress.Systems {
			if s.Deleted != nil {
				outcome[s.System] = s.Deleted
			}
		}
		return workflow.ExecuteActivity(ctx, ActivityRecordRequest, RecordRequestInput{
			RequestID: in.RequestID, Type: "erasure", SubjectRef: in.SubjectRef,
			Jurisdiction: in.Jurisdiction, Status: status, ReceivedAt: receivedAt, Outcome: outcome,
		}).Get(ctx, nil)
	}

	if err := record(StatusInProgress); err != nil {
		return progress, fmt.Errorf("record start: %w", err)
	}
	if err := eraseEverySystem(ctx, in, &progress); err != nil {
		// The failure is recorded for operators; the error fails the workflow run.
		_ = record(StatusFailed)
		return progress, err
	}
	if err := record(StatusCompleted); err != nil {
		return progress, fmt.Errorf("record completion: %w", err)
	}
	return progress, nil
}

// eraseEverySystem runs one idempotent activity per system of the data map.
func eraseEverySystem(ctx workflow.Context, in ErasureInput, progress *ErasureProgress) error {

	var tables EraseTablesResult
	if err := workflow.ExecuteActivity(ctx, ActivityEraseTables, EraseTablesInput{RequestID: in.RequestID, UserID: in.UserID}).Get(ctx, &tables); err != nil {
		return fmt.Errorf("erase tables: %w", err)
	}
	progress.Systems[0] = SystemProgress{System: "postgres", Status: StepDone, Deleted: tables.Deleted}

	var objects EraseObjectsResult
	if err := workflow.ExecuteActivity(ctx, ActivityEraseObjects, EraseObjectsInput{RequestID: in.RequestID, UserID: in.UserID}).Get(ctx, &objects); err != nil {
		return fmt.Errorf("erase objects: %w", err)
	}
	progress.Systems[1] = SystemProgress{System: "s3", Status: StepDone, Deleted: objects.Deleted}
	return nil
}
