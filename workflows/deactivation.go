package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DeactivationInput deactivates one account for a grace period (P8).
type DeactivationInput struct {
	SubjectRef     string
	Identity       []byte // sealed: the user id and email
	HasEmail       bool
	GracePeriod    time.Duration // 30 days: restorable until then
	ReminderBefore time.Duration // remind this long before the end (7 days)
	RequestedBy    string        // "backend:<key>" or "request:<id>"
}

// Deactivation statuses.
const (
	AccountDeactivated = "deactivated"
	AccountRestored    = "restored"
	AccountErased      = "erased"
)

// DeactivationView is the deactivation's state (QueryProgress).
type DeactivationView struct {
	SubjectRef    string    `json:"subject_ref"`
	Status        string    `json:"status"`
	DeactivatedAt time.Time `json:"deactivated_at"`
	FinalAt       time.Time `json:"final_at"` // the end of the grace period
	RemindedAt    time.Time `json:"reminded_at,omitzero"`
	RestoredAt    time.Time `json:"restored_at,omitzero"`
	ErasedAt      time.Time `json:"erased_at,omitzero"`
	Outcome       []string  `json:"outcome,omitempty"`
}

// RestoreInput restores a deactivated account.
type RestoreInput struct {
	Actor string
}

// AccountStatusInput sets the account's status column (deactivate, restore).
type AccountStatusInput struct {
	SubjectRef string
	Identity   []byte
	Status     string // AccountDeactivated or "active"
}

// AuditInput appends an entry about an account (not a request) to the audit trail.
type AuditInput struct {
	RequestID  string // the privacy request the entry is about, if any
	SubjectRef string
	Actor      string
	Action     string
	Detail     map[string]string
	Key        string // idempotency key
}

// UpdateRestore restores a deactivated account before its grace period ends.
const UpdateRestore = "restore"

// Mail templates of the account lifecycle.
const (
	MailDeactivationNotice   = "deactivation_notice"
	MailDeactivationReminder = "deactivation_reminder"
	MailAccountRestored      = "account_restored"
	MailAccountErased        = "account_erased"
)

// DeactivationWorkflowID is the one deactivation workflow of a person: a
// second deactivation while one runs is the same deactivation.
func DeactivationWorkflowID(subjectRef string) string { return "deactivation-" + subjectRef }

// AccountDeactivation keeps the promise "we retain your data for up to 30
// days, during which you can restore your account; after this period it is
// permanently deleted": the account is disabled at once, the person is told
// the final date and reminded before it, a restore before the end re-enables
// it, and at the end the erasure runs.
func AccountDeactivation(ctx workflow.Context, in DeactivationInput) (DeactivationView, error) {
	now := workflow.Now(ctx)
	v := DeactivationView{SubjectRef: in.SubjectRef, Status: AccountDeactivated, DeactivatedAt: now, FinalAt: now.Add(in.GracePeriod)}
	restored := false
	var restoredBy string
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (DeactivationView, error) { return v, nil }); err != nil {
		return v, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRestore,
		func(ctx workflow.Context, r RestoreInput) (DeactivationView, error) {
			restored, restoredBy = true, r.Actor
			if err := workflow.Await(ctx, func() bool { return v.Status != AccountDeactivated }); err != nil {
				return v, err
			}
			return v, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, r RestoreInput) error {
			if v.Status != AccountDeactivated || !workflow.Now(ctx).Before(v.FinalAt) {
				return temporal.NewApplicationError(fmt.Sprintf("the grace period ended on %s: the account can no longer be restored", v.FinalAt.Format("2 January 2006")), RefusedState)
			}
			return nil
		}}); err != nil {
		return v, err
	}
	ctx = withActivityDefaults(ctx)
	act := func(name string, arg any) error { return workflow.ExecuteActivity(ctx, name, arg).Get(ctx, nil) }
	var receipt *Receipt // the erasure's, for the person's last mail
	mail := func(template string) error {
		if !in.HasEmail {
			return nil
		}
		return act(ActivitySendMail, SendMailInput{SubjectRef: in.SubjectRef, Identity: in.Identity, Template: template,
			Key:  fmt.Sprintf("%s:%s:%d", DeactivationWorkflowID(in.SubjectRef), template, v.DeactivatedAt.Unix()),
			Data: MailData{FinalDate: v.FinalAt, Lines: v.Outcome, Receipt: receipt}})
	}
	audit := func(actor, action string) error {
		return act(ActivityAudit, AuditInput{SubjectRef: in.SubjectRef, Actor: actor, Action: action,
			Detail: map[string]string{"final_at": v.FinalAt.Format(time.RFC3339)},
			Key:    fmt.Sprintf("%s:%d:%s", DeactivationWorkflowID(in.SubjectRef), v.DeactivatedAt.Unix(), action)})
	}

	if err := act(ActivitySetAccountStatus, AccountStatusInput{SubjectRef: in.SubjectRef, Identity: in.Identity, Status: AccountDeactivated}); err != nil {
		return v, fmt.Errorf("deactivate: %w", err)
	}
	if err := audit(in.RequestedBy, "account.deactivated"); err != nil {
		return v, err
	}
	if err := mail(MailDeactivationNotice); err != nil {
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
			if err := mail(MailDeactivationReminder); err != nil {
				return v, err
			}
		}
	}
	if restored {
		if err := act(ActivitySetAccountStatus, AccountStatusInput{SubjectRef: in.SubjectRef, Identity: in.Identity, Status: "active"}); err != nil {
			return v, fmt.Errorf("restore: %w", err)
		}
		v.Status, v.RestoredAt = AccountRestored, workflow.Now(ctx)
		if err := audit(restoredBy, "account.restored"); err != nil {
			return v, err
		}
		return v, mail(MailAccountRestored)
	}

	// The end of the grace period: the account and its data go.
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: DeactivationWorkflowID(in.SubjectRef) + "-erasure"})
	var progress ErasureProgress
	if err := workflow.ExecuteChildWorkflow(child, WorkflowEraseSubject, ErasureInput{RequestID: DeactivationWorkflowID(in.SubjectRef), SubjectRef: in.SubjectRef, Identity: in.Identity}).Get(ctx, &progress); err != nil {
		return v, fmt.Errorf("erase: %w", err)
	}
	v.Outcome, receipt = progress.Summary(), progress.Receipt
	if err := mail(MailAccountErased); err != nil {
		return v, err
	}
	if err := act(ActivityShredSubject, in.SubjectRef); err != nil {
		return v, err
	}
	v.Status, v.ErasedAt = AccountErased, workflow.Now(ctx)
	return v, audit("system", "account.erased")
}
