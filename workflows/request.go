package workflows

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// changes applies rectifications and consent changes (a nil pointer: see
// activities.go).
var changes *activities.Changes

// request is the state of one PrivacyRequest run.
type request struct {
	in       contract.RequestInput
	view     contract.RequestView
	seq      int // audit sequence: one entry per step, idempotent across retries
	codeHash string
	codeSeq  int
	issuing  bool // a code is being mailed: it may arrive before its hash is recorded
	lastCode time.Time
	attempts int
	verified bool
	approved bool
	decided  string // denied or cancelled while waiting
	retry    string // who asked to retry the work that failed
	done     []string
	extended workflow.Channel    // the deadline moved: re-arm reminders
	link     contract.LinkResult // an export's download link, for the completion mail
	receipt  *contract.Receipt   // an erasure's receipt, for the completion mail
	// erasure is the progress of the erasure the request runs itself
	// (leanRequest); nil while none has started, and for requests whose
	// erasure is an EraseSubject workflow.
	erasure  *contract.ErasureProgress
	lean     bool            // leanRequest
	erasures int             // the erasure's attempts run in the request (leanRequest)
	mailed   workflow.Future // the receipt's mail, sent beside the work (leanRequest)
}

// leanRequest is the version check of issue 16's leaner request:
//
//   - a request the backend vouches for (PreVerified) waits for no code, so
//     its work starts while the receipt is mailed; no later mail to the
//     person goes before it;
//   - an erasure runs inside the request instead of an EraseSubject
//     workflow: plan and ledger in one activity, the database and S3
//     erased and verified in one more (EraseOwnSystems), the person's key
//     destroyed by a local activity.
//
// Requests that started before keep mailing the receipt first and their
// EraseSubject child.
//
// Version 2 (leanRequestAfterErasure): what outlives the request's erasure
// (the follow-ups at processors, the backups watch, each hold's end) is
// one AfterErasure workflow, not one workflow each. Requests that took
// version 1 keep starting those.
const leanRequest = "lean-request"

// leanRequestAfterErasure is leanRequest's version 2.
const leanRequestAfterErasure = 2

// leanRequestKey marks the context of a request that took leanRequest,
// its value the version taken; and of an AfterErasure, which is newer
// still. The code that started them had the version checks from before
// (local-writes, processor-task-queues, record-and-tell): in their context
// those are taken as passed, without a marker each (and the
// search-attribute upsert, a write to visibility, that the SDK adds to
// every marker). Keep it so: their histories have no marker of those
// checks to replay from.
type leanRequestKey struct{}

// earlierChecksPassed: the context takes the version checks from before
// leanRequest as passed (see leanRequestKey).
func earlierChecksPassed(ctx workflow.Context) bool {
	v, _ := ctx.Value(leanRequestKey{}).(workflow.Version)
	return v >= 1
}

// oneAfterErasure: in a request that took leanRequestAfterErasure, what
// outlives the erasure is one AfterErasure workflow.
func oneAfterErasure(ctx workflow.Context) bool {
	v, _ := ctx.Value(leanRequestKey{}).(workflow.Version)
	return v >= leanRequestAfterErasure
}

