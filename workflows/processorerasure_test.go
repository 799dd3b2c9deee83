package workflows_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// processorRun drives EraseAtProcessor with its activities mocked: erase,
// status and confirm answer from the test's functions (n counts calls from
// 1), mails and audit entries are recorded with the time they were made.
type processorRun struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	erase    func(n int) (contract.ProcessorCall, error)
	status   func(n int, in contract.ProcessorCallInput) (contract.ProcessorCall, error)
	confirm  func(in contract.ConfirmErasureInput) (contract.ProcessorCall, error)
	erasedAt []time.Time
	statusAt []time.Time
	confirms []contract.ConfirmErasureInput
	confirmT []time.Time
	mails    []contract.SendMailInput
	mailedAt []time.Time
	audits   []contract.AuditInput
	updates  int
}

func newProcessorRun(t *testing.T) *processorRun {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	p := &processorRun{t: t, env: s.NewTestWorkflowEnvironment()}
	p.env.SetStartTime(jan15)
	p.env.RegisterWorkflowWithOptions(workflows.ProcessorFollowUp, workflow.RegisterOptions{Name: contract.WorkflowProcessorFollowUp})
	fake(p.env, atProcessor.EraseAtProcessor, func(ctx context.Context, in contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		if in.Earlier != nil || in.Processor != "stripe" || in.RequestID != "req_x" || string(in.Identity) != "sealed" {
			t.Errorf("erase input %+v", in)
		}
		p.erasedAt = append(p.erasedAt, p.env.Now())
		c, err := p.erase(len(p.erasedAt))
		c.Attempt = activity.GetInfo(ctx).Attempt
		return c, err
	})
	fake(p.env, atProcessor.ProcessorErasureStatus, func(_ context.Context, in contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		p.statusAt = append(p.statusAt, p.env.Now())
		return p.status(len(p.statusAt), in)
	})
	fake(p.env, atProcessor.ConfirmProcessorErasure, func(_ context.Context, in contract.ConfirmErasureInput) (contract.ProcessorCall, error) {
		p.confirms = append(p.confirms, in)
		p.confirmT = append(p.confirmT, p.env.Now())
		return p.confirm(in)
	})
	fake(p.env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		if !in.ToPrivacyTeam || in.Data.DueDate.IsZero() || in.Data.RequestType != domain.TypeErasure {
			t.Errorf("mail %+v", in)
		}
		p.mails = append(p.mails, in)
		p.mailedAt = append(p.mailedAt, p.env.Now())
		return nil
	})
	fake(p.env, lc.AppendAudit, func(_ context.Context, in contract.AuditInput) error {
		if in.SubjectRef != "sr_x" || in.Key == "" || in.Detail["request_id"] != "req_x" || in.Detail["processor"] != "stripe" {
			t.Errorf("audit %+v", in)
		}
		p.audits = append(p.audits, in)
		return nil
	})
	p.status = func(int, contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		t.Error("status asked")
		return contract.ProcessorCall{}, nil
	}
	p.confirm = func(contract.ConfirmErasureInput) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallGone, HTTPStatus: 200}, nil
	}
	return p
}

// resolve sends a task resolution after d of test time.
func (p *processorRun) resolve(d time.Duration, r contract.TaskResolution) *outcome {
	o := &outcome{}
	p.updates++
	id := "u" + string(rune('0'+p.updates))
	p.env.RegisterDelayedCallback(func() { p.env.UpdateWorkflow(contract.UpdateResolveTask, id, callbacks{o}, r) }, d)
	return o
}

// progress reads the progress query after d of test time.
func (p *processorRun) progress(d time.Duration) *contract.ProcessorErasureView {
	v := &contract.ProcessorErasureView{}
	p.env.RegisterDelayedCallback(func() {
		val, err := p.env.QueryWorkflow(contract.QueryProgress)
		if err != nil {
			p.t.Errorf("query: %v", err)
			return
		}
		if err := val.Get(v); err != nil {
			p.t.Errorf("query result: %v", err)
		}
	}, d)
	return v
}

