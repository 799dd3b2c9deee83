package workflows

import (
	"fmt"
	"slices"
	"time"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/workflows/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// bulk erases pages of people (a nil pointer: see activities.go).
var bulk *activities.BulkErasure

// EraseInBulk erases one page of people (the inactivity sweep's, a
// restore-reconcile's) with everything EraseSubject does for one person,
// without a workflow per person:
//
//  1. each person's identifiers and ids at processors are read and sealed
//     under the page's key before anything is erased;
//  2. the erasure ledger records them; their rows go in one transaction, in
//     foreign-key order (held rows kept under their legal hold), then their
//     objects in every S3 location; every table and location is read again;
//  3. each processor is asked to erase each person, on the processor's
//     own task queue, whose rate the server holds to the processor's rate
//     limit: one call each, or, at a processor with a batch API
//     (Mailchimp, SendGrid), one batch job for up to its batch size of people
//     (eraseInBatch); a person a processor could not erase at
//     once (asynchronous, an operator needed, a 4xx) is handed to an
//     EraseAtProcessor of their own, with its polling, operator task and
//     escalation, and the page waits for it;
//  4. each person gets a receipt in the audit trail, or an
//     "erasure.incomplete" entry and a task for the privacy team;
//  5. what outlives the page starts, as one AfterErasure for the page (a
//     few, for a page erased at many processors; see AfterErasureItemsMax):
//     the release of held rows when their holds end, the check of each
//     processor's erasures when its retention window has passed, the
//     backups watch;
//  6. the page's key is destroyed: its sealed identities are unreadable.
//
// The history stays bounded: a page is at most contract.BulkPageSize
// people. A worker that dies mid-page costs a retried step, never a
// repeated side effect: each step records what it did as it goes.
func EraseInBulk(ctx workflow.Context, in contract.BulkErasureInput) (contract.BulkErasureResult, error) {
	var res contract.BulkErasureResult
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.BulkErasureResult, error) { return res, nil }); err != nil {
		return res, err
	}
	ctx = withActivityDefaults(ctx)
	// A page's steps touch hundreds of people: time, and heartbeats.
	pageCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour, HeartbeatTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
	var plan contract.BulkPlan
	if err := workflow.ExecuteActivity(pageCtx, bulk.PrepareBulkErasure, in).Get(ctx, &plan); err != nil {
		return res, fmt.Errorf("prepare the page: %w", err)
	}
	var page contract.BulkPageResult
	if err := workflow.ExecuteActivity(pageCtx, bulk.EraseBulkPage, contract.BulkPageInput{
		Batch: in.Batch, Why: in.Why, RunAt: in.RunAt, RunRef: in.RunRef, People: plan.People,
	}).Get(ctx, &page); err != nil {
		return res, fmt.Errorf("erase the page: %w", err)
	}

	receipts := make([]contract.BulkReceipt, len(plan.People))
	var holds []contract.BulkHold
	for i, p := range plan.People {
		o := page.People[i]
		receipts[i] = contract.BulkReceipt{Ref: p.Ref, RequestID: p.RequestID, Items: o.Items}
		if len(o.Leftovers) > 0 {
			receipts[i].Failed = append(receipts[i].Failed, o.Leftovers...)
		}
		res.Items += o.Items
		for _, h := range o.Held {
			holds = append(holds, contract.BulkHold{Ref: p.Ref, RequestID: p.RequestID, Held: h})
		}
		if len(o.Held) > 0 {
			res.Held++
		}
	}

	// The processors: one call per person, on the processor's queue, which
	// lets them through at its rate. Pages from before "bulk-call-window"
	// scheduled them all at once; since, each processor's calls go through
	// a window of contract.BulkCallsInFlight.
	type call struct {
		person int
		proc   contract.PlannedProcessor
		done   workflow.Future
	}
	var followUps []contract.ProcessorFollowUpInput // the calls that settled it at once, checked again later
	var calls []call
	start := func(c *call) {
		p := plan.People[c.person]
		c.done = workflow.ExecuteActivity(withProcessorCalls(ctx, c.proc.Name), atProcessor.EraseAtProcessor,
			contract.ProcessorCallInput{RequestID: p.RequestID, SubjectRef: p.Ref, Identity: p.Identity, IdentityKey: contract.BulkKeyRef(in.Batch), Processor: c.proc.Name})
	}
	for i := range plan.People {
		if len(receipts[i].Failed) > 0 || in.Why == contract.BulkReconcile && receipts[i].Items == 0 {
			continue // failed here, or erased before and still gone
		}
		for _, proc := range plan.Processors {
			calls = append(calls, call{person: i, proc: proc})
		}
	}
	type answer struct {
		out contract.ProcessorCall
		err error
	}
	answers := make([]answer, len(calls))
	answered := func(k int) answer { return answers[k] }
	if len(calls) > 0 && workflow.GetVersion(ctx, "bulk-call-window", workflow.DefaultVersion, 1) == 1 {
		// Pages planned before "processor-batches" asked every processor
		// person by person.
		inBatches := slices.ContainsFunc(plan.Processors, func(p contract.PlannedProcessor) bool { return p.BatchSize > 0 }) &&
			workflow.GetVersion(ctx, "processor-batches", workflow.DefaultVersion, 1) == 1
		running := 0
		for _, proc := range plan.Processors {
			var mine []int
			for k := range calls {
				if calls[k].proc.Name == proc.Name {
					mine = append(mine, k)
				}
			}
			running++
			if inBatches && proc.BatchSize > 0 {
				workflow.Go(ctx, func(ctx workflow.Context) {
					defer func() { running-- }()
					for part := range slices.Chunk(mine, proc.BatchSize) {
						people := make([]contract.ProcessorBatchPerson, len(part))
						for j, k := range part {
							p := plan.People[calls[k].person]
							people[j] = contract.ProcessorBatchPerson{RequestID: p.RequestID, Identity: p.Identity}
						}
						out, err := eraseInBatch(ctx, contract.ProcessorBatchInput{Batch: in.Batch, Processor: proc.Name, People: people})
						for j, k := range part {
							if answers[k].err = err; err == nil {
								answers[k].out = out[j]
							}
						}
					}
				})
				continue
			}
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer func() { running-- }()
				for next, waiting := 0, []int(nil); next < len(mine) || len(waiting) > 0; {
					for ; next < len(mine) && len(waiting) < contract.BulkCallsInFlight; next++ {
						start(&calls[mine[next]])
						waiting = append(waiting, mine[next])
					}
					k := waiting[0]
					waiting = waiting[1:]
					answers[k].err = calls[k].done.Get(ctx, &answers[k].out)
				}
			})
		}
		if err := workflow.Await(ctx, func() bool { return running == 0 }); err != nil {
			return res, err
		}
	} else {
		for k := range calls {
			start(&calls[k])
		}
		answered = func(k int) answer {
			var a answer
			a.err = calls[k].done.Get(ctx, &a.out)
			return a
		}
	}
	type handedOver struct {
		person int
		proc   string
		done   workflow.ChildWorkflowFuture
	}
	var children []handedOver
	for k, c := range calls {
		a := answered(k)
		out, err := a.out, a.err
		if err == nil && (out.Status == contract.ProcessorCallDone || out.Status == contract.ProcessorCallGone) {
			res.ProcessorCalls++
			status := contract.ProcessorConfirmed
			if out.Status == contract.ProcessorCallGone {
				status = contract.ProcessorAlreadyGone
			}
			receipts[c.person].Entries = append(receipts[c.person].Entries, processorReceiptEntry(contract.ProcessorErasureResult{
				Processor: c.proc.Name, Status: status, HTTPStatus: out.HTTPStatus, JobID: out.JobID, Refs: out.Refs, Note: out.Note}))
			if status == contract.ProcessorConfirmed {
				p := plan.People[c.person]
				followUps = append(followUps, contract.ProcessorFollowUpInput{RequestID: p.RequestID, SubjectRef: p.Ref, Processor: c.proc.Name,
					After: c.proc.FollowUp, Erasure: contract.ProcessorCall{Processor: c.proc.Name, Status: contract.ProcessorCallDone, HTTPStatus: out.HTTPStatus, JobID: out.JobID, Refs: out.Refs}})
			}
			continue
		}
		if temporal.IsCanceledError(err) {
			return res, err
		}
		// Not settled at once: the erasure at this processor becomes the
		// person's own, as for a request.
		p := plan.People[c.person]
		child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            contract.ProcessorErasureWorkflowID(p.RequestID, c.proc.Name),
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
		})
		res.OperatorTasks++
		children = append(children, handedOver{person: c.person, proc: c.proc.Name, done: workflow.ExecuteChildWorkflow(child, contract.WorkflowEraseAtProcessor, contract.ProcessorErasureInput{
			// Audited under the person; the identity opened with the page's key.
			RequestID: p.RequestID, SubjectRef: p.Ref, Identity: p.Identity, IdentityKey: contract.BulkKeyRef(in.Batch), Processor: c.proc.Name,
			TaskDeadline: contract.DefaultProcessorTaskDeadline, FollowUpAfter: c.proc.FollowUp,
		})})
	}
	for _, h := range children {
		var out contract.ProcessorErasureResult
		if err := h.done.Get(ctx, &out); err != nil {
			if temporal.IsCanceledError(err) {
				return res, err
			}
			receipts[h.person].Failed = append(receipts[h.person].Failed, "processor "+h.proc)
			continue
		}
		receipts[h.person].Entries = append(receipts[h.person].Entries, processorReceiptEntry(out))
	}

	// Receipts, what outlives the page, and the page's key.
	erasedAt := workflow.Now(ctx)
	for i := range receipts {
		if len(receipts[i].Failed) > 0 {
			res.Failed++
			continue
		}
		if in.Why == contract.BulkReconcile && receipts[i].Items == 0 {
			continue
		}
		res.People++
		for _, b := range plan.Backups {
			receipts[i].Entries = append(receipts[i].Entries, b.ReceiptEntry(erasedAt))
		}
	}
	if err := workflow.ExecuteActivity(pageCtx, bulk.RecordBulkReceipts, contract.BulkReceiptsInput{
		Batch: in.Batch, Why: in.Why, RunAt: erasedAt, SweptAt: in.RunAt, RunRef: in.RunRef, People: receipts,
	}).Get(ctx, nil); err != nil {
		return res, fmt.Errorf("record the receipts: %w", err)
	}
	var later []workflow.ChildWorkflowFuture
	watchBackups := len(plan.Backups) > 0 && res.People > 0
	for i := range followUps {
		followUps[i].DueAt = erasedAt.Add(followUps[i].After)
	}
	// What outlives the page is one AfterErasure: the follow-ups of the
	// erasures the processors confirmed at once (those handed to an
	// EraseAtProcessor start their own), the release of held rows when
	// their holds end, and the backups watch. Pages erased before
	// bulkAfterErasure started one workflow for each.
	if (len(followUps) > 0 || len(holds) > 0 || watchBackups) && workflow.GetVersion(ctx, bulkAfterErasure, workflow.DefaultVersion, 1) == 1 {
		after := contract.AfterErasureInput{RequestID: in.Batch, FollowUps: followUps, HeldInBulk: holds}
		if watchBackups {
			after.Backups = &contract.BackupWatchInput{
				RequestID: in.Batch, ErasedAt: erasedAt, Locations: plan.Backups, Promise: plan.BackupPromise, FirstCheckLater: true,
			}
		}
		// A page erased at many processors outlives it in a few parts,
		// each input well under the server's limit on a payload; pages
		// that started one before afterErasureParts replay so.
		parts := after.Split(contract.AfterErasureItemsMax)
		if len(parts) > 1 && workflow.GetVersion(ctx, afterErasureParts, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			parts = []contract.AfterErasureInput{after}
		}
		for i, part := range parts {
			later = append(later, startAbandoned(ctx, contract.AfterErasurePartWorkflowID(in.Batch, i), contract.WorkflowAfterErasure, part))
		}
	} else {
		// Pages erased before "bulk-follow-ups" started no follow-ups.
		if len(followUps) > 0 && workflow.GetVersion(ctx, "bulk-follow-ups", workflow.DefaultVersion, 1) == 1 {
			later = append(later, startAbandoned(ctx, contract.ProcessorFollowUpsWorkflowID(in.Batch), contract.WorkflowProcessorFollowUps,
				contract.ProcessorFollowUpsInput{RequestID: in.Batch, Checks: followUps}))
		}
		if len(holds) > 0 {
			later = append(later, startAbandoned(ctx, in.Batch+"-holds", contract.WorkflowReleaseHeldInBulk, contract.ReleaseHeldInBulkInput{Batch: in.Batch, Holds: holds}))
		}
		if watchBackups {
			later = append(later, startAbandoned(ctx, contract.BackupWatchWorkflowID(in.Batch), contract.WorkflowAwaitBackupRotation, contract.BackupWatchInput{
				RequestID: in.Batch, ErasedAt: erasedAt, Locations: plan.Backups, Promise: plan.BackupPromise, FirstCheckLater: true,
			}))
		}
	}
	for _, child := range later {
		started(ctx, child)
	}
	if res.Failed > 0 {
		if err := tell(ctx, teamTask("", onceKey(in.Batch, "incomplete"), fmt.Sprintf(
			"A bulk erasure (%s, batch %s) could not complete for %d people: the audit trail's erasure.incomplete entries name the systems. Look at them, fix what stops them, and erase them again.",
			in.Why, in.Batch, res.Failed))); err != nil {
			return res, err
		}
	}
	if err := workflow.ExecuteActivity(ctx, lifecycle.ShredSubject, contract.BulkKeyRef(in.Batch)).Get(ctx, nil); err != nil {
		return res, fmt.Errorf("destroy the page's key: %w", err)
	}
	return res, nil
}

