package activities

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/sdk/activity"
)

// purgeBatch is how many closed requests one round purges.
const purgeBatch = 500

// PurgeClosedRequests removes what could identify the people behind requests
// closed before the cutoff: their data keys (unless they have an open or more
// recent request), the verification-code hashes and the mail idempotency
// keys. The request rows and audit entries stay: they hold no personal data.
// It works in batches, heartbeating, and can run again at any point.
func (l *Lifecycle) PurgeClosedRequests(ctx context.Context, in contract.PurgeRecordsInput) (contract.PurgeRecordsResult, error) {
	var res contract.PurgeRecordsResult
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &res)
	}
	for {
		rows, err := l.DB.Query(ctx, `SELECT id, subject_ref,
				NOT EXISTS (SELECT 1 FROM lethe.requests o WHERE o.subject_ref = r.subject_ref
					AND (o.closed_at IS NULL OR o.closed_at >= $1)) AS shred
			FROM lethe.requests r
			WHERE closed_at < $1 AND purged_at IS NULL
			ORDER BY closed_at, id LIMIT $2`, in.Cutoff, purgeBatch)
		if err != nil {
			return res, classifyDB(fmt.Errorf("find closed requests: %w", err))
		}
		type closed struct {
			ID, SubjectRef string
			Shred          bool
		}
		batch, err := pgx.CollectRows(rows, pgx.RowToStructByPos[closed])
		if err != nil {
			return res, classifyDB(fmt.Errorf("find closed requests: %w", err))
		}
		if len(batch) == 0 {
			return res, nil
		}
		ids := make([]string, 0, len(batch))
		shredded := map[string]bool{}
		for _, c := range batch {
			ids = append(ids, c.ID)
			if c.Shred && !shredded[c.SubjectRef] {
				if err := l.Keys.Destroy(ctx, c.SubjectRef); err != nil {
					return res, classifyDB(fmt.Errorf("destroy subject key: %w", err))
				}
				shredded[c.SubjectRef] = true
			}
		}
		err = pgx.BeginFunc(ctx, l.DB, func(tx pgx.Tx) error {
			for _, q := range []string{
				`DELETE FROM lethe.verification_codes WHERE request_id = ANY($1)`,
				`DELETE FROM lethe.mail_sent WHERE request_id = ANY($1)`,
				`DELETE FROM lethe.erasure_steps WHERE request_id = ANY($1)`,
				`UPDATE lethe.requests SET purged_at = now() WHERE id = ANY($1)`,
			} {
				if _, err := tx.Exec(ctx, q, ids); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return res, classifyDB(fmt.Errorf("purge closed requests: %w", err))
		}
		res.Requests += len(batch)
		res.SubjectKeys += len(shredded)
		activity.RecordHeartbeat(ctx, res)
		l.Log.InfoContext(ctx, "purged closed requests", "requests", len(batch), "subject_keys", len(shredded))
	}
}
