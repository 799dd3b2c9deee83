package appdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// usersApp is an application whose accounts have neither a status column
// nor a last activity: only an email, a phone and a closing date.
func usersApp(t *testing.T, yaml string) (*pgxpool.Pool, *datamap.Map) {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app;
		CREATE TABLE app.users (id text PRIMARY KEY, email text NOT NULL UNIQUE, phone text, closed_at timestamptz, seen timestamptz NOT NULL DEFAULT now());
		INSERT INTO app.users (id, email, phone, closed_at, seen) VALUES
			('u-1', 'ada@example.com', '+4930901820', NULL, now() - interval '3 years'),
			('u-2', 'bob@example.com', NULL, now() - interval '90 days', now() - interval '3 years'),
			('u-3', 'cy@example.com', NULL, now() - interval '90 days', now())`); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte("version: 1\n" + yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pool, m
}

const noStatus = "accounts: {table: app.users, key: id, email: email, closed_at: closed_at, erase_action: anonymize, clear: [phone]}\n"

func TestWithoutAStatusColumnNothingIsFlippedAndTheEmailMarksTheErasure(t *testing.T) {
	ctx := context.Background()
	pool, m := usersApp(t, noStatus)

	// Deactivate and restore: the account must exist; nothing changes.
	for _, to := range []string{"deactivated", "active"} {
		changed, err := appdb.SetAccountStatus(ctx, pool, m, "u-1", to)
		if err != nil || changed {
			t.Fatalf("set %s: changed %v, %v", to, changed, err)
		}
	}
	if _, err := appdb.SetAccountStatus(ctx, pool, m, "u-9", "deactivated"); !errors.Is(err, appdb.ErrNoAccount) {
		t.Fatalf("an unknown account: %v, want ErrNoAccount", err)
	}
	if s, err := appdb.AccountStatus(ctx, pool, m, "u-1"); err != nil || s != "" {
		t.Fatalf("status %q, %v", s, err)
	}

	// Erasure anonymizes the row once; the placeholder says it is erased.
	if n, err := appdb.UnerasedAccounts(ctx, pool, m, "u-1"); err != nil || n != 1 {
		t.Fatalf("before the erasure: %d unerased (%v)", n, err)
	}
	placeholder := "erased+x1@invalid"
	for i, want := range []int{1, 0} {
		if n, err := appdb.EraseAccountRow(ctx, pool, m, "u-1", placeholder); err != nil || n != want {
			t.Fatalf("erase %d: %d rows (%v), want %d", i+1, n, err, want)
		}
	}
	var email string
	var phone *string
	if err := pool.QueryRow(ctx, `SELECT email, phone FROM app.users WHERE id = 'u-1'`).Scan(&email, &phone); err != nil || email != placeholder || phone != nil {
		t.Fatalf("the anonymized row: %q, %v (%v)", email, phone, err)
	}
	if n, err := appdb.UnerasedAccounts(ctx, pool, m, "u-1"); err != nil || n != 0 {
		t.Fatalf("after the erasure: %d unerased (%v)", n, err)
	}
	if _, err := appdb.EraseAccountRow(ctx, pool, m, "u-2", "erased+x2@example.com"); err == nil || !strings.Contains(err.Error(), appdb.ErasedEmailSuffix) {
		t.Fatalf("a placeholder that would not mark the row: %v", err)
	}

	// No last activity: no inactivity; closed accounts by closed_at, the erased left out.
	if _, err := appdb.InactiveAccounts(ctx, pool, m, time.Now(), appdb.AccountCursor{}, 10); !errors.Is(err, appdb.ErrAccountsNotConfigured) {
		t.Fatalf("inactive without last_active: %v", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE app.users SET closed_at = now() - interval '90 days' WHERE id = 'u-1'`); err != nil {
		t.Fatal(err)
	}
	closed, err := appdb.ClosedAccounts(ctx, pool, m, time.Now().AddDate(0, 0, -30), "", 10)
	if err != nil || len(closed) != 2 || closed[0].ID != "u-2" || closed[1].ID != "u-3" || !closed[0].LastActive.IsZero() {
		t.Fatalf("closed accounts %+v (%v): want u-2 and u-3, not the erased u-1", closed, err)
	}
}

// With a last activity but no status, the sweep looks at every account not
// erased.
func TestWithoutAStatusColumnTheInactiveAreFoundByTheirLastActivity(t *testing.T) {
	ctx := context.Background()
	pool, m := usersApp(t, "accounts: {table: app.users, key: id, email: email, last_active: seen, erase_action: anonymize}\n")
	if _, err := appdb.EraseAccountRow(ctx, pool, m, "u-2", "erased+x2@invalid"); err != nil {
		t.Fatal(err)
	}
	list, err := appdb.InactiveAccounts(ctx, pool, m, time.Now().AddDate(-2, 0, 0), appdb.AccountCursor{}, 10)
	if err != nil || len(list) != 1 || list[0].ID != "u-1" || list[0].Email != "ada@example.com" {
		t.Fatalf("inactive %+v (%v): want u-1 only (u-2 is erased, u-3 active)", list, err)
	}
	if seen, status, err := appdb.AccountLastActive(ctx, pool, m, "u-1"); err != nil || status != "" || seen.After(time.Now().AddDate(-2, 0, 0)) {
		t.Fatalf("last active %v %q (%v)", seen, status, err)
	}
}

// Without a status column, an account both inactive and closed is the
// closed phase's only: the sweep never puts one person in two pages.
func TestWithoutAStatusColumnAClosedAccountIsNotAlsoInactive(t *testing.T) {
	ctx := context.Background()
	pool, m := usersApp(t, "accounts: {table: app.users, key: id, email: email, last_active: seen, closed_at: closed_at, erase_action: anonymize}\n")
	inactive, err := appdb.InactiveAccounts(ctx, pool, m, time.Now().AddDate(-2, 0, 0), appdb.AccountCursor{}, 10)
	if err != nil || len(inactive) != 1 || inactive[0].ID != "u-1" {
		t.Fatalf("inactive %+v (%v): want u-1 only (u-2, inactive too, is closed)", inactive, err)
	}
	closed, err := appdb.ClosedAccounts(ctx, pool, m, time.Now().AddDate(0, 0, -30), "", 10)
	if err != nil || len(closed) != 2 || closed[0].ID != "u-2" {
		t.Fatalf("closed %+v (%v): want u-2 and u-3", closed, err)
	}
}
