// Package subjectkeys crypto-shreds the personal data Lethe itself has to keep
// for a while: request identities, export bundle metadata, notices.
//
// Each person, known only by their subject reference (a keyed hash such as
// "sr_ab12…", never an email address), gets a random 256-bit data key on first
// use. Data is sealed with it (AES-256-GCM) wherever it is stored; the key
// itself lives in lethe.subject_keys, wrapped with a master key that is never
// stored in the database. [Keyring.Destroy] deletes the wrapped key and leaves
// a tombstone, after which every copy of the person's sealed data, wherever
// it was copied to, is unreadable and no new data can be sealed for them.
//
// Master keys are [config.Key] values like the payload keys, but must be
// separate key material. The first one wraps new data keys; all of them
// unwrap, so a master key can be rotated by putting a new one first.
// [Keyring.Rewrap] then moves existing data keys to it.
//
// Completeness of shredding: copies of lethe.subject_keys made before a
// Destroy (database backups, WAL archives, not yet vacuumed row versions)
// still hold the wrapped key, readable with the master key that wrapped it.
// Shredding is therefore complete once those copies expire, or once the
// master key they need is retired: rotate the master key, run Rewrap, and
// drop the old master key when the last backup taken before the rewrap has
// expired.
package subjectkeys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/config"
)

var (
	// ErrKeyDestroyed means the person's key was destroyed: their sealed data
	// can no longer be opened and nothing new can be sealed for them.
	ErrKeyDestroyed = errors.New("subject key destroyed")
	// ErrNoKey means nothing was ever sealed for the subject reference in
	// this database, so there is no key to open data with.
	ErrNoKey = errors.New("no subject key")
	// ErrUnknownMasterKey means a data key is wrapped with a master key id
	// that is not configured.
	ErrUnknownMasterKey = errors.New("unknown master key")
	// ErrCorrupt means sealed data or a wrapped key failed authentication or
	// does not have the expected form: altered, truncated, or sealed for
	// another subject.
	ErrCorrupt = errors.New("sealed data does not open")
	// ErrInvalidRef means the argument does not look like a subject
	// reference. The offending value is never part of the error, as it
	// may be an email address passed by mistake.
	ErrInvalidRef = errors.New("not a subject reference")
)

const (
	// DefaultCacheTTL is how long an unwrapped data key stays in memory
	// unless WithCacheTTL says otherwise.
	DefaultCacheTTL = 30 * time.Second

	keySize         = 32
	sealVersion     = byte(1)
	wrapVersion     = byte(1)
	maxRefLen       = 128
	maxCacheEntries = 10_000
	rewrapBatch     = 500

	sealAADPrefix = "lethe/subject-data/v1\x00"
	wrapAADPrefix = "lethe/subject-key/v1\x00"
)

// Keyring seals and opens data under per-person keys kept in PostgreSQL.
// It is safe for concurrent use, also by several processes sharing the
// database.
type Keyring struct {
	pool     *pgxpool.Pool
	activeID string
	masters  map[string]cipher.AEAD
	ttl      time.Duration

	mu    sync.Mutex
	gen   uint64 // bumped by every Destroy; loads that straddle one are not cached
	cache map[string]cachedKey
}

type cachedKey struct {
	aead    cipher.AEAD
	expires time.Time
}

// Option adjusts a Keyring.
type Option func(*Keyring)

// WithCacheTTL sets how long unwrapped data keys are kept in memory; zero or
// less disables the cache. Destroy evicts at once in the calling process;
// other processes sharing the database may go on using a cached key for up
// to this long.
func WithCacheTTL(d time.Duration) Option {
	return func(k *Keyring) { k.ttl = d }
}