// PrivacyRequest carries one privacy request from receipt to its end: it
// confirms receipt, verifies the person's identity unless the company's
// backend vouches for it, waits for an operator's approval when the policy
// asks, runs the work of the request's type, and keeps the deadline —
// reminding the privacy team before it and escalating when it passes.
func PrivacyRequest(ctx workflow.Context, in contract.RequestInput) (contract.RequestView, error) {
	now := workflow.Now(ctx)
	r := &request{in: in, extended: workflow.NewChannel(ctx)}
	r.view = contract.RequestView{
		RequestID: in.RequestID, Type: in.Type, Jurisdiction: in.Jurisdiction, SubjectRef: in.SubjectRef,
		ReceivedAt: now, DueAt: in.Policy.DueAt(now), Status: domain.StatusReceived,
	}
	r.view.OriginalDueAt = r.view.DueAt
	if !in.Policy.ConfirmWithin.IsZero() {
		r.view.ConfirmBy = in.Policy.ConfirmWithin.After(now)
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.RequestView, error) { return r.view, nil }); err != nil {
		return r.view, err
	}
	if err := r.handleUpdates(ctx); err != nil {
		return r.view, err
	}
	ctx = withActivityDefaults(ctx)
	version := workflow.GetVersion(ctx, leanRequest, workflow.DefaultVersion, leanRequestAfterErasure)
	r.lean = version >= 1
	if r.lean {
		ctx = workflow.WithValue(ctx, leanRequestKey{}, version)
	}

	if err := r.step(ctx, domain.StatusReceived, in.SubmittedBy, "request.received", nil); err != nil {
		return r.view, err
	}
	if r.lean && in.PreVerified {
		r.mailReceiptBeside(ctx)
	} else {
		if err := r.mail(ctx, contract.MailReceipt, contract.MailData{Verified: in.PreVerified}); err != nil {
			return r.view, err
		}
		r.view.ConfirmedAt = workflow.Now(ctx)
	}

	// The deadline is kept whatever happens next, until the request closes.
	workflow.Go(ctx, r.keepDeadline)

	if !in.PreVerified {
		ok, err := r.verifyIdentity(ctx)
		if err != nil || !ok {
			return r.view, err
		}
	}
	if err := r.step(ctx, domain.StatusVerified, r.verifiedBy(), "request.verified", nil); err != nil {
		return r.view, err
	}
	if in.Policy.RequireApproval {
		if err := r.step(ctx, domain.StatusAwaitingApproval, "system", "request.awaiting_approval", nil); err != nil {
			return r.view, err
		}
		if err := workflow.Await(ctx, func() bool { return r.approved || r.decided != "" }); err != nil {
			return r.view, err
		}
		if r.decided != "" {
			return r.view, r.close(ctx, r.decided)
		}
	}
	if err := r.step(ctx, domain.StatusInProgress, "system", "request.in_progress", nil); err != nil {
		return r.view, err
	}
	err := r.doWork(ctx)
	// Version 1 of needs-attention: work that failed for good waits for the
	// privacy team, who retry it or close the request; a request that failed
	// before it replays as it ran (README, "Changing a workflow").
	for attempts := 1; err != nil && !temporal.IsCanceledError(err) && workflow.GetVersion(ctx, "needs-attention", workflow.DefaultVersion, 1) == 1; attempts++ {
		retry, werr := r.needsAttention(ctx, err, attempts)
		if werr != nil {
			return r.view, werr
		}
		if !retry {
			return r.view, r.close(ctx, r.decided)
		}
		err = r.doWork(ctx)
	}
	if err != nil {
		r.view.Reason = "the work failed; the privacy team has been told"
		// Version 1 tells the team, as the reason says; requests that failed
		// before it replay without the mail (README, "Changing a workflow").
		if workflow.GetVersion(ctx, "tell-team-on-failure", workflow.DefaultVersion, 1) == 1 {
			task := teamTask(r.in.RequestID, onceKey(r.in.RequestID, "failed"), fmt.Sprintf(
				"The %s request failed (%s): see what failed in its progress (GET /v1/requests/%s and the Temporal UI), fix it, and answer the person before %s.",
				r.in.Type, failureType(err), r.in.RequestID, r.view.DueAt.UTC().Format(domain.DateLayout)))
			task.Data.DueDate = r.view.DueAt
			if terr := tell(ctx, task); terr != nil {
				return r.view, terr
			}
		}
		_ = r.step(ctx, domain.StatusFailed, "system", "request.failed", nil)
		return r.view, err
	}
	return r.view, r.close(ctx, domain.StatusCompleted)
}

// needsAttention is where work that failed for good waits: the request
// says what failed, the privacy team gets a task at once (the deadline's
// reminders and escalation go on), and an operator either retries the work
// (retry is true: what completed before is not redone) or closes the
// request with a reason the person is told.
func (r *request) needsAttention(ctx workflow.Context, failed error, attempts int) (retry bool, err error) {
	why := failureType(failed)
	r.retry = "" // before the status changes: a retry accepted from then on counts
	r.view.Attention = &contract.Attention{Since: workflow.Now(ctx), Why: why, Failed: errorMessage(failed), Attempts: attempts}
	r.view.Reason = "the work failed (" + why + "); the privacy team has been told"
	if err := r.step(ctx, domain.StatusNeedsAttention, "system", "request.needs_attention", map[string]string{"why": why, "attempts": fmt.Sprint(attempts)}); err != nil {
		return false, err
	}
	task := teamTask(r.in.RequestID, onceKey(r.in.RequestID, "needs-attention", attempts), fmt.Sprintf(
		"The %s request needs attention: its work failed for good (%s). Fix the cause, then retry what failed (POST /v1/requests/%s/retry) "+
			"or close the request with a reason the person is told (POST /v1/requests/%s/cancel). It is due on %s.",
		r.in.Type, why, r.in.RequestID, r.in.RequestID, r.view.DueAt.UTC().Format(domain.DateLayout)))
	task.Data.DueDate = r.view.DueAt
	if err := tell(ctx, task); err != nil {
		return false, err
	}
	if err := workflow.Await(ctx, func() bool { return r.retry != "" || r.decided != "" }); err != nil {
		return false, err
	}
	if r.decided != "" {
		r.view.Attention = nil
		return false, nil
	}
	// The attempt starts afresh: what it does is what the person is told.
	r.view.Attention, r.view.Reason, r.view.Outcome = nil, "", nil
	return true, r.step(ctx, domain.StatusInProgress, r.retry, "request.retried", map[string]string{"attempts": fmt.Sprint(attempts + 1)})
}

