package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// lifecycle runs PrivacyRequest in the SDK's test environment, where timers
// skip ahead: a 7-day verification window or a month's deadline takes
// milliseconds. Its activities are fakes that record what happened when.
type lifecycle struct {
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	start   time.Time
	mails   []sent
	actions []string
	erased  int
	shred   int
	updates int
	// mailFails and recordFails, when set, fail a mail or a transition
	// (returning nil lets it through).
	mailFails   func(contract.SendMailInput) error
	recordFails func(contract.TransitionInput) error
	keys        []string // the mails' idempotency keys, in order
	tablesFail  int      // the first tablesFail erasures of the tables fail for good
	systems     *fakeSystems
}

type sent struct {
	template string
	at       time.Duration // after the start
	team     bool
	data     contract.MailData
}

func policyGDPR() domain.Policy {
	return domain.Policy{
		Due: domain.Period{Months: 1}, MaxExtension: domain.Period{Months: 2},
		CodeTTL: 15 * time.Minute, MaxCodeAttempts: 5, ResendInterval: time.Minute, MaxCodes: 5,
		VerifyWithin: 7 * 24 * time.Hour, VerifyReminderAfter: 3 * 24 * time.Hour,
		OperatorReminders: []time.Duration{72 * time.Hour, 24 * time.Hour},
		FulfilByHand:      true, // most tests complete by hand; automated work has its own tests
	}
}

func newLifecycle(t *testing.T, start time.Time) *lifecycle {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	l := &lifecycle{t: t, env: s.NewTestWorkflowEnvironment(), start: start}
	l.env.SetStartTime(start)
	l.env.SetTestTimeout(10 * time.Second)
	l.env.RegisterWorkflowWithOptions(workflows.EraseSubject, workflowName(contract.WorkflowEraseSubject))
	fake(l.env, lc.RecordTransition, func(_ context.Context, in contract.TransitionInput) error {
		if l.recordFails != nil {
			if err := l.recordFails(in); err != nil {
				return err
			}
		}
		l.actions = append(l.actions, in.Action)
		return nil
	})
	fake(l.env, lc.IssueVerificationCode, func(_ context.Context, in contract.IssueCodeInput) (contract.IssueCodeResult, error) {
		l.mails = append(l.mails, sent{template: "code", at: l.since()})
		return contract.IssueCodeResult{CodeHash: hashOf(code(in.Seq))}, nil
	})
	fake(l.env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		if l.mailFails != nil {
			if err := l.mailFails(in); err != nil {
				return err
			}
		}
		l.mails = append(l.mails, sent{template: in.Template, at: l.since(), team: in.ToPrivacyTeam, data: in.Data})
		l.keys = append(l.keys, in.Key)
		return nil
	})
	fake(l.env, lc.ShredSubject, func(context.Context, string) error { l.shred++; return nil })
	fake(l.env, changes.RecordConsent, func(context.Context, contract.ChangeInput) (contract.ChangeResult, error) {
		l.actions = append(l.actions, "fake.consent_recorded")
		return contract.ChangeResult{Lines: []string{"Consent to sale_sharing withdrawn (recorded)"}, Processors: []string{"crm", "broken"}}, nil
	})
	fake(l.env, changes.SetProcessorConsent, func(_ context.Context, in contract.ChangeInput) (string, error) {
		if in.Processor == "broken" {
			return "", temporal.NewNonRetryableApplicationError("400", contract.RefusedNeedsOperator, nil)
		}
		return in.Processor + ": applied", nil
	})
	l.systems = newFakeSystems()
	l.systems.tables = func(context.Context, contract.EraseTablesInput) (contract.EraseTablesResult, error) {
		l.erased++
		if l.erased <= l.tablesFail {
			return contract.EraseTablesResult{}, temporal.NewNonRetryableApplicationError("erase tables: PostgreSQL error 42P01", "DatabaseError", nil)
		}
		held := time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
		return contract.EraseTablesResult{
			Tables: []contract.TableOutcome{{Table: "demo.projects", Action: "deleted", Rows: 2}, {Table: "demo.purchases", Action: "retained", Rows: 1, Reason: "tax law", Until: held}},
			Held:   []contract.HeldRows{{Table: "demo.purchases", Until: held, HoldRef: "hold:demo.purchases:sr_x"}},
		}, nil
	}
	l.systems.objects = func(context.Context, contract.EraseObjectsInput) (contract.EraseObjectsResult, error) {
		return contract.EraseObjectsResult{Location: "b/p/", Objects: 6}, nil
	}
	l.systems.register(l.env)
	return l
}

