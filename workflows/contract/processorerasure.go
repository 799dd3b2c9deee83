package contract

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Workflow and update names of the erasure at processors.
const (
	WorkflowEraseAtProcessor  = "EraseAtProcessor"
	WorkflowProcessorFollowUp = "ProcessorFollowUp"
	// WorkflowProcessorFollowUps is the later check, at every processor
	// that answered an erasure done at once, in one workflow per request.
	WorkflowProcessorFollowUps = "ProcessorFollowUps"

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

// ProcessorTaskQueue is the task queue a processor's calls run on, beside
// the worker's own queue base: its rate is the processor's rate limit,
// which the Temporal server enforces across every worker.
func ProcessorTaskQueue(base, processor string) string {
	return base + "-processor-" + processor
}

// ProcessorErasureWorkflowID is the erasure of one request at one processor.
func ProcessorErasureWorkflowID(requestID, processor string) string {
	return requestID + "-erasure-" + processor
}

// ProcessorFollowUpWorkflowID is the later check of that erasure.
func ProcessorFollowUpWorkflowID(requestID, processor string) string {
	return requestID + "-followup-" + processor
}

// ProcessorFollowUpsWorkflowID is the later check of the erasures a
// request settled at its processors at once (ProcessorFollowUps).
func ProcessorFollowUpsWorkflowID(requestID string) string {
	return requestID + "-followup"
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
	IdentityKey  string `json:",omitempty"` // Identity's key when not SubjectRef's (a bulk page's)
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
	// First is the answer to the erase call the erasure made itself
	// (AskProcessor), when it did not settle the erasure there: the
	// workflow goes on from it instead of asking again. Nil: it asks.
	First *ProcessorFirstAnswer `json:",omitempty"`
}

// ProcessorFirstAnswer is how the erasure's own first erase call at a
// processor went: its answer, or why it failed (for an operator).
type ProcessorFirstAnswer struct {
	Call     ProcessorCall
	Failure  string
	Attempts int // erase calls made, Temporal's retries included
}

// ProcessorAnswer is AskProcessor's: the erasure at the processor settled
// (done, already gone, or ended in an earlier attempt of the request's
// erasure), or the processor's answer when it is not.
type ProcessorAnswer struct {
	Settled  bool
	Result   ProcessorErasureResult // when Settled
	Earlier  bool                   // Result was recorded by an earlier attempt
	Recorded bool                   // Result is kept for a retry; false: the workflow records it
	Call     ProcessorCall          // the processor's answer, when not Settled
}

func (in ProcessorErasureInput) WithDefaults() ProcessorErasureInput {
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
	// ProcessorCallRefused: a batch job could not erase this person (its
	// Note says why); they are asked again on their own.
	ProcessorCallRefused = "refused"
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
	// IdentityKey names the key Identity is sealed under when it is not
	// the person's own (a bulk erasure seals its page under the page's).
	IdentityKey string `json:",omitempty"`
	Processor   string
	Earlier     *ProcessorCall
	// FollowUpAfter is the processor's retention window (AskProcessor
	// records when the follow-up is due).
	FollowUpAfter time.Duration `json:",omitempty"`
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

// ProcessorResultRecord keeps how the erasure at a processor ended, so
// that a retried request does not ask the processor again.
type ProcessorResultRecord struct {
	RequestID string
	Result    ProcessorErasureResult
}

// EarlierProcessorInput asks how an earlier attempt of a request's erasure
// ended at a processor.
type EarlierProcessorInput struct {
	RequestID, Processor string
}

// EarlierProcessorResult is that ending; Found is false when no attempt
// recorded one (it ran before results were recorded).
type EarlierProcessorResult struct {
	Found  bool
	Result ProcessorErasureResult
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
	// DueAt is when the check is due, in ProcessorFollowUps (which checks
	// several processors); ProcessorFollowUp waits After from its start.
	DueAt time.Time `json:",omitzero"`
}

// ProcessorFollowUpsInput checks the erasures of one request at several
// processors, each when its retention window has passed (its DueAt).
type ProcessorFollowUpsInput struct {
	RequestID string
	Checks    []ProcessorFollowUpInput
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
