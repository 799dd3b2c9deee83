package processorfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultWebhookSecret is the HMAC secret a new Webhook fake checks.
const DefaultWebhookSecret = "whsec-lethe-fake-0123456789"

// WebhookSubject is a person the webhook receiver knows.
type WebhookSubject struct {
	UserID string
	Email  string
	// Records are what an export returns, one JSON value each.
	Records []json.RawMessage
	// Fields holds the values received by updates.
	Fields map[string]string
	// Subscribed holds the consent per purpose received so far.
	Subscribed map[string]bool
}

// WebhookDelivery is one verified request the receiver accepted.
type WebhookDelivery struct {
	Action         string            `json:"action"`
	RequestID      string            `json:"request_id"`
	Email          string            `json:"-"`
	UserID         string            `json:"-"`
	IDs            map[string]string `json:"-"`
	Fields         map[string]string `json:"fields"`
	Purpose        string            `json:"purpose"`
	Subscribed     *bool             `json:"subscribed"`
	Cursor         string            `json:"cursor"`
	IdempotencyKey string            `json:"-"`
}

// Webhook signature schemes the receiver can check (Webhook.Scheme).
const (
	SchemeLetheV1          = "lethe-v1"
	SchemeStripe           = "stripe"
	SchemeGitHubSHA256     = "github-sha256"
	SchemeStandardWebhooks = "standard-webhooks"
)

// Webhook is a receiver for Lethe's signed webhook protocol. It rejects
// (401) requests whose signature does not verify under its Scheme:
//
//   - lethe-v1 (default): X-Lethe-Timestamp within Tolerance and
//     X-Lethe-Signature "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body);
//   - stripe: Stripe-Signature "t=<ts>,v1=<hex HMAC(secret, ts + "." + body)>",
//     t within Tolerance;
//   - github-sha256: X-Hub-Signature-256 "sha256=" + hex HMAC(secret, body);
//   - standard-webhooks: webhook-id, webhook-timestamp within Tolerance,
//     webhook-signature "v1,<base64 HMAC(key, id + "." + ts + "." + body)>"
//     (space-separated candidates), key the Base64 after Secret's "whsec_".
//
// SignatureHeader, when set, is where the signature is read instead. Known
// subjects are erased (200 done, or 202 with a job id when async),
// exported page by page with next_cursor, updated and (un)subscribed;
// unknown ones get 404.
type Webhook struct {
	*Server
	// Secret is the HMAC key (standard-webhooks: "whsec_" + Base64 key).
	Secret []byte
	// Tolerance bounds the timestamp's distance from now (5 min).
	Tolerance time.Duration
	// Scheme is the signature scheme checked (SchemeLetheV1 when empty).
	Scheme string
	// SignatureHeader overrides the scheme's signature header name.
	SignatureHeader string

	pageSize   int
	async      bool
	jobSeq     int
	subjects   []*WebhookSubject
	deliveries []WebhookDelivery
}

// NewWebhook starts a webhook receiver; connectors POST to URL().
func NewWebhook(t testing.TB) *Webhook {
	f := &Webhook{Secret: []byte(DefaultWebhookSecret), Tolerance: 5 * time.Minute, pageSize: 2}
	f.Server = newServer(t, style{
		writeError: func(w http.ResponseWriter, status int, code, message string) {
			writeJSON(w, status, map[string]string{"code": code, "message": message})
		},
		retryHint: retryAfterSeconds,
	})
	f.handle("POST /lethe/hook", f.receive)
	return f
}

// URL is the receiver's endpoint.
func (f *Webhook) URL() string { return f.Origin() + "/lethe/hook" }

// SetAsync makes erasures answer 202 with a job id instead of 200.
func (f *Webhook) SetAsync(async bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.async = async
}

// SetPageSize sets how many records one export answer carries (default 2).
func (f *Webhook) SetPageSize(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pageSize = max(n, 1)
}

// AddSubject seeds a known person, matched by user id, else email.
func (f *Webhook) AddSubject(s WebhookSubject) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.Fields = cloneMap(s.Fields)
	if s.Fields == nil {
		s.Fields = map[string]string{}
	}
	if s.Subscribed == nil {
		s.Subscribed = map[string]bool{}
	}
	f.subjects = append(f.subjects, &s)
}

// Subject returns a copy of the subject with this user id or email, if
// it is still known (not erased).
func (f *Webhook) Subject(userIDOrEmail string) (WebhookSubject, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.subjects {
		if s.UserID == userIDOrEmail || strings.EqualFold(s.Email, userIDOrEmail) {
			out := *s
			out.Fields = cloneMap(s.Fields)
			return out, true
		}
	}
	return WebhookSubject{}, false
}

// Deliveries returns the verified requests received, oldest first.
func (f *Webhook) Deliveries() []WebhookDelivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deliveries)
}

// SetScheme makes the receiver check another signature scheme, with its
// secret and (when not "") the header carrying the signature.
func (f *Webhook) SetScheme(scheme string, secret []byte, header string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Scheme, f.Secret, f.SignatureHeader = scheme, secret, header
}

