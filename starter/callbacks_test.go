package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// TestASignedCallbackEndsAPendingOpenDSRErasureBeforeThePoll runs the
// erasure at an OpenDSR processor on the real Temporal server (its
// activities stand-ins: the processor is pending until asked after the
// callback): the processor's signed callback to the API finds the erasure
// by its LetheProcessorJob search attribute and wakes it, long before its
// hourly poll.
func TestASignedCallbackEndsAPendingOpenDSRErasureBeforeThePoll(t *testing.T) {
	ctx := context.Background()
	st := testenv.New(t)
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	const requestID = "req_callbacke2e"
	job := processors.OpenDSRRequestID(requestID, "erasure")

	var statusAsked atomic.Int32
	w := worker.New(st.Temporal, st.Config.TemporalTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.EraseAtProcessor, workflow.RegisterOptions{Name: contract.WorkflowEraseAtProcessor})
	w.RegisterWorkflowWithOptions(workflows.ProcessorFollowUp, workflow.RegisterOptions{Name: contract.WorkflowProcessorFollowUp})
	var atProcessor *activities.ProcessorErasure
	var lifecycle *activities.Lifecycle
	// The processor's calls run on its own queue.
	calls := worker.New(st.Temporal, contract.ProcessorTaskQueue(st.Config.TemporalTaskQueue, "dsr"), worker.Options{DisableWorkflowWorker: true})
	fakeActivity(calls, atProcessor.EraseAtProcessor, func(context.Context, contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		return contract.ProcessorCall{Processor: "dsr", Status: contract.ProcessorCallPending, HTTPStatus: 201, JobID: job}, nil
	})
	fakeActivity(calls, atProcessor.ProcessorErasureStatus, func(context.Context, contract.ProcessorCallInput) (contract.ProcessorCall, error) {
		statusAsked.Add(1)
		return contract.ProcessorCall{Processor: "dsr", Status: contract.ProcessorCallDone, HTTPStatus: 200}, nil
	})
	fakeActivity(w, lifecycle.SendRequestMail, func(context.Context, contract.SendMailInput) error { return nil })
	fakeActivity(w, lifecycle.AppendAudit, func(context.Context, contract.AuditInput) error { return nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := calls.Start(); err != nil {
		t.Fatal(err)
	}
	defer calls.Stop()

	cbs, err := processors.NewOpenDSRCallbacks([]processors.Config{{Name: "dsr", Kind: "opendsr", BaseURL: f.URL(),
		Options: map[string]string{"processor_domain": f.Domain()}}}, processors.BuildOptions{OpenDSRRoots: f.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&api.Server{Temporal: st.Temporal, Callbacks: cbs, MaxBody: 1 << 16, Log: st.Log}).Handler())
	defer srv.Close()

	wid := contract.ProcessorErasureWorkflowID(requestID, "dsr")
	run, err := st.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wid, TaskQueue: st.Config.TemporalTaskQueue},
		contract.WorkflowEraseAtProcessor, contract.ProcessorErasureInput{RequestID: requestID, SubjectRef: "sr_x",
			Identity: []byte("sealed"), Processor: "dsr", PollEvery: time.Hour, FollowUpAfter: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	body, _ := json.Marshal(map[string]string{"controller_id": "lethe-controller", "subject_request_id": job,
		"request_status": "completed", "status_callback_url": srv.URL + "/v1/callbacks/opendsr/dsr"})
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/callbacks/opendsr/dsr", bytes.NewReader(body))
		req.Header.Set(processors.OpenDSRDomainHeader, f.Domain())
		req.Header.Set(processors.OpenDSRSignatureHeader, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ended := func() bool {
		d, err := st.Temporal.DescribeWorkflowExecution(ctx, wid, "")
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING
	}

	// A forged callback is refused and wakes nothing, even once the
	// erasure is findable.
	time.Sleep(2 * time.Second)
	if code := post(f.Sign([]byte("another body"))); code != http.StatusForbidden {
		t.Fatalf("forged callback answered %d", code)
	}
	time.Sleep(500 * time.Millisecond)
	if ended() || statusAsked.Load() != 0 {
		t.Fatal("a forged callback made the erasure ask the processor")
	}

	// Visibility is eventually consistent: the processor would retry, and
	// so does the test, until the erasure has ended.
	deadline := time.Now().Add(30 * time.Second)
	for !ended() {
		if time.Now().After(deadline) {
			t.Fatal("the erasure did not end after signed callbacks")
		}
		if code := post(f.Sign(body)); code != http.StatusAccepted {
			t.Fatalf("signed callback answered %d", code)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var res contract.ProcessorErasureResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != contract.ProcessorConfirmed || res.JobID != job || statusAsked.Load() != 1 {
		t.Fatalf("result %+v, status asked %d times", res, statusAsked.Load())
	}
}

// fakeActivity registers fn on w in the place of the activity act (an
// activity method, such as lifecycle.AppendAudit on a nil pointer), under
// the name the worker registers act under: its method name. The compiler
// checks that act exists and that fn has its signature.
func fakeActivity[F any](w worker.Worker, act, fn F) {
	name := runtime.FuncForPC(reflect.ValueOf(act).Pointer()).Name() // …(*Lifecycle).AppendAudit-fm
	name = strings.TrimSuffix(name[strings.LastIndex(name, ".")+1:], "-fm")
	w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
}
