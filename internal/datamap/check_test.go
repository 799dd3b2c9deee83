package datamap_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// The shop's own map has no problem; the mis-keyed one is refused by
// Validate (so by the worker) naming the email table and the fix.
func TestDataMapCheckAcceptsTheShopsMapAndRefusesTheMisKeyedOne(t *testing.T) {
	ctx := context.Background()
	db, _ := shopDB(t)
	r, err := datamap.CheckMap(ctx, db, shopMap(t, func(s string) string { return s + "\n" }))
	if err != nil || r.Problems() != 0 || r.Map == nil || r.Tables != 10 {
		t.Fatalf("the shop's map: %+v %v", r, err)
	}
	misKeyed := shopMap(t, func(s string) string { return strings.Replace(s, "key: address, by: email,", "key: address,", 1) })
	r, err = datamap.CheckMap(ctx, db, misKeyed)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Parse) != 0 || len(r.Coverage) != 0 || len(r.Schema) != 1 {
		t.Fatalf("want one schema problem, got %+v", r)
	}
	if p := r.Schema[0]; !strings.Contains(p, "table shop.newsletter_signups: key address looks like an email address") || !strings.Contains(p, "add `by: email`") {
		t.Errorf("problem: %s", p)
	}
	m, err := datamap.Parse(misKeyed)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, db); err == nil || !strings.Contains(err.Error(), "shop.newsletter_signups") {
		t.Errorf("Validate (the worker's check) accepts the mis-keyed map: %v", err)
	}
}

