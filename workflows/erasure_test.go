package workflows_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// fakeSystems stands in for every system an erasure reaches and counts
// what each was asked.
type fakeSystems struct {
	mu               sync.Mutex
	plan             contract.ErasurePlan
	calls            map[string]int
	objectsFailFirst int
	leftovers        []string
	order            []string // what happened, in order
	children         map[string]int
	audits           []contract.AuditInput
	recorded         map[string]contract.ProcessorErasureResult // RecordProcessorResult's, by processor
	keepsResults     bool                                       // EarlierProcessorResult answers from recorded
	// tables and objects answer EraseTables and EraseObjects, and
	// EraseOwnSystems through them (a test may replace them before register).
	tables  func(context.Context, contract.EraseTablesInput) (contract.EraseTablesResult, error)
	objects func(context.Context, contract.EraseObjectsInput) (contract.EraseObjectsResult, error)
	// onPlan, when set, changes the plan before the n-th PlanAndRecordErasure
	// answers it (n from 1), as an operator's edit of the data map would.
	onPlan func(n int, plan *contract.ErasurePlan)
	// followUpsWait keeps each ProcessorFollowUps workflow running that
	// long, as the real one waits for its checks; followUpIDs are their ids.
	followUpsWait time.Duration
	followUpIDs   []string
	// after are the inputs of the AfterErasure workflows started.
	after []contract.AfterErasureInput
}

func newFakeSystems() *fakeSystems {
	return &fakeSystems{
		calls: map[string]int{}, children: map[string]int{}, recorded: map[string]contract.ProcessorErasureResult{},
		plan: contract.ErasurePlan{
			Found: true, Identity: []byte("sealed-with-user-id"), MapDigest: "d1",
			Locations:  []string{"bucket/projects/{user_id}/", "bucket/ids/{user_id}/"},
			Processors: []contract.PlannedProcessor{{Name: "stripe", FollowUp: 30 * 24 * time.Hour}, {Name: "paypal", FollowUp: 30 * 24 * time.Hour}},
			Backups:    []contract.BackupLocation{{Name: "nightly", Bucket: "backups", Prefix: "pg/", Rotation: 35 * 24 * time.Hour}},
		},
	}
}

func (f *fakeSystems) note(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[what]++
	f.order = append(f.order, what)
}

// register puts the fakes on env. An activity the caller faked before
// keeps the caller's fake: the first fake of an activity answers.
func (f *fakeSystems) register(env *testsuite.TestWorkflowEnvironment) {
	fake(env, eraser.PlanErasure, func(_ context.Context, in contract.ErasureInput) (contract.ErasurePlan, error) {
		f.note("plan")
		return f.plan, nil
	})
	fake(env, ledger.RecordErasure, func(_ context.Context, in contract.RecordErasureInput) error {
		if string(in.Identity) != "sealed-with-user-id" {
			return errors.New("the ledger was not given the planned identity")
		}
		f.note("ledger")
		return nil
	})
	fake(env, eraser.PlanAndRecordErasure, func(_ context.Context, in contract.ErasureInput) (contract.ErasurePlan, error) {
		f.note("plan")
		f.note("ledger")
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.onPlan != nil {
			f.onPlan(f.calls["plan"], &f.plan)
		}
		return f.plan, nil
	})
	// The company's own systems, as one activity erases them: the tables,
	// each location, then the verification; a failure fails it all (the
	// activity is retried whole by the engine).
	fake(env, eraser.EraseOwnSystems, func(ctx context.Context, in contract.EraseOwnSystemsInput) (contract.EraseOwnSystemsResult, error) {
		t, err := f.tables(ctx, contract.EraseTablesInput(in))
		if err != nil {
			return contract.EraseOwnSystemsResult{}, ownSystemFailed(0, nil, nil, err)
		}
		out := contract.EraseOwnSystemsResult{Tables: t}
		for i := range f.plan.Locations {
			o, err := f.objects(ctx, contract.EraseObjectsInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: in.Identity, Location: i})
			if err != nil {
				return contract.EraseOwnSystemsResult{}, ownSystemFailed(1+i, &t, out.Objects, err)
			}
			out.Objects = append(out.Objects, o)
		}
		f.note("verify")
		out.Leftovers = f.leftovers
		return out, nil
	})
	fake(env, eraser.EraseTables, func(ctx context.Context, in contract.EraseTablesInput) (contract.EraseTablesResult, error) {
		return f.tables(ctx, in)
	})
	fake(env, eraser.EraseObjects, func(ctx context.Context, in contract.EraseObjectsInput) (contract.EraseObjectsResult, error) {
		return f.objects(ctx, in)
	})
	if f.tables == nil {
		f.tables = f.eraseTables
	}
	if f.objects == nil {
		f.objects = f.eraseObjects
	}
	f.registerTheRest(env)
}

