package activities_test

import (
	"context"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// A retried EraseTables (the worker died after the commit, before Temporal
// heard back) finds nothing left, and still reports what went.
func TestARetriedTableErasureReportsWhatTheFirstAttemptErased(t *testing.T) {
	app := newDemoApp(t, 2)
	ctx := context.Background()
	account := demo.Accounts(1)[0]
	ref := string(app.hasher.UserID(account.ID))
	sealed, err := person.Seal(ctx, app.keys, ref, person.Identity{UserID: account.ID})
	if err != nil {
		t.Fatal(err)
	}
	e := &activities.Erasure{App: app.pool, Lethe: app.pool, Objects: app.objects, Map: app.m, Keys: app.keys, Subjects: app.hasher, Log: app.log}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(e.EraseTables)
	erase := func() map[string]int {
		t.Helper()
		v, err := env.ExecuteActivity(e.EraseTables, contract.EraseTablesInput{RequestID: "req_1", SubjectRef: ref, Identity: sealed})
		if err != nil {
			t.Fatal(err)
		}
		var res contract.EraseTablesResult
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		rows := map[string]int{}
		for _, o := range res.Tables {
			rows[o.Action+" "+o.Table] = o.Rows
		}
		return rows
	}
	first := erase()
	if first["deleted demo.projects"] == 0 || first["anonymized demo.accounts"] != 1 || first["retained demo.purchases"] != 1 {
		t.Fatalf("first attempt: %v", first)
	}
	var left int
	if err := app.pool.QueryRow(ctx, `SELECT count(*) FROM demo.projects WHERE account_id = $1`, account.ID).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d projects left (%v)", left, err)
	}
	again := erase()
	for k, n := range first {
		if again[k] != n {
			t.Errorf("retry reports %s = %d, the first attempt %d", k, again[k], n)
		}
	}
}