func (r *request) validateRetry(_ workflow.Context, a contract.OperatorAction) error {
	if r.view.Status != domain.StatusNeedsAttention || r.retry != "" || r.decided != "" {
		return refuse(contract.RefusedState, "only a request that needs attention can be retried; this one is "+r.view.Status)
	}
	return nil
}

// retryWork lets the request run again what failed.
func (r *request) retryWork(_ workflow.Context, a contract.OperatorAction) error {
	r.retry = a.Actor
	return nil
}

func (r *request) verifiedBy() string {
	if r.in.PreVerified {
		return r.in.SubmittedBy
	}
	return "subject"
}

// verifyIdentity mails a one-time code and waits for the person to type it,
// for at most VerifyWithin, reminding them once. It reports false when the
// request ended unverified (lapsed or cancelled).
func (r *request) verifyIdentity(ctx workflow.Context) (bool, error) {
	p := r.in.Policy
	lapses := r.view.ReceivedAt.Add(p.VerifyWithin)
	r.view.Verification = &contract.VerificationView{LapsesAt: lapses, TriesLeft: p.MaxCodeAttempts}
	if err := r.step(ctx, domain.StatusAwaitingVerification, "system", "verification.started", nil); err != nil {
		return false, err
	}
	if err := r.issueCode(ctx); err != nil {
		return false, err
	}
	timerCtx, stopTimers := workflow.WithCancel(ctx)
	defer stopTimers()
	lapsed := false
	lapse := workflow.NewTimer(timerCtx, p.VerifyWithin)
	var reminder workflow.Future
	if p.VerifyReminderAfter > 0 && p.VerifyReminderAfter < p.VerifyWithin {
		reminder = workflow.NewTimer(timerCtx, p.VerifyReminderAfter)
	}
	settled := awaitFuture(timerCtx, func() bool { return r.verified || r.decided != "" })
	for !r.verified && !lapsed && r.decided == "" {
		remind := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(lapse, func(workflow.Future) { lapsed = true })
		sel.AddFuture(settled, func(workflow.Future) {})
		if reminder != nil {
			sel.AddFuture(reminder, func(workflow.Future) { remind, reminder = true, nil })
		}
		sel.Select(ctx)
		if remind && !r.verified && r.decided == "" {
			r.view.Verification.RemindedAt = workflow.Now(ctx)
			if err := r.mail(ctx, contract.MailVerificationReminder, contract.MailData{LapseDate: lapses}); err != nil {
				return false, err
			}
		}
	}
	switch {
	case r.verified:
		return true, nil
	case r.decided != "":
		return false, r.close(ctx, r.decided)
	default:
		return false, r.close(ctx, domain.StatusExpired)
	}
}

// awaitFuture is a future that becomes ready when cond holds.
func awaitFuture(ctx workflow.Context, cond func() bool) workflow.Future {
	f, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := workflow.Await(ctx, cond); err == nil {
			set.Set(nil, nil)
		}
	})
	return f
}

// issueCode mails a fresh code; only the newest code is valid, and it
// resets the tries and the lock.
func (r *request) issueCode(ctx workflow.Context) error {
	r.codeSeq++
	r.issuing = true
	defer func() { r.issuing = false }()
	var res contract.IssueCodeResult
	err := workflow.ExecuteActivity(ctx, lifecycle.IssueVerificationCode, contract.IssueCodeInput{
		RequestID: r.in.RequestID, RequestType: r.in.Type, SubjectRef: r.in.SubjectRef, Identity: r.in.Identity,
		Seq: r.codeSeq, ValidFor: r.in.Policy.CodeTTL,
	}).Get(ctx, &res)
	if err != nil {
		return fmt.Errorf("issue verification code: %w", err)
	}
	now := workflow.Now(ctx)
	r.codeHash, r.lastCode, r.attempts = res.CodeHash, now, 0
	v := r.view.Verification
	v.CodesSent, v.CodeExpiresAt, v.TriesLeft, v.Locked = r.codeSeq, now.Add(r.in.Policy.CodeTTL), r.in.Policy.MaxCodeAttempts, false
	return r.audit(ctx, "system", "verification.code_sent", map[string]string{"code": fmt.Sprint(r.codeSeq)})
}

