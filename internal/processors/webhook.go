package processors

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Webhook signature headers of the default scheme (SignatureLetheV1):
//
//	X-Lethe-Timestamp: <Unix seconds>
//	X-Lethe-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// where body is the raw request body. Receivers check it with
// VerifyWebhookSignature (or the README's snippets).
const (
	WebhookSignatureHeader = "X-Lethe-Signature"
	WebhookTimestampHeader = "X-Lethe-Timestamp"
)

// Webhook signature schemes (option signature), for receivers that already
// verify one of these common formats. Every one is an HMAC-SHA256 keyed by
// the connector's secret.
const (
	// SignatureLetheV1 (the default): X-Lethe-Timestamp and
	// X-Lethe-Signature: v1=<hex HMAC(timestamp + "." + body)>.
	SignatureLetheV1 = "lethe-v1"
	// SignatureStripe: Stripe-Signature: t=<timestamp>,v1=<hex HMAC(timestamp
	// + "." + body)>, as Stripe signs its webhooks (the whole secret, any
	// whsec_ prefix included, is the key).
	SignatureStripe = "stripe"
	// SignatureGitHubSHA256: X-Hub-Signature-256: sha256=<hex HMAC(body)>,
	// as GitHub signs its webhooks. No timestamp: a receiver drops replays
	// by the Idempotency-Key.
	SignatureGitHubSHA256 = "github-sha256"
	// SignatureStandardWebhooks (standardwebhooks.com): webhook-id (the
	// Idempotency-Key), webhook-timestamp and webhook-signature: v1,<base64
	// HMAC(id + "." + timestamp + "." + body)>, keyed by the Base64-decoded
	// secret after its whsec_ prefix (24 to 64 bytes).
	SignatureStandardWebhooks = "standard-webhooks"
)

// WebhookSignatureSchemes lists the schemes, the default first.
func WebhookSignatureSchemes() []string {
	return []string{SignatureLetheV1, SignatureStripe, SignatureGitHubSHA256, SignatureStandardWebhooks}
}

// Headers of the other schemes.
const (
	stripeSignatureHeader  = "Stripe-Signature"
	githubSignatureHeader  = "X-Hub-Signature-256"
	standardIDHeader       = "Webhook-Id"
	standardTimestampHdr   = "Webhook-Timestamp"
	standardSignatureHdr   = "Webhook-Signature"
	standardWebhooksPrefix = "whsec_"
)

// defaultSignatureHeader is the header carrying a scheme's signature.
func defaultSignatureHeader(scheme string) string {
	switch scheme {
	case SignatureStripe:
		return stripeSignatureHeader
	case SignatureGitHubSHA256:
		return githubSignatureHeader
	case SignatureStandardWebhooks:
		return standardSignatureHdr
	default:
		return WebhookSignatureHeader
	}
}

// checkWebhookSignature validates a scheme (empty: SignatureLetheV1), a
// signature header name (empty: the scheme's own) and the secret, and
// returns the HMAC key. Messages name the option, never the secret.
func checkWebhookSignature(scheme, header string, secret []byte) (key []byte, err error) {
	if scheme == "" {
		scheme = SignatureLetheV1
	}
	if !slices.Contains(WebhookSignatureSchemes(), scheme) {
		return nil, fmt.Errorf("option signature %q is not one of %s", scheme, strings.Join(WebhookSignatureSchemes(), ", "))
	}
	if header != "" && !validHeaderName(header) {
		return nil, fmt.Errorf("option signature_header %q is not an HTTP header name", header)
	}
	if header != "" && scheme == SignatureLetheV1 && strings.EqualFold(header, WebhookTimestampHeader) ||
		scheme == SignatureStandardWebhooks && (strings.EqualFold(header, standardIDHeader) || strings.EqualFold(header, standardTimestampHdr)) {
		return nil, fmt.Errorf("option signature_header %q is the timestamp or id header of signature %s", header, scheme)
	}
	if scheme != SignatureStandardWebhooks {
		if len(secret) < 16 {
			return nil, errors.New("secret must be at least 16 bytes")
		}
		return bytes.Clone(secret), nil
	}
	enc := strings.TrimPrefix(string(secret), standardWebhooksPrefix)
	key, err = base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("signature %s needs the secret as whsec_<Base64>, and it is not Base64", scheme)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("signature %s needs a secret of 24 to 64 bytes (Base64-decoded), not %d", scheme, len(key))
	}
	return key, nil
}

