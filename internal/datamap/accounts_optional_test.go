package datamap_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// An application whose accounts have no status column and no last
// activity can still map them: both are optional, their values with them.
func TestAccountsWithoutStatusOrLastActiveValidate(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app;
		CREATE TABLE app.users (id bigint PRIMARY KEY, email text NOT NULL, phone text, closed_at timestamptz)`); err != nil {
		t.Fatal(err)
	}
	for name, yaml := range map[string]string{
		"neither":       "accounts: {table: app.users, key: id, email: email, erase_action: anonymize, clear: [phone]}\n",
		"closed_at too": "accounts: {table: app.users, key: id, email: email, closed_at: closed_at, erase_action: delete}\n",
	} {
		m, err := datamap.Parse([]byte("version: 1\n" + yaml))
		if err != nil {
			t.Fatalf("%s: refused: %v", name, err)
		}
		if a := m.Accounts; a.Status != "" || a.LastActive != "" {
			t.Fatalf("%s: %+v", name, a)
		}
		if err := m.Validate(ctx, pool); err != nil {
			t.Errorf("%s: the live schema refused it: %v", name, err)
		}
	}
	// A status column that is named is still checked, with its values.
	for name, c := range map[string]struct{ yaml, want string }{
		"status without values": {"accounts: {table: app.users, key: id, email: email, status: state, erase_action: delete}\n",
			"accounts: status state needs its three values: active, deactivated and erased"},
		"values without status": {"accounts: {table: app.users, key: id, email: email, active: a, deactivated: d, erased: e, erase_action: delete}\n",
			"accounts: active, deactivated and erased are values of the status column"},
		"bad last_active": {"accounts: {table: app.users, key: id, email: email, last_active: 'Seen At', erase_action: delete}\n", `"Seen At": want a column name`},
	} {
		if _, err := datamap.Parse([]byte("version: 1\n" + c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
	m, err := datamap.Parse([]byte("version: 1\naccounts: {table: app.users, key: id, email: email, status: state, active: a, deactivated: d, erased: e, last_active: seen, erase_action: delete}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err == nil || !strings.Contains(err.Error(), "table app.users has no column state") || !strings.Contains(err.Error(), "table app.users has no column seen") {
		t.Errorf("named columns not checked: %v", err)
	}
}

// Anonymizing a NOT NULL column with "null" is refused with what to write
// instead.
func TestANotNullColumnSetNullSaysWhatToUseInstead(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app; CREATE TABLE app.reviews (user_id text, author text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte("version: 1\ntables:\n  - {name: app.reviews, key: user_id, action: anonymize, anonymize: [{column: author, set: 'null'}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Validate(ctx, pool)
	for _, want := range []string{"column author is NOT NULL, so anonymize cannot set it null", "set: hash", "set: fixed with a value"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