// New returns a keyring over pool, which must have Lethe's migrations
// applied. masterKeys[0] wraps new data keys; all of them unwrap. Errors name
// key ids and positions only.
func New(pool *pgxpool.Pool, masterKeys []config.Key, opts ...Option) (*Keyring, error) {
	if pool == nil {
		return nil, errors.New("subjectkeys: no database pool")
	}
	if len(masterKeys) == 0 {
		return nil, errors.New("subjectkeys: no master keys configured")
	}
	k := &Keyring{
		pool:     pool,
		activeID: masterKeys[0].ID,
		masters:  make(map[string]cipher.AEAD, len(masterKeys)),
		ttl:      DefaultCacheTTL,
		cache:    map[string]cachedKey{},
	}
	for i, m := range masterKeys {
		if m.ID == "" {
			return nil, fmt.Errorf("subjectkeys: master key %d has no id", i+1)
		}
		if _, dup := k.masters[m.ID]; dup {
			return nil, fmt.Errorf("subjectkeys: master key id %q appears twice", m.ID)
		}
		if len(m.Material) != keySize {
			return nil, fmt.Errorf("subjectkeys: master key %q: want %d bytes", m.ID, keySize)
		}
		aead, err := newAEAD(m.Material)
		if err != nil {
			return nil, fmt.Errorf("subjectkeys: master key %q: %w", m.ID, err)
		}
		k.masters[m.ID] = aead
	}
	for _, o := range opts {
		o(k)
	}
	return k, nil
}

// Seal encrypts plaintext under the subject's data key, creating the key on
// first use. Concurrent first Seals, in this process or others, agree on one
// key. The result is a version byte, a random nonce and the ciphertext; it is
// bound to subjectRef and opens only with it. After Destroy, Seal returns
// ErrKeyDestroyed.
func (k *Keyring) Seal(ctx context.Context, subjectRef string, plaintext []byte) ([]byte, error) {
	if err := checkRef(subjectRef); err != nil {
		return nil, err
	}
	aead, err := k.dataKey(ctx, subjectRef, true)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("subjectkeys: read nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, sealAAD(subjectRef)), nil
}

// Open decrypts data sealed for subjectRef. It returns ErrKeyDestroyed once
// the subject's key is destroyed, ErrNoKey when the subject never had one,
// and ErrCorrupt when the data was altered or sealed for someone else.
func (k *Keyring) Open(ctx context.Context, subjectRef string, sealed []byte) ([]byte, error) {
	if err := checkRef(subjectRef); err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		return nil, fmt.Errorf("subjectkeys: open for %s: empty: %w", subjectRef, ErrCorrupt)
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("subjectkeys: open for %s: unsupported version %d: %w", subjectRef, sealed[0], ErrCorrupt)
	}
	aead, err := k.dataKey(ctx, subjectRef, false)
	if err != nil {
		return nil, err
	}
	if len(sealed) < 1+aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("subjectkeys: open for %s: truncated: %w", subjectRef, ErrCorrupt)
	}
	nonce, ct := sealed[1:1+aead.NonceSize()], sealed[1+aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ct, sealAAD(subjectRef))
	if err != nil {
		return nil, fmt.Errorf("subjectkeys: open for %s: %w", subjectRef, ErrCorrupt)
	}
	return plain, nil
}

// Destroy deletes the subject's data key, keeping a tombstone with the time
// of destruction, and evicts the key from this process's cache. It is
// idempotent (the first destruction time is kept) and also works for a
// subject that never had a key, so that none can be created later.
func (k *Keyring) Destroy(ctx context.Context, subjectRef string) error {
	if err := checkRef(subjectRef); err != nil {
		return err
	}
	defer k.evict(subjectRef)
	_, err := k.pool.Exec(ctx, `
		INSERT INTO lethe.subject_keys AS s (subject_ref, master_key_id, wrapped, destroyed_at)
		VALUES ($1, NULL, NULL, now())
		ON CONFLICT (subject_ref) DO UPDATE
		SET master_key_id = NULL, wrapped = NULL,
		    destroyed_at = COALESCE(s.destroyed_at, EXCLUDED.destroyed_at)`, subjectRef)
	if err != nil {
		return fmt.Errorf("subjectkeys: destroy key for %s: %w", subjectRef, err)
	}
	return nil
}

// Destroyed reports whether the subject's key was destroyed, and when.
func (k *Keyring) Destroyed(ctx context.Context, subjectRef string) (bool, time.Time, error) {
	if err := checkRef(subjectRef); err != nil {
		return false, time.Time{}, err
	}
	var at *time.Time
	err := k.pool.QueryRow(ctx, `SELECT destroyed_at FROM lethe.subject_keys WHERE subject_ref = $1`, subjectRef).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, time.Time{}, nil
	case err != nil:
		return false, time.Time{}, fmt.Errorf("subjectkeys: read key state for %s: %w", subjectRef, err)
	case at == nil:
		return false, time.Time{}, nil
	}
	return true, *at, nil
}

