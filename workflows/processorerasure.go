package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// atProcessor calls the processors (a nil pointer: see activities.go).
var atProcessor *activities.ProcessorErasure

// Erasure at one processor (P5, P7): the third party that received the
// person's data is asked to erase it; what it cannot do becomes an operator
// task with a deadline; and after the processor's own retention window a
// follow-up checks that the erasure held.

// eraseCallOptions: 429 and 5xx are retried with backoff, after the
// processor's Retry-After when it gives one (the activity sets
// NextRetryDelay); 4xx fail at once as needs-operator errors.
const eraseMaxAttempts = 12

// A call heartbeats while in flight (activities.DefaultHeartbeatEvery): a
// worker that dies in the middle is noticed in 20 seconds and the call is
// tried again elsewhere, instead of after the 5-minute timeout.
//
// Calls run on the processor's own task queue (contract.ProcessorTaskQueue),
// whose rate the server holds to the processor's rate limit; runs from
// before that (version DefaultVersion) keep calling on the workflow's queue.
// A lean request, or an AfterErasure, has it without a check (earlierChecksPassed).
func withProcessorCalls(ctx workflow.Context, processor string) workflow.Context {
	queue := ""
	if earlierChecksPassed(ctx) || workflow.GetVersion(ctx, "processor-task-queues", workflow.DefaultVersion, 1) == 1 {
		queue = contract.ProcessorTaskQueue(workflow.GetInfo(ctx).TaskQueueName, processor)
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: queue,
		// A call waits its turn at the processor's rate (a bulk erasure
		// queues thousands); a day without a worker for the processor's
		// queue (it left the data map) fails it instead of waiting forever.
		ScheduleToStartTimeout: 24 * time.Hour,
		StartToCloseTimeout:    5 * time.Minute,
		HeartbeatTimeout:       20 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Minute,
			MaximumAttempts:    eraseMaxAttempts,
		},
	})
}

// processorErasure is the state of one EraseAtProcessor run.
type processorErasure struct {
	in         contract.ProcessorErasureInput
	view       contract.ProcessorErasureView
	resolution *contract.TaskResolution       // the open task's resolution, once given
	tasks      int                            // tasks opened so far (numbers them)
	actor      string                         // who resolved the last task
	byHand     bool                           // an operator marked the erasure done
	first      *contract.ProcessorFirstAnswer // the erasure's own first call, until erase uses it
}

// EraseAtProcessor erases one person at one processor:
//
//   - it asks the processor to erase (429 and 5xx retried with backoff,
//     honouring Retry-After);
//   - done or already gone: confirmed, with the processor's refs as evidence;
//   - pending (OpenDSR, webhook jobs, SendGrid): it asks again every
//     PollEvery until the processor is done, for at most PollFor, and at
//     once when the processor's verified callback arrives
//     (SignalProcessorCallback; the API finds the erasure by its
//     LetheProcessorJob search attribute, the processor's job id);
//   - anything else — a manual processor, a 4xx, retries exhausted, a
//     processor still pending — becomes an operator task: the privacy team
//     is mailed, the task shows in the progress query, an operator retries,
//     skips (with a reason) or marks it done by hand (with evidence), and a
//     task still open at its deadline is escalated once;
//   - once erased (or done by hand), a follow-up workflow checks after the
//     processor's retention window that the erasure held.
func EraseAtProcessor(ctx workflow.Context, in contract.ProcessorErasureInput) (contract.ProcessorErasureResult, error) {
	if in.Processor == "" || in.RequestID == "" {
		return contract.ProcessorErasureResult{}, temporal.NewNonRetryableApplicationError("request id and processor are required", contract.RefusedInput, nil)
	}
	e := &processorErasure{in: in.WithDefaults(), first: in.First}
	e.view = contract.ProcessorErasureView{RequestID: in.RequestID, Processor: in.Processor, Status: contract.ProcessorErasing}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.ProcessorErasureView, error) { return e.view, nil }); err != nil {
		return contract.ProcessorErasureResult{}, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateResolveTask, e.resolve,
		workflow.UpdateHandlerOptions{Validator: e.validate}); err != nil {
		return contract.ProcessorErasureResult{}, err
	}
	ctx = withActivityDefaults(ctx)

	res, err := e.run(ctx)
	if err != nil {
		return res, err
	}
	res.Processor, res.Attempts, res.Actor = in.Processor, e.view.Attempts, e.actor
	res.ConfirmedAt = workflow.Now(ctx)
	if res.Status == contract.ProcessorConfirmed || res.Status == contract.ProcessorDoneByHand {
		if err := e.startFollowUp(ctx, &res); err != nil {
			return res, fmt.Errorf("start the follow-up at %s: %w", in.Processor, err)
		}
	}
	e.view.Status, e.view.Result = res.Status, &res
	return res, nil
}

