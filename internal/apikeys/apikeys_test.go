package apikeys

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.NewLethePool(t)
	return pool
}

func mustCreate(t *testing.T, db DB, name, role string) (string, Key) {
	t.Helper()
	token, k, err := Create(context.Background(), db, name, role)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return token, k
}

// splitToken returns the id and encoded secret of a well-formed token.
func splitToken(t *testing.T, token string) (id, secret string) {
	t.Helper()
	rest, ok := strings.CutPrefix(token, "lethe_")
	i := strings.LastIndexByte(rest, '_')
	if !ok || i < 0 {
		t.Fatalf("token has not the form lethe_<id>_<secret>")
	}
	return rest[:i], rest[i+1:]
}

func TestCreateAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	token, k, err := Create(ctx, db, "billing backend", RoleBackend)
	if err != nil {
		t.Fatal(err)
	}
	id, secret := splitToken(t, token)
	if id != k.ID || !strings.HasPrefix(k.ID, "key_") || len(k.ID) != len("key_")+16 {
		t.Fatalf("id %q does not match the token or the form key_<16 chars>", k.ID)
	}
	if len(secret) != 52 { // 32 bytes in unpadded base32
		t.Fatalf("secret has %d characters, want 52", len(secret))
	}
	if k.Name != "billing backend" || k.Role != RoleBackend || k.CreatedAt.IsZero() || k.RevokedAt != nil || k.LastUsedAt != nil {
		t.Fatalf("unexpected key %+v", k)
	}

	got, err := Authenticate(ctx, db, token)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if got.ID != k.ID || got.Name != k.Name || got.Role != RoleBackend || !got.CreatedAt.Equal(k.CreatedAt) {
		t.Fatalf("authenticated as %+v, want %+v", got, k)
	}
	if got.LastUsedAt == nil {
		t.Fatal("last_used_at not set by a successful authentication")
	}

	op, _ := mustCreate(t, db, "ops", RoleOperator)
	if got, err := Authenticate(ctx, db, op); err != nil || got.Role != RoleOperator {
		t.Fatalf("operator key: %+v, %v", got, err)
	}
	if op == token {
		t.Fatal("two keys got the same token")
	}
}

func TestOnlyTheSecretsHashIsStored(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	token, k := mustCreate(t, db, "backend", RoleBackend)
	_, secret := splitToken(t, token)
	raw, ok := decode(secret, secretBytes)
	if !ok {
		t.Fatal("secret does not decode")
	}
	var stored []byte
	var row string
	if err := db.QueryRow(ctx, `SELECT secret_hash, a::text FROM lethe.api_keys a WHERE id = $1`, k.ID).Scan(&stored, &row); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(raw); string(stored) != string(want[:]) {
		t.Fatal("secret_hash is not the SHA-256 of the secret")
	}
	if strings.Contains(row, secret) || strings.Contains(row, fmt.Sprintf("%x", raw)) {
		t.Fatal("the row holds the secret")
	}
}

func TestAuthenticateRefusesWithOneGenericError(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	token, k := mustCreate(t, db, "backend", RoleBackend)
	id, secret := splitToken(t, token)
	other, _ := mustCreate(t, db, "other", RoleOperator)
	_, otherSecret := splitToken(t, other)
	// A well-formed id that no key has.
	unknown := "key_" + strings.Repeat("a", 16)
	// The last character of a 52-character secret carries 4 unused bits.
	nonCanonical := secret[:51] + string(flipUnusedBits(secret[51]))

	cases := map[string]string{
		"wrong secret":              "lethe_" + id + "_" + otherSecret,
		"unknown id":                "lethe_" + unknown + "_" + secret,
		"empty":                     "",
		"prefix only":               "lethe_",
		"no prefix":                 id + "_" + secret,
		"bearer scheme left in":     "Bearer " + token,
		"trailing newline":          token + "\n",
		"upper case":                strings.ToUpper(token),
		"secret too short":          token[:len(token)-1],
		"secret too long":           token + "a",
		"non-canonical secret":      "lethe_" + id + "_" + nonCanonical,
		"no secret":                 "lethe_" + id,
		"empty secret":              "lethe_" + id + "_",
		"id without key_":           "lethe_" + strings.TrimPrefix(id, "key_") + "_" + secret,
		"bad character in secret":   "lethe_" + id + "_" + secret[:51] + "1",
		"extra part":                "lethe_" + id + "_" + secret + "_" + secret,
		"very long":                 token + strings.Repeat("a", 1<<20),
		"secret in place of the id": "lethe_" + secret + "_" + secret,
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Authenticate(ctx, db, tok)
			if !errors.Is(err, ErrUnauthenticated) || err != ErrUnauthenticated {
				t.Fatalf("err = %v, want exactly ErrUnauthenticated", err)
			}
			if got != (Key{}) {
				t.Fatalf("a refused token returned key %+v", got)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), id) {
				t.Fatal("the error names part of the token")
			}
		})
	}
	// None of this counted as a use.
	keys, err := List(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, lk := range keys {
		if lk.ID == k.ID && lk.LastUsedAt != nil {
			t.Fatal("a refused token updated last_used_at")
		}
	}
}

