package datamap_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
)

// shopDB is a fresh database with the bookshop (shopapp) and two customers.
func shopDB(t *testing.T) (*pgxpool.Pool, []shopapp.Customer) {
	t.Helper()
	db, _ := pgtest.NewPool(t)
	cs, err := shopapp.Seed(context.Background(), db, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	return db, cs
}

// shopMap is the shop's map with edit applied to its text (which must change it).
func shopMap(t *testing.T, edit func(string) string) []byte {
	t.Helper()
	orig := string(shopapp.DataMapYAML())
	out := edit(orig)
	if out == orig {
		t.Fatal("the edit changed nothing in the shop's map")
	}
	return []byte(out)
}

const loginEventsLine = "  - {name: shop.login_events, key: customer_id, action: delete, label: your sign-in history}\n"

func withoutLoginEvents(s string) string { return strings.Replace(s, loginEventsLine, "", 1) }

// Discover, on a schema without a map, finds every table holding the
// shop's customer by the shortest way (a key before a via, email for the
// table with no foreign key), flags the catalogue as holding nothing
// personal, and drafts a map that parses, validates and passes check.
func TestDataMapDiscoverFindsEveryTableHoldingTheCustomerAndDraftsAMap(t *testing.T) {
	ctx := context.Background()
	db, customers := shopDB(t)
	d, err := datamap.Discover(ctx, db, datamap.DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if id := d.Identity; id.Table != "shop.customers" || id.Key != "id" || id.Email != "email" || !strings.HasPrefix(id.How, "guessed") {
		t.Errorf("identity: %+v", id)
	}
	ways := map[string]string{}
	for _, h := range d.Holders {
		ways[h.Table] = h.Key + "|" + h.By
		if h.Via != nil {
			ways[h.Table] = "via " + h.Via.Column + "→" + h.Via.Parent + "." + h.Via.ParentKey
		}
	}
	want := map[string]string{
		"shop.customers":          "id|",
		"shop.addresses":          "customer_id|",
		"shop.orders":             "customer_id|",
		"shop.order_lines":        "via order_no→shop.orders.order_no",
		"shop.newsletter_signups": "address|email",
		"shop.wishlists":          "customer_id|",
		"shop.wishlist_items":     "via wishlist_id→shop.wishlists.id",
		"shop.book_reviews":       "customer_id|",
		"shop.login_events":       "customer_id|",
	}
	for table, way := range want {
		if ways[table] != way {
			t.Errorf("%s: way %q, want %q", table, ways[table], way)
		}
	}
	if len(ways) != len(want) {
		t.Errorf("holders %v, want exactly %v", ways, want)
	}
	if last := d.Holders[len(d.Holders)-1].Table; last != "shop.customers" {
		t.Errorf("the identity table comes last (parents after children), got %s", last)
	}
	if !slices.Equal(d.NoPersonal, []string{"shop.books"}) || len(d.Unreached) != 0 {
		t.Errorf("no personal data: %v, unreached %v; want only shop.books", d.NoPersonal, d.Unreached)
	}
	personal := func(table, column string) string {
		for _, p := range d.Personal[table] {
			if p.Column == column {
				return p.Why
			}
		}
		return ""
	}
	for _, c := range []struct{ table, column, why string }{
		{"shop.login_events", "ip", "an IP address"},
		{"shop.customers", "email", "an email address"},
		{"shop.customers", "phone", "a phone number"},
		{"shop.customers", "full_name", "a person's name"},
		{"shop.addresses", "postcode", "a postal address"},
		{"shop.newsletter_signups", "address", "an email address"},
		{"shop.order_lines", "gift_note", "free text, which may name or describe the person"},
		{"shop.book_reviews", "body", "free text, which may name or describe the person"},
	} {
		if got := personal(c.table, c.column); got != c.why {
			t.Errorf("%s.%s: %q, want %q", c.table, c.column, got, c.why)
		}
	}
	for _, c := range []struct{ table, column string }{{"shop.books", "title"}, {"shop.orders", "placed_at"}, {"shop.login_events", "at"}, {"shop.customers", "id"}} {
		if got := personal(c.table, c.column); got != "" {
			t.Errorf("%s.%s flagged as %q", c.table, c.column, got)
		}
	}

	var report bytes.Buffer
	if err := d.WriteReport(&report); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Tables holding the person (9)", "shop.newsletter_signups      key: address, by: email", "ip (inet): an IP address",
		"No personal data found (no way to the person, no column that looks personal): shop.books"} {
		if !strings.Contains(report.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, report.String())
		}
	}

	draft := d.Draft("database shop")
	for _, line := range strings.Split(string(draft), "\n") {
		if strings.HasPrefix(line, "  - {name:") && !strings.Contains(line, "action: delete}   # review: ") {
			t.Errorf("draft line without action delete and a review comment: %s", line)
		}
	}
	if !strings.Contains(string(draft), "  - {name: shop.newsletter_signups, key: address, by: email, action: delete}") ||
		!strings.Contains(string(draft), "ignore:\n  - {table: shop.books, reason: ") {
		t.Errorf("draft:\n%s", draft)
	}
	m, err := datamap.Parse(draft)
	if err != nil {
		t.Fatalf("the draft does not parse: %v\n%s", err, draft)
	}
	if err := m.Validate(ctx, db); err != nil {
		t.Fatalf("the draft does not validate against its own database: %v\n%s", err, draft)
	}
	r, err := datamap.CheckMap(ctx, db, draft)
	if err != nil || r.Problems() != 0 {
		t.Fatalf("check on the draft: %+v %v", r, err)
	}
	// Discover reads the schema, never a row.
	for _, c := range customers {
		for _, v := range []string{c.Email, c.Signup, c.Name, c.Phone, c.Helpdesk} {
			if strings.Contains(report.String(), v) || strings.Contains(string(draft), v) {
				t.Errorf("a customer's %q is in discover's output", v)
			}
		}
	}
}