// Rewrap re-wraps every live data key that is wrapped with another master
// key than the active one, and returns how many it changed. Run it after
// putting a new master key first; afterwards the old master keys are only
// needed for database backups taken before. It stops at the first key it
// cannot unwrap (e.g. ErrUnknownMasterKey). Data keys, and so sealed data,
// do not change.
func (k *Keyring) Rewrap(ctx context.Context) (int, error) {
	type row struct {
		ref, masterID string
		wrapped       []byte
	}
	done, after := 0, ""
	for {
		rows, err := k.pool.Query(ctx, `
			SELECT subject_ref, master_key_id, wrapped FROM lethe.subject_keys
			WHERE wrapped IS NOT NULL AND master_key_id <> $1 AND subject_ref > $2
			ORDER BY subject_ref LIMIT $3`, k.activeID, after, rewrapBatch)
		if err != nil {
			return done, fmt.Errorf("subjectkeys: rewrap: list keys: %w", err)
		}
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.ref, &x.masterID, &x.wrapped)
			return x, err
		})
		if err != nil {
			return done, fmt.Errorf("subjectkeys: rewrap: list keys: %w", err)
		}
		if len(batch) == 0 {
			return done, nil
		}
		for _, r := range batch {
			raw, err := k.unwrapRaw(r.ref, r.masterID, r.wrapped)
			if err != nil {
				return done, fmt.Errorf("subjectkeys: rewrap: %w", err)
			}
			wrapped, err := k.wrap(r.ref, raw)
			clear(raw)
			if err != nil {
				return done, fmt.Errorf("subjectkeys: rewrap: %w", err)
			}
			// Conditional on the row being unchanged, so a concurrent
			// Destroy or Rewrap wins.
			tag, err := k.pool.Exec(ctx, `
				UPDATE lethe.subject_keys SET master_key_id = $2, wrapped = $3
				WHERE subject_ref = $1 AND master_key_id = $4 AND wrapped = $5`,
				r.ref, k.activeID, wrapped, r.masterID, r.wrapped)
			if err != nil {
				return done, fmt.Errorf("subjectkeys: rewrap key for %s: %w", r.ref, err)
			}
			done += int(tag.RowsAffected())
		}
		after = batch[len(batch)-1].ref
	}
}

// dataKey returns the subject's data key from the cache or the database,
// creating it when create is set and the subject has none yet.
func (k *Keyring) dataKey(ctx context.Context, ref string, create bool) (cipher.AEAD, error) {
	if aead := k.cached(ref); aead != nil {
		return aead, nil
	}
	// Taken before reading, so that a Destroy that commits after the read
	// keeps the result out of the cache.
	gen := k.generation()
	for attempt := 0; attempt < 2; attempt++ {
		var (
			masterID    *string
			wrapped     []byte
			destroyedAt *time.Time
		)
		err := k.pool.QueryRow(ctx,
			`SELECT master_key_id, wrapped, destroyed_at FROM lethe.subject_keys WHERE subject_ref = $1`, ref).
			Scan(&masterID, &wrapped, &destroyedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if !create {
				return nil, fmt.Errorf("subjectkeys: key for %s: %w", ref, ErrNoKey)
			}
			aead, inserted, err := k.create(ctx, ref)
			if err != nil {
				return nil, err
			}
			if inserted {
				k.remember(ref, aead, gen)
				return aead, nil
			}
			continue // another Seal created it meanwhile: use theirs
		case err != nil:
			return nil, fmt.Errorf("subjectkeys: read key for %s: %w", ref, err)
		}
		if destroyedAt != nil || masterID == nil || wrapped == nil {
			return nil, fmt.Errorf("subjectkeys: key for %s: %w", ref, ErrKeyDestroyed)
		}
		raw, err := k.unwrapRaw(ref, *masterID, wrapped)
		if err != nil {
			return nil, err
		}
		aead, err := newAEAD(raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("subjectkeys: key for %s: %w", ref, err)
		}
		k.remember(ref, aead, gen)
		return aead, nil
	}
	return nil, fmt.Errorf("subjectkeys: key for %s: created and gone again", ref)
}

