package appdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// The application's reads that are neither erasure nor accounts: the
// person's rows for an access export, the identity table's lookups (a user
// id by email, processor ids, addresses for bulk notices, every account
// key for reconciliation) and a bulk notice's selector.

// TableColumn is one column of a table, and its place in the primary key
// (0: not in it).
type TableColumn struct {
	Name  string
	PKPos int
}

// TableColumns lists a table's columns (table is schema.table) in their
// order, each with its place in the primary key.
func TableColumns(ctx context.Context, db Querier, table string) ([]TableColumn, error) {
	ident := pgx.Identifier(strings.SplitN(table, ".", 2))
	rows, err := db.Query(ctx, `SELECT a.attname::text, coalesce(array_position(i.indkey::int2[], a.attnum) + 1, 0)
		FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, ident.Sanitize())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableColumn, error) {
		var c TableColumn
		err := r.Scan(&c.Name, &c.PKPos)
		return c, err
	})
}

// PersonRows reads the person's rows of t (found as Match finds them) for
// an export: one JSON object per row (PostgreSQL's row_to_json), with
// every column of cols (TableColumns of t) but those in exclude, in table
// order, the rows ordered by the primary key's selected columns so that
// reading twice gives the same.
func PersonRows(ctx context.Context, db Querier, t datamap.Table, person Person, cols []TableColumn, exclude []string) (pgx.Rows, error) {
	from, match, err := Match(t, 1)
	if err != nil {
		return nil, err
	}
	var selected []string
	for _, c := range cols {
		if !slices.Contains(exclude, c.Name) {
			selected = append(selected, pgx.Identifier{c.Name}.Sanitize())
		}
	}
	pk := slices.DeleteFunc(slices.Clone(cols), func(c TableColumn) bool { return c.PKPos == 0 || slices.Contains(exclude, c.Name) })
	slices.SortFunc(pk, func(x, y TableColumn) int { return x.PKPos - y.PKPos })
	var order []string
	for _, c := range pk {
		order = append(order, pgx.Identifier{c.Name}.Sanitize())
	}
	sql := fmt.Sprintf("SELECT row_to_json(r) FROM (SELECT %s FROM %s WHERE %s", strings.Join(selected, ", "), from, match)
	if len(order) > 0 {
		sql += " ORDER BY " + strings.Join(order, ", ")
	}
	sql += ") r"
	return db.Query(ctx, sql, person.Arg(t))
}

// UserIDByEmail is the user id the identity table holds for email,
// compared case-insensitively; "" when it holds none, or the data map has
// no identity table.
func UserIDByEmail(ctx context.Context, db Querier, m *datamap.Map, email string) (string, error) {
	if m.Identity == nil {
		return "", nil
	}
	var userID string
	sql := fmt.Sprintf("SELECT %s::text FROM %s WHERE lower(%s) = lower($1) LIMIT 1",
		pgx.Identifier{m.Identity.Key}.Sanitize(), m.Identity.Identifier().Sanitize(), pgx.Identifier{m.Identity.Email}.Sanitize())
	err := db.QueryRow(ctx, sql, email).Scan(&userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("resolve user in %s: %w", m.Identity.Table, err)
	}
	return userID, nil
}

// ProcessorIDs reads the person's ids at processors (the data map's
// processors' ids: columns of the identity table), by id key, to be read
// before an erasure erases them; a NULL or empty id is left out. nil when
// the map names none, has no identity table, or the person no identity row.
func ProcessorIDs(ctx context.Context, db Querier, m *datamap.Map, userID string) (map[string]string, error) {
	var keys, cols []string
	for _, p := range m.Processors {
		for key, col := range p.IDs {
			if !slices.Contains(keys, key) {
				keys, cols = append(keys, key), append(cols, pgx.Identifier{col}.Sanitize()+"::text")
			}
		}
	}
	if len(keys) == 0 || m.Identity == nil {
		return nil, nil
	}
	values := make([]*string, len(keys))
	dest := make([]any, len(keys))
	for i := range values {
		dest[i] = &values[i]
	}
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s = $1", strings.Join(cols, ", "), m.Identity.Identifier().Sanitize(), pgx.Identifier{m.Identity.Key}.Sanitize())
	err := db.QueryRow(ctx, sql, userID).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read processor ids in %s: %w", m.Identity.Table, err)
	}
	ids := map[string]string{}
	for i, v := range values {
		if v != nil && *v != "" {
			ids[keys[i]] = *v
		}
	}
	return ids, nil
}

// AccountKeys is the next page of the application's account keys after
// after (nil: from the first), in key order: the data map's identity table,
// else its accounts table (ErrAccountsNotConfigured without either). Keys
// are compared as text, as the other account scans do.
func AccountKeys(ctx context.Context, db Querier, m *datamap.Map, after *string, limit int) ([]string, error) {
	var table pgx.Identifier
	var key string
	switch {
	case m.Identity != nil:
		table, key = m.Identity.Identifier(), m.Identity.Key
	case m.Accounts != nil:
		table, key = m.Accounts.Identifier(), m.Accounts.Key
	default:
		return nil, ErrAccountsNotConfigured
	}
	col := pgx.Identifier{key}.Sanitize()
	var rows pgx.Rows
	var err error
	if after == nil {
		rows, err = db.Query(ctx, fmt.Sprintf("SELECT %[1]s::text FROM %[2]s ORDER BY %[1]s::text LIMIT $1", col, table.Sanitize()), limit)
	} else {
		rows, err = db.Query(ctx, fmt.Sprintf("SELECT %[1]s::text FROM %[2]s WHERE %[1]s::text > $1 ORDER BY %[1]s::text LIMIT $2", col, table.Sanitize()), *after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	return keys, nil
}

// UserEmail is a user id and the identity table's email for it (nil: NULL).
type UserEmail struct {
	UserID string
	Email  *string
}

// IdentityEmails reads the identity table's email of each of ids, in one
// query, in the order the rows come.
func IdentityEmails(ctx context.Context, db Querier, m *datamap.Map, ids []string) ([]UserEmail, error) {
	idt := m.Identity
	if idt == nil {
		return nil, errors.New("look up addresses: the data map has no identity table")
	}
	key := pgx.Identifier{idt.Key}.Sanitize()
	sql := fmt.Sprintf("SELECT %s::text, %s::text FROM %s WHERE %s = ANY($1)",
		key, pgx.Identifier{idt.Email}.Sanitize(), idt.Identifier().Sanitize(), key)
	rows, err := db.Query(ctx, sql, ids)
	if err != nil {
		return nil, fmt.Errorf("look up addresses: %w", err)
	}
	defer rows.Close()
	out := make([]UserEmail, 0, len(ids))
	for rows.Next() {
		var u UserEmail
		if err := rows.Scan(&u.UserID, &u.Email); err != nil {
			return nil, fmt.Errorf("look up addresses: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up addresses: %w", err)
	}
	return out, nil
}

// SelectorUserIDs runs a selector, a query the company wrote
// (configuration, never user input) whose first column is a user id, with
// args, in a read-only transaction as
//
//	SELECT DISTINCT uid::text FROM (<selector>) AS s(uid)
//
// skipping null ids, and calls each with every id as it is read, numbered
// from 1. An error of each is returned as it is and ends the scan; the
// others read "selector: …" or "selector row N: …".
func SelectorUserIDs(ctx context.Context, db TxStarter, selector string, args []any, each func(row int, id string) error) error {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("selector: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	rows, err := tx.Query(ctx, "SELECT DISTINCT s.uid::text FROM ("+selector+") AS s(uid) WHERE s.uid IS NOT NULL", args...)
	if err != nil {
		return fmt.Errorf("selector: %w", err)
	}
	defer rows.Close()
	row := 0
	for rows.Next() {
		row++
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("selector row %d: %w", row, err)
		}
		if err := each(row, id); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("selector: %w", err)
	}
	return nil
}
