// Package ratelimit limits how often each client may call the HTTP API.
//
// A [Limiter] keeps one token bucket per key (a client address from
// [ClientIP], a subject reference, an API key id): each key may make burst
// requests at once and then rate requests per second. Memory is bounded: a
// bucket that has been idle long enough to be full again is forgotten (a new
// bucket for that key behaves exactly the same), and the number of buckets is
// capped (see [WithMaxKeys]). When the cap is reached with every bucket still
// in use, the least recently used one is dropped, so that its key starts
// over with a full bucket: under a flood of distinct keys the limiter lets
// some extra requests through rather than refusing everyone.
//
// [Middleware] puts a Limiter in front of an http.Handler.
package ratelimit

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxKeys is how many keys a Limiter tracks unless WithMaxKeys says
// otherwise; with keys of at most 128 bytes that is a few tens of MB.
const DefaultMaxKeys = 100_000

// epsilon absorbs floating-point error, so that a client that waits exactly
// the time Allow asked for is let in.
const epsilon = 1e-9

// maxKeyLen bounds the memory one key takes: longer keys are replaced by
// their SHA-256.
const maxKeyLen = 128

// Limiter is a set of token buckets, one per key. It is safe for concurrent
// use.
type Limiter struct {
	rate    float64       // tokens added per second
	burst   float64       // bucket size
	idle    time.Duration // time for an empty bucket to fill up
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*list.Element // values are *bucket
	lru     *list.List               // most recently used first
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time // last refill, which is also the last use
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithMaxKeys caps the number of keys tracked at once (DefaultMaxKeys
// otherwise). Values below 1 are taken as 1.
func WithMaxKeys(n int) Option {
	return func(l *Limiter) { l.maxKeys = max(n, 1) }
}

// New returns a Limiter that allows each key burst requests at once and rate
// requests per second on average. It panics unless rate > 0 and burst >= 1.
// A rate of +Inf allows everything.
func New(rate float64, burst int, opts ...Option) *Limiter {
	if !(rate > 0) || burst < 1 {
		panic("ratelimit: rate must be positive and burst at least 1")
	}
	l := &Limiter{
		rate:    rate,
		burst:   float64(burst),
		maxKeys: DefaultMaxKeys,
		now:     time.Now,
		buckets: map[string]*list.Element{},
		lru:     list.New(),
	}
	l.idle = seconds(float64(burst) / rate)
	for _, o := range opts {
		o(l)
	}
	return l
}

// Allow takes a token from key's bucket. When there is none it returns false
// and how long until there will be one.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if math.IsInf(l.rate, 1) {
		return true, 0
	}
	if len(key) > maxKeyLen {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	now := l.now()

	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictIdle(now)
	var b *bucket
	if el, found := l.buckets[key]; found {
		l.lru.MoveToFront(el)
		b = el.Value.(*bucket)
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
			b.last = now
		}
	} else {
		for l.lru.Len() >= l.maxKeys {
			l.remove(l.lru.Back())
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		l.buckets[key] = l.lru.PushFront(b)
	}
	if b.tokens >= 1-epsilon {
		b.tokens = max(b.tokens-1, 0)
		return true, 0
	}
	return false, seconds((1 - b.tokens) / l.rate)
}

// seconds converts s seconds to a Duration, rounding up and saturating.
func seconds(s float64) time.Duration {
	ns := math.Ceil(s * float64(time.Second))
	if ns >= math.MaxInt64 { // float64(MaxInt64) is 2^63, already too big
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ns)
}

// Len returns how many keys the Limiter tracks right now.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// evictIdle forgets the buckets that have filled up since their last use.
// They are at the back of the list, so this stops at the first one in use.
func (l *Limiter) evictIdle(now time.Time) {
	for el := l.lru.Back(); el != nil; el = l.lru.Back() {
		if now.Sub(el.Value.(*bucket).last) < l.idle {
			return
		}
		l.remove(el)
	}
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.buckets, el.Value.(*bucket).key)
	l.lru.Remove(el)
}

// tooManyRequests is the body of a 429 answer, as the API's other errors.
const tooManyRequests = `{"error":"too many requests"}` + "\n"

// Middleware limits next by the key keyFn gives each request. A request over
// the limit gets 429 Too Many Requests, a Retry-After header in whole seconds
// (at least 1) and the body {"error":"too many requests"}. Requests for which
// keyFn returns "" are not limited, so keyFn also chooses what to limit.
func Middleware(l *Limiter, keyFn func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := keyFn(r)
		if key == "" {
			next.ServeHTTP(w, r)
			return
		}
		ok, retryAfter := l.Allow(key)
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		secs := max((retryAfter+time.Second-1)/time.Second, 1)
		h := w.Header()
		h.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, tooManyRequests)
	})
}

// ClientIP returns the address the request came from, taken from
// r.RemoteAddr alone, as a rate-limit key. IPv6 addresses are cut to their
// /64 prefix (e.g. "2001:db8:1:2::/64"), since one client commonly holds a
// whole /64; IPv4 addresses (also IPv4-mapped IPv6 ones) are kept whole. A
// RemoteAddr that does not parse is returned as it is.
//
// Behind a reverse proxy or load balancer every request has the proxy's
// address, so all clients would share one bucket. X-Forwarded-For and
// similar headers are deliberately ignored: any client can set them. Using
// them needs a setting naming the trusted proxies, whose entries alone may
// be believed; until there is one, limit by another key behind a proxy.
func ClientIP(r *http.Request) string {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		addr = a
	} else {
		return r.RemoteAddr
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, err := addr.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return addr.String()
}
