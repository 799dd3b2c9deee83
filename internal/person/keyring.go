package person

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/config"
)

var (
	// ErrKeyDestroyed means the key that sealed the data was destroyed: the
	// data can no longer be opened. New data for the person is sealed with
	// a new key.
	ErrKeyDestroyed = errors.New("subject key destroyed")
	// ErrNoKey means nothing was ever sealed for the subject reference in
	// this database (with the generation the data names), so there is no
	// key to open data with.
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
	keySize     = 32
	wrapVersion = byte(1)
	maxRefLen   = 128
	rewrapBatch = 500
	// sealV1 is data sealed before key generations: it belongs to the
	// first generation. sealV2 names its generation (4 bytes, big endian)
	// after the version byte.
	sealV1 = byte(1)
	sealV2 = byte(2)

	sealAADPrefixV1 = "lethe/subject-data/v1\x00"
	sealAADPrefixV2 = "lethe/subject-data/v2\x00"
	wrapAADPrefix   = "lethe/subject-key/v1\x00"
)

// Keyring seals and opens data under per-person keys kept in PostgreSQL.
// It is safe for concurrent use, also by several processes sharing the
// database.
type Keyring struct {
	pool     *pgxpool.Pool
	activeID string
	masters  map[string]cipher.AEAD
}

// NewKeyring returns a keyring over pool, which must have Lethe's migrations
// applied. masterKeys[0] wraps new data keys; all of them unwrap. Errors name
// key ids and positions only.
func NewKeyring(pool *pgxpool.Pool, masterKeys []config.Key) (*Keyring, error) {
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
	return k, nil
}

// Seal encrypts plaintext under the subject's live data key, creating one
// when the subject has none: on first use, and after Destroy (the next
// generation). Concurrent Seals, in this process or others, agree on one
// key. The result is a version byte, the key's generation, a random nonce
// and the ciphertext; it is bound to subjectRef and that generation, and
// opens only with them.
func (k *Keyring) Seal(ctx context.Context, subjectRef string, plaintext []byte) ([]byte, error) {
	if err := checkRef(subjectRef); err != nil {
		return nil, err
	}
	gen, aead, err := k.liveKey(ctx, subjectRef)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 5+aead.NonceSize(), 5+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealV2
	binary.BigEndian.PutUint32(out[1:5], uint32(gen))
	if _, err := rand.Read(out[5:]); err != nil {
		return nil, fmt.Errorf("subjectkeys: read nonce: %w", err)
	}
	return aead.Seal(out, out[5:], plaintext, sealAAD(subjectRef, sealV2, gen)), nil
}

// Open decrypts data sealed for subjectRef with the generation of keys the
// data names. It returns ErrKeyDestroyed once that key is destroyed, even
// when the subject has a newer key; ErrNoKey when the subject never had
// that key; and ErrCorrupt when the data was altered or sealed for someone
// else.
func (k *Keyring) Open(ctx context.Context, subjectRef string, sealed []byte) ([]byte, error) {
	if err := checkRef(subjectRef); err != nil {
		return nil, err
	}
	version, gen, rest, err := parseSealed(sealed)
	if err != nil {
		return nil, fmt.Errorf("subjectkeys: open for %s: %w", subjectRef, err)
	}
	aead, err := k.keyOf(ctx, subjectRef, gen)
	if err != nil {
		return nil, err
	}
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("subjectkeys: open for %s: truncated: %w", subjectRef, ErrCorrupt)
	}
	nonce, ct := rest[:aead.NonceSize()], rest[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ct, sealAAD(subjectRef, version, gen))
	if err != nil {
		return nil, fmt.Errorf("subjectkeys: open for %s: %w", subjectRef, ErrCorrupt)
	}
	return plain, nil
}

// Destroy destroys the subject's live key, keeping a tombstone with the time
// of destruction: everything sealed with it, wherever it was copied, is
// unreadable from then on, in every process. The subject's next Seal
// creates a new key. It is idempotent (a destroyed key keeps its first
// destruction time) and also works for a subject that never had a key,
// leaving a tombstone.
//
// Destroy destroys whatever key is live when it runs, also one made after
// the caller decided to destroy; an operation that may be retried later
// (a workflow's activity) uses DestroyOnce.
func (k *Keyring) Destroy(ctx context.Context, subjectRef string) error {
	return k.destroy(ctx, subjectRef, "")
}

