package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// eraser erases a person from the systems of the data map (a nil pointer:
// see activities.go).
var eraser *activities.Erasure

// erasureConcurrency is how many systems an erasure works on at once.
const erasureConcurrency = 4

// EraseSubject erases one person from every system of the data map:
//
//  1. the plan resolves the person once and lists the systems;
//  2. the erasure ledger records them before anything is erased (P6);
//  3. the database, each S3 location and each processor are erased side by
//     side, at most erasureConcurrency at a time; each is its own activity
//     or child workflow, so a completed system is never redone when another
//     fails and is retried;
//  4. a verification pass reads every system again: anything left outside a
//     legal hold fails the erasure;
//  5. the receipt lists what each system did, goes into the audit trail and
//     back to the request, which mails it;
//  6. what outlives the request starts on its own: the wait for backups to
//     rotate, and the erasure of held rows when their hold ends.
func EraseSubject(ctx workflow.Context, in contract.ErasureInput) (contract.ErasureProgress, error) {
	progress := contract.ErasureProgress{RequestID: in.RequestID, Status: domain.StatusInProgress}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.ErasureProgress, error) { return progress, nil }); err != nil {
		return progress, err
	}
	err := erase(withActivityDefaults(ctx), in, &progress, 0)
	return progress, err
}

// erase is the erasure of one person (see EraseSubject), its progress kept
// in progress. attempt is 0 in an EraseSubject workflow; from 1, it is
// the number of the attempt in a request that runs the erasure itself
// (leanRequest), the leaner shape: the company's own systems erased and
// verified by one activity, beside the processors.
func erase(ctx workflow.Context, in contract.ErasureInput, progress *contract.ErasureProgress, attempt int) error {
	inRequest := attempt > 0
	fail := func(err error) error {
		progress.Status = domain.StatusFailed
		return err
	}
	var plan contract.ErasurePlan
	if inRequest {
		if err := workflow.ExecuteActivity(ctx, eraser.PlanAndRecordErasure, in).Get(ctx, &plan); err != nil {
			return fail(fmt.Errorf("plan the erasure and record it in the ledger: %w", err))
		}
	} else if err := workflow.ExecuteActivity(ctx, eraser.PlanErasure, in).Get(ctx, &plan); err != nil {
		return fail(fmt.Errorf("plan the erasure: %w", err))
	}
	if !plan.Found {
		progress.Status = domain.StatusCompleted
		progress.Receipt = &contract.Receipt{RequestID: in.RequestID, CompletedAt: workflow.Now(ctx), NothingHeld: true}
		return nil
	}
	person := plan.Identity
	if !inRequest {
		if err := workflow.ExecuteActivity(ctx, ledger.RecordErasure, contract.RecordErasureInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: person}).Get(ctx, nil); err != nil {
			return fail(fmt.Errorf("record the erasure in the ledger: %w", err))
		}
	}

	e := &erasure{in: in, plan: plan, person: person, progress: progress, receipt: &contract.Receipt{RequestID: in.RequestID, MapDigest: plan.MapDigest}, attempt: attempt}
	e.lean = inRequest || workflow.GetVersion(ctx, leanErasure, workflow.DefaultVersion, 1) == 1
	e.addSystem(contract.SystemPostgres, "application database")
	for _, loc := range plan.Locations {
		e.addSystem(contract.SystemS3, loc)
	}
	for _, p := range plan.Processors {
		e.addSystem(contract.SystemProcessor, p.Name)
	}

	// Every system side by side, a few at a time; in a request, the
	// company's own systems (the database and S3) are one step.
	running := 0
	wg := workflow.NewWaitGroup(ctx)
	step := func(do func(workflow.Context)) {
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			_ = workflow.Await(ctx, func() bool { return running < erasureConcurrency })
			running++
			defer func() { running-- }()
			do(ctx)
		})
	}
	var ownLeftovers []string
	for i := range progress.Systems {
		switch {
		case inRequest && i == 0:
			step(func(ctx workflow.Context) { ownLeftovers = e.eraseOwnSystems(ctx) })
		case inRequest && progress.Systems[i].System != contract.SystemProcessor:
			// erased with the database
		default:
			step(func(ctx workflow.Context) { e.eraseSystem(ctx, i) })
		}
	}
	wg.Wait(ctx)
	// The processors that erased the person get their follow-ups whatever
	// else failed; a request's erasure that went through starts them with
	// the rest of what outlives it, below (one workflow task less).
	followUpsWithTheRest := inRequest && len(e.failedSystems()) == 0 && len(ownLeftovers) == 0
	if !followUpsWithTheRest {
		if err := e.followUpsLater(ctx)(); err != nil {
			return fail(fmt.Errorf("start the follow-ups at processors: %w", err))
		}
	}
	if failed := e.failedSystems(); len(failed) > 0 {
		return fail(temporal.NewNonRetryableApplicationError("erasure failed in "+strings.Join(failed, ", "), "ErasureIncomplete", nil))
	}

	// Read everything again: what remains outside a hold fails the request.
	leftovers := ownLeftovers
	if !inRequest {
		var check contract.VerifyErasureResult
		// The search for the person's identifiers reads every table of the
		// application's schemas: it heartbeats after each table.
		verifyCtx := workflow.WithStartToCloseTimeout(workflow.WithHeartbeatTimeout(ctx, 5*time.Minute), time.Hour)
		if err := workflow.ExecuteActivity(verifyCtx, eraser.VerifyErasure, contract.VerifyErasureInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: person}).Get(ctx, &check); err != nil {
			return fail(fmt.Errorf("verify the erasure: %w", err))
		}
		leftovers = check.Leftovers
	}
	if len(leftovers) > 0 {
		return fail(temporal.NewNonRetryableApplicationError("the verification pass found data left: "+strings.Join(leftovers, "; "), "ErasureIncomplete", nil))
	}

	// What outlives the request starts, and the receipt is audited, at once.
	erasedAt := workflow.Now(ctx)
	var later []workflow.ChildWorkflowFuture
	followUpsStarted := func() error { return nil }
	if followUpsWithTheRest && oneAfterErasure(ctx) {
		later = e.afterErasureLater(ctx, erasedAt)
	} else {
		later = append(e.watchBackups(ctx, erasedAt), e.releaseHoldsLater(ctx)...)
		if followUpsWithTheRest {
			followUpsStarted = e.followUpsLater(ctx)
		}
	}
	e.receipt.CompletedAt = erasedAt
	progress.Receipt = e.receipt
	audited := recordLater(ctx, contract.AuditInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Actor: "system", Action: "erasure.receipt",
		Detail: e.receipt.AuditDetail(), Key: onceKey(in.RequestID, "erasure.receipt")})
	for _, child := range later {
		started(ctx, child)
	}
	if err := followUpsStarted(); err != nil {
		return fail(fmt.Errorf("start the follow-ups at processors: %w", err))
	}
	if err := audited(); err != nil {
		return fmt.Errorf("audit the receipt: %w", err)
	}
	progress.Status = domain.StatusCompleted
	return nil
}

