package workflows

import (
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// deactivationErasesItself is the version check after which the erasure at
// the end of the grace period runs in the deactivation itself, as a lean
// request's does (issue 16): plan and ledger, the database, S3 and the
// verification in two activities, each processor asked beside them, and
// one AfterErasure for what outlives it. Deactivations that reached that
// point before ran an EraseSubject workflow.
const deactivationErasesItself = "deactivation-erases-itself"

// AccountDeactivation keeps the promise "we retain your data for up to 30
// days, during which you can restore your account; after this period it is
// permanently deleted": the account is disabled at once, the person is told
// the final date and reminded before it, a restore before the end re-enables
// it, and at the end the erasure runs.
func AccountDeactivation(ctx workflow.Context, in contract.DeactivationInput) (contract.DeactivationView, error) {
	now := workflow.Now(ctx)
	v := contract.DeactivationView{SubjectRef: in.SubjectRef, Status: contract.AccountDeactivated, DeactivatedAt: now, FinalAt: now.Add(in.GracePeriod)}
	restored := false
	var restoredBy string
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.DeactivationView, error) { return v, nil }); err != nil {
		return v, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateRestore,
		func(ctx workflow.Context, r contract.RestoreInput) (contract.DeactivationView, error) {
			restored, restoredBy = true, r.Actor
			if err := workflow.Await(ctx, func() bool { return v.Status != contract.AccountDeactivated }); err != nil {
				return v, err
			}
			return v, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, r contract.RestoreInput) error {
			if v.Status != contract.AccountDeactivated || !workflow.Now(ctx).Before(v.FinalAt) {
				return temporal.NewApplicationError(fmt.Sprintf("the grace period ended on %s: the account can no longer be restored", v.FinalAt.Format(domain.DateLayout)), contract.RefusedState)
			}
			return nil
		}}); err != nil {
		return v, err
	}
	retryBy := ""
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateRetry,
		func(ctx workflow.Context, a contract.OperatorAction) (contract.DeactivationView, error) {
			retryBy = a.Actor
			return v, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, a contract.OperatorAction) error {
			if v.Status != contract.AccountNeedsAttention || retryBy != "" {
				return temporal.NewApplicationError("only an erasure that failed can be retried; this account is "+v.Status, contract.RefusedState)
			}
			return nil
		}}); err != nil {
		return v, err
	}
	ctx = withActivityDefaults(ctx)
	act := func(activity, arg any) error { return workflow.ExecuteActivity(ctx, activity, arg).Get(ctx, nil) }
	var receipt *contract.Receipt // the erasure's, for the person's last mail
	mail := func(template string) error {
		if !in.HasEmail {
			return nil
		}
		return tell(ctx, contract.SendMailInput{SubjectRef: in.SubjectRef, Identity: in.Identity, Template: template,
			Key:  onceKey(contract.DeactivationWorkflowID(in.SubjectRef), template, v.DeactivatedAt.Unix()),
			Data: contract.MailData{FinalDate: v.FinalAt, Lines: v.Outcome, Receipt: receipt}})
	}
	audit := func(actor, action string) error {
		return record(ctx, contract.AuditInput{SubjectRef: in.SubjectRef, Actor: actor, Action: action,
			Detail: map[string]string{"final_at": v.FinalAt.Format(time.RFC3339)},
			Key:    onceKey(contract.DeactivationWorkflowID(in.SubjectRef), v.DeactivatedAt.Unix(), action)})
	}

	if err := act(accounts.SetAccountStatus, contract.AccountStatusInput{SubjectRef: in.SubjectRef, Identity: in.Identity, Status: contract.AccountDeactivated}); err != nil {
		return v, fmt.Errorf("deactivate: %w", err)
	}
	if err := audit(in.RequestedBy, "account.deactivated"); err != nil {
		return v, err
	}
	if err := mail(contract.MailDeactivationNotice); err != nil {
		return v, err
	}

	// The grace period: a restore ends it; the reminder goes before the end.
	timers, stop := workflow.WithCancel(ctx)
	defer stop()
	ended := false
	end := workflow.NewTimer(timers, in.GracePeriod)
	var reminder workflow.Future
	if in.ReminderBefore > 0 && in.ReminderBefore < in.GracePeriod {
		reminder = workflow.NewTimer(timers, in.GracePeriod-in.ReminderBefore)
	}
	restore := awaitFuture(timers, func() bool { return restored })
	for !ended && !restored {
		remind := false
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(end, func(workflow.Future) { ended = true })
		sel.AddFuture(restore, func(workflow.Future) {})
		if reminder != nil {
			sel.AddFuture(reminder, func(workflow.Future) { remind, reminder = true, nil })
		}
		sel.Select(ctx)
		if remind && !restored {
			v.RemindedAt = workflow.Now(ctx)
			if err := mail(contract.MailDeactivationReminder); err != nil {
				return v, err
			}
		}
	}
	if restored {
		if err := act(accounts.SetAccountStatus, contract.AccountStatusInput{SubjectRef: in.SubjectRef, Identity: in.Identity, Status: "active"}); err != nil {
			return v, fmt.Errorf("restore: %w", err)
		}
		v.Status, v.RestoredAt = contract.AccountRestored, workflow.Now(ctx)
		if err := audit(restoredBy, "account.restored"); err != nil {
			return v, err
		}
		return v, mail(contract.MailAccountRestored)
	}

	// The end of the grace period: the account and its data go.
	id := contract.DeactivationWorkflowID(in.SubjectRef)
	erasureIn := contract.ErasureInput{RequestID: id, SubjectRef: in.SubjectRef, Identity: in.Identity}
	var progress contract.ErasureProgress
	eraseAccount := func() error {
		child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: id + "-erasure"})
		return workflow.ExecuteChildWorkflow(child, contract.WorkflowEraseSubject, erasureIn).Get(ctx, &progress)
	}
	if workflow.GetVersion(ctx, deactivationErasesItself, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.SetQueryHandler(ctx, contract.QueryErasure, func() (contract.ErasureProgress, error) { return progress, nil }); err != nil {
			return v, err
		}
		// Newer than the checks a lean request takes as passed, and than
		// one AfterErasure: so is this erasure (see leanRequestKey).
		eraseCtx := workflow.WithValue(ctx, leanRequestKey{}, workflow.Version(leanRequestAfterErasure))
		attempt := 0
		eraseAccount = func() error {
			attempt++
			progress = contract.ErasureProgress{RequestID: id, Status: domain.StatusInProgress}
			return erase(eraseCtx, erasureIn, &progress, attempt)
		}
	}
	err := eraseAccount()
	// Version 1 of needs-attention: an erasure that failed for good waits
	// for the privacy team to retry it (the account stays deactivated)
	// instead of ending the workflow; one that failed before replays as it ran.
	for attempts := 1; err != nil && !temporal.IsCanceledError(err) && workflow.GetVersion(ctx, "needs-attention", workflow.DefaultVersion, 1) == 1; attempts++ {
		why := failureType(err)
		v.Status, retryBy = contract.AccountNeedsAttention, ""
		v.Attention = &contract.Attention{Since: workflow.Now(ctx), Why: why, Failed: errorMessage(err), Attempts: attempts}
		if err := audit("system", "account.needs_attention"); err != nil {
			return v, err
		}
		if err := tell(ctx, teamTask("", onceKey(id, "needs-attention", attempts), fmt.Sprintf(
			"The erasure of a deactivated account (workflow %s) failed for good (%s). Fix the cause, then retry it (POST /v1/accounts/{user_id}/deactivation/retry, or the update %q in the Temporal UI).",
			id, why, contract.UpdateRetry))); err != nil {
			return v, err
		}
		if err := workflow.Await(ctx, func() bool { return retryBy != "" }); err != nil {
			return v, err
		}
		v.Status, v.Attention = contract.AccountDeactivated, nil
		if err := audit(retryBy, "account.erasure_retried"); err != nil {
			return v, err
		}
		err = eraseAccount()
	}
	if err != nil {
		return v, fmt.Errorf("erase: %w", err)
	}
	v.Outcome, receipt = progress.Summary(), progress.Receipt
	if err := mail(contract.MailAccountErased); err != nil {
		return v, err
	}
	if err := act(lifecycle.ShredSubject, in.SubjectRef); err != nil {
		return v, err
	}
	v.Status, v.ErasedAt = contract.AccountErased, workflow.Now(ctx)
	return v, audit("system", "account.erased")
}