// flipUnusedBits returns a base32 character with the same top bit but other
// low bits, so that it decodes to the same bytes.
func flipUnusedBits(c byte) byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}

func TestRevokedKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	token, k := mustCreate(t, db, "backend", RoleBackend)
	keep, _ := mustCreate(t, db, "kept", RoleBackend)
	if err := Revoke(ctx, db, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := Authenticate(ctx, db, token); err != ErrUnauthenticated {
		t.Fatalf("revoked key: err = %v, want ErrUnauthenticated", err)
	}
	if _, err := Authenticate(ctx, db, keep); err != nil {
		t.Fatalf("revoking one key affected another: %v", err)
	}

	first := revokedAt(t, db, k.ID)
	if err := Revoke(ctx, db, k.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if again := revokedAt(t, db, k.ID); !again.Equal(first) {
		t.Fatalf("second revoke moved revoked_at from %v to %v", first, again)
	}
	if err := Revoke(ctx, db, "key_"+strings.Repeat("b", 16)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown id: err = %v, want ErrNotFound", err)
	}
}

func revokedAt(t *testing.T, db DB, id string) time.Time {
	t.Helper()
	keys, err := List(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == id {
			if k.RevokedAt == nil || !k.Revoked() {
				t.Fatalf("key %s not revoked", id)
			}
			return *k.RevokedAt
		}
	}
	t.Fatalf("key %s not listed", id)
	return time.Time{}
}

func TestListShowsKeysWithoutSecrets(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if keys, err := List(ctx, db); err != nil || len(keys) != 0 {
		t.Fatalf("empty database: %v, %v", keys, err)
	}
	t1, k1 := mustCreate(t, db, "first", RoleBackend)
	t2, k2 := mustCreate(t, db, "second", RoleOperator)
	if err := Revoke(ctx, db, k2.ID); err != nil {
		t.Fatal(err)
	}
	keys, err := List(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != k1.ID || keys[1].ID != k2.ID {
		t.Fatalf("list = %+v, want %s then %s", keys, k1.ID, k2.ID)
	}
	if keys[0].Name != "first" || keys[0].Role != RoleBackend || keys[0].Revoked() {
		t.Fatalf("first key listed as %+v", keys[0])
	}
	if keys[1].Name != "second" || keys[1].Role != RoleOperator || !keys[1].Revoked() {
		t.Fatalf("second key listed as %+v", keys[1])
	}
	dump := fmt.Sprintf("%+v %#v", keys, keys)
	for _, tok := range []string{t1, t2} {
		if _, secret := splitToken(t, tok); strings.Contains(dump, secret) {
			t.Fatal("list shows a secret")
		}
	}
}

func TestCreateValidatesNameAndRole(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	for _, role := range []string{"", "admin", "Backend", "operator "} {
		if _, _, err := Create(ctx, db, "x", role); !errors.Is(err, ErrInvalidRole) {
			t.Errorf("role %q: err = %v, want ErrInvalidRole", role, err)
		}
	}
	for _, name := range []string{"", " padded", "tab\there", "new\nline", strings.Repeat("n", MaxNameLen+1), "\xff"} {
		if _, _, err := Create(ctx, db, name, RoleBackend); !errors.Is(err, ErrInvalidName) {
			t.Errorf("name %q: err = %v, want ErrInvalidName", name, err)
		}
	}
	if _, _, err := Create(ctx, db, strings.Repeat("ñ", MaxNameLen), RoleOperator); err != nil {
		t.Errorf("name of %d characters refused: %v", MaxNameLen, err)
	}
	if keys, _ := List(ctx, db); len(keys) != 1 {
		t.Fatalf("%d keys stored, want only the valid one", len(keys))
	}
	// The database refuses other roles too.
	if _, err := db.Exec(ctx, `INSERT INTO lethe.api_keys (id, name, role, secret_hash) VALUES ('key_x', 'x', 'admin', $1)`, make([]byte, 32)); err == nil {
		t.Fatal("the table accepted role admin")
	}
}

func TestLastUsedAtIsWrittenAtMostOnceAMinute(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	token, k := mustCreate(t, db, "backend", RoleBackend)
	set := func(ago string) {
		t.Helper()
		if _, err := db.Exec(ctx, `UPDATE lethe.api_keys SET last_used_at = now() - $2::interval WHERE id = $1`, k.ID, ago); err != nil {
			t.Fatal(err)
		}
	}
	lastUsed := func() time.Time {
		t.Helper()
		var at time.Time
		if err := db.QueryRow(ctx, `SELECT last_used_at FROM lethe.api_keys WHERE id = $1`, k.ID).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}

	set("30 seconds")
	before := lastUsed()
	if _, err := Authenticate(ctx, db, token); err != nil {
		t.Fatal(err)
	}
	if !lastUsed().Equal(before) {
		t.Fatal("last_used_at written again within a minute")
	}

	set("2 minutes")
	before = lastUsed()
	got, err := Authenticate(ctx, db, token)
	if err != nil {
		t.Fatal(err)
	}
	after := lastUsed()
	if !after.After(before) || got.LastUsedAt == nil || !got.LastUsedAt.Equal(after) {
		t.Fatalf("last_used_at %v -> %v (returned %v), want it moved to now", before, after, got.LastUsedAt)
	}
}

func TestAuthenticatorCacheAndRevocation(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	token, k := mustCreate(t, db, "backend", RoleBackend)
	other, _ := mustCreate(t, db, "other", RoleBackend)
	id, _ := splitToken(t, token)
	_, otherSecret := splitToken(t, other)

	a := NewAuthenticator(db, DefaultCacheTTL)
	var mu sync.Mutex
	now := time.Now()
	a.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	if got, err := a.Authenticate(ctx, token); err != nil || got.ID != k.ID {
		t.Fatalf("first use: %+v, %v", got, err)
	}
	// A wrong secret for a cached id is still refused.
	if _, err := a.Authenticate(ctx, "lethe_"+id+"_"+otherSecret); err != ErrUnauthenticated {
		t.Fatalf("wrong secret with a cached id: err = %v", err)
	}

	if err := Revoke(ctx, db, k.ID); err != nil {
		t.Fatal(err)
	}
	// Documented: a revoked key may work for up to the cache time ...
	advance(DefaultCacheTTL - time.Millisecond)
	if _, err := a.Authenticate(ctx, token); err != nil {
		t.Fatalf("within the cache time: %v", err)
	}
	// ... and not a moment longer.
	advance(time.Millisecond)
	if _, err := a.Authenticate(ctx, token); err != ErrUnauthenticated {
		t.Fatalf("after the cache time: err = %v, want ErrUnauthenticated", err)
	}
	// The uncached path refuses it at once.
	if _, err := Authenticate(ctx, db, token); err != ErrUnauthenticated {
		t.Fatalf("uncached: err = %v", err)
	}

	// Without a cache, revocation is immediate.
	t3, k3 := mustCreate(t, db, "third", RoleOperator)
	nc := NewAuthenticator(db, 0)
	if _, err := nc.Authenticate(ctx, t3); err != nil {
		t.Fatal(err)
	}
	if err := Revoke(ctx, db, k3.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Authenticate(ctx, t3); err != ErrUnauthenticated {
		t.Fatalf("ttl 0: err = %v, want ErrUnauthenticated", err)
	}
}

func TestAuthenticatorWritesLastUsedAtFromTheCache(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	token, k := mustCreate(t, db, "backend", RoleBackend)
	a := NewAuthenticator(db, time.Hour) // long, so every later call is a cache hit
	now := time.Now()
	a.now = func() time.Time { return now }
	first, err := a.Authenticate(ctx, token)
	if err != nil || first.LastUsedAt == nil {
		t.Fatalf("first use: %+v, %v", first, err)
	}
	// Pretend the write was long ago, in the database and in the clock.
	if _, err := db.Exec(ctx, `UPDATE lethe.api_keys SET last_used_at = now() - interval '5 minutes' WHERE id = $1`, k.ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	got, err := a.Authenticate(ctx, token)
	if err != nil || !got.LastUsedAt.Equal(*first.LastUsedAt) {
		t.Fatalf("within a minute: %v, %v; want no write", got.LastUsedAt, err)
	}
	now = now.Add(31 * time.Second)
	got, err = a.Authenticate(ctx, token)
	if err != nil || got.LastUsedAt == nil || !got.LastUsedAt.After(*first.LastUsedAt) {
		t.Fatalf("after a minute: %v, %v; want a fresh last_used_at", got.LastUsedAt, err)
	}
}

func TestAuthenticatorIsSafeForConcurrentUse(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	token, _ := mustCreate(t, db, "backend", RoleBackend)
	a := NewAuthenticator(db, DefaultCacheTTL)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			if _, err := a.Authenticate(ctx, token); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
