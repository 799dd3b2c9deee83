package sendgridfake_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/testenv/sendgridfake"
)

const key = "SG.test-key"

// post sends body to the fake's mail-send endpoint with key and returns the
// status, headers and body.
func post(t testing.TB, s *sendgridfake.Server, apiKey string, body any) (int, http.Header, string) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, s.URL()+sendgridfake.SendPath, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(out)
}

type errorBody struct {
	Errors []struct {
		Field   *string `json:"field"`
		Message string  `json:"message"`
	} `json:"errors"`
}

func decodeErrors(t testing.TB, body string) errorBody {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil {
		t.Fatalf("error body %q is not SendGrid's error JSON: %v", body, err)
	}
	if len(eb.Errors) == 0 {
		t.Fatalf("error body %q has no errors", body)
	}
	return eb
}

func valid() map[string]any {
	return map[string]any{
		"personalizations": []any{map[string]any{
			"to":            []any{map[string]any{"email": "ada@example.com", "name": "Ada"}},
			"substitutions": map[string]string{"-name-": "Ada", "-code-": "4821"},
			"custom_args":   map[string]string{"p": "1"},
			"headers":       map[string]string{"X-Req": "r1"},
		}},
		"from":        map[string]any{"email": "privacy@lethe.test", "name": "Privacy"},
		"subject":     "Hello -name-",
		"content":     []any{map[string]any{"type": "text/plain", "value": "Hi -name-, code -code-"}, map[string]any{"type": "text/html", "value": "<p>Hi -name-</p>"}},
		"custom_args": map[string]string{"template": "verification_code", "p": "0"},
	}
}

func TestAcceptsAndRecordsPerRecipient(t *testing.T) {
	s := sendgridfake.New(t, key)
	status, h, body := post(t, s, key, valid())
	if status != http.StatusAccepted || body != "" {
		t.Fatalf("got %d %q, want 202 and an empty body", status, body)
	}
	id := h.Get("X-Message-Id")
	if len(id) != 22 {
		t.Fatalf("X-Message-Id = %q, want a 22-character id", id)
	}
	for _, k := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if h.Get(k) == "" {
			t.Errorf("response lacks %s", k)
		}
	}
	got := s.To("ADA@example.com") // case-insensitive
	if len(got) != 1 {
		t.Fatalf("To = %d deliveries, want 1", len(got))
	}
	d := got[0]
	want := sendgridfake.Delivered{
		MessageID: id, Call: 1, Kind: "to", To: "ada@example.com", Name: "Ada",
		FromEmail: "privacy@lethe.test", FromName: "Privacy",
		Subject: "Hello Ada", Text: "Hi Ada, code 4821", HTML: "<p>Hi Ada</p>",
	}
	if d.MessageID != want.MessageID || d.Call != want.Call || d.Kind != want.Kind || d.To != want.To ||
		d.Name != want.Name || d.FromEmail != want.FromEmail || d.FromName != want.FromName ||
		d.Subject != want.Subject || d.Text != want.Text || d.HTML != want.HTML {
		t.Errorf("delivered %+v, want %+v", d, want)
	}
	if d.CustomArgs["template"] != "verification_code" || d.CustomArgs["p"] != "1" {
		t.Errorf("custom args %v: want request's merged with the personalization's", d.CustomArgs)
	}
	if d.Headers["X-Req"] != "r1" {
		t.Errorf("headers %v", d.Headers)
	}
	if s.Calls() != 1 || s.Recipients() != 1 || s.Count("ada@example.com") != 1 || len(s.Messages()) != 1 {
		t.Errorf("calls %d recipients %d count %d messages %d, want 1 each",
			s.Calls(), s.Recipients(), s.Count("ada@example.com"), len(s.Messages()))
	}
}

