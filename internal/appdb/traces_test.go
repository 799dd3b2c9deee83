package appdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
)

// bookshop seeds the second application and returns its pool and two
// customers: the one erased and a bystander.
func bookshop(t *testing.T) (*pgxpool.Pool, shopapp.Customer, shopapp.Customer) {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	cs, err := shopapp.Seed(context.Background(), pool, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	return pool, cs[0], cs[1]
}

// eraseIn erases c with map yaml as an erasure does, and returns the
// person it looked for (identifiers read before the erasure).
func eraseIn(t *testing.T, pool *pgxpool.Pool, yaml []byte, c shopapp.Customer) (*datamap.Map, appdb.Person, []appdb.TableResult) {
	t.Helper()
	ctx := context.Background()
	m, err := datamap.Parse(yaml)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := appdb.Identifiers(ctx, pool, m, c.UserID())
	if err != nil {
		t.Fatal(err)
	}
	if got := ids["email"]; len(got) != 1 || got[0] != c.Email {
		t.Fatalf("identifiers read before the erasure: %d emails, want the customer's", len(got))
	}
	person := appdb.Person{UserID: c.UserID(), Identifiers: ids}
	order, err := appdb.EraseOrder(ctx, pool, m)
	if err != nil {
		t.Fatal(err)
	}
	var res []appdb.TableResult
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		res, err = appdb.Erase(ctx, tx, m, order, person, "p_pseudonym-of-"+c.UserID(), time.Now())
		return err
	})
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	return m, person, res
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestATableKeyedByEmailIsErasedWhateverTheCaseOfTheAddress(t *testing.T) {
	pool, c, other := bookshop(t)
	_, person, res := eraseIn(t, pool, shopapp.DataMapYAML(), c)

	if n := count(t, pool, `SELECT count(*) FROM shop.newsletter_signups WHERE lower(address) = lower($1)`, c.Email); n != 0 {
		t.Errorf("the newsletter still holds the person's address (%d rows): a table keyed by email was not matched", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM shop.newsletter_signups WHERE address = $1`, other.Signup); n != 1 {
		t.Errorf("the bystander's sign-up is gone (%d rows)", n)
	}
	for _, r := range res {
		if r.Table == "shop.newsletter_signups" && (r.Action != appdb.Deleted || r.Rows != 1) {
			t.Errorf("result for the newsletter: %+v, want 1 row deleted", r)
		}
	}
	// Held: the recent order and its lines; the seven-year-old order went
	// with its lines (the hold of 72 months had ended).
	if n := count(t, pool, `SELECT count(*) FROM shop.orders WHERE customer_id = $1`, c.ID); n != 1 {
		t.Errorf("orders kept: %d, want the recent one", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM shop.order_lines l JOIN shop.orders o USING (order_no) WHERE o.customer_id = $1`, c.ID); n != 1 {
		t.Errorf("order lines kept: %d, want the recent order's", n)
	}
	// The customer row stays, anonymized: its NOT NULL UNIQUE email holds the pseudonym.
	var email, name string
	if err := pool.QueryRow(context.Background(), `SELECT email, full_name FROM shop.customers WHERE id = $1`, c.ID).Scan(&email, &name); err != nil {
		t.Fatal(err)
	}
	if email == c.Email || strings.Contains(email, "@") || name != "Former customer" {
		t.Errorf("customer row after the erasure: email %q, name %q", email, name)
	}

	ctx := context.Background()
	m, _ := shopapp.DataMap()
	if left, err := appdb.Remaining(ctx, pool, m, person, "p_pseudonym-of-"+c.UserID(), time.Now()); err != nil || len(left) != 0 {
		t.Errorf("the map's own verification: %+v, %v", left, err)
	}
	traces, err := appdb.Traces(ctx, pool, m, person, appdb.Known{ProcessorIDs: map[string]string{"helpdesk_id": c.Helpdesk}})
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != 0 {
		t.Errorf("traces after a correct erasure: %+v, want none (held rows and the anonymized row's id are kept on purpose)", traces)
	}
	// Searching the bystander finds them everywhere: the search is real.
	otherIDs, err := appdb.Identifiers(ctx, pool, m, other.UserID())
	if err != nil {
		t.Fatal(err)
	}
	traces, err = appdb.Traces(ctx, pool, m, appdb.Person{UserID: other.UserID(), Identifiers: otherIDs}, appdb.Known{ProcessorIDs: map[string]string{"helpdesk_id": other.Helpdesk}})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, tr := range traces {
		found[tr.Table+"."+tr.Column+" "+tr.What] = true
	}
	for _, want := range []string{
		"shop.newsletter_signups.address email address",
		"shop.customers.email email address",
		"shop.wishlist_items.note email address",
		"shop.customers.helpdesk_ref id at helpdesk",
		"shop.addresses.customer_id user id",
		"shop.login_events.customer_id user id",
		"shop.book_reviews.customer_id user id",
	} {
		if !found[want] {
			t.Errorf("the bystander's %s was not found: %v", want, traces)
		}
	}
}

func TestAMisKeyedTableCannotPassForErased(t *testing.T) {
	pool, c, _ := bookshop(t)
	m, person, res := eraseIn(t, pool, shopapp.MisKeyedDataMapYAML(), c)
	for _, r := range res {
		if r.Table == "shop.newsletter_signups" && r.Rows != 0 {
			t.Fatalf("the mis-keyed table matched %d rows; the test needs a map that matches nothing", r.Rows)
		}
	}
	ctx := context.Background()
	left, err := appdb.Remaining(ctx, pool, m, person, "p_pseudonym-of-"+c.UserID(), time.Now())
	if err != nil || len(left) != 0 {
		t.Fatalf("the map's own selectors: %+v, %v (they re-read with the same mistake and find nothing)", left, err)
	}
	traces, err := appdb.Traces(ctx, pool, m, person, appdb.Known{})
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != 1 || traces[0].Table != "shop.newsletter_signups" || traces[0].Column != "address" || traces[0].What != "email address" || traces[0].Rows != 1 {
		t.Fatalf("traces: %+v, want the newsletter's address column", traces)
	}
}

func TestTracesFindTheUserIDInATableTheMapForgot(t *testing.T) {
	pool, c, _ := bookshop(t)
	yaml := strings.Replace(string(shopapp.DataMapYAML()), "  - {name: shop.login_events, key: customer_id, action: delete, label: your sign-in history}\n", "", 1)
	if yaml == string(shopapp.DataMapYAML()) {
		t.Fatal("the map no longer lists shop.login_events as the test expects")
	}
	m, person, _ := eraseIn(t, pool, []byte(yaml), c)
	traces, err := appdb.Traces(context.Background(), pool, m, person, appdb.Known{})
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != 1 || traces[0].Table != "shop.login_events" || traces[0].Column != "customer_id" || traces[0].What != "user id" || traces[0].Rows != 2 {
		t.Fatalf("traces: %+v, want the two sign-in rows", traces)
	}
	for _, tr := range traces {
		if strings.Contains(tr.Table+tr.Column+tr.What, c.UserID()) {
			t.Fatal("a trace carries the user id")
		}
	}
}

// The search reaches what the map's own selectors cannot: a held table's
// rows whose key is NULL (the hold claims none of them), an id kept in a
// text column, an address the person gave only in their request; and it
// leaves a column the map names in ignore, with a reason.
func TestTracesSearchWhatAHoldCannotClaimAndLeaveWhatTheMapIgnores(t *testing.T) {
	pool, c, other := bookshop(t)
	m, person, _ := eraseIn(t, pool, shopapp.DataMapYAML(), c)
	ctx := context.Background()
	const oldAddress = "Old.Address@Example.org"
	for _, sql := range []string{
		`ALTER TABLE shop.orders ALTER COLUMN customer_id DROP NOT NULL, ADD COLUMN contact text`,
		`CREATE TABLE shop.support_tickets (id serial PRIMARY KEY, customer_id text, subject text)`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	seed := []struct {
		sql  string
		args []any
	}{
		// A guest order: no customer, the person's address as its contact.
		{`INSERT INTO shop.orders (customer_id, placed_at, total, contact) VALUES (NULL, now(), 12, upper($1))`, []any{c.Email}},
		{`INSERT INTO shop.support_tickets (customer_id, subject) VALUES ($1, 'late delivery')`, []any{c.UserID()}},
		{`INSERT INTO shop.book_reviews (customer_id, reviewer_name, isbn, body) VALUES ($1, 'B', '978', $2)`, []any{other.ID, "lent to " + oldAddress}},
	}
	for _, s := range seed {
		if _, err := pool.Exec(ctx, s.sql, s.args...); err != nil {
			t.Fatal(err)
		}
	}
	found := func(m *datamap.Map) map[string]int {
		t.Helper()
		traces, err := appdb.Traces(ctx, pool, m, person, appdb.Known{Emails: []string{oldAddress}})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, tr := range traces {
			out[tr.Table+"."+tr.Column+" "+tr.What] = tr.Rows
		}
		return out
	}
	got := found(m)
	for want, rows := range map[string]int{
		"shop.orders.contact email address":        1,
		"shop.support_tickets.customer_id user id": 1,
		"shop.book_reviews.body email address":     1,
	} {
		if got[want] != rows {
			t.Errorf("%s: %d rows, want %d (all: %v)", want, got[want], rows, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("traces: %v, want exactly the three planted", got)
	}

	ignoring, err := datamap.Parse([]byte(string(shopapp.DataMapYAML()) +
		"  - {table: shop.support_tickets, column: customer_id, reason: \"ticket numbers of the old helpdesk, not customers\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got = found(ignoring)
	if _, ok := got["shop.support_tickets.customer_id user id"]; ok || len(got) != 2 {
		t.Errorf("with the column ignored: %v, want the other two only", got)
	}
}
