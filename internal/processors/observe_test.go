package processors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

// calls is an Observer that keeps what it hears.
type calls struct {
	mu   sync.Mutex
	seen []string // processor/action/outcome
}

func (c *calls) ProcessorCall(processor, action, outcome string, took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if took < 0 {
		outcome += " (negative duration)"
	}
	c.seen = append(c.seen, processor+"/"+action+"/"+outcome)
}

// An observed registry reports every call of the connectors it hands
// out, with the processor's answer or the kind of failure, and nothing of
// the person; the registry it came from reports nothing.
func TestObservedRegistryReportsEveryCallAndItsOutcome(t *testing.T) {
	ctx := context.Background()
	st := processorfake.NewStripe(t)
	st.AddCustomer(processorfake.StripeCustomer{Email: email})
	plain, err := processors.NewRegistry([]processors.Config{
		{Name: "stripe", Kind: "stripe", BaseURL: st.URL(), CredentialEnv: "LETHE_STRIPE_KEY"},
		{Name: "paypal", Kind: "manual", Options: map[string]string{"preset": "paypal"}},
	}, processors.BuildOptions{LookupEnv: envMap(map[string]string{"LETHE_STRIPE_KEY": st.APIKey})})
	if err != nil {
		t.Fatal(err)
	}
	var heard calls
	reg := plain.Observed(&heard)

	stripe, ok := reg.Eraser("stripe")
	if !ok {
		t.Fatal("no stripe eraser")
	}
	st.FailNext(1, 503)
	if _, err := stripe.Erase(ctx, subject("req_1")); !processors.IsRetryable(err) {
		t.Fatalf("want a retryable failure, got %v", err)
	}
	out, err := stripe.Erase(ctx, subject("req_1"))
	if err != nil || out.Status != processors.StatusDone {
		t.Fatalf("erase: %+v %v", out, err)
	}
	if c, ok := reg.Confirmer("stripe"); !ok {
		t.Fatal("no stripe confirmer")
	} else if _, err := c.Confirm(ctx, out); err != nil {
		t.Fatal(err)
	}
	paypal, _ := reg.Eraser("paypal")
	if _, err := paypal.Erase(ctx, subject("req_1")); err != nil {
		t.Fatal(err)
	}
	if x, ok := reg.Exporter("paypal"); !ok {
		t.Fatal("no paypal exporter")
	} else if _, err := x.Export(ctx, subject("req_1"), processors.ExportFunc(func(context.Context, processors.Record) error { return nil })); err != nil {
		t.Fatal(err)
	}
	if e, _ := plain.Eraser("paypal"); e != nil {
		if _, err := e.Erase(ctx, subject("req_2")); err != nil {
			t.Fatal(err)
		}
	}

	want := []string{"stripe/erase/error_retryable", "stripe/erase/done", "stripe/confirm/already_gone",
		"paypal/erase/needs_operator", "paypal/export/needs_operator"}
	heard.mu.Lock()
	defer heard.mu.Unlock()
	if len(heard.seen) != len(want) {
		t.Fatalf("heard %q, want %q", heard.seen, want)
	}
	for i := range want {
		if heard.seen[i] != want[i] {
			t.Fatalf("heard %q, want %q", heard.seen, want)
		}
	}
	if plain.Observed(nil) != plain {
		t.Error("Observed(nil) is not the registry itself")
	}
}

// A batch erasure is observed too: each call of it, as an erase.
func TestObservedRegistryReportsBatchCalls(t *testing.T) {
	ctx := context.Background()
	sg := processorfake.NewSendGrid(t)
	sg.AddContact(processorfake.SendGridContact{Email: email})
	plain, err := processors.NewRegistry([]processors.Config{{Name: "sg", Kind: "sendgrid", BaseURL: sg.URL(), CredentialEnv: "K"}},
		processors.BuildOptions{LookupEnv: envMap(map[string]string{"K": sg.APIKey})})
	if err != nil {
		t.Fatal(err)
	}
	var heard calls
	be, ok := plain.Observed(&heard).BatchEraser("sg")
	if !ok {
		t.Fatal("no batch eraser")
	}
	subjects := []processors.Subject{subject("req_1")}
	job, err := be.StartErasures(ctx, subjects)
	for i := 0; err == nil && i < 3; i++ {
		var p processors.BatchProgress
		if p, err = be.ErasuresProgress(ctx, job, subjects); p.Done {
			break
		}
		job = p.Job
	}
	if err != nil {
		t.Fatal(err)
	}
	want := "[sg/erase/pending_async sg/erase/pending_async sg/erase/done]"
	if got := fmt.Sprint(heard.seen); got != want {
		t.Fatalf("heard %s, want %s", got, want)
	}
}