// A table with a foreign key to the person that is neither mapped nor
// ignored is a coverage problem naming it; ignored with a reason, it is not.
func TestDataMapCoverageNamesTheTableLeftOutUntilItIsIgnored(t *testing.T) {
	ctx := context.Background()
	db, _ := shopDB(t)
	m, err := datamap.Parse(shopMap(t, withoutLoginEvents))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, db); err != nil {
		t.Fatalf("the map without login events still validates: %v", err)
	}
	list, err := datamap.CheckCoverage(ctx, db, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Table != "shop.login_events" || list[0].References != "shop.customers" {
		t.Fatalf("uncovered: %+v", list)
	}
	if s := list[0].String(); !strings.Contains(s, "table shop.login_events is neither in tables nor in ignore") ||
		!strings.Contains(s, "column customer_id references shop.customers (the identity table): map it (key: customer_id) or add it to ignore with a reason") {
		t.Errorf("message: %s", s)
	}
	ignored, err := datamap.Parse(shopMap(t, func(s string) string {
		return strings.Replace(withoutLoginEvents(s), "ignore:\n", "ignore:\n  - {table: shop.login_events, reason: sign-in events are deleted by the application after 30 days}\n", 1)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if list, err := datamap.CheckCoverage(ctx, db, ignored); err != nil || len(list) != 0 {
		t.Errorf("ignored with a reason, still refused: %+v %v", list, err)
	}
	// Ignoring one column of it leaves the table uncovered.
	oneColumn, err := datamap.Parse(shopMap(t, func(s string) string {
		return strings.Replace(withoutLoginEvents(s), "ignore:\n", "ignore:\n  - {table: shop.login_events, column: ip, reason: the address of a shared proxy}\n", 1)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if list, err := datamap.CheckCoverage(ctx, db, oneColumn); err != nil || len(list) != 1 {
		t.Errorf("one column ignored covered the whole table: %+v %v", list, err)
	}
	// A column named twice, or without a reason, is refused.
	for _, entry := range []string{
		"  - {table: shop.addresses, column: city, reason: a city}\n  - {table: shop.addresses, column: city, reason: again}\n",
		"  - {table: shop.addresses, column: city, reason: \"\"}\n",
	} {
		if _, err := datamap.Parse(shopMap(t, func(s string) string { return strings.Replace(s, "ignore:\n", "ignore:\n"+entry, 1) })); err == nil {
			t.Errorf("accepted %q", entry)
		}
	}
	if _, err := datamap.Parse(shopMap(t, func(s string) string {
		return strings.Replace(s, "ignore:\n", "ignore:\n  - {table: shop.addresses, column: city, reason: cities are not identifiers}\n", 1)
	})); err != nil {
		t.Errorf("a column of a mapped table ignored with a reason: %v", err)
	}

	// Left out with the tables below it: wishlists (whose items reference
	// it) and, through it, the items.
	noWishlists, err := datamap.Parse(shopMap(t, func(s string) string {
		s = strings.Replace(s, "  - {name: shop.wishlist_items, via: {column: wishlist_id, parent: shop.wishlists, parent_key: id}, action: delete, label: your wishlists}\n", "", 1)
		return strings.Replace(s, "  - {name: shop.wishlists, key: customer_id, action: delete, label: your wishlists}\n", "", 1)
	}))
	if err != nil {
		t.Fatal(err)
	}
	list, err = datamap.CheckCoverage(ctx, db, noWishlists)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Table != "shop.wishlists" || list[1].Table != "shop.wishlist_items" || !list[1].Through ||
		!strings.Contains(list[1].String(), "references shop.wishlists, itself neither mapped nor ignored") {
		t.Errorf("uncovered: %+v", list)
	}
}

// check lists every problem at once, each once: what does not parse, what
// does not fit the schema (checked even though the map does not parse),
// and coverage.
func TestDataMapCheckListsEveryProblemOnce(t *testing.T) {
	ctx := context.Background()
	db, _ := shopDB(t)
	b := shopMap(t, func(s string) string {
		s = withoutLoginEvents(s)
		s = strings.Replace(s, "{name: shop.addresses, key: customer_id, action: delete,", "{name: shop.addresses, key: customer_id, action: shred,", 1)
		s = strings.Replace(s, "{name: shop.wishlists, key: customer_id,", "{name: shop.wishlists, key: owner_id,", 1)
		return strings.Replace(s, "key: address, by: email,", "key: address,", 1)
	})
	r, err := datamap.CheckMap(ctx, db, b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Map != nil {
		t.Error("a map that does not parse is returned")
	}
	if len(r.Parse) != 1 || !strings.Contains(r.Parse[0], "(shop.addresses): action \"shred\"") {
		t.Errorf("parse: %q", r.Parse)
	}
	if len(r.Schema) != 2 || !strings.Contains(strings.Join(r.Schema, "\n"), "table shop.wishlists has no column owner_id") ||
		!strings.Contains(strings.Join(r.Schema, "\n"), "shop.newsletter_signups: key address looks like an email address") {
		t.Errorf("schema: %q", r.Schema)
	}
	if len(r.Coverage) != 1 || !strings.Contains(r.Coverage[0], "shop.login_events") {
		t.Errorf("coverage: %q", r.Coverage)
	}
	seen := map[string]bool{}
	for _, p := range append(append(r.Parse, r.Schema...), r.Coverage...) {
		if seen[p] {
			t.Errorf("listed twice: %s", p)
		}
		seen[p] = true
	}
	// YAML that does not decode at all: its one problem, nothing else.
	r, err = datamap.CheckMap(ctx, db, []byte("version: 1\ntables: [\n"))
	if err != nil || len(r.Parse) != 1 || len(r.Schema)+len(r.Coverage) != 0 {
		t.Errorf("broken YAML: %+v %v", r, err)
	}
}

// A key must be able to hold the user id (by the identity key's type),
// a by key the identity column it names, a via column its parent's key;
// a by column the identity table lacks is refused.
func TestDataMapValidateRefusesAKeyThatCannotHoldTheUserID(t *testing.T) {
	ctx := context.Background()
	// The demo's user ids are text ("u-1001"): no integer column holds them.
	demoDB, _ := pgtest.NewPool(t)
	if err := demo.CreateSchema(ctx, demoDB); err != nil {
		t.Fatal(err)
	}
	m, err := datamap.Parse([]byte(`version: 1
identity: {table: demo.accounts, key: id, email: email}
tables:
  - {name: demo.projects, key: account_id, action: delete}
  - {name: demo.purchases, key: amount_cents, action: delete}
  - {name: demo.marketing_consents, key: granted, action: delete}
  - {name: demo.project_comments, via: {column: body, parent: demo.projects, parent_key: id}, action: delete}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Validate(ctx, demoDB)
	for _, want := range []string{
		"table demo.purchases: key amount_cents is bigint, but it must hold the user id demo.accounts.id, which is text",
		"table demo.marketing_consents: key granted is boolean, but it must hold the user id demo.accounts.id, which is text",
		"table demo.project_comments: via column body is text, but it must hold demo.projects.id, which is bigint",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "demo.projects:") {
		t.Errorf("a text key holding a text user id is refused: %v", err)
	}

	// The shop's user ids are bigint: no uuid column holds them; a text
	// column does (as text).
	db, _ := shopDB(t)
	m, err = datamap.Parse([]byte(`version: 1
identity: {table: shop.customers, key: id, email: email}
tables:
  - {name: shop.order_lines, key: order_no, action: delete}
  - {name: shop.addresses, key: postcode, action: delete}
  - {name: shop.newsletter_signups, key: address, by: phone_number, action: delete}
  - {name: shop.wishlists, key: id, by: email, action: delete}
  - {name: shop.books, key: isbn, by: email, action: delete}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Validate(ctx, db)
	for _, want := range []string{
		"table shop.order_lines: key order_no is uuid, but it must hold the user id shop.customers.id, which is bigint",
		"table shop.newsletter_signups: by phone_number: the identity table shop.customers has no column phone_number",
		"table shop.wishlists: key id is bigint, but with by email it holds shop.customers.email, which is text",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "shop.addresses") || strings.Contains(err.Error(), "shop.books")) {
		t.Errorf("a text key is refused: %v", err)
	}
}