func (p *processorRun) run(in contract.ProcessorErasureInput) contract.ProcessorErasureResult {
	p.t.Helper()
	in.RequestID, in.SubjectRef, in.Identity, in.Processor = "req_x", "sr_x", []byte("sealed"), "stripe"
	p.env.ExecuteWorkflow(workflows.EraseAtProcessor, in)
	if !p.env.IsWorkflowCompleted() {
		p.t.Fatal("the erasure did not complete")
	}
	if err := p.env.GetWorkflowError(); err != nil {
		p.t.Fatal(err)
	}
	var res contract.ProcessorErasureResult
	if err := p.env.GetWorkflowResult(&res); err != nil {
		p.t.Fatal(err)
	}
	return res
}

func (p *processorRun) auditActions() []string {
	var out []string
	for _, a := range p.audits {
		out = append(out, a.Action)
	}
	return out
}

func (p *processorRun) mailTemplates() []string {
	var out []string
	for _, m := range p.mails {
		out = append(out, m.Template)
	}
	return out
}

var stripeDone = contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallDone, HTTPStatus: 200, JobID: "",
	Refs: []contract.ProcessorRef{{Kind: "customer", ID: "cus_1"}, {Kind: "request_id", ID: "req_fake1"}}}

func badRequest() error {
	return temporal.NewNonRetryableApplicationError("stripe erase: HTTP 400 invalid_request_error (needs_operator)", contract.RefusedNeedsOperator, nil)
}

func TestAProcessorThatErasesIsConfirmedAndCheckedAgainAfterItsRetentionWindow(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(int) (contract.ProcessorCall, error) { return stripeDone, nil }
	res := p.run(contract.ProcessorErasureInput{})
	if res.Status != contract.ProcessorConfirmed || res.HTTPStatus != 200 || len(res.Refs) != 2 || res.Refs[0].ID != "cus_1" ||
		res.Attempts != 1 || !res.ConfirmedAt.Equal(jan15) || !res.FollowUpAt.Equal(jan15.Add(30*24*time.Hour)) {
		t.Fatalf("result %+v", res)
	}
	if len(p.mails) != 0 || len(p.erasedAt) != 1 {
		t.Fatalf("mails %v, erase calls %d", p.mailTemplates(), len(p.erasedAt))
	}
	// The follow-up child outlives the erasure: 30 days later it checks by
	// the refs alone and records that the erasure held.
	if len(p.confirms) != 1 || !p.confirmT[0].Equal(jan15.Add(30*24*time.Hour)) {
		t.Fatalf("confirm calls %d at %v", len(p.confirms), p.confirmT)
	}
	if c := p.confirms[0]; c.Processor != "stripe" || len(c.Erasure.Refs) != 2 || c.Erasure.Refs[0].ID != "cus_1" {
		t.Fatalf("confirm input %+v", c)
	}
	if got := p.auditActions(); len(got) != 1 || got[0] != "processor.erasure_held" {
		t.Fatalf("audit %v", got)
	}
}

func TestA503IsRetriedAndA429WaitsForItsRetryAfter(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(n int) (contract.ProcessorCall, error) {
		switch n {
		case 1:
			return contract.ProcessorCall{}, temporal.NewApplicationError("stripe erase: HTTP 503 api_error (retryable)", "Error")
		case 2:
			return contract.ProcessorCall{}, temporal.NewApplicationErrorWithOptions("stripe erase: HTTP 429 (retryable, retry after 2m0s)", "ProcessorRetry",
				temporal.ApplicationErrorOptions{NextRetryDelay: 2 * time.Minute})
		}
		return stripeDone, nil
	}
	res := p.run(contract.ProcessorErasureInput{})
	if res.Status != contract.ProcessorConfirmed || res.Attempts != 3 || len(p.erasedAt) != 3 {
		t.Fatalf("result %+v after %d calls", res, len(p.erasedAt))
	}
	if wait := p.erasedAt[2].Sub(p.erasedAt[1]); wait < 2*time.Minute {
		t.Fatalf("the call after the 429 came %s later, want its Retry-After (2m)", wait)
	}
	if len(p.mails) != 0 {
		t.Fatalf("transient failures mailed the team: %v", p.mailTemplates())
	}
}

