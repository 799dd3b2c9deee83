package ratelimit

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake time source for a Limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(rate float64, burst int, opts ...Option) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(rate, burst, opts...)
	l.now = c.now
	return l, c
}

func TestBurstThenRate(t *testing.T) {
	l, c := newTest(2, 3) // 2 per second, 3 at once
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry := l.Allow("a")
	if ok || retry != 500*time.Millisecond {
		t.Fatalf("over the burst: ok=%v retry=%v, want refused, 500ms", ok, retry)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key was limited by a's use")
	}
	c.advance(250 * time.Millisecond)
	if ok, retry := l.Allow("a"); ok || retry != 250*time.Millisecond {
		t.Fatalf("after 250ms: ok=%v retry=%v, want refused, 250ms", ok, retry)
	}
	c.advance(250 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("refused after waiting the Retry-After time")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("one token came back, two were spent")
	}
	// Waiting long never gives more than the burst.
	c.advance(time.Hour)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d after a long pause refused", i+1)
		}
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("bucket grew beyond the burst")
	}
}

func TestIdleKeysAreEvicted(t *testing.T) {
	l, c := newTest(1, 5) // an empty bucket is full again after 5 s
	for i := range 10 {
		l.Allow(fmt.Sprint("k", i))
	}
	if n := l.Len(); n != 10 {
		t.Fatalf("tracking %d keys, want 10", n)
	}
	c.advance(3 * time.Second)
	l.Allow("k0") // keeps k0 in use
	c.advance(2 * time.Second)
	l.Allow("fresh") // triggers the sweep: k1..k9 have been idle 5 s
	if n := l.Len(); n != 2 {
		t.Fatalf("tracking %d keys after the others went idle, want 2 (k0, fresh)", n)
	}
	// An evicted key behaves like one that was kept: full burst.
	for i := range 5 {
		if ok, _ := l.Allow("k1"); !ok {
			t.Fatalf("evicted key refused at request %d", i+1)
		}
	}
	if ok, _ := l.Allow("k1"); ok {
		t.Fatal("evicted key got more than the burst")
	}
}

func TestKeyCapDropsLeastRecentlyUsed(t *testing.T) {
	l, c := newTest(1, 2, WithMaxKeys(3))
	drain := func(key string) {
		for {
			if ok, _ := l.Allow(key); !ok {
				return
			}
		}
	}
	drain("a")
	c.advance(time.Millisecond)
	drain("b")
	c.advance(time.Millisecond)
	drain("c")
	c.advance(time.Millisecond)
	drain("a") // a is now the most recently used, b the least
	c.advance(time.Millisecond)
	if ok, _ := l.Allow("d"); !ok {
		t.Fatal("a new key was refused because the limiter is full")
	}
	if n := l.Len(); n != 3 {
		t.Fatalf("tracking %d keys, cap is 3", n)
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("a was evicted although it was recently used")
	}
	if ok, _ := l.Allow("c"); ok {
		t.Fatal("c was evicted although b was older")
	}
	// b was dropped, so it starts over with a full bucket.
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("b should have been the one evicted")
	}
}

func TestManyKeysStayBounded(t *testing.T) {
	l, _ := newTest(1, 1, WithMaxKeys(1000))
	for i := range 10_000 {
		l.Allow(fmt.Sprint("client-", i))
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("tracking %d keys, cap is 1000", n)
	}
	long := strings.Repeat("x", 1<<16)
	l.Allow(long)
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.buckets {
		if len(k) > maxKeyLen {
			t.Fatalf("stored a key of %d bytes", len(k))
		}
	}
}

func TestLongKeysStayDistinct(t *testing.T) {
	l, _ := newTest(1, 1)
	a, b := strings.Repeat("a", 500), strings.Repeat("a", 499)+"b"
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("first long key refused")
	}
	if ok, _ := l.Allow(b); !ok {
		t.Fatal("a different long key shares the first one's bucket")
	}
	if ok, _ := l.Allow(a); ok {
		t.Fatal("long key not limited")
	}
}

