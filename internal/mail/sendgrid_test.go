package mail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/testenv/sendgridfake"
)

const testKey = "SG.test-key"

// Personal data the tests send; no error may contain any of it.
const (
	adaEmail = "ada.lovelace@example.com"
	adaName  = "Ada Lovelace"
	adaBody  = "Your verification code is 4821"
)

func newSendGrid(t *testing.T, baseURL string) *SendGrid {
	t.Helper()
	sg, err := NewSendGrid(SendGridConfig{
		APIKey: testKey, BaseURL: baseURL + "/", FromEmail: "privacy@lethe.test", FromName: "Privacy team",
	})
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func adaMessage() Message {
	return Message{
		To: adaEmail, ToName: adaName, Subject: "Your code", Text: adaBody, HTML: "<p>" + adaBody + "</p>",
		Template: "verification_code", RequestID: "req-1", IdempotencyKey: "verify/req-1",
	}
}

// assertNoPersonalData fails when err's text holds anything personal.
func assertNoPersonalData(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	for _, pd := range []string{"@", adaEmail, adaName, "Ada", "Lovelace", adaBody, "4821", testKey} {
		if strings.Contains(msg, pd) {
			t.Errorf("error %q contains %q", msg, pd)
		}
	}
}

func TestNewSendGridConfig(t *testing.T) {
	if _, err := NewSendGrid(SendGridConfig{FromEmail: "a@b.test"}); err == nil {
		t.Error("no API key accepted")
	}
	if _, err := NewSendGrid(SendGridConfig{APIKey: "k"}); err == nil {
		t.Error("no from address accepted")
	}
	sg, err := NewSendGrid(SendGridConfig{APIKey: "k", FromEmail: "a@b.test"})
	if err != nil || sg.cfg.BaseURL != DefaultSendGridURL {
		t.Errorf("default base URL %q, %v", sg.cfg.BaseURL, err)
	}
}

func TestSendGridSend(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	id, err := sg.SendWithID(context.Background(), adaMessage())
	if err != nil {
		t.Fatal(err)
	}
	if id == "" {
		t.Fatal("no X-Message-Id returned")
	}
	got := fake.To(adaEmail)
	if len(got) != 1 {
		t.Fatalf("fake got %d messages, want 1", len(got))
	}
	d := got[0]
	if d.MessageID != id || d.Name != adaName || d.Subject != "Your code" || d.Text != adaBody ||
		d.HTML != "<p>"+adaBody+"</p>" || d.FromEmail != "privacy@lethe.test" || d.FromName != "Privacy team" {
		t.Errorf("delivered %+v", d)
	}
	wantArgs := map[string]string{"template": "verification_code", "request_id": "req-1", "idempotency_key": "verify/req-1"}
	for k, v := range wantArgs {
		if d.CustomArgs[k] != v {
			t.Errorf("custom_args[%s] = %q, want %q", k, d.CustomArgs[k], v)
		}
	}

	// Text only and HTML only are both fine.
	for _, m := range []Message{{To: "t@example.com", Subject: "s", Text: "t"}, {To: "h@example.com", Subject: "s", HTML: "<b>h</b>"}} {
		if err := sg.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if fake.To("h@example.com")[0].HTML != "<b>h</b>" {
		t.Error("HTML-only message lost its body")
	}
}

func TestSendGridInvalidMessageNeverCalls(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	for _, m := range []Message{
		{Subject: "s", Text: "t"},
		{To: "no-at-sign", Subject: "s", Text: "t"},
		{To: adaEmail, Text: "t"},
		{To: adaEmail, Subject: "s"},
	} {
		err := sg.Send(context.Background(), m)
		if !errors.Is(err, ErrInvalidMessage) || !IsPermanent(err) {
			t.Errorf("%+v: err %v, want a permanent ErrInvalidMessage", m, err)
		}
	}
	if fake.Calls() != 0 {
		t.Errorf("invalid messages made %d calls", fake.Calls())
	}
}

func TestSendGridErrorClassification(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	ctx := context.Background()

	cases := []struct {
		status     int
		retryAfter time.Duration
		permanent  bool
		minWait    time.Duration
		maxWait    time.Duration
	}{
		{http.StatusTooManyRequests, 3 * time.Second, false, 2 * time.Second, 4 * time.Second},
		{http.StatusTooManyRequests, 0, false, 0, time.Second},
		{http.StatusInternalServerError, 0, false, 0, 0},
		{http.StatusBadGateway, 0, false, 0, 0},
		{http.StatusServiceUnavailable, 7 * time.Second, false, 7 * time.Second, 7 * time.Second},
		{http.StatusBadRequest, 0, true, 0, 0},
		{http.StatusUnauthorized, 0, true, 0, 0},
		{http.StatusForbidden, 0, true, 0, 0},
		{http.StatusRequestEntityTooLarge, 0, true, 0, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d", c.status), func(t *testing.T) {
			fake.FailNext(1, c.status, c.retryAfter)
			err := sg.Send(ctx, adaMessage())
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("err %v (%T), want *SendError", err, err)
			}
			if se.Status != c.status || se.Permanent != c.permanent || IsPermanent(err) != c.permanent {
				t.Errorf("got status %d permanent %v, want %d %v", se.Status, se.Permanent, c.status, c.permanent)
			}
			if se.RetryAfter < c.minWait || se.RetryAfter > c.maxWait || RetryAfterOf(err) != se.RetryAfter {
				t.Errorf("retry after %v, want %v..%v", se.RetryAfter, c.minWait, c.maxWait)
			}
			if len(se.Messages) == 0 {
				t.Error("SendGrid's error message was dropped")
			}
			if !strings.Contains(err.Error(), strconv.Itoa(c.status)) {
				t.Errorf("error %q does not name the status", err)
			}
			assertNoPersonalData(t, err)
		})
	}
	// Retryable failures do not leave the message half-sent: the next call goes through.
	if err := sg.Send(ctx, adaMessage()); err != nil {
		t.Fatal(err)
	}
	if fake.Calls() != len(cases)+1 || fake.Count(adaEmail) != 1 {
		t.Errorf("calls %d deliveries %d: the sender must not retry on its own", fake.Calls(), fake.Count(adaEmail))
	}
}

