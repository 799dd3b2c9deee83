package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

func hasher(t *testing.T) *person.Hasher {
	t.Helper()
	h, err := person.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRecordKeepsTheFirstErasure(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewLethePool(t)
	ref := string(hasher(t).UserID("u-1"))
	t1 := time.Date(2027, 1, 10, 9, 0, 0, 0, time.UTC)
	if err := ledger.Record(ctx, db, ref, "req_first", "sha256:aaa", t1); err != nil {
		t.Fatal(err)
	}
	// A retry, and a later erasure of the same person: the first entry stays.
	if err := ledger.Record(ctx, db, ref, "req_first", "sha256:aaa", t1); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Record(ctx, db, ref, "req_second", "sha256:bbb", t1.AddDate(0, 1, 0)); err != nil {
		t.Fatal(err)
	}
	e, ok, err := ledger.Get(ctx, db, ref)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if e.RequestID != "req_first" || !e.ErasedAt.Equal(t1) || e.MapDigest != "sha256:aaa" || e.ReconciledCount != 0 || !e.BackupsClearAt.IsZero() {
		t.Fatalf("entry %+v, want the first erasure unchanged", e)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM lethe.erasure_ledger`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows (%v), want 1", n, err)
	}
}

func TestTheLedgerRefusesPlaintextUserIDs(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewLethePool(t)
	at := time.Now()
	for _, bad := range []string{"u-1001", "ada@example.com", "", "sr_", "SR_ABC"} {
		if err := ledger.Record(ctx, db, bad, "req_x", "d", at); !errors.Is(err, ledger.ErrNotARef) {
			t.Errorf("record %q: %v, want ErrNotARef", bad, err)
		}
		if _, err := ledger.Contains(ctx, db, []string{bad}); !errors.Is(err, ledger.ErrNotARef) {
			t.Errorf("contains %q: %v, want ErrNotARef", bad, err)
		}
		if _, err := ledger.MarkReconciled(ctx, db, bad, at); !errors.Is(err, ledger.ErrNotARef) {
			t.Errorf("mark reconciled %q: %v, want ErrNotARef", bad, err)
		}
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM lethe.erasure_ledger`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows written (%v), want none", n, err)
	}
}

func TestContainsFindsTheErasedOnAPage(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewLethePool(t)
	h := hasher(t)
	at := time.Now()
	for _, id := range []string{"u-2", "u-5"} {
		if err := ledger.Record(ctx, db, string(h.UserID(id)), "req_"+id, "d", at); err != nil {
			t.Fatal(err)
		}
	}
	var page []string
	for _, id := range []string{"u-1", "u-2", "u-3", "u-4", "u-5", "u-6"} {
		page = append(page, string(h.UserID(id)))
	}
	got, err := ledger.Contains(ctx, db, page)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[string(h.UserID("u-2"))] || !got[string(h.UserID("u-5"))] {
		t.Fatalf("found %v, want u-2 and u-5 only", got)
	}
	if got, err := ledger.Contains(ctx, db, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty page: %v %v", got, err)
	}
}

func TestMarkBackupsClearKeepsTheFirstDate(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewLethePool(t)
	h := hasher(t)
	at := time.Date(2027, 1, 10, 9, 0, 0, 0, time.UTC)
	ref := string(h.UserID("u-1"))
	if err := ledger.Record(ctx, db, ref, "req_a", "d", at); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Record(ctx, db, string(h.UserID("u-2")), "req_b", "d", at); err != nil {
		t.Fatal(err)
	}
	clear := at.AddDate(0, 0, 35)
	if n, err := ledger.MarkBackupsClear(ctx, db, "req_a", clear); err != nil || n != 1 {
		t.Fatalf("mark: %d %v", n, err)
	}
	if n, err := ledger.MarkBackupsClear(ctx, db, "req_a", clear.AddDate(0, 0, 1)); err != nil || n != 1 {
		t.Fatalf("mark again: %d %v", n, err)
	}
	if n, err := ledger.MarkBackupsClear(ctx, db, "req_unknown", clear); err != nil || n != 0 {
		t.Fatalf("unknown request: %d %v", n, err)
	}
	e, _, _ := ledger.Get(ctx, db, ref)
	if !e.BackupsClearAt.Equal(clear) {
		t.Fatalf("backups clear at %s, want the first date %s", e.BackupsClearAt, clear)
	}
	other, _, _ := ledger.Get(ctx, db, string(h.UserID("u-2")))
	if !other.BackupsClearAt.IsZero() {
		t.Fatalf("another request's entry was marked: %+v", other)
	}
}

func TestMarkReconciledCountsEachRunOnce(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewLethePool(t)
	ref := string(hasher(t).UserID("u-1"))
	at := time.Date(2027, 1, 10, 9, 0, 0, 0, time.UTC)
	if err := ledger.Record(ctx, db, ref, "req_a", "d", at); err != nil {
		t.Fatal(err)
	}
	run1, run2 := at.AddDate(0, 2, 0).Add(123456789*time.Nanosecond), at.AddDate(0, 5, 0)
	for i, c := range []struct {
		at      time.Time
		counted bool
	}{{run1, true}, {run1, false}, {run2, true}, {run2, false}} {
		counted, err := ledger.MarkReconciled(ctx, db, ref, c.at)
		if err != nil || counted != c.counted {
			t.Fatalf("call %d: counted %v (%v), want %v", i, counted, err, c.counted)
		}
	}
	e, _, _ := ledger.Get(ctx, db, ref)
	if e.ReconciledCount != 2 || !e.LastReconciledAt.Equal(run2) {
		t.Fatalf("entry %+v, want 2 runs, the last at %s", e, run2)
	}
	// Someone not in the ledger is never counted.
	if counted, err := ledger.MarkReconciled(ctx, db, string(hasher(t).UserID("u-9")), run1); err != nil || counted {
		t.Fatalf("not in the ledger: counted %v (%v)", counted, err)
	}
}