func TestA400BecomesAnOperatorTaskThatARetryResolves(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(n int) (contract.ProcessorCall, error) {
		if n == 1 {
			return contract.ProcessorCall{}, badRequest()
		}
		return stripeDone, nil
	}
	view := p.progress(time.Hour)
	bad := p.resolve(2*time.Hour, contract.TaskResolution{Action: "erase"})
	retry, twice := &outcome{}, &outcome{}
	p.env.RegisterDelayedCallback(func() {
		p.env.UpdateWorkflow(contract.UpdateResolveTask, "retry", callbacks{retry}, contract.TaskResolution{Action: contract.TaskRetry, Actor: "operator:k2"})
		p.env.UpdateWorkflow(contract.UpdateResolveTask, "twice", callbacks{twice}, contract.TaskResolution{Action: contract.TaskSkip, Reason: "x", Actor: "operator:k3"})
	}, 3*time.Hour)
	res := p.run(contract.ProcessorErasureInput{})

	// The 400 is final at once: one call, then the task.
	if len(p.erasedAt) != 2 || !p.erasedAt[1].Equal(jan15.Add(3*time.Hour)) {
		t.Fatalf("erase calls at %v", p.erasedAt)
	}
	if view.Status != contract.ProcessorNeedsOperator || view.Task == nil || view.Task.Seq != 1 ||
		!strings.Contains(view.Task.Reason, "HTTP 400") || !view.Task.DueAt.Equal(view.Task.OpenedAt.Add(7*24*time.Hour)) {
		t.Fatalf("progress while the task is open: %+v task %+v", view, view.Task)
	}
	refusedAs(t, bad, contract.RefusedInput)
	if retry.rejected != nil || retry.err != nil || !retry.done {
		t.Fatalf("retry: %+v", retry)
	}
	refusedAs(t, twice, contract.RefusedState) // the task is resolved already
	if res.Status != contract.ProcessorConfirmed || res.Actor != "operator:k2" || res.Attempts != 2 {
		t.Fatalf("result %+v", res)
	}
	if got := p.mailTemplates(); len(got) != 1 || got[0] != contract.MailOperatorReminder || p.mails[0].Key != "req_x:stripe:task-1" ||
		!strings.Contains(strings.Join(p.mails[0].Data.Lines, "\n"), "/v1/requests/req_x/processors/stripe/task") {
		t.Fatalf("mails %+v", p.mails)
	}
	got := p.auditActions()
	if len(got) < 2 || got[0] != "processor.task_opened" || got[1] != "processor.task_resolved" || p.audits[1].Actor != "operator:k2" ||
		p.audits[1].Detail["decision"] != contract.TaskRetry {
		t.Fatalf("audit %+v", p.audits)
	}
}

func TestAnOperatorSkipsAProcessorOnlyWithAReason(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(int) (contract.ProcessorCall, error) { return contract.ProcessorCall{}, badRequest() }
	noReason := p.resolve(time.Hour, contract.TaskResolution{Action: contract.TaskSkip, Actor: "operator:k2"})
	email := p.resolve(2*time.Hour, contract.TaskResolution{Action: contract.TaskSkip, Reason: "asked ann@example.com", Actor: "operator:k2"})
	long := p.resolve(3*time.Hour, contract.TaskResolution{Action: contract.TaskSkip, Reason: strings.Repeat("x", 501), Actor: "operator:k2"})
	skip := p.resolve(4*time.Hour, contract.TaskResolution{Action: contract.TaskSkip, Reason: "the account at Stripe was closed in 2024", Actor: "operator:k2"})
	res := p.run(contract.ProcessorErasureInput{})
	refusedAs(t, noReason, contract.RefusedInput)
	refusedAs(t, email, contract.RefusedInput)
	refusedAs(t, long, contract.RefusedInput)
	if skip.rejected != nil || skip.err != nil {
		t.Fatalf("skip: %+v", skip)
	}
	if res.Status != contract.ProcessorSkipped || res.Reason != "the account at Stripe was closed in 2024" || !res.FollowUpAt.IsZero() {
		t.Fatalf("result %+v", res)
	}
	if len(p.erasedAt) != 1 || len(p.confirms) != 0 {
		t.Fatalf("erase calls %d, confirms %d", len(p.erasedAt), len(p.confirms))
	}
}

