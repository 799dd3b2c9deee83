package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// DB is the part of *pgxpool.Pool (or pgx.Conn) the Store uses.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store reads and writes Lethe's records of requests: lethe.requests,
// lethe.verification_codes, lethe.erasure_steps and lethe.inactivity_notices.
// No other package holds SQL on these tables (owners_test.go checks it), and
// no status word is written in its SQL: statuses come from package domain,
// as parameters.
type Store struct {
	db DB
}

// New is the store over Lethe's own database, usually its *pgxpool.Pool.
func New(db DB) *Store {
	return &Store{db: db}
}

// ErrNotFound is returned (wrapped) when a request has no record.
var ErrNotFound = errors.New("store: no such request")

// Transition is a request's state as its workflow reports it.
type Transition struct {
	ID, Type, SubjectRef, Jurisdiction, Status string
	ReceivedAt, DueAt                          time.Time
	// ClosedAt is when the request closed; nil while it is open. A close
	// already recorded is kept.
	ClosedAt *time.Time
}

// RecordTransition projects a request's state into lethe.requests, creating
// the row when the API did not claim one.
func (s *Store) RecordTransition(ctx context.Context, t Transition) error {
	_, err := s.db.Exec(ctx, `
		INSERT INTO lethe.requests (id, type, subject_ref, jurisdiction, status, workflow_id, received_at, due_at, closed_at)
		VALUES ($1, $2, $3, $4, $5, $1, $6, $7, $8)
		ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, due_at = EXCLUDED.due_at,
			closed_at = COALESCE(lethe.requests.closed_at, EXCLUDED.closed_at), updated_at = now()`,
		t.ID, t.Type, t.SubjectRef, t.Jurisdiction, t.Status, t.ReceivedAt, t.DueAt, t.ClosedAt)
	if err != nil {
		return fmt.Errorf("record request: %w", err)
	}
	return nil
}

// Claim records a submission, received, as the person's one open request of
// its type. False (and no error) when the person already has one open: a
// concurrent twin won, and this submission joins it.
func (s *Store) Claim(ctx context.Context, id, typ, subjectRef, jurisdiction string, receivedAt, dueAt time.Time) (bool, error) {
	_, err := s.db.Exec(ctx, `INSERT INTO lethe.requests (id, type, subject_ref, jurisdiction, status, workflow_id, received_at, due_at)
		VALUES ($1, $2, $3, $4, $5, $1, $6, $7)`, id, typ, subjectRef, jurisdiction, domain.StatusReceived, receivedAt, dueAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim request: %w", err)
	}
	return true, nil
}

// DeleteClaim removes a claimed request whose workflow could not be started.
func (s *Store) DeleteClaim(ctx context.Context, id string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM lethe.requests WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete request claim: %w", err)
	}
	return nil
}

// Running is a person's running request of one type.
type Running struct {
	ID, Status string
	DueAt      time.Time
}

