package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Recording and telling: the one way every workflow writes the audit trail
// and mails the person or the privacy team.
//
//   - Each audit entry and each mail has an idempotency key, made by
//     onceKey: the scope it belongs to (a request, an incident, an
//     account's deactivation), the event, and an ordinal when the event can
//     happen more than once. The activity writes or sends at most once per
//     key, however often it is retried or replayed.
//   - An audit entry is retried until it is written (record): Temporal
//     retries a passing failure for as long as it lasts; a failure the
//     activity calls permanent (a refused entry, a missing table) is told to
//     the privacy team once and tried again every auditRetryEvery. An audit
//     trail with a hole is no proof.
//   - A mail that cannot be sent for good (no address, the person's
//     identity shredded, the address refused) is never dropped silently
//     (tell): the audit trail records mail.not_sent, and a mail meant for
//     the person becomes a task for the privacy team, who can reach them
//     another way.

// recordAndTell is the version check of this policy: a workflow whose
// history failed to record or tell before it keeps the behaviour it had
// (the caller got the error; a request recorded mail.not_sent and went
// on; others logged), so that it still replays.
const recordAndTell = "record-and-tell"

func policyBefore(ctx workflow.Context) bool {
	if earlierChecksPassed(ctx) {
		return false
	}
	return workflow.GetVersion(ctx, recordAndTell, workflow.DefaultVersion, 1) == workflow.DefaultVersion
}

// auditRetryEvery is how long a workflow waits before trying again to write
// an audit entry that failed for good.
const auditRetryEvery = time.Hour

// onceKey is the idempotency key of an audit entry or a mail:
// <scope>:<event>[:<ordinal>…], e.g. "req_…:completed:0".
func onceKey(scope string, parts ...any) string {
	var b strings.Builder
	b.WriteString(scope)
	for _, p := range parts {
		b.WriteByte(':')
		fmt.Fprint(&b, p)
	}
	return b.String()
}

// record appends an entry to the audit trail, once per in.Key, and does not
// give up until it is written. It returns an error only when the workflow
// is cancelled.
func record(ctx workflow.Context, in contract.AuditInput) error {
	return recordLater(ctx, in)()
}

// recordLater starts appending an entry to the audit trail and returns the
// wait for it, which keeps record's promise: the workflow does other work
// (starts children) while the entry is written.
func recordLater(ctx workflow.Context, in contract.AuditInput) func() error {
	if writesLocally(ctx) {
		appendAudit := func(ctx workflow.Context) error {
			return workflow.ExecuteLocalActivity(withLocalWrites(ctx), appendAuditActivity, in).Get(ctx, nil)
		}
		first := workflow.ExecuteLocalActivity(withLocalWrites(ctx), appendAuditActivity, in)
		return func() error {
			return untilWritten(ctx, in.RequestID, in.Action, in.Key, first.Get(ctx, nil), appendAudit)
		}
	}
	appendAudit := func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(ctx, lifecycle.AppendAudit, in).Get(ctx, nil)
	}
	first := workflow.ExecuteActivity(ctx, lifecycle.AppendAudit, in)
	return func() error {
		return untilWritten(ctx, in.RequestID, in.Action, in.Key, first.Get(ctx, nil), appendAudit)
	}
}

// localWrites is the version check of issue 16's local writes: an audit
// entry and a request's status are quick writes to Lethe's own database,
// made as local activities (a marker in the workflow's history, no
// activity task for the engine to dispatch) instead of activities.
// Workflows that wrote one before keep writing them as activities.
const localWrites = "local-writes"

func writesLocally(ctx workflow.Context) bool {
	if earlierChecksPassed(ctx) {
		return true
	}
	return workflow.GetVersion(ctx, localWrites, workflow.DefaultVersion, 1) == 1
}

// The local activities, by the names the worker registers the activities
// under (a local activity given a method of the nil pointers of
// activities.go would be called on nil; by name, the worker's is).
const (
	appendAuditActivity      = "AppendAudit"
	recordTransitionActivity = "RecordTransition"
	shredSubjectActivity     = "ShredSubject"
)

// withLocalWrites are the options of a local write: it is retried with
// backoff for as long as it fails (untilWritten tells the team of one
// that fails for good), each attempt bounded well within a workflow task.
func withLocalWrites(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	})
}

