//go:build !nodev

package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// An erasure runs end to end on Temporal on PostgreSQL (4 history shards,
// its own fresh databases, dropped after) with the worker in a process of
// its own, built from ./worker and configured through the environment: the
// person's rows are gone from the application database, the request is
// completed in Lethe's store, the server's state is in PostgreSQL, and the
// worker process ran the work.
func TestAnErasureOnTemporalOnPostgresWithAWorkerProcess(t *testing.T) {
	ctx := context.Background()
	w := newErasureBenchOn(t, benchEngine{PostgresShards: 4, WorkerProcesses: 1})
	people := w.seed(t, 1, 2)
	projects := func() int {
		var n int
		if err := w.app.QueryRow(ctx, `SELECT count(*) FROM demo.projects WHERE account_id = $1`, people[0].ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if projects() == 0 {
		t.Fatal("seed: the person has no projects")
	}
	began := time.Now().Add(-time.Second)
	id := w.submit(t, people[0])
	w.waitCompleted(t, id)

	// The outcome, read from the databases rather than the API.
	w.assertErased(t, people)
	// The request's last step records it completed just after the
	// workflow says so to the API.
	var status string
	testenv.Eventually(t, 10*time.Second, "request completed in Lethe's store", func() bool {
		if err := w.lethe.QueryRow(ctx, `SELECT status FROM lethe.requests WHERE id = $1`, id).Scan(&status); err != nil {
			t.Fatal(err)
		}
		return status == domain.StatusCompleted
	})
	if n := projects(); n != 0 {
		t.Errorf("%d project rows of the erased person left", n)
	}

	// The engine: the server says PostgreSQL with 4 shards, and its main
	// database holds the 4 shards and the erasure's executions.
	info, err := w.temporal.WorkflowService().GetClusterInfo(ctx, &workflowservice.GetClusterInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.HistoryShardCount != 4 || !strings.HasPrefix(info.PersistenceStore, "postgres") || !strings.HasPrefix(info.VisibilityStore, "postgres") {
		t.Errorf("cluster: %d shards, persistence %q, visibility %q; want 4 on postgres", info.HistoryShardCount, info.PersistenceStore, info.VisibilityStore)
	}
	u, err := url.Parse(pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + w.pgStore.Database
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var shards, executions int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM shards), (SELECT count(*) FROM executions)`).Scan(&shards, &executions); err != nil {
		t.Fatal(err)
	}
	if shards != 4 || executions == 0 {
		t.Errorf("Temporal's database: %d shards, %d executions; want 4 and some", shards, executions)
	}

	// The worker process ran the workflow and activity tasks, and no one else.
	c := w.countHistories(t, began)
	acts, actsElsewhere := w.byProcess(c.activityStarts)
	wfts, wftsElsewhere := w.byProcess(c.workflowTaskStarts)
	if acts[0] == 0 || wfts[0] == 0 || actsElsewhere+wftsElsewhere > 0 {
		t.Errorf("worker process: %d activity and %d workflow tasks; elsewhere %d and %d (histories %+v)",
			acts[0], wfts[0], actsElsewhere, wftsElsewhere, c)
	}
	t.Logf("histories of the erasure: %+v", c)
}

func TestDevTemporalStoreFromTheEnvironment(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	if p, err := devTemporalStore(env(nil)); p != nil || err != nil {
		t.Errorf("unset: %v, %v; want SQLite", p, err)
	}
	p, err := devTemporalStore(env(map[string]string{"LETHE_DEV_TEMPORAL_DB": "postgres"}))
	if err != nil || p == nil || p.Database != "lethe_temporal" || p.Shards != 4 || p.Addr != "127.0.0.1:5432" {
		t.Errorf("postgres with defaults: %+v, %v", p, err)
	}
	p, err = devTemporalStore(env(map[string]string{"LETHE_DEV_TEMPORAL_DB": "postgres", "LETHE_DEV_TEMPORAL_SHARDS": "16",
		"LETHE_DEV_TEMPORAL_POSTGRES_URL": "postgres://t@db:6543/tmp"}))
	if err != nil || p.Shards != 16 || p.Database != "tmp" || p.Addr != "db:6543" || p.User != "t" {
		t.Errorf("postgres as configured: %+v, %v", p, err)
	}
	for name, vars := range map[string]map[string]string{
		"LETHE_DEV_TEMPORAL_DB":           {"LETHE_DEV_TEMPORAL_DB": "mysql"},
		"LETHE_DEV_TEMPORAL_SHARDS":       {"LETHE_DEV_TEMPORAL_DB": "postgres", "LETHE_DEV_TEMPORAL_SHARDS": "zero"},
		"LETHE_DEV_TEMPORAL_POSTGRES_URL": {"LETHE_DEV_TEMPORAL_DB": "postgres", "LETHE_DEV_TEMPORAL_POSTGRES_URL": "mysql://x/y"},
	} {
		if _, err := devTemporalStore(env(vars)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: %v, want an error naming %s", vars, err, name)
		}
	}
}
