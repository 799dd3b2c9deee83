package processors_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

// Compile-time checks of which connector can confirm an erasure.
var (
	_ processors.Confirmer = (*processors.Stripe)(nil)
	_ processors.Confirmer = (*processors.Mailchimp)(nil)
	_ processors.Confirmer = (*processors.SendGrid)(nil)
	_ processors.Confirmer = (*processors.OpenDSR)(nil)
	_ processors.Confirmer = (*processors.Webhook)(nil)
	_ processors.Confirmer = (*processors.Manual)(nil)
)

func TestStripeConfirmChecksTheErasedCustomerByIDAlone(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewStripe(t)
	gone := f.AddCustomer(processorfake.StripeCustomer{Email: email, Name: "Ann"})
	stays := f.AddCustomer(processorfake.StripeCustomer{Email: "other@example.org"})
	c := newStripe(t, f)

	erased, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, erased, err, processors.StatusDone)
	f.ResetCalls()
	out, err := c.Confirm(ctx, erased)
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	gets := f.CallsTo(http.MethodGet, "/v1/customers/")
	if len(f.Calls()) != 1 || len(gets) != 1 || gets[0].Path != "/v1/customers/"+gone || out.HTTPStatus != http.StatusOK {
		t.Fatalf("calls %+v, outcome %+v", f.Calls(), out) // {"deleted":true}, no search by email
	}

	// A customer that is still there (here: one never erased) is reported.
	out, err = c.Confirm(ctx, processors.Outcome{Status: processors.StatusDone, Refs: []processors.Ref{{Kind: "customer", ID: stays}}})
	mustOutcome(t, out, err, processors.StatusStillPresent)
	// An id Stripe no longer knows at all is gone too.
	out, err = c.Confirm(ctx, processors.Outcome{Status: processors.StatusDone, Refs: []processors.Ref{{Kind: "customer", ID: "cus_unknown"}}})
	mustOutcome(t, out, err, processors.StatusAlreadyGone)

	// Nothing was erased: nothing to check, and no call.
	f.ResetCalls()
	out, err = c.Confirm(ctx, processors.Outcome{Status: processors.StatusAlreadyGone})
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	// Erased, but without an id to check by: a person must ask.
	out, err = c.Confirm(ctx, processors.Outcome{Status: processors.StatusDone})
	mustOutcome(t, out, err, processors.StatusNeedsOperator)
	if len(f.Calls()) != 0 || len(out.Steps) == 0 {
		t.Fatalf("calls %+v, steps %v", f.Calls(), out.Steps)
	}

	f.FailNext(1, http.StatusServiceUnavailable)
	out, err = c.Confirm(ctx, erased)
	mustError(t, out, err, processors.KindRetryable, http.StatusServiceUnavailable)
}

func TestMailchimpEraseRecordsTheContactIDNotTheSubscriberHashAndConfirmUsesIt(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewMailchimp(t)
	f.AddMember("news", processorfake.MailchimpMember{Email: email})
	f.AddList("empty")
	c := newMailchimp(t, f, "news", "empty")
	before, _ := f.Member("news", email)

	erased, err := c.Erase(ctx, subject("req-1")) // mustOutcome checks the hash is not in it
	mustOutcome(t, erased, err, processors.StatusDone)
	var members []string
	for _, r := range erased.Refs {
		if r.Kind == "member" {
			members = append(members, r.ID)
		}
	}
	if len(members) != 1 || members[0] != "news/"+before.ContactID {
		t.Fatalf("member refs %v, want news/%s", members, before.ContactID)
	}

	f.ResetCalls()
	out, err := c.Confirm(ctx, erased)
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	calls := f.Calls()
	if len(calls) != 1 || calls[0].Method != http.MethodGet || calls[0].Path != "/3.0/lists/news/members/"+before.ContactID {
		t.Fatalf("calls %+v", calls)
	}

	// The person subscribes again later: a new contact, not the erased one.
	f.AddMember("news", processorfake.MailchimpMember{Email: email})
	out, err = c.Confirm(ctx, erased)
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	// The erased contact still there is reported.
	f2 := processorfake.NewMailchimp(t)
	f2.AddMember("news", processorfake.MailchimpMember{Email: email})
	m, _ := f2.Member("news", email)
	out, err = newMailchimp(t, f2, "news").Confirm(ctx, processors.Outcome{Status: processors.StatusDone,
		Refs: []processors.Ref{{Kind: "member", ID: "news/" + m.ContactID}}})
	mustOutcome(t, out, err, processors.StatusStillPresent)
}