// run asks the processor until the erasure is settled, by the processor or
// by an operator.
func (e *processorErasure) run(ctx workflow.Context) (contract.ProcessorErasureResult, error) {
	for {
		call, problem, err := e.erase(ctx)
		if err != nil {
			return contract.ProcessorErasureResult{}, err
		}
		if problem == "" {
			status := contract.ProcessorConfirmed
			if call.Status == contract.ProcessorCallGone {
				status = contract.ProcessorAlreadyGone
			}
			return contract.ProcessorErasureResult{Status: status, HTTPStatus: call.HTTPStatus, JobID: call.JobID,
				Refs: call.Refs, Note: call.Note}, nil
		}
		d, err := e.task(ctx, problem, call.Steps)
		if err != nil {
			return contract.ProcessorErasureResult{}, err
		}
		switch d.Action {
		case contract.TaskSkip:
			return contract.ProcessorErasureResult{Status: contract.ProcessorSkipped, Reason: d.Reason}, nil
		case contract.TaskDone:
			e.byHand = true
			return contract.ProcessorErasureResult{Status: contract.ProcessorDoneByHand, Evidence: d.Evidence, Reason: d.Reason,
				JobID: call.JobID, Refs: call.Refs}, nil
		}
		// TaskRetry: ask the processor again.
	}
}

// erase makes one erase call (polling when the processor works
// asynchronously). problem says why an operator must look; "" when the
// answer is done or already gone. err is only the workflow's cancellation.
func (e *processorErasure) erase(ctx workflow.Context) (call contract.ProcessorCall, problem string, err error) {
	e.view.Status = contract.ProcessorErasing
	if first := e.first; first != nil {
		// The erasure asked already (AskProcessor): go on from its answer.
		e.first = nil
		e.view.Attempts += first.Attempts
		if first.Failure != "" {
			return contract.ProcessorCall{}, first.Failure, nil
		}
		call = first.Call
	} else {
		err = workflow.ExecuteActivity(withProcessorCalls(ctx, e.in.Processor), atProcessor.EraseAtProcessor, e.callInput(nil)).Get(ctx, &call)
		e.view.Attempts += eraseAttempts(call, err)
		if err != nil {
			if temporal.IsCanceledError(err) {
				return call, "", err
			}
			return contract.ProcessorCall{}, processorFailure(err), nil
		}
	}
	switch call.Status {
	case contract.ProcessorCallDone, contract.ProcessorCallGone:
		return call, "", nil
	case contract.ProcessorCallPending:
		e.findableByJob(ctx, call.JobID)
		return e.poll(ctx, call)
	case contract.ProcessorCallNeedsOperator:
		return call, e.in.Processor + " cannot erase through an API: follow the steps, then mark this task done with evidence", nil
	default:
		return call, fmt.Sprintf("%s answered %q to the erasure", e.in.Processor, call.Status), nil
	}
}

// maxJobIDAttr bounds a job id kept as a search attribute.
const maxJobIDAttr = 200