func TestSendGridWrongKey(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg, err := NewSendGrid(SendGridConfig{APIKey: "SG.wrong", BaseURL: fake.URL(), FromEmail: "privacy@lethe.test"})
	if err != nil {
		t.Fatal(err)
	}
	err = sg.Send(context.Background(), adaMessage())
	var se *SendError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || !se.Permanent {
		t.Fatalf("err %v, want permanent 401", err)
	}
	if strings.Contains(err.Error(), "SG.wrong") {
		t.Errorf("error %q leaks the API key", err)
	}
}

func TestSendGridRedactsAddressesInAPIErrors(t *testing.T) {
	// The real API quotes the duplicate address in its message; the fake too.
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	// Bypass Bulk.Validate to make SendGrid itself reject a duplicate.
	body := mailSend{
		Personalizations: []personalization{{To: []address{{Email: adaEmail}}}, {To: []address{{Email: strings.ToUpper(adaEmail)}}}},
		From:             address{Email: "privacy@lethe.test"},
		Subject:          "s",
		Content:          contents(adaBody, ""),
	}
	_, err := sg.post(context.Background(), &body)
	var se *SendError
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !se.Permanent {
		t.Fatalf("err %v, want permanent 400", err)
	}
	if !strings.Contains(err.Error(), "personalizations.1.to") || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q should name the field and redact the address", err)
	}
	assertNoPersonalData(t, err)
}

