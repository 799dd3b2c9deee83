package registry

import (
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Worker is a Lethe worker: one on the task queue every workflow and
// activity runs on, and one per processor of the data map on that
// processor's own queue (contract.ProcessorTaskQueue), which runs only the
// processor calls, at the processor's rate limit. The rate is set on the
// queue and enforced by the Temporal server across every worker polling it,
// so a thousand-person bulk erasure on ten workers calls Stripe no faster
// than one worker would.
type Worker struct {
	Main       worker.Worker
	Processors map[string]worker.Worker // by processor name
}

// NewWorker registers everything on a worker of taskQueue with options o,
// and a worker per processor of d.Map on its queue.
func NewWorker(c client.Client, taskQueue string, o worker.Options, d Deps) *Worker {
	w := &Worker{Main: worker.New(c, taskQueue, o), Processors: map[string]worker.Worker{}}
	Register(w.Main, d)
	if d.Map == nil || d.Processors == nil {
		return w
	}
	calls := NewActivities(d).ProcessorErasure
	for _, p := range d.Map.Processors {
		po := o
		po.DisableWorkflowWorker = true
		po.TaskQueueActivitiesPerSecond = p.CallsPerSecond()
		// Calls wait on the processor, not on the CPU: enough at once for
		// the rate with a slow processor (a second or two a call).
		po.MaxConcurrentActivityExecutionSize = max(4, int(2*p.CallsPerSecond())+1)
		po.MaxConcurrentActivityTaskPollers = 2
		pw := worker.New(c, contract.ProcessorTaskQueue(taskQueue, p.Name), po)
		pw.RegisterActivity(calls)
		w.Processors[p.Name] = pw
	}
	return w
}

// Start starts every worker; on an error the ones started are stopped.
func (w *Worker) Start() error {
	if err := w.Main.Start(); err != nil {
		return err
	}
	started := []worker.Worker{w.Main}
	for name, pw := range w.Processors {
		if err := pw.Start(); err != nil {
			for _, s := range started {
				s.Stop()
			}
			return fmt.Errorf("worker for processor %s: %w", name, err)
		}
		started = append(started, pw)
	}
	return nil
}

// Stop stops every worker, the processors' first.
func (w *Worker) Stop() {
	for _, pw := range w.Processors {
		pw.Stop()
	}
	w.Main.Stop()
}

// Run starts every worker and blocks until interrupted, then stops them.
func (w *Worker) Run(interrupt <-chan interface{}) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-interrupt
	w.Stop()
	return nil
}
