package workflows_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// accountLife runs AccountDeactivation with time skipping and records when
// each thing happened.
type accountLife struct {
	env      *testsuite.TestWorkflowEnvironment
	start    time.Time
	statuses []string
	mails    map[string]time.Duration
	erasedAt time.Duration
	shredded bool
	failures int // the first erasures of the tables that fail for good
	tasks    []contract.SendMailInput
	systems  *fakeSystems
}

func newAccountLife(t *testing.T) *accountLife {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	a := &accountLife{env: s.NewTestWorkflowEnvironment(), start: jan15, mails: map[string]time.Duration{}, erasedAt: -1}
	a.env.SetStartTime(jan15)
	a.env.RegisterWorkflowWithOptions(workflows.EraseSubject, workflow.RegisterOptions{Name: contract.WorkflowEraseSubject})
	since := func() time.Duration { return a.env.Now().Sub(a.start) }
	fake(a.env, accounts.SetAccountStatus, func(_ context.Context, in contract.AccountStatusInput) error {
		a.statuses = append(a.statuses, in.Status)
		return nil
	})
	fake(a.env, lc.AppendAudit, func(context.Context, contract.AuditInput) error { return nil })
	fake(a.env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		a.mails[in.Template] = since()
		if in.Template == contract.MailOperatorTask {
			a.tasks = append(a.tasks, in)
		}
		return nil
	})
	a.systems = newFakeSystems()
	a.systems.tables = func(context.Context, contract.EraseTablesInput) (contract.EraseTablesResult, error) {
		if a.failures > 0 {
			a.failures--
			return contract.EraseTablesResult{}, temporal.NewNonRetryableApplicationError("erase tables: PostgreSQL error 42501", "DatabaseError", nil)
		}
		a.erasedAt = since()
		return contract.EraseTablesResult{Tables: []contract.TableOutcome{{Table: "demo.projects", Action: "deleted", Rows: 2}}}, nil
	}
	a.systems.register(a.env)
	fake(a.env, lc.ShredSubject, func(context.Context, string) error { a.shredded = true; return nil })
	return a
}