// findableByJob sets LetheProcessorJob to the processor's job id (for
// OpenDSR the subject_request_id, a UUID), so a status callback, which
// names only that id, finds this erasure. A failure is logged: polling
// goes on without it.
func (e *processorErasure) findableByJob(ctx workflow.Context, jobID string) {
	if jobID == "" || len(jobID) > maxJobIDAttr {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, contract.ProcessorJobKey.ValueSet(jobID)); err != nil {
		workflow.GetLogger(ctx).Warn("processor job id not set as a search attribute", "processor", e.in.Processor, "error", err)
	}
}

// poll asks about an asynchronous erasure every PollEvery, for at most
// PollFor, and at once when the processor calls back
// (SignalProcessorCallback). A processor that finishes makes the erasure
// confirmed.
func (e *processorErasure) poll(ctx workflow.Context, call contract.ProcessorCall) (contract.ProcessorCall, string, error) {
	e.view.Status = contract.ProcessorWaiting
	callbacks := workflow.GetSignalChannel(ctx, contract.SignalProcessorCallback)
	until := workflow.Now(ctx).Add(e.in.PollFor)
	for {
		left := until.Sub(workflow.Now(ctx))
		if left <= 0 {
			return call, fmt.Sprintf("%s still reports the erasure pending after %s: check it at the processor, then retry or mark it done",
				e.in.Processor, e.in.PollFor), nil
		}
		if err := e.waitForPoll(ctx, callbacks, min(e.in.PollEvery, left)); err != nil {
			return call, "", err
		}
		var next contract.ProcessorCall
		err := workflow.ExecuteActivity(withProcessorCalls(ctx, e.in.Processor), atProcessor.ProcessorErasureStatus, e.callInput(&call)).Get(ctx, &next)
		if err != nil {
			if temporal.IsCanceledError(err) {
				return call, "", err
			}
			return call, processorFailure(err), nil
		}
		next = mergeProcessorCalls(call, next)
		switch next.Status {
		case contract.ProcessorCallPending, contract.ProcessorCallStillPresent:
			next.Status = contract.ProcessorCallPending
			call = next
		case contract.ProcessorCallDone, contract.ProcessorCallGone:
			next.Status = contract.ProcessorCallDone // it was there, and the processor erased it
			return next, "", nil
		case contract.ProcessorCallNeedsOperator:
			return next, e.in.Processor + " cannot report on the erasure: follow the steps, then mark this task done with evidence", nil
		default:
			return next, fmt.Sprintf("%s answered %q about the erasure", e.in.Processor, next.Status), nil
		}
	}
}

// waitForPoll waits d, or less when the processor calls back meanwhile;
// it consumes every callback received so far, as the status check that
// follows answers them all. err is only the workflow's cancellation.
func (e *processorErasure) waitForPoll(ctx workflow.Context, callbacks workflow.ReceiveChannel, d time.Duration) error {
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	var timerErr error
	var cb contract.ProcessorCallback
	called := false
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(workflow.NewTimer(timerCtx, d), func(f workflow.Future) { timerErr = f.Get(ctx, nil) })
	sel.AddReceive(callbacks, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, &cb)
		called = true
	})
	sel.Select(ctx)
	for callbacks.ReceiveAsync(&cb) { // the check about to be made answers them too
		called = true
	}
	if !called {
		return timerErr
	}
	workflow.GetLogger(ctx).Info("processor called back: asking about the erasure now", "processor", e.in.Processor,
		"callback_status", truncateRunes(cb.Status, 40))
	return ctx.Err()
}

