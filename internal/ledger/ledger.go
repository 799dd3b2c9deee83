// Package ledger is the erasure ledger: who was erased, so that no restore
// brings them back (P6).
//
// Backups of the application database cannot be edited, so an erased person
// lives on in every backup taken before their erasure. Lethe records each
// erasure here, before any of the person's rows is deleted; after a restore,
// the restore-reconcile workflow looks every account of the restored
// database up in the ledger and erases the matches again. The ledger also
// records when the last backup older than the erasure rotated out.
//
// A person is known only by the keyed hash of their user id
// (person.Hasher.UserID), never by the id itself: the ledger holds no
// personal data, and it must not, since it outlives everything else.
// Every function refuses a reference that is not such a hash.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the ledger needs of Lethe's database: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNotARef means a value given as a user reference is not a keyed hash
// ("sr_…"): most likely a plaintext user id passed by mistake. The value is
// never echoed.
var ErrNotARef = errors.New("ledger: not a keyed-hash user reference")

// refRe is what person.Hasher references look like.
var refRe = regexp.MustCompile(`^sr_[a-z2-7]{16,64}$`)

func checkRef(ref string) error {
	if !refRe.MatchString(ref) {
		return ErrNotARef
	}
	return nil
}

// Entry is one erased person.
type Entry struct {
	UserRef          string
	RequestID        string    // the erasure request that first erased the person
	ErasedAt         time.Time // when the erasure was recorded
	MapDigest        string    // the data map's version the erasure followed
	BackupsClearAt   time.Time // zero until every older backup has rotated out
	ReconciledCount  int       // restore-reconcile runs that found the person back
	LastReconciledAt time.Time // zero until then
}

// Record writes the person into the ledger. It is idempotent: a person
// already there keeps their first entry (request, time and digest), so
// retrying, or erasing the same person again, changes nothing.
func Record(ctx context.Context, db DB, userRef, requestID, digest string, at time.Time) error {
	if err := checkRef(userRef); err != nil {
		return err
	}
	if requestID == "" || digest == "" || at.IsZero() {
		return errors.New("ledger: record needs a request id, a data map digest and a time")
	}
	_, err := db.Exec(ctx, `INSERT INTO lethe.erasure_ledger (user_ref, request_id, erased_at, datamap_digest)
		VALUES ($1, $2, $3, $4) ON CONFLICT (user_ref) DO NOTHING`, userRef, requestID, at, digest)
	if err != nil {
		return fmt.Errorf("ledger: record erasure: %w", err)
	}
	return nil
}

// Contains says which of refs (one page of accounts) are in the ledger.
// Only the refs found are in the map.
func Contains(ctx context.Context, db DB, refs []string) (map[string]bool, error) {
	found := make(map[string]bool)
	if len(refs) == 0 {
		return found, nil
	}
	for _, r := range refs {
		if err := checkRef(r); err != nil {
			return nil, err
		}
	}
	rows, err := db.Query(ctx, `SELECT user_ref FROM lethe.erasure_ledger WHERE user_ref = ANY($1)`, refs)
	if err != nil {
		return nil, fmt.Errorf("ledger: look up page: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("ledger: look up page: %w", err)
	}
	for _, r := range got {
		found[r] = true
	}
	return found, nil
}

// Get returns the person's entry; ok is false when they are not in the ledger.
func Get(ctx context.Context, db DB, userRef string) (e Entry, ok bool, err error) {
	if err := checkRef(userRef); err != nil {
		return e, false, err
	}
	var clear, reconciled *time.Time
	err = db.QueryRow(ctx, `SELECT user_ref, request_id, erased_at, datamap_digest, backups_clear_at, reconciled_count, last_reconciled_at
		FROM lethe.erasure_ledger WHERE user_ref = $1`, userRef).
		Scan(&e.UserRef, &e.RequestID, &e.ErasedAt, &e.MapDigest, &clear, &e.ReconciledCount, &reconciled)
	if errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("ledger: read entry: %w", err)
	}
	if clear != nil {
		e.BackupsClearAt = *clear
	}
	if reconciled != nil {
		e.LastReconciledAt = *reconciled
	}
	return e, true, nil
}

// MarkBackupsClear records that every backup older than the request's
// erasure has rotated out, at at. The first date is kept; it returns how
// many entries carry the request (0 when the person's entry belongs to an
// earlier request, whose own watch marks it).
func MarkBackupsClear(ctx context.Context, db DB, requestID string, at time.Time) (int, error) {
	if requestID == "" || at.IsZero() {
		return 0, errors.New("ledger: mark backups clear needs a request id and a time")
	}
	tag, err := db.Exec(ctx, `UPDATE lethe.erasure_ledger SET backups_clear_at = COALESCE(backups_clear_at, $2) WHERE request_id = $1`, requestID, at)
	if err != nil {
		return 0, fmt.Errorf("ledger: mark backups clear: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// MarkReconciled records that the restore-reconcile run started at runAt
// found the person back and erased them again. Each run counts once however
// often it is retried: it reports whether this call counted it.
func MarkReconciled(ctx context.Context, db DB, userRef string, runAt time.Time) (bool, error) {
	if err := checkRef(userRef); err != nil {
		return false, err
	}
	if runAt.IsZero() {
		return false, errors.New("ledger: mark reconciled needs the run's time")
	}
	tag, err := db.Exec(ctx, `UPDATE lethe.erasure_ledger SET reconciled_count = reconciled_count + 1, last_reconciled_at = $2
		WHERE user_ref = $1 AND last_reconciled_at IS DISTINCT FROM $2`, userRef, runAt)
	if err != nil {
		return false, fmt.Errorf("ledger: mark reconciled: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// BackupsPending is how many erased people still have backups older than
// their erasure somewhere: ledger entries without backups_clear_at.
type BackupsPending struct {
	// Open is every such entry; PastPromise those erased before the cutoff
	// given to PendingBackups (the data map's backup promise ago).
	Open, PastPromise int
	// OldestErasedAt is the erasure time of the oldest, zero when Open is 0.
	OldestErasedAt time.Time
}

// PendingBackups counts the erased people whose backups are not yet known
// to have rotated out, and those of them erased before promiseCutoff (now
// minus the backup promise): the promise is broken for them.
func PendingBackups(ctx context.Context, db DB, promiseCutoff time.Time) (BackupsPending, error) {
	var p BackupsPending
	var oldest *time.Time
	// The literal predicate lets the planner use the partial index
	// erasure_ledger_backups_pending.
	err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE erased_at < $1), min(erased_at)
		FROM lethe.erasure_ledger WHERE backups_clear_at IS NULL`, promiseCutoff).Scan(&p.Open, &p.PastPromise, &oldest)
	if err != nil {
		return BackupsPending{}, fmt.Errorf("ledger: count pending backups: %w", err)
	}
	if oldest != nil {
		p.OldestErasedAt = *oldest
	}
	return p, nil
}