func TestCcBccAndPersonalizationSubject(t *testing.T) {
	s := sendgridfake.New(t, key)
	req := valid()
	delete(req, "subject")
	req["personalizations"] = []any{
		map[string]any{
			"to":      []any{map[string]any{"email": "a@example.com"}},
			"cc":      []any{map[string]any{"email": "b@example.com"}},
			"bcc":     []any{map[string]any{"email": "c@example.com"}},
			"subject": "One",
		},
		map[string]any{"to": []any{map[string]any{"email": "d@example.com"}}, "subject": "Two"},
	}
	if status, _, body := post(t, s, key, req); status != http.StatusAccepted {
		t.Fatalf("got %d %s", status, body)
	}
	msgs := s.Messages()
	if len(msgs) != 4 {
		t.Fatalf("got %d deliveries, want 4", len(msgs))
	}
	kinds := []string{"to", "cc", "bcc", "to"}
	subjects := []string{"One", "One", "One", "Two"}
	for i, m := range msgs {
		if m.Kind != kinds[i] || m.Subject != subjects[i] {
			t.Errorf("delivery %d: kind %q subject %q, want %q %q", i, m.Kind, m.Subject, kinds[i], subjects[i])
		}
	}
}

func TestAuth(t *testing.T) {
	s := sendgridfake.New(t, key)
	for _, k := range []string{"", "SG.wrong"} {
		status, _, body := post(t, s, k, valid())
		if status != http.StatusUnauthorized {
			t.Fatalf("key %q: got %d, want 401", k, status)
		}
		eb := decodeErrors(t, body)
		if eb.Errors[0].Field != nil {
			t.Errorf("401 field = %q, want null", *eb.Errors[0].Field)
		}
	}
	if s.Recipients() != 0 || s.Calls() != 2 {
		t.Errorf("recipients %d calls %d, want 0 and 2", s.Recipients(), s.Calls())
	}
}

