package mail

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/sendgridfake"
)

func migratedPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.NewLethePool(t)
	return pool
}

// countingSender records sends and fails while err is set.
type countingSender struct {
	mu    sync.Mutex
	sent  []Message
	err   error
	after func() // runs after a successful send
}

func (c *countingSender) Send(_ context.Context, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.sent = append(c.sent, m)
	if c.after != nil {
		c.after()
	}
	return nil
}

func (c *countingSender) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sent)
}

type mailSentRow struct {
	template  string
	requestID *string
	sentAt    *time.Time
}

func row(t *testing.T, pool *pgxpool.Pool, key string) mailSentRow {
	t.Helper()
	var r mailSentRow
	if err := pool.QueryRow(context.Background(),
		`SELECT template, request_id, sent_at FROM lethe.mail_sent WHERE idempotency_key = $1`, key,
	).Scan(&r.template, &r.requestID, &r.sentAt); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOnceSendsOnce(t *testing.T) {
	pool := migratedPool(t)
	next := &countingSender{}
	once := NewOnce(pool, next)
	ctx := context.Background()
	m := adaMessage()

	for range 3 {
		if err := once.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if next.count() != 1 {
		t.Fatalf("sent %d times, want 1", next.count())
	}
	r := row(t, pool, m.IdempotencyKey)
	if r.template != "verification_code" || r.requestID == nil || *r.requestID != "req-1" || r.sentAt == nil {
		t.Errorf("row %+v", r)
	}
	if sent, err := once.Sent(ctx, m.IdempotencyKey); err != nil || !sent {
		t.Errorf("Sent = %v, %v", sent, err)
	}
	if sent, err := once.Sent(ctx, "never"); err != nil || sent {
		t.Errorf("Sent(unknown) = %v, %v", sent, err)
	}

	other := m
	other.IdempotencyKey = "verify/req-2"
	other.RequestID = ""
	if err := once.Send(ctx, other); err != nil {
		t.Fatal(err)
	}
	if next.count() != 2 {
		t.Fatalf("a new key was not sent")
	}
	if r := row(t, pool, other.IdempotencyKey); r.requestID != nil {
		t.Errorf("empty request id stored as %q, want NULL", *r.requestID)
	}
}

func TestOnceRetriesAfterFailedSend(t *testing.T) {
	pool := migratedPool(t)
	next := &countingSender{err: &SendError{Status: 503}}
	once := NewOnce(pool, next)
	ctx := context.Background()
	m := adaMessage()

	err := once.Send(ctx, m)
	var se *SendError
	if !errors.As(err, &se) || se.Status != 503 {
		t.Fatalf("err %v, want the sender's error", err)
	}
	if r := row(t, pool, m.IdempotencyKey); r.sentAt != nil {
		t.Fatal("failed send marked as sent")
	}
	next.err = nil
	if err := once.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := once.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	if next.count() != 1 {
		t.Fatalf("sent %d times, want 1", next.count())
	}
}

func TestOnceMarksEvenWhenContextEndsAfterSend(t *testing.T) {
	pool := migratedPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next := &countingSender{after: cancel}
	once := NewOnce(pool, next)
	m := adaMessage()
	if err := once.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	if r := row(t, pool, m.IdempotencyKey); r.sentAt == nil {
		t.Fatal("message that went out not marked sent")
	}
}

func TestOnceSentNotRecorded(t *testing.T) {
	pool := migratedPool(t)
	// The database goes away between the send and the mark.
	next := &countingSender{}
	once := NewOnce(pool, next)
	next.after = pool.Close
	err := once.Send(context.Background(), adaMessage())
	if !errors.Is(err, ErrSentNotRecorded) {
		t.Fatalf("err %v, want ErrSentNotRecorded", err)
	}
	if next.count() != 1 {
		t.Fatal("message not sent")
	}
	assertNoPersonalData(t, err)
}

func TestOnceRejectsBeforeClaiming(t *testing.T) {
	pool := migratedPool(t)
	next := &countingSender{}
	once := NewOnce(pool, next)
	ctx := context.Background()
	noKey := adaMessage()
	noKey.IdempotencyKey = ""
	if err := once.Send(ctx, noKey); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("empty key: %v", err)
	}
	invalid := adaMessage()
	invalid.Subject = ""
	if err := once.Send(ctx, invalid); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("invalid message: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM lethe.mail_sent`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 || next.count() != 0 {
		t.Errorf("rows %d sends %d, want none", n, next.count())
	}
}

func TestOnceOverSendGridFake(t *testing.T) {
	pool := migratedPool(t)
	fake := sendgridfake.New(t, testKey)
	sg := newSendGrid(t, fake.URL())
	once := NewOnce(pool, sg)
	ctx := context.Background()
	m := adaMessage()

	fake.FailNext(1, 429, time.Second)
	if err := once.Send(ctx, m); err == nil || IsPermanent(err) {
		t.Fatalf("err %v, want a retryable 429", err)
	}
	// Temporal retries the activity: it sends once, and a further retry
	// (say the activity's completion was lost) does not send again.
	for range 2 {
		if err := once.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := fake.WaitFor(adaEmail, 1, time.Second); err != nil || len(got) != 1 {
		t.Fatalf("got %d, %v", len(got), err)
	}
	if fake.Calls() != 2 || fake.Count(adaEmail) != 1 {
		t.Errorf("calls %d deliveries %d, want 2 and 1", fake.Calls(), fake.Count(adaEmail))
	}
}