// leanErasure is the version check of issue 16's leaner erasure: each
// processor is asked by an activity of the erasure (AskProcessor), and
// only one that does not settle it at once gets its EraseAtProcessor
// workflow (polling, operator tasks, callbacks), given the first answer;
// the follow-ups of those settled at once are one ProcessorFollowUps
// workflow per request. Erasures that passed this point before keep a
// workflow per processor.
const leanErasure = "lean-erasure"

// erasure is one running EraseSubject.
type erasure struct {
	in        contract.ErasureInput
	plan      contract.ErasurePlan
	person    []byte
	progress  *contract.ErasureProgress
	receipt   *contract.Receipt
	held      []contract.HeldRows
	lean      bool                              // leanErasure
	followUps []contract.ProcessorFollowUpInput // of processors settled at once (lean)
	attempt   int                               // see erase
}

func (e *erasure) addSystem(system, name string) {
	e.progress.Systems = append(e.progress.Systems, contract.SystemProgress{System: system, Name: name, Status: contract.StepPending})
}

func (e *erasure) failedSystems() []string {
	var failed []string
	for _, s := range e.progress.Systems {
		if s.Status == contract.StepFailed {
			failed = append(failed, s.System+" "+s.Name)
		}
	}
	return failed
}

// eraseSystem erases the person from the i-th system and records the outcome.
func (e *erasure) eraseSystem(ctx workflow.Context, i int) {
	s := &e.progress.Systems[i]
	s.Status = contract.StepRunning
	var err error
	switch s.System {
	case contract.SystemPostgres:
		err = e.eraseTables(ctx)
	case contract.SystemS3:
		err = e.eraseObjects(ctx, slices.Index(e.plan.Locations, s.Name))
	case contract.SystemProcessor:
		err = e.eraseAtProcessor(ctx, e.plan.Processors[slices.IndexFunc(e.plan.Processors, func(p contract.PlannedProcessor) bool { return p.Name == s.Name })])
	}
	if err != nil {
		s.Status, s.Error = contract.StepFailed, errorMessage(err)
		workflow.GetLogger(ctx).Error("erasure step failed", "system", s.System, "name", s.Name)
		return
	}
	s.Status = contract.StepDone
}

