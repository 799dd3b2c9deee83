package activities

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"

	"github.com/lethe-privacy/lethe/workflows"
)

// Requests keeps Lethe's own record of each request in its database.
type Requests struct {
	DB *pgxpool.Pool
}

// RecordRequest upserts the request's row with its current status. It is
// idempotent: the same input twice leaves the same row.
func (r *Requests) RecordRequest(ctx context.Context, in workflows.RecordRequestInput) error {
	info := activity.GetInfo(ctx)
	outcome, err := json.Marshal(in.Outcome)
	if err != nil {
		return fmt.Errorf("record request: %w", err)
	}
	closed := in.Status == workflows.StatusCompleted || in.Status == workflows.StatusFailed
	_, err = r.DB.Exec(ctx, `
		INSERT INTO lethe.requests (id, type, subject_ref, jurisdiction, status, workflow_id, received_at, closed_at, outcome)
		VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN now() END, $9)
		ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, outcome = EXCLUDED.outcome,
			closed_at = COALESCE(lethe.requests.closed_at, EXCLUDED.closed_at), updated_at = now()`,
		in.RequestID, in.Type, in.SubjectRef, in.Jurisdiction, in.Status, info.WorkflowExecution.ID,
		in.ReceivedAt, closed, outcome)
	if err != nil {
		return classifyDB(fmt.Errorf("record request: %w", err))
	}
	return nil
}