func TestAManualProcessorIsATaskFromTheStartAndItsFollowUpAsksTheTeam(t *testing.T) {
	p := newProcessorRun(t)
	steps := []string{"Email sellers@paddle.com asking to delete the buyer.", "Record Paddle's confirmation."}
	p.erase = func(int) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallNeedsOperator, Steps: steps}, nil
	}
	view := p.progress(time.Minute)
	noEvidence := p.resolve(time.Hour, contract.TaskResolution{Action: contract.TaskDone, Actor: "operator:k2"})
	done := p.resolve(2*time.Hour, contract.TaskResolution{Action: contract.TaskDone, Evidence: "Paddle ticket 4711 confirms deletion", Actor: "operator:k2"})
	res := p.run(contract.ProcessorErasureInput{FollowUpAfter: 10 * 24 * time.Hour})
	if view.Task == nil || len(view.Task.Steps) != 2 || view.Task.Steps[0] != steps[0] || view.Status != contract.ProcessorNeedsOperator {
		t.Fatalf("progress %+v", view)
	}
	refusedAs(t, noEvidence, contract.RefusedInput)
	if done.err != nil || done.rejected != nil {
		t.Fatalf("done: %+v", done)
	}
	if res.Status != contract.ProcessorDoneByHand || res.Evidence != "Paddle ticket 4711 confirms deletion" ||
		!res.FollowUpAt.Equal(jan15.Add(2*time.Hour).Add(10*24*time.Hour)) {
		t.Fatalf("result %+v", res)
	}
	// The task mail carries the steps; the follow-up, with nothing to check
	// through an API, asks the team to confirm (and calls no processor).
	if len(p.mails) != 2 || !strings.Contains(strings.Join(p.mails[0].Data.Lines, "\n"), steps[0]) ||
		p.mails[1].Key != "req_x:stripe:followup" || !p.mailedAt[1].Equal(jan15.Add(2*time.Hour).Add(10*24*time.Hour)) {
		t.Fatalf("mails %+v at %v", p.mails, p.mailedAt)
	}
	if len(p.confirms) != 0 {
		t.Fatalf("the follow-up called the processor: %+v", p.confirms)
	}
	got := p.auditActions()
	if got[len(got)-1] != "processor.confirmation_asked" {
		t.Fatalf("audit %v", got)
	}
}

func TestATaskStillOpenAtItsDeadlineIsEscalatedOnce(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(int) (contract.ProcessorCall, error) { return contract.ProcessorCall{}, badRequest() }
	view := p.progress(3 * 24 * time.Hour)
	p.resolve(5*24*time.Hour, contract.TaskResolution{Action: contract.TaskDone, Reason: "deleted in the Stripe dashboard", Actor: "operator:k2"})
	res := p.run(contract.ProcessorErasureInput{TaskDeadline: 48 * time.Hour})
	if got := p.mailTemplates(); len(got) != 3 || got[0] != contract.MailOperatorReminder || got[1] != contract.MailOperatorEscalation ||
		got[2] != contract.MailOperatorReminder {
		t.Fatalf("mails %v", got) // task, escalation, then the follow-up's question
	}
	if !p.mailedAt[1].Equal(jan15.Add(48 * time.Hour)) {
		t.Fatalf("escalated at %s, want the task's deadline", p.mailedAt[1])
	}
	if view.Task == nil || !view.Task.EscalatedAt.Equal(jan15.Add(48*time.Hour)) {
		t.Fatalf("progress %+v", view.Task)
	}
	if res.Status != contract.ProcessorDoneByHand || res.Reason != "deleted in the Stripe dashboard" {
		t.Fatalf("result %+v", res)
	}
}