// receiptFails fails the receipt's mail n times, as SendGrid answering
// 503 would (the activity retries after 1 s, then 2 s, …).
func (l *lifecycle) receiptFails(n int) {
	l.mailFails = func(in contract.SendMailInput) error {
		if in.Template == contract.MailReceipt && n > 0 {
			n--
			return errors.New("sendgrid: 503")
		}
		return nil
	}
}

func (l *lifecycle) since() time.Duration { return l.env.Now().Sub(l.start) }

// code is the code the fake mails as the seq-th code; hashOf what the API would send.
func code(seq int) string       { return fmt.Sprintf("%06d", 100000+seq) }
func hashOf(code string) string { return "hash:" + code }

// outcome of an update sent at some moment.
type outcome struct {
	rejected error
	result   any
	err      error
	done     bool
}

type callbacks struct{ o *outcome }

func (c callbacks) Accept()                 {}
func (c callbacks) Reject(err error)        { c.o.rejected, c.o.done = err, true }
func (c callbacks) Complete(r any, e error) { c.o.result, c.o.err, c.o.done = r, e, true }

// update sends an update after d of test time.
func (l *lifecycle) update(d time.Duration, name string, arg any) *outcome {
	o := &outcome{}
	l.updates++
	id := fmt.Sprintf("u%d", l.updates)
	l.env.RegisterDelayedCallback(func() {
		if arg == nil {
			l.env.UpdateWorkflow(name, id, callbacks{o})
		} else {
			l.env.UpdateWorkflow(name, id, callbacks{o}, arg)
		}
	}, d)
	return o
}

func (l *lifecycle) verify(d time.Duration, c string) *outcome {
	return l.update(d, contract.UpdateVerify, contract.VerifyInput{CodeHash: hashOf(c)})
}

func (l *lifecycle) run(in contract.RequestInput) contract.RequestView {
	l.t.Helper()
	if in.RequestID == "" {
		in.RequestID = "req_test"
	}
	if in.SubjectRef == "" {
		in.SubjectRef = "sr_test"
	}
	in.HasEmail = true
	l.env.ExecuteWorkflow(workflows.PrivacyRequest, in)
	if !l.env.IsWorkflowCompleted() {
		l.t.Fatal("workflow did not complete")
	}
	var v contract.RequestView
	if err := l.env.GetWorkflowError(); err != nil {
		l.t.Fatalf("workflow failed: %v", err)
	}
	if err := l.env.GetWorkflowResult(&v); err != nil {
		l.t.Fatal(err)
	}
	return v
}

func (l *lifecycle) mailed(template string) []sent {
	var out []sent
	for _, m := range l.mails {
		if m.template == template {
			out = append(out, m)
		}
	}
	return out
}

func refusedAs(t *testing.T, o *outcome, kind string) {
	t.Helper()
	var app *temporal.ApplicationError
	if !o.done || o.rejected == nil || !errors.As(o.rejected, &app) || app.Type() != kind {
		t.Fatalf("want the update refused as %s, got %+v", kind, o)
	}
}

func verifyResult(t *testing.T, o *outcome) contract.VerifyResult {
	t.Helper()
	if !o.done || o.rejected != nil || o.err != nil {
		t.Fatalf("update: %+v", o)
	}
	return o.result.(contract.VerifyResult)
}

var jan15 = time.Date(2027, 1, 15, 9, 0, 0, 0, time.UTC)

