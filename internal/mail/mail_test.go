package mail

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"too many requests": "too many requests",
		"We found the first duplicate instance of [ada@example.com] in the personalizations.1.to field.": "We found the first duplicate instance of [redacted] in the personalizations.1.to field.",
		`e.g. {"email" : "example@example.com"}`:                                                         `e.g. {"email" : [redacted]`,
		"a@b  and\tc@d":                                                                                  "[redacted] and [redacted]",
	}
	for in, want := range cases {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorMessagesBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"errors":[`)
	for i := range 8 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"field":"f%d","message":"%s user%d@example.com"}`, i, strings.Repeat("x", 400), i)
	}
	b.WriteString(`]}`)
	msgs := errorMessages(b.String())
	if len(msgs) != maxMessages+1 || msgs[maxMessages] != "and 3 more" {
		t.Fatalf("got %d messages, last %q", len(msgs), msgs[len(msgs)-1])
	}
	for _, m := range msgs[:maxMessages] {
		if len(m) > maxMessageLen+len("…") || strings.Contains(m, "@") {
			t.Errorf("message %q too long or unredacted", m)
		}
	}
	if got := errorMessages(`{"errors":[{"field":null,"message":"too many requests"}]}`); len(got) != 1 || got[0] != "too many requests" {
		t.Errorf("null field: %q", got)
	}
	if got := errorMessages("not json"); got != nil {
		t.Errorf("non-JSON body quoted: %q", got)
	}
}

func TestSendErrorText(t *testing.T) {
	e := &SendError{Status: 429, RetryAfter: 2 * time.Second, Messages: []string{"too many requests"}}
	if got, want := e.Error(), "sendgrid: status 429 Too Many Requests (retry after 2s): too many requests"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	cause := errors.New("dial tcp: connection refused")
	e = &SendError{Err: cause}
	if !errors.Is(e, cause) || e.Error() != "sendgrid: request failed: dial tcp: connection refused" {
		t.Errorf("network error %q", e)
	}
	e = &SendError{Status: 400, Permanent: true}
	if e.Error() != "sendgrid: status 400 Bad Request (permanent)" {
		t.Errorf("got %q", e)
	}
	wrapped := fmt.Errorf("activity: %w", e)
	if !IsPermanent(wrapped) || RetryAfterOf(wrapped) != 0 {
		t.Error("classification lost through wrapping")
	}
	if IsPermanent(errors.New("x")) || IsPermanent(nil) {
		t.Error("unknown errors are not permanent")
	}
}
