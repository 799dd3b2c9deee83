package appdb

// The application's accounts as the data map describes them: deactivate
// and restore (the status column, when the map names one), anonymize or
// delete the account row on erasure, find inactive and closed accounts
// page by page, and find and remove ID documents of closed appeal tickets.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// ErrAccountsNotConfigured means the data map has no accounts (or id_documents) section.
var ErrAccountsNotConfigured = errors.New("the data map does not describe accounts")

// ErrNoAccount means the application has no account with that id.
var ErrNoAccount = errors.New("no such account")

func col(name string) string { return pgx.Identifier{name}.Sanitize() }

// ErasedEmailSuffix ends the email placeholder EraseAccountRow writes into an
// anonymized account row: without a status column, it is what marks the
// row erased (the reserved .invalid domain receives no mail).
const ErasedEmailSuffix = "@invalid"

// notErased is the condition (with its one argument, $n) that an account
// row is not erased yet: its status is not the erased value, or, without a
// status column, its email is not an erasure's placeholder.
func notErased(a *datamap.Accounts, n int) (string, any) {
	if a.Status != "" {
		return fmt.Sprintf("%s IS DISTINCT FROM $%d", col(a.Status), n), a.Erased
	}
	return fmt.Sprintf("coalesce(%s::text, '') NOT LIKE $%d", col(a.Email), n), "%" + ErasedEmailSuffix
}

// AccountStatus is the account's status column; "" when the data map names none
// (the account exists).
func AccountStatus(ctx context.Context, db Querier, m *datamap.Map, userID string) (string, error) {
	a := m.Accounts
	if a == nil {
		return "", ErrAccountsNotConfigured
	}
	what := "''"
	if a.Status != "" {
		what = col(a.Status) + "::text"
	}
	var status string
	err := db.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s = $1", what, a.Identifier().Sanitize(), col(a.Key)), userID).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNoAccount
	}
	return status, err
}

// SetAccountStatus moves the account to status when it is in one of from (any, when
// from is empty); it reports whether the row changed. Running it twice is
// harmless. Without a status column it changes nothing: it only checks the
// account exists (the application disables it its own way).
func SetAccountStatus(ctx context.Context, db Querier, m *datamap.Map, userID, status string, from ...string) (bool, error) {
	a := m.Accounts
	if a == nil {
		return false, ErrAccountsNotConfigured
	}
	if a.Status == "" {
		_, err := AccountStatus(ctx, db, m, userID)
		return false, err
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
		if _, err := AccountStatus(ctx, db, m, userID); err != nil {
			return false, err
		}
	}
	return tag.RowsAffected() > 0, nil
}

