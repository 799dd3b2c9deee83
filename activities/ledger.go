package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Ledger keeps the backup half of the erasure promise (P6): it writes every
// erased person into the erasure ledger, erases them again when a restore
// brings them back, and watches the backup locations until every backup
// older than an erasure has rotated out.
type Ledger struct {
	Lethe    *pgxpool.Pool // Lethe's database: the ledger and the audit trail
	App      *pgxpool.Pool // the application database: its accounts are walked after a restore
	Backups  *s3.Client    // reaches the data map's backup locations
	Map      *datamap.Map
	Keys     *person.Keyring // opens identities; seals a reconcile's cursor
	Subjects *person.Hasher  // the ledger's keyed hash of a user id
	Erasure  *Erasure        // erases a person found back after a restore
	Log      *slog.Logger
}

// RecordErasure writes the person into the erasure ledger, under the keyed
// hash of their user id and the data map's digest. The erasure calls it
// before any of the person's rows is deleted; running it again changes
// nothing (the first entry stays).
func (l *Ledger) RecordErasure(ctx context.Context, in contract.RecordErasureInput) error {
	userID, err := l.Erasure.userID(ctx, in.SubjectRef, in.Identity)
	if err != nil {
		return err
	}
	return recordInLedger(ctx, l.Lethe, l.Subjects, l.Map, l.Log, in.RequestID, userID)
}

// ReconcilePage does one page of a restore-reconcile: it reads the next
// page of account keys after the cursor, looks their keyed hashes up in the
// ledger, and erases every match again (rows and objects, as the erasure
// does). Someone erased and not restored is erased to no effect and not
// counted; someone found back is counted once per run in the ledger and
// audited. Running a page again erases nothing more. The cursor (an account
// key) travels sealed with the run's own key, never in the clear.
func (l *Ledger) ReconcilePage(ctx context.Context, in contract.ReconcilePageInput) (contract.ReconcilePageResult, error) {
	res := contract.ReconcilePageResult{Next: in.Cursor}
	size := in.PageSize
	if size <= 0 {
		size = contract.ReconcilePageSize
	}
	var after *string
	if in.Cursor != nil {
		b, err := l.Keys.Open(ctx, in.RunRef, in.Cursor)
		if errors.Is(err, person.ErrKeyDestroyed) || errors.Is(err, person.ErrNoKey) || errors.Is(err, person.ErrCorrupt) {
			return res, temporal.NewNonRetryableApplicationError("the reconcile's cursor cannot be opened: start a new reconcile", "CursorLost", nil)
		}
		if err != nil {
			return res, classifyDB(fmt.Errorf("open the reconcile's cursor: %w", err))
		}
		s := string(b)
		after = &s
	}
	keys, err := l.accountKeys(ctx, after, size)
	if err != nil {
		return res, err
	}
	refs := make([]string, len(keys))
	for i, k := range keys {
		refs[i] = string(l.Subjects.UserID(k))
	}
	erased, err := ledger.Contains(ctx, l.Lethe, refs)
	if err != nil {
		return res, classifyDB(err)
	}
	for i, userID := range keys {
		res.Scanned++
		if !erased[refs[i]] {
			continue
		}
		res.Matched++
		if in.Batch != "" {
			s, err := sealBulkSubject(ctx, l.Keys, in.Batch, refs[i], userID, "")
			if err != nil {
				return res, err
			}
			res.Erase = append(res.Erase, s)
			continue
		}
		n, err := l.Erasure.eraseAccount(ctx, userID, refs[i])
		if err != nil {
			return res, err
		}
		activity.RecordHeartbeat(ctx)
		if n == 0 {
			continue // erased and still gone
		}
		res.Erased++
		res.Items += n
		if err := l.recordReapplied(ctx, in, refs[i], n); err != nil {
			return res, err
		}
	}
	if len(keys) > 0 {
		next, err := l.Keys.Seal(ctx, in.RunRef, []byte(keys[len(keys)-1]))
		if err != nil {
			return res, classifyDB(fmt.Errorf("seal the reconcile's cursor: %w", err))
		}
		res.Next = next
	}
	res.Done = len(keys) < size
	l.Log.InfoContext(ctx, "reconcile page", "run", in.RunRef, "scanned", res.Scanned, "matched", res.Matched, "erased_again", res.Erased)
	return res, nil
}

// recordReapplied counts the run in the person's ledger entry and audits
// the erasure applied again, once per run and person.
func (l *Ledger) recordReapplied(ctx context.Context, in contract.ReconcilePageInput, ref string, items int) error {
	if _, err := ledger.MarkReconciled(ctx, l.Lethe, ref, in.RunAt); err != nil {
		return classifyDB(err)
	}
	e, _, err := ledger.Get(ctx, l.Lethe, ref)
	if err != nil {
		return classifyDB(err)
	}
	_, err = audit.Append(ctx, l.Lethe, audit.Entry{RequestID: e.RequestID, SubjectRef: ref, Actor: "system", Action: "erasure.reapplied",
		Detail: map[string]any{"items": items, "run": in.RunRef}, IdempotencyKey: in.RunRef + ":" + ref})
	if errors.Is(err, audit.ErrRefused) {
		return temporal.NewNonRetryableApplicationError("audit erasure.reapplied refused", "AuditRefused", nil)
	}
	return classifyDB(err)
}

// accountKeys is the next page of the application's account keys after
// after (nil: from the first), in key order: the data map's identity table,
// else its accounts table. Keys are compared as text, as the other account
// scans do.
func (l *Ledger) accountKeys(ctx context.Context, after *string, limit int) ([]string, error) {
	if l.Map.Identity == nil && l.Map.Accounts == nil {
		return nil, temporal.NewNonRetryableApplicationError("the data map has no identity or accounts table to reconcile", "NotConfigured", nil)
	}
	keys, err := appdb.AccountKeys(ctx, l.App, l.Map, after, limit)
	if err != nil {
		return nil, classifyDB(err)
	}
	return keys, nil
}

// CountBackupsBefore counts the backups one location still holds from at
// or before the erasure (every version, on a versioned bucket), and the
// oldest of them. A failure to list is retried: a bucket or credentials
// fixed by an operator let the watch go on.
func (l *Ledger) CountBackupsBefore(ctx context.Context, in contract.CountBackupsInput) (contract.CountBackupsResult, error) {
	n, oldest, err := objectstore.CountOlderThan(ctx, l.Backups, in.Bucket, in.Prefix, in.Before)
	if err != nil {
		return contract.CountBackupsResult{}, fmt.Errorf("count backups in %s: %w", in.Bucket, err)
	}
	return contract.CountBackupsResult{Count: n, Oldest: oldest}, nil
}

// MarkBackupsClear records in the erasure ledger the date every backup
// older than the request's erasure was gone. Safe to repeat (the first date stays).
func (l *Ledger) MarkBackupsClear(ctx context.Context, in contract.MarkBackupsClearInput) error {
	n, err := ledger.MarkBackupsClear(ctx, l.Lethe, in.RequestID, in.ClearAt)
	if err != nil {
		return classifyDB(err)
	}
	if n == 0 {
		// The person's entry belongs to an earlier erasure, whose own watch marks it.
		l.Log.WarnContext(ctx, "no ledger entry carries this request", "request_id", in.RequestID)
	}
	return nil
}