// untilWritten keeps trying write while its last attempt (err) failed: the
// privacy team is told once, and write runs again every auditRetryEvery.
// A cancelled workflow stops trying.
func untilWritten(ctx workflow.Context, requestID, action, key string, err error, write func(workflow.Context) error) error {
	if err == nil || temporal.IsCanceledError(err) || ctx.Err() != nil || policyBefore(ctx) {
		return err
	}
	for told := false; err != nil; err = write(ctx) {
		if temporal.IsCanceledError(err) || ctx.Err() != nil {
			return err
		}
		workflow.GetLogger(ctx).Error("audit entry not written; trying again later", "action", action, "key", key, "error", err)
		if !told {
			told = true
			// Not through tell: a mail that fails here must not write to
			// the audit trail that is failing.
			task := teamTask(requestID, onceKey(key, "audit-failed"),
				fmt.Sprintf("The audit entry %s could not be written (%s). Lethe tries again every %s until it is: fix the cause the worker's log names.",
					action, failureType(err), auditRetryEvery))
			if err := sendMail(ctx, task); err != nil {
				workflow.GetLogger(ctx).Error("could not tell the privacy team", "key", task.Key, "error", err)
			}
		}
		if err := workflow.Sleep(ctx, auditRetryEvery); err != nil {
			return err
		}
	}
	return nil
}

// tell sends one templated mail, once per in.Key. A mail that can never go
// is recorded as mail.not_sent; if it was meant for the person, the privacy
// team gets a task to reach them another way. It returns an error only when
// the workflow is cancelled.
func tell(ctx workflow.Context, in contract.SendMailInput) error {
	return tellRecording(ctx, in, false, func(detail map[string]string) error {
		return record(ctx, contract.AuditInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Actor: "system", Action: "mail.not_sent",
			Detail: detail, Key: onceKey(in.Key, "not_sent")})
	})
}

// tellRecording is tell for a workflow that keeps its own audit trail (a
// request records each event with its status): notSent records the
// mail.not_sent entry. ownTrail says the workflow recorded it before this
// policy too (see recordAndTell).
func tellRecording(ctx workflow.Context, in contract.SendMailInput, ownTrail bool, notSent func(detail map[string]string) error) error {
	err := sendMail(ctx, in)
	if err == nil || temporal.IsCanceledError(err) || ctx.Err() != nil {
		return err
	}
	why := failureType(err)
	if policyBefore(ctx) {
		workflow.GetLogger(ctx).Error("mail not sent", "template", in.Template, "key", in.Key, "why", why)
		if ownTrail {
			return notSent(map[string]string{"template": in.Template, "why": why})
		}
		return nil
	}
	to := "person"
	if in.ToPrivacyTeam {
		to = "privacy_team"
	}
	if err := notSent(map[string]string{"template": in.Template, "why": why, "to": to}); err != nil {
		return err
	}
	if in.ToPrivacyTeam {
		// There is no one else to tell: the audit trail and the log keep it.
		workflow.GetLogger(ctx).Error("could not tell the privacy team", "template", in.Template, "key", in.Key, "error", err)
		return nil
	}
	task := teamTask(in.RequestID, onceKey(in.Key, "task"),
		fmt.Sprintf("The %q mail to the person could not be sent (%s): reach them another way, and record what you told them.", in.Template, why))
	task.Data.DueDate = in.Data.DueDate
	if err := sendMail(ctx, task); err != nil && !temporal.IsCanceledError(err) {
		workflow.GetLogger(ctx).Error("could not tell the privacy team", "template", task.Template, "key", task.Key, "error", err)
	}
	return nil
}

// teamTask is a mail giving the privacy team a task Lethe cannot do itself.
func teamTask(requestID, key, line string) contract.SendMailInput {
	return contract.SendMailInput{RequestID: requestID, Template: contract.MailOperatorTask, Key: key, ToPrivacyTeam: true,
		Data: contract.MailData{Lines: []string{line}}}
}

func sendMail(ctx workflow.Context, in contract.SendMailInput) error {
	return workflow.ExecuteActivity(ctx, lifecycle.SendRequestMail, in).Get(ctx, nil)
}

// failureType names why an activity failed, without its message (which may
// quote a value): the error type the activity classified it as.
func failureType(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() != "" {
		return app.Type()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "Timeout"
	}
	return "Error"
}
