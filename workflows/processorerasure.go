package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-privacy/lethe/internal/domain"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Erasure at one processor (P5, P7): the third party that received the
// person's data is asked to erase it; what it cannot do becomes an operator
// task with a deadline; and after the processor's own retention window a
// follow-up checks that the erasure held.

// Workflow, activity and update names of the erasure at processors.
const (
	WorkflowEraseAtProcessor  = "EraseAtProcessor"
	WorkflowProcessorFollowUp = "ProcessorFollowUp"

	// ActivityEraseAtProcessor asks the processor to erase the person (it
	// opens the sealed identity).
	ActivityEraseAtProcessor = "EraseAtProcessor"
	// ActivityProcessorStatus asks again about an asynchronous erasure; a
	// call that is safe to repeat.
	ActivityProcessorStatus = "ProcessorErasureStatus"
	// ActivityConfirmErasure re-checks an erasure weeks later from what it
	// recorded, without the person's identity.
	ActivityConfirmErasure = "ConfirmProcessorErasure"

	// UpdateResolveTask carries an operator's TaskResolution to the
	// erasure's open task.
	UpdateResolveTask = "resolve_task"

	// SignalProcessorCallback tells a pending erasure that its processor
	// called back (ProcessorCallback): the erasure asks about its status
	// at once instead of at the next poll.
	SignalProcessorCallback = "processor_callback"
)

// ProcessorCallback is what a processor's verified status callback says,
// as the API signals it: the status it reported, no personal data. The
// erasure only takes it as a cue: what counts is the status it then asks
// for itself.
type ProcessorCallback struct {
	Status string `json:"status"` // the processor's request_status, e.g. "completed"
}

// ProcessorErasureActivityNames lists the activities of this file, for the
// worker's registry and its contract test.
func ProcessorErasureActivityNames() []string {
	return []string{ActivityEraseAtProcessor, ActivityProcessorStatus, ActivityConfirmErasure}
}

// ProcessorErasureWorkflowID is the erasure of one request at one processor.
func ProcessorErasureWorkflowID(requestID, processor string) string {
	return requestID + "-erasure-" + processor
}

// ProcessorFollowUpWorkflowID is the later check of that erasure.
func ProcessorFollowUpWorkflowID(requestID, processor string) string {
	return requestID + "-followup-" + processor
}

// Defaults of ProcessorErasureInput's durations.
const (
	DefaultProcessorTaskDeadline = 7 * 24 * time.Hour
	DefaultProcessorFollowUp     = 30 * 24 * time.Hour
	DefaultProcessorPollEvery    = time.Hour
	DefaultProcessorPollFor      = 7 * 24 * time.Hour
)

// ProcessorErasureInput starts the erasure of one person at one processor.
type ProcessorErasureInput struct {
	RequestID    string
	SubjectRef   string
	Identity     []byte // sealed: email and user id; only the activities open it
	Processor    string // the connector's name in the data map
	Jurisdiction string // for the privacy team's mails
	// TaskDeadline is how long an operator task may stay open before it is
	// escalated (DefaultProcessorTaskDeadline when zero; an expedited
	// erasure passes a short one).
	TaskDeadline time.Duration
	// FollowUpAfter is the processor's retention window: when the
	// follow-up checks that the erasure held (DefaultProcessorFollowUp).
	FollowUpAfter time.Duration
	// PollEvery is how often an asynchronous erasure is asked about
	// (DefaultProcessorPollEvery); PollFor how long before an operator is
	// asked to look (DefaultProcessorPollFor).
	PollEvery time.Duration
	PollFor   time.Duration
}

func (in ProcessorErasureInput) withDefaults() ProcessorErasureInput {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&in.TaskDeadline, DefaultProcessorTaskDeadline)
	def(&in.FollowUpAfter, DefaultProcessorFollowUp)
	def(&in.PollEvery, DefaultProcessorPollEvery)
	def(&in.PollFor, DefaultProcessorPollFor)
	return in
}

// ProcessorRef is a processor-side id kept as evidence, such as
// {"customer", "cus_123"}. Never personal data.
type ProcessorRef struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// What a processor answered (ProcessorCall.Status): the connector's status.
const (
	ProcessorCallDone          = "done"
	ProcessorCallGone          = "already_gone"
	ProcessorCallPending       = "pending_async"
	ProcessorCallNeedsOperator = "needs_operator"
	ProcessorCallStillPresent  = "still_present"
)

