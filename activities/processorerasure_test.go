package activities_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// processorSetup is a ProcessorErasure against the fakes, with one sealed
// identity.
type processorSetup struct {
	act      *activities.ProcessorErasure
	keys     *person.Keyring
	env      *testsuite.TestActivityEnvironment
	stripe   *processorfake.Stripe
	sendgrid *processorfake.SendGrid
	webhook  *processorfake.Webhook
	sealed   []byte
}

const procRef = "sr_pppppppppppppppppppppppppppppppp"

func newProcessorSetup(t *testing.T) *processorSetup {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewLethePool(t)
	master, _ := codec.GenerateKey()
	keys, err := person.NewKeyring(pool, []config.Key{master})
	if err != nil {
		t.Fatal(err)
	}
	p := &processorSetup{keys: keys, stripe: processorfake.NewStripe(t), sendgrid: processorfake.NewSendGrid(t), webhook: processorfake.NewWebhook(t)}
	p.webhook.SetAsync(true)
	env := map[string]string{"STRIPE_KEY": p.stripe.APIKey, "SENDGRID_KEY": p.sendgrid.APIKey, "HOOK_SECRET": string(p.webhook.Secret)}
	reg, err := processors.NewRegistry([]processors.Config{
		{Name: "stripe", Kind: "stripe", BaseURL: p.stripe.URL(), CredentialEnv: "STRIPE_KEY"},
		{Name: "sendgrid", Kind: "sendgrid", BaseURL: p.sendgrid.URL(), CredentialEnv: "SENDGRID_KEY"},
		{Name: "hook", Kind: "webhook", BaseURL: p.webhook.URL(), CredentialEnv: "HOOK_SECRET"},
		{Name: "paddle", Kind: "manual", Options: map[string]string{"preset": "paddle"}},
	}, processors.BuildOptions{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	if err != nil {
		t.Fatal(err)
	}
	if p.sealed, err = person.Seal(ctx, keys, procRef, person.Identity{Email: "Ann.Example@Example.com", UserID: "user-4711"}); err != nil {
		t.Fatal(err)
	}
	p.act = &activities.ProcessorErasure{Keys: keys, Processors: reg, Log: slog.New(slog.DiscardHandler)}
	var s testsuite.WorkflowTestSuite
	p.env = s.NewTestActivityEnvironment()
	p.env.RegisterActivity(p.act.EraseAtProcessor)
	p.env.RegisterActivity(p.act.ProcessorErasureStatus)
	p.env.RegisterActivity(p.act.ConfirmProcessorErasure)
	return p
}

func (p *processorSetup) input(processor string) contract.ProcessorCallInput {
	return contract.ProcessorCallInput{RequestID: "req_p", SubjectRef: procRef, Identity: p.sealed, Processor: processor}
}

func (p *processorSetup) call(t *testing.T, fn any, in any) (contract.ProcessorCall, error) {
	t.Helper()
	v, err := p.env.ExecuteActivity(fn, in)
	if err != nil {
		return contract.ProcessorCall{}, err
	}
	var c contract.ProcessorCall
	if err := v.Get(&c); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(c.Note+strings.Join(c.Steps, " ")), "ann.example") {
		t.Fatalf("personal data in %+v", c)
	}
	return c, nil
}

func TestEraseAtProcessorErasesAndAnswersWithEvidence(t *testing.T) {
	p := newProcessorSetup(t)
	id := p.stripe.AddCustomer(processorfake.StripeCustomer{Email: "Ann.Example@Example.com"})
	c, err := p.call(t, p.act.EraseAtProcessor, p.input("stripe"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != contract.ProcessorCallDone || c.HTTPStatus != http.StatusOK || c.Attempt != 1 ||
		len(c.Refs) == 0 || c.Refs[0] != (contract.ProcessorRef{Kind: "customer", ID: id}) {
		t.Fatalf("call %+v", c)
	}
	if cu, _ := p.stripe.Customer(id); !cu.Deleted {
		t.Fatal("customer not deleted")
	}
	// Weeks later, without the identity: the erasure held.
	conf, err := p.call(t, p.act.ConfirmProcessorErasure, contract.ConfirmErasureInput{RequestID: "req_p", Processor: "stripe", Erasure: c})
	if err != nil || conf.Status != contract.ProcessorCallGone {
		t.Fatalf("confirm %+v, %v", conf, err)
	}
	// Running the erasure again is harmless.
	again, err := p.call(t, p.act.EraseAtProcessor, p.input("stripe"))
	if err != nil || again.Status != contract.ProcessorCallGone {
		t.Fatalf("again %+v, %v", again, err)
	}
}

func TestEraseAtProcessorClassifiesFailuresOnce(t *testing.T) {
	p := newProcessorSetup(t)
	p.stripe.AddCustomer(processorfake.StripeCustomer{Email: "Ann.Example@Example.com"})

	p.stripe.RateLimitNext(1, 3*time.Second)
	_, err := p.call(t, p.act.EraseAtProcessor, p.input("stripe"))
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.NonRetryable() || app.NextRetryDelay() != 3*time.Second {
		t.Fatalf("429: %v (want retryable after 3s)", err)
	}
	p.stripe.FailNext(1, http.StatusServiceUnavailable)
	if _, err = p.call(t, p.act.EraseAtProcessor, p.input("stripe")); err == nil || errors.As(err, &app) && app.NonRetryable() {
		t.Fatalf("503: %v (want retryable)", err)
	}
	p.stripe.FailNext(1, http.StatusBadRequest)
	_, err = p.call(t, p.act.EraseAtProcessor, p.input("stripe"))
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != contract.RefusedNeedsOperator || strings.Contains(err.Error(), "Ann") {
		t.Fatalf("400: %v (want non-retryable NeedsOperator)", err)
	}
	_, err = p.call(t, p.act.EraseAtProcessor, p.input("nobody"))
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != "UnknownProcessor" {
		t.Fatalf("unknown processor: %v", err)
	}
}

func TestAManualProcessorAnswersWithItsStepsNotAnError(t *testing.T) {
	p := newProcessorSetup(t)
	c, err := p.call(t, p.act.EraseAtProcessor, p.input("paddle"))
	if err != nil || c.Status != contract.ProcessorCallNeedsOperator || len(c.Steps) < 2 || !strings.Contains(c.Steps[0], "Paddle") {
		t.Fatalf("manual: %+v, %v", c, err)
	}
	conf, err := p.call(t, p.act.ConfirmProcessorErasure, contract.ConfirmErasureInput{RequestID: "req_p", Processor: "paddle", Erasure: c})
	if err != nil || conf.Status != contract.ProcessorCallNeedsOperator || len(conf.Steps) == 0 {
		t.Fatalf("manual confirm: %+v, %v", conf, err)
	}
}

func TestProcessorStatusFollowsAsynchronousErasures(t *testing.T) {
	p := newProcessorSetup(t)
	// SendGrid: checked by the contact id the erasure recorded.
	id := p.sendgrid.AddContact(processorfake.SendGridContact{Email: "Ann.Example@Example.com"})
	pending := contract.ProcessorCall{Processor: "sendgrid", Status: contract.ProcessorCallPending, JobID: "job", Refs: []contract.ProcessorRef{{Kind: "contact", ID: id}}}
	in := p.input("sendgrid")
	in.Earlier = &pending
	c, err := p.call(t, p.act.ProcessorErasureStatus, in)
	if err != nil || c.Status != contract.ProcessorCallPending { // not deleted yet: still pending
		t.Fatalf("before the job: %+v, %v", c, err)
	}
	erased, err := p.call(t, p.act.EraseAtProcessor, p.input("sendgrid"))
	if err != nil || erased.Status != contract.ProcessorCallPending {
		t.Fatalf("erase: %+v, %v", erased, err)
	}
	in.Earlier = &erased
	p.sendgrid.ResetCalls()
	c, err = p.call(t, p.act.ProcessorErasureStatus, in)
	if err != nil || c.Status != contract.ProcessorCallGone || len(p.sendgrid.CallsTo(http.MethodDelete, "")) != 0 {
		t.Fatalf("after the job: %+v, %v, calls %+v", c, err, p.sendgrid.Calls())
	}

	// The webhook has no status call: asking again repeats the (idempotent) erasure.
	p.webhook.AddSubject(processorfake.WebhookSubject{UserID: "user-4711"})
	hook, err := p.call(t, p.act.EraseAtProcessor, p.input("hook"))
	if err != nil || hook.Status != contract.ProcessorCallPending || hook.JobID == "" {
		t.Fatalf("webhook erase: %+v, %v", hook, err)
	}
	in = p.input("hook")
	in.Earlier = &hook
	c, err = p.call(t, p.act.ProcessorErasureStatus, in)
	if err != nil || c.Status != contract.ProcessorCallGone || len(p.webhook.Deliveries()) != 2 {
		t.Fatalf("webhook status: %+v, %v, %d deliveries", c, err, len(p.webhook.Deliveries()))
	}
}

func TestAShreddedIdentityCannotBeErasedWith(t *testing.T) {
	p := newProcessorSetup(t)
	if err := p.keys.Destroy(context.Background(), procRef); err != nil {
		t.Fatal(err)
	}
	_, err := p.call(t, p.act.EraseAtProcessor, p.input("stripe"))
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != "IdentityShredded" {
		t.Fatalf("shredded: %v", err)
	}
	if len(p.stripe.Calls()) != 0 {
		t.Fatal("the processor was called")
	}
}

// A call in flight heartbeats: a slow processor call outlives a heartbeat
// timeout shorter than the call (the workflows' is 20 s), which a call that
// did not heartbeat would not. The test environment enforces the timeout.
func TestAProcessorCallInFlightHeartbeats(t *testing.T) {
	for _, c := range []struct {
		every time.Duration
		ok    bool
	}{{50 * time.Millisecond, true}, {time.Minute, false}} {
		p := newProcessorSetup(t)
		p.act.HeartbeatEvery = c.every
		p.stripe.AddCustomer(processorfake.StripeCustomer{Email: "Ann.Example@Example.com"})
		p.stripe.SetLatency(600 * time.Millisecond) // a search, then a delete: 1.2 s
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.RegisterActivity(p.act.EraseAtProcessor)
		env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in contract.ProcessorCallInput) (contract.ProcessorCall, error) {
			ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: 400 * time.Millisecond,
				RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
			var out contract.ProcessorCall
			err := workflow.ExecuteActivity(ctx, p.act.EraseAtProcessor, in).Get(ctx, &out)
			return out, err
		}, workflow.RegisterOptions{Name: "callStripe"})
		env.ExecuteWorkflow("callStripe", p.input("stripe"))
		err := env.GetWorkflowError()
		if c.ok && err != nil {
			t.Fatalf("heartbeating every %s: %v", c.every, err)
		}
		var timeout *temporal.TimeoutError
		if !c.ok && !errors.As(err, &timeout) {
			t.Fatalf("without heartbeats the call should time out, got %v", err)
		}
	}
}
