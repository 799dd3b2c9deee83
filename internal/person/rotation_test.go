package person_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/person"
)

// rotationPeople seals an identity for n people under kr and returns their
// references and what was sealed, by reference.
func rotationPeople(t *testing.T, kr *person.Keyring, n int) ([]string, map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	refs := make([]string, n)
	sealed := map[string][]byte{}
	for i := range refs {
		refs[i] = fmt.Sprintf("sr_rotation%04d", i)
		s, err := person.Seal(ctx, kr, refs[i], person.Identity{Email: fmt.Sprintf("person%d@example.com", i), UserID: fmt.Sprintf("u-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		sealed[refs[i]] = s
	}
	return refs, sealed
}

// wrappedKeys is every live row's wrapped key, by reference and generation.
func wrappedKeys(t *testing.T, pool *pgxpool.Pool) map[string][]byte {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT subject_ref || '/' || generation, wrapped FROM lethe.subject_keys WHERE wrapped IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var w []byte
		if err := rows.Scan(&k, &w); err != nil {
			t.Fatal(err)
		}
		out[k] = w
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countKeys(t *testing.T, pool *pgxpool.Pool) person.KeyCounts {
	t.Helper()
	c, err := person.CountKeys(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A master key rotation, interrupted and resumed: people sealed under the
// old master key are read under the new one alone, and erased (shredded)
// after it; tombstones stay tombstones; a key is wrapped once.
func TestRewrapInPagesIsResumedAndWrapsEachKeyOnce(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1, m2 := masterKey(t, "m1"), masterKey(t, "m2")
	old := newKeyring(t, pool, m1)
	refs, sealed := rotationPeople(t, old, 23)
	// Two people erased before the rotation; one of them came back (a live
	// second generation).
	for _, ref := range refs[:2] {
		if err := old.Destroy(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	comeback, err := person.Seal(ctx, old, refs[0], person.Identity{Email: "comeback@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	live := 22 // 21 first generations and the comeback's second one
	if c := countKeys(t, pool); c.Wrapped["m1"] != live || c.Live() != live || c.Destroyed != 2 {
		t.Fatalf("before the rotation: %+v; want %d live under m1 and 2 destroyed", c, live)
	}

	rotated := newKeyring(t, pool, m2, m1)
	if rotated.ActiveMasterKey() != "m2" {
		t.Fatalf("active master key %q, want m2", rotated.ActiveMasterKey())
	}
	// The run is interrupted after its first page.
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	var seen []person.RewrapProgress
	p, err := rotated.Rewrap(stop, person.RewrapOptions{PageSize: 5, Progress: func(p person.RewrapProgress) {
		seen = append(seen, p)
		cancel()
	}})
	if !errors.Is(err, context.Canceled) || p.Pages != 1 || p.Rewrapped != 5 || len(seen) != 1 {
		t.Fatalf("interrupted run = %+v, %v (progress %v); want 1 page of 5 committed and context.Canceled", p, err, seen)
	}
	if c := countKeys(t, pool); c.Wrapped["m2"] != 5 || c.Wrapped["m1"] != live-5 {
		t.Fatalf("after the interrupted run: %+v; want 5 under m2, %d under m1", c, live-5)
	}
	firstRun := wrappedKeys(t, pool)

	// Run again: it does the rest, in pages, and leaves the first page's keys as they were.
	seen = nil
	p, err = rotated.Rewrap(ctx, person.RewrapOptions{PageSize: 5, Progress: func(p person.RewrapProgress) { seen = append(seen, p) }})
	if err != nil || p.Rewrapped != live-5 || p.Pages != 4 || len(seen) != 4 || seen[3] != p {
		t.Fatalf("resumed run = %+v, %v (progress %v); want %d keys in 4 pages", p, err, seen, live-5)
	}
	after := wrappedKeys(t, pool)
	moved := 0
	for k, w := range firstRun {
		if bytes.Equal(after[k], w) {
			moved++
		}
	}
	if moved != 5 {
		t.Fatalf("%d keys of the first run kept their wrapping, want 5 (a key was wrapped twice, or lost)", moved)
	}
	if p, err := rotated.Rewrap(ctx, person.RewrapOptions{PageSize: 5}); err != nil || p.Rewrapped != 0 || p.Pages != 0 {
		t.Fatalf("third run = %+v, %v; want nothing to do", p, err)
	}
	if c := countKeys(t, pool); c.Wrapped["m2"] != live || len(c.Wrapped) != 1 || c.Destroyed != 2 {
		t.Fatalf("after the rotation: %+v; want all %d live keys under m2 and 2 destroyed", c, live)
	}

	// m1 is retired: everyone opens under m2 alone, the erased stay erased.
	retired := newKeyring(t, pool, m2)
	for i, ref := range refs {
		id, err := person.Open(ctx, retired, ref, sealed[ref])
		switch {
		case i < 2:
			if !errors.Is(err, person.ErrKeyDestroyed) {
				t.Errorf("%s, erased before the rotation: %v", ref, err)
			}
		case err != nil || id.Email != fmt.Sprintf("person%d@example.com", i):
			t.Errorf("%s after the rotation: %v", ref, err)
		}
	}
	if id, err := person.Open(ctx, retired, refs[0], comeback); err != nil || id.Email != "comeback@example.com" {
		t.Errorf("the comeback's second generation after the rotation: %v", err)
	}
	// And someone erased after the rotation is shredded.
	if err := retired.Destroy(ctx, refs[5]); err != nil {
		t.Fatal(err)
	}
	if _, err := person.Open(ctx, retired, refs[5], sealed[refs[5]]); !errors.Is(err, person.ErrKeyDestroyed) {
		t.Errorf("erased after the rotation: %v", err)
	}
}

// Two runs at once share the work: each key is re-wrapped by one of them.
func TestConcurrentRewrapsWrapEachKeyOnce(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m1, m2 := masterKey(t, "m1"), masterKey(t, "m2")
	refs, sealed := rotationPeople(t, newKeyring(t, pool, m1), 40)
	var wg sync.WaitGroup
	results := make([]person.RewrapProgress, 2)
	errs := make([]error, 2)
	for i := range results {
		kr := newKeyring(t, pool, m2, m1) // each run its own, as in two processes
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = kr.Rewrap(ctx, person.RewrapOptions{PageSize: 3})
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || results[0].Rewrapped+results[1].Rewrapped != len(refs) {
		t.Fatalf("concurrent runs: %+v %v; want %d keys between them", results, errs, len(refs))
	}
	retired := newKeyring(t, pool, m2)
	for _, ref := range refs {
		if _, err := person.Open(ctx, retired, ref, sealed[ref]); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
}

// A key under a master key no longer configured stops the run: the page
// that met it is undone, what was committed before stays, and the error
// names the missing master key.
func TestRewrapStopsAtAKeyItCannotUnwrap(t *testing.T) {
	ctx := context.Background()
	pool := newDB(t)
	m0, m1, m2 := masterKey(t, "m0"), masterKey(t, "m1"), masterKey(t, "m2")
	refs, _ := rotationPeople(t, newKeyring(t, pool, m1), 6)
	// The last person in the run's order has a key under m0, retired too early.
	if _, err := newKeyring(t, pool, m0).Seal(ctx, "sr_rotation9999", []byte("x")); err != nil {
		t.Fatal(err)
	}
	p, err := newKeyring(t, pool, m2, m1).Rewrap(ctx, person.RewrapOptions{PageSize: 4})
	if !errors.Is(err, person.ErrUnknownMasterKey) || p.Rewrapped != 4 || p.Pages != 1 {
		t.Fatalf("run = %+v, %v; want the first page of 4 committed, then ErrUnknownMasterKey", p, err)
	}
	if c := countKeys(t, pool); c.Wrapped["m2"] != 4 || c.Wrapped["m1"] != len(refs)-4 || c.Wrapped["m0"] != 1 {
		t.Fatalf("after the failed run: %+v; want the second page undone", c)
	}
	// With m0 back (listed after the active key), the run completes.
	if p, err := newKeyring(t, pool, m2, m1, m0).Rewrap(ctx, person.RewrapOptions{PageSize: 4}); err != nil || p.Rewrapped != len(refs)-4+1 {
		t.Fatalf("run with m0 back = %+v, %v", p, err)
	}
}
