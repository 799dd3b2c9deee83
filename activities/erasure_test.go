package activities_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/objectstore"
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

// EraseOwnSystems erases the database and every S3 location and reads
// them again in one activity; run again (a retry after it completed), it
// reports what the first run erased from the tables and the locations. A retried attempt
// goes on from its heartbeat: given one that says the database is done,
// it does not erase the tables again, and its own verification says the
// rows are still there (the result is never "done" on the heartbeat's word
// alone).
func TestEraseOwnSystemsErasesVerifiesAndResumes(t *testing.T) {
	app := newDemoApp(t, 3)
	ctx := context.Background()
	e := &activities.Erasure{App: app.pool, Lethe: app.pool, Objects: app.objects, Map: app.m, Keys: app.keys, Subjects: app.hasher, Log: app.log}
	var s testsuite.WorkflowTestSuite
	planned := func(account demo.Account) contract.ErasurePlan {
		t.Helper()
		ref := string(app.hasher.UserID(account.ID))
		sealed, err := person.Seal(ctx, app.keys, ref, person.Identity{Email: account.Email})
		if err != nil {
			t.Fatal(err)
		}
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(e.PlanAndRecordErasure)
		v, err := env.ExecuteActivity(e.PlanAndRecordErasure, contract.ErasureInput{RequestID: "req_" + account.ID, SubjectRef: ref, Identity: sealed})
		if err != nil {
			t.Fatal(err)
		}
		var plan contract.ErasurePlan
		if err := v.Get(&plan); err != nil || !plan.Found {
			t.Fatalf("plan %+v: %v", plan, err)
		}
		var inLedger int
		if err := app.pool.QueryRow(ctx, `SELECT count(*) FROM lethe.erasure_ledger WHERE request_id = $1`, "req_"+account.ID).Scan(&inLedger); err != nil || inLedger != 1 {
			t.Fatalf("%d ledger entries for the request (%v): the plan records the person", inLedger, err)
		}
		return plan
	}
	run := func(env *testsuite.TestActivityEnvironment, account demo.Account, plan contract.ErasurePlan) contract.EraseOwnSystemsResult {
		t.Helper()
		env.RegisterActivity(e.EraseOwnSystems)
		v, err := env.ExecuteActivity(e.EraseOwnSystems, contract.EraseOwnSystemsInput{RequestID: "req_" + account.ID, SubjectRef: string(app.hasher.UserID(account.ID)), Identity: plan.Identity})
		if err != nil {
			t.Fatal(err)
		}
		var res contract.EraseOwnSystemsResult
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	accounts := demo.Accounts(3)

	a := accounts[0]
	plan := planned(a)
	first := run(s.NewTestActivityEnvironment(), a, plan)
	if len(first.Leftovers) != 0 || len(first.Objects) != len(app.m.S3) || first.Objects[0].Objects == 0 || len(first.Tables.Tables) == 0 {
		t.Fatalf("first run: %+v", first)
	}
	var rows int
	if err := app.pool.QueryRow(ctx, `SELECT count(*) FROM demo.projects WHERE account_id = $1`, a.ID).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d projects left (%v)", rows, err)
	}
	for _, loc := range app.m.S3 {
		prefix, _ := loc.PrefixFor(a.ID)
		if c, err := objectstore.CountPrefix(ctx, app.objects, loc.Bucket, prefix); err != nil || c.Total() != 0 {
			t.Fatalf("%+v left under %s (%v)", c, prefix, err)
		}
	}
	again := run(s.NewTestActivityEnvironment(), a, plan)
	if len(again.Leftovers) != 0 || fmt.Sprint(again.Tables.Tables) != fmt.Sprint(first.Tables.Tables) {
		t.Fatalf("run again: tables %+v, want the first run's %+v", again.Tables.Tables, first.Tables.Tables)
	}
	// The objects too: what the first run deleted, recorded after each
	// batch, not the nothing a second listing finds.
	if fmt.Sprint(again.Objects) != fmt.Sprint(first.Objects) {
		t.Fatalf("run again: objects %+v, want the first run's %+v", again.Objects, first.Objects)
	}

	b := accounts[1]
	plan = planned(b)
	resumed := s.NewTestActivityEnvironment()
	resumed.SetHeartbeatDetails(map[string]any{"Tables": contract.EraseTablesResult{Tables: []contract.TableOutcome{{Table: "demo.projects", Action: "deleted", Rows: 9}}}})
	res := run(resumed, b, plan)
	if len(res.Tables.Tables) != 1 || res.Tables.Tables[0].Rows != 9 {
		t.Fatalf("resumed tables %+v: want the heartbeat's", res.Tables)
	}
	if err := app.pool.QueryRow(ctx, `SELECT count(*) FROM demo.projects WHERE account_id = $1`, b.ID).Scan(&rows); err != nil || rows == 0 {
		t.Fatalf("%d projects (%v): the resumed attempt erased the tables again", rows, err)
	}
	if len(res.Leftovers) == 0 || !strings.Contains(strings.Join(res.Leftovers, ";"), "demo.projects") {
		t.Fatalf("leftovers %v: the verification must find the rows the heartbeat said were gone", res.Leftovers)
	}

	// A location that fails for good (its prefix cannot hold the user id)
	// is named in the failure, with what the systems before it erased.
	c := accounts[2]
	plan = planned(c)
	broken := *app.m
	broken.S3 = slices.Clone(app.m.S3)
	last := len(broken.S3) - 1
	broken.S3[last].Prefix = "../elsewhere/{user_id}/"
	failing := &activities.Erasure{App: app.pool, Lethe: app.pool, Objects: app.objects, Map: &broken, Keys: app.keys, Subjects: app.hasher, Log: app.log}
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(failing.EraseOwnSystems)
	_, err := env.ExecuteActivity(failing.EraseOwnSystems, contract.EraseOwnSystemsInput{RequestID: "req_" + c.ID, SubjectRef: string(app.hasher.UserID(c.ID)), Identity: plan.Identity})
	var app2 *temporal.ApplicationError
	var failed contract.OwnSystemsFailure
	if !errors.As(err, &app2) || !app2.NonRetryable() || app2.Type() != "BadIdentifier" || !app2.HasDetails() || app2.Details(&failed) != nil {
		t.Fatalf("error %v: want BadIdentifier, not retried, with the failure's detail", err)
	}
	if failed.Failed != 1+last || failed.Tables == nil || len(failed.Tables.Tables) == 0 || len(failed.Objects) != last {
		t.Fatalf("failure %+v: want location %d failed, the database and the %d locations before it erased", failed, last, last)
	}
}

