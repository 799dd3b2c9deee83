package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CodeHash is the keyed hash of the verification code seq mailed for the
// request; ok is false when none was stored.
func (s *Store) CodeHash(ctx context.Context, requestID string, seq int) (hash string, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT code_hash FROM lethe.verification_codes WHERE request_id = $1 AND seq = $2`, requestID, seq).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read code hash: %w", err)
	}
	return hash, true, nil
}

// StoreCodeHash keeps the keyed hash of verification code seq of the
// request, replacing one stored before for the same seq.
func (s *Store) StoreCodeHash(ctx context.Context, requestID string, seq int, hash string) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO lethe.verification_codes (request_id, seq, code_hash) VALUES ($1, $2, $3)
		ON CONFLICT (request_id, seq) DO UPDATE SET code_hash = EXCLUDED.code_hash, created_at = now()`, requestID, seq, hash); err != nil {
		return fmt.Errorf("store code hash: %w", err)
	}
	return nil
}

// RecordErasureStep keeps what a step of a request's erasure did (result is
// stored as JSON), replacing what an earlier attempt recorded.
func (s *Store) RecordErasureStep(ctx context.Context, requestID, step string, result any) error {
	_, err := s.db.Exec(ctx, `INSERT INTO lethe.erasure_steps (request_id, step, result) VALUES ($1, $2, $3)
		ON CONFLICT (request_id, step) DO UPDATE SET result = EXCLUDED.result, recorded_at = now()`, requestID, step, result)
	if err != nil {
		return fmt.Errorf("record the erasure step %s: %w", step, err)
	}
	return nil
}

// ErasureStep reads what the step of the request's erasure recorded into
// dst (a pointer, as for json.Unmarshal); ok is false when nothing was.
func (s *Store) ErasureStep(ctx context.Context, requestID, step string, dst any) (ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT result FROM lethe.erasure_steps WHERE request_id = $1 AND step = $2`, requestID, step).Scan(dst)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the recorded erasure step: %w", err)
	}
	return true, nil
}

// InactivityNotice is the inactivity sweep's record of one person: the last
// activity they were warned for, when they are due, and when (if) erased.
type InactivityNotice struct {
	LastActive, Due time.Time
	Erased          *time.Time
}

// InactivityNotice is the sweep's record of subjectRef; ok is false when the
// person was never warned.
func (s *Store) InactivityNotice(ctx context.Context, subjectRef string) (n InactivityNotice, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT last_active, due_at, erased_at FROM lethe.inactivity_notices WHERE subject_ref = $1`, subjectRef).
		Scan(&n.LastActive, &n.Due, &n.Erased)
	if errors.Is(err, pgx.ErrNoRows) {
		return InactivityNotice{}, false, nil
	}
	if err != nil {
		return InactivityNotice{}, false, fmt.Errorf("read inactivity notice: %w", err)
	}
	return n, true, nil
}

// RecordInactivityWarning records that the person was warned at warnedAt
// for their activity at lastActive and is due at due; a warning recorded
// before (for an older activity) is replaced, and not erased any more.
func (s *Store) RecordInactivityWarning(ctx context.Context, subjectRef string, lastActive, warnedAt, due time.Time) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO lethe.inactivity_notices (subject_ref, last_active, warned_at, due_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (subject_ref) DO UPDATE SET last_active = EXCLUDED.last_active, warned_at = EXCLUDED.warned_at, due_at = EXCLUDED.due_at, erased_at = NULL`,
		subjectRef, lastActive, warnedAt, due); err != nil {
		return fmt.Errorf("record warning: %w", err)
	}
	return nil
}

// MarkInactiveErased records that the warned person was erased at at.
func (s *Store) MarkInactiveErased(ctx context.Context, subjectRef string, at time.Time) error {
	if _, err := s.db.Exec(ctx, `UPDATE lethe.inactivity_notices SET erased_at = $2 WHERE subject_ref = $1`, subjectRef, at); err != nil {
		return fmt.Errorf("record inactive account erased: %w", err)
	}
	return nil
}