// codeUsable refuses a try at a locked or expired code.
func (r *request) codeUsable(ctx workflow.Context) error {
	if r.view.Status != domain.StatusAwaitingVerification {
		return temporal.NewApplicationError("the request is not waiting for verification", contract.RefusedState)
	}
	if r.view.Verification.Locked {
		return temporal.NewApplicationError("too many wrong codes: ask for a new code", contract.RefusedLocked)
	}
	if !workflow.Now(ctx).Before(r.view.Verification.CodeExpiresAt) {
		return temporal.NewApplicationError("the code has expired: ask for a new code", contract.RefusedExpired)
	}
	return nil
}

// handleUpdates registers the person's and the operators' actions: each
// update the request accepts, with its validator and its handler.
func (r *request) handleUpdates(ctx workflow.Context) error {
	// The person's, while their identity is being verified.
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateVerify,
		r.verify, workflow.UpdateHandlerOptions{Validator: r.validateVerify}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateResendCode,
		r.resendCode, workflow.UpdateHandlerOptions{Validator: r.validateResendCode}); err != nil {
		return err
	}
	// The operators', on an open request; each answers with the request's view.
	for _, u := range []struct {
		name     string
		validate func(workflow.Context, contract.OperatorAction) error
		apply    func(workflow.Context, contract.OperatorAction) error
	}{
		{contract.UpdateApprove, r.validateApprove, r.approve},
		{contract.UpdateDeny, r.validateDeny, r.deny},
		{contract.UpdateCancel, r.validateDecision, r.cancel},
		{contract.UpdateExtend, r.validateExtend, r.extend},
		{contract.UpdateComplete, r.validateComplete, r.complete},
		{contract.UpdateRetry, r.validateRetry, r.retryWork},
	} {
		if err := r.operatorUpdate(ctx, u.name, u.validate, u.apply); err != nil {
			return err
		}
	}
	return nil
}

// refuse is a validator's refusal: kind tells the API how to answer.
func refuse(kind, msg string) error { return temporal.NewApplicationError(msg, kind) }

func (r *request) awaitingVerification() error {
	if r.view.Status != domain.StatusAwaitingVerification {
		return refuse(contract.RefusedState, "the request is not waiting for verification")
	}
	return nil
}

func (r *request) validateVerify(ctx workflow.Context, in contract.VerifyInput) error {
	if err := r.awaitingVerification(); err != nil {
		return err
	}
	if in.CodeHash == "" {
		return refuse(contract.RefusedInput, "no code")
	}
	if r.issuing {
		return nil // the handler waits for the code being sent
	}
	return r.codeUsable(ctx)
}

// verify checks the person's code; a wrong code costs a try, and the last
// try locks the code until a fresh one is sent.
func (r *request) verify(ctx workflow.Context, in contract.VerifyInput) (contract.VerifyResult, error) {
	ctx = withActivityDefaults(ctx)
	// The mail can be faster than the activity's completion: wait for
	// the hash of the code being sent, then check it as the validator would.
	if err := workflow.Await(ctx, func() bool { return !r.issuing }); err != nil {
		return contract.VerifyResult{}, err
	}
	if err := r.codeUsable(ctx); err != nil {
		return contract.VerifyResult{}, err
	}
	if subtle.ConstantTimeCompare([]byte(in.CodeHash), []byte(r.codeHash)) == 1 {
		r.verified = true
		return contract.VerifyResult{Accepted: true, TriesLeft: r.in.Policy.MaxCodeAttempts - r.attempts}, nil
	}
	r.attempts++
	v := r.view.Verification
	v.TriesLeft = max(0, r.in.Policy.MaxCodeAttempts-r.attempts)
	v.Locked = v.TriesLeft == 0
	action := "verification.failed"
	if v.Locked {
		action = "verification.locked"
	}
	if err := r.audit(ctx, "subject", action, map[string]string{"tries_left": fmt.Sprint(v.TriesLeft)}); err != nil {
		return contract.VerifyResult{}, err
	}
	return contract.VerifyResult{TriesLeft: v.TriesLeft, Locked: v.Locked}, nil
}

func (r *request) validateResendCode(ctx workflow.Context) error {
	if err := r.awaitingVerification(); err != nil {
		return err
	}
	if r.issuing {
		return refuse(contract.RefusedRateLimited, "a code is on its way")
	}
	if r.codeSeq >= r.in.Policy.MaxCodes {
		return refuse(contract.RefusedRateLimited, "no more codes for this request: submit a new request")
	}
	if wait := r.lastCode.Add(r.in.Policy.ResendInterval).Sub(workflow.Now(ctx)); wait > 0 {
		return temporal.NewApplicationError("a new code can be sent later", contract.RefusedRateLimited, wait)
	}
	return nil
}

// resendCode mails the person a fresh code.
func (r *request) resendCode(ctx workflow.Context) (contract.VerificationView, error) {
	if err := r.issueCode(withActivityDefaults(ctx)); err != nil {
		return contract.VerificationView{}, err
	}
	return *r.view.Verification, nil
}