// ProcessorCall is one answer of a processor, as evidence: statuses and
// processor ids, no personal data.
type ProcessorCall struct {
	Processor  string         `json:"processor"`
	Status     string         `json:"status"`
	HTTPStatus int            `json:"http_status,omitempty"`
	JobID      string         `json:"job_id,omitempty"`
	Refs       []ProcessorRef `json:"refs,omitempty"`
	Steps      []string       `json:"steps,omitempty"` // what an operator must do (needs_operator)
	Note       string         `json:"note,omitempty"`
	Attempt    int32          `json:"attempt,omitempty"` // the activity attempt that got this answer
}

// ProcessorCallInput asks a processor to erase the person, or (Earlier set)
// how an asynchronous erasure is going.
type ProcessorCallInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
	Processor  string
	Earlier    *ProcessorCall
}

// ConfirmErasureInput re-checks an erasure from what it recorded; it
// carries no identity, which is shredded by then.
type ConfirmErasureInput struct {
	RequestID string
	Processor string
	Erasure   ProcessorCall
}

// Where an erasure at a processor stands (ProcessorErasureView.Status), and
// how it ended (ProcessorErasureResult.Status).
const (
	ProcessorErasing       = "erasing"
	ProcessorWaiting       = "pending_async"
	ProcessorNeedsOperator = "needs_operator"

	ProcessorConfirmed   = "confirmed"    // the processor erased, and said so
	ProcessorAlreadyGone = "already_gone" // nothing was left to erase
	ProcessorDoneByHand  = "done_by_hand" // an operator erased it, with evidence
	ProcessorSkipped     = "skipped"      // an operator left it, with a reason
)

// ProcessorTask is an operator task: what the processor could not do, the
// steps to take, and by when.
type ProcessorTask struct {
	Seq         int       `json:"seq"`
	Reason      string    `json:"reason"`
	Steps       []string  `json:"steps,omitempty"`
	OpenedAt    time.Time `json:"opened_at"`
	DueAt       time.Time `json:"due_at"`
	EscalatedAt time.Time `json:"escalated_at,omitzero"`
}

// What an operator may do about a task.
const (
	TaskRetry = "retry" // ask the processor again
	TaskSkip  = "skip"  // leave this processor out, with a reason
	TaskDone  = "done"  // erased by hand, with evidence
)

// TaskResolution is an operator's decision about an open task.
type TaskResolution struct {
	Action   string // TaskRetry, TaskSkip or TaskDone
	Reason   string // required to skip
	Evidence string // what was done by hand (a ticket, a confirmation number); done needs it or a reason
	Actor    string // "operator:<key id>"
}

// MaxTaskText bounds a resolution's reason and evidence.
const MaxTaskText = 500

// Validate says what is wrong with r, in words an operator can act on
// (they never repeat the values).
func (r TaskResolution) Validate() error {
	switch r.Action {
	case TaskRetry, TaskSkip, TaskDone:
	default:
		return errors.New("action: retry, skip or done")
	}
	for _, f := range [...]struct{ name, text string }{{"reason", r.Reason}, {"evidence", r.Evidence}} {
		if utf8.RuneCountInString(f.text) > MaxTaskText || strings.Contains(f.text, "@") {
			return fmt.Errorf("%s: at most %d characters, naming nobody (no '@')", f.name, MaxTaskText)
		}
	}
	switch {
	case r.Action == TaskSkip && strings.TrimSpace(r.Reason) == "":
		return errors.New("a reason is required to skip a processor")
	case r.Action == TaskDone && strings.TrimSpace(r.Evidence) == "" && strings.TrimSpace(r.Reason) == "":
		return errors.New("say what was done: evidence or a reason is required to mark a task done")
	}
	return nil
}

// ProcessorErasureView is the erasure's state (QueryProgress).
type ProcessorErasureView struct {
	RequestID string                  `json:"request_id"`
	Processor string                  `json:"processor"`
	Status    string                  `json:"status"`
	Attempts  int                     `json:"attempts"`
	Task      *ProcessorTask          `json:"task,omitempty"` // the open task, if any
	Result    *ProcessorErasureResult `json:"result,omitempty"`
}