func TestCodeExpiresAfter15Minutes(t *testing.T) {
	l := newLifecycle(t, jan15)
	late := l.verify(16*time.Minute, code(1))
	resend := l.update(17*time.Minute, contract.UpdateResendCode, nil)
	onTime := l.verify(20*time.Minute, code(2))
	l.update(time.Hour, contract.UpdateComplete, contract.OperatorAction{Actor: "operator:k", Lines: []string{"done by hand"}})
	v := l.run(contract.RequestInput{Type: domain.TypeAccess, Jurisdiction: "gdpr", Policy: policyGDPR()})
	refusedAs(t, late, contract.RefusedExpired)
	if resend.rejected != nil || resend.err != nil {
		t.Fatalf("resend: %+v", resend)
	}
	if !verifyResult(t, onTime).Accepted {
		t.Fatal("the new code was refused")
	}
	if v.Status != domain.StatusCompleted || v.Verification.CodesSent != 2 {
		t.Fatalf("view %+v", v)
	}
}

func TestFiveWrongCodesLockUntilAFreshCode(t *testing.T) {
	l := newLifecycle(t, jan15)
	var wrong []*outcome
	for i := 1; i <= 5; i++ {
		wrong = append(wrong, l.verify(time.Duration(i)*time.Minute, "999999"))
	}
	lockedOut := l.verify(6*time.Minute, code(1)) // right code, but locked
	resend := l.update(6*time.Minute+10*time.Second, contract.UpdateResendCode, nil)
	tooSoon := l.update(6*time.Minute+20*time.Second, contract.UpdateResendCode, nil) // 1 minute between codes
	oldCode := l.verify(8*time.Minute, code(1))                                       // only the newest code is valid
	fresh := l.verify(9*time.Minute, code(2))
	cancel := l.update(10*time.Minute, contract.UpdateCancel, contract.OperatorAction{Actor: "operator:k", Reason: "test over"})
	l.update(11*time.Minute, contract.UpdateComplete, contract.OperatorAction{Actor: "operator:k", Lines: []string{"done by hand"}})
	v := l.run(contract.RequestInput{Type: domain.TypeAccess, Jurisdiction: "gdpr", Policy: policyGDPR()})

	for i, o := range wrong {
		r := verifyResult(t, o)
		if r.Accepted || r.TriesLeft != 4-i || r.Locked != (i == 4) {
			t.Fatalf("wrong try %d: %+v", i+1, r)
		}
	}
	refusedAs(t, lockedOut, contract.RefusedLocked)
	if resend.rejected != nil || resend.err != nil {
		t.Fatalf("resend after the lock: %+v", resend)
	}
	refusedAs(t, tooSoon, contract.RefusedRateLimited)
	if r := verifyResult(t, oldCode); r.Accepted || r.TriesLeft != 4 {
		t.Fatalf("the old code after a resend: %+v", r)
	}
	if !verifyResult(t, fresh).Accepted {
		t.Fatal("the fresh code was refused")
	}
	refusedAs(t, cancel, contract.RefusedState) // verified and in progress: too late to cancel
	if v.Status != domain.StatusCompleted {
		t.Fatalf("status %s", v.Status)
	}
}

func TestUnverifiedRequestExpiresAfter7DaysWithAReminder(t *testing.T) {
	l := newLifecycle(t, jan15)
	v := l.run(contract.RequestInput{Type: domain.TypeErasure, Jurisdiction: "gdpr", Policy: policyGDPR()})
	if v.Status != domain.StatusExpired {
		t.Fatalf("status %s, want expired", v.Status)
	}
	if got := v.History[len(v.History)-1].At.Sub(jan15); got != 7*24*time.Hour {
		t.Fatalf("expired after %s, want exactly 7 days", got)
	}
	rem := l.mailed(contract.MailVerificationReminder)
	if len(rem) != 1 || rem[0].at != 3*24*time.Hour {
		t.Fatalf("reminders %+v, want one after 3 days", rem)
	}
	if exp := l.mailed(contract.MailVerificationExpired); len(exp) != 1 || exp[0].at != 7*24*time.Hour {
		t.Fatalf("expiry mail %+v", exp)
	}
	if l.erased != 0 || l.shred != 0 {
		t.Fatal("an unverified request erased data")
	}
}

