package processors_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func TestStripeEraseByEmailThenAlreadyGone(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewStripe(t)
	id := f.AddCustomer(processorfake.StripeCustomer{Email: email, Name: "Ann Example"})
	f.AddCharge(id, 1200, "eur")
	other := f.AddCustomer(processorfake.StripeCustomer{Email: "someone@else.example"})
	c := newStripe(t, f)

	out, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusDone)
	if out.HTTPStatus != http.StatusOK || !slices.Contains(out.Refs, processors.Ref{Kind: "customer", ID: id}) {
		t.Fatalf("outcome %+v", out)
	}
	if cu, _ := f.Customer(id); !cu.Deleted {
		t.Fatal("customer not deleted at the fake")
	}
	if cu, _ := f.Customer(other); cu.Deleted {
		t.Fatal("another customer was deleted")
	}
	if n := len(f.CallsTo(http.MethodDelete, "/v1/customers/")); n != 1 {
		t.Fatalf("%d DELETE calls, want 1", n)
	}

	// A repeat finds no customer by email: already gone.
	out, err = c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusAlreadyGone)

	// With the customer id known, GET answers {"deleted":true}: no new DELETE.
	s := subject("req-1")
	s.IDs = map[string]string{processors.IDStripeCustomer: id}
	out, err = c.Erase(ctx, s)
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	if n := len(f.CallsTo(http.MethodDelete, "/v1/customers/")); n != 1 {
		t.Fatalf("%d DELETE calls, want still 1", n)
	}

	// An id Stripe never had answers 404 resource_missing: gone as well.
	s.IDs[processors.IDStripeCustomer] = "cus_unknown"
	out, err = c.Erase(ctx, s)
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	if out.HTTPStatus != http.StatusNotFound {
		t.Fatalf("http status %d, want 404", out.HTTPStatus)
	}
}

func TestStripeEraseByKnownID(t *testing.T) {
	f := processorfake.NewStripe(t)
	id := f.AddCustomer(processorfake.StripeCustomer{Email: email})
	s := processors.Subject{RequestID: "r", IDs: map[string]string{processors.IDStripeCustomer: id}}
	out, err := newStripe(t, f).Erase(context.Background(), s)
	mustOutcome(t, out, err, processors.StatusDone)
	if cu, _ := f.Customer(id); !cu.Deleted || len(f.CallsTo(http.MethodGet, "/v1/customers")) != 1 {
		t.Fatalf("customer %+v, calls %+v", cu, f.Calls())
	}
}

func TestStripeEmailFilterIsCaseSensitiveSoLowerCaseIsTriedToo(t *testing.T) {
	f := processorfake.NewStripe(t)
	id := f.AddCustomer(processorfake.StripeCustomer{Email: "ann.example@example.com"})
	out, err := newStripe(t, f).Erase(context.Background(), subject("req-1"))
	mustOutcome(t, out, err, processors.StatusDone)
	if cu, _ := f.Customer(id); !cu.Deleted {
		t.Fatal("lower-cased customer not found")
	}
	if n := len(f.CallsTo(http.MethodGet, "/v1/customers")); n != 2 {
		t.Fatalf("%d list calls, want 2 (as given, lower-cased)", n)
	}
}

func TestStripeWrongBaseURLIsNotAlreadyGone(t *testing.T) {
	f := processorfake.NewStripe(t)
	id := f.AddCustomer(processorfake.StripeCustomer{Email: email})
	c := newStripe(t, f, func(cfg *processors.StripeConfig) { cfg.BaseURL = f.URL() + "/proxy" })
	s := subject("req-1")
	s.IDs = map[string]string{processors.IDStripeCustomer: id}
	out, err := c.Erase(context.Background(), s)
	mustError(t, out, err, processors.KindNeedsOperator, http.StatusNotFound)
}