// ProcessorErasureResult is how the erasure at a processor ended, as
// evidence for the receipt. No personal data.
type ProcessorErasureResult struct {
	Processor   string         `json:"processor"`
	Status      string         `json:"status"` // confirmed, already_gone, done_by_hand or skipped
	HTTPStatus  int            `json:"http_status,omitempty"`
	JobID       string         `json:"job_id,omitempty"`
	Refs        []ProcessorRef `json:"refs,omitempty"`
	Note        string         `json:"note,omitempty"`
	Attempts    int            `json:"attempts"` // erase calls made, Temporal's retries included
	ConfirmedAt time.Time      `json:"confirmed_at"`
	Reason      string         `json:"reason,omitempty"`   // skipped (or done by hand)
	Evidence    string         `json:"evidence,omitempty"` // done by hand
	Actor       string         `json:"actor,omitempty"`    // who resolved the last task
	FollowUpAt  time.Time      `json:"follow_up_at,omitzero"`
}

// ProcessorFollowUpInput checks, after the processor's retention window,
// that an erasure held.
type ProcessorFollowUpInput struct {
	RequestID    string
	SubjectRef   string
	Processor    string
	Jurisdiction string
	After        time.Duration
	Erasure      ProcessorCall // what the erasure recorded: the only thing to check by
	ByHand       bool          // erased by an operator: a person is asked to confirm
}

// ProcessorFollowUpResult is what the follow-up found.
type ProcessorFollowUpResult struct {
	Processor  string    `json:"processor"`
	Status     string    `json:"status"` // a ProcessorCall status, or FollowUpAskedTeam / FollowUpFailed
	HTTPStatus int       `json:"http_status,omitempty"`
	CheckedAt  time.Time `json:"checked_at"`
	DueAt      time.Time `json:"due_at"` // when the check is (or was) made
}

// Follow-up statuses besides the processor's own answers.
const (
	FollowUpWaiting   = "waiting"
	FollowUpAskedTeam = "asked_team" // the privacy team was asked to confirm
	FollowUpFailed    = "check_failed"
)

// eraseCallOptions: 429 and 5xx are retried with backoff, after the
// processor's Retry-After when it gives one (the activity sets
// NextRetryDelay); 4xx fail at once as needs-operator errors.
const eraseMaxAttempts = 12

func withProcessorCalls(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
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
	in         ProcessorErasureInput
	view       ProcessorErasureView
	resolution *TaskResolution // the open task's resolution, once given
	tasks      int             // tasks opened so far (numbers them)
	actor      string          // who resolved the last task
	byHand     bool            // an operator marked the erasure done
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
func EraseAtProcessor(ctx workflow.Context, in ProcessorErasureInput) (ProcessorErasureResult, error) {
	if in.Processor == "" || in.RequestID == "" {
		return ProcessorErasureResult{}, temporal.NewNonRetryableApplicationError("request id and processor are required", RefusedInput, nil)
	}
	e := &processorErasure{in: in.withDefaults()}
	e.view = ProcessorErasureView{RequestID: in.RequestID, Processor: in.Processor, Status: ProcessorErasing}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (ProcessorErasureView, error) { return e.view, nil }); err != nil {
		return ProcessorErasureResult{}, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateResolveTask, e.resolve,
		workflow.UpdateHandlerOptions{Validator: e.validate}); err != nil {
		return ProcessorErasureResult{}, err
	}
	ctx = withActivityDefaults(ctx)

	res, err := e.run(ctx)
	if err != nil {
		return res, err
	}
	res.Processor, res.Attempts, res.Actor = in.Processor, e.view.Attempts, e.actor
	res.ConfirmedAt = workflow.Now(ctx)
	if res.Status == ProcessorConfirmed || res.Status == ProcessorDoneByHand {
		if err := e.startFollowUp(ctx, &res); err != nil {
			return res, fmt.Errorf("start the follow-up at %s: %w", in.Processor, err)
		}
	}
	e.view.Status, e.view.Result = res.Status, &res
	return res, nil
}