func (a *accountLife) run(t *testing.T) contract.DeactivationView {
	t.Helper()
	a.env.ExecuteWorkflow(workflows.AccountDeactivation, contract.DeactivationInput{
		SubjectRef: "sr_x", HasEmail: true, GracePeriod: 30 * aDay, ReminderBefore: 7 * aDay, RequestedBy: "backend:k",
	})
	if err := a.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var v contract.DeactivationView
	if err := a.env.GetWorkflowResult(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

const aDay = 24 * time.Hour

func TestRestoreOnDay29KeepsEverything(t *testing.T) {
	a := newAccountLife(t)
	restore := &outcome{}
	a.env.RegisterDelayedCallback(func() {
		a.env.UpdateWorkflow(contract.UpdateRestore, "r1", callbacks{restore}, contract.RestoreInput{Actor: "backend:k"})
	}, 29*aDay)
	v := a.run(t)
	if restore.rejected != nil || restore.err != nil || v.Status != contract.AccountRestored {
		t.Fatalf("restore: %+v view %+v", restore, v)
	}
	if a.erasedAt >= 0 || a.shredded {
		t.Fatal("a restored account was erased")
	}
	if len(a.statuses) != 2 || a.statuses[0] != contract.AccountDeactivated || a.statuses[1] != "active" {
		t.Fatalf("account status changes %v", a.statuses)
	}
	if _, ok := a.mails[contract.MailAccountRestored]; !ok {
		t.Fatal("no restore mail")
	}
}

func TestNoRestoreErasesOnDay30NotBefore(t *testing.T) {
	a := newAccountLife(t)
	late := &outcome{}
	a.env.RegisterDelayedCallback(func() {
		a.env.UpdateWorkflow(contract.UpdateRestore, "r1", callbacks{late}, contract.RestoreInput{Actor: "backend:k"})
	}, 30*aDay+time.Minute)
	v := a.run(t)
	if a.erasedAt != 30*aDay {
		t.Fatalf("erased after %s, want exactly 30 days", a.erasedAt)
	}
	if v.Status != contract.AccountErased || !a.shredded || len(v.Outcome) == 0 {
		t.Fatalf("view %+v shredded %v", v, a.shredded)
	}
	// The erasure ran in the deactivation (deactivation-erases-itself):
	// plan and ledger, then its own systems and the processors, and one
	// AfterErasure for what outlives it.
	f := a.systems
	if f.calls["plan"] != 1 || f.calls["verify"] != 1 || f.calls["ask stripe"] != 1 || f.calls["ask paypal"] != 1 || f.calls["backups watch"] != 0 {
		t.Fatalf("calls %v", f.calls)
	}
	if len(f.after) != 1 || f.after[0].RequestID != contract.DeactivationWorkflowID("sr_x") || len(f.after[0].FollowUps) != 1 ||
		f.after[0].Backups == nil {
		t.Fatalf("what outlives the erasure: %+v, want one AfterErasure with stripe's follow-up and the backups", f.after)
	}
	if at, ok := a.mails[contract.MailDeactivationReminder]; !ok || at != 23*aDay {
		t.Fatalf("reminder at %s (%v), want aDay 23", at, ok)
	}
	if at := a.mails[contract.MailDeactivationNotice]; at != 0 {
		t.Fatalf("notice at %s, want at once", at)
	}
	if at, ok := a.mails[contract.MailAccountErased]; !ok || at != 30*aDay {
		t.Fatalf("erasure mail at %s", at)
	}
	if late.done && late.rejected == nil && late.err == nil {
		t.Fatal("a restore after the end was accepted")
	}
}

func TestIDDocumentGoesBy60DaysAfterTheTicketCloses(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(jan15)
	closed := jan15.Add(-10 * aDay) // reported 10 days late
	var deletedAt time.Time
	fake(env, accounts.DeleteTicketDocuments, func(_ context.Context, in contract.TicketDocumentsInput) (contract.IDDocumentResult, error) {
		deletedAt = env.Now()
		return contract.IDDocumentResult{Objects: 1, Rows: 1}, nil
	})
	env.ExecuteWorkflow(workflows.IDDocumentDeletion, contract.IDDocumentInput{Ticket: "T-1", ClosedAt: closed, DeleteAfter: 60 * aDay})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if want := closed.Add(60 * aDay); !deletedAt.Equal(want) {
		t.Fatalf("deleted at %s, want %s (60 days after the ticket closed)", deletedAt, want)
	}
}

func TestSweepContinuesAsNewToKeepItsHistoryBounded(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	pages := 0
	fake(env, accounts.SweepInactivePage, func(_ context.Context, in contract.SweepPageInput) (contract.SweepPageResult, error) {
		pages++
		return contract.SweepPageResult{Scanned: 500, Next: contract.SweepCursor{ID: "x"}, Done: false}, nil
	})
	env.ExecuteWorkflow(workflows.InactiveAccountSweep, contract.SweepInput{Policy: contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}}})
	err := env.GetWorkflowError()
	if err == nil || !workflow.IsContinueAsNewError(err) {
		t.Fatalf("want continue-as-new after a bounded number of pages, got %v", err)
	}
	if pages != 25 {
		t.Fatalf("%d pages in one run, want 25", pages)
	}
}

// An erasure at the end of the grace period that fails for good waits for
// the privacy team (told at once) instead of ending the workflow; their
// retry erases the account.
func TestAFailedAccountErasureWaitsForTheTeamsRetry(t *testing.T) {
	a := newAccountLife(t)
	a.failures = 1
	var waiting contract.DeactivationView
	a.env.RegisterDelayedCallback(func() {
		if res, err := a.env.QueryWorkflow(contract.QueryProgress); err == nil {
			_ = res.Get(&waiting)
		}
	}, 30*aDay+time.Hour)
	retry := &outcome{}
	a.env.RegisterDelayedCallback(func() {
		a.env.UpdateWorkflow(contract.UpdateRetry, "r1", callbacks{retry}, contract.OperatorAction{Actor: "operator:k"})
	}, 31*aDay)
	v := a.run(t)
	if waiting.Status != contract.AccountNeedsAttention || waiting.Attention == nil || waiting.Attention.Why != "ErasureIncomplete" {
		t.Fatalf("while waiting: %+v", waiting)
	}
	if retry.rejected != nil || retry.err != nil {
		t.Fatalf("retry: %+v", retry)
	}
	if v.Status != contract.AccountErased || a.erasedAt != 31*aDay || !a.shredded {
		t.Fatalf("view %+v erased at %s shredded %v", v, a.erasedAt, a.shredded)
	}
	if len(a.tasks) != 1 || !a.tasks[0].ToPrivacyTeam || !strings.Contains(a.tasks[0].Data.Lines[0], "deactivation/retry") {
		t.Fatalf("team tasks %+v", a.tasks)
	}
}