func TestStripeExportPagesThroughChargesAndInvoices(t *testing.T) {
	f := processorfake.NewStripe(t)
	id := f.AddCustomer(processorfake.StripeCustomer{Email: email})
	var charges []string
	for i := range 5 {
		charges = append(charges, f.AddCharge(id, int64(100*(i+1)), "usd"))
	}
	f.AddInvoice(id, 500, "usd")
	f.AddCharge(f.AddCustomer(processorfake.StripeCustomer{Email: "other@example.org"}), 1, "usd")
	c := newStripe(t, f, func(cfg *processors.StripeConfig) {
		cfg.PageSize = 2
		cfg.ExportLists = []string{"charges", "invoices"}
	})

	var col collector
	out, err := c.Export(context.Background(), subject("req-2"), &col)
	mustOutcome(t, out, err, processors.StatusDone)
	got := col.kinds()
	if got["stripe.customer"] != 1 || got["stripe.charge"] != 5 || got["stripe.invoice"] != 1 || out.Records != 7 {
		t.Fatalf("records %v (outcome records %d)", got, out.Records)
	}
	var exported []string
	for _, r := range col.records {
		if r.Kind == "stripe.charge" {
			exported = append(exported, r.ID)
		}
	}
	slices.Sort(exported)
	slices.Sort(charges)
	if !slices.Equal(exported, charges) {
		t.Fatalf("charges %v, want %v", exported, charges)
	}
	pages := f.CallsTo(http.MethodGet, "/v1/charges")
	if len(pages) != 3 || pages[1].Query.Get("starting_after") == "" {
		t.Fatalf("charge pages: %d calls, second %v", len(pages), pages[1].Query)
	}
}

func TestStripeExportByKnownIDOfDeletedCustomerIsNotFound(t *testing.T) {
	f := processorfake.NewStripe(t)
	id := f.AddCustomer(processorfake.StripeCustomer{Email: email, Deleted: true})
	s := processors.Subject{RequestID: "r", IDs: map[string]string{processors.IDStripeCustomer: id}}
	var col collector
	out, err := newStripe(t, f).Export(context.Background(), s, &col)
	mustOutcome(t, out, err, processors.StatusNotFound)
	if len(col.records) != 0 {
		t.Fatalf("exported %d records of a deleted customer", len(col.records))
	}
}

func TestStripeUpdateIsIdempotentPerRequest(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewStripe(t)
	id := f.AddCustomer(processorfake.StripeCustomer{Email: email, Name: "Ann Exampel"})
	c := newStripe(t, f)
	fields := map[string]string{"name": "Ann Example", "city": "Berlin", "metadata.source": "lethe"}

	out, err := c.Update(ctx, subject("req-3"), fields)
	mustOutcome(t, out, err, processors.StatusDone)
	cu, _ := f.Customer(id)
	if cu.Name != "Ann Example" || cu.Address["city"] != "Berlin" || cu.Metadata["source"] != "lethe" {
		t.Fatalf("customer after update: %+v", cu)
	}
	out, err = c.Update(ctx, subject("req-3"), fields)
	mustOutcome(t, out, err, processors.StatusDone)

	posts := f.CallsTo(http.MethodPost, "/v1/customers/")
	if len(posts) != 2 {
		t.Fatalf("%d POSTs", len(posts))
	}
	k1, k2 := posts[0].Header.Get("Idempotency-Key"), posts[1].Header.Get("Idempotency-Key")
	if k1 == "" || k1 != k2 {
		t.Fatalf("idempotency keys %q, %q: want equal and set", k1, k2)
	}
	if posts[0].Form.Get("address[city]") != "Berlin" {
		t.Fatalf("form %v", posts[0].Form)
	}

	// Another request gets another key.
	if _, err := c.Update(ctx, subject("req-4"), fields); err != nil {
		t.Fatal(err)
	}
	if k3 := f.CallsTo(http.MethodPost, "/v1/customers/")[2].Header.Get("Idempotency-Key"); k3 == k1 {
		t.Fatal("a different request reused the idempotency key")
	}
}

func TestStripeUpdateRejectsUnknownFieldBeforeCalling(t *testing.T) {
	f := processorfake.NewStripe(t)
	out, err := newStripe(t, f).Update(context.Background(), subject("r"), map[string]string{"shoe_size": "42"})
	mustError(t, out, err, processors.KindNeedsOperator, 0)
	if n := len(f.Calls()); n != 0 {
		t.Fatalf("%d calls made", n)
	}
}