func TestAPendingErasureIsPolledUntilTheProcessorIsDone(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(int) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallPending, HTTPStatus: 201, JobID: "7c9e6679-7425-40de-944b-e07fc1f90ae7"}, nil
	}
	p.status = func(n int, in contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		if in.Earlier == nil || in.Earlier.JobID != "7c9e6679-7425-40de-944b-e07fc1f90ae7" {
			t.Errorf("status asked without the job: %+v", in.Earlier)
		}
		if n < 3 {
			return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallPending, HTTPStatus: 200}, nil
		}
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallDone, HTTPStatus: 200,
			Refs: []contract.ProcessorRef{{Kind: "controller", ID: "ctl"}}}, nil
	}
	view := p.progress(30 * time.Minute)
	during := p.resolve(40*time.Minute, contract.TaskResolution{Action: contract.TaskDone, Evidence: "x", Actor: "operator:k2"})
	res := p.run(contract.ProcessorErasureInput{})
	if view.Status != contract.ProcessorWaiting || view.Task != nil {
		t.Fatalf("progress while pending %+v", view)
	}
	refusedAs(t, during, contract.RefusedState) // no task is open while the processor works
	if len(p.statusAt) != 3 || !p.statusAt[0].Equal(jan15.Add(time.Hour)) || !p.statusAt[2].Equal(jan15.Add(3*time.Hour)) {
		t.Fatalf("status asked at %v", p.statusAt)
	}
	if res.Status != contract.ProcessorConfirmed || res.JobID != "7c9e6679-7425-40de-944b-e07fc1f90ae7" || len(res.Refs) != 1 ||
		!res.ConfirmedAt.Equal(jan15.Add(3*time.Hour)) || len(p.erasedAt) != 1 {
		t.Fatalf("result %+v", res)
	}
	if len(p.confirms) != 1 || p.confirms[0].Erasure.JobID != res.JobID {
		t.Fatalf("follow-up %+v", p.confirms)
	}
}

func TestAProcessorCallbackMakesThePendingErasureAskAtOnce(t *testing.T) {
	const job = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	p := newProcessorRun(t)
	p.env.OnUpsertTypedSearchAttributes(temporal.NewSearchAttributes(contract.ProcessorJobKey.ValueSet(job))).Return(nil).Once()
	p.erase = func(int) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallPending, HTTPStatus: 201, JobID: job}, nil
	}
	p.status = func(n int, in contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		if in.Earlier == nil || in.Earlier.JobID != job {
			t.Errorf("status asked without the job: %+v", in.Earlier)
		}
		if n == 1 {
			return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallPending, HTTPStatus: 200}, nil
		}
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallDone, HTTPStatus: 200}, nil
	}
	// Two callbacks in one workflow task at 10 minutes: one check answers
	// both; the processor still works, so the next check is a poll
	// interval later.
	p.env.RegisterDelayedCallback(func() {
		p.env.SignalWorkflowSkippingWorkflowTask(contract.SignalProcessorCallback, contract.ProcessorCallback{Status: "in_progress"})
		p.env.SignalWorkflow(contract.SignalProcessorCallback, contract.ProcessorCallback{Status: "in_progress"})
	}, 10*time.Minute)
	res := p.run(contract.ProcessorErasureInput{})
	p.env.AssertExpectations(t)
	want := []time.Time{jan15.Add(10 * time.Minute), jan15.Add(70 * time.Minute)}
	if len(p.statusAt) != 2 || !p.statusAt[0].Equal(want[0]) || !p.statusAt[1].Equal(want[1]) {
		t.Fatalf("status asked at %v, want %v (the callback, then a poll interval later)", p.statusAt, want)
	}
	if res.Status != contract.ProcessorConfirmed || res.JobID != job || !res.ConfirmedAt.Equal(want[1]) {
		t.Fatalf("result %+v", res)
	}
}

func TestACallbackThatCompletesTheErasureEndsItBeforeThePollInterval(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(int) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallPending, JobID: "job-1"}, nil
	}
	p.status = func(int, contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallDone, HTTPStatus: 200}, nil
	}
	p.env.RegisterDelayedCallback(func() {
		if err := p.env.SignalWorkflowByID(contract.ProcessorErasureWorkflowID("req_x", "stripe"), contract.SignalProcessorCallback,
			contract.ProcessorCallback{Status: "completed"}); err != nil {
			t.Errorf("signal: %v", err)
		}
	}, 3*time.Minute)
	p.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: contract.ProcessorErasureWorkflowID("req_x", "stripe")})
	res := p.run(contract.ProcessorErasureInput{PollEvery: 6 * time.Hour})
	if len(p.statusAt) != 1 || !p.statusAt[0].Equal(jan15.Add(3*time.Minute)) {
		t.Fatalf("status asked at %v, want once at the callback", p.statusAt)
	}
	if res.Status != contract.ProcessorConfirmed || !res.ConfirmedAt.Equal(jan15.Add(3*time.Minute)) {
		t.Fatalf("result %+v", res)
	}
}

