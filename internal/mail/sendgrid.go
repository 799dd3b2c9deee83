package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	"github.com/sendgrid/sendgrid-go"
)

// DefaultSendGridURL is SendGrid's global API host.
const DefaultSendGridURL = "https://api.sendgrid.com"

// sendPath is the v3 mail-send endpoint.
const sendPath = "/v3/mail/send"

// SendGridConfig configures a SendGrid sender.
type SendGridConfig struct {
	// APIKey is sent as "Authorization: Bearer <APIKey>". Required.
	APIKey string
	// BaseURL is the API host, DefaultSendGridURL when empty; tests point it
	// at sendgridfake.
	BaseURL string
	// FromEmail and FromName are the sender identity. FromEmail is required
	// and must be verified in SendGrid.
	FromEmail, FromName string
	// HTTPClient makes the calls; nil means sendgrid.DefaultClient.
	HTTPClient *http.Client
}

// SendGrid sends mail through Twilio SendGrid's v3 mail-send API. Each send is
// exactly one HTTP call: failures come back as *SendError for Temporal to
// retry, never retried here.
type SendGrid struct {
	cfg    SendGridConfig
	client *rest.Client
	now    func() time.Time
}

var (
	_ Sender     = (*SendGrid)(nil)
	_ BulkSender = (*SendGrid)(nil)
)

// NewSendGrid returns a SendGrid sender.
func NewSendGrid(cfg SendGridConfig) (*SendGrid, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("mail: sendgrid: no API key")
	}
	if !strings.Contains(cfg.FromEmail, "@") {
		return nil, errors.New("mail: sendgrid: no valid from address")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultSendGridURL
	}
	s := &SendGrid{cfg: cfg, now: time.Now}
	if cfg.HTTPClient != nil {
		s.client = &rest.Client{HTTPClient: cfg.HTTPClient}
	}
	return s, nil
}

// Send sends m. See SendWithID.
func (s *SendGrid) Send(ctx context.Context, m Message) error {
	_, err := s.SendWithID(ctx, m)
	return err
}

// SendWithID sends m and returns SendGrid's X-Message-Id, which the Event
// Webhook quotes. SendGrid answering 202 means queued, not delivered. The
// message's Template, RequestID and IdempotencyKey travel as custom_args.
func (s *SendGrid) SendWithID(ctx context.Context, m Message) (string, error) {
	if err := m.Validate(); err != nil {
		return "", err
	}
	body := mailSend{
		Personalizations: []personalization{{To: []address{{Email: m.To, Name: m.ToName}}}},
		From:             address{Email: s.cfg.FromEmail, Name: s.cfg.FromName},
		Subject:          m.Subject,
		Content:          contents(m.Text, m.HTML),
		CustomArgs:       customArgs(m.Template, m.RequestID, m.IdempotencyKey),
	}
	return s.post(ctx, &body)
}

// SendBulk sends b in one call, one personalization per recipient with that
// recipient's substitutions. More than MaxBulkRecipients recipients, or any
// other invalid bulk, is refused before calling SendGrid. The whole call
// succeeds or fails: on error no recipient is known to have been accepted.
func (s *SendGrid) SendBulk(ctx context.Context, b Bulk) (BulkResult, error) {
	if err := b.Validate(); err != nil {
		return BulkResult{}, err
	}
	ps := make([]personalization, len(b.Recipients))
	for i, r := range b.Recipients {
		ps[i] = personalization{
			To:            []address{{Email: r.Email, Name: r.Name}},
			Substitutions: r.substitutions(),
		}
	}
	body := mailSend{
		Personalizations: ps,
		From:             address{Email: s.cfg.FromEmail, Name: s.cfg.FromName},
		Subject:          b.Subject,
		Content:          contents(b.Text, b.HTML),
		CustomArgs:       customArgs(b.Template, b.RequestID, b.IdempotencyKey),
	}
	id, err := s.post(ctx, &body)
	if err != nil {
		return BulkResult{}, err
	}
	return BulkResult{MessageID: id, Accepted: len(b.Recipients)}, nil
}

