package processors_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

// Compile-time checks of which connector implements what.
var (
	_ processors.Eraser        = (*processors.Stripe)(nil)
	_ processors.Exporter      = (*processors.Stripe)(nil)
	_ processors.Rectifier     = (*processors.Stripe)(nil)
	_ processors.Eraser        = (*processors.Mailchimp)(nil)
	_ processors.Exporter      = (*processors.Mailchimp)(nil)
	_ processors.Rectifier     = (*processors.Mailchimp)(nil)
	_ processors.ConsentSetter = (*processors.Mailchimp)(nil)
	_ processors.Eraser        = (*processors.SendGrid)(nil)
	_ processors.Exporter      = (*processors.SendGrid)(nil)
	_ processors.Rectifier     = (*processors.SendGrid)(nil)
	_ processors.ConsentSetter = (*processors.SendGrid)(nil)
	_ processors.Eraser        = (*processors.Webhook)(nil)
	_ processors.Exporter      = (*processors.Webhook)(nil)
	_ processors.Rectifier     = (*processors.Webhook)(nil)
	_ processors.ConsentSetter = (*processors.Webhook)(nil)
	_ processors.Eraser        = (*processors.OpenDSR)(nil)
	_ processors.Exporter      = (*processors.OpenDSR)(nil)
	_ processors.Eraser        = (*processors.Manual)(nil)
	_ processors.Exporter      = (*processors.Manual)(nil)
	_ processors.Rectifier     = (*processors.Manual)(nil)
	_ processors.ConsentSetter = (*processors.Manual)(nil)
)

// The personal values the tests use; none may appear in an Outcome or an
// error string.
const (
	email  = "Ann.Example@Example.com"
	userID = "user-4711"
)

func subject(requestID string) processors.Subject {
	return processors.Subject{RequestID: requestID, Email: email, UserID: userID}
}

// assertNoPII fails if any form of the test email (or user id) appears in
// the outcome's JSON or the error's message.
func assertNoPII(t *testing.T, out processors.Outcome, err error) {
	t.Helper()
	data, jerr := json.Marshal(out)
	if jerr != nil {
		t.Fatal(jerr)
	}
	texts := map[string]string{"outcome": string(data)}
	if err != nil {
		texts["error"] = err.Error()
	}
	forms := []string{email, strings.ToLower(email), url.QueryEscape(email), url.PathEscape(strings.ToLower(email)),
		processors.MailchimpSubscriberHash(email), "Ann.Example", userID}
	for where, text := range texts {
		for _, f := range forms {
			if strings.Contains(strings.ToLower(text), strings.ToLower(f)) {
				t.Errorf("%s contains personal data %q: %s", where, f, text)
			}
		}
	}
}

// collector is an ExportWriter keeping records in memory.
type collector struct{ records []processors.Record }

func (c *collector) WriteRecord(_ context.Context, r processors.Record) error {
	c.records = append(c.records, r)
	return nil
}

func (c *collector) kinds() map[string]int {
	m := map[string]int{}
	for _, r := range c.records {
		m[r.Kind]++
	}
	return m
}

func mustOutcome(t *testing.T, out processors.Outcome, err error, want processors.Status) processors.Outcome {
	t.Helper()
	assertNoPII(t, out, err)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if out.Status != want {
		t.Fatalf("status %q, want %q (outcome %+v)", out.Status, want, out)
	}
	return out
}

func mustError(t *testing.T, out processors.Outcome, err error, kind processors.Kind, status int) *processors.Error {
	t.Helper()
	assertNoPII(t, out, err)
	e, ok := processors.AsError(err)
	if !ok {
		t.Fatalf("want *processors.Error, got %T %v", err, err)
	}
	if e.Kind != kind || e.Status != status {
		t.Fatalf("error kind %s status %d, want %s %d: %v", e.Kind, e.Status, kind, status, err)
	}
	return e
}

func newStripe(t *testing.T, f *processorfake.Stripe, mod ...func(*processors.StripeConfig)) *processors.Stripe {
	t.Helper()
	cfg := processors.StripeConfig{BaseURL: f.URL(), APIKey: f.APIKey}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := processors.NewStripe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newMailchimp(t *testing.T, f *processorfake.Mailchimp, lists ...string) *processors.Mailchimp {
	t.Helper()
	c, err := processors.NewMailchimp(processors.MailchimpConfig{BaseURL: f.URL(), APIKey: f.APIKey, ListIDs: lists})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newSendGrid(t *testing.T, f *processorfake.SendGrid) *processors.SendGrid {
	t.Helper()
	c, err := processors.NewSendGrid(processors.SendGridConfig{BaseURL: f.URL(), APIKey: f.APIKey,
		GroupIDs: map[string]int{"marketing": 42}, GlobalPurposes: []string{"all_email"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newWebhook(t *testing.T, f *processorfake.Webhook) *processors.Webhook {
	t.Helper()
	c, err := processors.NewWebhook(processors.WebhookConfig{URL: f.URL(), Secret: f.Secret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newOpenDSR(t *testing.T, f *processorfake.OpenDSR, mod ...func(*processors.OpenDSRConfig)) *processors.OpenDSR {
	t.Helper()
	cfg := processors.OpenDSRConfig{BaseURL: f.URL(), Username: f.Username(), Password: f.Password()}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := processors.NewOpenDSR(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