func TestAnErasurePendingTooLongBecomesATask(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(int) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallPending, JobID: "job-1"}, nil
	}
	p.status = func(int, contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallPending}, nil
	}
	view := p.progress(25 * time.Hour)
	p.resolve(26*time.Hour, contract.TaskResolution{Action: contract.TaskSkip, Reason: "the processor's job queue is stuck; asked by phone", Actor: "operator:k2"})
	res := p.run(contract.ProcessorErasureInput{PollEvery: 6 * time.Hour, PollFor: 24 * time.Hour})
	if len(p.statusAt) != 4 || view.Task == nil || !strings.Contains(view.Task.Reason, "pending") {
		t.Fatalf("status asked %d times, task %+v", len(p.statusAt), view.Task)
	}
	if res.Status != contract.ProcessorSkipped {
		t.Fatalf("result %+v", res)
	}
}

func TestAFollowUpThatFindsTheDataStillThereTellsTheTeam(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(jan15)
	var checkedAt time.Time
	fake(env, atProcessor.ConfirmProcessorErasure, func(_ context.Context, in contract.ConfirmErasureInput) (contract.ProcessorCall, error) {
		checkedAt = env.Now()
		if len(in.Erasure.Refs) != 1 || in.Erasure.Refs[0].ID != "cus_1" {
			t.Errorf("confirm input %+v", in)
		}
		return contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallStillPresent, HTTPStatus: 200}, nil
	})
	var mails []contract.SendMailInput
	fake(env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error { mails = append(mails, in); return nil })
	var audits []contract.AuditInput
	fake(env, lc.AppendAudit, func(_ context.Context, in contract.AuditInput) error { audits = append(audits, in); return nil })
	env.ExecuteWorkflow(workflows.ProcessorFollowUp, contract.ProcessorFollowUpInput{RequestID: "req_x", SubjectRef: "sr_x", Processor: "stripe",
		After: 30 * 24 * time.Hour, Erasure: contract.ProcessorCall{Status: contract.ProcessorCallDone, Refs: []contract.ProcessorRef{{Kind: "customer", ID: "cus_1"}}}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res contract.ProcessorFollowUpResult
	_ = env.GetWorkflowResult(&res)
	if !checkedAt.Equal(jan15.Add(30*24*time.Hour)) || res.Status != contract.ProcessorCallStillPresent {
		t.Fatalf("checked at %s: %+v", checkedAt, res)
	}
	if len(mails) != 1 || mails[0].Template != contract.MailOperatorEscalation || !mails[0].ToPrivacyTeam {
		t.Fatalf("mails %+v", mails)
	}
	if len(audits) != 1 || audits[0].Action != "processor.data_still_present" || audits[0].Detail["status"] != "still_present" {
		t.Fatalf("audit %+v", audits)
	}
}

func TestTaskResolutionsAreValidatedLikeThePolicySays(t *testing.T) {
	for _, c := range []struct {
		r  contract.TaskResolution
		ok bool
	}{
		{contract.TaskResolution{Action: "retry"}, true},
		{contract.TaskResolution{Action: "skip", Reason: "closed"}, true},
		{contract.TaskResolution{Action: "skip", Reason: "  "}, false},
		{contract.TaskResolution{Action: "done", Evidence: "ticket 1"}, true},
		{contract.TaskResolution{Action: "done", Reason: "by hand"}, true},
		{contract.TaskResolution{Action: "done"}, false},
		{contract.TaskResolution{Action: "done", Evidence: "mail from a@b.c"}, false},
		{contract.TaskResolution{Action: "retry", Reason: strings.Repeat("é", 500)}, true},
		{contract.TaskResolution{Action: "retry", Reason: strings.Repeat("é", 501)}, false},
		{contract.TaskResolution{Action: "delete"}, false},
	} {
		if err := c.r.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v, want ok=%v", c.r, err, c.ok)
		}
	}
	if contract.ProcessorErasureWorkflowID("req_1", "stripe") != "req_1-erasure-stripe" ||
		contract.ProcessorFollowUpWorkflowID("req_1", "stripe") != "req_1-followup-stripe" {
		t.Fatal("workflow ids")
	}
}

