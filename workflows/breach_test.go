package workflows_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// breachFake stands in for the notice activities: a ledger of people, sent or not.
type breachFake struct {
	env         *testsuite.TestWorkflowEnvironment
	aware       time.Time
	people      map[string]bool // id -> sent
	slowUntil   time.Time       // sending fails (retryably) until then
	escalations []time.Duration
	reports     []time.Duration
}

func newBreach(t *testing.T, aware time.Time) *breachFake {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	b := &breachFake{env: s.NewTestWorkflowEnvironment(), aware: aware, people: map[string]bool{}}
	b.env.SetStartTime(aware.Add(time.Hour)) // declared an hour after the team became aware
	b.env.SetTestTimeout(30 * time.Second)
	b.env.RegisterWorkflowWithOptions(workflows.SendNotices, workflow.RegisterOptions{Name: contract.WorkflowSendNotices})
	since := func() time.Duration { return b.env.Now().Sub(aware) }
	fake(b.env, lc.AppendAudit, func(context.Context, contract.AuditInput) error { return nil })
	fake(b.env, notices.RenderBreachNotice, func(context.Context, contract.Incident) (contract.NoticeMessage, error) {
		return contract.NoticeMessage{Subject: "s", Text: "t"}, nil
	})
	fake(b.env, notices.CollectAffected, func(_ context.Context, in contract.CollectInput) error {
		if in.Source.Selector == "first" {
			for _, id := range []string{"u1", "u2", "u3"} {
				if _, ok := b.people[id]; !ok {
					b.people[id] = false
				}
			}
		} else if _, ok := b.people["late"]; !ok {
			b.people["late"] = false
		}
		return nil
	})
	fake(b.env, notices.NoticeCounts, func(context.Context, string) (contract.NoticeCounts, error) {
		var c contract.NoticeCounts
		for _, sent := range b.people {
			c.Found++
			if sent {
				c.Sent++
			} else {
				c.Pending++
			}
		}
		return c, nil
	})
	fake(b.env, notices.SendNoticeBatch, func(_ context.Context, in contract.SendBatchInput) (contract.SendBatchResult, error) {
		if b.env.Now().Before(b.slowUntil) {
			// SendGrid answers 503 with a long Retry-After (the test env allows 10 attempts).
			return contract.SendBatchResult{}, temporal.NewApplicationErrorWithOptions("503 from SendGrid", "Retry", temporal.ApplicationErrorOptions{NextRetryDelay: 5 * time.Hour})
		}
		res := contract.SendBatchResult{}
		for id, sent := range b.people {
			if !sent {
				b.people[id] = true
				res.Claimed++
				res.Sent++
			}
		}
		res.Done = true
		return res, nil
	})
	fake(b.env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		if in.Template == contract.MailIncidentEscalation && in.ToPrivacyTeam {
			b.escalations = append(b.escalations, since())
		}
		return nil
	})
	fake(b.env, notices.WriteAuthorityReport, func(_ context.Context, in contract.ReportInput) (string, error) {
		b.reports = append(b.reports, since())
		return "s3://reports/x", nil
	})
	fake(b.env, notices.WritePublicNotice, func(context.Context, contract.ReportInput) (string, error) { return "s3://public", nil })
	return b
}

func incident(aware time.Time) contract.Incident {
	return contract.Incident{ID: "inc_1", AwareAt: aware, WhatHappened: "x", DataCategories: []string{"email"}, Measures: "m", Contact: "c",
		NotificationRequired: true, Affected: contract.AffectedSource{Selector: "first"},
		NotifyWithin: 48 * time.Hour, ReportWithin: 72 * time.Hour, EscalateAt: []float64{0.5, 0.8}, KeepOpen: 30 * 24 * time.Hour, DeclaredBy: "operator:k"}
}

func TestBreachEscalatesWhileSendingIsSlowAndReportsBefore72Hours(t *testing.T) {
	aware := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	b := newBreach(t, aware)
	b.slowUntil = aware.Add(40 * time.Hour) // SendGrid keeps failing for 40 hours
	b.env.RegisterDelayedCallback(func() {
		b.env.UpdateWorkflow(contract.UpdateCloseIncident, "close", callbacks{&outcome{}})
	}, 50*time.Hour)
	b.env.ExecuteWorkflow(workflows.BreachNotification, incident(aware))
	if err := b.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(b.escalations) != 2 || b.escalations[0] != 24*time.Hour || b.escalations[1] != time.Duration(0.8*48*float64(time.Hour)) {
		t.Fatalf("escalations at %v, want 24h and 38h24m", b.escalations)
	}
	if len(b.reports) == 0 || b.reports[0] >= 72*time.Hour {
		t.Fatalf("reports at %v, want the first before 72 hours", b.reports)
	}
	for id, sent := range b.people {
		if !sent {
			t.Errorf("%s never notified", id)
		}
	}
}

func TestAPersonAddedLaterIsNotifiedAndNobodyTwice(t *testing.T) {
	aware := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	b := newBreach(t, aware)
	added := &outcome{}
	b.env.RegisterDelayedCallback(func() {
		b.env.UpdateWorkflow(contract.UpdateAddPeople, "add", callbacks{added}, contract.AffectedSource{ObjectKey: "incidents/inc_1/more.txt"})
	}, 5*time.Hour)
	b.env.RegisterDelayedCallback(func() {
		b.env.UpdateWorkflow(contract.UpdateCloseIncident, "close", callbacks{&outcome{}})
	}, 10*time.Hour)
	b.env.ExecuteWorkflow(workflows.BreachNotification, incident(aware))
	if err := b.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var v contract.IncidentView
	_ = b.env.GetWorkflowResult(&v)
	if added.rejected != nil || !b.people["late"] || v.Counts.Sent != 4 || v.Status != contract.IncidentClosed {
		t.Fatalf("late person: %+v, people %v, view %+v", added, b.people, v)
	}
	if len(b.escalations) != 0 {
		t.Fatalf("escalated although everything went in time: %v", b.escalations)
	}
}

func TestABreachWithoutNotificationIsStillRecorded(t *testing.T) {
	aware := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	b := newBreach(t, aware)
	in := incident(aware)
	in.NotificationRequired, in.NoNotificationReason = false, "encrypted laptop, key not exposed"
	b.env.ExecuteWorkflow(workflows.BreachNotification, in)
	var v contract.IncidentView
	if err := b.env.GetWorkflowResult(&v); err != nil {
		t.Fatal(err)
	}
	if v.Status != contract.IncidentRecorded || len(b.reports) != 1 || len(b.people) != 0 {
		t.Fatalf("view %+v reports %v people %v", v, b.reports, b.people)
	}
}
