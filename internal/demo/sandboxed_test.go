package demo_test

import (
	"context"
	"testing"

	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// The dev stack's demo: processors pointed at sandboxes plus PayPal, which
// has no API; accounts with their Stripe customer ids; the customers the
// sandboxes are seeded with leave out the erased.
func TestTheSandboxedDemoMapAndItsCustomers(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	if err := demo.CreateSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	m, err := demo.Sandboxed(map[string]string{"stripe": "http://127.0.0.1:1/stripe", "crm": "http://127.0.0.1:2/lethe/hook"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, pool); err != nil {
		t.Fatalf("the sandboxed map does not fit the demo schema: %v", err)
	}
	base := map[string]string{}
	for _, p := range m.Processors {
		base[p.Name] = p.BaseURL
	}
	if base["stripe"] != "http://127.0.0.1:1/stripe" || base["crm"] != "http://127.0.0.1:2/lethe/hook" || base["mailchimp"] != "http://127.0.0.1:9/mailchimp/3.0" {
		t.Errorf("base URLs %v", base)
	}
	last := m.Processors[len(m.Processors)-1]
	if last.Name != demo.PayPal || last.Kind != "manual" {
		t.Fatalf("last processor %+v, want the manual PayPal", last)
	}
	if _, err := processors.Build(last, processors.BuildOptions{}); err != nil {
		t.Fatalf("PayPal does not build: %v", err)
	}
	if orig, _ := demo.DataMap(); len(orig.Processors) != len(m.Processors)-1 {
		t.Error("Sandboxed changed the demo map itself")
	}

	if err := demo.Seed(ctx, pool, nil, demo.SeedOptions{Accounts: 3, SkipObjectUpload: true, StripeCustomers: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE demo.accounts SET status = 'erased', stripe_customer_id = NULL WHERE id = $1`, demo.Accounts(1)[0].ID); err != nil {
		t.Fatal(err)
	}
	cs, err := demo.Customers(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].ID != demo.Accounts(2)[1].ID {
		t.Fatalf("customers %+v: want the two accounts not erased", cs)
	}
	if cs[0].StripeCustomerID != demo.StripeCustomerID(cs[0].ID) || cs[0].Email != demo.Accounts(2)[1].Email || cs[0].Name == "" {
		t.Errorf("customer %+v", cs[0])
	}
}
