package workflows_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Work that fails for good does not end a request: it waits as
// needs_attention, the privacy team is told at once, and an operator's
// retry runs the work again until it completes.
func TestAFailedErasureWaitsForTheTeamAndARetryCompletesIt(t *testing.T) {
	// A processor whose erasure ended in the first attempt is not asked again:
	// its recorded result goes into the receipt.
	l := failThenRetry(t, true)
	if n := l.systems.calls["ask stripe"]; n != 1 {
		t.Errorf("stripe was asked %d times, want once", n)
	}
	if n := l.systems.children["paypal deadline 168h0m0s"]; n != 1 {
		t.Errorf("paypal's erasure ran %d times, want once", n)
	}
	if l.systems.calls["earlier stripe"] != 1 || l.systems.calls["earlier paypal"] != 1 {
		t.Errorf("calls %v: the retry did not read the processors' earlier results", l.systems.calls)
	}
}

// A processor whose earlier outcome was never recorded (it ended before
// results were kept) is asked again rather than guessed in the receipt.
func TestARetryAsksAgainAProcessorWhoseEarlierOutcomeIsUnknown(t *testing.T) {
	l := failThenRetry(t, false)
	if n := l.systems.calls["ask stripe"]; n != 2 {
		t.Errorf("stripe was asked %d times, want twice (the first attempt, then asked again)", n)
	}
}

// Each attempt of a request's erasure starts the follow-ups of the
// processors it confirmed at once that no earlier attempt did (here the
// data map gained a processor before each retry), beside the earlier
// attempts' follow-ups still waiting: each under an id of its own, though
// every attempt runs in the same workflow run.
func TestEachRetryStartsTheFollowUpsOfWhatItConfirmed(t *testing.T) {
	p := policyGDPR()
	p.FulfilByHand = false
	l := newLifecycle(t, jan15)
	l.tablesFail = 2
	l.systems.keepsResults = true
	l.systems.followUpsWait = 60 * 24 * time.Hour
	l.systems.onPlan = func(n int, plan *contract.ErasurePlan) {
		if n > 1 {
			plan.Processors = append(plan.Processors, contract.PlannedProcessor{Name: fmt.Sprintf("added-before-attempt-%d", n), FollowUp: 30 * 24 * time.Hour})
		}
	}
	first := l.update(2*time.Hour, contract.UpdateRetry, contract.OperatorAction{Actor: "operator:k"})
	second := l.update(4*time.Hour, contract.UpdateRetry, contract.OperatorAction{Actor: "operator:k"})
	v := l.run(contract.RequestInput{RequestID: "req_f", Type: domain.TypeErasure, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: p})
	if first.err != nil || first.rejected != nil || second.err != nil || second.rejected != nil {
		t.Fatalf("retries: %+v %+v", first, second)
	}
	if v.Status != domain.StatusCompleted || l.erased != 3 {
		t.Fatalf("status %s attention %+v, tables erased %d times: want completed at the third attempt", v.Status, v.Attention, l.erased)
	}
	// The failed attempts start their follow-ups at once; the one that
	// completes puts its own in what outlives the request (AfterErasure).
	ids := l.systems.followUpIDs
	if len(ids) != 2 || ids[0] != "req_f-followup" || !strings.HasSuffix(ids[1], "-2") {
		t.Fatalf("follow-ups started %v: want one per failed attempt, each under its own id", ids)
	}
	after := l.systems.after
	if len(after) != 1 {
		t.Fatalf("%d AfterErasure workflows, want 1", len(after))
	}
	for _, c := range after[0].FollowUps {
		l.systems.calls["follow-up "+c.Processor]++
	}
	for _, name := range []string{"stripe", "added-before-attempt-2", "added-before-attempt-3"} {
		if n := l.systems.calls["follow-up "+name]; n != 1 {
			t.Errorf("%s followed up %d times, want once", name, n)
		}
	}
}

// A location that fails for good is the one the request says failed:
// the database and the location before it are done, and the privacy team
// is told what to fix, not that everything failed.
func TestTheFailedLocationIsTheOneNamed(t *testing.T) {
	p := policyGDPR()
	p.FulfilByHand = false
	l := newLifecycle(t, jan15)
	fails := 1
	l.systems.objects = func(_ context.Context, in contract.EraseObjectsInput) (contract.EraseObjectsResult, error) {
		if in.Location == 1 && fails > 0 {
			fails--
			return contract.EraseObjectsResult{}, temporal.NewNonRetryableApplicationError("user id cannot be used in an object key", "BadIdentifier", nil)
		}
		return contract.EraseObjectsResult{Location: l.systems.plan.Locations[in.Location], Objects: 6}, nil
	}
	var seen contract.RequestView
	var progress contract.ErasureProgress
	l.env.RegisterDelayedCallback(func() {
		if res, err := l.env.QueryWorkflow(contract.QueryProgress); err == nil {
			_ = res.Get(&seen)
		}
		if res, err := l.env.QueryWorkflow(contract.QueryErasure); err == nil {
			_ = res.Get(&progress)
		}
	}, time.Hour)
	l.update(2*time.Hour, contract.UpdateRetry, contract.OperatorAction{Actor: "operator:k"})
	v := l.run(contract.RequestInput{RequestID: "req_l", Type: domain.TypeErasure, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: p})
	if v.Status != domain.StatusCompleted {
		t.Fatalf("status %s: want completed after the retry", v.Status)
	}
	if seen.Status != domain.StatusNeedsAttention || seen.Attention == nil || !strings.Contains(seen.Attention.Failed, "bucket/ids/") ||
		strings.Contains(seen.Attention.Failed, "postgres") || strings.Contains(seen.Attention.Failed, "bucket/projects/") {
		t.Fatalf("while waiting: %s, attention %+v: want the second location named, and only it", seen.Status, seen.Attention)
	}
	status := map[string]string{}
	for _, s := range progress.Systems {
		status[s.System+" "+s.Name] = s.Status
	}
	if status["postgres application database"] != contract.StepDone || status["s3 bucket/projects/{user_id}/"] != contract.StepDone ||
		status["s3 bucket/ids/{user_id}/"] != contract.StepFailed {
		t.Fatalf("erasure progress while waiting %v", status)
	}
}