func TestSendGridConfirmSeesTheContactUntilTheDeleteJobRan(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewSendGrid(t)
	id := f.AddContact(processorfake.SendGridContact{Email: email})
	c := newSendGrid(t, f)
	pending := processors.Outcome{Status: processors.StatusPending, JobID: "job", Refs: []processors.Ref{{Kind: "contact", ID: id}}}

	out, err := c.Confirm(ctx, pending) // the job has not run: the contact is there
	mustOutcome(t, out, err, processors.StatusStillPresent)
	erased, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, erased, err, processors.StatusPending)
	f.ResetCalls()
	out, err = c.Confirm(ctx, erased)
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	if calls := f.Calls(); len(calls) != 1 || calls[0].Path != "/v3/marketing/contacts/"+id || out.JobID != erased.JobID {
		t.Fatalf("calls %+v, outcome %+v", calls, out)
	}
}

func TestOpenDSRConfirmReadsTheRequestStatus(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	c := newOpenDSR(t, f, func(cfg *processors.OpenDSRConfig) { cfg.Verifier = verifierFor(f) })
	erased, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, erased, err, processors.StatusPending)
	posts := len(f.CallsTo(http.MethodPost, "/v2/requests"))

	out, err := c.Confirm(ctx, erased)
	mustOutcome(t, out, err, processors.StatusPending)
	if err := f.Complete(ctx, erased.JobID); err != nil {
		t.Fatal(err)
	}
	out, err = c.Confirm(ctx, erased)
	mustOutcome(t, out, err, processors.StatusDone)
	if out.JobID != erased.JobID || len(f.CallsTo(http.MethodPost, "/v2/requests")) != posts {
		t.Fatalf("outcome %+v; Confirm filed a request", out)
	}
	out, err = c.Confirm(ctx, processors.Outcome{Status: processors.StatusDone, JobID: processors.OpenDSRRequestID("other", "erasure")})
	mustOutcome(t, out, err, processors.StatusNeedsOperator)
}

func TestWebhookAndManualConfirmAskAPerson(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewWebhook(t)
	out, err := newWebhook(t, f).Confirm(ctx, processors.Outcome{Status: processors.StatusDone, JobID: "job-7"})
	mustOutcome(t, out, err, processors.StatusNeedsOperator)
	if len(f.Calls()) != 0 || len(out.Steps) != 1 || !strings.Contains(out.Steps[0], "job-7") {
		t.Fatalf("calls %d, steps %v", len(f.Calls()), out.Steps)
	}
	m, err := processors.NewManual(processors.ManualConfig{Name: "paypal"})
	if err != nil {
		t.Fatal(err)
	}
	out, err = m.Confirm(ctx, processors.Outcome{Status: processors.StatusDone})
	mustOutcome(t, out, err, processors.StatusNeedsOperator)
	if len(out.Steps) != 1 || !strings.Contains(out.Steps[0], "paypal") || out.Action != processors.ActionConfirm {
		t.Fatalf("outcome %+v", out)
	}
}

func TestRegistryFindsConfirmers(t *testing.T) {
	r, err := processors.NewRegistry([]processors.Config{{Name: "paddle", Kind: "manual", Options: map[string]string{"preset": "paddle"}}},
		processors.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Confirmer("paddle"); !ok {
		t.Fatal("manual connector cannot confirm")
	}
	if _, ok := r.Confirmer("nobody"); ok {
		t.Fatal("unknown name confirms")
	}
}
