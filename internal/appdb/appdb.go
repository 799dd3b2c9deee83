// Package appdb builds and runs every statement on the company's
// application database, from the data map: how a person's rows are found
// (by a key column or through a chain of foreign keys), erased (deleted,
// anonymized, or retained under a legal hold), verified, and released when
// a legal hold ends; the account row and its lifecycle (accounts.go);
// corrections and consents (rectify.go); the reads of an access export,
// the identity lookups and the selectors of bulk notices (reads.go).
//
// Every statement is built from the data map's names quoted with
// pgx.Identifier, and binds the user id, the pseudonym and fixed values as
// parameters. Errors name the table and the PostgreSQL error code, never
// a value: a PostgreSQL message can quote the user id.
package appdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Querier runs statements on the application database: a pool, a
// connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// TxStarter begins a transaction on the application database, with
// default or given options (a read-only snapshot, say): a pool or a
// connection.
type TxStarter interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Person is who a statement on the application database looks for: the
// user id and, for tables keyed by another identifier (datamap.Table.By),
// the person's values of that identity-table column, by column name (every
// email address known for the person, for the identity's email column).
type Person struct {
	UserID      string              `json:"user_id"`
	Identifiers map[string][]string `json:"identifiers,omitempty"`
}

// Arg is the value Match's parameter binds for t: the user id, or for a
// table whose way to the person ends at another identifier, the person's
// values of it, lower-cased (a text array; empty when none is known, which
// matches no row).
func (p Person) Arg(t datamap.Table) any {
	path := t.Path()
	if len(path) == 0 || path[len(path)-1].By == "" {
		return p.UserID
	}
	var out []string
	for _, v := range p.Identifiers[path[len(path)-1].By] {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// Match is the SQL that finds the person's rows of t. from names t's table
// with the alias "p0" ("schema"."table" AS "p0"); where is a condition on
// p0 that holds for the rows whose way to the person (t.Path()) ends at the
// value bound as $param, which Person.Arg gives. For a keyed table:
//
//	"p0"."account_id" = $1
//
// for a table reached via projects, keyed by account_id:
//
//	"p0"."project_id" IN (SELECT "p1"."id" FROM "demo"."projects" AS "p1" WHERE "p1"."account_id" = $1)
//
// and for a table keyed by the person's email address (by: email), compared
// case-insensitively with every address known:
//
//	lower("p0"."address"::text) = ANY($1::text[])
func Match(t datamap.Table, param int) (from, where string, err error) {
	path := t.Path()
	if len(path) == 0 {
		return "", "", fmt.Errorf("appdb: table %s: no way to the person (a via table must come from datamap.Parse)", t.Name)
	}
	n := len(path)
	if path[n-1].By == "" {
		where = fmt.Sprintf("%s = $%d", column(n-1, path[n-1].Column), param)
	} else {
		where = fmt.Sprintf("lower(%s::text) = ANY($%d::text[])", column(n-1, path[n-1].Column), param)
	}
	for i := n - 2; i >= 0; i-- {
		where = fmt.Sprintf("%s IN (SELECT %s FROM %s AS %s WHERE %s)",
			column(i, path[i].Column), column(i+1, path[i].Refers), table(path[i+1].Table), alias(i+1), where)
	}
	return table(path[0].Table) + " AS " + alias(0), where, nil
}

// ByColumns are the identity-table columns the map's tables are keyed by
// (datamap.Table.By), each once, in the map's order.
func ByColumns(m *datamap.Map) []string {
	var out []string
	for _, t := range m.Tables {
		if path := t.Path(); len(path) > 0 {
			if by := path[len(path)-1].By; by != "" && !slices.Contains(out, by) {
				out = append(out, by)
			}
		}
	}
	return out
}

// Identifiers reads the person's values of the identity table's email
// column and of the columns the map's tables are keyed by (ByColumns),
// from their identity row: to be read before an erasure changes that row.
// A person without an identity row, or a map without an identity table,
// yields an empty map. The placeholder an earlier erasure wrote into the
// email column is no identifier of the person: someone erased and erased
// again must not be found "still there" by it.
func Identifiers(ctx context.Context, db Querier, m *datamap.Map, userID string) (map[string][]string, error) {
	out := map[string][]string{}
	source := m.Identity
	if source == nil && m.Accounts != nil {
		// No identity section: the account row's email is the one known.
		source = &datamap.Identity{Table: m.Accounts.Table, Key: m.Accounts.Key, Email: m.Accounts.Email}
	}
	if source == nil || source.Email == "" {
		return out, nil
	}
	cols := ByColumns(m)
	if m.Identity == nil {
		cols = nil // by: needs an identity section
	}
	if !slices.Contains(cols, source.Email) {
		cols = append([]string{source.Email}, cols...)
	}
	selected := make([]string, len(cols))
	for i, c := range cols {
		selected[i] = pgx.Identifier{c}.Sanitize() + "::text"
	}
	values := make([]*string, len(cols))
	dest := make([]any, len(cols))
	for i := range values {
		dest[i] = &values[i]
	}
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s = $1", strings.Join(selected, ", "), source.Identifier().Sanitize(), pgx.Identifier{source.Key}.Sanitize())
	err := db.QueryRow(ctx, sql, userID).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, nil
	}
	if err != nil {
		return nil, dbError("read the identifiers in", source.Table, err)
	}
	for i, v := range values {
		if v != nil && *v != "" && !(cols[i] == source.Email && strings.HasSuffix(*v, ErasedEmailSuffix)) {
			out[cols[i]] = []string{*v}
		}
	}
	return out, nil
}

// alias is the alias of the i-th table on a way to the person.
func alias(i int) string { return pgx.Identifier{fmt.Sprintf("p%d", i)}.Sanitize() }

// column is a column of the i-th table on a way to the person, qualified by its alias.
func column(i int, name string) string { return alias(i) + "." + pgx.Identifier{name}.Sanitize() }

// table quotes a schema.table name.
func table(name string) string { return pgx.Identifier(strings.SplitN(name, ".", 2)).Sanitize() }

// Error is a failed statement on the application database. Its text says
// what was being done to which table and the PostgreSQL error code (and
// constraint) only; Unwrap gives the driver's error, for classifying it.
type Error struct {
	Op    string // what was being done: "delete", "anonymize", …
	Table string // schema.table
	Err   error
}

func (e *Error) Error() string { return "appdb: " + e.Op + " " + e.Table + ": " + describe(e.Err) }

// Unwrap gives the driver's error.
func (e *Error) Unwrap() error { return e.Err }

func dbError(op, table string, err error) error { return &Error{Op: op, Table: table, Err: err} }

// describe names err's kind without its text, which may quote a value.
func describe(err error) string {
	var pg *pgconn.PgError
	var nerr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.As(err, &pg):
		s := "PostgreSQL error " + pg.Code
		if pg.ConstraintName != "" {
			s += " (constraint " + pg.ConstraintName + ")"
		}
		return s
	case pgconn.Timeout(err):
		return "database timeout"
	case errors.As(err, &nerr):
		return "network error"
	}
	return "failed (details withheld: they may name the person)"
}