// eraseInBatch erases some of a page's people at a processor with a batch
// API: one job, submitted and followed on the processor's own queue, so
// its rate holds. Following the job retries its check on a backoff (from
// seconds up to a minute, for up to a day) while the job runs, which
// costs the history nothing; a job that fails for good, or outlasts the
// day, leaves its people to be asked one by one.
func eraseInBatch(ctx workflow.Context, in contract.ProcessorBatchInput) ([]contract.ProcessorCall, error) {
	callCtx := withProcessorCalls(ctx, in.Processor)
	var job contract.ProcessorBatchJob
	if err := workflow.ExecuteActivity(callCtx, atProcessor.StartProcessorBatch, in).Get(ctx, &job); err != nil {
		return nil, err
	}
	opts := workflow.GetActivityOptions(callCtx)
	opts.ScheduleToCloseTimeout = 24 * time.Hour
	opts.RetryPolicy = &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute}
	followCtx := workflow.WithActivityOptions(ctx, opts)
	for {
		in.Job = &job
		var prog contract.ProcessorBatchProgress
		if err := workflow.ExecuteActivity(followCtx, atProcessor.FollowProcessorBatch, in).Get(ctx, &prog); err != nil {
			return nil, err
		}
		if prog.Done {
			return prog.Calls, nil
		}
		job = prog.Job
	}
}

