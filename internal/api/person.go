package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// What the privacy portal (internal/portal) and the JSON API share: the
// same checks, limits, workflow updates and answers, with no HTTP in
// between. A person's step the API refuses is a *Refused either way.

// Refused is why a step was refused, in words that name nobody.
type Refused struct {
	Status  int    // the HTTP status the JSON API answers
	Message string // the reason
	// Field is the submission's field the reason is about (e.g.
	// "subject.email"), when there is one; Fields a reason per corrected field.
	Field  string
	Fields map[string]string
	// Reason is the workflow's refusal type (contract.Refused…), for a refused update.
	Reason string
	// RetryAt: over a limit, when the person may ask again; RetryAfter: how
	// long to wait before trying again (also sent as Retry-After).
	RetryAt    time.Time
	RetryAfter time.Duration
	body       any // the JSON answer, when not {"error": Message}
}

func (r *Refused) Error() string { return r.Message }

// unavailableError is a system that did not answer; what names the step (for the log).
type unavailableError struct {
	what string
	err  error
}

func (u *unavailableError) Error() string { return u.what + ": " + fmt.Sprint(u.err) }
func (u *unavailableError) Unwrap() error { return u.err }

func unavailable(what string, err error) error { return &unavailableError{what: what, err: err} }

// writeRefusal answers err: a *Refused with its status and reason, anything
// else 503 (logged, without personal data).
func (s *Server) writeRefusal(w http.ResponseWriter, r *http.Request, err error) {
	var ref *Refused
	if errors.As(err, &ref) {
		if ref.RetryAfter > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(int(ref.RetryAfter.Seconds())+1))
		}
		if ref.body != nil {
			writeJSON(w, ref.Status, ref.body)
		} else {
			writeError(w, ref.Status, "%s", ref.Message)
		}
		return
	}
	what := "request"
	var u *unavailableError
	if errors.As(err, &u) {
		what = u.what
	}
	s.unavailable(w, r, what, err)
}

// fieldOf is the field a validation message is about: its text before ":".
func fieldOf(msg string) string {
	if f, _, ok := strings.Cut(msg, ":"); ok && plainName.MatchString(f) {
		return f
	}
	return ""
}

// ErrNotFound: no request with this id.
var ErrNotFound = errNotFound

// ValidRequestID says whether id has the form of a request id.
func ValidRequestID(id string) bool { return requestIDRe.MatchString(id) }

// TokenMatches says whether token is the request's token (in constant time).
func (s *Server) TokenMatches(id, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.Subjects.RequestToken(id))) == 1
}

// Lookup is a request's state, from its workflow or, once that is gone,
// Lethe's record; ErrNotFound when there is no such request.
func (s *Server) Lookup(ctx context.Context, id string) (contract.RequestView, error) {
	v, err := s.lookup(ctx, id)
	if err != nil && !errors.Is(err, errNotFound) {
		return v, unavailable("look up request", err)
	}
	return v, err
}

// Verify checks the code the person typed: the result (accepted or the
// tries left) or a *Refused (expired, locked, not awaiting a code).
func (s *Server) Verify(ctx context.Context, id, code string) (contract.VerifyResult, error) {
	var res contract.VerifyResult
	if !codeRe.MatchString(code) {
		return res, &Refused{Status: http.StatusUnprocessableEntity, Message: "code: want the 6 digits from the email", Field: "code"}
	}
	err := s.runUpdate(ctx, id, contract.UpdateVerify, contract.VerifyInput{CodeHash: s.Subjects.CodeHash(id, code)}, &res)
	return res, err
}

// Resend mails a fresh code, or is refused (too soon: RetryAfter).
func (s *Server) Resend(ctx context.Context, id string) (contract.VerificationView, error) {
	var v contract.VerificationView
	return v, s.runUpdate(ctx, id, contract.UpdateResendCode, nil, &v)
}

// NewLink is a fresh download link to an access or portability bundle while it is kept.
func (s *Server) NewLink(ctx context.Context, id string) (contract.LinkResult, error) {
	var link contract.LinkResult
	return link, s.runUpdate(ctx, contract.ExpiryWorkflowID(id), contract.UpdateNewLink, nil, &link)
}

// PersonMayCancel says whether the person may still withdraw a request in
// this status: before it is verified or while it waits for the work to
// start. (The privacy team cancels a request that needs attention.)
func PersonMayCancel(status string) bool {
	return status == domain.StatusAwaitingVerification || status == domain.StatusVerified || status == domain.StatusAwaitingApproval
}

// CancelForPerson withdraws the person's own request before its work
// starts; the workflow records "subject" as the actor and mails the
// cancellation as for any other.
func (s *Server) CancelForPerson(ctx context.Context, id, reason string) (contract.RequestView, error) {
	return s.cancelFor(ctx, id, caller{}.actor(), reason)
}

// cancelFor cancels a request for the person (themself, or an agent acting
// for them) while PersonMayCancel allows it: once the work has started,
// only the privacy team cancels.
func (s *Server) cancelFor(ctx context.Context, id, actor, reason string) (contract.RequestView, error) {
	v, err := s.lookup(ctx, id)
	if err != nil {
		return v, unavailable("look up request", err)
	}
	if !PersonMayCancel(v.Status) {
		return v, &Refused{Status: http.StatusConflict, Reason: contract.RefusedState,
			Message: "the request can no longer be withdrawn: its work has started or it has ended"}
	}
	return v, s.runUpdate(ctx, id, contract.UpdateCancel, contract.OperatorAction{Actor: actor, Reason: reason}, &v)
}
