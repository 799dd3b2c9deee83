package processors

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook signature headers. The signature is
//
//	X-Lethe-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// where timestamp is the X-Lethe-Timestamp value (Unix seconds) and body
// the raw request body. Receivers check it with VerifyWebhookSignature.
const (
	WebhookSignatureHeader = "X-Lethe-Signature"
	WebhookTimestampHeader = "X-Lethe-Timestamp"
)

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
	// Secret keys the HMAC signature.
	Secret []byte
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
	name   string
	secret []byte
	now    func() time.Time
	c      *httpClient
}

// NewWebhook checks cfg and returns a webhook connector.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if cfg.Name == "" {
		cfg.Name = "webhook"
	}
	if err := validBaseURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("webhook %q: %w", cfg.Name, err)
	}
	if len(cfg.Secret) < 16 {
		return nil, fmt.Errorf("webhook %q: secret must be at least 16 bytes", cfg.Name)
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
	return &Webhook{name: cfg.Name, secret: append([]byte(nil), cfg.Secret...), now: cfg.Now, c: c}, nil
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

// send POSTs one signed request and interprets the answer.
func (h *Webhook) send(ctx context.Context, req WebhookRequest) (*response, WebhookResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, WebhookResponse{}, h.c.local(req.Action, "cannot encode request")
	}
	now := h.now()
	hdr := http.Header{
		WebhookTimestampHeader: {strconv.FormatInt(now.Unix(), 10)},
		WebhookSignatureHeader: {SignWebhook(h.secret, now, body)},
	}
	if key := idempotencyKey(req.RequestID, h.name, string(req.Action), req.Cursor, req.Purpose,
		strconv.FormatBool(req.Subscribed != nil && *req.Subscribed)); key != "" {
		hdr.Set("Idempotency-Key", key)
	}
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
