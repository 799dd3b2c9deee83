// Package mail is how Lethe sends email.
//
// A Sender sends one Message. Three implementations compose:
//
//   - SendGrid sends through Twilio SendGrid's v3 mail-send API, and can also
//     send one message to up to 1000 recipients per call (SendBulk).
//   - Outbox writes each message as a readable text file, for development
//     when no SendGrid key is configured.
//   - Once wraps another Sender and makes it idempotent by
//     Message.IdempotencyKey, using the lethe.mail_sent table.
//
// Lethe's rule is that personal data never appears in logs or errors, so no
// error from this package contains an email address, a name or a message
// body: only statuses, field names and the API's own messages with anything
// that looks like an address redacted.
//
// Retrying is not this package's job: Temporal retries activities. Errors say
// whether a retry can help (IsPermanent) and how long to wait (RetryAfterOf).
package mail

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Message is one email to one person.
type Message struct {
	// To is the recipient's address and ToName their display name (optional).
	To, ToName string
	// Subject is required; Text and/or HTML is the body.
	Subject, Text, HTML string
	// Template names the kind of message, e.g. "verification_code". It is
	// recorded (lethe.mail_sent, SendGrid custom_args, outbox files), not
	// rendered.
	Template string
	// IdempotencyKey identifies this message across retries: the same key
	// must mean the same message. Once requires it; others record it.
	IdempotencyKey string
	// RequestID is the privacy request the message belongs to, if any.
	RequestID string
}

// Sender sends one message.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Recipient is one addressee of a bulk message.
type Recipient struct {
	Email, Name string
	// Substitutions are this recipient's values for tags in the subject and
	// bodies, e.g. {"-code-": "4821"}. NameTag is filled from Name unless
	// set here.
	Substitutions map[string]string
}

// NameTag is replaced by each recipient's name in a bulk message.
const NameTag = "-name-"

// MaxBulkRecipients is the most recipients one SendBulk call takes (SendGrid's
// per-request limit).
const MaxBulkRecipients = 1000

// Bulk is one message to many people, each getting their own copy with their
// own substitutions applied; recipients do not see each other.
type Bulk struct {
	Recipients []Recipient
	// Subject, Text and HTML are shared; tags in them are substituted per
	// recipient.
	Subject, Text, HTML string
	// Template, RequestID and IdempotencyKey are recorded as for Message.
	Template, RequestID, IdempotencyKey string
}

// BulkResult describes an accepted bulk send.
type BulkResult struct {
	// MessageID is SendGrid's X-Message-Id for the call (empty from Outbox).
	MessageID string
	// Accepted is the number of recipients handed over.
	Accepted int
}

// BulkSender sends one message to many recipients in one call.
type BulkSender interface {
	SendBulk(ctx context.Context, b Bulk) (BulkResult, error)
}

// ErrInvalidMessage marks messages that cannot be sent as they are; retrying
// will not help.
var ErrInvalidMessage = errors.New("mail: invalid message")

// ErrTooManyRecipients is returned for a bulk message with more than
// MaxBulkRecipients recipients. It is also an ErrInvalidMessage.
var ErrTooManyRecipients = fmt.Errorf("%w: too many recipients", ErrInvalidMessage)

// SendError is a failed call to the mail provider. Its text holds the status
// and the provider's messages with addresses redacted, never personal data.
type SendError struct {
	// Status is the HTTP status, 0 when no response arrived (network error,
	// cancelled context).
	Status int
	// RetryAfter is how long the provider asked us to wait, 0 when it did
	// not say.
	RetryAfter time.Duration
	// Permanent is true when retrying the same request cannot succeed
	// (400, 401, 403, 413 and other client errors).
	Permanent bool
	// Messages are the provider's error messages, redacted.
	Messages []string
	// Err is the transport error when Status is 0.
	Err error
}

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("sendgrid: ")
	if e.Status == 0 {
		b.WriteString("request failed")
	} else {
		fmt.Fprintf(&b, "status %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Permanent {
		b.WriteString(" (permanent)")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	if len(e.Messages) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Messages, "; "))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// IsPermanent reports whether err says that retrying the same send cannot
// succeed: an invalid message or a permanent provider error.
func IsPermanent(err error) bool {
	if errors.Is(err, ErrInvalidMessage) {
		return true
	}
	var se *SendError
	return errors.As(err, &se) && se.Permanent
}

// RetryAfterOf is the wait the provider asked for in err, or 0.
func RetryAfterOf(err error) time.Duration {
	var se *SendError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// Validate checks that m can be sent. Its errors wrap ErrInvalidMessage and
// name fields, never their values.
func (m Message) Validate() error {
	switch {
	case strings.TrimSpace(m.To) == "":
		return fmt.Errorf("%w: no recipient address", ErrInvalidMessage)
	case !strings.Contains(m.To, "@"):
		return fmt.Errorf("%w: recipient address is malformed", ErrInvalidMessage)
	case strings.TrimSpace(m.Subject) == "":
		return fmt.Errorf("%w: no subject", ErrInvalidMessage)
	case m.Text == "" && m.HTML == "":
		return fmt.Errorf("%w: no body", ErrInvalidMessage)
	}
	return nil
}

// Validate checks that b can be sent in one call: 1 to MaxBulkRecipients
// recipients with distinct addresses, a subject and a body. Errors name
// recipients by index, never by address.
func (b Bulk) Validate() error {
	switch n := len(b.Recipients); {
	case n == 0:
		return fmt.Errorf("%w: no recipients", ErrInvalidMessage)
	case n > MaxBulkRecipients:
		return fmt.Errorf("%w: %d recipients, at most %d per call", ErrTooManyRecipients, n, MaxBulkRecipients)
	}
	if strings.TrimSpace(b.Subject) == "" {
		return fmt.Errorf("%w: no subject", ErrInvalidMessage)
	}
	if b.Text == "" && b.HTML == "" {
		return fmt.Errorf("%w: no body", ErrInvalidMessage)
	}
	seen := make(map[string]int, len(b.Recipients))
	for i, r := range b.Recipients {
		if !strings.Contains(r.Email, "@") {
			return fmt.Errorf("%w: recipient %d has no valid address", ErrInvalidMessage, i)
		}
		k := strings.ToLower(strings.TrimSpace(r.Email))
		if j, dup := seen[k]; dup {
			return fmt.Errorf("%w: recipient %d has the same address as recipient %d", ErrInvalidMessage, i, j)
		}
		seen[k] = i
	}
	return nil
}

// substitutions returns r's tags and values, with NameTag from r.Name.
func (r Recipient) substitutions() map[string]string {
	subs := make(map[string]string, len(r.Substitutions)+1)
	for k, v := range r.Substitutions {
		subs[k] = v
	}
	if _, ok := subs[NameTag]; !ok {
		subs[NameTag] = r.Name
	}
	return subs
}

// redact replaces every whitespace-separated word containing '@' with
// "[redacted]", so provider messages that quote an address can be kept.
func redact(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	words := strings.Fields(s)
	for i, w := range words {
		if strings.Contains(w, "@") {
			words[i] = "[redacted]"
		}
	}
	return strings.Join(words, " ")
}