// With a map, discover names what it leaves out, table by table, and why.
func TestDataMapDiscoverWithAMapNamesWhatItLeavesOut(t *testing.T) {
	ctx := context.Background()
	db, _ := shopDB(t)
	m, err := datamap.Parse(shopMap(t, withoutLoginEvents))
	if err != nil {
		t.Fatal(err)
	}
	d, err := datamap.Discover(ctx, db, datamap.DiscoverOptions{Map: m})
	if err != nil {
		t.Fatal(err)
	}
	gaps := map[string][]string{}
	for _, g := range d.Gaps() {
		gaps[g.Table] = g.Findings
	}
	login := strings.Join(gaps["shop.login_events"], "\n")
	if !strings.Contains(login, "neither in tables nor in ignore: map it (key: customer_id)") || !strings.Contains(login, "column ip (inet) looks like an IP address") {
		t.Errorf("shop.login_events: %q", login)
	}
	if reviews := strings.Join(gaps["shop.book_reviews"], "\n"); !strings.Contains(reviews, "column body (text) looks like free text") || !strings.Contains(reviews, "anonymize leaves it") {
		t.Errorf("shop.book_reviews: %q", reviews)
	}
	for _, covered := range []string{"shop.customers", "shop.books", "shop.orders", "shop.newsletter_signups"} {
		if g, ok := gaps[covered]; ok {
			t.Errorf("%s is covered, yet flagged: %v", covered, g)
		}
	}
	// A demo schema that its map covers has nothing but the review bodies.
	demoDB, _ := pgtest.NewPool(t)
	if err := demo.CreateSchema(ctx, demoDB); err != nil {
		t.Fatal(err)
	}
	dm, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	d, err = datamap.Discover(ctx, demoDB, datamap.DiscoverOptions{Map: dm})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range d.Gaps() {
		if g.Table != "demo.reviews" {
			t.Errorf("the demo map leaves out %s? %v", g.Table, g.Findings)
		}
	}
}

// Discover with --identity starts from the table named; a table that does
// not exist or has no email column is refused with the reason.
func TestDataMapDiscoverTakesTheNamedIdentity(t *testing.T) {
	ctx := context.Background()
	db, _ := shopDB(t)
	if _, err := datamap.Discover(ctx, db, datamap.DiscoverOptions{Identity: "shop.people"}); err == nil || !strings.Contains(err.Error(), "shop.people: no such table") {
		t.Errorf("unknown identity table: %v", err)
	}
	if _, err := datamap.Discover(ctx, db, datamap.DiscoverOptions{Identity: "shop.books"}); err == nil || !strings.Contains(err.Error(), "no email column") {
		t.Errorf("identity without an email column: %v", err)
	}
	d, err := datamap.Discover(ctx, db, datamap.DiscoverOptions{Identity: "shop.customers"})
	if err != nil || d.Identity.How != "chosen with --identity" || len(d.Holders) != 9 {
		t.Fatalf("%+v %v", d, err)
	}
	if strings.Contains(string(d.Draft("x")), "identity: {table: shop.customers, key: id, email: email}   # review") {
		t.Error("an identity the person chose needs no review")
	}
}

// A table whose columns look personal but that nothing leads to the person
// is drafted under ignore without a reason: check refuses the draft until
// someone decides.
func TestDataMapDiscoverLeavesAPersonalLookingTableForAPersonToDecide(t *testing.T) {
	ctx := context.Background()
	db, _ := shopDB(t)
	if _, err := db.Exec(ctx, `CREATE TABLE shop.callbacks (id serial PRIMARY KEY, phone text NOT NULL, requested_at timestamptz)`); err != nil {
		t.Fatal(err)
	}
	d, err := datamap.Discover(ctx, db, datamap.DiscoverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.Unreached, "shop.callbacks") {
		t.Fatalf("unreached: %v, want shop.callbacks", d.Unreached)
	}
	draft := d.Draft("database shop")
	if !strings.Contains(string(draft), `  - {table: shop.callbacks, reason: ""}   # review: phone look personal`) {
		t.Errorf("draft:\n%s", draft)
	}
	r, err := datamap.CheckMap(ctx, db, draft)
	if err != nil {
		t.Fatal(err)
	}
	if r.Problems() != 1 || !strings.Contains(strings.Join(r.Parse, "\n"), "shop.callbacks") {
		t.Errorf("check on the draft: %+v, want the one undecided table", r)
	}
}
