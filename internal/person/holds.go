package person

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// holdPrefix starts the reference of a legal hold's own key (HoldRef).
const holdPrefix = "hold:"

// HoldRef is the reference of the key a legal hold seals the person's id
// with: one key per held table and erasure run (id), destroyed when the
// hold's last row goes. A person erased again later gets holds of their
// own, which the end of an earlier one does not shred. table is the
// data map's schema.table, id the erasure's workflow run id (or request id).
func HoldRef(table, id string) string {
	return holdPrefix + table + ":" + id
}

// Querier is what the package-level reads need of Lethe's database: a
// pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// LiveHolds counts the legal holds still running, by held table: the hold
// keys (HoldRef) not yet destroyed. Table names are the data map's, never
// anything about a person.
func LiveHolds(ctx context.Context, db Querier) (map[string]int, error) {
	// The literal prefix (not a parameter) lets the planner use the
	// partial index subject_keys_live_holds; a table name has no ':'.
	rows, err := db.Query(ctx, `SELECT split_part(subject_ref, ':', 2), count(*) FROM lethe.subject_keys
		WHERE destroyed_at IS NULL AND subject_ref LIKE 'hold:%' GROUP BY 1`)
	if err != nil {
		return nil, fmt.Errorf("subjectkeys: count live holds: %w", err)
	}
	out := map[string]int{}
	var table string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&table, &n}, func() error {
		if table != "" {
			out[table] += n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("subjectkeys: count live holds: %w", err)
	}
	return out, nil
}
