package person_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

const (
	alice = "sr_alice0000000000000000000000000"
	bob   = "sr_bob00000000000000000000000000"
)

var identity = []byte(`{"email":"alice@example.com","name":"Alice Example"}`)

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.NewLethePool(t)
	return pool
}

func masterKey(t *testing.T, id string) config.Key {
	t.Helper()
	m := make([]byte, 32)
	if _, err := rand.Read(m); err != nil {
		t.Fatal(err)
	}
	return config.Key{ID: id, Material: m}
}

func newKeyring(t *testing.T, pool *pgxpool.Pool, keys ...config.Key) *person.Keyring {
	t.Helper()
	k, err := person.NewKeyring(pool, keys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1 := masterKey(t, "m1")
	kr := newKeyring(t, pool, m1)

	sealed, err := kr.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatal(err)
	}
	if sealed[0] != 2 || !bytes.Equal(sealed[1:5], []byte{0, 0, 0, 1}) {
		t.Fatalf("version and generation = %d %v, want 2 and generation 1", sealed[0], sealed[1:5])
	}
	if bytes.Contains(sealed, []byte("alice@example.com")) {
		t.Fatal("sealed data contains the plaintext")
	}
	again, err := kr.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sealed, again) {
		t.Fatal("sealing twice gives the same bytes: nonce reused")
	}
	// A fresh keyring (another process, empty cache) opens both.
	other := newKeyring(t, pool, m1)
	for _, s := range [][]byte{sealed, again} {
		got, err := other.Open(ctx, alice, s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, identity) {
			t.Fatalf("opened %q", got)
		}
	}

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM lethe.subject_keys WHERE subject_ref = $1 AND master_key_id = 'm1' AND wrapped IS NOT NULL`, alice).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d key rows for alice, want 1", n)
	}

	// Sealed data is bound to its subject, and tampering shows.
	if _, err := kr.Seal(ctx, bob, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(ctx, bob, sealed); !errors.Is(err, person.ErrCorrupt) {
		t.Fatalf("alice's data opened as bob's: %v", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := kr.Open(ctx, alice, tampered); !errors.Is(err, person.ErrCorrupt) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := kr.Open(ctx, alice, sealed[:10]); !errors.Is(err, person.ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := kr.Open(ctx, "sr_nobody", sealed); !errors.Is(err, person.ErrNoKey) {
		t.Fatalf("no key: %v", err)
	}
	if d, _, err := kr.Destroyed(ctx, alice); err != nil || d {
		t.Fatalf("Destroyed(alice) = %v, %v before any Destroy", d, err)
	}
}

func TestDestroyShredsEveryCopy(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1 := masterKey(t, "m1")
	kr := newKeyring(t, pool, m1) // default cache: the key is in memory
	sealed, err := kr.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatal(err)
	}
	backup := bytes.Clone(sealed) // as if copied into a backup or an export
	bobSealed, err := kr.Seal(ctx, bob, []byte("bob's notice"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(ctx, alice, backup); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	if err := kr.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*person.Keyring{"same keyring": kr, "fresh keyring": newKeyring(t, pool, m1)} {
		if _, err := k.Open(ctx, alice, backup); !errors.Is(err, person.ErrKeyDestroyed) {
			t.Fatalf("%s: open after destroy: %v", name, err)
		}
	}
	destroyed, at, err := kr.Destroyed(ctx, alice)
	if err != nil || !destroyed || at.Before(before.Add(-time.Minute)) {
		t.Fatalf("Destroyed = %v, %v, %v", destroyed, at, err)
	}

	// The row is a tombstone: reference and time, no key.
	var wrappedNull, masterNull bool
	if err := pool.QueryRow(ctx, `SELECT wrapped IS NULL, master_key_id IS NULL FROM lethe.subject_keys WHERE subject_ref = $1 AND generation = 1`, alice).Scan(&wrappedNull, &masterNull); err != nil {
		t.Fatal(err)
	}
	if !wrappedNull || !masterNull {
		t.Fatal("destroyed row still holds its wrapped key")
	}

	// Idempotent, keeping the first time.
	time.Sleep(10 * time.Millisecond)
	if err := kr.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, at2, _ := kr.Destroyed(ctx, alice); !at2.Equal(at) {
		t.Fatalf("second Destroy moved destroyed_at from %v to %v", at, at2)
	}

	// Others are untouched.
	if got, err := kr.Open(ctx, bob, bobSealed); err != nil || string(got) != "bob's notice" {
		t.Fatalf("bob after alice's destroy: %q, %v", got, err)
	}
}

func TestDestroyBeforeFirstSeal(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t, newDB(t), masterKey(t, "m1"))
	if err := kr.Destroy(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if d, at, err := kr.Destroyed(ctx, alice); err != nil || !d || at.IsZero() {
		t.Fatalf("Destroyed = %v, %v, %v", d, at, err)
	}
	// The tombstone does not keep the person from having a key later.
	sealed, err := kr.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatalf("seal after a destroy before any key: %v", err)
	}
	if got, err := kr.Open(ctx, alice, sealed); err != nil || !bytes.Equal(got, identity) {
		t.Fatalf("open: %q, %v", got, err)
	}
	if d, _, err := kr.Destroyed(ctx, alice); err != nil || d {
		t.Fatalf("Destroyed = %v, %v with a live key", d, err)
	}
}

func TestConcurrentFirstSeal(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1 := masterKey(t, "m1")
	sealed := sealAtOnce(t, pool, m1, 12)

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM lethe.subject_keys WHERE subject_ref = $1`, alice).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d key rows, want 1", n)
	}
	opensAll(t, pool, m1, sealed)
}