// verify checks the signature headers independently of the connector.
func (f *Webhook) verify(r *http.Request, body []byte) bool {
	header := func(def string) string {
		if f.SignatureHeader != "" {
			return r.Header.Get(f.SignatureHeader)
		}
		return r.Header.Get(def)
	}
	fresh := func(ts string) bool {
		n, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return false
		}
		d := time.Since(time.Unix(n, 0))
		return d <= f.Tolerance && d >= -f.Tolerance
	}
	mac := func(key []byte, parts ...string) []byte {
		m := hmac.New(sha256.New, key)
		for _, p := range parts {
			m.Write([]byte(p))
		}
		m.Write(body)
		return m.Sum(nil)
	}
	switch f.Scheme {
	case "", SchemeLetheV1:
		ts := r.Header.Get("X-Lethe-Timestamp")
		want := "v1=" + hex.EncodeToString(mac(f.Secret, ts+"."))
		return fresh(ts) && hmac.Equal([]byte(header("X-Lethe-Signature")), []byte(want))
	case SchemeStripe:
		var ts string
		var sigs []string
		for _, kv := range strings.Split(header("Stripe-Signature"), ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			switch k {
			case "t":
				ts = v
			case "v1":
				sigs = append(sigs, v)
			}
		}
		want := hex.EncodeToString(mac(f.Secret, ts+"."))
		return fresh(ts) && slices.ContainsFunc(sigs, func(s string) bool { return hmac.Equal([]byte(s), []byte(want)) })
	case SchemeGitHubSHA256:
		want := "sha256=" + hex.EncodeToString(mac(f.Secret))
		return hmac.Equal([]byte(header("X-Hub-Signature-256")), []byte(want))
	case SchemeStandardWebhooks:
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(string(f.Secret), "whsec_"))
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		if err != nil || id == "" || !fresh(ts) {
			return false
		}
		want := "v1," + base64.StdEncoding.EncodeToString(mac(key, id+"."+ts+"."))
		return slices.ContainsFunc(strings.Fields(header("webhook-signature")), func(s string) bool {
			return hmac.Equal([]byte(s), []byte(want))
		})
	}
	return false
}

func (f *Webhook) find(d WebhookDelivery) (int, *WebhookSubject) {
	for i, s := range f.subjects {
		if d.UserID != "" && s.UserID == d.UserID || d.Email != "" && strings.EqualFold(s.Email, d.Email) {
			return i, s
		}
	}
	return -1, nil
}

func (f *Webhook) receive(w http.ResponseWriter, r *http.Request) {
	body, _ := readAll(r)
	if !f.verify(r, body) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"code": "bad_signature"})
		return
	}
	var in struct {
		WebhookDelivery
		Subject struct {
			Email  string            `json:"email"`
			UserID string            `json:"user_id"`
			IDs    map[string]string `json:"ids"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "bad_json"})
		return
	}
	d := in.WebhookDelivery
	d.Email, d.UserID, d.IDs = in.Subject.Email, in.Subject.UserID, in.Subject.IDs
	d.IdempotencyKey = r.Header.Get("Idempotency-Key")
	if !slices.Contains([]string{"erase", "export", "update", "consent"}, d.Action) || d.RequestID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "bad_request"})
		return
	}
	f.deliveries = append(f.deliveries, d)
	i, s := f.find(d)
	if s == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "unknown_subject"})
		return
	}
	switch d.Action {
	case "erase":
		f.subjects = slices.Delete(f.subjects, i, i+1)
		if f.async {
			f.jobSeq++
			writeJSON(w, http.StatusAccepted, map[string]string{"status": "pending_async",
				"job_id": fmt.Sprintf("job-%d", f.jobSeq)})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "done"})
	case "export":
		start := 0
		if d.Cursor != "" {
			n, err := strconv.Atoi(d.Cursor)
			if err != nil || n < 0 || n > len(s.Records) {
				writeJSON(w, http.StatusBadRequest, map[string]string{"code": "bad_cursor"})
				return
			}
			start = n
		}
		end := min(start+f.pageSize, len(s.Records))
		recs := []map[string]any{}
		for j := start; j < end; j++ {
			recs = append(recs, map[string]any{"kind": "app.record", "id": fmt.Sprintf("r%d", j), "data": s.Records[j]})
		}
		out := map[string]any{"status": "done", "records": recs}
		if end < len(s.Records) {
			out["next_cursor"] = strconv.Itoa(end)
		}
		writeJSON(w, http.StatusOK, out)
	case "update":
		if len(d.Fields) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"code": "no_fields"})
			return
		}
		for k, v := range d.Fields {
			s.Fields[k] = v
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "done"})
	case "consent":
		if d.Purpose == "" || d.Subscribed == nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"code": "no_purpose"})
			return
		}
		s.Subscribed[d.Purpose] = *d.Subscribed
		writeJSON(w, http.StatusOK, map[string]string{"status": "done"})
	}
}
