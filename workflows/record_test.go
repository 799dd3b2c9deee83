package workflows_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// One way to record and tell (workflows/record.go), seen from three
// workflows: an audit entry that fails for good is retried until it is
// written and the privacy team is told once; a mail to the person that
// cannot go becomes a task for the team; a team mail that cannot go is
// recorded, and the workflow goes on.

func TestAnAuditEntryThatFailsForGoodIsRetriedUntilWritten(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	start := time.Date(2027, 2, 1, 3, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	fake(env, ledger.ReconcilePage, func(context.Context, contract.ReconcilePageInput) (contract.ReconcilePageResult, error) {
		return contract.ReconcilePageResult{Scanned: 10, Done: true}, nil
	})
	fake(env, lc.ShredSubject, func(context.Context, string) error { return nil })
	var attempts []time.Duration
	var written []contract.AuditInput
	fake(env, lc.AppendAudit, func(_ context.Context, in contract.AuditInput) error {
		attempts = append(attempts, env.Now().Sub(start))
		if len(attempts) <= 3 { // the audit table is missing until someone migrates
			return temporal.NewNonRetryableApplicationError("relation does not exist", "DatabaseError", nil)
		}
		written = append(written, in)
		return nil
	})
	var mails []contract.SendMailInput
	fake(env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		mails = append(mails, in)
		return nil
	})

	env.ExecuteWorkflow(workflows.RestoreReconcile, contract.ReconcileInput{Requester: "operator:key_abc"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("the reconcile failed instead of retrying its audit entry: %v", err)
	}
	if len(written) != 1 || written[0].Action != "erasure.reconciled" || !strings.HasSuffix(written[0].Key, ":erasure.reconciled") {
		t.Fatalf("written %+v after %d attempts", written, len(attempts))
	}
	if len(attempts) != 4 || attempts[3]-attempts[0] < 3*time.Hour {
		t.Fatalf("attempts at %v: want four, an hour or more apart", attempts)
	}
	if len(mails) != 1 {
		t.Fatalf("the privacy team got %d mails, want one task: %+v", len(mails), mails)
	}
	m := mails[0]
	if m.Template != contract.MailOperatorTask || !m.ToPrivacyTeam || m.Key != written[0].Key+":audit-failed" {
		t.Fatalf("mail %+v", m)
	}
	if line := strings.Join(m.Data.Lines, " "); !strings.Contains(line, "erasure.reconciled") || !strings.Contains(line, "DatabaseError") {
		t.Fatalf("the task does not say what failed: %q", line)
	}
}

func TestARequestMailThatCannotGoBecomesATaskForTheTeam(t *testing.T) {
	l := newLifecycle(t, jan15)
	l.mailFails = func(in contract.SendMailInput) error {
		if in.Template == contract.MailCompleted {
			return temporal.NewNonRetryableApplicationError("the person's identity was shredded", "IdentityShredded", nil)
		}
		return nil
	}
	l.verify(time.Minute, code(1))
	l.update(time.Hour, contract.UpdateComplete, contract.OperatorAction{Actor: "operator:k", Lines: []string{"done by hand"}})
	v := l.run(contract.RequestInput{RequestID: "req_t", Type: domain.TypeAccess, Jurisdiction: "gdpr", Policy: policyGDPR()})
	if v.Status != domain.StatusCompleted {
		t.Fatalf("status %s: a mail that cannot go stopped the request", v.Status)
	}
	if !slices.Contains(l.actions, "mail.not_sent") {
		t.Fatalf("the trail does not say the mail was not sent: %v", l.actions)
	}
	tasks := l.mailed(contract.MailOperatorTask)
	if len(tasks) != 1 || !tasks[0].team {
		t.Fatalf("team tasks %+v", tasks)
	}
	if line := strings.Join(tasks[0].data.Lines, " "); !strings.Contains(line, `"completed"`) || !strings.Contains(line, "IdentityShredded") {
		t.Fatalf("the task does not say which mail or why: %q", line)
	}
	if !tasks[0].data.DueDate.Equal(v.DueAt) {
		t.Fatalf("task due %s, want the request's %s", tasks[0].data.DueDate, v.DueAt)
	}
	if !slices.Contains(l.keys, "req_t:completed:0:task") {
		t.Fatalf("keys %v: want the task keyed after the mail it replaces", l.keys)
	}
}

func TestARequestTransitionThatFailsForGoodWaitsAndIsWritten(t *testing.T) {
	l := newLifecycle(t, jan15)
	failures := 0
	l.recordFails = func(in contract.TransitionInput) error {
		if in.Action == "request.completed" && failures < 2 {
			failures++
			return temporal.NewNonRetryableApplicationError("audit request.completed refused", "AuditRefused", nil)
		}
		return nil
	}
	l.verify(time.Minute, code(1))
	l.update(time.Hour, contract.UpdateComplete, contract.OperatorAction{Actor: "operator:k", Lines: []string{"done by hand"}})
	v := l.run(contract.RequestInput{RequestID: "req_t", Type: domain.TypeAccess, Jurisdiction: "gdpr", Policy: policyGDPR()})
	if failures != 2 || !slices.Contains(l.actions, "request.completed") || v.Status != domain.StatusCompleted {
		t.Fatalf("failures %d actions %v status %s", failures, l.actions, v.Status)
	}
	if tasks := l.mailed(contract.MailOperatorTask); len(tasks) != 1 {
		t.Fatalf("team tasks %+v: want one", tasks)
	}
}

func TestATeamMailThatCannotGoIsRecordedAndTheWatchGoesOn(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(jan15)
	var audits []contract.AuditInput
	fake(env, lc.AppendAudit, func(_ context.Context, in contract.AuditInput) error {
		audits = append(audits, in)
		return nil
	})
	mails := 0
	fake(env, lc.SendRequestMail, func(context.Context, contract.SendMailInput) error {
		mails++
		return temporal.NewNonRetryableApplicationError("no address to write to", "NoEmail", nil)
	})
	fake(env, ledger.CountBackupsBefore, func(context.Context, contract.CountBackupsInput) (contract.CountBackupsResult, error) {
		return contract.CountBackupsResult{}, nil
	})
	fake(env, ledger.MarkBackupsClear, func(context.Context, contract.MarkBackupsClearInput) error { return nil })
	env.ExecuteWorkflow(workflows.AwaitBackupRotation, contract.BackupWatchInput{
		RequestID: "req_b", ErasedAt: jan15, Promise: 30 * aDay,
		Locations: []contract.BackupLocation{{Name: "nightly", Bucket: "b", Prefix: "p/", Rotation: 45 * aDay}},
	})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("the watch stopped on a mail: %v", err)
	}
	if mails != 1 {
		t.Fatalf("%d mails tried: a team mail that cannot go must not become a task mailed to the same team", mails)
	}
	var notSent, clear bool
	for _, a := range audits {
		notSent = notSent || a.Action == "mail.not_sent" && a.Detail["to"] == "privacy_team" && a.Detail["why"] == "NoEmail"
		clear = clear || a.Action == "erasure.backups_clear"
	}
	if !notSent || !clear {
		t.Fatalf("audits %+v: want mail.not_sent (privacy team, NoEmail) and the clear", audits)
	}
}