// OpenRequest is the person's running request of this type; ok is false
// when there is none.
func (s *Store) OpenRequest(ctx context.Context, subjectRef, typ string) (r Running, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT id, status, due_at FROM lethe.requests WHERE subject_ref = $1 AND type = $2 AND closed_at IS NULL`, subjectRef, typ).
		Scan(&r.ID, &r.Status, &r.DueAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Running{}, false, nil
	}
	if err != nil {
		return Running{}, false, fmt.Errorf("find open request: %w", err)
	}
	return r, true, nil
}

// Abandon closes a claim whose workflow never started, as abandoned, once
// it is more than a minute old (a younger one may still be starting).
func (s *Store) Abandon(ctx context.Context, id string) error {
	_, err := s.db.Exec(ctx, `UPDATE lethe.requests SET status = $2, closed_at = now() WHERE id = $1 AND closed_at IS NULL AND received_at < now() - interval '1 minute'`, id, domain.StatusAbandoned)
	if err != nil {
		return fmt.Errorf("abandon request: %w", err)
	}
	return nil
}

// Closed says whether the request's record is closed.
func (s *Store) Closed(ctx context.Context, id string) (bool, error) {
	var closed bool
	if err := s.db.QueryRow(ctx, `SELECT closed_at IS NOT NULL FROM lethe.requests WHERE id = $1`, id).Scan(&closed); err != nil {
		return false, fmt.Errorf("read whether request is closed: %w", err)
	}
	return closed, nil
}

// CountedSince is when the person's requests of this type were received
// after since, oldest first: in the jurisdiction, or in any for "*". Requests
// that do not count towards a limit (domain.UncountedStatuses) are left out.
func (s *Store) CountedSince(ctx context.Context, subjectRef, typ, jurisdiction string, since time.Time) ([]time.Time, error) {
	rows, err := s.db.Query(ctx, `SELECT received_at FROM lethe.requests
			WHERE subject_ref = $1 AND type = $2 AND ($3 = '*' OR jurisdiction = $3) AND received_at > $4
			  AND status <> ALL($5)
			ORDER BY received_at`, subjectRef, typ, jurisdiction, since, domain.UncountedStatuses())
	if err != nil {
		return nil, fmt.Errorf("count requests: %w", err)
	}
	times, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		return nil, fmt.Errorf("count requests: %w", err)
	}
	return times, nil
}

// Record is what Lethe keeps of a request once its workflow is gone.
type Record struct {
	Type, Status, SubjectRef, Jurisdiction string
	ReceivedAt                             time.Time
	DueAt                                  *time.Time // nil: none recorded
}

// Request is the record of request id; ErrNotFound when there is none.
func (s *Store) Request(ctx context.Context, id string) (Record, error) {
	var r Record
	err := s.db.QueryRow(ctx, `SELECT type, status, subject_ref, jurisdiction, received_at, due_at FROM lethe.requests WHERE id = $1`, id).
		Scan(&r.Type, &r.Status, &r.SubjectRef, &r.Jurisdiction, &r.ReceivedAt, &r.DueAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("read request: %w", err)
	}
	return r, nil
}

// DueAt is the request's due date as recorded (extensions included); ok is
// false when Lethe has no record of the request.
func (s *Store) DueAt(ctx context.Context, id string) (due time.Time, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT due_at FROM lethe.requests WHERE id = $1`, id).Scan(&due)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read the request's due date: %w", err)
	}
	return due, true, nil
}

// ClosedRequest is a request closed before a retention cut-off and not purged yet.
type ClosedRequest struct {
	ID, SubjectRef string
	// Shred: the person has no request open or closed since the cut-off,
	// so their data key may go.
	Shred bool
}

// ClosedBefore is up to limit requests closed before cutoff and not purged,
// oldest first.
func (s *Store) ClosedBefore(ctx context.Context, cutoff time.Time, limit int) ([]ClosedRequest, error) {
	rows, err := s.db.Query(ctx, `SELECT id, subject_ref,
				NOT EXISTS (SELECT 1 FROM lethe.requests o WHERE o.subject_ref = r.subject_ref
					AND (o.closed_at IS NULL OR o.closed_at >= $1)) AS shred
			FROM lethe.requests r
			WHERE closed_at < $1 AND purged_at IS NULL
			ORDER BY closed_at, id LIMIT $2`, cutoff, limit)
	if err != nil {
		return nil, fmt.Errorf("find closed requests: %w", err)
	}
	batch, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ClosedRequest])
	if err != nil {
		return nil, fmt.Errorf("find closed requests: %w", err)
	}
	return batch, nil
}

// Purge forgets what could identify the people behind the requests ids, in
// one transaction: their verification-code hashes, erasure steps and DRP links go and
// the requests are marked purged. also runs inside the same transaction,
// after the codes go, for what other owners keep by request (the mail
// idempotency keys, mail.ForgetRequests); nil for nothing.
func (s *Store) Purge(ctx context.Context, ids []string, also func(ctx context.Context, tx pgx.Tx, ids []string) error) error {
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM lethe.verification_codes WHERE request_id = ANY($1)`, ids); err != nil {
			return err
		}
		if also != nil {
			if err := also(ctx, tx, ids); err != nil {
				return err
			}
		}
		for _, q := range []string{
			`DELETE FROM lethe.erasure_steps WHERE request_id = ANY($1)`,
			`DELETE FROM lethe.drp_requests WHERE request_id = ANY($1)`, // the agent's own ids for them
			`UPDATE lethe.requests SET purged_at = now() WHERE id = ANY($1)`,
		} {
			if _, err := tx.Exec(ctx, q, ids); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("purge closed requests: %w", err)
	}
	return nil
}
