package appdb_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// schemaSQL is a shop with eight tables: a three-level chain of tables
// without an account column (file_versions → files → projects → accounts),
// sessions and their audit marks (a foreign key the map does not declare),
// anonymized reviews, purchases held for tax from their date, and tax
// notes held from the erasure on.
const schemaSQL = `CREATE SCHEMA shop;
CREATE TABLE shop.accounts (id text PRIMARY KEY, email text NOT NULL);
CREATE TABLE shop.projects (id bigserial PRIMARY KEY, owner text NOT NULL REFERENCES shop.accounts (id), name text NOT NULL);
CREATE TABLE shop.files (id bigserial PRIMARY KEY, project_id bigint NOT NULL REFERENCES shop.projects (id), path text NOT NULL);
CREATE TABLE shop.file_versions (id bigserial PRIMARY KEY, file_id bigint NOT NULL REFERENCES shop.files (id), body text NOT NULL);
CREATE TABLE shop.sessions (id bigserial PRIMARY KEY, account_id text NOT NULL REFERENCES shop.accounts (id));
CREATE TABLE shop.audit_marks (id bigserial PRIMARY KEY, account_id text NOT NULL, session_id bigint NOT NULL REFERENCES shop.sessions (id));
CREATE TABLE shop.reviews (id bigserial PRIMARY KEY, account_id text REFERENCES shop.accounts (id), author_name text NOT NULL,
	author_email text, author_ref text, rating int NOT NULL);
CREATE TABLE shop.purchases (id bigserial PRIMARY KEY, account_id text NOT NULL REFERENCES shop.accounts (id), amount int NOT NULL,
	purchased_at timestamptz NOT NULL);
CREATE TABLE shop.tax_notes (id bigserial PRIMARY KEY, account_id text NOT NULL REFERENCES shop.accounts (id), note text NOT NULL);`

// mapYAML lists parents before their children and sessions before the
// audit marks that refer to them: EraseOrder must turn that round.
const mapYAML = `version: 1
identity: {table: shop.accounts, key: id, email: email}
tables:
  - {name: shop.projects, via: {column: owner, parent: shop.accounts, parent_key: id}, action: delete}
  - {name: shop.files, via: {column: project_id, parent: shop.projects, parent_key: id}, action: delete}
  - {name: shop.file_versions, via: {column: file_id, parent: shop.files, parent_key: id}, action: delete}
  - {name: shop.sessions, key: account_id, action: delete}
  - {name: shop.audit_marks, key: account_id, action: delete}
  - name: shop.reviews
    key: account_id
    action: anonymize
    anonymize:
      - {column: author_name, set: fixed, value: "Former customer"}
      - {column: author_email, set: "null"}
      - {column: author_ref, set: hash}
  - {name: shop.purchases, key: account_id, action: retain, hold: {reason: tax law, period: 120mo, since: purchased_at}}
  - {name: shop.tax_notes, key: account_id, action: retain, hold: {reason: tax audit, period: 30d}}
`

var now = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)

type shop struct {
	db *pgxpool.Pool
	m  *datamap.Map
}

func newShop(t *testing.T) *shop {
	t.Helper()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, schemaSQL); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte(mapYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	s := &shop{db: pool, m: m}
	for _, id := range []string{"u-1", "u-2"} {
		s.seed(t, id)
	}
	return s
}

