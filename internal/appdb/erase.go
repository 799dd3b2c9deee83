package appdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// What Erase did to a table.
const (
	Deleted    = "deleted"
	Anonymized = "anonymized"
	Retained   = "retained"
)

// TableResult is what Erase did to one table, free of personal data: for
// a receipt and the erasure's outcome.
type TableResult struct {
	Table  string `json:"table"`  // schema.table
	Action string `json:"action"` // Deleted, Anonymized or Retained
	// Rows counts the rows deleted, anonymized (changed by this run), or
	// kept under the hold.
	Rows int `json:"rows"`
	// Released counts the rows of a retained table deleted because their
	// hold had already ended (since + period before the erasure).
	Released int `json:"released,omitempty"`
	// Reason and Period are the hold's (retained only): its legal basis
	// and its length as the map writes it.
	Reason string `json:"reason,omitempty"`
	Period string `json:"period,omitempty"`
	// Until is when the last kept row's hold ends (retained, Rows > 0):
	// the latest since + period or, for a hold without since, the erasure
	// time + period. EraseHeld deletes the rows then.
	Until time.Time `json:"until,omitzero"`
}

// Erase erases one person's rows of every table of the map in tx, in the
// given order (EraseOrder's): it deletes the rows of delete tables,
// overwrites the anonymized columns of anonymize tables (null, the fixed
// value, or pseudonym, the person's keyed pseudonym, needed when a column
// is set to hash), and counts the rows of retain tables, deleting those
// whose hold has already ended by now. It leaves the accounts row alone
// (EraseAccountRow is the caller's). Running it again changes nothing
// and counts no deleted or anonymized rows.
func Erase(ctx context.Context, tx pgx.Tx, m *datamap.Map, order []datamap.Table, person Person, pseudonym string, now time.Time) ([]TableResult, error) {
	if err := sameTables(m, order); err != nil {
		return nil, err
	}
	if person.UserID == "" {
		return nil, errors.New("appdb: erase: an empty user id")
	}
	results := make([]TableResult, 0, len(order))
	for _, t := range order {
		var r TableResult
		var err error
		switch t.Action {
		case datamap.ActionDelete:
			r, err = deleteRows(ctx, tx, t, person)
		case datamap.ActionAnonymize:
			r, err = anonymize(ctx, tx, t, person, pseudonym)
		case datamap.ActionRetain:
			r, err = retain(ctx, tx, t, person, now)
		default:
			err = fmt.Errorf("appdb: table %s: action %q is not one erasure knows", t.Name, t.Action)
		}
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return results, nil
}

// sameTables checks order holds every table of m once, and nothing else.
func sameTables(m *datamap.Map, order []datamap.Table) error {
	want := make([]string, 0, len(m.Tables))
	for _, t := range m.Tables {
		want = append(want, t.Name)
	}
	got := make([]string, 0, len(order))
	for _, t := range order {
		got = append(got, t.Name)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		return errors.New("appdb: erase: the order does not list exactly the map's tables (use EraseOrder)")
	}
	return nil
}

func deleteRows(ctx context.Context, tx pgx.Tx, t datamap.Table, person Person) (TableResult, error) {
	from, where, err := Match(t, 1)
	if err != nil {
		return TableResult{}, err
	}
	tag, err := tx.Exec(ctx, "DELETE FROM "+from+" WHERE "+where, person.Arg(t))
	if err != nil {
		return TableResult{}, dbError("delete the rows of", t.Name, err)
	}
	return TableResult{Table: t.Name, Action: Deleted, Rows: int(tag.RowsAffected())}, nil
}

// anonymization is an anonymize table's SET list, and the conditions that
// tell a row still holds a value anonymization overwrites (one per
// column), with their arguments after the user id ($1).
type anonymization struct {
	set, changed []string
	args         []any
}

func anonymizeSQL(t datamap.Table, pseudonym string) (anonymization, error) {
	var a anonymization
	a.args = []any{nil} // $1: the user id, filled in by the caller
	for _, c := range t.Anonymize {
		col := pgx.Identifier{c.Column}.Sanitize()
		switch c.Set {
		case datamap.SetNull:
			a.set = append(a.set, col+" = NULL")
			a.changed = append(a.changed, column(0, c.Column)+" IS NOT NULL")
			continue
		case datamap.SetFixed:
			if c.Value == nil {
				return a, fmt.Errorf("appdb: table %s: column %s is set fixed without a value", t.Name, c.Column)
			}
			a.args = append(a.args, *c.Value)
		case datamap.SetHash:
			if pseudonym == "" {
				return a, fmt.Errorf("appdb: table %s: column %s is set to the pseudonym, and none was given", t.Name, c.Column)
			}
			a.args = append(a.args, pseudonym)
		default:
			return a, fmt.Errorf("appdb: table %s: column %s: set %q is not null, fixed or hash", t.Name, c.Column, c.Set)
		}
		n := len(a.args)
		a.set = append(a.set, fmt.Sprintf("%s = $%d", col, n))
		a.changed = append(a.changed, fmt.Sprintf("%s IS DISTINCT FROM $%d", column(0, c.Column), n))
	}
	if len(a.set) == 0 {
		return a, fmt.Errorf("appdb: table %s: nothing to anonymize", t.Name)
	}
	return a, nil
}

func anonymize(ctx context.Context, tx pgx.Tx, t datamap.Table, person Person, pseudonym string) (TableResult, error) {
	from, where, err := Match(t, 1)
	if err != nil {
		return TableResult{}, err
	}
	a, err := anonymizeSQL(t, pseudonym)
	if err != nil {
		return TableResult{}, err
	}
	a.args[0] = person.Arg(t)
	// Only rows still holding a value change: a second run counts none.
	sql := fmt.Sprintf("UPDATE %s SET %s WHERE %s AND (%s)", from, strings.Join(a.set, ", "), where, strings.Join(a.changed, " OR "))
	tag, err := tx.Exec(ctx, sql, a.args...)
	if err != nil {
		return TableResult{}, dbError("anonymize the rows of", t.Name, err)
	}
	return TableResult{Table: t.Name, Action: Anonymized, Rows: int(tag.RowsAffected())}, nil
}

// heldRow is one row of a retain table with a since column: where it is
// (its table, a partition's for a partitioned table, and its place there,
// stable while the transaction holds the row locked) and when its hold ends.
type heldRow struct {
	tableOID uint32
	ctid     pgtype.TID
	ends     time.Time
}

// heldRows locks the person's rows of retain table t, which has a since
// column, and says when each one's hold ends. The arithmetic is Go's
// (datamap.Hold.Ends, in UTC), so no session time zone changes it.
func heldRows(ctx context.Context, tx pgx.Tx, t datamap.Table, person Person) ([]heldRow, error) {
	from, where, err := Match(t, 1)
	if err != nil {
		return nil, err
	}
	sql := fmt.Sprintf("SELECT %s.tableoid, %s.ctid, %s FROM %s WHERE %s FOR UPDATE", alias(0), alias(0), column(0, t.Hold.Since), from, where)
	rows, err := tx.Query(ctx, sql, person.Arg(t))
	if err != nil {
		return nil, dbError("read the held rows of", t.Name, err)
	}
	defer rows.Close()
	var out []heldRow
	for rows.Next() {
		var r heldRow
		var since *time.Time
		if err := rows.Scan(&r.tableOID, &r.ctid, &since); err != nil {
			return nil, dbError("read the held rows of", t.Name, err)
		}
		if since == nil {
			// Validate refuses a nullable since column; a NULL start is
			// never released rather than released early.
			continue
		}
		if r.ends, err = t.Hold.Ends(*since); err != nil {
			return nil, fmt.Errorf("appdb: table %s: %w", t.Name, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("read the held rows of", t.Name, err)
	}
	return out, nil
}

// releaseEnded deletes the rows of held whose hold has ended by now, and
// returns those that stay.
func releaseEnded(ctx context.Context, tx pgx.Tx, t datamap.Table, held []heldRow, now time.Time) (released int, kept []heldRow, err error) {
	var oids []uint32
	var ctids []pgtype.TID
	for _, r := range held {
		if !r.ends.After(now) {
			oids, ctids = append(oids, r.tableOID), append(ctids, r.ctid)
		} else {
			kept = append(kept, r)
		}
	}
	if len(ctids) == 0 {
		return 0, kept, nil
	}
	tag, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE (tableoid, ctid) IN (SELECT * FROM unnest($1::oid[], $2::tid[]))", table(t.Name)), oids, ctids)
	if err != nil {
		return 0, nil, dbError("delete the released rows of", t.Name, err)
	}
	return int(tag.RowsAffected()), kept, nil
}

func retain(ctx context.Context, tx pgx.Tx, t datamap.Table, person Person, now time.Time) (TableResult, error) {
	if t.Hold == nil {
		return TableResult{}, fmt.Errorf("appdb: table %s: action retain without a hold", t.Name)
	}
	r := TableResult{Table: t.Name, Action: Retained, Reason: t.Hold.Reason, Period: t.Hold.Period}
	if t.Hold.Since == "" {
		from, where, err := Match(t, 1)
		if err != nil {
			return TableResult{}, err
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+from+" WHERE "+where, person.Arg(t)).Scan(&r.Rows); err != nil {
			return TableResult{}, dbError("count the held rows of", t.Name, err)
		}
		if r.Rows > 0 {
			var err error
			if r.Until, err = t.Hold.Ends(now); err != nil {
				return TableResult{}, fmt.Errorf("appdb: table %s: %w", t.Name, err)
			}
		}
		return r, nil
	}
	held, err := heldRows(ctx, tx, t, person)
	if err != nil {
		return TableResult{}, err
	}
	released, kept, err := releaseEnded(ctx, tx, t, held, now)
	if err != nil {
		return TableResult{}, err
	}
	r.Rows, r.Released = len(kept), released
	for _, k := range kept {
		if k.ends.After(r.Until) {
			r.Until = k.ends
		}
	}
	return r, nil
}

// ErrNoIdentifier is a person without a value of the identity column a
// table's rows are found by: those rows cannot be found.
var ErrNoIdentifier = errors.New("the person's identifier is not known")

// EraseHeld releases the person's rows of the retain table called table
// when its legal hold ends, in one transaction: it deletes the rows whose
// hold has ended by now (since + period ≤ now; for a hold without since,
// all of them: the caller calls it at the Until Erase reported) and says
// when the next remaining row's hold ends (the zero time if none remain).
// Running it again deletes nothing more.
func EraseHeld(ctx context.Context, db TxStarter, m *datamap.Map, table string, person Person, now time.Time) (deleted int, next time.Time, err error) {
	t, ok := m.Table(table)
	switch {
	case !ok:
		return 0, time.Time{}, fmt.Errorf("appdb: erase held rows: %s is not a table of the data map", table)
	case t.Action != datamap.ActionRetain || t.Hold == nil:
		return 0, time.Time{}, fmt.Errorf("appdb: erase held rows: table %s is not retained under a hold", table)
	case person.UserID == "":
		return 0, time.Time{}, errors.New("appdb: erase held rows: an empty user id")
	}
	if p := t.Path(); len(p) > 0 && p[len(p)-1].By != "" && len(person.Identifiers[p[len(p)-1].By]) == 0 {
		// Deleting nothing here would end the hold with its rows kept.
		return 0, time.Time{}, fmt.Errorf("appdb: erase held rows of %s: %w: %s", table, ErrNoIdentifier, p[len(p)-1].By)
	}
	release := func(tx pgx.Tx) error {
		if t.Hold.Since == "" {
			r, err := deleteRows(ctx, tx, t, person)
			deleted = r.Rows
			return err
		}
		held, err := heldRows(ctx, tx, t, person)
		if err != nil {
			return err
		}
		released, kept, err := releaseEnded(ctx, tx, t, held, now)
		if err != nil {
			return err
		}
		deleted = released
		for _, k := range kept {
			if next.IsZero() || k.ends.Before(next) {
				next = k.ends
			}
		}
		return nil
	}
	var inner error
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		inner = release(tx)
		return inner
	})
	switch {
	case inner != nil:
		return 0, time.Time{}, inner
	case err != nil: // from BEGIN or COMMIT
		return 0, time.Time{}, dbError("release the held rows of", table, err)
	}
	return deleted, next, nil
}

// Leftover is what the verification pass found of a person in one table,
// free of personal data.
type Leftover struct {
	Table string `json:"table"` // schema.table
	Rows  int    `json:"rows"`
	Why   string `json:"why"`
}

// Remaining re-reads every table of the map for the person, after an
// erasure: rows still present in delete tables, rows of anonymize tables
// (those still found through the way to the person) whose anonymized
// columns hold something else than anonymization writes, and rows of
// retain tables whose hold has ended by now. Rows kept under a hold are no
// leftovers. An empty list means the erasure is complete.
func Remaining(ctx context.Context, db Querier, m *datamap.Map, person Person, pseudonym string, now time.Time) ([]Leftover, error) {
	if person.UserID == "" {
		return nil, errors.New("appdb: verify: an empty user id")
	}
	var out []Leftover
	for _, t := range m.Tables {
		from, where, err := Match(t, 1)
		if err != nil {
			return nil, err
		}
		switch t.Action {
		case datamap.ActionDelete:
			var n int
			if err := db.QueryRow(ctx, "SELECT count(*) FROM "+from+" WHERE "+where, person.Arg(t)).Scan(&n); err != nil {
				return nil, dbError("count the rows of", t.Name, err)
			}
			if n > 0 {
				out = append(out, Leftover{Table: t.Name, Rows: n, Why: "rows not deleted"})
			}
		case datamap.ActionAnonymize:
			l, err := notAnonymized(ctx, db, t, person, pseudonym)
			if err != nil {
				return nil, err
			}
			if l.Rows > 0 {
				out = append(out, l)
			}
		case datamap.ActionRetain:
			if t.Hold == nil || t.Hold.Since == "" {
				continue // held from the erasure on: EraseHeld releases them
			}
			rows, err := db.Query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s", column(0, t.Hold.Since), from, where), person.Arg(t))
			if err != nil {
				return nil, dbError("read the held rows of", t.Name, err)
			}
			starts, err := pgx.CollectRows(rows, pgx.RowTo[*time.Time])
			if err != nil {
				return nil, dbError("read the held rows of", t.Name, err)
			}
			n := 0
			for _, s := range starts {
				if s == nil {
					continue
				}
				if ends, err := t.Hold.Ends(*s); err != nil {
					return nil, fmt.Errorf("appdb: table %s: %w", t.Name, err)
				} else if !ends.After(now) {
					n++
				}
			}
			if n > 0 {
				out = append(out, Leftover{Table: t.Name, Rows: n, Why: "rows kept after their hold ended"})
			}
		}
	}
	return out, nil
}

// notAnonymized counts the person's rows of anonymize table t that still
// hold a value anonymization overwrites, and names those columns.
func notAnonymized(ctx context.Context, db Querier, t datamap.Table, person Person, pseudonym string) (Leftover, error) {
	from, where, err := Match(t, 1)
	if err != nil {
		return Leftover{}, err
	}
	a, err := anonymizeSQL(t, pseudonym)
	if err != nil {
		return Leftover{}, err
	}
	a.args[0] = person.Arg(t)
	counts := []string{fmt.Sprintf("count(*) FILTER (WHERE %s)", strings.Join(a.changed, " OR "))}
	for _, c := range a.changed {
		counts = append(counts, fmt.Sprintf("count(*) FILTER (WHERE %s)", c))
	}
	n := make([]int, len(counts))
	dest := make([]any, len(counts))
	for i := range n {
		dest[i] = &n[i]
	}
	if err := db.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(counts, ", "), from, where), a.args...).Scan(dest...); err != nil {
		return Leftover{}, dbError("check the anonymized rows of", t.Name, err)
	}
	var cols []string
	for i, c := range t.Anonymize {
		if n[i+1] > 0 {
			cols = append(cols, c.Column)
		}
	}
	return Leftover{Table: t.Name, Rows: n[0], Why: "rows still hold " + strings.Join(cols, ", ")}, nil
}