// ownSystemFailed details a failure for good of own system i as
// EraseOwnSystems does (contract.OwnSystemsFailure).
func ownSystemFailed(i int, tables *contract.EraseTablesResult, objects []contract.EraseObjectsResult, err error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() {
		return err
	}
	return temporal.NewApplicationErrorWithOptions(app.Message(), app.Type(), temporal.ApplicationErrorOptions{NonRetryable: true,
		Details: []any{contract.OwnSystemsFailure{Failed: i, Tables: tables, Objects: objects}}})
}

func (f *fakeSystems) eraseTables(_ context.Context, in contract.EraseTablesInput) (contract.EraseTablesResult, error) {
	f.note("tables")
	return contract.EraseTablesResult{
		Tables: []contract.TableOutcome{
			{Table: "demo.projects", Action: "deleted", Rows: 2},
			{Table: "demo.reviews", Action: "anonymized", Rows: 1},
			{Table: "demo.purchases", Action: "retained", Rows: 1, Reason: "tax law", Until: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		Held: []contract.HeldRows{{Table: "demo.purchases", Until: time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC), HoldRef: "hold:demo.purchases:sr_x"}},
	}, nil
}

func (f *fakeSystems) eraseObjects(_ context.Context, in contract.EraseObjectsInput) (contract.EraseObjectsResult, error) {
	f.note("objects")
	f.mu.Lock()
	fail := f.calls["objects"] <= f.objectsFailFirst
	f.mu.Unlock()
	if fail {
		return contract.EraseObjectsResult{}, errors.New("s3: 503 slow down")
	}
	return contract.EraseObjectsResult{Location: f.plan.Locations[in.Location], Objects: 6, Versions: 8}, nil
}

func (f *fakeSystems) registerTheRest(env *testsuite.TestWorkflowEnvironment) {
	fake(env, eraser.VerifyErasure, func(context.Context, contract.VerifyErasureInput) (contract.VerifyErasureResult, error) {
		f.note("verify")
		return contract.VerifyErasureResult{Leftovers: f.leftovers}, nil
	})
	fake(env, lc.AppendAudit, func(_ context.Context, in contract.AuditInput) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.audits = append(f.audits, in)
		return nil
	})
	fake(env, eraser.RecordProcessorResult, func(_ context.Context, in contract.ProcessorResultRecord) error {
		f.note("record " + in.Result.Processor)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.recorded[in.Result.Processor] = in.Result
		return nil
	})
	fake(env, eraser.EarlierProcessorResult, func(_ context.Context, in contract.EarlierProcessorInput) (contract.EarlierProcessorResult, error) {
		f.note("earlier " + in.Processor)
		f.mu.Lock()
		defer f.mu.Unlock()
		res, ok := f.recorded[in.Processor]
		return contract.EarlierProcessorResult{Found: ok && f.keepsResults, Result: res}, nil
	})
	// The erasure asks each processor itself: stripe erases at once (its
	// result recorded), paypal has no API and gets its own workflow.
	fake(env, atProcessor.AskProcessor, func(_ context.Context, in contract.ProcessorCallInput) (contract.ProcessorAnswer, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if res, ok := f.recorded[in.Processor]; ok && f.keepsResults {
			f.calls["earlier "+in.Processor]++
			return contract.ProcessorAnswer{Settled: true, Earlier: true, Recorded: true, Result: res}, nil
		}
		f.calls["ask "+in.Processor]++
		f.order = append(f.order, "ask "+in.Processor)
		if in.Processor == "paypal" {
			return contract.ProcessorAnswer{Call: contract.ProcessorCall{Processor: "paypal", Status: contract.ProcessorCallNeedsOperator, Steps: []string{"ask paypal"}}}, nil
		}
		res := contract.ProcessorErasureResult{Processor: in.Processor, Status: contract.ProcessorConfirmed, HTTPStatus: 200, Attempts: 1,
			Refs: []contract.ProcessorRef{{Kind: "customer", ID: "cus_1"}}, FollowUpAt: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)}
		f.recorded[in.Processor] = res
		return contract.ProcessorAnswer{Settled: true, Recorded: true, Result: res}, nil
	})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in contract.ProcessorFollowUpsInput) ([]contract.ProcessorFollowUpResult, error) {
		f.mu.Lock()
		for _, c := range in.Checks {
			f.calls["follow-up "+c.Processor]++
		}
		f.followUpIDs = append(f.followUpIDs, workflow.GetInfo(ctx).WorkflowExecution.ID)
		wait := f.followUpsWait
		f.mu.Unlock()
		if wait > 0 {
			return nil, workflow.Sleep(ctx, wait)
		}
		return nil, nil
	}, workflow.RegisterOptions{Name: contract.WorkflowProcessorFollowUps})
	// The processors' own workflow is tested in processorerasure_test.go;
	// here it answers as a confirmed erasure (stripe) or an operator's
	// (paypal), which it is given the erasure's first answer about.
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in contract.ProcessorErasureInput) (contract.ProcessorErasureResult, error) {
		f.mu.Lock()
		f.children[in.Processor+" deadline "+in.TaskDeadline.String()]++
		if in.First != nil {
			f.children[in.Processor+" given its first answer "+in.First.Call.Status]++
		}
		f.mu.Unlock()
		if in.Processor == "paypal" {
			return contract.ProcessorErasureResult{Processor: "paypal", Status: contract.ProcessorDoneByHand, Evidence: "ticket PP-1"}, nil
		}
		return contract.ProcessorErasureResult{Processor: in.Processor, Status: contract.ProcessorConfirmed, HTTPStatus: 200,
			Refs: []contract.ProcessorRef{{Kind: "customer", ID: "cus_1"}}, FollowUpAt: workflow.Now(ctx).Add(in.FollowUpAfter)}, nil
	}, workflow.RegisterOptions{Name: contract.WorkflowEraseAtProcessor})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in contract.BackupWatchInput) (time.Time, error) {
		f.note("backups watch")
		return workflow.Now(ctx), nil
	}, workflow.RegisterOptions{Name: contract.WorkflowAwaitBackupRotation})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in contract.ReleaseHoldInput) (int, error) {
		f.note("hold " + in.Held.Table)
		return 0, nil
	}, workflow.RegisterOptions{Name: contract.WorkflowReleaseHold})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in contract.AfterErasureInput) (contract.AfterErasureProgress, error) {
		f.note("after erasure")
		f.mu.Lock()
		f.after = append(f.after, in)
		f.mu.Unlock()
		return contract.AfterErasureProgress{}, nil
	}, workflow.RegisterOptions{Name: contract.WorkflowAfterErasure})
}

func newErasureEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return s.NewTestWorkflowEnvironment()
}

func TestEraseSubjectReachesEverySystemAndReturnsTheReceipt(t *testing.T) {
	env := newErasureEnv(t)
	f := newFakeSystems()
	f.objectsFailFirst = 2 // S3 slows down twice: only that location is tried again
	f.register(env)
	env.ExecuteWorkflow(workflows.EraseSubject, contract.ErasureInput{RequestID: "req_1", SubjectRef: "sr_x"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p contract.ErasureProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if f.calls["tables"] != 1 || f.calls["objects"] != 4 || f.calls["plan"] != 1 || f.calls["verify"] != 1 {
		t.Fatalf("calls %v: want the tables erased once, 2 locations (one retried twice), one plan, one verification", f.calls)
	}
	// The ledger comes before anything is erased; the verification after everything.
	if f.order[0] != "plan" || f.order[1] != "ledger" {
		t.Fatalf("order %v: the ledger must be written before any erasure", f.order)
	}
	if i := indexOf(f.order, "verify"); i < indexOf(f.order, "tables") || i < lastIndexOf(f.order, "objects") {
		t.Fatalf("order %v: verification must come last", f.order)
	}
	// Stripe answered done at once: no workflow of its own, one follow-up
	// workflow for it; PayPal's workflow goes on from the first answer.
	if f.children["stripe deadline 168h0m0s"] != 0 || f.children["paypal deadline 168h0m0s"] != 1 ||
		f.children["paypal given its first answer needs_operator"] != 1 {
		t.Fatalf("processor children %v", f.children)
	}
	if f.calls["ask stripe"] != 1 || f.calls["ask paypal"] != 1 || f.calls["follow-up stripe"] != 1 || f.calls["follow-up paypal"] != 0 || f.calls["record paypal"] != 1 || f.calls["record stripe"] != 0 {
		t.Fatalf("calls %v: want each processor asked once, stripe's follow-up started, paypal's result recorded by the workflow", f.calls)
	}
	var answered []string
	for _, v := range p.Answered {
		answered = append(answered, v.Processor+" "+v.Status)
	}
	if strings.Join(answered, ",") != "stripe confirmed" {
		t.Fatalf("answered %v: want stripe's view kept by the erasure", answered)
	}
	if p.Status != domain.StatusCompleted || len(p.Systems) != 5 {
		t.Fatalf("progress %+v", p)
	}
	for _, s := range p.Systems {
		if s.Status != contract.StepDone {
			t.Fatalf("system %+v not done", s)
		}
	}
	receipt := strings.Join(p.Summary(), "\n")
	for _, want := range []string{
		"Deleted 2 rows from demo.projects", "Anonymized 1 row in demo.reviews", "Kept 1 row in demo.purchases until 1 January 2036: tax law",
		"Deleted 6 files from bucket/projects/{user_id}/ (8 versions and delete markers)", "stripe: erasure confirmed (HTTP 200, customer cus_1); checked again after",
		"paypal: erased by our privacy team (ticket PP-1)", "Backups in nightly rotate out by",
	} {
		if !strings.Contains(receipt, want) {
			t.Errorf("receipt lacks %q:\n%s", want, receipt)
		}
	}
	if len(f.audits) != 1 || f.audits[0].Action != "erasure.receipt" || f.audits[0].RequestID != "req_1" || f.audits[0].Detail["line_01"] == "" {
		t.Fatalf("audit %+v", f.audits)
	}
	if f.calls["backups watch"] != 1 || f.calls["hold demo.purchases"] != 1 {
		t.Fatalf("follow-ups %v: want the backups watch and the hold's end started", f.calls)
	}
}

func TestAnExpeditedErasureGivesProcessorTasksAShortDeadline(t *testing.T) {
	env := newErasureEnv(t)
	f := newFakeSystems()
	f.register(env)
	env.ExecuteWorkflow(workflows.EraseSubject, contract.ErasureInput{RequestID: "req_1", SubjectRef: "sr_x", Expedited: true})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if f.children["paypal deadline 24h0m0s"] != 1 {
		t.Fatalf("processor children %v: want a 24h task deadline", f.children)
	}
}

func TestTheVerificationPassFailsAnErasureThatLeftSomething(t *testing.T) {
	env := newErasureEnv(t)
	f := newFakeSystems()
	f.leftovers = []string{"2 rows in demo.projects (not deleted)"}
	f.register(env)
	env.ExecuteWorkflow(workflows.EraseSubject, contract.ErasureInput{RequestID: "req_1", SubjectRef: "sr_x"})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "demo.projects") {
		t.Fatalf("want the erasure to fail naming what is left, got %v", err)
	}
	if len(f.audits) != 0 || f.calls["backups watch"] != 0 {
		t.Fatal("a failed erasure must leave no receipt and start no follow-ups")
	}
}

func TestAFailingSystemDoesNotStopTheOthersAndFailsTheErasure(t *testing.T) {
	env := newErasureEnv(t)
	f := newFakeSystems()
	fake(env, eraser.EraseTables, func(context.Context, contract.EraseTablesInput) (contract.EraseTablesResult, error) {
		return contract.EraseTablesResult{}, temporal.NewNonRetryableApplicationError("erase demo.x: undefined table", "DatabaseError", nil)
	})
	f.register(env)
	env.ExecuteWorkflow(workflows.EraseSubject, contract.ErasureInput{RequestID: "req_1", SubjectRef: "sr_x"})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "postgres") {
		t.Fatalf("want the erasure to fail naming the database, got %v", err)
	}
	if f.calls["objects"] != 2 || f.calls["verify"] != 0 {
		t.Fatalf("calls %v: the other systems are still erased; nothing is verified", f.calls)
	}
}