// bulkAfterErasure is the version check after which what outlives a
// bulk page is one AfterErasure workflow (issue 16), not a
// ProcessorFollowUps, a ReleaseHeldInBulk and an AwaitBackupRotation.
const bulkAfterErasure = "bulk-after-erasure"

// afterErasureParts is the version check after which a page with more
// follow-ups and holds than contract.AfterErasureItemsMax starts several
// AfterErasures, not one whose input could pass the server's limit.
const afterErasureParts = "after-erasure-parts"

// holdRoundsPerRun bounds ReleaseHeldInBulk's history: then it continues
// as new.
const holdRoundsPerRun = 100

// ReleaseHeldInBulk keeps a page's legal holds in both directions: each
// person's held rows stay for as long as the law says, and go when their
// hold ends (rows with later ends wait for theirs). Each hold's key is
// destroyed, and its end audited, when nothing of it remains.
func ReleaseHeldInBulk(ctx workflow.Context, in contract.ReleaseHeldInBulkInput) (int, error) {
	ctx = withActivityDefaults(ctx)
	deleted := 0
	holds := in.Holds
	for rounds := 0; len(holds) > 0; rounds++ {
		if rounds == holdRoundsPerRun {
			return deleted, workflow.NewContinueAsNewError(ctx, contract.WorkflowReleaseHeldInBulk, contract.ReleaseHeldInBulkInput{Batch: in.Batch, Holds: holds})
		}
		if wait := firstHoldEnd(holds).Sub(workflow.Now(ctx)); wait > 0 {
			if err := workflow.Sleep(ctx, wait); err != nil {
				return deleted, err
			}
		}
		rest, n, err := releaseDueHolds(ctx, in.Batch, holds)
		if err != nil {
			return deleted, err
		}
		deleted += n
		holds = rest
	}
	return deleted, nil
}

// firstHoldEnd is when the first of a page's holds ends.
func firstHoldEnd(holds []contract.BulkHold) time.Time {
	return slices.MinFunc(holds, func(a, b contract.BulkHold) int { return a.Held.Until.Compare(b.Held.Until) }).Held.Until
}

// releaseDueHolds erases the rows of every hold of a page that has ended
// (releasing for good those with nothing left) and returns the others,
// each with its next end, and the rows erased.
func releaseDueHolds(ctx workflow.Context, batch string, holds []contract.BulkHold) (rest []contract.BulkHold, deleted int, err error) {
	var res contract.ReleaseDueResult
	if err := workflow.ExecuteActivity(ctx, bulk.ReleaseDueHolds, contract.ReleaseDueInput{Batch: batch, Holds: holds}).Get(ctx, &res); err != nil {
		return holds, 0, err
	}
	for i, h := range holds {
		if slices.Contains(res.Released, i) {
			continue
		}
		if i < len(res.Next) && !res.Next[i].IsZero() {
			h.Held.Until = res.Next[i]
		}
		rest = append(rest, h)
	}
	return rest, res.Deleted, nil
}