// seed gives a person two projects with two files of two versions each,
// two sessions with a mark each, two reviews, three purchases (one from
// eleven years ago, whose hold has ended) and two tax notes.
func (s *shop) seed(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		exec := func(sql string, args ...any) int64 {
			var n int64
			if err == nil {
				err = tx.QueryRow(ctx, sql, args...).Scan(&n)
			}
			return n
		}
		exec(`INSERT INTO shop.accounts VALUES ($1, $1 || '@example.com') RETURNING 0`, id)
		for p := range 2 {
			project := exec(`INSERT INTO shop.projects (owner, name) VALUES ($1, $2) RETURNING id`, id, fmt.Sprintf("%s project %d", id, p))
			for f := range 2 {
				file := exec(`INSERT INTO shop.files (project_id, path) VALUES ($1, $2) RETURNING id`, project, fmt.Sprintf("f%d", f))
				exec(`INSERT INTO shop.file_versions (file_id, body) VALUES ($1, 'v1'), ($1, 'v2') RETURNING 0`, file)
			}
			session := exec(`INSERT INTO shop.sessions (account_id) VALUES ($1) RETURNING id`, id)
			exec(`INSERT INTO shop.audit_marks (account_id, session_id) VALUES ($1, $2) RETURNING 0`, id, session)
			exec(`INSERT INTO shop.reviews (account_id, author_name, author_email, author_ref, rating) VALUES ($1, $1 || ' Name', $1 || '@example.com', NULL, 4) RETURNING 0`, id)
			exec(`INSERT INTO shop.tax_notes (account_id, note) VALUES ($1, 'note') RETURNING 0`, id)
		}
		for _, years := range []int{11, 2, 1} {
			exec(`INSERT INTO shop.purchases (account_id, amount, purchased_at) VALUES ($1, 100, $2) RETURNING 0`, id, now.AddDate(-years, 0, 0))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// counts is every table's number of rows of the person, reached the plain
// way (joins written out here, not by the package under test).
func (s *shop) counts(t *testing.T, id string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for table, sql := range map[string]string{
		"shop.projects":      `SELECT count(*) FROM shop.projects WHERE owner = $1`,
		"shop.files":         `SELECT count(*) FROM shop.files f JOIN shop.projects p ON p.id = f.project_id WHERE p.owner = $1`,
		"shop.file_versions": `SELECT count(*) FROM shop.file_versions v JOIN shop.files f ON f.id = v.file_id JOIN shop.projects p ON p.id = f.project_id WHERE p.owner = $1`,
		"shop.sessions":      `SELECT count(*) FROM shop.sessions WHERE account_id = $1`,
		"shop.audit_marks":   `SELECT count(*) FROM shop.audit_marks WHERE account_id = $1`,
		"shop.reviews":       `SELECT count(*) FROM shop.reviews WHERE account_id = $1`,
		"shop.purchases":     `SELECT count(*) FROM shop.purchases WHERE account_id = $1`,
		"shop.tax_notes":     `SELECT count(*) FROM shop.tax_notes WHERE account_id = $1`,
	} {
		var n int
		if err := s.db.QueryRow(context.Background(), sql, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func names(tables []datamap.Table) []string {
	var out []string
	for _, t := range tables {
		out = append(out, t.Name)
	}
	return out
}

func TestEraseOrderPutsChildrenFirst(t *testing.T) {
	s := newShop(t)
	order, err := appdb.EraseOrder(context.Background(), s.db, s.m)
	if err != nil {
		t.Fatal(err)
	}
	// Via edges turn the chain round; the live foreign key of audit_marks
	// puts it before sessions; the rest keep the map's order.
	want := []string{"shop.file_versions", "shop.files", "shop.projects", "shop.audit_marks", "shop.sessions", "shop.reviews", "shop.purchases", "shop.tax_notes"}
	if got := names(order); !slices.Equal(got, want) {
		t.Errorf("order %v\nwant  %v", got, want)
	}
}

func TestEraseOrderRefusesCyclesAndCascadesIntoHolds(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, `CREATE SCHEMA x;
		CREATE TABLE x.a (id int PRIMARY KEY, b_id int, owner text);
		CREATE TABLE x.b (id int PRIMARY KEY, a_id int REFERENCES x.a (id), owner text);
		ALTER TABLE x.a ADD FOREIGN KEY (b_id) REFERENCES x.b (id);
		CREATE TABLE x.c (id int PRIMARY KEY, a_id int REFERENCES x.a (id), owner text);
		CREATE TABLE x.held (owner text, c_id int REFERENCES x.c (id) ON DELETE CASCADE)`); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte(`version: 1
tables:
  - {name: x.c, key: owner, action: delete}
  - {name: x.a, key: owner, action: delete}
  - {name: x.b, key: owner, action: delete}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = appdb.EraseOrder(ctx, pool, m)
	if err == nil || !strings.Contains(err.Error(), "cycle") || !strings.Contains(err.Error(), ": x.a, x.b") {
		t.Errorf("want a cycle of x.a and x.b only (x.c refers to it, but is not on it), got %v", err)
	}

	m, err = datamap.Parse([]byte(`version: 1
tables:
  - {name: x.held, key: owner, action: retain, hold: {reason: tax, period: 1mo}}
  - {name: x.c, key: owner, action: delete}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := appdb.EraseOrder(ctx, pool, m); err == nil || !strings.Contains(err.Error(), "x.held (retained) refers to x.c (deleted) with ON DELETE CASCADE") {
		t.Errorf("want the cascade into held rows refused, got %v", err)
	}
}

func TestEraseDeletesAnonymizesAndRetains(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	const pseudonym = "p_4f2a9c"
	other := s.counts(t, "u-2")

	// Before: everything of the person is left over, and the purchase
	// whose hold ended eleven years after it was made.
	before, err := appdb.Remaining(ctx, s.db, s.m, appdb.Person{UserID: "u-1"}, pseudonym, now)
	if err != nil {
		t.Fatal(err)
	}
	wantBefore := map[string]appdb.Leftover{
		"shop.projects":      {Table: "shop.projects", Rows: 2, Why: "rows not deleted"},
		"shop.files":         {Table: "shop.files", Rows: 4, Why: "rows not deleted"},
		"shop.file_versions": {Table: "shop.file_versions", Rows: 8, Why: "rows not deleted"},
		"shop.sessions":      {Table: "shop.sessions", Rows: 2, Why: "rows not deleted"},
		"shop.audit_marks":   {Table: "shop.audit_marks", Rows: 2, Why: "rows not deleted"},
		"shop.reviews":       {Table: "shop.reviews", Rows: 2, Why: "rows still hold author_name, author_email, author_ref"},
		"shop.purchases":     {Table: "shop.purchases", Rows: 1, Why: "rows kept after their hold ended"},
	}
	if len(before) != len(wantBefore) {
		t.Errorf("leftovers before erasure %+v", before)
	}
	for _, l := range before {
		if l != wantBefore[l.Table] {
			t.Errorf("leftover %+v, want %+v", l, wantBefore[l.Table])
		}
	}

	order, err := appdb.EraseOrder(ctx, s.db, s.m)
	if err != nil {
		t.Fatal(err)
	}
	erase := func() []appdb.TableResult {
		t.Helper()
		var res []appdb.TableResult
		err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
			var err error
			res, err = appdb.Erase(ctx, tx, s.m, order, appdb.Person{UserID: "u-1"}, pseudonym, now)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := erase()
	purchaseUntil := now.AddDate(9, 0, 0) // the purchase of a year ago, held 120 months
	want := []appdb.TableResult{
		{Table: "shop.file_versions", Action: appdb.Deleted, Rows: 8},
		{Table: "shop.files", Action: appdb.Deleted, Rows: 4},
		{Table: "shop.projects", Action: appdb.Deleted, Rows: 2},
		{Table: "shop.audit_marks", Action: appdb.Deleted, Rows: 2},
		{Table: "shop.sessions", Action: appdb.Deleted, Rows: 2},
		{Table: "shop.reviews", Action: appdb.Anonymized, Rows: 2},
		{Table: "shop.purchases", Action: appdb.Retained, Rows: 2, Released: 1, Reason: "tax law", Period: "120mo", Until: purchaseUntil},
		{Table: "shop.tax_notes", Action: appdb.Retained, Rows: 2, Reason: "tax audit", Period: "30d", Until: now.AddDate(0, 0, 30)},
	}
	if !slices.EqualFunc(res, want, sameResult) {
		t.Errorf("results\n%+v\nwant\n%+v", res, want)
	}

	// The rows are really gone, anonymized, or kept; the other person's are untouched.
	got := s.counts(t, "u-1")
	for table, n := range got {
		wantN := 0
		switch table {
		case "shop.reviews", "shop.purchases", "shop.tax_notes":
			wantN = 2
		}
		if n != wantN {
			t.Errorf("%s: %d rows of the erased person, want %d", table, n, wantN)
		}
	}
	rows, _ := s.db.Query(ctx, `SELECT author_name, author_email, author_ref FROM shop.reviews WHERE account_id = 'u-1'`)
	type review struct {
		Name  string
		Email *string
		Ref   *string
	}
	reviews, err := pgx.CollectRows(rows, pgx.RowToStructByPos[review])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reviews {
		if r.Name != "Former customer" || r.Email != nil || r.Ref == nil || *r.Ref != pseudonym {
			t.Errorf("review not anonymized: %q %v %v", r.Name, r.Email, r.Ref)
		}
	}
	if c := s.counts(t, "u-2"); !mapsEqual(c, other) {
		t.Errorf("the other person's rows changed: %v, were %v", c, other)
	}
	var untouched int
	_ = s.db.QueryRow(ctx, `SELECT count(*) FROM shop.reviews WHERE account_id = 'u-2' AND author_name = 'u-2 Name' AND author_email IS NOT NULL`).Scan(&untouched)
	if untouched != 2 {
		t.Errorf("the other person's reviews were anonymized: %d left as they were", untouched)
	}

	// A second run changes nothing.
	again := erase()
	for i := range want {
		if want[i].Action != appdb.Retained {
			want[i].Rows = 0
		}
		want[i].Released = 0
	}
	if !slices.EqualFunc(again, want, sameResult) {
		t.Errorf("second run\n%+v\nwant\n%+v", again, want)
	}

	// Verification: nothing left but the holds, unless the pseudonym
	// written is not the person's.
	if left, err := appdb.Remaining(ctx, s.db, s.m, appdb.Person{UserID: "u-1"}, pseudonym, now); err != nil || len(left) != 0 {
		t.Errorf("leftovers after erasure: %+v (%v)", left, err)
	}
	left, err := appdb.Remaining(ctx, s.db, s.m, appdb.Person{UserID: "u-1"}, "p_other", now)
	if err != nil || len(left) != 1 || left[0] != (appdb.Leftover{Table: "shop.reviews", Rows: 2, Why: "rows still hold author_ref"}) {
		t.Errorf("leftovers with another pseudonym: %+v (%v)", left, err)
	}
	if _, err := appdb.Remaining(ctx, s.db, s.m, appdb.Person{UserID: "u-1"}, "", now); err == nil {
		t.Error("Remaining without a pseudonym checked a hashed column")
	}
}

func sameResult(a, b appdb.TableResult) bool {
	ua, ub := a.Until, b.Until
	a.Until, b.Until = time.Time{}, time.Time{}
	return a == b && ua.Equal(ub)
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestEraseNeedsTheOrderAndAPseudonym(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	tryErase := func(order []datamap.Table, pseudonym string) error {
		tx, err := s.db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = appdb.Erase(ctx, tx, s.m, order, appdb.Person{UserID: "u-1"}, pseudonym, now)
		return err
	}
	// In the map's order, parents go before their children: the foreign
	// keys refuse, and the error names the constraint, not the person.
	err := tryErase(s.m.Tables, "p")
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL error 23503") || !strings.Contains(err.Error(), "shop.projects") || strings.Contains(err.Error(), "u-1") {
		t.Errorf("erasing parents first: %v", err)
	}
	if err := tryErase(s.m.Tables[1:], "p"); err == nil || !strings.Contains(err.Error(), "EraseOrder") {
		t.Errorf("an order missing a table: %v", err)
	}
	order, err := appdb.EraseOrder(ctx, s.db, s.m)
	if err != nil {
		t.Fatal(err)
	}
	if err := tryErase(order, ""); err == nil || !strings.Contains(err.Error(), "pseudonym") {
		t.Errorf("no pseudonym for a hashed column: %v", err)
	}
	if c := s.counts(t, "u-1"); c["shop.projects"] != 2 {
		t.Errorf("a failed erasure changed rows: %v", c)
	}
}

func TestEraseHeldReleasesRowsWhenTheirHoldEnds(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	other := s.counts(t, "u-2")
	held := func() int { return s.counts(t, "u-1")["shop.purchases"] }
	twoYears, oneYear := now.AddDate(8, 0, 0), now.AddDate(9, 0, 0) // when the holds of the purchases of two and one years ago end

	// The purchase of eleven years ago is past its hold already.
	n, next, err := appdb.EraseHeld(ctx, s.db, s.m, "shop.purchases", appdb.Person{UserID: "u-1"}, now)
	if err != nil || n != 1 || !next.Equal(twoYears) || held() != 2 {
		t.Fatalf("at the erasure: deleted %d, next %v (%v), %d held; want 1, %v, 2", n, next, err, held(), twoYears)
	}
	n, next, err = appdb.EraseHeld(ctx, s.db, s.m, "shop.purchases", appdb.Person{UserID: "u-1"}, twoYears.Add(-time.Second))
	if err != nil || n != 0 || !next.Equal(twoYears) || held() != 2 {
		t.Errorf("a second before the hold ends: deleted %d, next %v (%v), %d held", n, next, err, held())
	}
	n, next, err = appdb.EraseHeld(ctx, s.db, s.m, "shop.purchases", appdb.Person{UserID: "u-1"}, twoYears)
	if err != nil || n != 1 || !next.Equal(oneYear) || held() != 1 {
		t.Errorf("when the first hold ends: deleted %d, next %v (%v), %d held", n, next, err, held())
	}
	n, next, err = appdb.EraseHeld(ctx, s.db, s.m, "shop.purchases", appdb.Person{UserID: "u-1"}, oneYear.Add(time.Hour))
	if err != nil || n != 1 || !next.IsZero() || held() != 0 {
		t.Errorf("after the last hold ends: deleted %d, next %v (%v), %d held", n, next, err, held())
	}
	if n, next, err := appdb.EraseHeld(ctx, s.db, s.m, "shop.purchases", appdb.Person{UserID: "u-1"}, oneYear.Add(time.Hour)); err != nil || n != 0 || !next.IsZero() {
		t.Errorf("again: deleted %d, next %v (%v)", n, next, err)
	}

	// A hold without since ends for all rows at once: the caller calls at its end.
	if n, next, err := appdb.EraseHeld(ctx, s.db, s.m, "shop.tax_notes", appdb.Person{UserID: "u-1"}, now); err != nil || n != 2 || !next.IsZero() {
		t.Errorf("tax notes: deleted %d, next %v (%v)", n, next, err)
	}
	if c := s.counts(t, "u-2"); !mapsEqual(c, other) {
		t.Errorf("the other person's rows changed: %v, were %v", c, other)
	}
	for _, table := range []string{"shop.sessions", "shop.gone"} {
		if _, _, err := appdb.EraseHeld(ctx, s.db, s.m, table, appdb.Person{UserID: "u-1"}, now); err == nil {
			t.Errorf("EraseHeld on %s: want an error", table)
		}
	}
}

func TestMatchBuildsTheChainFromQuotedNames(t *testing.T) {
	m, err := datamap.Parse([]byte(mapYAML))
	if err != nil {
		t.Fatal(err)
	}
	versions, _ := m.Table("shop.file_versions")
	from, where, err := appdb.Match(versions, 3)
	if err != nil {
		t.Fatal(err)
	}
	if from != `"shop"."file_versions" AS "p0"` ||
		where != `"p0"."file_id" IN (SELECT "p1"."id" FROM "shop"."files" AS "p1" WHERE "p1"."project_id" IN (SELECT "p2"."id" FROM "shop"."projects" AS "p2" WHERE "p2"."owner" = $3))` {
		t.Errorf("from %s\nwhere %s", from, where)
	}
	if _, _, err := appdb.Match(datamap.Table{Name: "a.b", Via: &datamap.Via{Column: "c", Parent: "a.p", ParentKey: "id"}}, 1); err == nil {
		t.Error("Match accepted a via table that did not come from Parse")
	}
}

func TestErrorsDoNotNameThePerson(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if _, err := pool.Exec(ctx, `CREATE SCHEMA app; CREATE TABLE app.numbers (owner bigint)`); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte("version: 1\ntables: [{name: app.numbers, key: owner, action: delete}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	const id = "ada.lovelace@example.com"
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := appdb.Erase(ctx, tx, m, m.Tables, appdb.Person{UserID: id}, "", now)
		return err
	})
	if err == nil || strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "app.numbers") {
		t.Errorf("erase error: %v", err)
	}
	if _, err := appdb.Remaining(ctx, pool, m, appdb.Person{UserID: id}, "", now); err == nil || strings.Contains(err.Error(), id) {
		t.Errorf("verify error: %v", err)
	}
}