func TestNewRefusesNonsense(t *testing.T) {
	for _, c := range []struct {
		rate  float64
		burst int
	}{{0, 1}, {-1, 1}, {1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%v, %d) did not panic", c.rate, c.burst)
				}
			}()
			New(c.rate, c.burst)
		}()
	}
}

func TestTinyRateDoesNotOverflow(t *testing.T) {
	l, _ := newTest(1e-12, 1)
	l.Allow("a")
	ok, retry := l.Allow("a")
	if ok || retry <= 0 {
		t.Fatalf("ok=%v retry=%v, want refused with a positive wait", ok, retry)
	}
}

func TestConcurrentUse(t *testing.T) {
	l := New(1, 10) // real clock: at most a few extra tokens during the test
	var allowed sync.Map
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			n := 0
			for range 100 {
				if ok, _ := l.Allow("shared"); ok {
					n++
				}
				l.Allow(fmt.Sprint("own-", g))
			}
			allowed.Store(g, n)
		})
	}
	wg.Wait()
	total := 0
	allowed.Range(func(_, v any) bool { total += v.(int); return true })
	if total < 10 || total > 12 {
		t.Fatalf("%d requests allowed on a bucket of 10 at 1/s", total)
	}
}

func TestMiddleware(t *testing.T) {
	l, c := newTest(0.5, 1) // one request every 2 s
	calls := 0
	h := Middleware(l, ClientIP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusNoContent)
	}))
	do := func(remote string) *http.Response {
		r := httptest.NewRequest(http.MethodPost, "/v1/requests", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Result()
	}

	if res := do("192.0.2.1:1234"); res.StatusCode != http.StatusNoContent {
		t.Fatalf("first request: %d", res.StatusCode)
	}
	res := do("192.0.2.1:5678") // same client, other port
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second request: %d, want 429", res.StatusCode)
	}
	if got := res.Header.Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After = %q, want 2", got)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	if strings.TrimSpace(string(body)) != `{"error":"too many requests"}` {
		t.Fatalf("body = %q", body)
	}
	if calls != 1 {
		t.Fatalf("handler called %d times, want 1", calls)
	}

	// Retry-After rounds up: 1.5 s left is "2", 1 ms left is "1", never "0".
	c.advance(500 * time.Millisecond)
	if got := do("192.0.2.1:1").Header.Get("Retry-After"); got != "2" {
		t.Fatalf("1.5 s left: Retry-After = %q, want 2", got)
	}
	c.advance(1499 * time.Millisecond)
	if got := do("192.0.2.1:1").Header.Get("Retry-After"); got != "1" {
		t.Fatalf("1 ms left: Retry-After = %q, want 1", got)
	}
	c.advance(time.Millisecond)
	if res := do("192.0.2.1:1"); res.StatusCode != http.StatusNoContent {
		t.Fatalf("after waiting: %d", res.StatusCode)
	}

	if res := do("192.0.2.2:1"); res.StatusCode != http.StatusNoContent {
		t.Fatalf("another client was limited: %d", res.StatusCode)
	}
}

func TestMiddlewareLetsEmptyKeysThrough(t *testing.T) {
	l, _ := newTest(1, 1)
	h := Middleware(l, func(*http.Request) string { return "" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for range 5 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("status %d for a request keyFn did not key", w.Code)
		}
	}
	if l.Len() != 0 {
		t.Fatal("an empty key was tracked")
	}
}

func TestClientIP(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.1:1234":             "192.0.2.1",
		"192.0.2.1":                  "192.0.2.1",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":          "fe80::/64",
		"2001:db8::1":                "2001:db8::/64",
		"@":                          "@", // unix socket
		"":                           "",
		"not an address":             "not an address",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		r.Header.Set("X-Real-Ip", "203.0.113.9")
		if got := ClientIP(r); got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", remote, got, want)
		}
	}
}
