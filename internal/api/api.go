// Package api is Lethe's HTTP API: what people and the company's backend call
// to submit privacy requests and follow them.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/policy"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Server serves the API.
type Server struct {
	Temporal  client.Client
	DB        *pgxpool.Pool // Lethe's own database
	Subjects  *person.Hasher
	Keys      person.Sealer // seals each request's identity with the person's key
	Policies  *policy.Book
	APIKeys   Authenticator
	TaskQueue string
	MaxBody   int64
	Log       *slog.Logger
	Accounts  AccountPolicy
	Notices   NoticePolicy
	Map       *datamap.Map // what may be corrected and consented to; nil: no such requests
	// Callbacks verifies the signed status callbacks of the data map's
	// OpenDSR processors; nil: every callback route answers 404.
	Callbacks *processors.OpenDSRCallbacks
	// PerIP and PerSubject limit the public routes; nil means no limit.
	PerIP, PerSubject *ratelimit.Limiter
	// DRP turns on the Data Rights Protocol's routes (drp.go); nil: off.
	DRP *DRPConfig
	// Extra routes mounted by the process (e.g. the codec server); may be nil.
	Extra func(mux *http.ServeMux)
	// Portal is the privacy portal (internal/portal), served under
	// /privacy/ with its own security headers; nil: no portal.
	Portal http.Handler
}

// Authenticator checks an API key.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (apikeys.Key, error)
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	public := func(h http.HandlerFunc) http.Handler {
		if s.PerIP == nil {
			return h
		}
		return ratelimit.Middleware(s.PerIP, func(r *http.Request) string {
			// A valid API key is the company's own systems: not limited.
			// Any other Authorization (a wrong key, an agent's DRP token)
			// is limited like the person.
			if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.APIKeys != nil {
				if _, err := s.APIKeys.Authenticate(r.Context(), token); err == nil {
					return ""
				}
			}
			return ratelimit.ClientIP(r)
		}, h)
	}
	mux.Handle("POST /v1/requests", public(s.submit))
	mux.Handle("GET /v1/requests/{id}", public(s.get))
	mux.Handle("POST /v1/requests/{id}/verify", public(s.verify))
	mux.Handle("POST /v1/requests/{id}/resend", public(s.resend))
	mux.Handle("POST /v1/requests/{id}/link", public(s.newLink))
	mux.HandleFunc("POST /v1/requests/{id}/sources", s.sourceDecision)
	mux.HandleFunc("GET /v1/requests/{id}/erasure", s.erasureProgress)
	mux.HandleFunc("POST /v1/requests/{id}/processors/{name}/task", s.processorTask)
	mux.HandleFunc("POST /v1/bulk/{id}/processors/{name}/task", s.bulkProcessorTask)
	mux.HandleFunc("POST /v1/callbacks/opendsr/{processor}", s.openDSRCallback) // no key: the processor's signature
	for _, action := range []string{contract.UpdateApprove, contract.UpdateDeny, contract.UpdateExtend, contract.UpdateCancel, contract.UpdateComplete, contract.UpdateRetry} {
		mux.HandleFunc("POST /v1/requests/{id}/"+action, s.operatorAction(action))
	}
	mux.HandleFunc("GET /v1/requests/{id}/audit", s.auditTrail)
	mux.HandleFunc("POST /v1/accounts/{user_id}/deactivate", s.deactivate)
	mux.HandleFunc("POST /v1/accounts/{user_id}/restore", s.restore)
	mux.HandleFunc("GET /v1/accounts/{user_id}/deactivation", s.deactivation)
	mux.HandleFunc("POST /v1/accounts/{user_id}/deactivation/retry", s.retryDeactivation)
	mux.HandleFunc("POST /v1/appeals/{ticket}/closed", s.appealClosed)
	mux.HandleFunc("POST /v1/incidents", s.declareIncident)
	mux.HandleFunc("GET /v1/incidents/{id}", s.getIncident)
	mux.HandleFunc("POST /v1/incidents/{id}/people", s.addPeople)
	mux.HandleFunc("POST /v1/incidents/{id}/close", s.closeIncident)
	mux.HandleFunc("POST /v1/policy-notices", s.policyNotice)
	mux.HandleFunc("GET /v1/policy-notices/{id}", s.getIncident)
	mux.HandleFunc("POST /v1/reconcile", s.startReconcile)
	mux.HandleFunc("GET /v1/reconcile/{id}", s.getReconcile)
	if s.DRP != nil {
		s.drpRoutes(mux, public)
	}
	if s.Extra != nil {
		s.Extra(mux)
	}
	if s.Portal != nil {
		mux.Handle("/privacy/", s.Portal)
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

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newRequestID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "req_" + strings.ToLower(idEncoding.EncodeToString(b)), nil
}

// decode reads one JSON object strictly: unknown fields, trailing data and
// bodies over MaxBody are refused with a reason. The whole body is read
// first, so a body over the limit is 413 whatever it holds.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "send application/json")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, "body larger than %d bytes", s.MaxBody)
		return false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "could not read the body")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "empty body: send a JSON object")
		} else {
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

// plainName is a field or value the API may repeat in an error: nothing
// that could be someone's email or name.
var plainName = regexp.MustCompile(`^[a-z_][a-z0-9_.]{0,39}$`)

// quoteIfPlain repeats s in an error only when it cannot carry personal data.
func quoteIfPlain(s string) string {
	if plainName.MatchString(s) {
		return fmt.Sprintf("%q", s)
	}
	return "(not shown)"
}

// jsonProblem describes a decoding error without echoing the input's values.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s wants a %s", quoteIfPlain(typ.Field), typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return "unknown field " + quoteIfPlain(name)
	}
	return "cannot decode"
}
