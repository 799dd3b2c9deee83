package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ErasureInput starts the erasure of one person's data (P4–P7). Identity is
// sealed with the person's data key; the activities open it to find them.
type ErasureInput struct {
	RequestID    string
	SubjectRef   string
	Identity     []byte
	Jurisdiction string
	// Expedited marks the erasure of a child's data (P15): operator tasks
	// at processors get ExpeditedTaskDeadline instead of the usual week.
	Expedited bool
}

// Step statuses of one system in an erasure.
const (
	StepPending = "pending"
	StepRunning = "running"
	StepDone    = "done"
	StepFailed  = "failed"
)

// Systems of the data map an erasure reaches.
const (
	SystemPostgres  = "postgres"
	SystemS3        = "s3"
	SystemProcessor = "processor"
	SystemBackups   = "backups"
)

// ExpeditedTaskDeadline is how long an operator task at a processor may
// stay open in an expedited erasure (a child's data), against the usual
// DefaultProcessorTaskDeadline.
const ExpeditedTaskDeadline = 24 * time.Hour

// erasureConcurrency is how many systems an erasure works on at once.
const erasureConcurrency = 4

// SystemProgress is how far the erasure got in one system of the data map:
// the database, one S3 location, one processor. It names tables, buckets and
// processors, never the person.
type SystemProgress struct {
	System string `json:"system"` // postgres, s3, processor, backups
	Name   string `json:"name,omitempty"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// ErasureProgress is the erasure's state, readable at any moment with the
// QueryProgress query (API: GET /v1/requests/{id}; Temporal UI: Queries).
type ErasureProgress struct {
	RequestID string           `json:"request_id"`
	Status    string           `json:"status"`
	Systems   []SystemProgress `json:"systems"`
	Receipt   *Receipt         `json:"receipt,omitempty"`
}

// Summary is the receipt as lines for the person's completion mail.
func (p ErasureProgress) Summary() []string {
	if p.Receipt == nil {
		return nil
	}
	return p.Receipt.Lines()
}

// QueryProgress is the name of the query every Lethe workflow answers.
const QueryProgress = "progress"

// ErasurePlan is what the data map says to erase for one person, with the
// person resolved once, before anything is erased (an email-only request
// could not be matched to its user id after the account row is anonymized).
type ErasurePlan struct {
	Found bool // the application knows the person
	// Identity is the request's identity with the user id resolved, sealed
	// with the person's key: every step uses it.
	Identity   []byte
	Locations  []string // S3 locations as bucket/prefix templates
	Processors []PlannedProcessor
	Backups    []BackupLocation
	// BackupPromise is how soon the privacy policy says backups forget a
	// person; 0 when the data map declares no backups.
	BackupPromise time.Duration
	MapDigest     string // the data map's version, recorded in the ledger
}

// PlannedProcessor is one processor the erasure asks to delete the person.
type PlannedProcessor struct {
	Name     string
	FollowUp time.Duration // its own retention window: checked again after it
}

// EraseTablesInput asks for one person's rows to go from every table of the data map.
type EraseTablesInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}

// TableOutcome is what an erasure did in one table.
type TableOutcome struct {
	Table  string    `json:"table"`
	Action string    `json:"action"` // deleted, anonymized, retained
	Rows   int       `json:"rows"`
	Reason string    `json:"reason,omitempty"` // legal basis of a hold
	Until  time.Time `json:"until,omitzero"`   // when a hold ends
}

// HeldRows are a person's rows kept under a legal hold, and what the
// erasure needs to erase them when it ends: the user id sealed with a key
// of the hold's own (HoldRef), destroyed when the last row goes.
type HeldRows struct {
	Table   string
	Until   time.Time
	HoldRef string
	Sealed  []byte
}

// EraseTablesResult says what happened in each table, and what is held.
type EraseTablesResult struct {
	Tables []TableOutcome
	Held   []HeldRows
}

// EraseObjectsInput asks for one person's objects to go from one S3
// location of the data map (by its index in the map), every version included.
type EraseObjectsInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
	Location   int
}

// EraseObjectsResult counts what went from one location.
type EraseObjectsResult struct {
	Location string // bucket/prefix template
	Objects  int    // keys
	Versions int    // object versions and delete markers (versioned buckets)
}

// VerifyErasureInput asks every system again whether anything of the person remains.
type VerifyErasureInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}

// VerifyErasureResult lists what remains outside legal holds; empty when
// the erasure is complete. Entries name tables and locations only.
type VerifyErasureResult struct {
	Leftovers []string
}

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
func EraseSubject(ctx workflow.Context, in ErasureInput) (ErasureProgress, error) {
	progress := ErasureProgress{RequestID: in.RequestID, Status: domain.StatusInProgress}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (ErasureProgress, error) { return progress, nil }); err != nil {
		return progress, err
	}
	ctx = withActivityDefaults(ctx)

	var plan ErasurePlan
	if err := workflow.ExecuteActivity(ctx, ActivityPlanErasure, in).Get(ctx, &plan); err != nil {
		progress.Status = domain.StatusFailed
		return progress, fmt.Errorf("plan the erasure: %w", err)
	}
	if !plan.Found {
		progress.Status = domain.StatusCompleted
		progress.Receipt = &Receipt{RequestID: in.RequestID, CompletedAt: workflow.Now(ctx), NothingHeld: true}
		return progress, nil
	}
	person := plan.Identity
	if err := workflow.ExecuteActivity(ctx, ActivityRecordErasure, RecordErasureInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: person}).Get(ctx, nil); err != nil {
		progress.Status = domain.StatusFailed
		return progress, fmt.Errorf("record the erasure in the ledger: %w", err)
	}

	e := &erasure{in: in, plan: plan, person: person, progress: &progress, receipt: &Receipt{RequestID: in.RequestID, MapDigest: plan.MapDigest}}
	e.addSystem(SystemPostgres, "application database")
	for _, loc := range plan.Locations {
		e.addSystem(SystemS3, loc)
	}
	for _, p := range plan.Processors {
		e.addSystem(SystemProcessor, p.Name)
	}

	// Every system side by side, a few at a time.
	running := 0
	wg := workflow.NewWaitGroup(ctx)
	for i := range progress.Systems {
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			_ = workflow.Await(ctx, func() bool { return running < erasureConcurrency })
			running++
			defer func() { running-- }()
			e.eraseSystem(ctx, i)
		})
	}
	wg.Wait(ctx)
	if failed := e.failedSystems(); len(failed) > 0 {
		progress.Status = domain.StatusFailed
		return progress, temporal.NewNonRetryableApplicationError("erasure failed in "+strings.Join(failed, ", "), "ErasureIncomplete", nil)
	}

	// Read everything again: what remains outside a hold fails the request.
	var check VerifyErasureResult
	// The search for the person's identifiers reads every table of the
	// application's schemas: it heartbeats after each table.
	verifyCtx := workflow.WithStartToCloseTimeout(workflow.WithHeartbeatTimeout(ctx, 5*time.Minute), time.Hour)
	if err := workflow.ExecuteActivity(verifyCtx, ActivityVerifyErasure, VerifyErasureInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: person}).Get(ctx, &check); err != nil {
		progress.Status = domain.StatusFailed
		return progress, fmt.Errorf("verify the erasure: %w", err)
	}
	if len(check.Leftovers) > 0 {
		progress.Status = domain.StatusFailed
		return progress, temporal.NewNonRetryableApplicationError("the verification pass found data left: "+strings.Join(check.Leftovers, "; "), "ErasureIncomplete", nil)
	}

	// What outlives the request starts, and the receipt is audited, at once.
	erasedAt := workflow.Now(ctx)
	later := append(e.watchBackups(ctx, erasedAt), e.releaseHoldsLater(ctx)...)
	e.receipt.CompletedAt = erasedAt
	progress.Receipt = e.receipt
	audited := workflow.ExecuteActivity(ctx, ActivityAudit, AuditInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Actor: "system", Action: "erasure.receipt",
		Detail: e.receipt.AuditDetail(), Key: in.RequestID + ":erasure.receipt"})
	for _, child := range later {
		e.started(ctx, child)
	}
	if err := audited.Get(ctx, nil); err != nil {
		return progress, fmt.Errorf("audit the receipt: %w", err)
	}
	progress.Status = domain.StatusCompleted
	return progress, nil
}

// erasure is one running EraseSubject.
type erasure struct {
	in       ErasureInput
	plan     ErasurePlan
	person   []byte
	progress *ErasureProgress
	receipt  *Receipt
	held     []HeldRows
}

func (e *erasure) addSystem(system, name string) {
	e.progress.Systems = append(e.progress.Systems, SystemProgress{System: system, Name: name, Status: StepPending})
}

func (e *erasure) failedSystems() []string {
	var failed []string
	for _, s := range e.progress.Systems {
		if s.Status == StepFailed {
			failed = append(failed, s.System+" "+s.Name)
		}
	}
	return failed
}

// eraseSystem erases the person from the i-th system and records the outcome.
func (e *erasure) eraseSystem(ctx workflow.Context, i int) {
	s := &e.progress.Systems[i]
	s.Status = StepRunning
	var err error
	switch s.System {
	case SystemPostgres:
		err = e.eraseTables(ctx)
	case SystemS3:
		err = e.eraseObjects(ctx, slices.Index(e.plan.Locations, s.Name))
	case SystemProcessor:
		err = e.eraseAtProcessor(ctx, e.plan.Processors[slices.IndexFunc(e.plan.Processors, func(p PlannedProcessor) bool { return p.Name == s.Name })])
	}
	if err != nil {
		s.Status, s.Error = StepFailed, errorMessage(err)
		workflow.GetLogger(ctx).Error("erasure step failed", "system", s.System, "name", s.Name)
		return
	}
	s.Status = StepDone
}

func (e *erasure) eraseTables(ctx workflow.Context) error {
	var res EraseTablesResult
	if err := workflow.ExecuteActivity(ctx, ActivityEraseTables, EraseTablesInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.person}).Get(ctx, &res); err != nil {
		return err
	}
	for _, t := range res.Tables {
		e.receipt.add(ReceiptEntry{System: SystemPostgres, Name: t.Table, Action: t.Action, Count: t.Rows, Basis: t.Reason, Until: t.Until})
	}
	e.held = res.Held
	return nil
}

func (e *erasure) eraseObjects(ctx workflow.Context, location int) error {
	var res EraseObjectsResult
	long := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
	if err := workflow.ExecuteActivity(long, ActivityEraseObjects, EraseObjectsInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.person, Location: location}).Get(ctx, &res); err != nil {
		return err
	}
	entry := ReceiptEntry{System: SystemS3, Name: res.Location, Action: "deleted", Count: res.Objects}
	if res.Versions > 0 {
		entry.Confirmation = fmt.Sprintf("%d versions and delete markers", res.Versions)
	}
	e.receipt.add(entry)
	return nil
}

func (e *erasure) eraseAtProcessor(ctx workflow.Context, p PlannedProcessor) error {
	deadline := DefaultProcessorTaskDeadline
	if e.in.Expedited {
		deadline = ExpeditedTaskDeadline
	}
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: ProcessorErasureWorkflowID(e.in.RequestID, p.Name)})
	var res ProcessorErasureResult
	if err := workflow.ExecuteChildWorkflow(child, WorkflowEraseAtProcessor, ProcessorErasureInput{
		RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.person, Processor: p.Name,
		Jurisdiction: e.in.Jurisdiction, TaskDeadline: deadline, FollowUpAfter: p.FollowUp,
	}).Get(ctx, &res); err != nil {
		return err
	}
	e.receipt.add(processorReceiptEntry(res))
	return nil
}

// watchBackups starts the wait for every backup older than the erasure to
// rotate out (P6). It outlives the request.
func (e *erasure) watchBackups(ctx workflow.Context, erasedAt time.Time) []workflow.ChildWorkflowFuture {
	if len(e.plan.Backups) == 0 {
		return nil
	}
	var longest time.Duration
	for _, b := range e.plan.Backups {
		longest = max(longest, b.Rotation)
		e.receipt.add(ReceiptEntry{System: SystemBackups, Name: b.Name, Action: "rotating out", Until: erasedAt.Add(b.Rotation),
			Basis: "backups cannot be edited: the erasure ledger re-applies this erasure after any restore"})
	}
	e.receipt.BackupsGoneBy = erasedAt.Add(longest)
	return []workflow.ChildWorkflowFuture{e.startAbandoned(ctx, BackupWatchWorkflowID(e.in.RequestID), WorkflowAwaitBackupRotation, BackupWatchInput{
		RequestID: e.in.RequestID, ErasedAt: erasedAt, Locations: e.plan.Backups, Promise: e.plan.BackupPromise,
	})}
}

// releaseHoldsLater starts, for each table holding rows under a legal hold,
// the erasure of those rows when the hold ends. It outlives the request.
func (e *erasure) releaseHoldsLater(ctx workflow.Context) []workflow.ChildWorkflowFuture {
	var started []workflow.ChildWorkflowFuture
	for _, h := range e.held {
		started = append(started, e.startAbandoned(ctx, e.in.RequestID+"-hold-"+h.Table, WorkflowReleaseHold,
			ReleaseHoldInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Held: h}))
	}
	return started
}

// startAbandoned starts a child that lives on after this workflow.
func (e *erasure) startAbandoned(ctx workflow.Context, id, workflowType string, in any) workflow.ChildWorkflowFuture {
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id, ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON})
	return workflow.ExecuteChildWorkflow(child, workflowType, in)
}

// started waits for a child of startAbandoned to start; one that already
// runs (a retried erasure) is left alone.
func (e *erasure) started(ctx workflow.Context, child workflow.ChildWorkflowFuture) {
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

// ReleaseHoldInput erases rows kept under a legal hold once the hold ends.
type ReleaseHoldInput struct {
	RequestID  string
	SubjectRef string
	Held       HeldRows
}

// EraseHeldInput erases the held rows whose hold has ended.
type EraseHeldInput struct {
	RequestID string
	Held      HeldRows
}

// EraseHeldResult says how many rows went, and when the next hold ends
// (zero when no held row remains).
type EraseHeldResult struct {
	Deleted int
	Next    time.Time
}

// ReleaseHold keeps the promise a legal hold makes in both directions: the
// rows stay for as long as the law says (the hold's period), and go when it
// ends. Rows with later ends (a purchase made later) wait for theirs. When
// none remain, the key that sealed the user id is destroyed.
func ReleaseHold(ctx workflow.Context, in ReleaseHoldInput) (int, error) {
	ctx = withActivityDefaults(ctx)
	deleted := 0
	for until := in.Held.Until; !until.IsZero(); {
		if wait := until.Sub(workflow.Now(ctx)); wait > 0 {
			if err := workflow.Sleep(ctx, wait); err != nil {
				return deleted, err
			}
		}
		var res EraseHeldResult
		if err := workflow.ExecuteActivity(ctx, ActivityEraseHeld, EraseHeldInput{RequestID: in.RequestID, Held: in.Held}).Get(ctx, &res); err != nil {
			return deleted, err
		}
		deleted += res.Deleted
		until = res.Next
	}
	if err := workflow.ExecuteActivity(ctx, ActivityShredSubject, in.Held.HoldRef).Get(ctx, nil); err != nil {
		return deleted, err
	}
	err := workflow.ExecuteActivity(ctx, ActivityAudit, AuditInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Actor: "system", Action: "erasure.hold_ended",
		Detail: map[string]string{"request_id": in.RequestID, "table": in.Held.Table, "rows": fmt.Sprint(deleted)},
		Key:    in.RequestID + ":hold_ended:" + in.Held.Table}).Get(ctx, nil)
	return deleted, err
}
