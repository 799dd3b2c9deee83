package processors_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func TestMailchimpSubscriberHashMatchesTheGuide(t *testing.T) {
	if got := processors.MailchimpSubscriberHash("Urist.McVankab@FreddiesJokes.com"); got != "62eeb292278cc15f5817cb78f7790b08" {
		t.Fatalf("hash %s", got)
	}
	if got, err := processors.MailchimpBaseURL("abc123-us6"); err != nil || got != "https://us6.api.mailchimp.com/3.0" {
		t.Fatalf("base URL %q, %v", got, err)
	}
	if _, err := processors.MailchimpBaseURL("nodatacentre"); err == nil {
		t.Fatal("a key without data centre gave a URL")
	}
}

func TestMailchimpEraseEveryListThenAlreadyGone(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewMailchimp(t)
	f.AddMember("news", processorfake.MailchimpMember{Email: email, MergeFields: map[string]string{"FNAME": "Ann"}})
	f.AddMember("offers", processorfake.MailchimpMember{Email: email})
	f.AddList("empty")
	c := newMailchimp(t, f, "news", "offers", "empty")

	out, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusDone)
	for _, l := range []string{"news", "offers"} {
		if _, ok := f.Member(l, email); ok || !f.Forgotten(l, email) {
			t.Fatalf("member still in %s", l)
		}
	}
	posts := f.CallsTo(http.MethodPost, "/3.0/lists/")
	if len(posts) != 3 || !strings.HasSuffix(posts[0].Path, "/members/"+processorfake.SubscriberHash(email)+"/actions/delete-permanent") {
		t.Fatalf("calls %+v", posts)
	}
	if posts[0].Header.Get("Authorization") == "" {
		t.Fatal("no auth header")
	}

	out, err = c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	if out.HTTPStatus != http.StatusNotFound {
		t.Fatalf("http status %d", out.HTTPStatus)
	}
}

func TestMailchimpUnknownListNeedsAnOperator(t *testing.T) {
	f := processorfake.NewMailchimp(t)
	out, err := newMailchimp(t, f, "typo").Erase(context.Background(), subject("r"))
	e := mustError(t, out, err, processors.KindNeedsOperator, http.StatusNotFound)
	if !strings.Contains(e.Error(), "typo") {
		t.Fatalf("error does not name the list: %v", e)
	}
}

func TestMailchimpExportUpdateAndConsent(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewMailchimp(t)
	f.AddMember("news", processorfake.MailchimpMember{Email: email, MergeFields: map[string]string{"FNAME": "Anne"}})
	c := newMailchimp(t, f, "news")

	var col collector
	out, err := c.Export(ctx, subject("r"), &col)
	mustOutcome(t, out, err, processors.StatusDone)
	if len(col.records) != 1 || col.records[0].Kind != "mailchimp.member" {
		t.Fatalf("records %+v", col.records)
	}
	var m map[string]any
	if err := json.Unmarshal(col.records[0].Data, &m); err != nil || !strings.EqualFold(m["email_address"].(string), email) {
		t.Fatalf("exported member %s", col.records[0].Data)
	}

	out, err = c.Update(ctx, subject("r"), map[string]string{"first_name": "Ann", "COMPANY": "Acme"})
	mustOutcome(t, out, err, processors.StatusDone)
	got, _ := f.Member("news", email)
	if got.MergeFields["FNAME"] != "Ann" || got.MergeFields["COMPANY"] != "Acme" {
		t.Fatalf("merge fields %v", got.MergeFields)
	}

	out, err = c.SetSubscribed(ctx, subject("r"), "marketing", false)
	mustOutcome(t, out, err, processors.StatusDone)
	if got, _ := f.Member("news", email); got.Status != "unsubscribed" {
		t.Fatalf("status %s", got.Status)
	}
	out, err = c.SetSubscribed(ctx, subject("r"), "marketing", true)
	mustOutcome(t, out, err, processors.StatusDone)
	if got, _ := f.Member("news", email); got.Status != "subscribed" {
		t.Fatalf("status %s", got.Status)
	}
	out, err = c.SetSubscribed(ctx, subject("r"), "ai_training", false)
	mustOutcome(t, out, err, processors.StatusNotApplicable)
}

func TestMailchimpMissingMemberIsNotFound(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewMailchimp(t)
	f.AddList("news")
	c := newMailchimp(t, f, "news")
	var col collector
	out, err := c.Export(ctx, subject("r"), &col)
	mustOutcome(t, out, err, processors.StatusNotFound)
	out, err = c.Update(ctx, subject("r"), map[string]string{"last_name": "X"})
	mustOutcome(t, out, err, processors.StatusNotFound)
	out, err = c.SetSubscribed(ctx, subject("r"), "marketing", false)
	mustOutcome(t, out, err, processors.StatusNotFound)
}

func TestMailchimpResubscribeAfterErasureNeedsOperatorWithoutLeakingEmail(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewMailchimp(t)
	f.AddMember("news", processorfake.MailchimpMember{Email: email})
	c := newMailchimp(t, f, "news")
	if _, err := c.Erase(ctx, subject("r")); err != nil {
		t.Fatal(err)
	}
	out, err := c.SetSubscribed(ctx, subject("r"), "marketing", true)
	e := mustError(t, out, err, processors.KindNeedsOperator, http.StatusBadRequest)
	if e.Code != "Forgotten Email Not Subscribed" {
		t.Fatalf("code %q", e.Code)
	}
	// The fake's problem detail quotes the address, as Mailchimp's does.
	last := f.Calls()[len(f.Calls())-1]
	if last.Status != http.StatusBadRequest {
		t.Fatalf("last call %+v", last)
	}
}
