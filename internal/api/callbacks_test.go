package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// callbackTemporal answers ListWorkflow with the workflow ids of running
// erasures whose query it records, and records signals.
type callbackTemporal struct {
	client.Client
	running []string
	queries []string
	signals []sentSignal
}

type sentSignal struct {
	workflowID, name string
	arg              any
}

func (f *callbackTemporal) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.queries = append(f.queries, req.GetQuery())
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for _, id := range f.running {
		resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "run-" + id}})
	}
	return resp, nil
}

func (f *callbackTemporal) SignalWorkflow(_ context.Context, id, _, name string, arg any) error {
	f.signals = append(f.signals, sentSignal{id, name, arg})
	return nil
}

const callbackURL = "https://lethe.test/v1/callbacks/opendsr/dsr"

// callbackServer is the API with one OpenDSR processor "dsr", backed by f,
// and a Stripe processor.
func callbackServer(t *testing.T, f *processorfake.OpenDSR, tmp *callbackTemporal) *Server {
	t.Helper()
	cbs, err := processors.NewOpenDSRCallbacks([]processors.Config{
		{Name: "dsr", Kind: "opendsr", BaseURL: f.URL(), Options: map[string]string{"processor_domain": f.Domain(), "callback_urls": callbackURL}},
		{Name: "stripe", Kind: "stripe", CredentialEnv: "LETHE_STRIPE_KEY"},
	}, processors.BuildOptions{OpenDSRRoots: f.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	s := fuzzServer()
	s.Temporal, s.Callbacks = tmp, cbs
	return s
}

// postCallback posts body, signed with sig (f's signature when ""), to the
// callback route of processor.
func postCallback(s *Server, f *processorfake.OpenDSR, processor string, body []byte, sig string) *httptest.ResponseRecorder {
	if sig == "" {
		sig = f.Sign(body)
	}
	r := httptest.NewRequest(http.MethodPost, "/v1/callbacks/opendsr/"+processor, strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(processors.OpenDSRDomainHeader, f.Domain())
	r.Header.Set(processors.OpenDSRSignatureHeader, sig)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	return rec
}

func callbackBody(id, status string) []byte {
	b, _ := json.Marshal(map[string]string{"controller_id": "lethe-controller", "subject_request_id": id,
		"request_status": status, "status_callback_url": callbackURL})
	return b
}

func TestASignedOpenDSRCallbackWakesTheErasureAtThatProcessor(t *testing.T) {
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	job := processors.OpenDSRRequestID(fuzzRequestID, "erasure")
	// The same subject_request_id went to another OpenDSR processor: only
	// this processor's erasure is woken.
	tmp := &callbackTemporal{running: []string{
		contract.ProcessorErasureWorkflowID(fuzzRequestID, "dsr"), contract.ProcessorErasureWorkflowID(fuzzRequestID, "other-dsr")}}
	s := callbackServer(t, f, tmp)

	rec := postCallback(s, f, "dsr", callbackBody(job, "completed"), "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	if len(tmp.queries) != 1 || !strings.Contains(tmp.queries[0], "LetheProcessorJob = '"+job+"'") ||
		!strings.Contains(tmp.queries[0], "ExecutionStatus = 'Running'") {
		t.Fatalf("queries %q", tmp.queries)
	}
	want := sentSignal{contract.ProcessorErasureWorkflowID(fuzzRequestID, "dsr"), contract.SignalProcessorCallback,
		contract.ProcessorCallback{Status: "completed"}}
	if len(tmp.signals) != 1 || tmp.signals[0] != want {
		t.Fatalf("signals %+v, want %+v", tmp.signals, want)
	}

	// No pending erasure with this id: still 202 (the processor would
	// retry), nothing signalled.
	idle := &callbackTemporal{}
	s = callbackServer(t, f, idle)
	if rec := postCallback(s, f, "dsr", callbackBody(job, "completed"), ""); rec.Code != http.StatusAccepted || len(idle.signals) != 0 {
		t.Fatalf("unknown id: answer %d %s, signals %+v", rec.Code, rec.Body, idle.signals)
	}
}

func TestAnOpenDSRCallbackThatIsNotProperlySignedSignalsNothing(t *testing.T) {
	f := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{})
	impostor := processorfake.NewOpenDSR(t, processorfake.OpenDSROptions{}) // same domain, another key and CA
	job := processors.OpenDSRRequestID(fuzzRequestID, "erasure")
	body := callbackBody(job, "completed")
	for _, c := range []struct {
		name, processor string
		body            []byte
		sig             string
		domain          string
		status          int
	}{
		{"another key", "dsr", body, impostor.Sign(body), "", http.StatusForbidden},
		{"a changed body", "dsr", []byte(strings.Replace(string(body), "completed", "cancelled", 1)), f.Sign(body), "", http.StatusForbidden},
		{"no signature", "dsr", body, "-", "", http.StatusForbidden},
		{"another domain", "dsr", body, "", "evil.test", http.StatusUnauthorized},
		{"another callback URL", "dsr", []byte(strings.Replace(string(body), callbackURL, "https://evil.test/cb", 1)), "", "", http.StatusBadRequest},
		{"a processor that is not OpenDSR", "stripe", body, "", "", http.StatusNotFound},
		{"no such processor", "nobody", body, "", "", http.StatusNotFound},
		{"a bad processor name", "DSR", body, "", "", http.StatusNotFound},
	} {
		tmp := &callbackTemporal{running: []string{contract.ProcessorErasureWorkflowID(fuzzRequestID, "dsr")}}
		s := callbackServer(t, f, tmp)
		sig := c.sig
		switch sig {
		case "":
			sig = f.Sign(c.body)
		case "-":
			sig = ""
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/callbacks/opendsr/"+c.processor, strings.NewReader(string(c.body)))
		domain := f.Domain()
		if c.domain != "" {
			domain = c.domain
		}
		r.Header.Set(processors.OpenDSRDomainHeader, domain)
		if sig != "" {
			r.Header.Set(processors.OpenDSRSignatureHeader, sig)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, r)
		if rec.Code != c.status {
			t.Errorf("%s: answered %d %s, want %d", c.name, rec.Code, rec.Body, c.status)
		}
		checkRefusal(t, rec, c.body)
		if len(tmp.signals) != 0 || len(tmp.queries) != 0 {
			t.Errorf("%s: signalled %+v after queries %q", c.name, tmp.signals, tmp.queries)
		}
	}

	// No data map processors at all: 404.
	s := fuzzServer()
	s.Temporal = &callbackTemporal{}
	if rec := postCallback(s, f, "dsr", body, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("no callbacks configured: %d", rec.Code)
	}
	// A body over the limit is refused before any verification.
	s = callbackServer(t, f, &callbackTemporal{})
	big := []byte(`{"x":"` + strings.Repeat("a", fuzzMaxBody) + `"}`)
	if rec := postCallback(s, f, "dsr", big, ""); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body: %d", rec.Code)
	}
}
