package appdb_test

import (
	"context"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
)

// A page's search answers, for every person, exactly what the search of
// that person alone answers: on people erased and not, traces planted in
// tables the map forgot, in a held row of someone else, in free text and
// in a column the map ignores, with processor ids and a short identifier.
func TestTracesOfPageAnswersAsTracesDoForEachPerson(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	cs, err := shopapp.Seed(ctx, pool, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	yaml := string(shopapp.DataMapYAML()) +
		"  - {table: shop.support_tickets, column: subject, reason: \"the desk's own words, never a customer's\"}\n"
	var m *datamap.Map
	people := make([]appdb.Sought, len(cs))
	for i, c := range cs {
		var person appdb.Person
		known := appdb.Known{ProcessorIDs: map[string]string{"helpdesk_id": c.Helpdesk}}
		if i%2 == 0 { // the even ones are erased, the odd ones are not
			m, person, _ = eraseIn(t, pool, []byte(yaml), c)
			known.Emails = []string{strings.ToUpper(c.Email), "Old." + c.Email}
		} else {
			if m == nil {
				t.Fatal("the first customer is erased first")
			}
			ids, err := appdb.Identifiers(ctx, pool, m, c.UserID())
			if err != nil {
				t.Fatal(err)
			}
			person = appdb.Person{UserID: c.UserID(), Identifiers: ids}
			known.ProcessorIDs["short_id"] = "x" + c.UserID()
		}
		people[i] = appdb.Sought{Person: person, Known: known}
	}
	for _, sql := range []string{
		`ALTER TABLE shop.orders ALTER COLUMN customer_id DROP NOT NULL, ADD COLUMN contact text`,
		`CREATE TABLE shop.support_tickets (id serial PRIMARY KEY, customer_id text, subject text, body jsonb)`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	plant := []struct {
		sql  string
		args []any
	}{
		// A guest order naming the first erased person.
		{`INSERT INTO shop.orders (customer_id, placed_at, total, contact) VALUES (NULL, now(), 12, upper($1))`, []any{cs[0].Email}},
		// The second erased person's held order naming the third, and its own address: only the third's is a trace.
		{`UPDATE shop.orders SET contact = $1 || ', cc ' || $2 WHERE customer_id = $3`, []any{cs[4].Email, cs[2].Email, cs[2].ID}},
		// A ticket the map forgot, by user id; its subject the map ignores.
		{`INSERT INTO shop.support_tickets (customer_id, subject, body) VALUES ($1, $2, jsonb_build_object('from', $2::text))`, []any{cs[0].UserID(), cs[6].Email}},
		// Free text of someone else's review: an old address and a help desk id; a short id as a whole value.
		{`INSERT INTO shop.book_reviews (customer_id, reviewer_name, isbn, body) VALUES ($1, 'B', '978', $2)`, []any{cs[1].ID, "lent to old." + cs[6].Email + " (ticket " + cs[6].Helpdesk + ")"}},
		{`INSERT INTO shop.book_reviews (customer_id, reviewer_name, isbn, body) VALUES ($1, 'C', '979', $2)`, []any{cs[3].ID, "x" + cs[5].UserID()}},
		// More of one person's rows in a table than a page keeps as candidates.
		{`INSERT INTO shop.login_events (customer_id, ip) SELECT $1, '10.0.0.1' FROM generate_series(1, 1500)`, []any{cs[7].ID}},
	}
	for _, p := range plant {
		if _, err := pool.Exec(ctx, p.sql, p.args...); err != nil {
			t.Fatalf("%s: %v", p.sql, err)
		}
	}

	var searched []string
	page, err := appdb.TracesOfPage(ctx, pool, m, people, func(tbl string) { searched = append(searched, tbl) })
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != len(people) {
		t.Fatalf("%d answers for %d people", len(page), len(people))
	}
	found := 0
	for i, p := range people {
		alone, err := appdb.Traces(ctx, pool, m, p.Person, p.Known)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(page[i], alone) {
			t.Errorf("customer %d: the page found %+v, alone %+v", i, page[i], alone)
		}
		found += len(alone)
	}
	// The planted traces are there (the comparison is not of two empty answers).
	has := func(i int, table, column, what string) {
		t.Helper()
		for _, tr := range page[i] {
			if tr.Table == table && tr.Column == column && tr.What == what {
				return
			}
		}
		t.Errorf("customer %d: no trace in %s.%s (%s): %+v", i, table, column, what, page[i])
	}
	has(0, "shop.orders", "contact", "email address")
	has(0, "shop.support_tickets", "customer_id", "user id")
	has(4, "shop.orders", "contact", "email address")
	has(6, "shop.book_reviews", "body", "email address")
	has(6, "shop.book_reviews", "body", "id at helpdesk")
	has(5, "shop.book_reviews", "body", "id at short")
	has(7, "shop.login_events", "customer_id", "user id")
	has(1, "shop.customers", "email", "email address")
	for _, tr := range page[2] {
		if tr.Table == "shop.orders" || tr.Table == "shop.support_tickets" {
			t.Errorf("customer 2's own held order or an ignored column counted as a trace: %+v", tr)
		}
	}
	if found < 10 || len(searched) == 0 {
		t.Fatalf("%d traces in all, %d tables searched: the fixture plants fewer than it should", found, len(searched))
	}
	if _, err := appdb.TracesOfPage(ctx, pool, m, []appdb.Sought{{}}, nil); err == nil {
		t.Error("a person without a user id was searched")
	}
}

// BenchmarkTracesOfAPage: the independent search for a page of 200 people
// in a bookshop of LETHE_BENCH_CUSTOMERS customers (default 200,000, each
// with an address and a sign-in), person by person (Traces, as bulk
// erasure did before) and for the whole page at once (TracesOfPage), in
// one run.
func BenchmarkTracesOfAPage(b *testing.B) {
	customers := 200_000
	if v := os.Getenv("LETHE_BENCH_CUSTOMERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("LETHE_BENCH_CUSTOMERS %q: want a number of customers", v)
		}
		customers = n
	}
	const page = 200
	pool, _ := pgtest.NewPool(b)
	ctx := context.Background()
	cs, err := shopapp.Seed(ctx, pool, nil, page)
	if err != nil {
		b.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO shop.customers (email, full_name, phone, helpdesk_ref)
			SELECT 'reader' || g || '@example.net', 'Reader ' || g, '+44 20 7946 ' || lpad((g % 10000)::text, 4, '0'), 'hd-' || g FROM generate_series(1, $1::int) g`,
		`INSERT INTO shop.addresses (customer_id, line1, city, postcode) SELECT id, id || ' High Street', 'Leeds', 'LS1 1AA' FROM shop.customers WHERE email LIKE 'reader%'`,
		`INSERT INTO shop.login_events (customer_id, ip) SELECT id, '10.0.0.1' FROM shop.customers WHERE email LIKE 'reader%'`,
		`ANALYZE`,
	} {
		args := []any{customers}
		if !strings.Contains(sql, "$1") {
			args = nil
		}
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatal(err)
		}
	}
	m, people := shopPeople(b, pool, cs, true)
	b.Run("person-by-person", func(b *testing.B) {
		for b.Loop() {
			for _, p := range people {
				if _, err := appdb.Traces(ctx, pool, m, p.Person, p.Known); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
	})
	b.Run("page", func(b *testing.B) {
		for b.Loop() {
			if _, err := appdb.TracesOfPage(ctx, pool, m, people, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
	})
}

// A column compared under a collation that ignores case and width (a
// nondeterministic one) holds a person's user id in full-width digits:
// PostgreSQL counts it as theirs, so the page's search, which cannot
// compare as that collation does, leaves the table to each person's own
// count and finds it too.
func TestTracesOfPageLeavesANondeterministicColumnToPostgreSQL(t *testing.T) {
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	cs, err := shopapp.Seed(ctx, pool, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	wide := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r + 0xFEE0
		}
		return r
	}, cs[0].UserID())
	for _, q := range []struct {
		sql string
		arg []any
	}{
		{`CREATE COLLATION shop.loose (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`, nil},
		{`CREATE TABLE shop.notes (id serial PRIMARY KEY, owner_id text COLLATE shop.loose)`, nil},
		{`INSERT INTO shop.notes (owner_id) VALUES ($1)`, []any{wide}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.arg...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	m, people := shopPeople(t, pool, cs, false)
	page, err := appdb.TracesOfPage(ctx, pool, m, people, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range people {
		alone, err := appdb.Traces(ctx, pool, m, p.Person, p.Known)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(page[i], alone) {
			t.Errorf("customer %d: the page found %+v, alone %+v", i, page[i], alone)
		}
	}
	if !slices.ContainsFunc(page[0], func(tr appdb.Trace) bool {
		return tr.Table == "shop.notes" && tr.Column == "owner_id" && tr.What == "user id"
	}) {
		t.Errorf("the full-width user id in a case- and width-insensitive column was not found: %+v", page[0])
	}
}

// shopPeople is the bookshop's map and each customer as a page's search
// looks for them: their identifiers read from the database and, with
// known, their address and help-desk id as an erasure knows them.
func shopPeople(tb testing.TB, pool *pgxpool.Pool, cs []shopapp.Customer, known bool) (*datamap.Map, []appdb.Sought) {
	tb.Helper()
	m, err := datamap.Parse(shopapp.DataMapYAML())
	if err != nil {
		tb.Fatal(err)
	}
	people := make([]appdb.Sought, len(cs))
	for i, c := range cs {
		ids, err := appdb.Identifiers(context.Background(), pool, m, c.UserID())
		if err != nil {
			tb.Fatal(err)
		}
		people[i] = appdb.Sought{Person: appdb.Person{UserID: c.UserID(), Identifiers: ids}}
		if known {
			people[i].Known = appdb.Known{Emails: []string{c.Email}, ProcessorIDs: map[string]string{"helpdesk_id": c.Helpdesk}}
		}
	}
	return m, people
}