func TestValidation(t *testing.T) {
	s := sendgridfake.New(t, key)
	recipients := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"email": fmt.Sprintf("r%d@example.com", i)}
		}
		return out
	}
	perRecipient := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"to": []any{map[string]any{"email": fmt.Sprintf("r%d@example.com", i)}}}
		}
		return out
	}
	cases := []struct {
		name   string
		change func(map[string]any)
		field  string
	}{
		{"no personalizations", func(m map[string]any) { delete(m, "personalizations") }, "personalizations"},
		{"empty personalizations", func(m map[string]any) { m["personalizations"] = []any{} }, "personalizations"},
		{"1001 personalizations", func(m map[string]any) { m["personalizations"] = perRecipient(1001) }, "personalizations"},
		{"1001 recipients", func(m map[string]any) {
			m["personalizations"] = []any{map[string]any{"to": recipients(600), "bcc": recipients(1001)[600:]}}
		}, "personalizations"},
		{"personalization without to", func(m map[string]any) {
			m["personalizations"] = []any{map[string]any{"subject": "x"}}
		}, "personalizations.0.to"},
		{"invalid address", func(m map[string]any) {
			m["personalizations"] = []any{map[string]any{"to": []any{map[string]any{"email": "not-an-address"}}}}
		}, "personalizations.0.to.0.email"},
		{"duplicate across personalizations", func(m map[string]any) {
			m["personalizations"] = []any{
				map[string]any{"to": []any{map[string]any{"email": "x@example.com"}}},
				map[string]any{"to": []any{map[string]any{"email": "X@Example.com"}}},
			}
		}, "personalizations.1.to"},
		{"duplicate to and cc", func(m map[string]any) {
			m["personalizations"] = []any{map[string]any{
				"to": []any{map[string]any{"email": "x@example.com"}},
				"cc": []any{map[string]any{"email": "x@example.com"}},
			}}
		}, "personalizations.0.cc"},
		{"no from", func(m map[string]any) { delete(m, "from") }, "from.email"},
		{"from without email", func(m map[string]any) { m["from"] = map[string]any{"name": "x"} }, "from.email"},
		{"no subject", func(m map[string]any) { delete(m, "subject") }, "subject"},
		{"no content", func(m map[string]any) { delete(m, "content") }, "content"},
		{"empty content value", func(m map[string]any) {
			m["content"] = []any{map[string]any{"type": "text/plain", "value": ""}}
		}, "content.0.value"},
		{"html before text", func(m map[string]any) {
			m["content"] = []any{map[string]any{"type": "text/html", "value": "<p>x</p>"}, map[string]any{"type": "text/plain", "value": "x"}}
		}, "content.1.type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := valid()
			c.change(req)
			status, _, body := post(t, s, key, req)
			if status != http.StatusBadRequest {
				t.Fatalf("got %d, want 400", status)
			}
			eb := decodeErrors(t, body)
			var fields []string
			for _, e := range eb.Errors {
				if e.Field != nil {
					fields = append(fields, *e.Field)
				}
				if e.Message == "" {
					t.Error("error without message")
				}
			}
			found := false
			for _, f := range fields {
				found = found || f == c.field
			}
			if !found {
				t.Errorf("error fields %v, want %q among them", fields, c.field)
			}
		})
	}
	if s.Recipients() != 0 {
		t.Errorf("rejected requests delivered %d messages", s.Recipients())
	}

	t.Run("template stands in for subject and content", func(t *testing.T) {
		req := valid()
		delete(req, "subject")
		delete(req, "content")
		req["template_id"] = "d-123"
		if status, _, body := post(t, s, key, req); status != http.StatusAccepted {
			t.Fatalf("got %d %s, want 202", status, body)
		}
	})
	t.Run("subject in every personalization", func(t *testing.T) {
		req := valid()
		delete(req, "subject")
		req["personalizations"] = []any{map[string]any{"to": []any{map[string]any{"email": "s@example.com"}}, "subject": "s"}}
		if status, _, body := post(t, s, key, req); status != http.StatusAccepted {
			t.Fatalf("got %d %s, want 202", status, body)
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		status, _, body := post(t, s, key, `{"personalizations":`)
		if status != http.StatusBadRequest {
			t.Fatalf("got %d, want 400", status)
		}
		decodeErrors(t, body)
	})
	t.Run("exactly 1000 recipients", func(t *testing.T) {
		s.Reset()
		req := valid()
		req["personalizations"] = perRecipient(1000)
		if status, _, body := post(t, s, key, req); status != http.StatusAccepted {
			t.Fatalf("got %d %s, want 202", status, body)
		}
		if s.Recipients() != 1000 {
			t.Errorf("recipients %d, want 1000", s.Recipients())
		}
	})
}

func TestDuplicateErrorQuotesAddressLikeSendGrid(t *testing.T) {
	// The real API puts the address in the message; clients must redact it.
	s := sendgridfake.New(t, key)
	req := valid()
	req["personalizations"] = []any{
		map[string]any{"to": []any{map[string]any{"email": "dup@example.com"}}},
		map[string]any{"to": []any{map[string]any{"email": "dup@example.com"}}},
	}
	_, _, body := post(t, s, key, req)
	if !strings.Contains(body, "dup@example.com") {
		t.Fatalf("duplicate error %s does not quote the address", body)
	}
}

func TestOtherRoutesAndMethods(t *testing.T) {
	s := sendgridfake.New(t, key)
	resp, err := http.Get(s.URL() + sendgridfake.SendPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	resp, err = http.Post(s.URL()+"/v3/marketing/contacts", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", resp.StatusCode)
	}
}

func TestGzipBody(t *testing.T) {
	s := sendgridfake.New(t, key)
	raw, _ := json.Marshal(valid())
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(raw)
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+sendgridfake.SendPath, &zb)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || s.Count("ada@example.com") != 1 {
		t.Fatalf("gzip body: %d, count %d", resp.StatusCode, s.Count("ada@example.com"))
	}
}