// operatorUpdate registers an operator's action: refused once the request
// is closed, otherwise validated by validate and carried out by apply.
func (r *request) operatorUpdate(ctx workflow.Context, name string,
	validate func(workflow.Context, contract.OperatorAction) error,
	apply func(workflow.Context, contract.OperatorAction) error,
) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, name,
		func(ctx workflow.Context, a contract.OperatorAction) (contract.RequestView, error) {
			if err := apply(withActivityDefaults(ctx), a); err != nil {
				return contract.RequestView{}, err
			}
			return r.view, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, a contract.OperatorAction) error {
			if domain.Closed(r.view.Status) {
				return refuse(contract.RefusedState, "the request is already "+r.view.Status)
			}
			return validate(ctx, a)
		}})
}

func needReason(a contract.OperatorAction) error {
	if a.Reason == "" {
		return refuse(contract.RefusedInput, "a reason is required")
	}
	return nil
}

func (r *request) validateApprove(workflow.Context, contract.OperatorAction) error {
	if r.view.Status != domain.StatusAwaitingApproval || r.approved {
		return refuse(contract.RefusedState, "the request is not waiting for approval")
	}
	return nil
}

func (r *request) approve(ctx workflow.Context, a contract.OperatorAction) error {
	r.approved = true
	return r.audit(ctx, a.Actor, "request.approved", nil)
}

// validateDecision admits a denial or a cancellation, with its reason,
// before the work starts and when nothing has been decided yet.
func (r *request) validateDecision(_ workflow.Context, a contract.OperatorAction) error {
	if r.view.Status == domain.StatusInProgress || r.view.Status == domain.StatusReceived || r.decided != "" || r.retry != "" {
		return refuse(contract.RefusedState, "the request is "+r.view.Status)
	}
	return needReason(a)
}

// validateDeny admits a denial only before the work started: a request
// whose work failed half-way is cancelled (with its reason), not denied.
func (r *request) validateDeny(ctx workflow.Context, a contract.OperatorAction) error {
	if r.view.Status == domain.StatusNeedsAttention {
		return refuse(contract.RefusedState, "the request's work has started: cancel it with a reason instead")
	}
	return r.validateDecision(ctx, a)
}

func (r *request) deny(ctx workflow.Context, a contract.OperatorAction) error {
	r.view.Reason, r.decided = a.Reason, domain.StatusDenied
	return r.audit(ctx, a.Actor, "request.denied", map[string]string{"reason": a.Reason})
}

func (r *request) cancel(ctx workflow.Context, a contract.OperatorAction) error {
	r.view.Reason, r.decided = a.Reason, domain.StatusCancelled
	return r.audit(ctx, a.Actor, "request.cancelled", map[string]string{"reason": a.Reason})
}

// extensionTotal is how far past the original due date the deadline moves
// with an extension by: by plus every extension granted before it.
func (r *request) extensionTotal(by domain.Period) domain.Period {
	total := by
	for _, e := range r.view.Extensions {
		total = total.Plus(e.By)
	}
	return total
}

func (r *request) validateExtend(ctx workflow.Context, a contract.OperatorAction) error {
	if err := needReason(a); err != nil {
		return err
	}
	if a.By.IsZero() {
		return refuse(contract.RefusedInput, "say by how much (e.g. 2mo, 45d)")
	}
	// The person must hear of it before the original date passes.
	if !workflow.Now(ctx).Before(r.view.OriginalDueAt) {
		return refuse(contract.RefusedState, "the original due date has passed: an extension must be told before it")
	}
	if !r.extensionTotal(a.By).Within(r.in.Policy.MaxExtension, r.view.OriginalDueAt) || r.in.Policy.MaxExtension.IsZero() {
		return refuse(contract.RefusedInput, "beyond the longest extension this jurisdiction allows ("+r.in.Policy.MaxExtension.String()+")")
	}
	return nil
}

// extend moves the deadline, re-arms the operators' reminders and tells the person.
func (r *request) extend(ctx workflow.Context, a contract.OperatorAction) error {
	due := r.extensionTotal(a.By).After(r.view.OriginalDueAt)
	r.view.Extensions = append(r.view.Extensions, contract.Extension{At: workflow.Now(ctx), By: a.By, Reason: a.Reason, Actor: a.Actor})
	r.view.DueAt = due
	r.extended.SendAsync(true)
	if err := workflow.UpsertTypedSearchAttributes(ctx, contract.DueAtKey.ValueSet(r.view.DueAt)); err != nil {
		return err
	}
	if err := r.audit(ctx, a.Actor, "request.extended", map[string]string{"reason": a.Reason, "by": a.By.String(), "due_at": r.view.DueAt.Format(time.RFC3339)}); err != nil {
		return err
	}
	return r.mail(ctx, contract.MailExtension, contract.MailData{Reason: a.Reason, DueDate: r.view.DueAt, OriginalDueDate: r.view.OriginalDueAt})
}