// DestroyOnce is Destroy for an operation that may run again, e.g. a
// Temporal activity retried after its first attempt committed: op names the
// operation (no personal data), and once a key was destroyed under op, a
// later call with op does nothing, so it never destroys the key the person
// was given after the first call. When no key is live, the first call
// leaves a tombstone of its own (the next generation, never used), which
// records that op ran.
func (k *Keyring) DestroyOnce(ctx context.Context, subjectRef, op string) error {
	if op == "" {
		return fmt.Errorf("subjectkeys: destroy key for %s: no operation named", subjectRef)
	}
	return k.destroy(ctx, subjectRef, op)
}

func (k *Keyring) destroy(ctx context.Context, ref, op string) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	for attempt := 0; attempt < 3; attempt++ {
		var doneBefore bool
		var destroyed int
		err := k.pool.QueryRow(ctx, `
			WITH done AS (
				SELECT 1 FROM lethe.subject_keys WHERE subject_ref = $1 AND $2 <> '' AND destroyed_by = $2
			), destroyed AS (
				UPDATE lethe.subject_keys
				SET master_key_id = NULL, wrapped = NULL, destroyed_at = now(), destroyed_by = NULLIF($2, '')
				WHERE subject_ref = $1 AND destroyed_at IS NULL AND NOT EXISTS (SELECT 1 FROM done)
				RETURNING 1
			)
			SELECT EXISTS (SELECT 1 FROM done), (SELECT count(*) FROM destroyed)`, ref, op).Scan(&doneBefore, &destroyed)
		if err != nil {
			return fmt.Errorf("subjectkeys: destroy key for %s: %w", ref, err)
		}
		if doneBefore || destroyed > 0 {
			return nil
		}
		// No key is live. Destroy leaves a tombstone for a subject that never
		// had a key; DestroyOnce one of its own, so that a retry finds it.
		tag, err := k.pool.Exec(ctx, `
			INSERT INTO lethe.subject_keys (subject_ref, generation, master_key_id, wrapped, destroyed_at, destroyed_by)
			SELECT $1, COALESCE(max(generation), 0) + 1, NULL, NULL, now(), NULLIF($2, '')
			FROM lethe.subject_keys WHERE subject_ref = $1
			HAVING $2 <> '' OR count(*) = 0
			ON CONFLICT DO NOTHING`, ref, op)
		if err != nil {
			return fmt.Errorf("subjectkeys: destroy key for %s: %w", ref, err)
		}
		if tag.RowsAffected() > 0 || op == "" {
			// For Destroy, a conflict is a key made meanwhile: made after
			// this Destroy, it may live.
			return nil
		}
		// A Seal made a key meanwhile: destroy it, under op.
	}
	return fmt.Errorf("subjectkeys: destroy key for %s: keys kept being made meanwhile", ref)
}