// eraseOwnSystems (leanRequest) erases the person from the
// application database and every S3 location, and reads them again, by
// one activity; it returns what the verification found left.
func (e *erasure) eraseOwnSystems(ctx workflow.Context) []string {
	own := 1 + len(e.plan.Locations) // the database, then the locations
	for i := range own {
		e.progress.Systems[i].Status = contract.StepRunning
	}
	long := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour, HeartbeatTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
	var res contract.EraseOwnSystemsResult
	err := workflow.ExecuteActivity(long, eraser.EraseOwnSystems, contract.EraseOwnSystemsInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.person}).Get(ctx, &res)
	if err != nil {
		e.ownSystemsFailed(ctx, err, own)
		return nil
	}
	e.tablesErased(res.Tables)
	for _, o := range res.Objects {
		e.objectsErased(o)
	}
	for i := range own {
		e.progress.Systems[i].Status = contract.StepDone
	}
	return res.Leftovers
}

// ownSystemsFailed marks, of the own systems, the one that failed (the
// activity's OwnSystemsFailure), those before it done and those after it
// not reached; without the detail (the verification or the person's
// identity failed), all of them failed.
func (e *erasure) ownSystemsFailed(ctx workflow.Context, err error, own int) {
	failed := contract.OwnSystemsFailure{Failed: -1}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() {
		if derr := app.Details(&failed); derr != nil {
			failed.Failed = -1
		}
	}
	if failed.Failed < 0 || failed.Failed >= own {
		for i := range own {
			s := &e.progress.Systems[i]
			s.Status, s.Error = contract.StepFailed, errorMessage(err)
		}
		workflow.GetLogger(ctx).Error("erasure step failed", "system", "application database and S3")
		return
	}
	workflow.GetLogger(ctx).Error("erasure step failed", "system", e.progress.Systems[failed.Failed].System)
	for i := range own {
		s := &e.progress.Systems[i]
		switch {
		case i < failed.Failed:
			s.Status = contract.StepDone
		case i == failed.Failed:
			s.Status, s.Error = contract.StepFailed, errorMessage(err)
		default:
			s.Status = contract.StepPending // not reached
		}
	}
}

func (e *erasure) eraseTables(ctx workflow.Context) error {
	var res contract.EraseTablesResult
	if err := workflow.ExecuteActivity(ctx, eraser.EraseTables, contract.EraseTablesInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.person}).Get(ctx, &res); err != nil {
		return err
	}
	e.tablesErased(res)
	return nil
}

// tablesErased puts what the database's erasure did in the receipt.
func (e *erasure) tablesErased(res contract.EraseTablesResult) {
	for _, t := range res.Tables {
		e.receipt.Add(contract.ReceiptEntry{System: contract.SystemPostgres, Name: t.Table, Action: t.Action, Count: t.Rows, Basis: t.Reason, Until: t.Until})
	}
	e.held = res.Held
}

func (e *erasure) eraseObjects(ctx workflow.Context, location int) error {
	var res contract.EraseObjectsResult
	long := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
	if err := workflow.ExecuteActivity(long, eraser.EraseObjects, contract.EraseObjectsInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.person, Location: location}).Get(ctx, &res); err != nil {
		return err
	}
	e.objectsErased(res)
	return nil
}

// objectsErased puts what went from one S3 location in the receipt.
func (e *erasure) objectsErased(res contract.EraseObjectsResult) {
	entry := contract.ReceiptEntry{System: contract.SystemS3, Name: res.Location, Action: "deleted", Count: res.Objects}
	if res.Versions > 0 {
		entry.Confirmation = fmt.Sprintf("%d versions and delete markers", res.Versions)
	}
	e.receipt.Add(entry)
}