func (r *request) validateComplete(_ workflow.Context, a contract.OperatorAction) error {
	if r.view.Status != domain.StatusInProgress || r.automated() {
		return refuse(contract.RefusedState, "only a request in progress that is fulfilled by hand can be completed by an operator")
	}
	if len(a.Lines) == 0 {
		return refuse(contract.RefusedInput, "say what was done")
	}
	return nil
}

// complete records what an operator did by hand; the request then closes.
func (r *request) complete(ctx workflow.Context, a contract.OperatorAction) error {
	r.done = append(r.done, a.Lines...)
	return r.audit(ctx, a.Actor, "request.fulfilled_by_hand", nil)
}

// automated says whether Lethe does the request type's work itself.
func (r *request) automated() bool {
	if r.in.Policy.FulfilByHand {
		return false
	}
	switch r.in.Type {
	case domain.TypeErasure, domain.TypeDeactivation, domain.TypeRectification, domain.TypeConsent, domain.TypeAccess, domain.TypePortability:
		return true
	}
	return false
}

// doWork runs the request type's work. Types Lethe does not automate yet are
// fulfilled by an operator, who completes the request through the API.
func (r *request) doWork(ctx workflow.Context) error {
	if !r.automated() {
		return workflow.Await(ctx, func() bool { return len(r.done) > 0 })
	}
	switch r.in.Type {
	case domain.TypeAccess, domain.TypePortability:
		return r.export(ctx)
	case domain.TypeDeactivation:
		return r.deactivate(ctx)
	case domain.TypeRectification:
		return r.propagate(ctx, changes.ApplyCorrections, changes.UpdateProcessor)
	case domain.TypeConsent:
		return r.propagate(ctx, changes.RecordConsent, changes.SetProcessorConsent)
	}
	in := contract.ErasureInput{
		RequestID: r.in.RequestID, SubjectRef: r.in.SubjectRef, Identity: r.in.Identity, Jurisdiction: r.in.Jurisdiction,
		Expedited: r.in.Expedited,
	}
	var progress contract.ErasureProgress
	if r.lean {
		// Each attempt (a retry after needs-attention) starts afresh.
		progress = contract.ErasureProgress{RequestID: r.in.RequestID, Status: domain.StatusInProgress}
		if r.erasure == nil {
			if err := workflow.SetQueryHandler(ctx, contract.QueryErasure, func() (contract.ErasureProgress, error) { return *r.erasure, nil }); err != nil {
				return err
			}
		}
		r.erasure = &progress
		r.erasures++
		err := erase(ctx, in, &progress, r.erasures)
		r.view.Systems = progress.Systems
		if err != nil {
			return err
		}
	} else {
		child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: r.in.RequestID + "-erasure"})
		if err := workflow.ExecuteChildWorkflow(child, contract.WorkflowEraseSubject, in).Get(ctx, &progress); err != nil {
			return err
		}
	}
	r.view.Systems = progress.Systems
	r.view.Outcome = progress.Summary()
	r.receipt = progress.Receipt
	return nil
}

// deactivate starts the account's deactivation, which outlives the request:
// the request is done when the account is disabled and the grace period runs.
func (r *request) deactivate(ctx workflow.Context) error {
	// The deactivation mails the person itself: the receipt goes first.
	if err := r.receiptFirst(ctx); err != nil {
		return err
	}
	p := r.in.Policy
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        contract.DeactivationWorkflowID(r.in.SubjectRef),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	f := workflow.ExecuteChildWorkflow(child, contract.WorkflowDeactivation, contract.DeactivationInput{
		SubjectRef: r.in.SubjectRef, Identity: r.in.Identity, HasEmail: r.in.HasEmail,
		GracePeriod: p.DeactivationGrace, ReminderBefore: p.DeactivationReminder, RequestedBy: "request:" + r.in.RequestID,
	})
	var started workflow.Execution
	err := f.GetChildWorkflowExecution().Get(ctx, &started)
	var already *temporal.ChildWorkflowExecutionAlreadyStartedError
	if err != nil && !errors.As(err, &already) {
		return err
	}
	final := workflow.Now(ctx).Add(p.DeactivationGrace)
	r.view.Outcome = []string{fmt.Sprintf("The account is deactivated; it can be restored until %s, then it is permanently deleted.", final.Format(domain.DateLayout))}
	return nil
}