// EraseAccountRow anonymizes the account row (email replaced by placeholder, which
// ends in ErasedEmailSuffix; status, if the map names it, set to erased) or
// deletes it, as the data map says. Safe to repeat.
func EraseAccountRow(ctx context.Context, db Querier, m *datamap.Map, userID, placeholder string) (int, error) {
	a := m.Accounts
	if a == nil {
		return 0, nil
	}
	var sql string
	args := []any{userID}
	switch {
	case a.EraseAction == "delete":
		sql = fmt.Sprintf("DELETE FROM %s WHERE %s = $1", a.Identifier().Sanitize(), col(a.Key))
	case !strings.HasSuffix(placeholder, ErasedEmailSuffix):
		return 0, fmt.Errorf("erase account row: the email placeholder must end in %s", ErasedEmailSuffix)
	default:
		// The row stays (others point at it); what identifies the person, and
		// the secrets never disclosed (e.g. a password hash), go.
		clear := ""
		for _, c := range append(slices.Clone(a.Exclude), a.Clear...) {
			clear += ", " + col(c) + " = NULL"
		}
		set := fmt.Sprintf("%s = $2", col(a.Email))
		if a.Status != "" {
			set += fmt.Sprintf(", %s = $3", col(a.Status))
		}
		// Only a row not erased yet changes: a second run changes nothing.
		cond, arg := fmt.Sprintf("%s IS DISTINCT FROM $3", col(a.Email)), any(placeholder)
		if a.Status != "" {
			cond, arg = notErased(a, 3)
		}
		sql = fmt.Sprintf("UPDATE %s SET %s%s WHERE %s = $1 AND %s", a.Identifier().Sanitize(), set, clear, col(a.Key), cond)
		args = append(args, placeholder, arg)
	}
	tag, err := db.Exec(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("erase account row: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// UnerasedAccounts counts the person's account rows an erasure has not finished
// with: any row when the data map deletes it, a row not yet in the erased
// status when it anonymizes it. The erasure's verification pass fails on
// anything above zero.
func UnerasedAccounts(ctx context.Context, db Querier, m *datamap.Map, userID string) (int, error) {
	a := m.Accounts
	if a == nil {
		return 0, nil
	}
	sql := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", a.Identifier().Sanitize(), col(a.Key))
	args := []any{userID}
	if a.EraseAction != "delete" {
		cond, arg := notErased(a, 2)
		sql += " AND " + cond
		args = append(args, arg)
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

// AccountCursor is where a keyset-paginated scan stopped.
type AccountCursor struct {
	LastActive time.Time `json:"last_active"`
	ID         string    `json:"id"`
}

// InactiveAccounts pages through active accounts whose last activity is before
// threshold, in (last_active, id) order after cursor: with an index on those
// columns only the inactive accounts are read, however many accounts there
// are. Without a status column every account not erased is looked at (a
// deactivated one included). A closed one (a closing date set) never is,
// whatever its status: the sweep's closed phase erases it after its keep,
// and no account is in both phases.
// Without a last-activity column there is no inactivity:
// ErrAccountsNotConfigured.
func InactiveAccounts(ctx context.Context, db Querier, m *datamap.Map, threshold time.Time, after AccountCursor, limit int) ([]Account, error) {
	a := m.Accounts
	if a == nil || a.LastActive == "" {
		return nil, ErrAccountsNotConfigured
	}
	active, arg := notErased(a, 1)
	if a.Status != "" {
		active, arg = col(a.Status)+" = $1", a.Active
	}
	if a.ClosedAt != "" {
		active += " AND " + col(a.ClosedAt) + " IS NULL"
	}
	sql := fmt.Sprintf(`SELECT %[1]s::text, %[2]s::text, %[3]s FROM %[4]s
		WHERE %[5]s AND %[3]s < $2 AND (%[3]s, %[1]s::text) > ($3, $4)
		ORDER BY %[3]s, %[1]s::text LIMIT $5`,
		col(a.Key), col(a.Email), col(a.LastActive), a.Identifier().Sanitize(), active)
	rows, err := db.Query(ctx, sql, arg, threshold, after.LastActive, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("find inactive accounts: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Account])
}

// ClosedAccounts pages through closed, not yet erased accounts closed before
// cutoff, in id order after afterID. Without a last-activity column their
// LastActive is zero.
func ClosedAccounts(ctx context.Context, db Querier, m *datamap.Map, cutoff time.Time, afterID string, limit int) ([]Account, error) {
	a := m.Accounts
	if a == nil || a.ClosedAt == "" {
		return nil, ErrAccountsNotConfigured
	}
	lastActive := "NULL::timestamptz"
	if a.LastActive != "" {
		lastActive = col(a.LastActive)
	}
	open, arg := notErased(a, 2)
	sql := fmt.Sprintf(`SELECT %[1]s::text, %[2]s::text, %[3]s FROM %[4]s
		WHERE %[5]s IS NOT NULL AND %[5]s < $1 AND %[6]s AND %[1]s::text > $3
		ORDER BY %[1]s::text LIMIT $4`,
		col(a.Key), col(a.Email), lastActive, a.Identifier().Sanitize(), col(a.ClosedAt), open)
	rows, err := db.Query(ctx, sql, cutoff, arg, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("find closed accounts: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Account, error) {
		var acc Account
		var seen *time.Time
		if err := row.Scan(&acc.ID, &acc.Email, &seen); err != nil {
			return acc, err
		}
		if seen != nil {
			acc.LastActive = *seen
		}
		return acc, nil
	})
}

// AccountLastActive is the account's last activity, and its status ("" without a
// status column); ErrAccountsNotConfigured without a last-activity column.
func AccountLastActive(ctx context.Context, db Querier, m *datamap.Map, userID string) (time.Time, string, error) {
	a := m.Accounts
	if a == nil || a.LastActive == "" {
		return time.Time{}, "", ErrAccountsNotConfigured
	}
	what := "''"
	if a.Status != "" {
		what = col(a.Status) + "::text"
	}
	var t time.Time
	var status string
	err := db.QueryRow(ctx, fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s = $1", col(a.LastActive), what, a.Identifier().Sanitize(), col(a.Key)), userID).Scan(&t, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, "", ErrNoAccount
	}
	return t, status, err
}

// IDDocument is one ID document.
type IDDocument struct {
	ID     string
	Object string
}

// TicketIDDocuments lists the ID documents of one appeal ticket.
func TicketIDDocuments(ctx context.Context, db Querier, m *datamap.Map, ticket string) ([]IDDocument, error) {
	d := m.IDDocuments
	if d == nil {
		return nil, ErrAccountsNotConfigured
	}
	rows, err := db.Query(ctx, fmt.Sprintf("SELECT %s::text, %s::text FROM %s WHERE %s::text = $1 ORDER BY 1",
		col(d.Key), col(d.Object), d.Identifier().Sanitize(), col(d.Ticket)), ticket)
	if err != nil {
		return nil, fmt.Errorf("find ID documents: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[IDDocument])
}

// OverdueIDDocuments lists up to limit ID documents whose ticket closed before cutoff.
func OverdueIDDocuments(ctx context.Context, db Querier, m *datamap.Map, cutoff time.Time, limit int) ([]IDDocument, error) {
	d := m.IDDocuments
	if d == nil {
		return nil, ErrAccountsNotConfigured
	}
	rows, err := db.Query(ctx, fmt.Sprintf(`SELECT doc.%s::text, doc.%s::text FROM %s doc JOIN %s t ON t.%s = doc.%s
		WHERE t.%s IS NOT NULL AND t.%s < $1 ORDER BY 1 LIMIT $2`,
		col(d.Key), col(d.Object), d.Identifier().Sanitize(), d.TicketsIdentifier().Sanitize(), col(d.TicketKey), col(d.Ticket),
		col(d.TicketClosed), col(d.TicketClosed)), cutoff, limit)
	if err != nil {
		return nil, fmt.Errorf("find overdue ID documents: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[IDDocument])
}

// DeleteIDDocuments removes the rows of the given ID documents.
func DeleteIDDocuments(ctx context.Context, db Querier, m *datamap.Map, ids []string) (int, error) {
	d := m.IDDocuments
	if d == nil {
		return 0, ErrAccountsNotConfigured
	}
	tag, err := db.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s::text = ANY($1)", d.Identifier().Sanitize(), col(d.Key)), ids)
	if err != nil {
		return 0, fmt.Errorf("delete ID documents: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// TicketClosedAt is when the ticket was closed (zero while open).
func TicketClosedAt(ctx context.Context, db Querier, m *datamap.Map, ticket string) (time.Time, error) {
	d := m.IDDocuments
	if d == nil {
		return time.Time{}, ErrAccountsNotConfigured
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