func TestMasterKeyRotation(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1, m2 := masterKey(t, "m1"), masterKey(t, "m2")

	old := newKeyring(t, pool, m1)
	aliceSealed, err := old.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatal(err)
	}

	rotated := newKeyring(t, pool, m2, m1)
	if got, err := rotated.Open(ctx, alice, aliceSealed); err != nil || !bytes.Equal(got, identity) {
		t.Fatalf("open under the old master key after rotation: %v", err)
	}
	if _, err := rotated.Seal(ctx, bob, []byte("new")); err != nil {
		t.Fatal(err)
	}
	masterOf := func(ref string) string {
		var id string
		if err := pool.QueryRow(ctx, `SELECT master_key_id FROM lethe.subject_keys WHERE subject_ref = $1`, ref).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	if masterOf(bob) != "m2" || masterOf(alice) != "m1" {
		t.Fatalf("master keys: alice %s, bob %s", masterOf(alice), masterOf(bob))
	}

	// Without m1, alice's key cannot be unwrapped yet: the error names m1.
	_, err = newKeyring(t, pool, m2).Open(ctx, alice, aliceSealed)
	if !errors.Is(err, person.ErrUnknownMasterKey) || !strings.Contains(err.Error(), `"m1"`) {
		t.Fatalf("open without m1: %v", err)
	}

	// Rewrap moves it to m2; then m1 can be retired.
	if p, err := rotated.Rewrap(ctx, person.RewrapOptions{}); err != nil || p.Rewrapped != 1 {
		t.Fatalf("Rewrap = %+v, %v; want 1", p, err)
	}
	if p, err := rotated.Rewrap(ctx, person.RewrapOptions{}); err != nil || p.Rewrapped != 0 {
		t.Fatalf("second Rewrap = %+v, %v; want 0", p, err)
	}
	if masterOf(alice) != "m2" {
		t.Fatal("alice's key is still wrapped with m1")
	}
	if got, err := newKeyring(t, pool, m2).Open(ctx, alice, aliceSealed); err != nil || !bytes.Equal(got, identity) {
		t.Fatalf("open after rewrap without m1: %v", err)
	}
}

func TestWrappedKeyIsBoundToItsRow(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1 := masterKey(t, "m1")
	kr := newKeyring(t, pool, m1)
	aliceSealed, err := kr.Seal(ctx, alice, identity)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Seal(ctx, bob, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Someone with database access copies alice's wrapped key onto bob's
	// row, hoping to open alice's data as bob's.
	if _, err := pool.Exec(ctx, `UPDATE lethe.subject_keys SET wrapped = (SELECT wrapped FROM lethe.subject_keys WHERE subject_ref = $1) WHERE subject_ref = $2`, alice, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := newKeyring(t, pool, m1).Open(ctx, bob, aliceSealed); !errors.Is(err, person.ErrCorrupt) {
		t.Fatalf("moved wrapped key: %v", err)
	}
	// The wrong master key material under the right id does not unwrap either.
	if _, err := newKeyring(t, pool, masterKey(t, "m1")).Open(ctx, alice, aliceSealed); !errors.Is(err, person.ErrCorrupt) {
		t.Fatalf("wrong master key material: %v", err)
	}
}

func TestNewRejectsBadMasterKeys(t *testing.T) {
	pool := newDB(t)
	for name, keys := range map[string][]config.Key{
		"none":      nil,
		"short":     {{ID: "m1", Material: make([]byte, 16)}},
		"no id":     {{Material: make([]byte, 32)}},
		"duplicate": {{ID: "m1", Material: make([]byte, 32)}, {ID: "m1", Material: make([]byte, 32)}},
	} {
		if _, err := person.NewKeyring(pool, keys); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestRefusesWhatIsNotAReference(t *testing.T) {
	ctx := context.Background()
	kr := newKeyring(t, newDB(t), masterKey(t, "m1"))
	for _, ref := range []string{"alice@example.com", "", "Alice Example", strings.Repeat("a", 200)} {
		_, err := kr.Seal(ctx, ref, identity)
		if !errors.Is(err, person.ErrInvalidRef) {
			t.Fatalf("Seal(%q): %v", ref, err)
		}
		if ref != "" && strings.Contains(err.Error(), ref) {
			t.Fatalf("error echoes the value: %v", err)
		}
		if err := kr.Destroy(ctx, ref); !errors.Is(err, person.ErrInvalidRef) {
			t.Fatalf("Destroy(%q): %v", ref, err)
		}
	}
}

// sealAtOnce seals alice's identity from n keyrings at the same moment, one
// each as if in separate worker processes, and fails the test on an error.
func sealAtOnce(t *testing.T, pool *pgxpool.Pool, m config.Key, n int) [][]byte {
	t.Helper()
	start := make(chan struct{})
	sealed := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		kr := newKeyring(t, pool, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sealed[i], errs[i] = kr.Seal(context.Background(), alice, identity)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("seal %d: %v", i, err)
		}
	}
	return sealed
}

// opensAll checks that every one of sealed opens to alice's identity with
// a fresh keyring: each was made with the key that won.
func opensAll(t *testing.T, pool *pgxpool.Pool, m config.Key, sealed [][]byte) {
	t.Helper()
	reader := newKeyring(t, pool, m)
	for i, s := range sealed {
		if got, err := reader.Open(context.Background(), alice, s); err != nil || !bytes.Equal(got, identity) {
			t.Fatalf("seal %d was made with a key that did not win: %v", i, err)
		}
	}
}
