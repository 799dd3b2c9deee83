// Package api is Lethe's HTTP API: what people and the company's backend call
// to submit privacy requests and follow them.
package api

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/subject"
	"github.com/lethe-privacy/lethe/workflows"
)

// Server serves the API.
type Server struct {
	Temporal  client.Client
	DB        *pgxpool.Pool // Lethe's own database
	Subjects  *subject.Hasher
	TaskQueue string
	MaxBody   int64
	Log       *slog.Logger
	// Extra routes mounted by the process (e.g. the dev outbox); may be nil.
	Extra func(mux *http.ServeMux)
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("POST /v1/requests", s.submit)
	mux.HandleFunc("GET /v1/requests/{id}", s.get)
	if s.Extra != nil {
		s.Extra(mux)
	}
	return s.recoverer(securityHeaders(mux))
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, Error{Error: fmt.Sprintf(format, args...)})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

// recoverer answers 500 without a stack trace if a handler panics.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Log.ErrorContext(r.Context(), "handler panicked", "route", r.Pattern)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.DB.Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "database unavailable")
		return
	}
	if _, err := s.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		writeError(w, http.StatusServiceUnavailable, "temporal unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// SubmitRequest is the body of POST /v1/requests.
type SubmitRequest struct {
	Type         string  `json:"type"`
	Subject      Subject `json:"subject"`
	Jurisdiction string  `json:"jurisdiction,omitempty"`
}

// Subject identifies the person a request is about.
type Subject struct {
	Email  string `json:"email,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

// RequestView is what the API answers about a request. It carries no
// personal data: the person is a subject reference.
type RequestView struct {
	ID           string                     `json:"id"`
	Type         string                     `json:"type"`
	Status       string                     `json:"status"`
	SubjectRef   string                     `json:"subject_ref,omitempty"`
	Jurisdiction string                     `json:"jurisdiction,omitempty"`
	Systems      []workflows.SystemProgress `json:"systems,omitempty"`
	Links        map[string]string          `json:"links,omitempty"`
}

var (
	userIDRe    = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
	requestIDRe = regexp.MustCompile(`^req_[a-z2-7]{26}$`)
)

var jurisdictions = map[string]bool{"gdpr": true, "ccpa": true, "default": true}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "send application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, "body larger than %d bytes", s.MaxBody)
		case errors.Is(err, io.EOF):
			writeError(w, http.StatusBadRequest, "empty body: send a JSON object")
		default:
			writeError(w, http.StatusBadRequest, "malformed JSON: %s", jsonProblem(err))
		}
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "malformed JSON: one object only")
		return false
	}
	return true
}

// jsonProblem describes a decoding error without echoing the input's values.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q wants a %s", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "cannot decode"
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	var in SubmitRequest
	if !s.decode(w, r, &in) {
		return
	}
	if in.Jurisdiction == "" {
		in.Jurisdiction = "default"
	}
	if !jurisdictions[in.Jurisdiction] {
		writeError(w, http.StatusUnprocessableEntity, "jurisdiction: want gdpr, ccpa or default")
		return
	}
	if in.Subject.Email != "" {
		if a, err := mail.ParseAddress(in.Subject.Email); err != nil || a.Address != in.Subject.Email {
			writeError(w, http.StatusUnprocessableEntity, "subject.email: not a valid email address")
			return
		}
	}
	if in.Subject.UserID != "" && !userIDRe.MatchString(in.Subject.UserID) {
		writeError(w, http.StatusUnprocessableEntity, "subject.user_id: want 1 to 128 letters, digits or ._:@-")
		return
	}
	switch in.Type {
	case "erasure":
		if in.Subject.UserID == "" {
			writeError(w, http.StatusUnprocessableEntity, "subject.user_id: required for erasure")
			return
		}
	case "":
		writeError(w, http.StatusUnprocessableEntity, "type: required")
		return
	default:
		writeError(w, http.StatusUnprocessableEntity, "type: %q is not a request type this Lethe handles; want erasure", in.Type)
		return
	}

	id, err := newRequestID()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	ref := s.Subjects.UserID(in.Subject.UserID)
	_, err = s.Temporal.ExecuteWorkflow(r.Context(), client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: s.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.RequestTypeKey.ValueSet(in.Type),
			workflows.StatusKey.ValueSet(workflows.StatusReceived),
			workflows.SubjectRefKey.ValueSet(string(ref)),
			workflows.JurisdictionKey.ValueSet(in.Jurisdiction),
		),
	}, workflows.WorkflowEraseSubject, workflows.ErasureInput{
		RequestID: id, SubjectRef: string(ref), UserID: in.Subject.UserID, Jurisdiction: in.Jurisdiction,
	})
	if err != nil {
		s.Log.ErrorContext(r.Context(), "start workflow", "request_id", id, "error", err)
		writeError(w, http.StatusServiceUnavailable, "could not accept the request now; nothing was created, try again")
		return
	}
	s.Log.InfoContext(r.Context(), "request accepted", "request_id", id, "type", in.Type, "subject_ref", ref)
	writeJSON(w, http.StatusAccepted, RequestView{
		ID: id, Type: in.Type, Status: workflows.StatusReceived, SubjectRef: string(ref), Jurisdiction: in.Jurisdiction,
		Links: map[string]string{"self": "/v1/requests/" + id},
	})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !requestIDRe.MatchString(id) {
		writeError(w, http.StatusBadRequest, "id: not a request id")
		return
	}
	view, err := s.lookup(r.Context(), id)
	if errors.Is(err, errNotFound) {
		writeError(w, http.StatusNotFound, "no request with this id")
		return
	}
	if err != nil {
		s.Log.ErrorContext(r.Context(), "look up request", "request_id", id, "error", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the request now, try again")
		return
	}
	writeJSON(w, http.StatusOK, view)
}

var errNotFound = errors.New("not found")

// lookup asks the workflow first (live progress) and falls back to Lethe's
// record once the workflow's history is gone.
func (s *Server) lookup(ctx context.Context, id string) (RequestView, error) {
	view := RequestView{ID: id, Links: map[string]string{"self": "/v1/requests/" + id}}
	resp, err := s.Temporal.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err == nil {
		var p workflows.ErasureProgress
		if err := resp.Get(&p); err != nil {
			return view, err
		}
		view.Status, view.Systems, view.Type = p.Status, p.Systems, "erasure"
		if err := s.DB.QueryRow(ctx, `SELECT subject_ref, jurisdiction FROM lethe.requests WHERE id = $1`, id).
			Scan(&view.SubjectRef, &view.Jurisdiction); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return view, err
		}
		return view, nil
	}
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		return view, err
	}
	err = s.DB.QueryRow(ctx, `SELECT type, status, subject_ref, jurisdiction FROM lethe.requests WHERE id = $1`, id).
		Scan(&view.Type, &view.Status, &view.SubjectRef, &view.Jurisdiction)
	if errors.Is(err, pgx.ErrNoRows) {
		return view, errNotFound
	}
	return view, err
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newRequestID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "req_" + strings.ToLower(idEncoding.EncodeToString(b)), nil
}
