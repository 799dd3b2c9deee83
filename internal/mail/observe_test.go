package mail

import (
	"context"
	"maps"
	"sync"
	"testing"
)

// templateCounts is a SentObserver counting by template.
type templateCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *templateCounts) MailSent(template string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[template]++
}

// The observer hears of each message really sent: not of a repeat Once
// finds sent before, nor of a failure; and the Once it came from is left
// as it was.
func TestObservedOnceReportsOnlyMessagesReallySent(t *testing.T) {
	pool := migratedPool(t)
	next := &countingSender{err: &SendError{Status: 503}}
	plain := NewOnce(pool, next)
	var seen templateCounts
	once := plain.Observed(&seen)
	ctx := context.Background()
	m := adaMessage()

	if err := once.Send(ctx, m); err == nil {
		t.Fatal("want the sender's failure")
	}
	next.err = nil
	for range 3 {
		if err := once.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	other := m
	other.IdempotencyKey, other.Template = "receipt/req-1", "receipt"
	if err := plain.Send(ctx, other); err != nil { // not observed
		t.Fatal(err)
	}
	if err := once.Send(ctx, other); err != nil { // sent before: nothing
		t.Fatal(err)
	}
	third := m
	third.IdempotencyKey = "verify/req-3"
	if err := once.Send(ctx, third); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"verification_code": 2}; !maps.Equal(seen.n, want) || next.count() != 3 {
		t.Fatalf("observed %v after %d sends, want %v", seen.n, next.count(), want)
	}
	if plain.Observed(nil) != plain {
		t.Error("Observed(nil) is not the Once itself")
	}
}