func TestSendGridNetworkError(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	sg := newSendGrid(t, url)
	err = sg.Send(context.Background(), adaMessage())
	var se *SendError
	if !errors.As(err, &se) || se.Status != 0 || se.Permanent || se.Err == nil {
		t.Fatalf("err %v, want a retryable *SendError with status 0", err)
	}
	assertNoPersonalData(t, err)
}

func TestSendGridContextCancelled(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := sg.Send(ctx, adaMessage())
	if !errors.Is(err, context.Canceled) || IsPermanent(err) {
		t.Fatalf("err %v, want a retryable error wrapping context.Canceled", err)
	}
}

func TestSendGridCustomHTTPClient(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	var calls int
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		return http.DefaultTransport.RoundTrip(r)
	})}
	sg, err := NewSendGrid(SendGridConfig{APIKey: testKey, BaseURL: fake.URL(), FromEmail: "privacy@lethe.test", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if err := sg.Send(context.Background(), adaMessage()); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || fake.Count(adaEmail) != 1 {
		t.Errorf("custom client used %d times, fake got %d", calls, fake.Count(adaEmail))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSendGridNonJSONErrorBodyIsNotQuoted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(90*time.Second).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "<html>upstream echoed %s</html>", adaEmail)
	}))
	t.Cleanup(srv.Close)
	err := newSendGrid(t, srv.URL).Send(context.Background(), adaMessage())
	var se *SendError
	if !errors.As(err, &se) || se.Status != http.StatusBadGateway || se.Permanent {
		t.Fatalf("err %v, want retryable 502", err)
	}
	if se.RetryAfter < 80*time.Second || se.RetryAfter > 91*time.Second {
		t.Errorf("retry after %v from an HTTP-date Retry-After, want about 90s", se.RetryAfter)
	}
	assertNoPersonalData(t, err)
}