func TestGDPRDueDateIsOneCalendarMonth(t *testing.T) {
	for start, want := range map[time.Time]time.Time{
		time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC): time.Date(2027, 2, 28, 10, 0, 0, 0, time.UTC),
		time.Date(2028, 1, 31, 10, 0, 0, 0, time.UTC): time.Date(2028, 2, 29, 10, 0, 0, 0, time.UTC),
	} {
		l := newLifecycle(t, start)
		l.update(time.Hour, contract.UpdateCancel, contract.OperatorAction{Actor: "operator:k", Reason: "test over"})
		v := l.run(contract.RequestInput{Type: domain.TypeAccess, Jurisdiction: "gdpr", Policy: policyGDPR()})
		if !v.DueAt.Equal(want) {
			t.Errorf("received %s: due %s, want %s", start.Format("2 Jan 2006"), v.DueAt.Format("2 Jan 2006"), want.Format("2 Jan 2006"))
		}
	}
	// A stricter company promise wins.
	l := newLifecycle(t, jan15)
	l.update(time.Hour, contract.UpdateCancel, contract.OperatorAction{Actor: "operator:k", Reason: "test over"})
	p := policyGDPR()
	p.CompanyDue = domain.Period{Days: 7}
	if v := l.run(contract.RequestInput{Type: domain.TypeAccess, Jurisdiction: "gdpr", Policy: p}); !v.DueAt.Equal(jan15.AddDate(0, 0, 7)) {
		t.Errorf("due %s, want the company's 7 days", v.DueAt)
	}
}

func TestCCPAReceiptIsConfirmedWithin10BusinessDays(t *testing.T) {
	friday := time.Date(2027, 1, 1, 17, 0, 0, 0, time.UTC)
	l := newLifecycle(t, friday)
	l.update(time.Hour, contract.UpdateCancel, contract.OperatorAction{Actor: "operator:k", Reason: "test over"})
	p := policyGDPR()
	p.Due, p.MaxExtension, p.ConfirmWithin = domain.Period{Days: 45}, domain.Period{Days: 45}, domain.Period{BusinessDays: 10}
	v := l.run(contract.RequestInput{Type: domain.TypeAccess, Jurisdiction: "ccpa", Policy: p})
	if want := time.Date(2027, 1, 15, 17, 0, 0, 0, time.UTC); !v.ConfirmBy.Equal(want) {
		t.Fatalf("confirm by %s, want %s (10 business days)", v.ConfirmBy, want)
	}
	receipts := l.mailed(contract.MailReceipt)
	if len(receipts) != 1 || v.ConfirmedAt.IsZero() || v.ConfirmedAt.After(v.ConfirmBy) {
		t.Fatalf("receipt %+v confirmed at %s", receipts, v.ConfirmedAt)
	}
	if !v.DueAt.Equal(friday.AddDate(0, 0, 45)) {
		t.Fatalf("CCPA due %s, want 45 days", v.DueAt)
	}
}

// A request fulfilled by hand that nobody finishes: the privacy team is
// reminded 3 days and 1 day before the due date, then told it is overdue.
func TestOperatorsAreRemindedThenEscalated(t *testing.T) {
	l := newLifecycle(t, jan15)
	due := jan15.AddDate(0, 1, 0)
	l.update(due.Sub(jan15)+48*time.Hour, contract.UpdateComplete, contract.OperatorAction{Actor: "operator:k", Lines: []string{"Sent the export by hand"}})
	v := l.run(contract.RequestInput{Type: domain.TypeAccess, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: policyGDPR()})
	var team []sent
	for _, m := range l.mails {
		if m.team {
			team = append(team, m)
		}
	}
	want := []struct {
		template string
		at       time.Duration
	}{
		{contract.MailOperatorReminder, due.Sub(jan15) - 72*time.Hour},
		{contract.MailOperatorReminder, due.Sub(jan15) - 24*time.Hour},
		{contract.MailOperatorEscalation, due.Sub(jan15)},
	}
	if len(team) != len(want) {
		t.Fatalf("team mails %+v", team)
	}
	for i, w := range want {
		if team[i].template != w.template || team[i].at != w.at {
			t.Errorf("team mail %d: %s at %s, want %s at %s", i, team[i].template, team[i].at, w.template, w.at)
		}
	}
	if v.Status != domain.StatusCompleted || v.EscalatedAt.IsZero() || !strings.Contains(strings.Join(v.Outcome, "\n"), "by hand") {
		t.Fatalf("view %+v", v)
	}
	if c := l.mailed(contract.MailCompleted); len(c) != 1 {
		t.Fatalf("completion mails %+v", c)
	}
}