func TestAProcessorThatKeepsFailingBecomesATaskWhenRetriesRunOut(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(n int) (contract.ProcessorCall, error) {
		if n <= 12 {
			return contract.ProcessorCall{}, temporal.NewApplicationError("stripe erase: HTTP 503 api_error (retryable)", "Error")
		}
		return stripeDone, nil
	}
	view := p.progress(2 * time.Hour)
	p.resolve(3*time.Hour, contract.TaskResolution{Action: contract.TaskRetry, Actor: "operator:k2"})
	res := p.run(contract.ProcessorErasureInput{})
	if len(p.erasedAt) != 13 || res.Status != contract.ProcessorConfirmed || res.Attempts != 13 {
		t.Fatalf("%d calls, result %+v", len(p.erasedAt), res)
	}
	if view.Task == nil || !strings.Contains(view.Task.Reason, "still failing after 12 attempts") || !strings.Contains(view.Task.Reason, "HTTP 503") {
		t.Fatalf("task %+v", view.Task)
	}
}

// The erasure asked the processor itself (issue 16) and its answer was
// not done: the workflow goes on from that answer without asking again.
func TestAnErasureGivenItsFirstAnswerGoesOnFromItWithoutAskingAgain(t *testing.T) {
	p := newProcessorRun(t)
	p.erase = func(int) (contract.ProcessorCall, error) { return stripeDone, nil }
	view := p.progress(time.Hour)
	p.resolve(2*time.Hour, contract.TaskResolution{Action: contract.TaskRetry, Actor: "operator:k"})
	res := p.run(contract.ProcessorErasureInput{First: &contract.ProcessorFirstAnswer{Failure: "stripe answered HTTP 400", Attempts: 1}})
	if view.Task == nil || view.Task.Reason != "stripe answered HTTP 400" || view.Attempts != 1 {
		t.Fatalf("progress %+v task %+v: want the first answer's failure as the task", view, view.Task)
	}
	if len(p.erasedAt) != 1 || !p.erasedAt[0].Equal(jan15.Add(2*time.Hour)) {
		t.Fatalf("erase calls at %v: want only the operator's retry", p.erasedAt)
	}
	if res.Status != contract.ProcessorConfirmed || res.Attempts != 2 {
		t.Fatalf("result %+v", res)
	}
}

// One follow-up workflow checks every processor a request settled at once,
// each when its retention window has passed, not before.
func TestProcessorFollowUpsCheckEachProcessorWhenItsWindowHasPassed(t *testing.T) {
	p := newProcessorRun(t)
	p.env.RegisterWorkflowWithOptions(workflows.ProcessorFollowUps, workflow.RegisterOptions{Name: contract.WorkflowProcessorFollowUps})
	check := func(due time.Time) contract.ProcessorFollowUpInput {
		return contract.ProcessorFollowUpInput{RequestID: "req_x", SubjectRef: "sr_x", Processor: "stripe", DueAt: due,
			Erasure: contract.ProcessorCall{Processor: "stripe", Status: contract.ProcessorCallDone}}
	}
	soon, soonAfter, later := jan15.Add(30*24*time.Hour), jan15.Add(30*24*time.Hour+time.Minute), jan15.Add(60*24*time.Hour)
	p.env.ExecuteWorkflow(workflows.ProcessorFollowUps, contract.ProcessorFollowUpsInput{RequestID: "req_x",
		Checks: []contract.ProcessorFollowUpInput{check(later), check(soon), check(soonAfter)}})
	if err := p.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res []contract.ProcessorFollowUpResult
	if err := p.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if len(p.confirmT) != 3 || !p.confirmT[0].Equal(soonAfter) || !p.confirmT[1].Equal(soonAfter) || !p.confirmT[2].Equal(later) {
		t.Fatalf("checks at %v: want two at %v (together, none early) and one at %v", p.confirmT, soonAfter, later)
	}
	if len(res) != 3 || res[0].Status != contract.ProcessorCallGone || !res[0].CheckedAt.Equal(later) || len(p.audits) != 3 {
		t.Fatalf("results %+v, audits %d", res, len(p.audits))
	}
}
