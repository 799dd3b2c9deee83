package workflows

import (
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"go.temporal.io/sdk/workflow"
)

// RetentionInput says how long Lethe keeps its own records of a closed request.
type RetentionInput struct {
	KeepFor domain.Period // 24 months by default: the CCPA record-keeping period
}

// PurgeRecordsInput asks for the personal data of requests closed before Cutoff to go.
type PurgeRecordsInput struct {
	Cutoff time.Time
}

// PurgeRecordsResult counts what went.
type PurgeRecordsResult struct {
	Requests    int `json:"requests"`     // closed requests past their retention
	SubjectKeys int `json:"subject_keys"` // people whose key was destroyed
}

// RetainLetheRecords runs on a schedule: requests closed longer ago than
// KeepFor keep their row and audit entries (no personal data), but lose what
// could identify the person: the person's data key is destroyed (so every
// sealed copy of their identity becomes unreadable) unless they have a
// request that is open or more recent, and the code hashes and mail keys go.
func RetainLetheRecords(ctx workflow.Context, in RetentionInput) (PurgeRecordsResult, error) {
	cutoff := workflow.Now(ctx)
	cutoff = domain.AddCalendarMonths(cutoff, -in.KeepFor.Months).AddDate(0, 0, -in.KeepFor.Days-in.KeepFor.BusinessDays)
	var res PurgeRecordsResult
	ctx = withActivityDefaults(ctx)
	if err := workflow.ExecuteActivity(ctx, ActivityPurgeRecords, PurgeRecordsInput{Cutoff: cutoff}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("purge records: %w", err)
	}
	return res, nil
}
