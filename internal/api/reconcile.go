package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// ReconcileBody optionally tunes a restore-reconcile.
type ReconcileBody struct {
	PageSize int `json:"page_size,omitempty"` // accounts per page; default 1000
}

var reconcileIDRe = regexp.MustCompile(`^restore-reconcile-[0-9]{8}T[0-9]{6}Z$`)

// StartReconcile starts a RestoreReconcile workflow named after the current
// second, on behalf of requester (an audit actor such as "operator:key_…" or
// "cli"). Two starts in the same second are one reconcile: the second gets
// the first's run.
func StartReconcile(ctx context.Context, c client.Client, taskQueue, requester string, pageSize int) (client.WorkflowRun, error) {
	id := contract.ReconcileWorkflowID(time.Now())
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: taskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(contract.RequestTypeKey.ValueSet("restore_reconcile")),
	}, contract.WorkflowRestoreReconcile, contract.ReconcileInput{PageSize: pageSize, Requester: requester})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return c.GetWorkflow(ctx, id, ""), nil
	}
	if err != nil {
		return nil, fmt.Errorf("start restore-reconcile: %w", err)
	}
	return run, nil
}

// startReconcile starts a restore-reconcile after a restore of the
// application database (operator only): 202 with the workflow id.
func (s *Server) startReconcile(w http.ResponseWriter, r *http.Request) {
	c, ok := s.operator(w, r)
	if !ok {
		return
	}
	var in ReconcileBody
	if r.ContentLength != 0 && !s.decode(w, r, &in) {
		return
	}
	if in.PageSize < 0 || in.PageSize > 10_000 {
		writeError(w, http.StatusUnprocessableEntity, "page_size: between 1 and 10000")
		return
	}
	run, err := StartReconcile(r.Context(), s.Temporal, s.TaskQueue, c.actor(), in.PageSize)
	if err != nil {
		s.unavailable(w, r, "start restore-reconcile", err)
		return
	}
	s.Log.InfoContext(r.Context(), "restore-reconcile started", "workflow_id", run.GetID(), "by", c.actor())
	writeJSON(w, http.StatusAccepted, map[string]any{"id": run.GetID(), "links": map[string]string{"self": "/v1/reconcile/" + run.GetID()}})
}

// getReconcile answers a restore-reconcile's progress (operator only).
func (s *Server) getReconcile(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.operator(w, r); !ok {
		return
	}
	id := r.PathValue("id")
	if !reconcileIDRe.MatchString(id) {
		writeError(w, http.StatusBadRequest, "id: not a restore-reconcile id")
		return
	}
	var p contract.ReconcileProgress
	if s.progress(w, r, id, "no restore-reconcile with this id", &p) {
		writeJSON(w, http.StatusOK, p)
	}
}
