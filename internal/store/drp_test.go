package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

func TestDRPAgentsTokensAndTheReplayRecord(t *testing.T) {
	ctx := context.Background()
	s := store.New(pgtest.NewLethePool(t))
	key, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	tokenHash := bytes.Repeat([]byte{9}, 32)
	if err := s.PutDRPAgent(ctx, store.DRPAgent{ID: "AA", VerifyKey: key, CallbackURL: "https://aa.example"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDRPToken(ctx, "AA", tokenHash); err != nil {
		t.Fatal(err)
	}
	if a, err := s.DRPAgentByToken(ctx, tokenHash); err != nil || a.ID != "AA" || !a.HasToken || a.TokenIssuedAt == nil {
		t.Fatalf("by token: %+v %v", a, err)
	}
	// Registered again with the same key: the token stays; with another key it is void.
	if err := s.PutDRPAgent(ctx, store.DRPAgent{ID: "AA", VerifyKey: key, TrustVerifiedEmail: true}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.DRPAgentByToken(ctx, tokenHash); err != nil || !a.TrustVerifiedEmail {
		t.Fatalf("same key: %+v %v", a, err)
	}
	if err := s.PutDRPAgent(ctx, store.DRPAgent{ID: "AA", VerifyKey: other}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DRPAgentByToken(ctx, tokenHash); !errors.Is(err, store.ErrNoAgent) {
		t.Fatalf("a new key must void the token: %v", err)
	}
	// Revoked: neither by id nor by token.
	if err := s.SetDRPToken(ctx, "AA", tokenHash); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeDRPAgent(ctx, "AA"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DRPAgent(ctx, "AA"); !errors.Is(err, store.ErrNoAgent) {
		t.Errorf("revoked agent by id: %v", err)
	}
	if _, err := s.DRPAgentByToken(ctx, tokenHash); !errors.Is(err, store.ErrNoAgent) {
		t.Errorf("revoked agent by token: %v", err)
	}
	if err := s.RevokeDRPAgent(ctx, "NOBODY"); !errors.Is(err, store.ErrNoAgent) {
		t.Errorf("revoking nobody: %v", err)
	}
	// A message is taken once per agent.
	digest := bytes.Repeat([]byte{7}, 32)
	exp := time.Now().Add(5 * time.Minute)
	if fresh, err := s.SeeDRPMessage(ctx, "AA", digest, exp); err != nil || !fresh {
		t.Fatalf("first sight: %v %v", fresh, err)
	}
	if fresh, err := s.SeeDRPMessage(ctx, "AA", digest, exp); err != nil || fresh {
		t.Fatalf("a replay must not be fresh: %v %v", fresh, err)
	}
}

func TestDRPCallbacksAreLeasedAndFollowTheRecord(t *testing.T) {
	ctx := context.Background()
	s := store.New(pgtest.NewLethePool(t))
	if err := s.PutDRPAgent(ctx, store.DRPAgent{ID: "AA", VerifyKey: bytes.Repeat([]byte{1}, 32), CallbackURL: "https://aa.example"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if _, err := s.Claim(ctx, "req_a", domain.TypeErasure, "sr_1", domain.CCPA, now, now.AddDate(0, 0, 45)); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkDRPRequest(ctx, store.DRPRequest{RequestID: "req_a", AgentID: "AA", Exercise: "deletion", StatusCallback: "https://aa.example/cb"}, "in_progress/|x"); err != nil {
		t.Fatal(err)
	}
	due, err := s.DueDRPCallbacks(ctx, time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].Status != domain.StatusReceived || due[0].NotifiedState != "in_progress/|x" || due[0].StatusCallback != "https://aa.example/cb" {
		t.Fatalf("due: %+v %v", due, err)
	}
	if again, err := s.DueDRPCallbacks(ctx, time.Minute, 10); err != nil || len(again) != 0 {
		t.Fatalf("a leased row was handed out twice: %+v %v", again, err)
	}
	if err := s.DRPCallbackFailed(ctx, "req_a", "AA", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if due, err := s.DueDRPCallbacks(ctx, time.Minute, 10); err != nil || len(due) != 1 || due[0].Attempts != 1 {
		t.Fatalf("after a failure: %+v %v", due, err)
	}
	if err := s.DRPCallbackDone(ctx, "req_a", "AA", "fulfilled/|", true, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if due, err := s.DueDRPCallbacks(ctx, time.Minute, 10); err != nil || len(due) != 0 {
		t.Fatalf("a final state is not looked at again: %+v %v", due, err)
	}
	if cbs, err := s.DRPAgentCallbacks(ctx, "req_a"); err != nil || len(cbs) != 1 {
		t.Fatalf("the agents of a linked request: %q %v", cbs, err)
	}
	if err := s.Purge(ctx, []string{"req_a"}, nil); err != nil {
		t.Fatal(err)
	}
	if cbs, err := s.DRPAgentCallbacks(ctx, "req_a"); err != nil || len(cbs) != 0 {
		t.Fatalf("a purged request keeps its DRP link: %q %v", cbs, err)
	}
}
