package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// AccountPolicy is what the account routes promise.
type AccountPolicy struct {
	DeactivationGrace     time.Duration
	DeactivationReminder  time.Duration
	IDDocumentDeleteAfter time.Duration
}

// DeactivateBody is the body of POST /v1/accounts/{user_id}/deactivate.
type DeactivateBody struct {
	Email string `json:"email,omitempty"` // to tell the person; optional
}

// AppealClosedBody is the body of POST /v1/appeals/{ticket}/closed.
type AppealClosedBody struct {
	ClosedAt time.Time `json:"closed_at,omitzero"` // default: now
}

var ticketRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// backendOnly answers 401/403 unless the caller holds a backend key.
func (s *Server) backendOnly(w http.ResponseWriter, r *http.Request, roles ...string) (caller, bool) {
	c, ok := s.caller(w, r)
	if !ok {
		return c, false
	}
	if c.role == "" {
		writeError(w, http.StatusUnauthorized, "send an API key as Authorization: Bearer <key>")
		return c, false
	}
	for _, role := range append(roles, apikeys.RoleBackend) {
		if c.role == role {
			return c, true
		}
	}
	writeError(w, http.StatusForbidden, "this route needs a backend key")
	return c, false
}

func (s *Server) accountRef(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	userID := r.PathValue("user_id")
	if !userIDRe.MatchString(userID) {
		writeError(w, http.StatusBadRequest, "user_id: want 1 to 128 letters, digits or ._:@-")
		return "", "", false
	}
	return userID, string(s.Subjects.UserID(userID)), true
}

func (s *Server) deactivate(w http.ResponseWriter, r *http.Request) {
	c, ok := s.backendOnly(w, r)
	if !ok {
		return
	}
	userID, ref, ok := s.accountRef(w, r)
	if !ok {
		return
	}
	var in DeactivateBody
	if !s.decode(w, r, &in) {
		return
	}
	if in.Email != "" && !validEmail(in.Email) {
		writeError(w, http.StatusUnprocessableEntity, "email: not a valid email address")
		return
	}
	ctx := r.Context()
	sealed, err := person.Seal(ctx, s.Keys, ref, person.Identity{UserID: userID, Email: in.Email})
	if err != nil {
		s.unavailable(w, r, "seal identity", err)
		return
	}
	_, err = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: contract.DeactivationWorkflowID(ref), TaskQueue: s.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, // deactivating twice is the same deactivation
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, contract.WorkflowDeactivation, contract.DeactivationInput{
		SubjectRef: ref, Identity: sealed, HasEmail: in.Email != "",
		GracePeriod: s.Accounts.DeactivationGrace, ReminderBefore: s.Accounts.DeactivationReminder, RequestedBy: c.actor(),
	})
	if err != nil {
		s.unavailable(w, r, "start deactivation", err)
		return
	}
	view, err := s.deactivationView(ctx, ref)
	if err != nil {
		s.unavailable(w, r, "read deactivation", err)
		return
	}
	writeJSON(w, http.StatusAccepted, view)
}

func (s *Server) restore(w http.ResponseWriter, r *http.Request) {
	c, ok := s.backendOnly(w, r)
	if !ok {
		return
	}
	_, ref, ok := s.accountRef(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	view, err := s.deactivationView(ctx, ref)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, "this account is not deactivated")
		return
	case err != nil:
		s.unavailable(w, r, "read deactivation", err)
		return
	case view.Status == contract.AccountErased:
		writeError(w, http.StatusConflict, "the grace period ended on %s and the account was erased: it cannot be restored", view.FinalAt.Format(domain.DateLayout))
		return
	case view.Status == contract.AccountRestored:
		writeJSON(w, http.StatusOK, view) // restoring twice is the same restore
		return
	}
	var out contract.DeactivationView
	if s.update(w, r, contract.DeactivationWorkflowID(ref), contract.UpdateRestore, contract.RestoreInput{Actor: c.actor()}, &out) {
		writeJSON(w, http.StatusOK, out)
	}
}

// retryDeactivation runs again the erasure of a deactivated account that
// failed for good (status needs_attention), once its cause is fixed.
func (s *Server) retryDeactivation(w http.ResponseWriter, r *http.Request) {
	c, ok := s.caller(w, r)
	if !ok {
		return
	}
	if c.role != apikeys.RoleOperator {
		writeError(w, http.StatusForbidden, "retrying an erasure needs an operator key")
		return
	}
	_, ref, ok := s.accountRef(w, r)
	if !ok {
		return
	}
	var out contract.DeactivationView
	if s.update(w, r, contract.DeactivationWorkflowID(ref), contract.UpdateRetry, contract.OperatorAction{Actor: c.actor()}, &out) {
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Server) deactivation(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.backendOnly(w, r, apikeys.RoleOperator); !ok {
		return
	}
	_, ref, ok := s.accountRef(w, r)
	if !ok {
		return
	}
	view, err := s.deactivationView(r.Context(), ref)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		writeError(w, http.StatusNotFound, "this account was never deactivated")
		return
	}
	if err != nil {
		s.unavailable(w, r, "read deactivation", err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (s *Server) deactivationView(ctx context.Context, ref string) (contract.DeactivationView, error) {
	var v contract.DeactivationView
	resp, err := s.Temporal.QueryWorkflow(ctx, contract.DeactivationWorkflowID(ref), "", contract.QueryProgress)
	if err != nil {
		return v, err
	}
	return v, resp.Get(&v)
}

func (s *Server) appealClosed(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.backendOnly(w, r); !ok {
		return
	}
	ticket := r.PathValue("ticket")
	if !ticketRe.MatchString(ticket) {
		writeError(w, http.StatusBadRequest, "ticket: want 1 to 64 letters, digits, _ or -")
		return
	}
	var in AppealClosedBody
	if !s.decode(w, r, &in) {
		return
	}
	now := time.Now().UTC()
	if in.ClosedAt.IsZero() {
		in.ClosedAt = now
	}
	if in.ClosedAt.After(now.Add(time.Minute)) {
		writeError(w, http.StatusUnprocessableEntity, "closed_at: in the future")
		return
	}
	in.ClosedAt = in.ClosedAt.UTC()
	_, err := s.Temporal.ExecuteWorkflow(r.Context(), client.StartWorkflowOptions{
		ID: contract.IDDocumentWorkflowID(ticket), TaskQueue: s.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, contract.WorkflowIDDocuments, contract.IDDocumentInput{Ticket: ticket, ClosedAt: in.ClosedAt, DeleteAfter: s.Accounts.IDDocumentDeleteAfter})
	if err != nil {
		s.unavailable(w, r, "start ID document deletion", err)
		return
	}
	deadline := in.ClosedAt.Add(s.Accounts.IDDocumentDeleteAfter)
	writeJSON(w, http.StatusAccepted, map[string]any{"ticket": ticket, "delete_by": deadline, "workflow_id": contract.IDDocumentWorkflowID(ticket),
		"note": fmt.Sprintf("the ticket's ID documents will be deleted by %s", deadline.Format(domain.DateLayout))})
}