// task opens an operator task and waits for its resolution, escalating
// once when its deadline passes.
func (e *processorErasure) task(ctx workflow.Context, reason string, steps []string) (contract.TaskResolution, error) {
	now := workflow.Now(ctx)
	e.tasks++
	t := &contract.ProcessorTask{Seq: e.tasks, Reason: truncateRunes(reason, contract.MaxTaskText), Steps: slices.Clone(steps),
		OpenedAt: now, DueAt: now.Add(e.in.TaskDeadline)}
	e.view.Task, e.view.Status, e.resolution = t, contract.ProcessorNeedsOperator, nil
	e.listTask(ctx, contract.TaskDueAtKey.ValueSet(t.DueAt))
	key := onceKey(e.in.RequestID, e.in.Processor, fmt.Sprint("task-", t.Seq))
	e.audit(ctx, "system", "processor.task_opened", onceKey(key, "opened"), map[string]string{"due_at": t.DueAt.Format(time.RFC3339)})
	e.mailTeam(ctx, contract.MailOperatorReminder, key, t.DueAt, e.taskLines(t))

	resolved := func() bool { return e.resolution != nil }
	ok := resolved()
	if wait := t.DueAt.Sub(workflow.Now(ctx)); !ok && wait > 0 {
		var err error
		if ok, err = workflow.AwaitWithTimeout(ctx, wait, resolved); err != nil {
			return contract.TaskResolution{}, err
		}
	}
	if !ok {
		t.EscalatedAt = workflow.Now(ctx)
		e.audit(ctx, "system", "processor.task_overdue", onceKey(key, "overdue"), map[string]string{"due_at": t.DueAt.Format(time.RFC3339)})
		e.mailTeam(ctx, contract.MailOperatorEscalation, onceKey(key, "escalation"), t.DueAt, e.taskLines(t))
		if err := workflow.Await(ctx, resolved); err != nil {
			return contract.TaskResolution{}, err
		}
	}
	d := *e.resolution
	e.actor = d.Actor
	detail := map[string]string{"decision": d.Action, "reason": d.Reason, "evidence": d.Evidence}
	e.audit(ctx, d.Actor, "processor.task_resolved", onceKey(key, "resolved"), detail)
	e.view.Task, e.view.Status = nil, contract.ProcessorErasing
	e.listTask(ctx, contract.TaskDueAtKey.ValueUnset())
	return d, nil
}

// listTask puts an open task in the privacy team's list in the Temporal UI
// (LetheTaskDueAt), or takes it out.
func (e *processorErasure) listTask(ctx workflow.Context, update temporal.SearchAttributeUpdate) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, update); err != nil {
		workflow.GetLogger(ctx).Warn("operator task not listed for the Temporal UI", "processor", e.in.Processor, "error", err)
	}
}

// validate refuses a resolution when no task is open, or a bad one.
func (e *processorErasure) validate(_ workflow.Context, d contract.TaskResolution) error {
	if e.view.Task == nil || e.resolution != nil {
		return temporal.NewApplicationError("no operator task is open for the erasure at "+e.in.Processor, contract.RefusedState)
	}
	if err := d.Validate(); err != nil {
		return temporal.NewApplicationError(err.Error(), contract.RefusedInput)
	}
	return nil
}

// resolve records the resolution; the waiting task acts on it.
func (e *processorErasure) resolve(_ workflow.Context, d contract.TaskResolution) error {
	if d.Actor == "" {
		d.Actor = "operator"
	}
	d.Reason, d.Evidence = strings.TrimSpace(d.Reason), strings.TrimSpace(d.Evidence)
	e.resolution = &d
	return nil
}

func (e *processorErasure) callInput(earlier *contract.ProcessorCall) contract.ProcessorCallInput {
	return contract.ProcessorCallInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.in.Identity,
		IdentityKey: e.in.IdentityKey, Processor: e.in.Processor, Earlier: earlier}
}

