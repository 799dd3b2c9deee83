// Package accounts works on the application's accounts as its data map
// describes them: deactivate and restore (the status column), anonymize or
// delete the account row on erasure, find inactive and closed accounts page
// by page, and find and remove ID documents of closed appeal tickets. SQL is
// built from quoted identifiers and parameters only.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// DB is what the package needs of a database: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNotConfigured means the data map has no accounts (or id_documents) section.
var ErrNotConfigured = errors.New("the data map does not describe accounts")

// ErrNoAccount means the application has no account with that id.
var ErrNoAccount = errors.New("no such account")

func col(name string) string { return pgx.Identifier{name}.Sanitize() }

// Status is the account's status column.
func Status(ctx context.Context, db DB, m *datamap.Map, userID string) (string, error) {
	a := m.Accounts
	if a == nil {
		return "", ErrNotConfigured
	}
	var status string
	err := db.QueryRow(ctx, fmt.Sprintf("SELECT %s::text FROM %s WHERE %s = $1", col(a.Status), a.Identifier().Sanitize(), col(a.Key)), userID).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNoAccount
	}
	return status, err
}

// SetStatus moves the account to status when it is in one of from (any, when
// from is empty); it reports whether the row changed. Running it twice is harmless.
func SetStatus(ctx context.Context, db DB, m *datamap.Map, userID, status string, from ...string) (bool, error) {
	a := m.Accounts
	if a == nil {
		return false, ErrNotConfigured
	}
	sql := fmt.Sprintf("UPDATE %s SET %s = $2 WHERE %s = $1 AND %s IS DISTINCT FROM $2", a.Identifier().Sanitize(), col(a.Status), col(a.Key), col(a.Status))
	args := []any{userID, status}
	if len(from) > 0 {
		sql += fmt.Sprintf(" AND %s = ANY($3)", col(a.Status))
		args = append(args, from)
	}
	tag, err := db.Exec(ctx, sql, args...)
	if err != nil {
		return false, fmt.Errorf("set account status: %w", err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := Status(ctx, db, m, userID); err != nil {
			return false, err
		}
	}
	return tag.RowsAffected() > 0, nil
}

// EraseRow anonymizes the account row (email replaced by placeholder, status
// set to erased) or deletes it, as the data map says. Safe to repeat.
func EraseRow(ctx context.Context, db DB, m *datamap.Map, userID, placeholder string) (int, error) {
	a := m.Accounts
	if a == nil {
		return 0, nil
	}
	var sql string
	args := []any{userID}
	if a.EraseAction == "delete" {
		sql = fmt.Sprintf("DELETE FROM %s WHERE %s = $1", a.Identifier().Sanitize(), col(a.Key))
	} else {
		// The row stays (others point at it); what identifies the person, and
		// the secrets never disclosed (e.g. a password hash), go.
		clear := ""
		for _, c := range append(slices.Clone(a.Exclude), a.Clear...) {
			clear += ", " + col(c) + " = NULL"
		}
		sql = fmt.Sprintf("UPDATE %s SET %s = $2, %s = $3%s WHERE %s = $1 AND %s IS DISTINCT FROM $3",
			a.Identifier().Sanitize(), col(a.Email), col(a.Status), clear, col(a.Key), col(a.Status))
		args = append(args, placeholder, a.Erased)
	}
	tag, err := db.Exec(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("erase account row: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Unerased counts the person's account rows an erasure has not finished
// with: any row when the data map deletes it, a row not yet in the erased
// status when it anonymizes it. The erasure's verification pass fails on
// anything above zero.
func Unerased(ctx context.Context, db DB, m *datamap.Map, userID string) (int, error) {
	a := m.Accounts
	if a == nil {
		return 0, nil
	}
	sql := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", a.Identifier().Sanitize(), col(a.Key))
	args := []any{userID}
	if a.EraseAction != "delete" {
		sql += fmt.Sprintf(" AND %s IS DISTINCT FROM $2", col(a.Status))
		args = append(args, a.Erased)
	}
	var n int
	if err := db.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("check the account row: %w", err)
	}
	return n, nil
}

// Account is one account as a sweep sees it.
type Account struct {
	ID         string
	Email      string
	LastActive time.Time
}

// Cursor is where a keyset-paginated scan stopped.
type Cursor struct {
	LastActive time.Time `json:"last_active"`
	ID         string    `json:"id"`
}

// InactiveSince pages through active accounts whose last activity is before
// threshold, in (last_active, id) order after cursor: with an index on those
// columns only the inactive accounts are read, however many accounts there are.
func InactiveSince(ctx context.Context, db DB, m *datamap.Map, threshold time.Time, after Cursor, limit int) ([]Account, error) {
	a := m.Accounts
	if a == nil {
		return nil, ErrNotConfigured
	}
	sql := fmt.Sprintf(`SELECT %[1]s::text, %[2]s::text, %[3]s FROM %[4]s
		WHERE %[5]s = $1 AND %[3]s < $2 AND (%[3]s, %[1]s::text) > ($3, $4)
		ORDER BY %[3]s, %[1]s::text LIMIT $5`,
		col(a.Key), col(a.Email), col(a.LastActive), a.Identifier().Sanitize(), col(a.Status))
	rows, err := db.Query(ctx, sql, a.Active, threshold, after.LastActive, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("find inactive accounts: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Account])
}

// ClosedBefore pages through closed, not yet erased accounts closed before
// cutoff, in id order after afterID.
func ClosedBefore(ctx context.Context, db DB, m *datamap.Map, cutoff time.Time, afterID string, limit int) ([]Account, error) {
	a := m.Accounts
	if a == nil || a.ClosedAt == "" {
		return nil, ErrNotConfigured
	}
	sql := fmt.Sprintf(`SELECT %[1]s::text, %[2]s::text, %[3]s FROM %[4]s
		WHERE %[5]s IS NOT NULL AND %[5]s < $1 AND %[6]s IS DISTINCT FROM $2 AND %[1]s::text > $3
		ORDER BY %[1]s::text LIMIT $4`,
		col(a.Key), col(a.Email), col(a.LastActive), a.Identifier().Sanitize(), col(a.ClosedAt), col(a.Status))
	rows, err := db.Query(ctx, sql, cutoff, a.Erased, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("find closed accounts: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Account])
}

// LastActive is the account's last activity.
func LastActive(ctx context.Context, db DB, m *datamap.Map, userID string) (time.Time, string, error) {
	a := m.Accounts
	if a == nil {
		return time.Time{}, "", ErrNotConfigured
	}
	var t time.Time
	var status string
	err := db.QueryRow(ctx, fmt.Sprintf("SELECT %s, %s::text FROM %s WHERE %s = $1", col(a.LastActive), col(a.Status), a.Identifier().Sanitize(), col(a.Key)), userID).Scan(&t, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, "", ErrNoAccount
	}
	return t, status, err
}

// Document is one ID document.
type Document struct {
	ID     string
	Object string
}

// DocumentsOfTicket lists the ID documents of one appeal ticket.
func DocumentsOfTicket(ctx context.Context, db DB, m *datamap.Map, ticket string) ([]Document, error) {
	d := m.IDDocuments
	if d == nil {
		return nil, ErrNotConfigured
	}
	rows, err := db.Query(ctx, fmt.Sprintf("SELECT %s::text, %s::text FROM %s WHERE %s::text = $1 ORDER BY 1",
		col(d.Key), col(d.Object), d.Identifier().Sanitize(), col(d.Ticket)), ticket)
	if err != nil {
		return nil, fmt.Errorf("find ID documents: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Document])
}

// OverdueDocuments lists up to limit ID documents whose ticket closed before cutoff.
func OverdueDocuments(ctx context.Context, db DB, m *datamap.Map, cutoff time.Time, limit int) ([]Document, error) {
	d := m.IDDocuments
	if d == nil {
		return nil, ErrNotConfigured
	}
	rows, err := db.Query(ctx, fmt.Sprintf(`SELECT doc.%s::text, doc.%s::text FROM %s doc JOIN %s t ON t.%s = doc.%s
		WHERE t.%s IS NOT NULL AND t.%s < $1 ORDER BY 1 LIMIT $2`,
		col(d.Key), col(d.Object), d.Identifier().Sanitize(), d.TicketsIdentifier().Sanitize(), col(d.TicketKey), col(d.Ticket),
		col(d.TicketClosed), col(d.TicketClosed)), cutoff, limit)
	if err != nil {
		return nil, fmt.Errorf("find overdue ID documents: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Document])
}

// DeleteDocuments removes the rows of the given ID documents.
func DeleteDocuments(ctx context.Context, db DB, m *datamap.Map, ids []string) (int, error) {
	d := m.IDDocuments
	if d == nil {
		return 0, ErrNotConfigured
	}
	tag, err := db.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s::text = ANY($1)", d.Identifier().Sanitize(), col(d.Key)), ids)
	if err != nil {
		return 0, fmt.Errorf("delete ID documents: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// TicketClosedAt is when the ticket was closed (zero while open).
func TicketClosedAt(ctx context.Context, db DB, m *datamap.Map, ticket string) (time.Time, error) {
	d := m.IDDocuments
	if d == nil {
		return time.Time{}, ErrNotConfigured
	}
	var at *time.Time
	err := db.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s::text = $1", col(d.TicketClosed), d.TicketsIdentifier().Sanitize(), col(d.TicketKey)), ticket).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, ErrNoAccount
	}
	if err != nil || at == nil {
		return time.Time{}, err
	}
	return *at, nil
}