func TestExtensionIsMailedBeforeTheOriginalDate(t *testing.T) {
	l := newLifecycle(t, jan15)
	original := jan15.AddDate(0, 1, 0)
	tooLong := l.update(10*24*time.Hour, contract.UpdateExtend, contract.OperatorAction{Actor: "operator:k", Reason: "complex", By: domain.Period{Months: 3}})
	noReason := l.update(10*24*time.Hour, contract.UpdateExtend, contract.OperatorAction{Actor: "operator:k", By: domain.Period{Months: 1}})
	ok := l.update(20*24*time.Hour, contract.UpdateExtend, contract.OperatorAction{Actor: "operator:k", Reason: "many systems", By: domain.Period{Months: 2}})
	late := l.update(original.Sub(jan15)+time.Hour, contract.UpdateExtend, contract.OperatorAction{Actor: "operator:k", Reason: "more", By: domain.Period{Days: 1}})
	l.update(40*24*time.Hour, contract.UpdateComplete, contract.OperatorAction{Actor: "operator:k", Lines: []string{"done by hand"}})
	v := l.run(contract.RequestInput{Type: domain.TypeAccess, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: policyGDPR()})

	refusedAs(t, tooLong, contract.RefusedInput)
	refusedAs(t, noReason, contract.RefusedInput)
	refusedAs(t, late, contract.RefusedState)
	if ok.rejected != nil || ok.err != nil {
		t.Fatalf("extension: %+v", ok)
	}
	ext := l.mailed(contract.MailExtension)
	if len(ext) != 1 || ext[0].at != 20*24*time.Hour || !jan15.Add(ext[0].at).Before(original) {
		t.Fatalf("extension mails %+v", ext)
	}
	if !ext[0].data.DueDate.Equal(original.AddDate(0, 2, 0)) || !ext[0].data.OriginalDueDate.Equal(original) || ext[0].data.Reason != "many systems" {
		t.Fatalf("extension mail data %+v", ext[0].data)
	}
	if !v.DueAt.Equal(original.AddDate(0, 2, 0)) || len(v.Extensions) != 1 {
		t.Fatalf("due %s extensions %+v", v.DueAt, v.Extensions)
	}
	// No reminder fired for the original date once it moved.
	for _, m := range l.mails {
		if m.team {
			t.Errorf("unexpected team mail %+v", m)
		}
	}
}