func TestFailNext(t *testing.T) {
	s := sendgridfake.New(t, key)
	s.FailNext(1, http.StatusTooManyRequests, 3*time.Second)
	s.FailNext(1, http.StatusServiceUnavailable, 2*time.Second)

	before := time.Now().Unix()
	status, h, body := post(t, s, key, valid())
	if status != http.StatusTooManyRequests {
		t.Fatalf("first call %d, want 429", status)
	}
	if eb := decodeErrors(t, body); eb.Errors[0].Message != "too many requests" {
		t.Errorf("429 message %q", eb.Errors[0].Message)
	}
	if h.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("X-RateLimit-Remaining %q, want 0", h.Get("X-RateLimit-Remaining"))
	}
	reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || reset < before+3 || reset > before+5 {
		t.Errorf("X-RateLimit-Reset %q, want about now+3s (%d)", h.Get("X-RateLimit-Reset"), before+3)
	}

	status, h, _ = post(t, s, key, valid())
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") != "2" {
		t.Fatalf("second call %d Retry-After %q, want 503 and 2", status, h.Get("Retry-After"))
	}
	if s.Recipients() != 0 {
		t.Fatal("failed calls delivered")
	}
	if status, _, _ := post(t, s, key, valid()); status != http.StatusAccepted {
		t.Fatalf("third call %d, want 202", status)
	}
	if s.Calls() != 3 || s.Recipients() != 1 {
		t.Errorf("calls %d recipients %d, want 3 and 1", s.Calls(), s.Recipients())
	}
}

func TestWaitForAndReset(t *testing.T) {
	s := sendgridfake.New(t, key)
	done := make(chan error, 1)
	go func() {
		got, err := s.WaitFor("ada@example.com", 2, 5*time.Second)
		if err == nil && len(got) != 2 {
			err = fmt.Errorf("WaitFor returned %d deliveries, want 2", len(got))
		}
		done <- err
	}()
	post(t, s, key, valid())
	post(t, s, key, valid())
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	got, err := s.WaitFor("ada@example.com", 3, 50*time.Millisecond)
	if err == nil || len(got) != 2 {
		t.Fatalf("WaitFor past what arrived: %d, %v; want 2 and a timeout error", len(got), err)
	}
	if strings.Contains(err.Error(), "@") {
		t.Errorf("timeout error quotes the address: %v", err)
	}

	s.FailNext(5, http.StatusInternalServerError, 0)
	s.Reset()
	if s.Calls() != 0 || s.Recipients() != 0 || len(s.Messages()) != 0 || s.Count("ada@example.com") != 0 {
		t.Fatal("Reset left state behind")
	}
	if status, _, _ := post(t, s, key, valid()); status != http.StatusAccepted {
		t.Fatalf("Reset left a pending failure: %d", status)
	}
}

