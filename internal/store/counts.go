package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TypeStatusCount is how many requests of one type are in one status.
type TypeStatusCount struct {
	Type, Status string
	Count        int
}

// CountByTypeStatus counts every request on record by type and status,
// closed ones included (records are kept; only their personal data goes).
func (s *Store) CountByTypeStatus(ctx context.Context) ([]TypeStatusCount, error) {
	rows, err := s.db.Query(ctx, `SELECT type, status, count(*) FROM lethe.requests GROUP BY type, status`)
	if err != nil {
		return nil, fmt.Errorf("store: count requests: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TypeStatusCount, error) {
		var c TypeStatusCount
		err := r.Scan(&c.Type, &c.Status, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: count requests: %w", err)
	}
	return out, nil
}

// Deadlines is where the open requests of one type stand against their
// due dates.
type Deadlines struct {
	Type string
	// Overdue are open and past their due date; DueSoon are open and due
	// before the soon given to OpenDeadlines.
	Overdue, DueSoon int
	// OldestDue is the earliest due date of an overdue one (zero: none).
	OldestDue time.Time
}

// OpenDeadlines counts, per type, the open requests past their due date at
// now, and those due from now until soon.
func (s *Store) OpenDeadlines(ctx context.Context, now, soon time.Time) ([]Deadlines, error) {
	rows, err := s.db.Query(ctx, `SELECT type,
			count(*) FILTER (WHERE due_at < $1),
			count(*) FILTER (WHERE due_at >= $1 AND due_at < $2),
			min(due_at) FILTER (WHERE due_at < $1)
		FROM lethe.requests WHERE closed_at IS NULL AND due_at IS NOT NULL GROUP BY type`, now, soon)
	if err != nil {
		return nil, fmt.Errorf("store: count open deadlines: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Deadlines, error) {
		var d Deadlines
		var oldest *time.Time
		err := r.Scan(&d.Type, &d.Overdue, &d.DueSoon, &oldest)
		if oldest != nil {
			d.OldestDue = *oldest
		}
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: count open deadlines: %w", err)
	}
	return out, nil
}
