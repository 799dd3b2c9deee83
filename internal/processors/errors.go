package processors

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Kind says what the caller should do about an *Error.
type Kind string

const (
	// KindRetryable: try again later (429, 5xx, network failures, timeouts),
	// after Error.RetryAfter when it is set.
	KindRetryable Kind = "retryable"
	// KindNeedsOperator: repeating the same call will not help (400, 401,
	// 403, an unknown list, an unsupported field...); an operator must look.
	KindNeedsOperator Kind = "needs_operator"
)

// Error is the one error type connectors return for processor failures.
// Its message names the processor, the action, the HTTP status and the
// processor's error code, and never the email or other personal values:
// Temporal keeps error strings in workflow histories.
type Error struct {
	// Processor is the connector's name.
	Processor string
	Action    Action
	Kind      Kind
	// Status is the HTTP status; 0 for network failures and local checks.
	Status int
	// Code is the processor's machine-readable error code (e.g. Stripe's
	// "invalid_request_error/resource_missing", Mailchimp's title), scrubbed.
	Code string
	// RetryAfter is how long the processor asked us to wait (Retry-After,
	// X-RateLimit-Reset...), 0 when it did not say.
	RetryAfter time.Duration
	// RequestID is the processor's id for the failed call, for its support.
	RequestID string
	// Reason is Lethe's own short, non-personal explanation.
	Reason string
	// Check, for a 401 or 403, says what to look at: the variable holding
	// the credential, the webhook's signature scheme. Never a secret.
	Check string
	// Err is the underlying error (network, context), if any.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Processor)
	if e.Action != "" {
		b.WriteString(" " + string(e.Action))
	}
	b.WriteString(":")
	if e.Status != 0 {
		fmt.Fprintf(&b, " HTTP %d", e.Status)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	refused := e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	if refused {
		check := e.Check
		if check == "" {
			check = defaultAuthCheck
		}
		b.WriteString(": the processor refused our signature or credential: check " + check)
	}
	if e.Reason != "" {
		if refused {
			b.WriteString(";")
		}
		b.WriteString(" " + e.Reason)
	}
	if e.Err != nil {
		b.WriteString(" " + scrub(e.Err.Error()))
	}
	fmt.Fprintf(&b, " (%s", e.Kind)
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.RequestID != "" {
		b.WriteString(", processor request " + e.RequestID)
	}
	b.WriteString(")")
	return b.String()
}

// defaultAuthCheck is what a refused credential asks to check when the
// connector knows no better.
const defaultAuthCheck = "the credential in the variable named by the processor's credential_env"

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the call may succeed if repeated.
func (e *Error) Retryable() bool { return e.Kind == KindRetryable }

// AsError finds an *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsRetryable reports whether err is an *Error of KindRetryable.
func IsRetryable(err error) bool {
	e, ok := AsError(err)
	return ok && e.Kind == KindRetryable
}

// NeedsOperator reports whether err is an *Error of KindNeedsOperator.
func NeedsOperator(err error) bool {
	e, ok := AsError(err)
	return ok && e.Kind == KindNeedsOperator
}

// KindForStatus classifies an HTTP status: 408, 409, 425, 429 and 5xx
// (except 501 and 505) are retryable, everything else needs an operator.
func KindForStatus(status int) Kind {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusConflict,
		status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return KindRetryable
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return KindNeedsOperator
	case status >= 500:
		return KindRetryable
	default:
		return KindNeedsOperator
	}
}

// ParseRetryAfter reads how long a processor asked the client to wait:
// Retry-After (delay in seconds or an HTTP date), Help Scout's
// X-RateLimit-Retry-After (seconds), then SendGrid's X-RateLimit-Reset (a
// Unix time; small values are taken as seconds to wait). It returns 0 when
// none is present or the time has passed.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return seconds(n)
		}
		if t, err := http.ParseTime(v); err == nil {
			return positive(t.Sub(now))
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Retry-After")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return seconds(n)
		}
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			n := int64(f)
			if n > 1_000_000_000 { // a Unix time, as SendGrid sends
				return positive(time.Unix(n, 0).Sub(now))
			}
			return seconds(n)
		}
	}
	return 0
}

func seconds(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	const maxSeconds = int64(7 * 24 * time.Hour / time.Second)
	return time.Duration(min(n, maxSeconds)) * time.Second
}

func positive(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	// Round up to whole seconds: the headers have second precision.
	return (d + time.Second - 1).Truncate(time.Second)
}

// scrub replaces every token that looks like an email address (also
// URL-encoded) and bounds the length of a processor-supplied or network
// error string.
func scrub(s string) string {
	isDelim := func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(`"'<>(),;`, r) }
	var b strings.Builder
	start := -1
	flush := func(end int) {
		tok := s[start:end]
		if strings.Contains(tok, "@") || strings.Contains(strings.ToLower(tok), "%40") {
			b.WriteString("[redacted]")
		} else {
			b.WriteString(tok)
		}
	}
	for i, r := range s {
		switch {
		case isDelim(r):
			if start >= 0 {
				flush(i)
				start = -1
			}
			b.WriteRune(r)
		case start < 0:
			start = i
		}
	}
	if start >= 0 {
		flush(len(s))
	}
	out := b.String()
	if len(out) > 200 {
		out = strings.ToValidUTF8(out[:200], "") + "…"
	}
	return out
}