func TestKeepBodiesFalseCountsOnly(t *testing.T) {
	s := sendgridfake.New(t, key)
	s.KeepBodies(false)
	post(t, s, key, valid())
	if len(s.Messages()) != 0 || len(s.To("ada@example.com")) != 0 {
		t.Fatal("bodies kept after KeepBodies(false)")
	}
	if s.Count("ada@example.com") != 1 || s.Recipients() != 1 {
		t.Fatalf("count %d recipients %d, want 1", s.Count("ada@example.com"), s.Recipients())
	}
	got, err := s.WaitFor("ada@example.com", 1, time.Second)
	if err != nil || len(got) != 1 || got[0].To != "ada@example.com" {
		t.Fatalf("WaitFor = %+v, %v", got, err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	s := sendgridfake.New(t, key)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				req := valid()
				req["personalizations"] = []any{map[string]any{
					"to": []any{map[string]any{"email": fmt.Sprintf("w%d-%d@example.com", i, j)}},
				}}
				raw, _ := json.Marshal(req)
				r, _ := http.NewRequest(http.MethodPost, s.URL()+sendgridfake.SendPath, bytes.NewReader(raw))
				r.Header.Set("Authorization", "Bearer "+key)
				resp, err := http.DefaultClient.Do(r)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	if s.Calls() != 80 || s.Recipients() != 80 || len(s.Messages()) != 80 {
		t.Fatalf("calls %d recipients %d messages %d, want 80", s.Calls(), s.Recipients(), len(s.Messages()))
	}
}

func TestStartClose(t *testing.T) {
	if _, err := sendgridfake.Start(""); err == nil {
		t.Fatal("Start with no key succeeded")
	}
	s, err := sendgridfake.Start(key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %q is not loopback", s.URL())
	}
	s.Close()
	if _, err := http.Post(s.URL()+sendgridfake.SendPath, "application/json", strings.NewReader("{}")); err == nil {
		t.Error("closed server still answers")
	}
}

// TestWithMailSendGrid drives the fake through Lethe's own SendGrid sender.
func TestWithMailSendGrid(t *testing.T) {
	s := sendgridfake.New(t, key)
	sg, err := mail.NewSendGrid(mail.SendGridConfig{
		APIKey: key, BaseURL: s.URL(), FromEmail: "privacy@lethe.test", FromName: "Privacy",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := sg.SendWithID(ctx, mail.Message{
		To: "ada@example.com", ToName: "Ada", Subject: "Your code", Text: "Code 4821",
		Template: "verification_code", RequestID: "req-1", IdempotencyKey: "verify/req-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.WaitFor("ada@example.com", 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].MessageID != id || got[0].Text != "Code 4821" || got[0].CustomArgs["request_id"] != "req-1" {
		t.Errorf("delivered %+v (id %q)", got[0], id)
	}

	s.FailNext(1, http.StatusTooManyRequests, time.Second)
	err = sg.Send(ctx, mail.Message{To: "ada@example.com", Subject: "s", Text: "t"})
	if err == nil || mail.IsPermanent(err) || mail.RetryAfterOf(err) <= 0 {
		t.Fatalf("429: err %v, permanent %v, retry after %v", err, mail.IsPermanent(err), mail.RetryAfterOf(err))
	}

	bulk := mail.Bulk{Subject: "Notice for -name-", Text: "Dear -name-, ref -ref-"}
	for i := range 1000 {
		bulk.Recipients = append(bulk.Recipients, mail.Recipient{
			Email: fmt.Sprintf("p%d@example.com", i), Name: fmt.Sprintf("P%d", i),
			Substitutions: map[string]string{"-ref-": strconv.Itoa(i)},
		})
	}
	res, err := sg.SendBulk(ctx, bulk)
	if err != nil || res.Accepted != 1000 || res.MessageID == "" {
		t.Fatalf("bulk: %+v, %v", res, err)
	}
	d := s.To("p999@example.com")
	if len(d) != 1 || d[0].Subject != "Notice for P999" || d[0].Text != "Dear P999, ref 999" {
		t.Fatalf("bulk delivery %+v", d)
	}
}

// BenchmarkBulkCall measures one API call carrying 1000 recipients through
// Lethe's sender, counts only; b.N = 1000 is the million-recipient run.
func BenchmarkBulkCall(b *testing.B) {
	s := sendgridfake.New(b, key)
	s.KeepBodies(false)
	sg, err := mail.NewSendGrid(mail.SendGridConfig{APIKey: key, BaseURL: s.URL(), FromEmail: "privacy@lethe.test"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	bulk := mail.Bulk{Subject: "Notice", Text: "Dear -name-, we are writing to tell you about an incident."}
	bulk.Recipients = make([]mail.Recipient, mail.MaxBulkRecipients)
	call := 0
	b.ReportAllocs()
	for b.Loop() {
		for i := range bulk.Recipients {
			bulk.Recipients[i] = mail.Recipient{
				Email: fmt.Sprintf("person-%d-%d@example.com", call, i), Name: "Person",
			}
		}
		call++
		if _, err := sg.SendBulk(ctx, bulk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.Recipients())/b.Elapsed().Seconds(), "recipients/s")
}