func TestRetryAfterHeaders(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	reset := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	cases := []struct {
		name   string
		status int
		h      http.Header
		want   time.Duration
	}{
		{"none", 429, http.Header{}, 0},
		{"seconds", 503, http.Header{"Retry-After": {"12"}}, 12 * time.Second},
		{"date", 503, http.Header{"Retry-After": {now.Add(30 * time.Second).UTC().Format(http.TimeFormat)}}, 30 * time.Second},
		{"rate-limit reset on 429", 429, http.Header{"X-Ratelimit-Reset": {reset(5 * time.Second)}}, 5 * time.Second},
		{"rate-limit reset with budget left on 500", 500, http.Header{"X-Ratelimit-Remaining": {"599"}, "X-Ratelimit-Reset": {reset(40 * time.Second)}}, 0},
		{"rate-limit reset with budget used up on 500", 500, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset(40 * time.Second)}}, 40 * time.Second},
		{"reset in the past", 429, http.Header{"X-Ratelimit-Reset": {reset(-5 * time.Second)}}, 0},
		{"garbage", 429, http.Header{"Retry-After": {"soon"}, "X-Ratelimit-Reset": {"later"}}, 0},
		{"retry-after wins", 429, http.Header{"Retry-After": {"2"}, "X-Ratelimit-Reset": {reset(50 * time.Second)}}, 2 * time.Second},
	}
	for _, c := range cases {
		if got := retryAfter(c.h, c.status, now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSendGridRateLimitResetUsesClock(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	sg.now = func() time.Time { return time.Now().Add(-time.Minute) }
	fake.FailNext(1, http.StatusTooManyRequests, time.Second)
	if d := RetryAfterOf(sg.Send(context.Background(), adaMessage())); d < time.Minute || d > time.Minute+3*time.Second {
		t.Errorf("retry after %v, want about a minute on a clock a minute behind", d)
	}
}

func bulkOf(n int) Bulk {
	b := Bulk{
		Subject: "About your account, -name-", Text: "Dear -name-, your reference is -ref-.",
		HTML: "<p>Dear -name-</p>", Template: "breach_notice", RequestID: "incident-7", IdempotencyKey: "breach/7/batch/0",
	}
	for i := range n {
		b.Recipients = append(b.Recipients, Recipient{
			Email: fmt.Sprintf("person%d@example.com", i), Name: fmt.Sprintf("Person %d", i),
			Substitutions: map[string]string{"-ref-": fmt.Sprintf("R%04d", i)},
		})
	}
	return b
}

func TestSendGridBulk(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	res, err := sg.SendBulk(context.Background(), bulkOf(MaxBulkRecipients))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != MaxBulkRecipients || res.MessageID == "" || fake.Calls() != 1 {
		t.Fatalf("result %+v after %d calls", res, fake.Calls())
	}
	if fake.Recipients() != MaxBulkRecipients {
		t.Fatalf("fake got %d recipients", fake.Recipients())
	}
	d := fake.To("person42@example.com")
	if len(d) != 1 {
		t.Fatalf("person42 got %d messages", len(d))
	}
	if d[0].Subject != "About your account, Person 42" || d[0].Text != "Dear Person 42, your reference is R0042." ||
		d[0].HTML != "<p>Dear Person 42</p>" || d[0].Name != "Person 42" || d[0].MessageID != res.MessageID {
		t.Errorf("person42 got %+v", d[0])
	}
	if d[0].CustomArgs["template"] != "breach_notice" {
		t.Errorf("custom args %v", d[0].CustomArgs)
	}

	// An explicit -name- substitution wins over Name.
	b := bulkOf(1)
	b.Recipients[0].Substitutions[NameTag] = "friend"
	b.Recipients[0].Email = "friend@example.com"
	if _, err := sg.SendBulk(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got := fake.To("friend@example.com")[0].Text; got != "Dear friend, your reference is R0000." {
		t.Errorf("text %q", got)
	}
}

func TestSendGridBulkRejectedBeforeCalling(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	dup := bulkOf(3)
	dup.Recipients[2].Email = strings.ToUpper(dup.Recipients[0].Email)
	noAddr := bulkOf(2)
	noAddr.Recipients[1].Email = ""
	noSubject := bulkOf(2)
	noSubject.Subject = ""
	noBody := bulkOf(2)
	noBody.Text, noBody.HTML = "", ""
	cases := map[string]struct {
		b    Bulk
		want error
	}{
		"1001 recipients": {bulkOf(MaxBulkRecipients + 1), ErrTooManyRecipients},
		"none":            {bulkOf(0), ErrInvalidMessage},
		"duplicate":       {dup, ErrInvalidMessage},
		"no address":      {noAddr, ErrInvalidMessage},
		"no subject":      {noSubject, ErrInvalidMessage},
		"no body":         {noBody, ErrInvalidMessage},
	}
	for name, c := range cases {
		_, err := sg.SendBulk(context.Background(), c.b)
		if !errors.Is(err, c.want) || !errors.Is(err, ErrInvalidMessage) || !IsPermanent(err) {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
			continue
		}
		assertNoPersonalData(t, err)
		if strings.Contains(err.Error(), "person") {
			t.Errorf("%s: error %q quotes a recipient", name, err)
		}
	}
	if fake.Calls() != 0 {
		t.Errorf("invalid bulks made %d calls", fake.Calls())
	}
}

func TestSendGridBulkFailureIsWholeCall(t *testing.T) {
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	fake.FailNext(1, http.StatusServiceUnavailable, 0)
	res, err := sg.SendBulk(context.Background(), bulkOf(10))
	if err == nil || IsPermanent(err) || res.Accepted != 0 {
		t.Fatalf("result %+v err %v, want a retryable error and nothing accepted", res, err)
	}
	assertNoPersonalData(t, err)
	if _, err := sg.SendBulk(context.Background(), bulkOf(10)); err != nil {
		t.Fatal(err)
	}
	if fake.Recipients() != 10 {
		t.Errorf("recipients %d, want 10", fake.Recipients())
	}
}