func TestAPersonTheApplicationDoesNotKnowHasNothingToErase(t *testing.T) {
	env := newErasureEnv(t)
	f := newFakeSystems()
	f.plan = contract.ErasurePlan{}
	f.register(env)
	env.ExecuteWorkflow(workflows.EraseSubject, contract.ErasureInput{RequestID: "req_1", SubjectRef: "sr_x"})
	var p contract.ErasureProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if f.calls["ledger"] != 0 || f.calls["tables"] != 0 || !strings.Contains(strings.Join(p.Summary(), ""), "nothing to erase") {
		t.Fatalf("calls %v, summary %v", f.calls, p.Summary())
	}
}

func TestAHoldReleasesItsRowsWhenItEndsAndDestroysItsKey(t *testing.T) {
	env := newErasureEnv(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	env.SetWorkflowRunTimeout(20 * 365 * 24 * time.Hour)              // the test suite's default is shorter than a tax hold
	first, second := start.AddDate(10, 0, 0), start.AddDate(10, 3, 0) // tax records: ten years
	var erasedAt []time.Time
	shredded := ""
	fake(env, eraser.EraseHeldRows, func(_ context.Context, in contract.EraseHeldInput) (contract.EraseHeldResult, error) {
		now := env.Now()
		erasedAt = append(erasedAt, now)
		if now.Before(second) {
			return contract.EraseHeldResult{Deleted: 1, Next: second}, nil
		}
		return contract.EraseHeldResult{Deleted: 2}, nil
	})
	fake(env, lc.ShredSubject, func(_ context.Context, ref string) error { shredded = ref; return nil })
	fake(env, lc.AppendAudit, func(context.Context, contract.AuditInput) error { return nil })
	env.ExecuteWorkflow(workflows.ReleaseHold, contract.ReleaseHoldInput{RequestID: "req_1", SubjectRef: "sr_x",
		Held: contract.HeldRows{Table: "demo.purchases", Until: first, HoldRef: "hold:demo.purchases:sr_x"}})
	var n int
	if err := env.GetWorkflowResult(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 || len(erasedAt) != 2 || erasedAt[0].Before(first) || erasedAt[1].Before(second) {
		t.Fatalf("deleted %d at %v: want rows kept until each hold ends (%v, %v)", n, erasedAt, first, second)
	}
	if shredded != "hold:demo.purchases:sr_x" {
		t.Fatalf("the hold's key was not destroyed (%q)", shredded)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func lastIndexOf(s []string, v string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == v {
			return i
		}
	}
	return -1
}