func failThenRetry(t *testing.T, keepsResults bool) *lifecycle {
	t.Helper()
	p := policyGDPR()
	p.FulfilByHand = false
	l := newLifecycle(t, jan15)
	l.tablesFail = 1
	l.systems.keepsResults = keepsResults
	var seen contract.RequestView
	l.env.RegisterDelayedCallback(func() {
		res, err := l.env.QueryWorkflow(contract.QueryProgress)
		if err == nil {
			_ = res.Get(&seen)
		}
	}, time.Hour)
	deny := l.update(90*time.Minute, contract.UpdateDeny, contract.OperatorAction{Actor: "operator:k", Reason: "unfounded"})
	retry := l.update(2*time.Hour, contract.UpdateRetry, contract.OperatorAction{Actor: "operator:k"})
	v := l.run(contract.RequestInput{RequestID: "req_a", Type: domain.TypeErasure, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: p})

	if seen.Status != domain.StatusNeedsAttention || seen.Attention == nil || seen.Attention.Why != "ErasureIncomplete" || !strings.Contains(seen.Attention.Failed, "postgres") {
		t.Fatalf("while waiting: status %s attention %+v", seen.Status, seen.Attention)
	}
	refusedAs(t, deny, contract.RefusedState) // half-erased: cancelled with a reason, never denied
	if retry.rejected != nil || retry.err != nil {
		t.Fatalf("retry: %+v", retry)
	}
	if v.Status != domain.StatusCompleted || v.Attention != nil || l.erased != 2 || l.shred != 1 {
		t.Fatalf("status %s attention %+v, tables erased %d times, shredded %d", v.Status, v.Attention, l.erased, l.shred)
	}
	i, j := slices.Index(l.actions, "request.needs_attention"), slices.Index(l.actions, "request.retried")
	if i < 0 || j < i || l.actions[len(l.actions)-1] != "request.completed" {
		t.Fatalf("actions %v", l.actions)
	}
	tasks := l.mailed(contract.MailOperatorTask)
	if len(tasks) != 1 || !tasks[0].team || tasks[0].at > time.Minute || !strings.Contains(tasks[0].data.Lines[0], "/v1/requests/req_a/retry") {
		t.Fatalf("team tasks %+v: want one at once, saying how to retry", tasks)
	}
	if c := l.mailed(contract.MailCompleted); len(c) != 1 || c[0].data.Receipt == nil || !strings.Contains(strings.Join(c[0].data.Receipt.Lines(), " "), "stripe: erasure confirmed") {
		t.Fatalf("the person's completion mail %+v: want the receipt with every processor", c)
	}
	return l
}

// While a request needs attention its deadline is kept: the team is
// reminded and then told it passed; closing it tells the person why.
func TestARequestThatNeedsAttentionKeepsItsDeadlineAndCanBeClosed(t *testing.T) {
	p := policyGDPR()
	p.FulfilByHand = false
	l := newLifecycle(t, jan15)
	l.tablesFail = 100
	due := jan15.AddDate(0, 1, 0)
	closeAt := due.Add(2 * 24 * time.Hour).Sub(jan15)
	closed := l.update(closeAt, contract.UpdateCancel, contract.OperatorAction{Actor: "operator:k", Reason: "The archive cannot be reached; we erased it by hand and wrote to you"})
	v := l.run(contract.RequestInput{RequestID: "req_b", Type: domain.TypeErasure, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", Policy: p})
	if closed.rejected != nil || v.Status != domain.StatusCancelled || l.shred != 0 {
		t.Fatalf("close: %+v status %s shredded %d", closed, v.Status, l.shred)
	}
	if r := l.mailed(contract.MailOperatorReminder); len(r) != 2 {
		t.Fatalf("%d deadline reminders while waiting, want 2", len(r))
	}
	if e := l.mailed(contract.MailOperatorEscalation); len(e) != 1 || e[0].at != due.Sub(jan15) {
		t.Fatalf("escalation %+v: want one when the due date passed", e)
	}
	c := l.mailed(contract.MailCancelled)
	if len(c) != 1 || !strings.Contains(c[0].data.Reason, "erased it by hand") {
		t.Fatalf("the person's mail %+v: want the reason", c)
	}
}
