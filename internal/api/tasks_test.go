package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// taskTemporal answers Describe with a workflow's status (none: not found)
// and records the update, which it refuses with refuse when set.
type taskTemporal struct {
	client.Client
	status enums.WorkflowExecutionStatus
	refuse error
	update *client.UpdateWorkflowOptions
}

func (f *taskTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	if f.status == enums.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: f.status}}, nil
}

func (f *taskTemporal) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.update = &o
	if f.refuse != nil {
		return nil, f.refuse
	}
	return doneUpdate{}, nil
}

type doneUpdate struct{ client.WorkflowUpdateHandle }

func (doneUpdate) Get(context.Context, any) error { return nil }

// postTask sends body to the task route of processor name as role ("" is
// the person, with the request's token).
func postTask(t *testing.T, tmp *taskTemporal, role, name, body string) *httptest.ResponseRecorder {
	t.Helper()
	h, err := person.NewHasher(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	s := fuzzServer()
	s.Subjects, s.Temporal, s.APIKeys = h, tmp, fakeKeys{role: role}
	r := httptest.NewRequest(http.MethodPost, "/v1/requests/"+fuzzRequestID+"/processors/"+name+"/task", strings.NewReader(body))
	if role == "" {
		r.Header.Set("X-Request-Token", h.RequestToken(fuzzRequestID))
	} else {
		r.Header.Set("Authorization", "Bearer key")
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	return rec
}

func TestAnOperatorResolvesAProcessorTaskThroughTheAPI(t *testing.T) {
	running := enums.WORKFLOW_EXECUTION_STATUS_RUNNING
	tmp := &taskTemporal{status: running}
	rec := postTask(t, tmp, apikeys.RoleOperator, "stripe", `{"action":"skip","reason":"account closed at Stripe in 2024"}`)
	if rec.Code != http.StatusOK || tmp.update == nil {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	u := tmp.update
	got, _ := u.Args[0].(contract.TaskResolution)
	if u.WorkflowID != fuzzRequestID+"-erasure-stripe" || u.UpdateName != contract.UpdateResolveTask ||
		got != (contract.TaskResolution{Action: "skip", Reason: "account closed at Stripe in 2024", Actor: "operator:k2"}) {
		t.Fatalf("update %+v args %+v", u, u.Args)
	}
	var ok map[string]string
	if json.Unmarshal(rec.Body.Bytes(), &ok) != nil || ok["processor"] != "stripe" || ok["action"] != "skip" {
		t.Fatalf("body %s", rec.Body)
	}

	for _, c := range []struct {
		name, role, processor, body string
		tmp                         *taskTemporal
		status                      int
	}{
		{"backend key", apikeys.RoleBackend, "stripe", `{"action":"retry"}`, &taskTemporal{status: running}, http.StatusForbidden},
		{"the person", "", "stripe", `{"action":"retry"}`, &taskTemporal{status: running}, http.StatusForbidden},
		{"unknown field", apikeys.RoleOperator, "stripe", `{"action":"retry","who":"x"}`, &taskTemporal{status: running}, http.StatusBadRequest},
		{"bad name", apikeys.RoleOperator, "Stripe", `{"action":"retry"}`, &taskTemporal{status: running}, http.StatusBadRequest},
		{"bad action", apikeys.RoleOperator, "stripe", `{"action":"delete"}`, &taskTemporal{status: running}, http.StatusUnprocessableEntity},
		{"skip without reason", apikeys.RoleOperator, "stripe", `{"action":"skip"}`, &taskTemporal{status: running}, http.StatusUnprocessableEntity},
		{"done without evidence", apikeys.RoleOperator, "stripe", `{"action":"done"}`, &taskTemporal{status: running}, http.StatusUnprocessableEntity},
		{"an email in the reason", apikeys.RoleOperator, "stripe", `{"action":"skip","reason":"asked ann@example.com"}`, &taskTemporal{status: running}, http.StatusUnprocessableEntity},
		{"no such erasure", apikeys.RoleOperator, "stripe", `{"action":"retry"}`, &taskTemporal{}, http.StatusNotFound},
		{"erasure ended", apikeys.RoleOperator, "stripe", `{"action":"retry"}`, &taskTemporal{status: enums.WORKFLOW_EXECUTION_STATUS_COMPLETED}, http.StatusConflict},
		{"no task open", apikeys.RoleOperator, "stripe", `{"action":"retry"}`,
			&taskTemporal{status: running, refuse: temporal.NewApplicationError("no operator task is open for the erasure at stripe", contract.RefusedState)}, http.StatusConflict},
	} {
		rec := postTask(t, c.tmp, c.role, c.processor, c.body)
		if rec.Code != c.status {
			t.Errorf("%s: answered %d %s, want %d", c.name, rec.Code, rec.Body, c.status)
			continue
		}
		checkRefusal(t, rec, []byte(c.body))
		if c.status != http.StatusConflict && c.tmp.update != nil {
			t.Errorf("%s: the update was sent", c.name)
		}
	}
}

// A person of a bulk erasure (the sweep's) has their processor task
// resolved under the id its mail gives; only operators may, and only ids of
// that shape are taken.
func TestAnOperatorResolvesABulkErasuresProcessorTask(t *testing.T) {
	const id = "sweep-20270101T000000Z-inactive-3-sr_q557jgxlhpk2uukin4qxdax77pby7xfy"
	post := func(tmp *taskTemporal, role, id, body string) *httptest.ResponseRecorder {
		t.Helper()
		s := fuzzServer()
		s.Temporal, s.APIKeys = tmp, fakeKeys{role: role}
		r := httptest.NewRequest(http.MethodPost, "/v1/bulk/"+id+"/processors/paypal/task", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer key")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, r)
		return rec
	}
	tmp := &taskTemporal{status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING}
	rec := post(tmp, apikeys.RoleOperator, id, `{"action":"done","evidence":"deleted in the PayPal dashboard, ticket 4711"}`)
	if rec.Code != http.StatusOK || tmp.update == nil || tmp.update.WorkflowID != contract.ProcessorErasureWorkflowID(id, "paypal") {
		t.Fatalf("answer %d %s, update %+v", rec.Code, rec.Body, tmp.update)
	}
	for _, c := range []struct {
		name, role, id string
		status         int
	}{
		{"backend key", apikeys.RoleBackend, id, http.StatusForbidden},
		{"a request's id", apikeys.RoleOperator, fuzzRequestID, http.StatusBadRequest},
		{"not an id", apikeys.RoleOperator, "sweep-x", http.StatusBadRequest},
	} {
		tmp := &taskTemporal{status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING}
		if rec := post(tmp, c.role, c.id, `{"action":"retry"}`); rec.Code != c.status || tmp.update != nil {
			t.Errorf("%s: answered %d %s, want %d and no update", c.name, rec.Code, rec.Body, c.status)
		}
	}
}
