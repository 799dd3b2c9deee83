package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// TaskBody resolves the open operator task of an erasure at a processor:
// {"action": "retry"}, {"action": "skip", "reason": …} or
// {"action": "done", "evidence": …}.
type TaskBody struct {
	Action   string `json:"action"`
	Reason   string `json:"reason,omitempty"`
	Evidence string `json:"evidence,omitempty"`
}

// processorTask lets an operator retry, skip or mark done by hand the
// erasure at one processor that waits on a person.
func (s *Server) processorTask(w http.ResponseWriter, r *http.Request) {
	id, c, ok := s.operatorRequest(w, r, "resolving a processor task needs an operator key")
	if ok {
		s.resolveProcessorTask(w, r, id, c)
	}
}

// bulkProcessorTask is processorTask for a person of a bulk erasure (the
// sweep's, a reconcile's), named by the id the task mail gives:
// POST /v1/bulk/{id}/processors/{name}/task.
func (s *Server) bulkProcessorTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !contract.ValidBulkRequestID(id) {
		writeError(w, http.StatusBadRequest, "id: not the id of a person in a bulk erasure (sweep-…-sr_… or reconcile-…-sr_…)")
		return
	}
	c, ok := s.caller(w, r)
	if !ok {
		return
	}
	if c.role != apikeys.RoleOperator {
		writeError(w, http.StatusForbidden, "resolving a processor task needs an operator key")
		return
	}
	s.resolveProcessorTask(w, r, id, c)
}

// resolveProcessorTask hands the operator's resolution to the erasure of
// id at the processor the path names.
func (s *Server) resolveProcessorTask(w http.ResponseWriter, r *http.Request, id string, c caller) {
	name := r.PathValue("name")
	if !processors.ValidName(name) {
		writeError(w, http.StatusBadRequest, "name: not a processor name")
		return
	}
	var in TaskBody
	if !s.decode(w, r, &in) {
		return
	}
	res := contract.TaskResolution{Action: in.Action, Reason: in.Reason, Evidence: in.Evidence, Actor: c.actor()}
	if err := res.Validate(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "%s", err.Error())
		return
	}
	wid := contract.ProcessorErasureWorkflowID(id, name)
	if !s.erasureRunning(w, r, wid, name) {
		return
	}
	if s.update(w, r, wid, contract.UpdateResolveTask, res, nil) {
		writeJSON(w, http.StatusOK, map[string]string{"processor": name, "action": in.Action})
	}
}

// erasureRunning answers 404 when the request has no erasure at this
// processor and 409 when it has ended, so that s.update's own answers only
// concern a running erasure (409: no task open; 422: a bad resolution).
func (s *Server) erasureRunning(w http.ResponseWriter, r *http.Request, workflowID, name string) bool {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, "this request has no erasure at processor %s", name)
		return false
	case err != nil:
		s.unavailable(w, r, "describe processor erasure", err)
		return false
	case d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING:
		writeError(w, http.StatusConflict, "the erasure at processor %s has ended: no task is open", name)
		return false
	}
	return true
}