func (e *processorErasure) taskLines(t *contract.ProcessorTask) []string {
	lines := []string{fmt.Sprintf("Erasure at processor %s needs an operator: %s", e.in.Processor, t.Reason)}
	for _, s := range t.Steps {
		lines = append(lines, "Step: "+s)
	}
	path := "requests" // a request's; a person of a bulk erasure has a path of its own
	if contract.ValidBulkRequestID(e.in.RequestID) {
		path = "bulk"
	}
	return append(lines, fmt.Sprintf(`Resolve it: POST /v1/%s/%s/processors/%s/task with {"action": "retry"}, {"action": "skip", "reason": …} or {"action": "done", "evidence": …}`,
		path, e.in.RequestID, e.in.Processor))
}

// startFollowUp starts the check after the retention window, as a child
// that outlives this workflow.
func (e *processorErasure) startFollowUp(ctx workflow.Context, res *contract.ProcessorErasureResult) error {
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        contract.ProcessorFollowUpWorkflowID(e.in.RequestID, e.in.Processor),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	f := workflow.ExecuteChildWorkflow(child, contract.WorkflowProcessorFollowUp, contract.ProcessorFollowUpInput{
		RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Processor: e.in.Processor, Jurisdiction: e.in.Jurisdiction,
		After:   e.in.FollowUpAfter,
		Erasure: contract.ProcessorCall{Processor: e.in.Processor, Status: contract.ProcessorCallDone, HTTPStatus: res.HTTPStatus, JobID: res.JobID, Refs: res.Refs},
		ByHand:  e.byHand,
	})
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return err
	}
	res.FollowUpAt = workflow.Now(ctx).Add(e.in.FollowUpAfter)
	return nil
}

// mailTeam tells the privacy team, once per key; a mail that cannot go
// does not stop the erasure.
func (e *processorErasure) mailTeam(ctx workflow.Context, template, key string, due time.Time, lines []string) {
	mailProcessorTeam(ctx, e.in.RequestID, e.in.Jurisdiction, template, key, due, lines)
}

// audit appends an entry to the audit trail, once per key.
func (e *processorErasure) audit(ctx workflow.Context, actor, action, key string, detail map[string]string) {
	auditProcessor(ctx, e.in.RequestID, e.in.SubjectRef, e.in.Processor, actor, action, key, detail)
}

// ProcessorFollowUp sleeps through the processor's retention window, then
// checks — without the person's identity, only by what the erasure
// recorded — that the processor holds nothing more. The outcome goes into
// the audit trail; data still there, a check that fails and a processor
// that can only be asked are mailed to the privacy team.
func ProcessorFollowUp(ctx workflow.Context, in contract.ProcessorFollowUpInput) (contract.ProcessorFollowUpResult, error) {
	res := contract.ProcessorFollowUpResult{Processor: in.Processor, Status: contract.FollowUpWaiting, DueAt: workflow.Now(ctx).Add(in.After)}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.ProcessorFollowUpResult, error) { return res, nil }); err != nil {
		return res, err
	}
	ctx = withActivityDefaults(ctx)
	if err := workflow.Sleep(ctx, in.After); err != nil {
		return res, err
	}
	err := checkFollowUp(ctx, in, &res)
	return res, err
}

// ProcessorFollowUps is ProcessorFollowUp for every processor a request's
// erasure settled at once (issue 16: one workflow per request, not one per
// processor): each is checked as ProcessorFollowUp checks it, when its
// retention window has passed. Checks due within followUpsTogether of
// one another are made together, at the latest one's time (a check made
// late is harmless; one made early could find the processor still
// holding data it may keep).
func ProcessorFollowUps(ctx workflow.Context, in contract.ProcessorFollowUpsInput) ([]contract.ProcessorFollowUpResult, error) {
	res := make([]contract.ProcessorFollowUpResult, len(in.Checks))
	for i, c := range in.Checks {
		res[i] = contract.ProcessorFollowUpResult{Processor: c.Processor, Status: contract.FollowUpWaiting, DueAt: c.DueAt}
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() ([]contract.ProcessorFollowUpResult, error) { return res, nil }); err != nil {
		return res, err
	}
	ctx = withActivityDefaults(ctx)
	done := make([]bool, len(in.Checks))
	for {
		batch, at := nextFollowUps(in.Checks, done)
		if len(batch) == 0 {
			return res, nil
		}
		if wait := at.Sub(workflow.Now(ctx)); wait > 0 {
			if err := workflow.Sleep(ctx, wait); err != nil {
				return res, err
			}
		}
		for _, i := range batch {
			done[i] = true
		}
		if err := checkFollowUpsTogether(ctx, in.Checks, res, batch); err != nil {
			return res, err
		}
	}
}