func TestApprovalDenialAndErasure(t *testing.T) {
	p := policyGDPR()
	p.RequireApproval, p.FulfilByHand = true, false

	l := newLifecycle(t, jan15)
	deny := l.update(time.Hour, contract.UpdateDeny, contract.OperatorAction{Actor: "operator:k", Reason: "manifestly unfounded"})
	v := l.run(contract.RequestInput{Type: domain.TypeErasure, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: p})
	if deny.err != nil || v.Status != domain.StatusDenied || v.Reason != "manifestly unfounded" || l.erased != 0 {
		t.Fatalf("denied: %+v %+v", deny, v)
	}
	if d := l.mailed(contract.MailDenied); len(d) != 1 || d[0].data.Reason != "manifestly unfounded" {
		t.Fatalf("denial mail %+v", d)
	}

	l = newLifecycle(t, jan15)
	approve := l.update(time.Hour, contract.UpdateApprove, contract.OperatorAction{Actor: "operator:k"})
	v = l.run(contract.RequestInput{Type: domain.TypeErasure, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", HasUserID: true, Policy: p})
	if approve.err != nil || v.Status != domain.StatusCompleted || l.erased != 1 || l.shred != 1 {
		t.Fatalf("approved erasure: %+v erased %d shredded %d", v, l.erased, l.shred)
	}
	done := l.mailed(contract.MailCompleted)
	if len(done) != 1 || !strings.Contains(strings.Join(done[0].data.Lines, "\n"), "Deleted 6 files from b/p/") {
		t.Fatalf("completion mail %+v", done)
	}
	// The approval's audit entry is written beside the work (recordLater),
	// so it may land after the completion's.
	if l.actions[0] != "request.received" || !slices.Contains(l.actions, "request.approved") ||
		indexOf(l.actions, "request.completed") < indexOf(l.actions, "request.in_progress") {
		t.Fatalf("audit actions %v", l.actions)
	}
}

// A request runs its erasure itself (leanRequest): no EraseSubject
// workflow, the plan and the ledger in one activity, the database and S3
// erased and verified in one more, each processor asked by its own, the
// key destroyed by a local activity; the erasure's progress is the
// request's QueryErasure.
func TestARequestRunsItsErasureItself(t *testing.T) {
	p := policyGDPR()
	p.FulfilByHand = false
	l := newLifecycle(t, jan15)
	var children, activities []string
	local := map[string]int{}
	l.env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		children = append(children, info.WorkflowType.Name)
	})
	var planned time.Duration
	l.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		activities = append(activities, info.ActivityType.Name)
		if info.ActivityType.Name == "PlanAndRecordErasure" {
			planned = l.since()
		}
	})
	l.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		local[info.ActivityType.Name]++
	})
	// The receipt's mail fails twice (retried after 1 s, then 2 s): the
	// backend vouched for the person, so the work does not wait for it,
	// and no later mail goes before it.
	l.receiptFails(2)
	v := l.run(contract.RequestInput{RequestID: "req_in", Type: domain.TypeErasure, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: p})
	if v.Status != domain.StatusCompleted || l.shred != 1 || len(v.Systems) != 5 {
		t.Fatalf("status %s, shredded %d, systems %+v", v.Status, l.shred, v.Systems)
	}
	var persons []sent
	for _, m := range l.mails {
		if !m.team {
			persons = append(persons, m)
		}
	}
	if len(persons) != 2 || persons[0].template != contract.MailReceipt || persons[1].template != contract.MailCompleted ||
		persons[0].at < 3*time.Second || planned >= persons[0].at || v.ConfirmedAt.Sub(jan15) != persons[0].at {
		t.Fatalf("mails %+v, plan at %s, confirmed %s: want the plan before the receipt went (3 s), and the receipt first", persons, planned, v.ConfirmedAt)
	}
	for _, s := range v.Systems {
		if s.Status != contract.StepDone {
			t.Fatalf("system %+v not done", s)
		}
	}
	if slices.Contains(children, contract.WorkflowEraseSubject) {
		t.Fatalf("children %v: the request started an EraseSubject workflow", children)
	}
	// What outlives the request is one workflow: stripe's follow-up (paypal,
	// settled by its own workflow, starts its own), the backups watch and
	// the hold on demo.purchases.
	if want := []string{contract.WorkflowEraseAtProcessor, contract.WorkflowAfterErasure}; !slices.Equal(children, want) {
		t.Fatalf("children %v, want %v", children, want)
	}
	if after := l.systems.after; len(after) != 1 || len(after[0].FollowUps) != 1 || after[0].FollowUps[0].Processor != "stripe" ||
		after[0].FollowUps[0].DueAt.IsZero() || after[0].Backups == nil || !after[0].Backups.FirstCheckLater ||
		len(after[0].Backups.Locations) != 1 || len(after[0].Holds) != 1 || after[0].Holds[0].Table != "demo.purchases" || after[0].SubjectRef == "" {
		t.Fatalf("what outlives the request: %+v", after)
	}
	for _, a := range []string{"PlanErasure", "RecordErasure", "EraseTables", "EraseObjects", "VerifyErasure", "ShredSubject"} {
		if slices.Contains(activities, a) {
			t.Fatalf("activities %v: %s ran as an activity of its own", activities, a)
		}
	}
	// PayPal, settled by its own workflow, has its result recorded after;
	// the receipt's mail was tried three times.
	want := map[string]int{"SendRequestMail": 4, "PlanAndRecordErasure": 1, "EraseOwnSystems": 1, "AskProcessor": 2, "RecordProcessorResult": 1}
	got := map[string]int{}
	for _, a := range activities {
		got[a]++
	}
	if !maps.Equal(got, want) {
		t.Fatalf("activities %v, want %v", got, want)
	}
	if local["ShredSubject"] != 1 {
		t.Fatalf("local activities %v: want the key destroyed by one", local)
	}
	if f := l.systems; f.calls["plan"] != 1 || f.calls["ledger"] != 1 || f.calls["verify"] != 1 || f.order[1] != "ledger" {
		t.Fatalf("calls %v order %v: want one plan, the ledger before anything is erased, one verification", f.calls, f.order)
	}
	if i := indexOf(l.systems.order, "verify"); i < lastIndexOf(l.systems.order, "objects") || i < indexOf(l.systems.order, "tables") {
		t.Fatalf("order %v: the verification comes after the database and S3", l.systems.order)
	}
	res, err := l.env.QueryWorkflow(contract.QueryErasure)
	if err != nil {
		t.Fatal(err)
	}
	var progress contract.ErasureProgress
	if err := res.Get(&progress); err != nil {
		t.Fatal(err)
	}
	if progress.Status != domain.StatusCompleted || progress.Receipt == nil || len(progress.Systems) != 5 || len(progress.Answered) != 1 {
		t.Fatalf("erasure progress %+v", progress)
	}
	lines := strings.Join(progress.Receipt.Lines(), "\n")
	for _, w := range []string{"demo.projects", "b/p/", "stripe"} {
		if !strings.Contains(lines, w) {
			t.Fatalf("receipt %s: no %s", lines, w)
		}
	}
}