// Destroyed reports whether the subject's newest key is destroyed, and
// when. It is false once a Seal has given the subject a new key.
func (k *Keyring) Destroyed(ctx context.Context, subjectRef string) (bool, time.Time, error) {
	if err := checkRef(subjectRef); err != nil {
		return false, time.Time{}, err
	}
	var at *time.Time
	err := k.pool.QueryRow(ctx, `SELECT destroyed_at FROM lethe.subject_keys WHERE subject_ref = $1
		ORDER BY destroyed_at IS NULL DESC, generation DESC LIMIT 1`, subjectRef).Scan(&at)
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

// MasterKeyPrefix begins the id of a master key made by
// [config.GenerateKey] for LETHE_MASTER_KEYS ("m20260102-9f3a1c").
const MasterKeyPrefix = "m"

// ActiveMasterKey is the id of the master key that wraps new data keys, and
// that Rewrap moves the others to.
func (k *Keyring) ActiveMasterKey() string { return k.activeID }

// RewrapOptions shape a [Keyring.Rewrap] run.
type RewrapOptions struct {
	// PageSize is how many data keys one page re-wraps, in one transaction;
	// 0 means 500.
	PageSize int
	// Progress, when set, is called after each committed page.
	Progress func(RewrapProgress)
}

// RewrapProgress is what a Rewrap run has done so far: every page counted
// is committed.
type RewrapProgress struct {
	Pages     int // pages committed
	Rewrapped int // data keys this run moved to the active master key
}

// Rewrap re-wraps every live data key that is wrapped with another master
// key than the active one, page by page: each page is one transaction, and
// what a page committed stays done when the run stops (an error, a
// cancelled ctx). A run only ever picks keys not yet under the active master
// key, so running it again continues where the last one stopped and never
// wraps a key twice; concurrent runs, Seals and Destroys wait for a page's
// rows and then see them as it left them.
//
// Run it after putting a new master key first; afterwards the old master
// keys are only needed for database backups taken before ([CountKeys] shows
// when nothing live needs them). It stops at the first key it cannot unwrap
// (e.g. ErrUnknownMasterKey), with that page undone. Data keys, and so
// sealed data, do not change. The result counts what was committed, also
// when it returns an error.
func (k *Keyring) Rewrap(ctx context.Context, opts RewrapOptions) (RewrapProgress, error) {
	size := opts.PageSize
	if size <= 0 {
		size = rewrapBatch
	}
	var (
		p        RewrapProgress
		afterRef string
		afterGen int
	)
	for {
		n, lastRef, lastGen, err := k.rewrapPage(ctx, afterRef, afterGen, size)
		if err != nil {
			return p, err
		}
		if lastRef == "" {
			return p, nil
		}
		p.Pages++
		p.Rewrapped += n
		afterRef, afterGen = lastRef, lastGen
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
}

// rewrapPage re-wraps, in one transaction, up to size live data keys after
// (afterRef, afterGen) that are wrapped with another master key than the
// active one. It returns how many it changed and the last key it looked
// at ("" when there was none left).
func (k *Keyring) rewrapPage(ctx context.Context, afterRef string, afterGen, size int) (int, string, int, error) {
	tx, err := k.pool.Begin(ctx)
	if err != nil {
		return 0, "", 0, fmt.Errorf("subjectkeys: rewrap: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	// FOR UPDATE: a concurrent Destroy or Rewrap waits for this page, and
	// a row changed meanwhile is checked again (and left out when it no
	// longer qualifies).
	rows, err := tx.Query(ctx, `
		SELECT subject_ref, generation, master_key_id, wrapped FROM lethe.subject_keys
		WHERE wrapped IS NOT NULL AND master_key_id <> $1 AND (subject_ref, generation) > ($2, $3)
		ORDER BY subject_ref, generation LIMIT $4 FOR UPDATE`, k.activeID, afterRef, afterGen, size)
	if err != nil {
		return 0, "", 0, fmt.Errorf("subjectkeys: rewrap: list keys: %w", err)
	}
	type row struct {
		ref      string
		gen      int
		masterID string
		wrapped  []byte
	}
	batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.ref, &x.gen, &x.masterID, &x.wrapped)
		return x, err
	})
	if err != nil {
		return 0, "", 0, fmt.Errorf("subjectkeys: rewrap: list keys: %w", err)
	}
	if len(batch) == 0 {
		return 0, "", 0, nil
	}
	refs, gens, olds, wrapped := make([]string, len(batch)), make([]int32, len(batch)), make([]string, len(batch)), make([][]byte, len(batch))
	for i, r := range batch {
		raw, err := k.unwrapRaw(r.ref, r.gen, r.masterID, r.wrapped)
		if err != nil {
			return 0, "", 0, fmt.Errorf("subjectkeys: rewrap: %w", err)
		}
		w, err := k.wrap(r.ref, r.gen, raw)
		clear(raw)
		if err != nil {
			return 0, "", 0, fmt.Errorf("subjectkeys: rewrap: %w", err)
		}
		refs[i], gens[i], olds[i], wrapped[i] = r.ref, int32(r.gen), r.masterID, w
	}
	tag, err := tx.Exec(ctx, `
		UPDATE lethe.subject_keys s SET master_key_id = $1, wrapped = u.wrapped
		FROM unnest($2::text[], $3::int[], $4::text[], $5::bytea[]) AS u(subject_ref, generation, old_master, wrapped)
		WHERE s.subject_ref = u.subject_ref AND s.generation = u.generation AND s.master_key_id = u.old_master`,
		k.activeID, refs, gens, olds, wrapped)
	if err != nil {
		return 0, "", 0, fmt.Errorf("subjectkeys: rewrap: store keys: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, "", 0, fmt.Errorf("subjectkeys: rewrap: commit: %w", err)
	}
	last := batch[len(batch)-1]
	return int(tag.RowsAffected()), last.ref, last.gen, nil
}

// KeyCounts is how many per-person data keys Lethe's database holds.
type KeyCounts struct {
	// Wrapped counts the live keys by the id of the master key that wraps
	// them: each id with a count needs its master key configured.
	Wrapped map[string]int
	// Destroyed counts the tombstones of destroyed keys (shredded).
	Destroyed int
}

// Live is the number of live keys, under any master key.
func (c KeyCounts) Live() int {
	n := 0
	for _, v := range c.Wrapped {
		n += v
	}
	return n
}

// CountKeys counts the per-person data keys by the master key that wraps
// them. It needs no master key: it reads ids, never key material.
func CountKeys(ctx context.Context, db *pgxpool.Pool) (KeyCounts, error) {
	c := KeyCounts{Wrapped: map[string]int{}}
	rows, err := db.Query(ctx, `
		SELECT coalesce(master_key_id, ''), count(*) FROM lethe.subject_keys
		GROUP BY master_key_id`)
	if err != nil {
		return c, fmt.Errorf("subjectkeys: count keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			return c, fmt.Errorf("subjectkeys: count keys: %w", err)
		}
		if id == "" { // subject_keys_live_or_destroyed: no master key id is a tombstone
			c.Destroyed += n
			continue
		}
		c.Wrapped[id] = n
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("subjectkeys: count keys: %w", err)
	}
	return c, nil
}

// liveKey returns the subject's live key and its generation, creating the
// next generation when none is live (never had one, or destroyed). An
// unknown and an erased subject cost the same: one read, one insert.
func (k *Keyring) liveKey(ctx context.Context, ref string) (int, cipher.AEAD, error) {
	for attempt := 0; attempt < 3; attempt++ {
		var (
			gen         int
			masterID    *string
			wrapped     []byte
			destroyedAt *time.Time
		)
		err := k.pool.QueryRow(ctx, `
			SELECT generation, master_key_id, wrapped, destroyed_at FROM lethe.subject_keys
			WHERE subject_ref = $1 ORDER BY destroyed_at IS NULL DESC, generation DESC LIMIT 1`, ref).
			Scan(&gen, &masterID, &wrapped, &destroyedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			gen = 0
		case err != nil:
			return 0, nil, fmt.Errorf("subjectkeys: read key for %s: %w", ref, err)
		case destroyedAt == nil && masterID != nil && wrapped != nil:
			aead, err := k.unwrap(ref, gen, *masterID, wrapped)
			return gen, aead, err
		}
		aead, inserted, err := k.create(ctx, ref, gen+1)
		if err != nil {
			return 0, nil, err
		}
		if inserted {
			return gen + 1, aead, nil
		}
		// Another Seal made a key meanwhile (use theirs), or a Destroy
		// took the generation: read again.
	}
	return 0, nil, fmt.Errorf("subjectkeys: key for %s: created and gone again", ref)
}

// keyOf returns the subject's key of one generation, to open data sealed
// with it.
func (k *Keyring) keyOf(ctx context.Context, ref string, gen int) (cipher.AEAD, error) {
	var (
		masterID    *string
		wrapped     []byte
		destroyedAt *time.Time
	)
	err := k.pool.QueryRow(ctx,
		`SELECT master_key_id, wrapped, destroyed_at FROM lethe.subject_keys WHERE subject_ref = $1 AND generation = $2`, ref, gen).
		Scan(&masterID, &wrapped, &destroyedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("subjectkeys: key %d for %s: %w", gen, ref, ErrNoKey)
	case err != nil:
		return nil, fmt.Errorf("subjectkeys: read key for %s: %w", ref, err)
	case destroyedAt != nil || masterID == nil || wrapped == nil:
		return nil, fmt.Errorf("subjectkeys: key %d for %s: %w", gen, ref, ErrKeyDestroyed)
	}
	return k.unwrap(ref, gen, *masterID, wrapped)
}

// create inserts a new random data key of generation gen for ref unless
// that generation exists or another is live; inserted says whether this
// call's key is the one stored.
func (k *Keyring) create(ctx context.Context, ref string, gen int) (cipher.AEAD, bool, error) {
	raw := make([]byte, keySize)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, fmt.Errorf("subjectkeys: generate key: %w", err)
	}
	wrapped, err := k.wrap(ref, gen, raw)
	if err != nil {
		return nil, false, err
	}
	// ON CONFLICT without a target: the generation is taken, or another
	// generation is live (subject_keys_one_live).
	tag, err := k.pool.Exec(ctx, `
		INSERT INTO lethe.subject_keys (subject_ref, generation, master_key_id, wrapped)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, ref, gen, k.activeID, wrapped)
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
func (k *Keyring) wrap(ref string, gen int, raw []byte) ([]byte, error) {
	m := k.masters[k.activeID]
	out := make([]byte, 1+m.NonceSize(), 1+m.NonceSize()+len(raw)+m.Overhead())
	out[0] = wrapVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("subjectkeys: read nonce: %w", err)
	}
	return m.Seal(out, out[1:], raw, wrapAAD(ref, gen, k.activeID)), nil
}

// unwrap decrypts a wrapped data key into a cipher.
func (k *Keyring) unwrap(ref string, gen int, masterID string, wrapped []byte) (cipher.AEAD, error) {
	raw, err := k.unwrapRaw(ref, gen, masterID, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, fmt.Errorf("subjectkeys: key for %s: %w", ref, err)
	}
	return aead, nil
}

// unwrapRaw decrypts a wrapped data key; the caller clears the result.
func (k *Keyring) unwrapRaw(ref string, gen int, masterID string, wrapped []byte) ([]byte, error) {
	m, ok := k.masters[masterID]
	if !ok {
		return nil, fmt.Errorf("subjectkeys: key for %s is wrapped with master key %q: %w", ref, masterID, ErrUnknownMasterKey)
	}
	if len(wrapped) < 1+m.NonceSize()+m.Overhead() || wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("subjectkeys: wrapped key for %s is malformed: %w", ref, ErrCorrupt)
	}
	nonce, ct := wrapped[1:1+m.NonceSize()], wrapped[1+m.NonceSize():]
	raw, err := m.Open(nil, nonce, ct, wrapAAD(ref, gen, masterID))
	if err != nil || len(raw) != keySize {
		clear(raw)
		return nil, fmt.Errorf("subjectkeys: wrapped key for %s does not unwrap with master key %q: %w", ref, masterID, ErrCorrupt)
	}
	return raw, nil
}

// parseSealed splits sealed data into its version, the generation of the
// key that sealed it, and the nonce and ciphertext.
func parseSealed(sealed []byte) (version byte, gen int, rest []byte, err error) {
	if len(sealed) == 0 {
		return 0, 0, nil, fmt.Errorf("empty: %w", ErrCorrupt)
	}
	switch sealed[0] {
	case sealV1:
		return sealV1, 1, sealed[1:], nil
	case sealV2:
		if len(sealed) < 5 {
			return 0, 0, nil, fmt.Errorf("truncated: %w", ErrCorrupt)
		}
		g := binary.BigEndian.Uint32(sealed[1:5])
		if g < 1 || g > 1<<31-1 {
			return 0, 0, nil, fmt.Errorf("no such key generation: %w", ErrCorrupt)
		}
		return sealV2, int(g), sealed[5:], nil
	}
	return 0, 0, nil, fmt.Errorf("unsupported version %d: %w", sealed[0], ErrCorrupt)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealAAD binds sealed data to its subject and, from version 2, to the
// generation of the key.
func sealAAD(ref string, version byte, gen int) []byte {
	if version == sealV1 {
		return append([]byte{sealV1}, sealAADPrefixV1+ref...)
	}
	return append([]byte{sealV2}, sealAADPrefixV2+ref+"\x00"+strconv.Itoa(gen)...)
}

// wrapAAD binds a wrapped key to its row: subject, master key and, after
// the first, generation (first generations are wrapped as before
// generations existed, so that their rows stay valid).
func wrapAAD(ref string, gen int, masterID string) []byte {
	aad := append([]byte{wrapVersion}, wrapAADPrefix+ref+"\x00"+masterID...)
	if gen > 1 {
		aad = append(aad, "\x00generation "+strconv.Itoa(gen)...)
	}
	return aad
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
