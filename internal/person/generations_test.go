package person_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// keyRows is ref's key rows by generation: true when live.
func keyRows(t *testing.T, pool *pgxpool.Pool, ref string) map[int]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT generation, destroyed_at IS NULL AND wrapped IS NOT NULL FROM lethe.subject_keys WHERE subject_ref = $1`, ref)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]bool{}
	for rows.Next() {
		var gen int
		var live bool
		if err := rows.Scan(&gen, &live); err != nil {
			t.Fatal(err)
		}
		out[gen] = live
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// An erased person who comes back gets a new key; what the old one sealed
// stays shredded, however many times they come and go.
func TestSealAfterDestroyMakesANewKeyAndTheOldDataStaysShredded(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1 := masterKey(t, "m1")
	kr := newKeyring(t, pool, m1)

	first, err := kr.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	second, err := kr.Seal(ctx, alice, []byte("second life"))
	if err != nil {
		t.Fatalf("seal for a person erased before: %v", err)
	}
	if !bytes.Equal(second[1:5], []byte{0, 0, 0, 2}) {
		t.Fatalf("sealed with generation %v, want 2", second[1:5])
	}
	for name, k := range map[string]*person.Keyring{"same keyring": kr, "fresh keyring": newKeyring(t, pool, m1)} {
		if got, err := k.Open(ctx, alice, second); err != nil || string(got) != "second life" {
			t.Fatalf("%s: open the new data: %q, %v", name, got, err)
		}
		if got, err := k.Open(ctx, alice, first); !errors.Is(err, person.ErrKeyDestroyed) {
			t.Fatalf("%s: the data of the destroyed key opened (%q) or failed otherwise: %v", name, got, err)
		}
	}
	if got := keyRows(t, pool, alice); len(got) != 2 || got[1] || !got[2] {
		t.Fatalf("key rows = %v, want generation 1 destroyed and 2 live", got)
	}
	// The old data moved onto the new generation does not open either: the
	// generation is part of what the data is bound to.
	forged := append([]byte{2, 0, 0, 0, 2}, first[5:]...)
	if _, err := kr.Open(ctx, alice, forged); !errors.Is(err, person.ErrCorrupt) {
		t.Fatalf("old data relabelled as generation 2: %v", err)
	}
	// A generation never made.
	ghost := append([]byte{2, 0, 0, 0, 9}, second[5:]...)
	if _, err := kr.Open(ctx, alice, ghost); !errors.Is(err, person.ErrNoKey) {
		t.Fatalf("generation 9: %v", err)
	}

	// Erased again: both generations are gone, and a third comes next.
	if err := kr.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]byte{first, second} {
		if _, err := kr.Open(ctx, alice, s); !errors.Is(err, person.ErrKeyDestroyed) {
			t.Fatalf("after the second destroy: %v", err)
		}
	}
	third, err := kr.Seal(ctx, alice, identity)
	if err != nil || !bytes.Equal(third[1:5], []byte{0, 0, 0, 3}) {
		t.Fatalf("third seal: %v, %v", err, third[:5])
	}
	if got := keyRows(t, pool, alice); len(got) != 3 || got[1] || got[2] || !got[3] {
		t.Fatalf("key rows = %v", got)
	}
}

// A keyring that used the person's key must not go on using it once
// another process destroyed it: not to seal (the new request would be
// sealed with a key already gone), not to open.
func TestAKeyDestroyedElsewhereIsGoneAtOnceHere(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1 := masterKey(t, "m1")
	api, worker := newKeyring(t, pool, m1), newKeyring(t, pool, m1) // two processes
	old, err := api.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Open(ctx, alice, old); err != nil { // the key is used, and was cached before
		t.Fatal(err)
	}
	if err := worker.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if got, err := api.Open(ctx, alice, old); !errors.Is(err, person.ErrKeyDestroyed) {
		t.Fatalf("the other process still opens the destroyed key's data: %q, %v", got, err)
	}
	fresh, err := api.Seal(ctx, alice, []byte("new request"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := worker.Open(ctx, alice, fresh); err != nil || string(got) != "new request" {
		t.Fatalf("data sealed right after a destroy elsewhere does not open: %q, %v", got, err)
	}
}

// Right after an erasure, several requests of the person at once agree on
// one new key.
func TestConcurrentSealsAfterDestroyAgreeOnOneKey(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1 := masterKey(t, "m1")
	if _, err := newKeyring(t, pool, m1).Seal(ctx, alice, identity); err != nil {
		t.Fatal(err)
	}
	if err := newKeyring(t, pool, m1).Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	sealed := sealAtOnce(t, pool, m1, 12)
	if got := keyRows(t, pool, alice); len(got) != 2 || got[1] || !got[2] {
		t.Fatalf("key rows = %v, want generation 1 destroyed and one live generation 2", got)
	}
	opensAll(t, pool, m1, sealed)
}

// A shredding activity retried after its first attempt committed (the
// worker died before Temporal heard back) must not destroy the key the
// person was given meanwhile by a new request.
func TestDestroyOnceLeavesTheKeyMadeAfterIt(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	kr := newKeyring(t, pool, masterKey(t, "m1"))
	if _, err := kr.Seal(ctx, alice, identity); err != nil {
		t.Fatal(err)
	}
	if err := kr.DestroyOnce(ctx, alice, "req_1/run/5"); err != nil {
		t.Fatal(err)
	}
	next, err := kr.Seal(ctx, alice, []byte("new request"))
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.DestroyOnce(ctx, alice, "req_1/run/5"); err != nil { // the retry
		t.Fatal(err)
	}
	if got, err := kr.Open(ctx, alice, next); err != nil || string(got) != "new request" {
		t.Fatalf("the retried shred destroyed the new key: %q, %v", got, err)
	}
	// Another operation (the new request's own erasure) destroys it.
	if err := kr.DestroyOnce(ctx, alice, "req_2/run/5"); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(ctx, alice, next); !errors.Is(err, person.ErrKeyDestroyed) {
		t.Fatalf("a second erasure left the key: %v", err)
	}

	// With no key live at its first attempt (shredded before by the
	// records' retention), the operation still leaves its mark.
	if err := kr.DestroyOnce(ctx, alice, "req_3/run/5"); err != nil {
		t.Fatal(err)
	}
	later, err := kr.Seal(ctx, alice, []byte("later"))
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.DestroyOnce(ctx, alice, "req_3/run/5"); err != nil {
		t.Fatal(err)
	}
	if got, err := kr.Open(ctx, alice, later); err != nil || string(got) != "later" {
		t.Fatalf("a retry that found nothing live the first time destroyed the later key: %q, %v", got, err)
	}
	if err := kr.DestroyOnce(ctx, alice, ""); err == nil {
		t.Fatal("DestroyOnce without an operation: want an error")
	}
	// Plain Destroy still destroys whatever is live.
	if err := kr.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(ctx, alice, later); !errors.Is(err, person.ErrKeyDestroyed) {
		t.Fatalf("Destroy left the live key: %v", err)
	}
}

// countingTracer counts the statements on lethe.subject_keys a pool sends.
type countingTracer struct{ n atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "lethe.subject_keys") {
		c.n.Add(1)
	}
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Sealing for someone erased is the same work as sealing for someone never
// seen (one read, one insert), so an answer that waits on it tells nobody
// who was erased.
func TestSealingForAnErasedPersonCostsWhatItCostsForAStranger(t *testing.T) {
	ctx := context.Background()
	_, url := pgtest.NewPool(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	tracer := &countingTracer{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	kr := newKeyring(t, pool, masterKey(t, "m1"))
	if _, err := kr.Seal(ctx, alice, identity); err != nil {
		t.Fatal(err)
	}
	if err := kr.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	cost := func(ref string) int64 {
		before := tracer.n.Load()
		if _, err := kr.Seal(ctx, ref, identity); err != nil {
			t.Fatalf("seal: %v", err)
		}
		return tracer.n.Load() - before
	}
	erased, stranger, known := cost(alice), cost(bob), cost(bob)
	if erased != stranger || erased != 2 {
		t.Fatalf("statements to seal: %d for an erased person, %d for a stranger; want 2 each", erased, stranger)
	}
	if known != 1 {
		t.Fatalf("statements to seal with a live key: %d, want 1", known)
	}
}

// Keys and data from before generations existed (migration 012) keep
// working: the key is generation 1, and destroying it still shreds.
func TestDataSealedBeforeKeyGenerationsStillOpensAndShreds(t *testing.T) {
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrate.NewMigrator(ctx, conn.Conn(), "public.lethe_schema_version")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(os.DirFS("../store/migrations")); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 11); err != nil {
		t.Fatal(err)
	}
	conn.Release()

	// A key and data in the format of before, written by hand.
	m1 := masterKey(t, "m1")
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	gcm := func(key []byte) cipher.AEAD {
		b, err := aes.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		a, err := cipher.NewGCM(b)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	seal := func(a cipher.AEAD, plain, aad []byte) []byte {
		out := make([]byte, 1+a.NonceSize())
		out[0] = 1
		if _, err := rand.Read(out[1:]); err != nil {
			t.Fatal(err)
		}
		return a.Seal(out, out[1:], plain, aad)
	}
	wrapped := seal(gcm(m1.Material), raw, append([]byte{1}, "lethe/subject-key/v1\x00"+alice+"\x00m1"...))
	old := seal(gcm(raw), identity, append([]byte{1}, "lethe/subject-data/v1\x00"+alice...))
	if _, err := pool.Exec(ctx, `INSERT INTO lethe.subject_keys (subject_ref, master_key_id, wrapped) VALUES ($1, 'm1', $2)`, alice, wrapped); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO lethe.subject_keys (subject_ref, destroyed_at) VALUES ($1, now())`, bob); err != nil {
		t.Fatal(err)
	}

	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	kr := newKeyring(t, pool, m1)
	if got, err := kr.Open(ctx, alice, old); err != nil || !bytes.Equal(got, identity) {
		t.Fatalf("data sealed before generations: %q, %v", got, err)
	}
	again, err := kr.Seal(ctx, alice, identity) // the same key, now generation 1
	if err != nil || !bytes.Equal(again[1:5], []byte{0, 0, 0, 1}) {
		t.Fatalf("seal with the old key: %v, %v", err, again[:5])
	}
	if d, _, err := kr.Destroyed(ctx, bob); err != nil || !d {
		t.Fatalf("bob's tombstone from before: %v, %v", d, err)
	}
	if _, err := kr.Seal(ctx, bob, identity); err != nil {
		t.Fatalf("bob, erased before generations, asks again: %v", err)
	}
	if err := kr.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]byte{old, again} {
		if _, err := kr.Open(ctx, alice, s); !errors.Is(err, person.ErrKeyDestroyed) {
			t.Fatalf("after destroy: %v", err)
		}
	}

	// The migration goes back down to one row per person, the newest.
	conn, err = pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if m, err = migrate.NewMigrator(ctx, conn.Conn(), "public.lethe_schema_version"); err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(os.DirFS("../store/migrations")); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 11); err != nil {
		t.Fatalf("down to 11: %v", err)
	}
	var rows, people int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT subject_ref) FROM lethe.subject_keys`).Scan(&rows, &people); err != nil {
		t.Fatal(err)
	}
	if rows != 2 || people != 2 {
		t.Fatalf("after the down migration: %d rows for %d people", rows, people)
	}
}

// A later generation's key is wrapped bound to its generation and moves to
// a new master key like any other.
func TestRewrapMovesLaterGenerations(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1, m2 := masterKey(t, "m1"), masterKey(t, "m2")
	old := newKeyring(t, pool, m1)
	if _, err := old.Seal(ctx, alice, identity); err != nil {
		t.Fatal(err)
	}
	if err := old.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatal(err)
	}
	// Someone with database access moves generation 2's wrapped key onto a
	// first generation: it does not unwrap there.
	if _, err := pool.Exec(ctx, `INSERT INTO lethe.subject_keys (subject_ref, generation, master_key_id, wrapped)
		SELECT $2, 1, master_key_id, wrapped FROM lethe.subject_keys WHERE subject_ref = $1 AND generation = 2`, alice, bob); err != nil {
		t.Fatal(err)
	}
	bobs := append([]byte{2, 0, 0, 0, 1}, sealed[5:]...)
	if _, err := old.Open(ctx, bob, bobs); !errors.Is(err, person.ErrCorrupt) {
		t.Fatalf("moved wrapped key: %v", err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM lethe.subject_keys WHERE subject_ref = $1`, bob); err != nil {
		t.Fatal(err)
	}

	rotated := newKeyring(t, pool, m2, m1)
	if p, err := rotated.Rewrap(ctx, person.RewrapOptions{}); err != nil || p.Rewrapped != 1 {
		t.Fatalf("Rewrap = %+v, %v; want 1 (the live generation only)", p, err)
	}
	if got, err := newKeyring(t, pool, m2).Open(ctx, alice, sealed); err != nil || !bytes.Equal(got, identity) {
		t.Fatalf("open generation 2 after rewrap without m1: %v", err)
	}
}
