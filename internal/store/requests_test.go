package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

func TestClaimIsOneOpenRequestPerPersonAndType(t *testing.T) {
	ctx := context.Background()
	s := store.New(pgtest.NewLethePool(t))
	now := time.Now().UTC().Truncate(time.Microsecond)
	due := now.AddDate(0, 1, 0)
	if ok, err := s.Claim(ctx, "req_a", domain.TypeErasure, "sr_1", "gdpr", now, due); err != nil || !ok {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	if ok, err := s.Claim(ctx, "req_b", domain.TypeErasure, "sr_1", "gdpr", now, due); err != nil || ok {
		t.Fatalf("a twin must lose and join: %v %v", ok, err)
	}
	open, ok, err := s.OpenRequest(ctx, "sr_1", domain.TypeErasure)
	if err != nil || !ok || open.ID != "req_a" || open.Status != domain.StatusReceived || !open.DueAt.Equal(due) {
		t.Fatalf("open request: %+v %v %v", open, ok, err)
	}
	if err := s.Abandon(ctx, "req_a"); err != nil { // younger than a minute: still starting
		t.Fatal(err)
	}
	if closed, err := s.Closed(ctx, "req_a"); err != nil || closed {
		t.Fatalf("a fresh claim is not abandoned: %v %v", closed, err)
	}
	if err := s.DeleteClaim(ctx, "req_a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.OpenRequest(ctx, "sr_1", domain.TypeErasure); err != nil || ok {
		t.Fatalf("deleted claim still open: %v %v", ok, err)
	}
	if _, err := s.Request(ctx, "req_a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}

func TestPurgeIsOneTransaction(t *testing.T) {
	ctx := context.Background()
	s := store.New(pgtest.NewLethePool(t))
	received := time.Now().UTC().AddDate(0, -2, 0)
	closed := received.AddDate(0, 0, 1)
	if err := s.RecordTransition(ctx, store.Transition{ID: "req_c", Type: domain.TypeAccess, SubjectRef: "sr_2", Jurisdiction: "gdpr",
		Status: domain.StatusCompleted, ReceivedAt: received, DueAt: received.AddDate(0, 1, 0), ClosedAt: &closed}); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreCodeHash(ctx, "req_c", 1, "h1"); err != nil {
		t.Fatal(err)
	}
	batch, err := s.ClosedBefore(ctx, time.Now(), 10)
	if err != nil || len(batch) != 1 || batch[0] != (store.ClosedRequest{ID: "req_c", SubjectRef: "sr_2", Shred: true}) {
		t.Fatalf("closed before: %+v %v", batch, err)
	}
	failed := errors.New("the other owner failed")
	err = s.Purge(ctx, []string{"req_c"}, func(context.Context, pgx.Tx, []string) error { return failed })
	if !errors.Is(err, failed) {
		t.Fatalf("want the hook's error, got %v", err)
	}
	if _, ok, err := s.CodeHash(ctx, "req_c", 1); err != nil || !ok {
		t.Fatalf("a failed purge must delete nothing: %v %v", ok, err)
	}
	if err := s.Purge(ctx, []string{"req_c"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.CodeHash(ctx, "req_c", 1); err != nil || ok {
		t.Fatalf("code hash left after purge: %v %v", ok, err)
	}
	if batch, err := s.ClosedBefore(ctx, time.Now(), 10); err != nil || len(batch) != 0 {
		t.Fatalf("a purged request is purged once: %+v %v", batch, err)
	}
}