func (e *erasure) eraseAtProcessor(ctx workflow.Context, p contract.PlannedProcessor) error {
	if e.lean {
		return e.askProcessor(ctx, p)
	}
	deadline := contract.DefaultProcessorTaskDeadline
	if e.in.Expedited {
		deadline = contract.ExpeditedTaskDeadline
	}
	id := contract.ProcessorErasureWorkflowID(e.in.RequestID, p.Name)
	// A request retried after its erasure failed erases again: a processor
	// whose erasure ended in an earlier attempt is not asked again (a failed
	// or cancelled one is).
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY})
	in := contract.ProcessorErasureInput{
		RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.person, Processor: p.Name,
		Jurisdiction: e.in.Jurisdiction, TaskDeadline: deadline, FollowUpAfter: p.FollowUp,
	}
	var res contract.ProcessorErasureResult
	err := workflow.ExecuteChildWorkflow(child, contract.WorkflowEraseAtProcessor, in).Get(ctx, &res)
	switch {
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		var rec contract.EarlierProcessorResult
		if err := workflow.ExecuteActivity(ctx, eraser.EarlierProcessorResult, contract.EarlierProcessorInput{RequestID: e.in.RequestID, Processor: p.Name}).Get(ctx, &rec); err != nil {
			return err
		}
		res = rec.Result
		if !rec.Found {
			// It ended before results were recorded: how is not known here
			// (an operator may have skipped it), and a receipt must not
			// guess. The processor is asked again, under this attempt's id.
			again := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id + "-" + workflow.GetInfo(ctx).WorkflowExecution.RunID})
			if err := workflow.ExecuteChildWorkflow(again, contract.WorkflowEraseAtProcessor, in).Get(ctx, &res); err != nil {
				return err
			}
		}
	case err != nil:
		return err
	case workflow.GetVersion(ctx, "record-processor-results", workflow.DefaultVersion, 1) == 1:
		// Version 1 keeps the result for a retry; older runs did not.
		if err := workflow.ExecuteActivity(ctx, eraser.RecordProcessorResult, contract.ProcessorResultRecord{RequestID: e.in.RequestID, Result: res}).Get(ctx, nil); err != nil {
			return err
		}
	}
	e.receipt.Add(processorReceiptEntry(res))
	return nil
}

// processorInput is what the EraseAtProcessor workflow of processor p
// starts with.
func (e *erasure) processorInput(p contract.PlannedProcessor) contract.ProcessorErasureInput {
	deadline := contract.DefaultProcessorTaskDeadline
	if e.in.Expedited {
		deadline = contract.ExpeditedTaskDeadline
	}
	return contract.ProcessorErasureInput{
		RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.person, Processor: p.Name,
		Jurisdiction: e.in.Jurisdiction, TaskDeadline: deadline, FollowUpAfter: p.FollowUp,
	}
}

