package main

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// A worker that dies during a processor call (killed, out of memory, its
// machine gone) answers nothing: not a failure, not a heartbeat. The call
// heartbeats while it runs, so the server notices within the calls'
// heartbeat timeout and tries again on a live worker: the erasure resumes
// in seconds, not after the calls' 5-minute start-to-close timeout.
func TestAWorkerThatDiesDuringAProcessorCallCostsSecondsNotMinutes(t *testing.T) {
	w := newErasureWorld(t)
	w.Worker.Stop()

	// The worker that will die: everything registered as usual, except that
	// its processor calls never return and never heartbeat.
	gone := make(chan struct{})
	t.Cleanup(func() { close(gone) })
	var hung atomic.Int32
	dying := worker.New(w.Temporal, w.Config.TemporalTaskQueue, worker.Options{WorkerStopTimeout: time.Second})
	registry.RegisterWorkflows(dying)
	a := registry.NewActivities(w.Deps)
	for _, act := range []any{a.Lifecycle, a.Erasure, a.Notices, a.Exports, a.Changes, a.AccountLife, a.Ledger} {
		dying.RegisterActivity(act)
	}
	// Processor calls run on each processor's own queue.
	dyingCalls := []worker.Worker{dying}
	for _, p := range w.Deps.Map.Processors {
		pw := worker.New(w.Temporal, contract.ProcessorTaskQueue(w.Config.TemporalTaskQueue, p.Name),
			worker.Options{WorkerStopTimeout: time.Second, DisableWorkflowWorker: true})
		pw.RegisterActivityWithOptions(a.ProcessorErasure.ProcessorErasureStatus, activity.RegisterOptions{Name: "ProcessorErasureStatus"})
		pw.RegisterActivityWithOptions(a.ProcessorErasure.ConfirmProcessorErasure, activity.RegisterOptions{Name: "ConfirmProcessorErasure"})
		pw.RegisterActivityWithOptions(func(context.Context, contract.ProcessorCallInput) (contract.ProcessorCall, error) {
			hung.Add(1)
			<-gone // a dead process: no answer, no heartbeat, whatever the context says
			return contract.ProcessorCall{}, nil
		}, activity.RegisterOptions{Name: "EraseAtProcessor"})
		// The erasure's own first call at a processor, the same.
		pw.RegisterActivityWithOptions(func(context.Context, contract.ProcessorCallInput) (contract.ProcessorAnswer, error) {
			hung.Add(1)
			<-gone
			return contract.ProcessorAnswer{}, nil
		}, activity.RegisterOptions{Name: "AskProcessor"})
		dyingCalls = append(dyingCalls, pw)
	}
	for _, dw := range dyingCalls {
		if err := dw.Start(); err != nil {
			t.Fatal(err)
		}
	}
	id := w.submitErasure(t, "")
	testenv.Eventually(t, 30*time.Second, "a processor call to be under way", func() bool { return hung.Load() > 0 })
	for _, dw := range dyingCalls {
		dw.Stop()
	}
	died := time.Now()

	// A live worker takes over.
	live := registry.NewWorker(w.Temporal, w.Config.TemporalTaskQueue, registry.WorkerOptions(), w.Deps)
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Stop)
	testenv.Eventually(t, 60*time.Second, "Stripe to be asked again by the live worker", func() bool {
		return len(w.stripe.CallsTo("DELETE", "/v1/customers/"+w.customer)) > 0
	})
	if took := time.Since(died); took > 45*time.Second {
		t.Errorf("the erasure resumed %s after the worker died, want within the heartbeat timeout and a retry", took.Round(time.Second))
	}
	w.resolveTask(t, id, "paypal", `{"action":"done","evidence":"ticket PP-5"}`)
	w.waitStatus(t, id, domain.StatusCompleted)
	if n := len(w.stripe.CallsTo("DELETE", "/v1/customers/"+w.customer)); n != 1 {
		t.Errorf("stripe: %d deletes, want 1", n)
	}
	if code, _ := w.call(t, "GET", "/v1/requests/"+id, w.Operator, ""); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
}
