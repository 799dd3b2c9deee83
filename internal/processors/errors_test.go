package processors_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second},
		{"http date", http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"date in the past", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"sendgrid reset", http.Header{"X-Ratelimit-Reset": {"1777636830"}}, 30 * time.Second},
		{"reset as seconds", http.Header{"X-Ratelimit-Reset": {"12"}}, 12 * time.Second},
		{"help scout", http.Header{"X-Ratelimit-Retry-After": {"4"}}, 4 * time.Second},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"none", http.Header{}, 0},
	} {
		if got := processors.ParseRetryAfter(tc.header, now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestKindForStatus(t *testing.T) {
	for status, want := range map[int]processors.Kind{
		400: processors.KindNeedsOperator, 401: processors.KindNeedsOperator, 403: processors.KindNeedsOperator,
		404: processors.KindNeedsOperator, 409: processors.KindRetryable, 429: processors.KindRetryable,
		500: processors.KindRetryable, 501: processors.KindNeedsOperator, 502: processors.KindRetryable,
		503: processors.KindRetryable, 504: processors.KindRetryable,
	} {
		if got := processors.KindForStatus(status); got != want {
			t.Errorf("%d: %s, want %s", status, got, want)
		}
	}
}

// erasers builds every HTTP connector against its fake, with the subject
// known there, and returns the connector plus the fake's shared Server.
type eraseTarget struct {
	c processors.Eraser
	s *processorfake.Server
}

func erasers(t *testing.T) map[string]eraseTarget {
	out := map[string]eraseTarget{}
	st := processorfake.NewStripe(t)
	st.AddCustomer(processorfake.StripeCustomer{Email: email})
	out["stripe"] = eraseTarget{newStripe(t, st), st.Server}
	mc := processorfake.NewMailchimp(t)
	mc.AddMember("news", processorfake.MailchimpMember{Email: email})
	out["mailchimp"] = eraseTarget{newMailchimp(t, mc, "news"), mc.Server}
	sg := processorfake.NewSendGrid(t)
	sg.AddContact(processorfake.SendGridContact{Email: email})
	out["sendgrid"] = eraseTarget{newSendGrid(t, sg), sg.Server}
	wh := processorfake.NewWebhook(t)
	wh.AddSubject(processorfake.WebhookSubject{Email: email})
	out["webhook"] = eraseTarget{newWebhook(t, wh), wh.Server}
	od := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	out["opendsr"] = eraseTarget{newOpenDSR(t, od), od.Server}
	hs := processorfake.NewHelpScout(t)
	hs.AddCustomer(processorfake.HelpScoutCustomer{Emails: []string{email}})
	out["helpscout"] = eraseTarget{newHelpScout(t, hs, nil).(processors.Eraser), hs.Server}
	return out
}

func TestErrorClassificationForEveryConnector(t *testing.T) {
	ctx := context.Background()
	for name, e := range erasers(t) {
		t.Run(name, func(t *testing.T) {
			e.s.FailNext(1, http.StatusServiceUnavailable)
			out, err := e.c.Erase(ctx, subject("req-err"))
			mustError(t, out, err, processors.KindRetryable, http.StatusServiceUnavailable)
			if !processors.IsRetryable(err) || processors.NeedsOperator(err) {
				t.Fatal("helpers disagree with the kind")
			}

			e.s.FailNext(1, http.StatusInternalServerError)
			out, err = e.c.Erase(ctx, subject("req-err"))
			mustError(t, out, err, processors.KindRetryable, http.StatusInternalServerError)

			e.s.RateLimitNext(1, 3*time.Second)
			out, err = e.c.Erase(ctx, subject("req-err"))
			pe := mustError(t, out, err, processors.KindRetryable, http.StatusTooManyRequests)
			// SendGrid announces a reset time (whole seconds), the others a delay.
			if pe.RetryAfter < 3*time.Second || pe.RetryAfter > 5*time.Second {
				t.Fatalf("retry after %s, want about 3s", pe.RetryAfter)
			}
			if !strings.Contains(err.Error(), "retry after") {
				t.Fatalf("message does not tell the wait: %v", err)
			}

			e.s.FailNext(1, http.StatusBadRequest)
			out, err = e.c.Erase(ctx, subject("req-err"))
			mustError(t, out, err, processors.KindNeedsOperator, http.StatusBadRequest)
			if !processors.NeedsOperator(err) {
				t.Fatal("NeedsOperator is false")
			}

			e.s.DropNext(1)
			out, err = e.c.Erase(ctx, subject("req-err"))
			mustError(t, out, err, processors.KindRetryable, 0)

			// After the faults the call goes through.
			out, err = e.c.Erase(ctx, subject("req-err"))
			assertNoPII(t, out, err)
			if err != nil {
				t.Fatalf("after faults: %v", err)
			}
			for _, c := range e.s.Calls() {
				if c.Injected && c.Status == 0 {
					continue
				}
				if c.Status == 0 {
					t.Fatalf("call without status: %+v", c)
				}
			}
		})
	}
}

func TestTimeoutIsRetryableAndUnwrapsToContextError(t *testing.T) {
	f := processorfake.NewStripe(t)
	f.SetLatency(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	out, err := newStripe(t, f).Erase(ctx, subject("r"))
	mustError(t, out, err, processors.KindRetryable, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error does not unwrap to the deadline: %v", err)
	}
}

func TestBadCredentialsNeedOperator(t *testing.T) {
	f := processorfake.NewStripe(t)
	c, err := processors.NewStripe(processors.StripeConfig{BaseURL: f.URL(), APIKey: "sk_test_wrong"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Erase(context.Background(), subject("r"))
	e := mustError(t, out, err, processors.KindNeedsOperator, http.StatusUnauthorized)
	if e.RequestID == "" || !strings.Contains(e.Error(), e.RequestID) {
		t.Fatalf("processor request id missing: %v", e)
	}
}

func TestSubjectPrintsRedacted(t *testing.T) {
	s := processors.Subject{RequestID: "req-9", Email: email, UserID: userID,
		IDs: map[string]string{processors.IDStripeCustomer: "cus_1"}}
	for _, text := range []string{s.String(), s.GoString(), s.LogValue().String()} {
		if strings.Contains(text, "Ann") || strings.Contains(text, userID) || strings.Contains(text, "cus_1") {
			t.Fatalf("subject printed personal data: %s", text)
		}
		if !strings.Contains(text, "req-9") || !strings.Contains(text, processors.IDStripeCustomer) {
			t.Fatalf("subject print lost the non-personal parts: %s", text)
		}
	}
}

func TestErrorMessageScrubsEmailsFromUnderlyingErrors(t *testing.T) {
	e := &processors.Error{Processor: "x", Action: processors.ActionErase, Kind: processors.KindRetryable,
		Err: errors.New(`dial "ann@example.com" and ann%40example.com failed`)}
	if msg := e.Error(); strings.Contains(msg, "example.com") {
		t.Fatalf("message leaks: %s", msg)
	}
}
