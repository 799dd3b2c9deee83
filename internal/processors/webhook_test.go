package processors_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
)

func TestWebhookSignatureRoundTrip(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"action":"erase"}`)
	h := http.Header{}
	h.Set(processors.WebhookTimestampHeader, "1700000000")
	h.Set(processors.WebhookSignatureHeader, processors.SignWebhook(secret, now, body))
	if err := processors.VerifyWebhookSignature(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := processors.VerifyWebhookSignature(secret, h, []byte(`{"action":"export"}`), now, 5*time.Minute); err == nil {
		t.Fatal("tampered body verified")
	}
	if err := processors.VerifyWebhookSignature(secret, h, body, now.Add(time.Hour), 5*time.Minute); err == nil {
		t.Fatal("stale timestamp verified")
	}
}

func TestWebhookEraseThenAlreadyGone(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewWebhook(t)
	f.AddSubject(processorfake.WebhookSubject{UserID: userID, Email: email})
	c := newWebhook(t, f)

	out, err := c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusDone)
	if _, ok := f.Subject(userID); ok {
		t.Fatal("subject not erased at the receiver")
	}
	d := f.Deliveries()
	if len(d) != 1 || d[0].Action != "erase" || d[0].RequestID != "req-1" || d[0].UserID != userID || d[0].IdempotencyKey == "" {
		t.Fatalf("deliveries %+v", d)
	}

	out, err = c.Erase(ctx, subject("req-1"))
	mustOutcome(t, out, err, processors.StatusAlreadyGone)
	if d := f.Deliveries(); d[1].IdempotencyKey != d[0].IdempotencyKey {
		t.Fatal("a repeat used another idempotency key")
	}
}

func TestWebhookAsyncErase(t *testing.T) {
	f := processorfake.NewWebhook(t)
	f.SetAsync(true)
	f.AddSubject(processorfake.WebhookSubject{UserID: userID})
	out, err := newWebhook(t, f).Erase(context.Background(), subject("r"))
	mustOutcome(t, out, err, processors.StatusPending)
	if out.JobID != "job-1" || out.HTTPStatus != http.StatusAccepted {
		t.Fatalf("outcome %+v", out)
	}
}

func TestWebhookExportFollowsCursor(t *testing.T) {
	f := processorfake.NewWebhook(t)
	f.SetPageSize(2)
	var recs []json.RawMessage
	for i := range 5 {
		recs = append(recs, json.RawMessage(`{"n":`+string(rune('0'+i))+`}`))
	}
	f.AddSubject(processorfake.WebhookSubject{UserID: userID, Records: recs})
	var col collector
	out, err := newWebhook(t, f).Export(context.Background(), subject("r"), &col)
	mustOutcome(t, out, err, processors.StatusDone)
	if len(col.records) != 5 || out.Records != 5 || col.records[4].ID != "r4" || col.records[0].Kind != "app.record" {
		t.Fatalf("records %+v", col.records)
	}
	d := f.Deliveries()
	if len(d) != 3 || d[1].Cursor != "2" || d[2].Cursor != "4" {
		t.Fatalf("deliveries %+v", d)
	}
}

func TestWebhookUpdateAndConsent(t *testing.T) {
	ctx := context.Background()
	f := processorfake.NewWebhook(t)
	f.AddSubject(processorfake.WebhookSubject{UserID: userID})
	c := newWebhook(t, f)
	out, err := c.Update(ctx, subject("r"), map[string]string{"name": "Ann Example"})
	mustOutcome(t, out, err, processors.StatusDone)
	out, err = c.SetSubscribed(ctx, subject("r"), "marketing", false)
	mustOutcome(t, out, err, processors.StatusDone)
	s, _ := f.Subject(userID)
	if s.Fields["name"] != "Ann Example" || s.Subscribed["marketing"] {
		t.Fatalf("subject %+v", s)
	}
	var col collector
	out, err = c.Export(ctx, processors.Subject{RequestID: "r", UserID: "unknown"}, &col)
	mustOutcome(t, out, err, processors.StatusNotFound)
}

func TestWebhookWrongSecretNeedsOperator(t *testing.T) {
	f := processorfake.NewWebhook(t)
	c, err := processors.NewWebhook(processors.WebhookConfig{URL: f.URL(), Secret: []byte("not-the-right-secret")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Erase(context.Background(), subject("r"))
	mustError(t, out, err, processors.KindNeedsOperator, http.StatusUnauthorized)
}
