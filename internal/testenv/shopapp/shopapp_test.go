package shopapp_test

import (
	"context"
	"testing"

	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
)

func TestTheShopSeedsAndItsMapValidates(t *testing.T) {
	ctx := context.Background()
	db, _ := pgtest.NewPool(t)
	cs, err := shopapp.Seed(ctx, db, nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].ID == 0 || cs[0].Signup == cs[0].Email {
		t.Fatalf("seeded %+v", cs)
	}
	m, err := shopapp.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, db); err != nil {
		t.Fatalf("the shop's map does not validate against its schema: %v", err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM shop.newsletter_signups`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("newsletter rows: %d, %v", n, err)
	}
	if _, err := shopapp.Seed(ctx, db, nil, 2); err != nil {
		t.Fatalf("seeding again: %v", err)
	}
}
