package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// caller is who is calling: a key's role, a DRP authorized agent
// (roleDRPAgent, keyID its agent id), or the person (role "").
type caller struct {
	role, keyID string
	gpc         bool // the person's browser sent Global Privacy Control (the portal saw it)
	// vouches: an agent whose identity checks the privacy team relies on
	// (its verified email claim counts as the backend's "verified").
	vouches bool
}

// roleDRPAgent is an authorized agent of the Data Rights Protocol.
const roleDRPAgent = "drp_agent"

// mayVouch says whether the caller may submit a request as verified.
func (c caller) mayVouch() bool {
	return c.role == apikeys.RoleBackend || c.role == roleDRPAgent && c.vouches
}

// limitedPerSubject: the person and agents acting for people are limited
// per person; the company's own systems are not.
func (c caller) limitedPerSubject() bool {
	return c.role == "" || c.role == roleDRPAgent
}

func (c caller) actor() string {
	if c.role == "" {
		return "subject"
	}
	return c.role + ":" + c.keyID
}

// caller identifies an API key from "Authorization: Bearer <key>"; no
// header is the person. A header that does not authenticate is 401.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (caller, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return caller{}, true
	}
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || s.APIKeys == nil {
		writeError(w, http.StatusUnauthorized, "send an API key as Authorization: Bearer <key>")
		return caller{}, false
	}
	key, err := s.APIKeys.Authenticate(r.Context(), token)
	if err != nil {
		if !errors.Is(err, apikeys.ErrUnauthenticated) {
			s.Log.ErrorContext(r.Context(), "authenticate", "error", err)
		}
		writeError(w, http.StatusUnauthorized, "API key not valid")
		return caller{}, false
	}
	return caller{role: key.Role, keyID: key.ID}, true
}

// request reads the {id} of the path and checks the caller may see it: a
// key of either role, or the person with the request's token.
func (s *Server) request(w http.ResponseWriter, r *http.Request) (string, caller, bool) {
	id := r.PathValue("id")
	if !requestIDRe.MatchString(id) {
		writeError(w, http.StatusBadRequest, "id: not a request id")
		return "", caller{}, false
	}
	c, ok := s.caller(w, r)
	if !ok {
		return "", c, false
	}
	if c.role == "" {
		token := r.Header.Get("X-Request-Token")
		if token == "" {
			writeError(w, http.StatusUnauthorized, "send the request's token as X-Request-Token, or an API key")
			return "", c, false
		}
		if !s.TokenMatches(id, token) {
			writeError(w, http.StatusForbidden, "this token is not for this request")
			return "", c, false
		}
	}
	return id, c, true
}

// operatorRequest is request for the routes only the privacy team may
// use: any other caller gets 403 with forbidden, the reason.
func (s *Server) operatorRequest(w http.ResponseWriter, r *http.Request, forbidden string) (string, caller, bool) {
	id, c, ok := s.request(w, r)
	if ok && c.role != apikeys.RoleOperator {
		writeError(w, http.StatusForbidden, "%s", forbidden)
		return "", c, false
	}
	return id, c, ok
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.request(w, r)
	if !ok {
		return
	}
	view, err := s.lookup(r.Context(), id)
	if errors.Is(err, errNotFound) {
		writeError(w, http.StatusNotFound, "no request with this id")
		return
	}
	if err != nil {
		s.unavailable(w, r, "look up request", err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

var errNotFound = errors.New("not found")

// lookup asks the workflow (live state) and falls back to Lethe's record once
// the workflow's history is gone.
func (s *Server) lookup(ctx context.Context, id string) (contract.RequestView, error) {
	resp, err := s.Temporal.QueryWorkflow(ctx, id, "", contract.QueryProgress)
	if err == nil {
		var v contract.RequestView
		return v, resp.Get(&v)
	}
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		return contract.RequestView{}, err
	}
	v := contract.RequestView{RequestID: id}
	rec, err := s.records().Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return v, errNotFound
	}
	if err != nil {
		return v, err
	}
	v.Type, v.Status, v.SubjectRef, v.Jurisdiction, v.ReceivedAt = rec.Type, rec.Status, rec.SubjectRef, rec.Jurisdiction, rec.ReceivedAt
	if rec.DueAt != nil {
		v.DueAt = *rec.DueAt
	}
	return v, nil
}

// VerifyBody is the body of POST /v1/requests/{id}/verify.
type VerifyBody struct {
	Code string `json:"code"`
}

var codeRe = regexp.MustCompile(`^[0-9]{6}$`)

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.request(w, r)
	if !ok {
		return
	}
	var in VerifyBody
	if !s.decode(w, r, &in) {
		return
	}
	res, err := s.Verify(r.Context(), id, in.Code)
	if err != nil {
		s.writeRefusal(w, r, err)
		return
	}
	status := http.StatusOK
	if !res.Accepted {
		status = http.StatusUnprocessableEntity
	}
	writeJSON(w, status, res)
}