// A deactivation the backend vouches for starts while its receipt is
// mailed, but the deactivation mails the person itself: it starts only
// once the receipt went, so the person never reads its notice first.
func TestADeactivationStartsAfterItsReceiptWent(t *testing.T) {
	p := policyGDPR()
	p.FulfilByHand = false
	p.DeactivationGrace = 30 * 24 * time.Hour
	l := newLifecycle(t, jan15)
	var startedAt time.Duration = -1
	l.env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in contract.DeactivationInput) error {
		startedAt = l.since()
		return nil
	}, workflowName(contract.WorkflowDeactivation))
	l.receiptFails(2)
	v := l.run(contract.RequestInput{RequestID: "req_d", Type: domain.TypeDeactivation, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: p})
	receipts := l.mailed(contract.MailReceipt)
	if v.Status != domain.StatusCompleted || len(receipts) != 1 || startedAt < 0 || startedAt < receipts[0].at || receipts[0].at < 3*time.Second {
		t.Fatalf("status %s, receipts %+v, deactivation started at %s: want it started after the receipt went (3 s, after two failures)", v.Status, receipts, startedAt)
	}
}

func workflowName(name string) workflow.RegisterOptions { return workflow.RegisterOptions{Name: name} }

func TestSaleOptOutNeedsNoVerificationAndMeetsItsDeadline(t *testing.T) {
	l := newLifecycle(t, jan15)
	p := policyGDPR()
	p.Due, p.MaxExtension, p.FulfilByHand = domain.Period{BusinessDays: 15}, domain.Period{}, false
	// The API submits an opt-out of sale or sharing as already verified: CCPA asks for no verification.
	v := l.run(contract.RequestInput{Type: domain.TypeConsent, Jurisdiction: "ccpa", PreVerified: true, SubmittedBy: "subject", Policy: p})
	if v.Status != domain.StatusCompleted {
		t.Fatalf("status %s", v.Status)
	}
	if len(l.mailed("code")) != 0 || v.Verification != nil {
		t.Fatal("an opt-out of sale asked for verification")
	}
	if want := domain.AddBusinessDays(jan15, 15); !v.DueAt.Equal(want) {
		t.Fatalf("due %s, want 15 business days (%s)", v.DueAt, want)
	}
	done := v.History[len(v.History)-1].At
	if done.After(v.DueAt) {
		t.Fatalf("completed %s, after the deadline %s", done, v.DueAt)
	}
	joined := strings.Join(v.Outcome, "\n")
	if !strings.Contains(joined, "crm: applied") || !strings.Contains(joined, "broken: refused the change") {
		t.Fatalf("outcome %q: want every processor, and the refusing one handed to the team", joined)
	}
}
