package activities

import (
	"context"
	"fmt"

	"github.com/lethe-privacy/lethe/internal/mail"
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
		batch, err := l.records().ClosedBefore(ctx, in.Cutoff, purgeBatch)
		if err != nil {
			return res, classifyDB(err)
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
		// The mail idempotency keys go in the same transaction (their owner, package mail, deletes them).
		if err := l.records().Purge(ctx, ids, mail.ForgetRequests); err != nil {
			return res, classifyDB(err)
		}
		res.Requests += len(batch)
		res.SubjectKeys += len(shredded)
		activity.RecordHeartbeat(ctx, res)
		l.Log.InfoContext(ctx, "purged closed requests", "requests", len(batch), "subject_keys", len(shredded))
	}
}
