package apikeys

import (
	"context"
	"crypto/subtle"
	"sync"
	"time"
)

// DefaultCacheTTL is a sensible cache time for NewAuthenticator: a revoked
// key keeps working for at most this long in a process that saw it in use.
const DefaultCacheTTL = 10 * time.Second

// maxCacheEntries bounds the cache. Only keys that authenticated are cached,
// so it only fills when there are this many live keys in use.
const maxCacheEntries = 1024

// Authenticator authenticates tokens like [Authenticate] but remembers keys
// that authenticated for a while, so that a busy client does not cost a
// database read per request. It is safe for concurrent use.
//
// Revocation: a cached key is not read again until its entry is ttl old, so
// a key revoked with [Revoke] (in this process or any other) stops working
// within ttl. Tokens that fail are never cached: a wrong secret for a cached
// id is refused straight from the cache, an unknown id always asks the
// database.
type Authenticator struct {
	db  DB
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	key       Key
	hash      []byte
	expires   time.Time // read the key again from then on
	nextTouch time.Time // write last_used_at again from then on
}

// NewAuthenticator returns an Authenticator on db that caches keys for ttl
// (see DefaultCacheTTL). A ttl of zero or less turns the cache off.
func NewAuthenticator(db DB, ttl time.Duration) *Authenticator {
	return &Authenticator{db: db, ttl: ttl, now: time.Now, entries: map[string]*cacheEntry{}}
}

// Authenticate returns the key a token belongs to. Errors are as for the
// package-level [Authenticate]: ErrUnauthenticated for every token that does
// not authenticate, anything else is a database failure.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Key, error) {
	id, sum, ok := parse(token)
	if !ok {
		return Key{}, ErrUnauthenticated
	}
	now := a.now()
	if k, found, err := a.fromCache(ctx, id, sum[:], now); found {
		return k, err
	}
	k, stored, err := load(ctx, a.db, id)
	if err != nil {
		return Key{}, err
	}
	if !verify(k, stored, sum) {
		return Key{}, ErrUnauthenticated
	}
	k = touch(ctx, a.db, k, now)
	if a.ttl > 0 {
		a.store(id, &cacheEntry{key: k, hash: stored, expires: now.Add(a.ttl), nextTouch: nextTouch(k, now)}, now)
	}
	return k, nil
}

// fromCache answers from a fresh cache entry for id, if there is one.
func (a *Authenticator) fromCache(ctx context.Context, id string, sum []byte, now time.Time) (Key, bool, error) {
	a.mu.Lock()
	e := a.entries[id]
	if e == nil {
		a.mu.Unlock()
		return Key{}, false, nil
	}
	if !now.Before(e.expires) {
		delete(a.entries, id)
		a.mu.Unlock()
		return Key{}, false, nil
	}
	match := subtle.ConstantTimeCompare(e.hash, sum) == 1
	k := e.key
	due := match && !now.Before(e.nextTouch)
	if due { // claimed here, so that concurrent requests do not all write
		e.nextTouch = now.Add(touchEvery)
	}
	a.mu.Unlock()
	if !match {
		return Key{}, true, ErrUnauthenticated
	}
	if due {
		k = touch(ctx, a.db, k, now)
		a.mu.Lock()
		if a.entries[id] == e {
			e.key.LastUsedAt = k.LastUsedAt
		}
		a.mu.Unlock()
	}
	return k, true, nil
}

// store adds an entry, first dropping expired ones when the cache is full,
// and everything when that is not enough.
func (a *Authenticator) store(id string, e *cacheEntry, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) >= maxCacheEntries {
		for id, old := range a.entries {
			if !now.Before(old.expires) {
				delete(a.entries, id)
			}
		}
		if len(a.entries) >= maxCacheEntries {
			clear(a.entries)
		}
	}
	a.entries[id] = e
}

// nextTouch is when last_used_at may be written again after k was
// authenticated at now: a minute after its last use, but no later than a
// minute from now, so that a failed write is retried only a minute later.
func nextTouch(k Key, now time.Time) time.Time {
	next := now.Add(touchEvery)
	if k.LastUsedAt != nil {
		if t := k.LastUsedAt.Add(touchEvery); t.After(now) && t.Before(next) {
			next = t
		}
	}
	return next
}