// Each attempt of a request's erasure counts the objects it deleted, and
// an attempt that finds nothing left reports what an earlier one deleted:
// a later attempt (another activity) erasing files a restore brought back
// counts those, not the earlier attempt's, and not the two together.
func TestObjectCountsBelongToTheAttemptThatDeletedThem(t *testing.T) {
	app := newDemoApp(t, 1)
	ctx := context.Background()
	e := &activities.Erasure{App: app.pool, Lethe: app.pool, Objects: app.objects, Map: app.m, Keys: app.keys, Subjects: app.hasher, Log: app.log}
	a := demo.Accounts(1)[0]
	ref := string(app.hasher.UserID(a.ID))
	sealed, err := person.Seal(ctx, app.keys, ref, person.Identity{UserID: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	in := contract.EraseOwnSystemsInput{RequestID: "req_c", SubjectRef: ref, Identity: sealed}
	objects := func(res contract.EraseOwnSystemsResult) []int {
		var n []int
		for _, o := range res.Objects {
			n = append(n, o.Objects)
		}
		return n
	}
	// The first attempt, as an activity.
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(e.EraseOwnSystems)
	v, err := env.ExecuteActivity(e.EraseOwnSystems, in)
	if err != nil {
		t.Fatal(err)
	}
	var first contract.EraseOwnSystemsResult
	if err := v.Get(&first); err != nil {
		t.Fatal(err)
	}
	if got := objects(first); len(got) != 2 || got[0] == 0 || got[1] == 0 {
		t.Fatalf("first attempt deleted %v objects", got)
	}
	// Another attempt (outside that activity) finds nothing: the first's counts.
	second, err := e.EraseOwnSystems(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(objects(second), objects(first)) {
		t.Fatalf("an attempt that found nothing reports %v, want the first's %v", objects(second), objects(first))
	}
	// A restore brings two files back under the first location: the next
	// attempt counts those two; the second location, empty, keeps the first's.
	prefix, _ := app.m.S3[0].PrefixFor(a.ID)
	for _, k := range []string{"restored-1.pdf", "restored-2.pdf"} {
		if _, err := app.objects.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(app.m.S3[0].Bucket), Key: aws.String(prefix + k), Body: strings.NewReader("back")}); err != nil {
			t.Fatal(err)
		}
	}
	third, err := e.EraseOwnSystems(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := objects(third); !slices.Equal(got, []int{2, objects(first)[1]}) {
		t.Fatalf("after the restore: %v, want [2 %d]", got, objects(first)[1])
	}
	if c, err := objectstore.CountPrefix(ctx, app.objects, app.m.S3[0].Bucket, prefix); err != nil || c.Total() != 0 {
		t.Fatalf("%d objects left (%v)", c.Total(), err)
	}
	// Run again, that attempt's own record: still two.
	fourth, err := e.EraseOwnSystems(ctx, in)
	if err != nil || !slices.Equal(objects(fourth), objects(third)) {
		t.Fatalf("run again: %v (%v), want %v", objects(fourth), err, objects(third))
	}
}