// run asks the processor until the erasure is settled, by the processor or
// by an operator.
func (e *processorErasure) run(ctx workflow.Context) (ProcessorErasureResult, error) {
	for {
		call, problem, err := e.erase(ctx)
		if err != nil {
			return ProcessorErasureResult{}, err
		}
		if problem == "" {
			status := ProcessorConfirmed
			if call.Status == ProcessorCallGone {
				status = ProcessorAlreadyGone
			}
			return ProcessorErasureResult{Status: status, HTTPStatus: call.HTTPStatus, JobID: call.JobID,
				Refs: call.Refs, Note: call.Note}, nil
		}
		d, err := e.task(ctx, problem, call.Steps)
		if err != nil {
			return ProcessorErasureResult{}, err
		}
		switch d.Action {
		case TaskSkip:
			return ProcessorErasureResult{Status: ProcessorSkipped, Reason: d.Reason}, nil
		case TaskDone:
			e.byHand = true
			return ProcessorErasureResult{Status: ProcessorDoneByHand, Evidence: d.Evidence, Reason: d.Reason,
				JobID: call.JobID, Refs: call.Refs}, nil
		}
		// TaskRetry: ask the processor again.
	}
}

// erase makes one erase call (polling when the processor works
// asynchronously). problem says why an operator must look; "" when the
// answer is done or already gone. err is only the workflow's cancellation.
func (e *processorErasure) erase(ctx workflow.Context) (call ProcessorCall, problem string, err error) {
	e.view.Status = ProcessorErasing
	err = workflow.ExecuteActivity(withProcessorCalls(ctx), ActivityEraseAtProcessor, e.callInput(nil)).Get(ctx, &call)
	e.view.Attempts += eraseAttempts(call, err)
	if err != nil {
		if temporal.IsCanceledError(err) {
			return call, "", err
		}
		return ProcessorCall{}, processorFailure(err), nil
	}
	switch call.Status {
	case ProcessorCallDone, ProcessorCallGone:
		return call, "", nil
	case ProcessorCallPending:
		e.findableByJob(ctx, call.JobID)
		return e.poll(ctx, call)
	case ProcessorCallNeedsOperator:
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
	if err := workflow.UpsertTypedSearchAttributes(ctx, ProcessorJobKey.ValueSet(jobID)); err != nil {
		workflow.GetLogger(ctx).Warn("processor job id not set as a search attribute", "processor", e.in.Processor, "error", err)
	}
}

// poll asks about an asynchronous erasure every PollEvery, for at most
// PollFor, and at once when the processor calls back
// (SignalProcessorCallback). A processor that finishes makes the erasure
// confirmed.
func (e *processorErasure) poll(ctx workflow.Context, call ProcessorCall) (ProcessorCall, string, error) {
	e.view.Status = ProcessorWaiting
	callbacks := workflow.GetSignalChannel(ctx, SignalProcessorCallback)
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
		var next ProcessorCall
		err := workflow.ExecuteActivity(withProcessorCalls(ctx), ActivityProcessorStatus, e.callInput(&call)).Get(ctx, &next)
		if err != nil {
			if temporal.IsCanceledError(err) {
				return call, "", err
			}
			return call, processorFailure(err), nil
		}
		next = mergeProcessorCalls(call, next)
		switch next.Status {
		case ProcessorCallPending, ProcessorCallStillPresent:
			next.Status = ProcessorCallPending
			call = next
		case ProcessorCallDone, ProcessorCallGone:
			next.Status = ProcessorCallDone // it was there, and the processor erased it
			return next, "", nil
		case ProcessorCallNeedsOperator:
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
	var cb ProcessorCallback
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
func (e *processorErasure) task(ctx workflow.Context, reason string, steps []string) (TaskResolution, error) {
	now := workflow.Now(ctx)
	e.tasks++
	t := &ProcessorTask{Seq: e.tasks, Reason: truncateRunes(reason, MaxTaskText), Steps: slices.Clone(steps),
		OpenedAt: now, DueAt: now.Add(e.in.TaskDeadline)}
	e.view.Task, e.view.Status, e.resolution = t, ProcessorNeedsOperator, nil
	e.listTask(ctx, TaskDueAtKey.ValueSet(t.DueAt))
	key := fmt.Sprintf("%s:%s:task-%d", e.in.RequestID, e.in.Processor, t.Seq)
	e.audit(ctx, "system", "processor.task_opened", key+":opened", map[string]string{"due_at": t.DueAt.Format(time.RFC3339)})
	e.mailTeam(ctx, MailOperatorReminder, key, t.DueAt, e.taskLines(t))

	resolved := func() bool { return e.resolution != nil }
	ok := resolved()
	if wait := t.DueAt.Sub(workflow.Now(ctx)); !ok && wait > 0 {
		var err error
		if ok, err = workflow.AwaitWithTimeout(ctx, wait, resolved); err != nil {
			return TaskResolution{}, err
		}
	}
	if !ok {
		t.EscalatedAt = workflow.Now(ctx)
		e.audit(ctx, "system", "processor.task_overdue", key+":overdue", map[string]string{"due_at": t.DueAt.Format(time.RFC3339)})
		e.mailTeam(ctx, MailOperatorEscalation, key+":escalation", t.DueAt, e.taskLines(t))
		if err := workflow.Await(ctx, resolved); err != nil {
			return TaskResolution{}, err
		}
	}
	d := *e.resolution
	e.actor = d.Actor
	detail := map[string]string{"decision": d.Action, "reason": d.Reason, "evidence": d.Evidence}
	e.audit(ctx, d.Actor, "processor.task_resolved", key+":resolved", detail)
	e.view.Task, e.view.Status = nil, ProcessorErasing
	e.listTask(ctx, TaskDueAtKey.ValueUnset())
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
func (e *processorErasure) validate(_ workflow.Context, d TaskResolution) error {
	if e.view.Task == nil || e.resolution != nil {
		return temporal.NewApplicationError("no operator task is open for the erasure at "+e.in.Processor, RefusedState)
	}
	if err := d.Validate(); err != nil {
		return temporal.NewApplicationError(err.Error(), RefusedInput)
	}
	return nil
}

// resolve records the resolution; the waiting task acts on it.
func (e *processorErasure) resolve(_ workflow.Context, d TaskResolution) error {
	if d.Actor == "" {
		d.Actor = "operator"
	}
	d.Reason, d.Evidence = strings.TrimSpace(d.Reason), strings.TrimSpace(d.Evidence)
	e.resolution = &d
	return nil
}

func (e *processorErasure) callInput(earlier *ProcessorCall) ProcessorCallInput {
	return ProcessorCallInput{RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Identity: e.in.Identity,
		Processor: e.in.Processor, Earlier: earlier}
}

func (e *processorErasure) taskLines(t *ProcessorTask) []string {
	lines := []string{fmt.Sprintf("Erasure at processor %s needs an operator: %s", e.in.Processor, t.Reason)}
	for _, s := range t.Steps {
		lines = append(lines, "Step: "+s)
	}
	return append(lines, fmt.Sprintf(`Resolve it: POST /v1/requests/%s/processors/%s/task with {"action": "retry"}, {"action": "skip", "reason": …} or {"action": "done", "evidence": …}`,
		e.in.RequestID, e.in.Processor))
}

// startFollowUp starts the check after the retention window, as a child
// that outlives this workflow.
func (e *processorErasure) startFollowUp(ctx workflow.Context, res *ProcessorErasureResult) error {
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        ProcessorFollowUpWorkflowID(e.in.RequestID, e.in.Processor),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	f := workflow.ExecuteChildWorkflow(child, WorkflowProcessorFollowUp, ProcessorFollowUpInput{
		RequestID: e.in.RequestID, SubjectRef: e.in.SubjectRef, Processor: e.in.Processor, Jurisdiction: e.in.Jurisdiction,
		After:   e.in.FollowUpAfter,
		Erasure: ProcessorCall{Processor: e.in.Processor, Status: ProcessorCallDone, HTTPStatus: res.HTTPStatus, JobID: res.JobID, Refs: res.Refs},
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
func ProcessorFollowUp(ctx workflow.Context, in ProcessorFollowUpInput) (ProcessorFollowUpResult, error) {
	res := ProcessorFollowUpResult{Processor: in.Processor, Status: FollowUpWaiting, DueAt: workflow.Now(ctx).Add(in.After)}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (ProcessorFollowUpResult, error) { return res, nil }); err != nil {
		return res, err
	}
	ctx = withActivityDefaults(ctx)
	if err := workflow.Sleep(ctx, in.After); err != nil {
		return res, err
	}
	res.CheckedAt = workflow.Now(ctx)
	key := fmt.Sprintf("%s:%s:followup", in.RequestID, in.Processor)
	audit := func(action string, detail map[string]string) {
		auditProcessor(ctx, in.RequestID, in.SubjectRef, in.Processor, "system", action, key, detail)
	}
	ask := func(lines ...string) {
		res.Status = FollowUpAskedTeam
		mailProcessorTeam(ctx, in.RequestID, in.Jurisdiction, MailOperatorReminder, key, res.CheckedAt.Add(DefaultProcessorTaskDeadline),
			append([]string{fmt.Sprintf("Processor %s: its retention window has passed; confirm with it that the person's data is erased, and record the answer.", in.Processor)}, lines...))
		audit("processor.confirmation_asked", nil)
	}
	if in.ByHand {
		ask("The erasure there was done by hand.")
		return res, nil
	}

	var call ProcessorCall
	err := workflow.ExecuteActivity(withProcessorCalls(ctx), ActivityConfirmErasure,
		ConfirmErasureInput{RequestID: in.RequestID, Processor: in.Processor, Erasure: in.Erasure}).Get(ctx, &call)
	if err != nil {
		if temporal.IsCanceledError(err) {
			return res, err
		}
		res.Status = FollowUpFailed
		mailProcessorTeam(ctx, in.RequestID, in.Jurisdiction, MailOperatorEscalation, key, res.CheckedAt,
			[]string{fmt.Sprintf("Processor %s: the check that its erasure held failed (%s); check by hand.", in.Processor, processorFailure(err))})
		audit("processor.recheck_failed", map[string]string{"why": processorFailure(err)})
		return res, nil
	}
	res.Status, res.HTTPStatus = call.Status, call.HTTPStatus
	detail := map[string]string{"status": call.Status, "http_status": fmt.Sprint(call.HTTPStatus), "job_id": call.JobID}
	switch call.Status {
	case ProcessorCallDone, ProcessorCallGone:
		audit("processor.erasure_held", detail)
	case ProcessorCallStillPresent, ProcessorCallPending:
		mailProcessorTeam(ctx, in.RequestID, in.Jurisdiction, MailOperatorEscalation, key, res.CheckedAt,
			[]string{fmt.Sprintf("Processor %s still holds the person's data (or has not finished erasing it) after its retention window: have it erased and record the evidence.", in.Processor)})
		audit("processor.data_still_present", detail)
	default: // needs_operator: the connector cannot check
		ask(call.Steps...)
	}
	return res, nil
}

// mailProcessorTeam sends the privacy team one templated mail per key; a failure is
// logged, never fatal (the audit trail and the query still show the state).
func mailProcessorTeam(ctx workflow.Context, requestID, jurisdiction, template, key string, due time.Time, lines []string) {
	in := SendMailInput{RequestID: requestID, Template: template, Key: key, ToPrivacyTeam: true,
		Data: MailData{RequestType: domain.TypeErasure, Jurisdiction: jurisdiction, DueDate: due, TaskDeadline: due, Lines: lines}}
	if err := workflow.ExecuteActivity(ctx, ActivitySendMail, in).Get(ctx, nil); err != nil && !temporal.IsCanceledError(err) {
		workflow.GetLogger(ctx).Warn("privacy team mail not sent", "template", template, "key", key, "error", err)
	}
}

// auditProcessor records an event about a processor's erasure in the audit
// trail (request and processor in the detail); a failure is logged.
func auditProcessor(ctx workflow.Context, requestID, subjectRef, processor, actor, action, key string, detail map[string]string) {
	d := map[string]string{"request_id": requestID, "processor": processor}
	for k, v := range detail {
		if v != "" {
			d[k] = v
		}
	}
	in := AuditInput{SubjectRef: subjectRef, Actor: actor, Action: action, Detail: d, Key: key}
	if err := workflow.ExecuteActivity(ctx, ActivityAudit, in).Get(ctx, nil); err != nil && !temporal.IsCanceledError(err) {
		workflow.GetLogger(ctx).Warn("audit entry not written", "action", action, "key", key, "error", err)
	}
}

// mergeProcessorCalls keeps what an earlier answer recorded (job id, refs) when a
// later one about the same erasure does not repeat it.
func mergeProcessorCalls(earlier, next ProcessorCall) ProcessorCall {
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
func eraseAttempts(call ProcessorCall, err error) int {
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
	return truncateRunes(msg, MaxTaskText)
}

// truncateRunes bounds s to n runes.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