func (s *Server) resend(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.request(w, r)
	if !ok {
		return
	}
	v, err := s.Resend(r.Context(), id)
	if err != nil {
		s.writeRefusal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// ActionBody is the body of an operator's action.
type ActionBody struct {
	Reason string   `json:"reason,omitempty"`
	By     string   `json:"by,omitempty"`    // extend: e.g. "2mo", "45d"
	Lines  []string `json:"lines,omitempty"` // complete: what was done, without personal data
}

func (s *Server) operatorAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, c, ok := s.request(w, r)
		if !ok {
			return
		}
		if c.role != apikeys.RoleOperator {
			writeError(w, http.StatusForbidden, "%s needs an operator key", action)
			return
		}
		var in ActionBody
		if !s.decode(w, r, &in) {
			return
		}
		a := contract.OperatorAction{Actor: c.actor(), Reason: strings.TrimSpace(in.Reason), Lines: in.Lines}
		if len(a.Reason) > 500 {
			writeError(w, http.StatusUnprocessableEntity, "reason: at most 500 characters")
			return
		}
		for _, text := range append([]string{a.Reason}, a.Lines...) {
			if strings.Contains(text, "@") {
				writeError(w, http.StatusUnprocessableEntity, "reason and lines go into the audit trail and must not name anyone: no email addresses")
				return
			}
		}
		if action == contract.UpdateExtend {
			by, err := domain.ParsePeriod(in.By)
			if err != nil {
				writeError(w, http.StatusUnprocessableEntity, "by: want a period such as 2mo, 45d or 10bd")
				return
			}
			a.By = by
		}
		var view contract.RequestView
		if s.update(w, r, id, action, a, &view) {
			writeJSON(w, http.StatusOK, view)
		}
	}
}

func (s *Server) auditTrail(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.operatorRequest(w, r, "the audit trail needs an operator key")
	if !ok {
		return
	}
	entries, err := audit.ForRequest(r.Context(), s.DB, id)
	if err != nil {
		s.unavailable(w, r, "read audit trail", err)
		return
	}
	type entry struct {
		Seq    int64          `json:"seq"`
		At     time.Time      `json:"at"`
		Actor  string         `json:"actor"`
		Action string         `json:"action"`
		Detail map[string]any `json:"detail,omitempty"`
	}
	out := make([]entry, 0, len(entries))
	for _, e := range entries {
		out = append(out, entry{Seq: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Detail: e.Detail})
	}
	writeJSON(w, http.StatusOK, map[string]any{"request_id": id, "entries": out})
}

// update runs a workflow update and answers its refusal; true when res holds the result.
func (s *Server) update(w http.ResponseWriter, r *http.Request, id, name string, arg, res any) bool {
	if err := s.runUpdate(r.Context(), id, name, arg, res); err != nil {
		s.writeRefusal(w, r, err)
		return false
	}
	return true
}

// runUpdate runs a workflow update: nil when res holds the result, a
// *Refused when the workflow refused it, else the system's error.
func (s *Server) runUpdate(ctx context.Context, id, name string, arg, res any) error {
	opts := client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted}
	if arg != nil {
		opts.Args = []any{arg}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	h, err := s.Temporal.UpdateWorkflow(ctx, opts)
	if err == nil {
		err = h.Get(ctx, res)
	}
	if err == nil {
		return nil
	}
	var app *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &app):
		status := map[string]int{
			contract.RefusedState: http.StatusConflict, contract.RefusedExpired: http.StatusGone,
			contract.RefusedLocked: http.StatusLocked, contract.RefusedRateLimited: http.StatusTooManyRequests,
			contract.RefusedInput: http.StatusUnprocessableEntity,
		}[app.Type()]
		if status == 0 {
			return unavailable(name, err)
		}
		out := &Refused{Status: status, Message: app.Message(), Reason: app.Type()}
		var wait time.Duration
		if app.Type() == contract.RefusedRateLimited && app.HasDetails() && app.Details(&wait) == nil {
			out.RetryAfter = wait
		}
		return out
	case errors.As(err, &nf):
		return &Refused{Status: http.StatusConflict, Message: "the request has ended and takes no more actions", Reason: contract.RefusedState}
	default:
		return unavailable(name, err)
	}
}

// unavailable answers 503 and logs the cause (which carries no personal data).
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.Log.ErrorContext(r.Context(), what, "error", err, "route", r.Pattern)
	writeError(w, http.StatusServiceUnavailable, "could not do that now; nothing was lost, try again")
}