// propagate makes a change in the application database (one activity, one
// transaction), then at every processor that holds the data, in parallel. A
// processor that refuses for good (a 4xx) is listed for the privacy team and
// does not undo the rest.
func (r *request) propagate(ctx workflow.Context,
	apply func(context.Context, contract.ChangeInput) (contract.ChangeResult, error),
	perProcessor func(context.Context, contract.ChangeInput) (string, error),
) error {
	var applied contract.ChangeResult
	in := contract.ChangeInput{RequestID: r.in.RequestID, SubjectRef: r.in.SubjectRef, Identity: r.in.Identity}
	if err := workflow.ExecuteActivity(ctx, apply, in).Get(ctx, &applied); err != nil {
		return err
	}
	r.view.Outcome = append(r.view.Outcome, applied.Lines...)
	futures := make([]workflow.Future, len(applied.Processors))
	for i, p := range applied.Processors {
		pin := in
		pin.Processor = p
		futures[i] = workflow.ExecuteActivity(ctx, perProcessor, pin)
	}
	for i, f := range futures {
		var line string
		err := f.Get(ctx, &line)
		var app *temporal.ApplicationError
		switch {
		case err == nil:
		case errors.As(err, &app) && app.Type() == contract.RefusedNeedsOperator:
			line = fmt.Sprintf("%s: refused the change; the privacy team will handle it by hand", applied.Processors[i])
			if aerr := r.audit(ctx, "system", "processor.needs_operator", map[string]string{"processor": applied.Processors[i]}); aerr != nil {
				return aerr
			}
		default:
			return err
		}
		r.view.Outcome = append(r.view.Outcome, line)
	}
	return nil
}

// close ends the request: the mail that says so, the shredding of an erased
// person's key, and last the final step, so that "completed" means all is done.
func (r *request) close(ctx workflow.Context, status string) error {
	if status == domain.StatusCompleted && len(r.done) > 0 {
		r.view.Outcome = append(r.view.Outcome, r.done...)
	}
	template := map[string]string{
		domain.StatusCompleted: contract.MailCompleted, domain.StatusDenied: contract.MailDenied, domain.StatusCancelled: contract.MailCancelled, domain.StatusExpired: contract.MailVerificationExpired,
	}[status]
	if err := r.mail(ctx, template, contract.MailData{Reason: r.view.Reason, Lines: r.view.Outcome, Link: r.link.URL, LinkExpires: r.link.ExpiresAt, Receipt: r.receipt}); err != nil {
		return err
	}
	if status == domain.StatusCompleted && r.in.Type == domain.TypeErasure {
		// The person is gone: so is the key to every copy of their identity
		// that Lethe kept, in its database, its backups and this history.
		// A quick write to Lethe's own database: a local activity when the
		// request ran the erasure itself (leanRequest).
		var shred workflow.Future
		if r.erasure != nil {
			shred = workflow.ExecuteLocalActivity(withLocalWrites(ctx), shredSubjectActivity, r.in.SubjectRef)
		} else {
			shred = workflow.ExecuteActivity(ctx, lifecycle.ShredSubject, r.in.SubjectRef)
		}
		if err := shred.Get(ctx, nil); err != nil {
			return err
		}
	}
	return r.step(ctx, status, "system", "request."+status, map[string]string{"reason": r.view.Reason})
}

// keepDeadline reminds the privacy team before the due date and escalates
// when it passes, for as long as the request is open; an extension re-arms it.
func (r *request) keepDeadline(ctx workflow.Context) {
	for !domain.Closed(r.view.Status) {
		now := workflow.Now(ctx)
		next, escalate := r.view.DueAt, true
		for _, before := range r.in.Policy.OperatorReminders {
			at := r.view.DueAt.Add(-before)
			if at.After(now) && at.Before(next) && !r.remindedFor(at) {
				next, escalate = at, false
			}
		}
		if escalate && !r.view.EscalatedAt.IsZero() {
			_ = workflow.Await(ctx, func() bool { return domain.Closed(r.view.Status) })
			return
		}
		timerCtx, cancel := workflow.WithCancel(ctx)
		fired, moved := false, false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(workflow.NewTimer(timerCtx, next.Sub(now)), func(workflow.Future) { fired = true })
		sel.AddReceive(r.extended, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); moved = true })
		sel.AddFuture(awaitFuture(timerCtx, func() bool { return domain.Closed(r.view.Status) }), func(workflow.Future) {})
		sel.Select(ctx)
		cancel()
		if !fired || moved || domain.Closed(r.view.Status) {
			continue
		}
		if escalate {
			r.view.EscalatedAt = workflow.Now(ctx)
			_ = r.audit(ctx, "system", "deadline.passed", map[string]string{"due_at": r.view.DueAt.Format(time.RFC3339)})
			_ = r.mailTeam(ctx, contract.MailOperatorEscalation, "escalation")
		} else {
			r.view.Reminded = append(r.view.Reminded, next)
			_ = r.mailTeam(ctx, contract.MailOperatorReminder, "reminder-"+next.Format(time.RFC3339))
		}
	}
}

