package workflows

import (
	"fmt"

	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/sdk/workflow"
)

// RetainLetheRecords runs on a schedule: requests closed longer ago than
// KeepFor keep their row and audit entries (no personal data), but lose what
// could identify the person: the person's data key is destroyed (so every
// sealed copy of their identity becomes unreadable) unless they have a
// request that is open or more recent, and the code hashes and mail keys go.
func RetainLetheRecords(ctx workflow.Context, in contract.RetentionInput) (contract.PurgeRecordsResult, error) {
	cutoff := in.KeepFor.Before(workflow.Now(ctx)) // business days as calendar days: never kept shorter
	var res contract.PurgeRecordsResult
	ctx = withActivityDefaults(ctx)
	if err := workflow.ExecuteActivity(ctx, lifecycle.PurgeClosedRequests, contract.PurgeRecordsInput{Cutoff: cutoff}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("purge records: %w", err)
	}
	return res, nil
}