// newLink answers a fresh download link for an access request's bundle, while it is kept.
func (s *Server) newLink(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.request(w, r)
	if !ok {
		return
	}
	link, err := s.NewLink(r.Context(), id)
	if err != nil {
		s.writeRefusal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, link)
}

// SourceDecisionBody decides about an export source that keeps failing.
type SourceDecisionBody struct {
	Processor string `json:"processor"`
	Action    string `json:"action"` // retry or skip
	Reason    string `json:"reason,omitempty"`
}

// sourceDecision lets an operator retry or skip a processor an export waits on.
func (s *Server) sourceDecision(w http.ResponseWriter, r *http.Request) {
	id, c, ok := s.operatorRequest(w, r, "deciding about a source needs an operator key")
	if !ok {
		return
	}
	var in SourceDecisionBody
	if !s.decode(w, r, &in) {
		return
	}
	if strings.Contains(in.Reason, "@") || len(in.Reason) > 500 {
		writeError(w, http.StatusUnprocessableEntity, "reason: at most 500 characters, naming nobody")
		return
	}
	if s.update(w, r, id+"-export", contract.UpdateProcessorDecision, contract.ProcessorDecision{Processor: in.Processor, Action: in.Action, Reason: in.Reason, Actor: c.actor()}, nil) {
		writeJSON(w, http.StatusOK, map[string]string{"processor": in.Processor, "action": in.Action})
	}
}

// progress reads a workflow's progress query into v; when it cannot, it
// answers 404 with notFound (no such workflow) or 503, and returns false.
func (s *Server) progress(w http.ResponseWriter, r *http.Request, workflowID, notFound string, v any) bool {
	resp, err := s.Temporal.QueryWorkflow(r.Context(), workflowID, "", contract.QueryProgress)
	if err != nil {
		writeError(w, http.StatusNotFound, "%s", notFound)
		return false
	}
	if err := resp.Get(v); err != nil {
		s.unavailable(w, r, "read progress", err)
		return false
	}
	return true
}

// ErasureProgress is an erasure's progress per system, with each
// processor's own state (an open operator task, its steps and deadline).
type ErasureProgress struct {
	Erasure    contract.ErasureProgress                 `json:"erasure"`
	Processors map[string]contract.ProcessorErasureView `json:"processors,omitempty"`
}

// erasureProgress shows an operator where an erasure stands, system by
// system, while it runs and after: GET /v1/requests/{id}/erasure.
func (s *Server) erasureProgress(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.operatorRequest(w, r, "an erasure's progress needs an operator key")
	if !ok {
		return
	}
	ctx := r.Context()
	var out ErasureProgress
	// A request runs its erasure itself; an older one has an EraseSubject
	// workflow of its own. Only a request without the query (older, or
	// not erasing yet) or without a workflow is looked up so: an engine
	// that does not answer is unavailable, not "no erasure".
	resp, err := s.Temporal.QueryWorkflow(ctx, id, "", contract.QueryErasure)
	var noQuery *serviceerror.QueryFailed
	var noWorkflow *serviceerror.NotFound
	switch {
	case err == nil:
		if err := resp.Get(&out.Erasure); err != nil {
			s.unavailable(w, r, "read progress", err)
			return
		}
	case errors.As(err, &noQuery) || errors.As(err, &noWorkflow):
		if !s.progress(w, r, id+"-erasure", "this request has no erasure under way or done (yet)", &out.Erasure) {
			return
		}
	default:
		s.unavailable(w, r, "read progress", err)
		return
	}
	// A processor that settled the erasure at the first call has no
	// workflow of its own: the erasure keeps its view.
	for _, v := range out.Erasure.Answered {
		if out.Processors == nil {
			out.Processors = map[string]contract.ProcessorErasureView{}
		}
		out.Processors[v.Processor] = v
	}
	out.Erasure.Answered = nil
	for _, sys := range out.Erasure.Systems {
		if _, answered := out.Processors[sys.Name]; sys.System != contract.SystemProcessor || sys.Status == contract.StepPending || answered {
			continue
		}
		resp, err := s.Temporal.QueryWorkflow(ctx, contract.ProcessorErasureWorkflowID(id, sys.Name), "", contract.QueryProgress)
		if err != nil {
			continue // not started yet, or gone from retention: the erasure's own line says enough
		}
		var v contract.ProcessorErasureView
		if resp.Get(&v) == nil {
			if out.Processors == nil {
				out.Processors = map[string]contract.ProcessorErasureView{}
			}
			out.Processors[sys.Name] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}