// post makes one mail-send call and classifies the outcome.
func (s *SendGrid) post(ctx context.Context, body *mailSend) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		// Marshalling strings and maps cannot fail; keep the cause out of
		// the message anyway, it could quote content.
		return "", fmt.Errorf("%w: cannot encode request", ErrInvalidMessage)
	}
	req := sendgrid.GetRequest(s.cfg.APIKey, sendPath, s.cfg.BaseURL)
	req.Method = rest.Post
	req.Body = buf.Bytes()

	var resp *rest.Response
	var err error
	if s.client != nil {
		resp, err = s.client.SendWithContext(ctx, req)
	} else {
		resp, err = sendgrid.MakeRequestWithContext(ctx, req)
	}
	if err != nil {
		return "", &SendError{Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return http.Header(resp.Headers).Get("X-Message-Id"), nil
	}
	return "", s.classify(resp)
}

// classify turns a non-2xx answer into a *SendError.
func (s *SendGrid) classify(resp *rest.Response) *SendError {
	e := &SendError{
		Status:   resp.StatusCode,
		Messages: errorMessages(resp.Body),
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode >= 500:
		e.RetryAfter = retryAfter(http.Header(resp.Headers), resp.StatusCode, s.now())
	case resp.StatusCode >= 400:
		// 400 bad request, 401 key, 403 sender identity, 413 too large and
		// the rest of 4xx: the same request will fail the same way.
		e.Permanent = true
	default:
		// 1xx/3xx are not answers mail send gives; let a retry find out.
	}
	return e
}

// retryAfter reads Retry-After (seconds or HTTP date), else SendGrid's
// X-RateLimit-Reset (unix seconds) when the answer is a 429 or the limit is
// used up; 0 when neither says. SendGrid puts X-RateLimit-Reset on every
// answer, so on a 5xx with budget left it is no reason to wait.
func retryAfter(h http.Header, status int, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 {
			return time.Duration(secs) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	limited := status == http.StatusTooManyRequests || strings.TrimSpace(h.Get("X-RateLimit-Remaining")) == "0"
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); limited && v != "" {
		if unix, err := strconv.ParseInt(v, 10, 64); err == nil {
			if d := time.Unix(unix, 0).Sub(now); d > 0 {
				return d
			}
		}
	}
	return 0
}

// maxMessages and maxMessageLen bound what an error keeps of SendGrid's body.
const (
	maxMessages   = 5
	maxMessageLen = 300
)

// errorMessages extracts SendGrid's {"errors":[{"field","message"}]} as
// "field: message" strings with addresses redacted. A body that is not
// SendGrid's error JSON yields nothing: it is not quoted.
func errorMessages(body string) []string {
	var parsed struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
		} `json:"errors"`
	}
	if body == "" || json.Unmarshal([]byte(body), &parsed) != nil {
		return nil
	}
	var out []string
	for _, e := range parsed.Errors {
		if len(out) == maxMessages {
			out = append(out, fmt.Sprintf("and %d more", len(parsed.Errors)-maxMessages))
			break
		}
		msg := e.Message
		if e.Field != nil && *e.Field != "" {
			msg = *e.Field + ": " + msg
		}
		msg = redact(msg)
		if len(msg) > maxMessageLen {
			msg = strings.ToValidUTF8(msg[:maxMessageLen], "") + "…"
		}
		out = append(out, msg)
	}
	return out
}

func contents(text, html string) []content {
	var cs []content
	// SendGrid requires text/plain first, then text/html.
	if text != "" {
		cs = append(cs, content{Type: "text/plain", Value: text})
	}
	if html != "" {
		cs = append(cs, content{Type: "text/html", Value: html})
	}
	return cs
}

// customArgs are echoed by SendGrid's Event Webhook; they hold no personal
// data.
func customArgs(template, requestID, idempotencyKey string) map[string]string {
	args := make(map[string]string, 3)
	if template != "" {
		args["template"] = template
	}
	if requestID != "" {
		args["request_id"] = requestID
	}
	if idempotencyKey != "" {
		args["idempotency_key"] = idempotencyKey
	}
	if len(args) == 0 {
		return nil
	}
	return args
}

// Wire types of the v3 mail-send body.

type address struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

type personalization struct {
	To            []address         `json:"to"`
	Substitutions map[string]string `json:"substitutions,omitempty"`
}

type content struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type mailSend struct {
	Personalizations []personalization `json:"personalizations"`
	From             address           `json:"from"`
	Subject          string            `json:"subject"`
	Content          []content         `json:"content"`
	CustomArgs       map[string]string `json:"custom_args,omitempty"`
}