func (r *request) remindedFor(at time.Time) bool {
	for _, t := range r.view.Reminded {
		if t.Equal(at) {
			return true
		}
	}
	return false
}

// step moves the request to status: query, search attributes, Lethe's record
// and the audit trail.
func (r *request) step(ctx workflow.Context, status, actor, action string, detail map[string]string) error {
	now := workflow.Now(ctx)
	r.view.Status = status
	r.view.History = append(r.view.History, contract.Transition{At: now, Status: status, Actor: actor})
	if err := workflow.UpsertTypedSearchAttributes(ctx, contract.StatusKey.ValueSet(status), contract.DueAtKey.ValueSet(r.view.DueAt)); err != nil {
		return err
	}
	return r.record(ctx, status, actor, action, detail)
}

// audit appends an entry to the audit trail without changing the status.
func (r *request) audit(ctx workflow.Context, actor, action string, detail map[string]string) error {
	return r.record(ctx, r.view.Status, actor, action, detail)
}

// record writes the request's status and an audit entry, once per
// sequence number; like every audit entry, it is retried until it is
// written (untilWritten).
func (r *request) record(ctx workflow.Context, status, actor, action string, detail map[string]string) error {
	r.seq++
	in := contract.TransitionInput{
		RequestID: r.in.RequestID, Type: r.in.Type, SubjectRef: r.in.SubjectRef, Jurisdiction: r.in.Jurisdiction,
		Status: status, ReceivedAt: r.view.ReceivedAt, DueAt: r.view.DueAt,
		Actor: actor, Action: action, Detail: detail, Seq: r.seq,
	}
	write := func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(ctx, lifecycle.RecordTransition, in).Get(ctx, nil)
	}
	if writesLocally(ctx) {
		write = func(ctx workflow.Context) error {
			return workflow.ExecuteLocalActivity(withLocalWrites(ctx), recordTransitionActivity, in).Get(ctx, nil)
		}
	}
	if err := untilWritten(ctx, r.in.RequestID, action, onceKey(r.in.RequestID, r.seq), write(ctx), write); err != nil {
		return fmt.Errorf("record %s: %w", action, err)
	}
	return nil
}

// mail sends the person one templated mail for this event, at most once.
func (r *request) mail(ctx workflow.Context, template string, d contract.MailData) error {
	if !r.in.HasEmail || template == "" {
		return nil
	}
	if template != contract.MailReceipt {
		if err := r.receiptFirst(ctx); err != nil {
			return err
		}
	}
	d.RequestType, d.Jurisdiction = r.in.Type, r.in.Jurisdiction
	if d.DueDate.IsZero() {
		d.DueDate = r.view.DueAt
	}
	key := onceKey(r.in.RequestID, template, len(r.view.Extensions))
	return r.send(ctx, contract.SendMailInput{RequestID: r.in.RequestID, SubjectRef: r.in.SubjectRef, Identity: r.in.Identity, Template: template, Key: key, Data: d})
}

// mailReceiptBeside (leanRequest) mails the receipt while the request goes
// on; every later mail to the person waits for it (mail).
func (r *request) mailReceiptBeside(ctx workflow.Context) {
	sent, set := workflow.NewFuture(ctx)
	r.mailed = sent
	workflow.Go(ctx, func(ctx workflow.Context) {
		err := r.mail(ctx, contract.MailReceipt, contract.MailData{Verified: true})
		if err == nil {
			r.view.ConfirmedAt = workflow.Now(ctx)
		}
		set.Set(nil, err)
	})
}

// receiptFirst waits for the receipt's mail when it goes beside the work
// (mailReceiptBeside): no other mail to the person goes before it.
func (r *request) receiptFirst(ctx workflow.Context) error {
	if r.mailed == nil {
		return nil
	}
	return r.mailed.Get(ctx, nil)
}

// mailTeam tells the privacy team, once per key.
func (r *request) mailTeam(ctx workflow.Context, template, key string) error {
	return r.send(ctx, contract.SendMailInput{RequestID: r.in.RequestID, Template: template, Key: onceKey(r.in.RequestID, key), ToPrivacyTeam: true,
		Data: contract.MailData{RequestType: r.in.Type, Jurisdiction: r.in.Jurisdiction, DueDate: r.view.DueAt}})
}

// send tells (see tell), recording a mail that cannot go in the request's
// own trail.
func (r *request) send(ctx workflow.Context, in contract.SendMailInput) error {
	if err := tellRecording(ctx, in, true, func(detail map[string]string) error {
		return r.audit(ctx, "system", "mail.not_sent", detail)
	}); err != nil {
		return fmt.Errorf("mail %s: %w", in.Template, err)
	}
	return nil
}