// validHeaderName reports whether s is an HTTP header field name (RFC 9110
// token characters).
func validHeaderName(s string) bool {
	return s != "" && len(s) <= 100 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
	})
}

// WebhookRequest is the JSON body Lethe POSTs to a webhook receiver.
type WebhookRequest struct {
	Action    Action         `json:"action"`
	RequestID string         `json:"request_id"`
	Subject   WebhookSubject `json:"subject"`
	// Fields are the corrected values (update).
	Fields map[string]string `json:"fields,omitempty"`
	// Purpose and Subscribed describe a consent change.
	Purpose    string `json:"purpose,omitempty"`
	Subscribed *bool  `json:"subscribed,omitempty"`
	// Cursor asks for the next page of an export (the previous answer's
	// next_cursor).
	Cursor string `json:"cursor,omitempty"`
}

// WebhookSubject carries the subject's identifiers.
type WebhookSubject struct {
	Email  string            `json:"email,omitempty"`
	UserID string            `json:"user_id,omitempty"`
	IDs    map[string]string `json:"ids,omitempty"`
}

// WebhookResponse is what a receiver may answer (any 2xx; the body is
// optional). Without a status, 202 means StatusPending and other 2xx
// StatusDone; 404 and 410 mean already gone (erase) or not found.
type WebhookResponse struct {
	Status Status `json:"status,omitempty"`
	// JobID identifies asynchronous work at the receiver (no personal data).
	JobID string `json:"job_id,omitempty"`
	// Records and NextCursor page an export.
	Records    []Record `json:"records,omitempty"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// WebhookConfig configures a generic signed webhook connector.
type WebhookConfig struct {
	// Name defaults to "webhook".
	Name string
	// URL receives every call (POST).
	URL string
	// Secret keys the HMAC signature (for SignatureStandardWebhooks,
	// "whsec_" + the Base64 key).
	Secret []byte
	// Signature is the scheme: SignatureLetheV1 (default), SignatureStripe,
	// SignatureGitHubSHA256 or SignatureStandardWebhooks.
	Signature string
	// SignatureHeader renames the header carrying the signature; empty
	// means the scheme's own (X-Lethe-Signature, Stripe-Signature,
	// X-Hub-Signature-256, webhook-signature).
	SignatureHeader string
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
	// Now defaults to time.Now (signature timestamps).
	Now func() time.Time
}

// Webhook POSTs signed JSON requests (WebhookRequest) for every action to
// one receiver, for processors or internal systems that implement Lethe's
// small protocol. Each POST carries an Idempotency-Key derived from the
// request id, action and cursor so a receiver can drop duplicates.
type Webhook struct {
	name      string
	key       []byte // the HMAC key
	scheme    string
	sigHeader string
	now       func() time.Time
	c         *httpClient
}

// NewWebhook checks cfg and returns a webhook connector.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if cfg.Name == "" {
		cfg.Name = "webhook"
	}
	if err := validBaseURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("webhook %q: %w", cfg.Name, err)
	}
	key, err := checkWebhookSignature(cfg.Signature, cfg.SignatureHeader, cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook %q: %w", cfg.Name, err)
	}
	if cfg.Signature == "" {
		cfg.Signature = SignatureLetheV1
	}
	if cfg.SignatureHeader == "" {
		cfg.SignatureHeader = defaultSignatureHeader(cfg.Signature)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := newHTTPClient(cfg.Name, cfg.URL, cfg.HTTPClient)
	c.now = cfg.Now
	c.code = func(body []byte) string {
		var e struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(body, &e)
		return e.Code
	}
	c.credential = "HMAC secret"
	c.signatureNote = "the signature scheme the receiver expects (option signature, now " + cfg.Signature +
		", header " + http.CanonicalHeaderKey(cfg.SignatureHeader) + ")"
	return &Webhook{name: cfg.Name, key: key, scheme: cfg.Signature, sigHeader: cfg.SignatureHeader,
		now: cfg.Now, c: c}, nil
}

// Name implements Connector.
func (h *Webhook) Name() string { return h.name }

// SignWebhook returns the X-Lethe-Signature value for body sent at ts.
func SignWebhook(secret []byte, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifyWebhookSignature checks a request's signature headers against body
// and rejects timestamps further than tolerance from now (replays).
func VerifyWebhookSignature(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(WebhookTimestampHeader), 10, 64)
	if err != nil {
		return errors.New("webhook: missing or malformed " + WebhookTimestampHeader)
	}
	t := time.Unix(ts, 0)
	if d := now.Sub(t); d > tolerance || d < -tolerance {
		return errors.New("webhook: timestamp outside tolerance")
	}
	want := SignWebhook(secret, t, body)
	for _, got := range strings.Split(h.Get(WebhookSignatureHeader), ",") {
		if hmac.Equal([]byte(strings.TrimSpace(got)), []byte(want)) {
			return nil
		}
	}
	return errors.New("webhook: signature mismatch")
}

// hmacSHA256 is HMAC-SHA256(key, parts...).
func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// sign sets the scheme's signature headers on hdr for body sent at now;
// id identifies the message (the Idempotency-Key).
func (h *Webhook) sign(hdr http.Header, now time.Time, id string, body []byte) {
	ts := strconv.FormatInt(now.Unix(), 10)
	switch h.scheme {
	case SignatureStripe:
		hdr.Set(h.sigHeader, "t="+ts+",v1="+hex.EncodeToString(hmacSHA256(h.key, []byte(ts+"."), body)))
	case SignatureGitHubSHA256:
		hdr.Set(h.sigHeader, "sha256="+hex.EncodeToString(hmacSHA256(h.key, body)))
	case SignatureStandardWebhooks:
		hdr.Set(standardIDHeader, id)
		hdr.Set(standardTimestampHdr, ts)
		hdr.Set(h.sigHeader, "v1,"+base64.StdEncoding.EncodeToString(hmacSHA256(h.key, []byte(id+"."+ts+"."), body)))
	default:
		hdr.Set(WebhookTimestampHeader, ts)
		hdr.Set(h.sigHeader, SignWebhook(h.key, now, body))
	}
}

// randomMessageID identifies a message sent without a request id (no
// Idempotency-Key), for schemes that sign an id.
func randomMessageID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "msg_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return "msg_" + hex.EncodeToString(b)
}

// send POSTs one signed request and interprets the answer.
func (h *Webhook) send(ctx context.Context, req WebhookRequest) (*response, WebhookResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, WebhookResponse{}, h.c.local(req.Action, "cannot encode request")
	}
	hdr := http.Header{}
	id := idempotencyKey(req.RequestID, h.name, string(req.Action), req.Cursor, req.Purpose,
		strconv.FormatBool(req.Subscribed != nil && *req.Subscribed))
	if id != "" {
		hdr.Set("Idempotency-Key", id)
	} else {
		id = randomMessageID()
	}
	h.sign(hdr, h.now(), id, body)
	r, err := h.c.do(ctx, req.Action, call{method: http.MethodPost, contentType: "application/json", body: body, header: hdr})
	if err != nil {
		return nil, WebhookResponse{}, err
	}
	var wr WebhookResponse
	switch {
	case r.Status == http.StatusNotFound || r.Status == http.StatusGone:
		wr.Status = StatusNotFound
		if req.Action == ActionErase {
			wr.Status = StatusAlreadyGone
		}
	case r.Status/100 != 2:
		return r, wr, h.c.fail(req.Action, r)
	default:
		if len(strings.TrimSpace(string(r.Body))) > 0 {
			if err := json.Unmarshal(r.Body, &wr); err != nil {
				return r, wr, h.c.badBody(req.Action, r)
			}
		}
		switch wr.Status {
		case "":
			wr.Status = StatusDone
			if r.Status == http.StatusAccepted {
				wr.Status = StatusPending
			}
		case StatusDone, StatusAlreadyGone, StatusNotFound, StatusPending, StatusNeedsOperator, StatusNotApplicable:
		default:
			e := h.c.badBody(req.Action, r)
			e.Reason = "unknown status in response"
			return r, wr, e
		}
	}
	wr.JobID = scrub(wr.JobID)
	return r, wr, nil
}

func (h *Webhook) request(action Action, subj Subject) WebhookRequest {
	return WebhookRequest{Action: action, RequestID: subj.RequestID,
		Subject: WebhookSubject{Email: subj.Email, UserID: subj.UserID, IDs: subj.IDs}}
}

func (h *Webhook) simple(ctx context.Context, req WebhookRequest) (Outcome, error) {
	r, wr, err := h.send(ctx, req)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Processor: h.name, Action: req.Action, Status: wr.Status, HTTPStatus: r.Status, JobID: wr.JobID}, nil
}

// Erase implements Eraser.
func (h *Webhook) Erase(ctx context.Context, subj Subject) (Outcome, error) {
	return h.simple(ctx, h.request(ActionErase, subj))
}

// Update implements Rectifier; fields are sent as given.
func (h *Webhook) Update(ctx context.Context, subj Subject, fields map[string]string) (Outcome, error) {
	if len(fields) == 0 {
		return Outcome{}, h.c.local(ActionUpdate, "no fields to update")
	}
	req := h.request(ActionUpdate, subj)
	req.Fields = fields
	return h.simple(ctx, req)
}

// SetSubscribed implements ConsentSetter; the receiver decides which
// purposes it handles (answering not_applicable for the others).
func (h *Webhook) SetSubscribed(ctx context.Context, subj Subject, purpose string, subscribed bool) (Outcome, error) {
	req := h.request(ActionConsent, subj)
	req.Purpose = purpose
	req.Subscribed = &subscribed
	return h.simple(ctx, req)
}

// maxWebhookPages bounds an export, against a receiver that never stops.
const maxWebhookPages = 100000

// Export implements Exporter, following next_cursor page by page.
func (h *Webhook) Export(ctx context.Context, subj Subject, w ExportWriter) (Outcome, error) {
	req := h.request(ActionExport, subj)
	out := Outcome{Processor: h.name, Action: ActionExport}
	seen := map[string]bool{}
	for page := 0; ; page++ {
		r, wr, err := h.send(ctx, req)
		if err != nil {
			return Outcome{}, err
		}
		out.HTTPStatus, out.Status, out.JobID = r.Status, wr.Status, wr.JobID
		for _, rec := range wr.Records {
			if rec.Kind == "" {
				rec.Kind = h.name + ".record"
			}
			if err := writeRecord(ctx, w, h.name, rec); err != nil {
				return Outcome{}, err
			}
			out.Records++
		}
		if wr.Status != StatusDone || wr.NextCursor == "" {
			if out.Status == StatusDone && out.Records == 0 {
				out.Status = StatusNotFound
			}
			return out, nil
		}
		if seen[wr.NextCursor] || page >= maxWebhookPages {
			e := h.c.badBody(ActionExport, r)
			e.Reason = "export cursor does not advance"
			return Outcome{}, e
		}
		seen[wr.NextCursor] = true
		req.Cursor = wr.NextCursor
	}
}