// askProcessor (leanErasure) asks the processor by an activity, which also
// records a result that settles the erasure there. A processor that does
// not settle it at once (pending, needs an operator, failing) gets its
// EraseAtProcessor workflow, which goes on from that first answer.
func (e *erasure) askProcessor(ctx workflow.Context, p contract.PlannedProcessor) error {
	in := e.processorInput(p)
	var ans contract.ProcessorAnswer
	err := workflow.ExecuteActivity(withProcessorCalls(ctx, p.Name), atProcessor.AskProcessor, contract.ProcessorCallInput{
		RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: in.Identity, Processor: p.Name,
		FollowUpAfter: in.WithDefaults().FollowUpAfter,
	}).Get(ctx, &ans)
	if err != nil && temporal.IsCanceledError(err) {
		return err
	}
	var res contract.ProcessorErasureResult
	if err == nil && ans.Settled {
		res = ans.Result
		if !ans.Recorded {
			if err := workflow.ExecuteActivity(ctx, eraser.RecordProcessorResult, contract.ProcessorResultRecord{RequestID: in.RequestID, Result: res}).Get(ctx, nil); err != nil {
				return err
			}
		}
		// An earlier attempt started the follow-up of what it settled.
		if !ans.Earlier && res.Status == contract.ProcessorConfirmed {
			e.followUps = append(e.followUps, contract.ProcessorFollowUpInput{
				RequestID: in.RequestID, SubjectRef: in.SubjectRef, Processor: p.Name, Jurisdiction: in.Jurisdiction,
				After: in.WithDefaults().FollowUpAfter, DueAt: res.FollowUpAt,
				Erasure: contract.ProcessorCall{Processor: p.Name, Status: contract.ProcessorCallDone, HTTPStatus: res.HTTPStatus, JobID: res.JobID, Refs: res.Refs},
			})
		}
		e.progress.Answered = append(e.progress.Answered, contract.ProcessorErasureView{RequestID: in.RequestID, Processor: p.Name,
			Status: res.Status, Attempts: res.Attempts, Result: &res})
		e.receipt.Add(processorReceiptEntry(res))
		return nil
	}
	first := &contract.ProcessorFirstAnswer{Call: ans.Call, Attempts: eraseAttempts(ans.Call, err)}
	if err != nil {
		first.Call, first.Failure = contract.ProcessorCall{}, processorFailure(err)
	}
	in.First = first
	// A processor whose erasure ended in an earlier attempt recorded its
	// result, which AskProcessor returned: one whose workflow ended
	// without a record (how is not known here) is asked again, under this
	// attempt's id.
	id := contract.ProcessorErasureWorkflowID(e.in.RequestID, p.Name)
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY})
	err = workflow.ExecuteChildWorkflow(child, contract.WorkflowEraseAtProcessor, in).Get(ctx, &res)
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		again := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id + "-" + workflow.GetInfo(ctx).WorkflowExecution.RunID})
		err = workflow.ExecuteChildWorkflow(again, contract.WorkflowEraseAtProcessor, in).Get(ctx, &res)
	}
	if err != nil {
		return err
	}
	if err := workflow.ExecuteActivity(ctx, eraser.RecordProcessorResult, contract.ProcessorResultRecord{RequestID: e.in.RequestID, Result: res}).Get(ctx, nil); err != nil {
		return err
	}
	e.receipt.Add(processorReceiptEntry(res))
	return nil
}

// followUpsLater (leanErasure) starts one workflow that checks, after
// each one's retention window, every processor that settled the erasure
// at once: it outlives the request. It returns the wait for the start. A
// retried erasure whose earlier attempt started one starts its own for
// what it settled: under its run's id, and in a request (whose run is
// the same for every attempt) the attempt's number.
func (e *erasure) followUpsLater(ctx workflow.Context) func() error {
	if len(e.followUps) == 0 {
		return func() error { return nil }
	}
	in := contract.ProcessorFollowUpsInput{RequestID: e.in.RequestID, Checks: e.followUps}
	id := contract.ProcessorFollowUpsWorkflowID(e.in.RequestID)
	first := startAbandoned(ctx, id, contract.WorkflowProcessorFollowUps, in).GetChildWorkflowExecution()
	return func() error {
		err := first.Get(ctx, nil)
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			id += "-" + workflow.GetInfo(ctx).WorkflowExecution.RunID
			if e.attempt > 0 {
				id += fmt.Sprintf("-%d", e.attempt)
			}
			err = startAbandoned(ctx, id, contract.WorkflowProcessorFollowUps, in).GetChildWorkflowExecution().Get(ctx, nil)
		}
		return err
	}
}

// watchBackups starts the wait for every backup older than the erasure to
// rotate out (P6). It outlives the request.
func (e *erasure) watchBackups(ctx workflow.Context, erasedAt time.Time) []workflow.ChildWorkflowFuture {
	in := e.backupsOnReceipt(erasedAt)
	if in == nil {
		return nil
	}
	return []workflow.ChildWorkflowFuture{startAbandoned(ctx, contract.BackupWatchWorkflowID(e.in.RequestID), contract.WorkflowAwaitBackupRotation, *in)}
}

// backupsOnReceipt puts the backups that rotate out on the receipt, and
// returns the watch of their rotation; nil: the map names no backups.
func (e *erasure) backupsOnReceipt(erasedAt time.Time) *contract.BackupWatchInput {
	if len(e.plan.Backups) == 0 {
		return nil
	}
	var longest time.Duration
	for _, b := range e.plan.Backups {
		longest = max(longest, b.Rotation)
		e.receipt.Add(b.ReceiptEntry(erasedAt))
	}
	e.receipt.BackupsGoneBy = erasedAt.Add(longest)
	return &contract.BackupWatchInput{
		RequestID: e.in.RequestID, ErasedAt: erasedAt, Locations: e.plan.Backups, Promise: e.plan.BackupPromise, FirstCheckLater: true,
	}
}

