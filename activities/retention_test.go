package activities_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

func TestPurgeClosedRequestsShredsOnlyPeopleWithNothingRecent(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewLethePool(t)
	master, _ := codec.GenerateKey()
	keys, err := person.NewKeyring(pool, []config.Key{master})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	old, recent := now.AddDate(-3, 0, 0), now.AddDate(0, -1, 0)
	const gone, stays, open = "sr_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sr_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "sr_cccccccccccccccccccccccccccccccc"
	sealed := map[string][]byte{}
	for _, ref := range []string{gone, stays, open} {
		if sealed[ref], err = keys.Seal(ctx, ref, []byte("identity")); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		id, ref string
		closed  *time.Time
	}{
		{"req_old1", gone, &old}, {"req_old2", stays, &old}, {"req_new2", stays, &recent}, {"req_old3", open, &old}, {"req_open3", open, nil},
	} {
		if _, err := pool.Exec(ctx, `INSERT INTO lethe.requests (id, type, subject_ref, jurisdiction, status, workflow_id, received_at, closed_at)
			VALUES ($1, 'access', $2, 'gdpr', 'completed', $1, $3, $4)`, r.id, r.ref, old, r.closed); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO lethe.verification_codes (request_id, seq, code_hash) VALUES ($1, 1, 'h')`, r.id); err != nil {
			t.Fatal(err)
		}
	}
	l := &activities.Lifecycle{DB: pool, Keys: keys, Log: slog.New(slog.DiscardHandler)}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(l.PurgeClosedRequests)
	for round := 0; round < 2; round++ { // a second run changes nothing
		v, err := env.ExecuteActivity(l.PurgeClosedRequests, contract.PurgeRecordsInput{Cutoff: now.AddDate(-2, 0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		var res contract.PurgeRecordsResult
		_ = v.Get(&res)
		if want := map[int]int{0: 3, 1: 0}[round]; res.Requests != want {
			t.Fatalf("round %d purged %d requests, want %d", round, res.Requests, want)
		}
	}
	if _, err := keys.Open(ctx, gone, sealed[gone]); err == nil {
		t.Error("the key of a person with only old requests survived")
	}
	for _, ref := range []string{stays, open} {
		if _, err := keys.Open(ctx, ref, sealed[ref]); err != nil {
			t.Errorf("%s has a recent or open request but lost its key: %v", ref, err)
		}
	}
	var codes, kept int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM lethe.verification_codes WHERE request_id IN ('req_old1','req_old2','req_old3')`).Scan(&codes)
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM lethe.requests`).Scan(&kept)
	if codes != 0 || kept != 5 {
		t.Fatalf("old code hashes left %d, request rows %d (rows stay: they hold no personal data)", codes, kept)
	}
}