// nextFollowUps is the earliest check not done, with those due within
// followUpsTogether after it, and when to make them: the latest one's due
// time. No batch: every check is done.
func nextFollowUps(checks []contract.ProcessorFollowUpInput, done []bool) (batch []int, at time.Time) {
	first := -1
	for i, c := range checks {
		if !done[i] && (first < 0 || c.DueAt.Before(checks[first].DueAt)) {
			first = i
		}
	}
	if first < 0 {
		return nil, time.Time{}
	}
	at = checks[first].DueAt
	for i, c := range checks {
		if !done[i] && !c.DueAt.After(checks[first].DueAt.Add(followUpsTogether)) {
			batch = append(batch, i)
			if c.DueAt.After(at) {
				at = c.DueAt
			}
		}
	}
	return batch, at
}

// checkFollowUpsTogether makes the checks of batch side by side, each
// result in res at its index; err is only the workflow's cancellation.
func checkFollowUpsTogether(ctx workflow.Context, checks []contract.ProcessorFollowUpInput, res []contract.ProcessorFollowUpResult, batch []int) error {
	wg := workflow.NewWaitGroup(ctx)
	var errs []error
	for _, i := range batch {
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			if err := checkFollowUp(ctx, checks[i], &res[i]); err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait(ctx)
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// followUpsTogether: ProcessorFollowUps makes checks due this close
// together at once.
const followUpsTogether = time.Hour

// checkFollowUp checks, now, that the erasure at in.Processor held (see
// ProcessorFollowUp); err is only the workflow's cancellation.
func checkFollowUp(ctx workflow.Context, in contract.ProcessorFollowUpInput, r *contract.ProcessorFollowUpResult) error {
	res := *r
	defer func() { *r = res }()
	res.CheckedAt = workflow.Now(ctx)
	key := onceKey(in.RequestID, in.Processor, "followup")
	audit := func(action string, detail map[string]string) {
		auditProcessor(ctx, in.RequestID, in.SubjectRef, in.Processor, "system", action, key, detail)
	}
	ask := func(lines ...string) {
		res.Status = contract.FollowUpAskedTeam
		mailProcessorTeam(ctx, in.RequestID, in.Jurisdiction, contract.MailOperatorReminder, key, res.CheckedAt.Add(contract.DefaultProcessorTaskDeadline),
			append([]string{fmt.Sprintf("Processor %s: its retention window has passed; confirm with it that the person's data is erased, and record the answer.", in.Processor)}, lines...))
		audit("processor.confirmation_asked", nil)
	}
	if in.ByHand {
		ask("The erasure there was done by hand.")
		return nil
	}

	var call contract.ProcessorCall
	err := workflow.ExecuteActivity(withProcessorCalls(ctx, in.Processor), atProcessor.ConfirmProcessorErasure,
		contract.ConfirmErasureInput{RequestID: in.RequestID, Processor: in.Processor, Erasure: in.Erasure}).Get(ctx, &call)
	if err != nil {
		if temporal.IsCanceledError(err) {
			return err
		}
		res.Status = contract.FollowUpFailed
		mailProcessorTeam(ctx, in.RequestID, in.Jurisdiction, contract.MailOperatorEscalation, key, res.CheckedAt,
			[]string{fmt.Sprintf("Processor %s: the check that its erasure held failed (%s); check by hand.", in.Processor, processorFailure(err))})
		audit("processor.recheck_failed", map[string]string{"why": processorFailure(err)})
		return nil
	}
	res.Status, res.HTTPStatus = call.Status, call.HTTPStatus
	detail := map[string]string{"status": call.Status, "http_status": fmt.Sprint(call.HTTPStatus), "job_id": call.JobID}
	switch call.Status {
	case contract.ProcessorCallDone, contract.ProcessorCallGone:
		audit("processor.erasure_held", detail)
	case contract.ProcessorCallStillPresent, contract.ProcessorCallPending:
		mailProcessorTeam(ctx, in.RequestID, in.Jurisdiction, contract.MailOperatorEscalation, key, res.CheckedAt,
			[]string{fmt.Sprintf("Processor %s still holds the person's data (or has not finished erasing it) after its retention window: have it erased and record the evidence.", in.Processor)})
		audit("processor.data_still_present", detail)
	default: // needs_operator: the connector cannot check
		ask(call.Steps...)
	}
	return nil
}

// mailProcessorTeam sends the privacy team one templated mail per key (see
// tell); one that cannot go never stops the erasure: the audit trail and
// the query still show the state.
func mailProcessorTeam(ctx workflow.Context, requestID, jurisdiction, template, key string, due time.Time, lines []string) {
	_ = tell(ctx, contract.SendMailInput{RequestID: requestID, Template: template, Key: key, ToPrivacyTeam: true,
		Data: contract.MailData{RequestType: domain.TypeErasure, Jurisdiction: jurisdiction, DueDate: due, TaskDeadline: due, Lines: lines}})
}

// auditProcessor records an event about a processor's erasure in the audit
// trail (request and processor in the detail), until it is written.
func auditProcessor(ctx workflow.Context, requestID, subjectRef, processor, actor, action, key string, detail map[string]string) {
	d := map[string]string{"request_id": requestID, "processor": processor}
	for k, v := range detail {
		if v != "" {
			d[k] = v
		}
	}
	_ = record(ctx, contract.AuditInput{SubjectRef: subjectRef, Actor: actor, Action: action, Detail: d, Key: key})
}

// mergeProcessorCalls keeps what an earlier answer recorded (job id, refs) when a
// later one about the same erasure does not repeat it.
func mergeProcessorCalls(earlier, next contract.ProcessorCall) contract.ProcessorCall {
	if next.JobID == "" {
		next.JobID = earlier.JobID
	}
	if next.Processor == "" {
		next.Processor = earlier.Processor
	}
	refs := slices.Clone(earlier.Refs)
	for _, r := range next.Refs {
		if !slices.Contains(refs, r) {
			refs = append(refs, r)
		}
	}
	next.Refs = refs
	return next
}

// eraseAttempts counts the erase calls behind an answer: the activity's
// attempt on success; on failure one for a failure that is final at once,
// else all of them (only exhausted retries end in a retryable failure).
func eraseAttempts(call contract.ProcessorCall, err error) int {
	switch {
	case err == nil:
		return max(int(call.Attempt), 1)
	case finalAtOnce(err):
		return 1
	}
	return eraseMaxAttempts
}

// finalAtOnce reports whether a failed activity gave up without retrying:
// a non-retryable application error (a 4xx, an unknown processor).
func finalAtOnce(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.NonRetryable()
}

// processorFailure says why a processor call failed, for an operator: the
// connector's message (processor errors carry no personal data).
func processorFailure(err error) string {
	var app *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	msg := err.Error()
	switch {
	case errors.As(err, &app):
		msg = app.Message()
	case errors.As(err, &timeout):
		msg = "the processor did not answer in time"
	}
	if !finalAtOnce(err) {
		msg = fmt.Sprintf("still failing after %d attempts: %s", eraseMaxAttempts, msg)
	}
	return truncateRunes(msg, contract.MaxTaskText)
}

// truncateRunes bounds s to n runes.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