// afterErasureLater (leanRequestAfterErasure) starts one AfterErasure for
// everything that outlives the request: the follow-ups at the processors
// that settled the erasure at once, the backups watch and each hold's end.
// None: nothing outlives it, and nothing starts.
func (e *erasure) afterErasureLater(ctx workflow.Context, erasedAt time.Time) []workflow.ChildWorkflowFuture {
	in := contract.AfterErasureInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef,
		FollowUps: e.followUps, Backups: e.backupsOnReceipt(erasedAt), Holds: e.held}
	if len(in.FollowUps) == 0 && in.Backups == nil && len(in.Holds) == 0 {
		return nil
	}
	return []workflow.ChildWorkflowFuture{startAbandoned(ctx, contract.AfterErasureWorkflowID(e.in.RequestID), contract.WorkflowAfterErasure, in)}
}

// releaseHoldsLater starts, for each table holding rows under a legal hold,
// the erasure of those rows when the hold ends. It outlives the request.
func (e *erasure) releaseHoldsLater(ctx workflow.Context) []workflow.ChildWorkflowFuture {
	var started []workflow.ChildWorkflowFuture
	for _, h := range e.held {
		started = append(started, startAbandoned(ctx, e.in.RequestID+"-hold-"+h.Table, contract.WorkflowReleaseHold,
			contract.ReleaseHoldInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Held: h}))
	}
	return started
}

// startAbandoned starts a child that lives on after this workflow.
func startAbandoned(ctx workflow.Context, id, workflowType string, in any) workflow.ChildWorkflowFuture {
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON})
	return workflow.ExecuteChildWorkflow(child, workflowType, in)
}

// started waits for a child of startAbandoned to start; one that already
// runs (a retried erasure) is left alone.
func started(ctx workflow.Context, child workflow.ChildWorkflowFuture) {
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		var already *temporal.ChildWorkflowExecutionAlreadyStartedError
		if !errors.As(err, &already) {
			workflow.GetLogger(ctx).Error("could not start a workflow that outlives the erasure", "error", err)
		}
	}
}

// errorMessage is an error's own message, without the wrapping Temporal adds.
func errorMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Error()
	}
	return err.Error()
}

// ReleaseHold keeps the promise a legal hold makes in both directions: the
// rows stay for as long as the law says (the hold's period), and go when it
// ends. Rows with later ends (a purchase made later) wait for theirs. When
// none remain, the key that sealed the user id is destroyed.
func ReleaseHold(ctx workflow.Context, in contract.ReleaseHoldInput) (int, error) {
	ctx = withActivityDefaults(ctx)
	deleted := 0
	for until := in.Held.Until; !until.IsZero(); {
		if wait := until.Sub(workflow.Now(ctx)); wait > 0 {
			if err := workflow.Sleep(ctx, wait); err != nil {
				return deleted, err
			}
		}
		res, err := eraseHeldRows(ctx, in.RequestID, in.Held)
		if err != nil {
			return deleted, err
		}
		deleted += res.Deleted
		until = res.Next
	}
	return deleted, endHold(ctx, in.RequestID, in.SubjectRef, in.Held, deleted)
}

// eraseHeldRows erases the held rows whose hold has ended, and says when
// the next one ends (zero: none remains).
func eraseHeldRows(ctx workflow.Context, requestID string, held contract.HeldRows) (contract.EraseHeldResult, error) {
	var res contract.EraseHeldResult
	err := workflow.ExecuteActivity(ctx, eraser.EraseHeldRows, contract.EraseHeldInput{RequestID: requestID, Held: held}).Get(ctx, &res)
	return res, err
}

// endHold, once no held row remains, destroys the key that sealed the
// user id and audits the hold's end.
func endHold(ctx workflow.Context, requestID, subjectRef string, held contract.HeldRows, deleted int) error {
	if err := workflow.ExecuteActivity(ctx, lifecycle.ShredSubject, held.HoldRef).Get(ctx, nil); err != nil {
		return err
	}
	return record(ctx, contract.AuditInput{RequestID: requestID, SubjectRef: subjectRef, Actor: "system", Action: "erasure.hold_ended",
		Detail: map[string]string{"request_id": requestID, "table": held.Table, "rows": fmt.Sprint(deleted)},
		Key:    onceKey(requestID, "hold_ended", held.Table)})
}