// create inserts a new random data key for ref unless a row exists already;
// inserted says whether this call's key is the one stored.
func (k *Keyring) create(ctx context.Context, ref string) (cipher.AEAD, bool, error) {
	raw := make([]byte, keySize)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, fmt.Errorf("subjectkeys: generate key: %w", err)
	}
	wrapped, err := k.wrap(ref, raw)
	if err != nil {
		return nil, false, err
	}
	tag, err := k.pool.Exec(ctx, `
		INSERT INTO lethe.subject_keys (subject_ref, master_key_id, wrapped)
		VALUES ($1, $2, $3)
		ON CONFLICT (subject_ref) DO NOTHING`, ref, k.activeID, wrapped)
	if err != nil {
		return nil, false, fmt.Errorf("subjectkeys: store key for %s: %w", ref, err)
	}
	if tag.RowsAffected() == 0 {
		return nil, false, nil
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, false, fmt.Errorf("subjectkeys: key for %s: %w", ref, err)
	}
	return aead, true, nil
}

// wrap encrypts a raw data key with the active master key.
func (k *Keyring) wrap(ref string, raw []byte) ([]byte, error) {
	m := k.masters[k.activeID]
	out := make([]byte, 1+m.NonceSize(), 1+m.NonceSize()+len(raw)+m.Overhead())
	out[0] = wrapVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("subjectkeys: read nonce: %w", err)
	}
	return m.Seal(out, out[1:], raw, wrapAAD(ref, k.activeID)), nil
}

// unwrapRaw decrypts a wrapped data key; the caller clears the result.
func (k *Keyring) unwrapRaw(ref, masterID string, wrapped []byte) ([]byte, error) {
	m, ok := k.masters[masterID]
	if !ok {
		return nil, fmt.Errorf("subjectkeys: key for %s is wrapped with master key %q: %w", ref, masterID, ErrUnknownMasterKey)
	}
	if len(wrapped) < 1+m.NonceSize()+m.Overhead() || wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("subjectkeys: wrapped key for %s is malformed: %w", ref, ErrCorrupt)
	}
	nonce, ct := wrapped[1:1+m.NonceSize()], wrapped[1+m.NonceSize():]
	raw, err := m.Open(nil, nonce, ct, wrapAAD(ref, masterID))
	if err != nil || len(raw) != keySize {
		clear(raw)
		return nil, fmt.Errorf("subjectkeys: wrapped key for %s does not unwrap with master key %q: %w", ref, masterID, ErrCorrupt)
	}
	return raw, nil
}

func (k *Keyring) cached(ref string) cipher.AEAD {
	if k.ttl <= 0 {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.cache[ref]
	if !ok {
		return nil
	}
	if time.Now().After(e.expires) {
		delete(k.cache, ref)
		return nil
	}
	return e.aead
}

func (k *Keyring) remember(ref string, aead cipher.AEAD, gen uint64) {
	if k.ttl <= 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if gen != k.gen {
		return // a Destroy ran while this key was being loaded
	}
	now := time.Now()
	if len(k.cache) >= maxCacheEntries {
		for r, e := range k.cache {
			if now.After(e.expires) {
				delete(k.cache, r)
			}
		}
		if len(k.cache) >= maxCacheEntries {
			clear(k.cache)
		}
	}
	k.cache[ref] = cachedKey{aead: aead, expires: now.Add(k.ttl)}
}

func (k *Keyring) generation() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

func (k *Keyring) evict(ref string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cache, ref)
	k.gen++
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func sealAAD(ref string) []byte {
	return append([]byte{sealVersion}, sealAADPrefix+ref...)
}

func wrapAAD(ref, masterID string) []byte {
	return append([]byte{wrapVersion}, wrapAADPrefix+ref+"\x00"+masterID...)
}

// checkRef accepts the characters keyed-hash references are made of and
// refuses anything else (an email address has "@"). The value is never
// echoed.
func checkRef(ref string) error {
	if ref == "" || len(ref) > maxRefLen {
		return fmt.Errorf("subjectkeys: %w", ErrInvalidRef)
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == ':', c == '=', c == '+', c == '/':
		default:
			return fmt.Errorf("subjectkeys: %w", ErrInvalidRef)
		}
	}
	return nil
}
