package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/drp"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// DRPConfig turns on the Data Rights Protocol's covered-business routes.
type DRPConfig struct {
	BusinessID  string             // this covered business's id in the DRP directory
	Key         ed25519.PrivateKey // signs the status callbacks
	SalePurpose string             // the consent purpose sale:opt-out withdraws
	Window      drp.Window         // issued-at / expires-at checks
	PublicURL   string             // where people reach Lethe (user_verification_url)
	// CallbackEvery is how often the API looks for status changes to tell
	// agents about; Client sends the callbacks.
	CallbackEvery time.Duration
	Client        *http.Client
}

func (s *Server) drpRoutes(mux *http.ServeMux, public func(http.HandlerFunc) http.Handler) {
	mux.HandleFunc("GET /.well-known/data-rights.json", s.drpDiscovery)
	mux.Handle("POST /v1/agent/{agent_id}", public(s.drpSetup))
	mux.Handle("GET /v1/agent/{agent_id}", public(s.drpAgentInfo))
	mux.Handle("POST /v1/data-rights-request", public(s.drpExercise))
	mux.Handle("POST /v1/data-rights-request/", public(s.drpExercise))
	mux.Handle("GET /v1/data-rights-request/{id}", public(s.drpStatus))
	mux.Handle("DELETE /v1/data-rights-request/{id}", public(s.drpRevoke))
	mux.Handle("GET /drp/verify/{id}", public(s.drpVerifyPage))
	mux.Handle("POST /drp/verify/{id}", public(s.drpVerifyPage))
}

func writeDRPError(w http.ResponseWriter, err error) {
	var ref *drp.Refusal
	if !errors.As(err, &ref) {
		ref = &drp.Refusal{Status: http.StatusBadRequest, Message: "request refused"}
	}
	writeJSON(w, ref.Status, ref.Body())
}

func drpRefuse(status int, fatal bool, msg string) error {
	return &drp.Refusal{Status: status, Message: msg, Fatal: fatal}
}

// drpUnavailable answers 503 in DRP's error shape and logs the cause.
func (s *Server) drpUnavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.Log.ErrorContext(r.Context(), what, "error", err, "route", r.Pattern)
	writeDRPError(w, drpRefuse(http.StatusServiceUnavailable, false, "could not do that now; nothing was lost, try again"))
}

// drpDiscovery serves this business's entry as DRP's Business Discovery
// Document (section 3.05.2), with the key that verifies Lethe's status
// callbacks. DRP 0.9 dropped the well-known endpoint in favour of the
// directory; Lethe serves it so the directory's operators and agents can
// read the entry (and the callback key) from the source.
func (s *Server) drpDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                      s.DRP.BusinessID,
		"api_base":                strings.TrimSuffix(s.DRP.PublicURL, "/"),
		"supported_actions":       drp.Supported(),
		"supported_verifications": []string{"email"},
		"drp.version":             drp.Version,
		"verify_key":              drp.EncodeKey(s.DRP.Key.Public().(ed25519.PublicKey)),
	})
}

// readSigned reads a signed text/plain body.
func (s *Server) readSigned(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, drpRefuse(http.StatusRequestEntityTooLarge, true, "body too large")
	}
	if err != nil {
		return nil, drpRefuse(http.StatusBadRequest, false, "could not read the body")
	}
	return bytes.TrimSpace(body), nil
}

// drpSetup is the pairwise key setup (POST /v1/agent/{agent_id}, section
// 2.05): a message signed with the agent's registered key earns a fresh
// bearer token, of which Lethe keeps only the hash. Any failure is 403
// with no body, as the section says.
func (s *Server) drpSetup(w http.ResponseWriter, r *http.Request) {
	forbidden := func(why string) {
		s.Log.InfoContext(r.Context(), "DRP setup refused", "reason", why)
		w.WriteHeader(http.StatusForbidden)
	}
	id := r.PathValue("agent_id")
	if !drp.AgentIDRe.MatchString(id) {
		forbidden("agent id malformed")
		return
	}
	ctx := r.Context()
	agent, err := s.records().DRPAgent(ctx, id)
	if errors.Is(err, store.ErrNoAgent) {
		forbidden("unknown agent")
		return
	}
	if err != nil {
		s.drpUnavailable(w, r, "DRP agent", err)
		return
	}
	body, err := s.readSigned(w, r)
	if err != nil {
		forbidden("body")
		return
	}
	msg, err := drp.Open(agent.VerifyKey, body)
	if err != nil {
		forbidden("signature")
		return
	}
	var setup drp.Setup
	if json.Unmarshal(msg, &setup) != nil {
		forbidden("not JSON")
		return
	}
	expires, err := setup.Check(agent.ID, s.DRP.BusinessID, time.Now(), s.DRP.Window)
	if err != nil {
		forbidden("claims")
		return
	}
	if fresh, err := s.records().SeeDRPMessage(ctx, agent.ID, drp.Digest(body), expires); err != nil {
		s.drpUnavailable(w, r, "DRP replay record", err)
		return
	} else if !fresh {
		forbidden("replayed")
		return
	}
	token, hash, err := drp.NewToken()
	if err == nil {
		err = s.records().SetDRPToken(ctx, agent.ID, hash)
	}
	if err != nil {
		s.drpUnavailable(w, r, "DRP token", err)
		return
	}
	s.Log.InfoContext(ctx, "DRP agent set up", "agent_id", agent.ID)
	writeJSON(w, http.StatusOK, drp.SetupAnswer{AgentID: agent.ID, Token: token})
}

// drpAgent is the agent of the request's bearer token; it answers 403 in
// DRP's shape when there is none.
func (s *Server) drpAgent(w http.ResponseWriter, r *http.Request) (store.DRPAgent, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		writeDRPError(w, drpRefuse(http.StatusForbidden, false, "send the pairwise token of POST /v1/agent/{agent-id} as Authorization: Bearer <token>"))
		return store.DRPAgent{}, false
	}
	agent, err := s.records().DRPAgentByToken(r.Context(), drp.TokenHash(token))
	if errors.Is(err, store.ErrNoAgent) {
		writeDRPError(w, drpRefuse(http.StatusForbidden, false, "the bearer token is not valid: set up the agent again"))
		return agent, false
	}
	if err != nil {
		s.drpUnavailable(w, r, "DRP agent by token", err)
		return agent, false
	}
	return agent, true
}

// drpAgentInfo (GET /v1/agent/{agent_id}, section 2.06): {} when the token
// is this agent's, else 403.
func (s *Server) drpAgentInfo(w http.ResponseWriter, r *http.Request) {
	agent, ok := s.drpAgent(w, r)
	if !ok {
		return
	}
	if subtle.ConstantTimeCompare([]byte(agent.ID), []byte(r.PathValue("agent_id"))) != 1 {
		writeDRPError(w, drpRefuse(http.StatusForbidden, false, "the bearer token is not this agent's"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// openSigned verifies a signed body with the agent's key and records it
// against replay until it expires. check validates its claims and says
// when it expires.
func (s *Server) openSigned(ctx context.Context, agent store.DRPAgent, body []byte, scope string, check func(msg []byte) (time.Time, error)) ([]byte, error) {
	msg, err := drp.Open(agent.VerifyKey, body)
	if err != nil {
		return nil, err
	}
	expires, err := check(msg)
	if err != nil {
		return nil, err
	}
	fresh, err := s.records().SeeDRPMessage(ctx, agent.ID, seenDigest(body, scope), expires)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, drpRefuse(http.StatusConflict, true, "this signed request was received before: a replay is refused")
	}
	return msg, nil
}

// forgetMessage drops a signed message (an exercise: scope ""; a revoke:
// its request) from the replay record when Lethe could not act on it
// (503), so that the agent's retry of the same message is taken (a joined
// request is found again, an earlier cancel is recognised: nothing is done
// twice).
func (s *Server) forgetMessage(ctx context.Context, agent store.DRPAgent, body []byte, scope string) {
	if err := s.records().ForgetDRPMessage(context.WithoutCancel(ctx), agent.ID, seenDigest(body, scope)); err != nil {
		s.Log.WarnContext(ctx, "forget a DRP message", "agent_id", agent.ID, "error", err)
	}
}

// seenDigest is what the replay record keeps of a signed message: its
// digest, bound to what it acts on (a revoke's request, whose body may
// carry no claims: the same words revoking another request are no replay).
func seenDigest(body []byte, scope string) []byte {
	if scope == "" {
		return drp.Digest(body)
	}
	return drp.Digest(append([]byte(scope+"\x00"), body...))
}

// drpExercise takes a data rights request (POST /v1/data-rights-request,
// section 2.01) through the same intake as POST /v1/requests.
func (s *Server) drpExercise(w http.ResponseWriter, r *http.Request) {
	agent, ok := s.drpAgent(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	body, err := s.readSigned(w, r)
	if err != nil {
		writeDRPError(w, err)
		return
	}
	var x drp.Exercise
	_, err = s.openSigned(ctx, agent, body, "", func(msg []byte) (time.Time, error) {
		if x, err = drp.ParseExercise(msg); err != nil {
			return time.Time{}, err
		}
		return x.Check(agent.ID, s.DRP.BusinessID, time.Now(), s.DRP.Window)
	})
	if err != nil {
		var ref *drp.Refusal
		if !errors.As(err, &ref) {
			s.drpUnavailable(w, r, "DRP replay record", err)
			return
		}
		s.Log.InfoContext(ctx, "DRP request refused", "agent_id", agent.ID, "status", ref.Status, "reason", ref.Message)
		writeDRPError(w, err)
		return
	}
	in, callback, err := s.drpSubmission(agent, x)
	if err != nil {
		writeDRPError(w, err)
		return
	}
	c := caller{role: roleDRPAgent, keyID: agent.ID, vouches: agent.TrustVerifiedEmail}
	out, err := s.submitAs(ctx, in, c)
	if err != nil {
		var refused *Refused
		if !errors.As(err, &refused) {
			what := "intake"
			var u *unavailableError
			if errors.As(err, &u) {
				what = u.what
			}
			s.forgetMessage(ctx, agent, body, "")
			s.drpUnavailable(w, r, what, err)
			return
		}
		if refused.RetryAfter > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(int(refused.RetryAfter.Seconds())+1))
		}
		status := refused.Status
		if status == http.StatusUnprocessableEntity {
			status = http.StatusBadRequest
		}
		writeDRPError(w, drpRefuse(status, status != http.StatusTooManyRequests, refused.Message))
		return
	}
	if out.Joined {
		// A request like it is open: the agent follows it only if it made
		// it. Knowing an email address does not hand someone's request
		// (its status, its revoke) to an agent.
		if _, err := s.records().LinkedDRPRequest(ctx, out.ID, agent.ID); errors.Is(err, store.ErrNotFound) {
			writeDRPError(w, drpRefuse(http.StatusConflict, true, "a request of this kind is already open for this person; they follow it through the link in our mails"))
			return
		} else if err != nil {
			s.forgetMessage(ctx, agent, body, "")
			s.drpUnavailable(w, r, "look up DRP link", err)
			return
		}
	}
	st := drp.Status{RequestID: out.ID, AgentRequestID: x.AgentRequestID, ReceivedAt: drp.Timestamp(time.Now()), ExpectedBy: drp.Timestamp(out.DueAt)}
	if out.Joined { // the running request's own receipt
		if v, err := s.lookup(ctx, out.ID); err == nil && !v.ReceivedAt.IsZero() {
			st.ReceivedAt = drp.Timestamp(v.ReceivedAt)
		}
	}
	st.Status, st.Reason = drp.StatusFor(out.Status, false)
	if out.Status == domain.StatusReceived && out.Links["verify"] != "" {
		st.Reason = drp.ReasonNeedUserVerification
	}
	s.drpVerification(&st)
	if err := s.records().LinkDRPRequest(ctx, store.DRPRequest{RequestID: out.ID, AgentID: agent.ID, AgentRequestID: x.AgentRequestID,
		Exercise: x.Exercise, StatusCallback: callback}, drpState(st)); err != nil {
		s.forgetMessage(ctx, agent, body, "")
		s.drpUnavailable(w, r, "link DRP request", err)
		return
	}
	s.Log.InfoContext(ctx, "DRP request accepted", "agent_id", agent.ID, "request_id", out.ID, "exercise", x.Exercise, "joined", out.Joined)
	writeJSON(w, http.StatusOK, st)
}

// drpSubmission is what an exercise asks of Lethe, as the JSON API's
// submission, and where its status callbacks go.
func (s *Server) drpSubmission(agent store.DRPAgent, x drp.Exercise) (SubmitRequest, string, error) {
	action, err := drp.ActionFor(x.Exercise)
	if err != nil {
		return SubmitRequest{}, "", err
	}
	jurisdiction, err := drp.JurisdictionFor(x.Regime)
	if err != nil {
		return SubmitRequest{}, "", err
	}
	if x.Email == "" || !validEmail(x.Email) {
		return SubmitRequest{}, "", drpRefuse(http.StatusBadRequest, true, "email: this covered business identifies people by their email address; send a valid email claim")
	}
	callback := agent.CallbackURL
	if x.StatusCallback != "" {
		if !sameOrigin(x.StatusCallback, agent.CallbackURL) {
			return SubmitRequest{}, "", drpRefuse(http.StatusBadRequest, true, "status_callback: not at the callback address registered for this agent")
		}
		callback = x.StatusCallback
	}
	in := SubmitRequest{Type: action.Type, Subject: Subject{Email: x.Email}, Jurisdiction: jurisdiction,
		Verified: agent.TrustVerifiedEmail && x.EmailVerified}
	if action.Type == domain.TypeConsent {
		granted := action.Consent
		purpose := s.OptOutPurpose()
		if purpose == "" {
			return SubmitRequest{}, "", drpRefuse(http.StatusBadRequest, true, "Unsupported rights actions submitted: this covered business does not sell or share personal data")
		}
		in.Details = &Details{Consent: &ConsentDetails{Purpose: purpose, Granted: &granted}}
	}
	return in, callback, nil
}

// sameOrigin: u is an absolute URL at base's scheme, host and port.
func sameOrigin(u, base string) bool {
	a, err1 := url.Parse(u)
	b, err2 := url.Parse(base)
	return err1 == nil && err2 == nil && base != "" && a.Scheme == b.Scheme && a.Host == b.Host && a.User == nil
}

// drpVerification adds where the person confirms their identity, while
// Lethe waits for their code.
func (s *Server) drpVerification(st *drp.Status) {
	if st.Reason != drp.ReasonNeedUserVerification {
		return
	}
	st.UserVerificationURL = strings.TrimSuffix(s.DRP.PublicURL, "/") + "/drp/verify/" + st.RequestID
	if st.ProcessingDetails == "" {
		st.ProcessingDetails = "a verification code was mailed to the person; they enter it at user_verification_url"
	}
}

// drpState is what an agent is told, to compare with what it was told last.
func drpState(st drp.Status) string {
	return st.Status + "/" + st.Reason + "|" + st.ExpectedBy
}

// drpSameState says whether two states tell the agent the same: the same
// status and reason, and expected_by within a minute (the API's answer
// and the workflow's record compute the due date a moment apart).
func drpSameState(a, b string) bool {
	sa, ea, _ := strings.Cut(a, "|")
	sb, eb, _ := strings.Cut(b, "|")
	if sa != sb {
		return false
	}
	if ea == eb {
		return true
	}
	ta, err1 := time.Parse(time.RFC3339, ea)
	tb, err2 := time.Parse(time.RFC3339, eb)
	return err1 == nil && err2 == nil && ta.Sub(tb).Abs() < time.Minute
}

// drpLinked is the agent's link to the request of the path; 403 when the
// agent does not manage it (whether or not it exists).
func (s *Server) drpLinked(w http.ResponseWriter, r *http.Request, agent store.DRPAgent) (store.DRPRequest, bool) {
	id := r.PathValue("id")
	if !requestIDRe.MatchString(id) {
		writeDRPError(w, drpRefuse(http.StatusNotFound, false, "no data rights request with this id"))
		return store.DRPRequest{}, false
	}
	link, err := s.records().LinkedDRPRequest(r.Context(), id, agent.ID)
	if errors.Is(err, store.ErrNotFound) {
		writeDRPError(w, drpRefuse(http.StatusForbidden, false, "this agent does not manage this request"))
		return link, false
	}
	if err != nil {
		s.drpUnavailable(w, r, "DRP request", err)
		return link, false
	}
	return link, true
}

// drpStatusOf is the Exercise Status object of a request from its view.
func (s *Server) drpStatusOf(v contract.RequestView, link store.DRPRequest) drp.Status {
	st := drp.Status{RequestID: v.RequestID, AgentRequestID: link.AgentRequestID, ReceivedAt: drp.Timestamp(v.ReceivedAt), ExpectedBy: drp.Timestamp(v.DueAt)}
	st.Status, st.Reason = drp.StatusFor(v.Status, link.RevokedAt != nil)
	switch {
	case st.Status == drp.StatusDenied && v.Reason != "":
		st.ProcessingDetails = v.Reason
	case st.Status == drp.StatusInProgress && len(v.Extensions) > 0:
		st.ProcessingDetails = "extended: " + v.Extensions[len(v.Extensions)-1].Reason
	}
	s.drpVerification(&st)
	if drp.Final(st.Status) {
		st.ExpectedBy = ""
	}
	return st
}

// drpStatus (GET /v1/data-rights-request/{id}, section 2.02).
func (s *Server) drpStatus(w http.ResponseWriter, r *http.Request) {
	agent, ok := s.drpAgent(w, r)
	if !ok {
		return
	}
	link, ok := s.drpLinked(w, r, agent)
	if !ok {
		return
	}
	v, err := s.lookup(r.Context(), link.RequestID)
	if errors.Is(err, errNotFound) {
		writeDRPError(w, drpRefuse(http.StatusNotFound, false, "the request's records are gone"))
		return
	}
	if err != nil {
		s.drpUnavailable(w, r, "look up request", err)
		return
	}
	writeJSON(w, http.StatusOK, s.drpStatusOf(v, link))
}

// drpRevoke (DELETE /v1/data-rights-request/{id}, section 2.04) cancels
// the request as an operator's cancel would, before its work starts. The
// person's free-text reason is not kept: it may name someone.
func (s *Server) drpRevoke(w http.ResponseWriter, r *http.Request) {
	agent, ok := s.drpAgent(w, r)
	if !ok {
		return
	}
	link, ok := s.drpLinked(w, r, agent)
	if !ok {
		return
	}
	ctx := r.Context()
	body, err := s.readSigned(w, r)
	if err != nil {
		writeDRPError(w, err)
		return
	}
	_, err = s.openSigned(ctx, agent, body, link.RequestID, func(msg []byte) (time.Time, error) {
		var rv drp.Revoke
		if json.Unmarshal(msg, &rv) != nil {
			return time.Time{}, drpRefuse(http.StatusBadRequest, true, "the signed message is not a JSON object")
		}
		if rv.AgentID == "" && rv.IssuedAt == "" {
			// Section 2.04's body carries only a reason: the replay record
			// keeps it for the longest window Lethe accepts.
			return time.Now().Add(s.DRP.Window.MaxLife), nil
		}
		return rv.Check(agent.ID, s.DRP.BusinessID, time.Now(), s.DRP.Window)
	})
	if err != nil {
		var ref *drp.Refusal
		if !errors.As(err, &ref) {
			s.drpUnavailable(w, r, "DRP replay record", err)
			return
		}
		writeDRPError(w, err)
		return
	}
	if link.RevokedAt == nil {
		_, err = s.cancelFor(ctx, link.RequestID, roleDRPAgent+":"+agent.ID, "revoked by the authorized agent acting for the person")
		var refused *Refused // an ended request is refused as RefusedState too
		switch {
		case errors.As(err, &refused) && refused.Reason == contract.RefusedState:
			if v, lerr := s.lookup(ctx, link.RequestID); lerr != nil || v.Status != domain.StatusCancelled {
				writeDRPError(w, drpRefuse(http.StatusConflict, false, "the request cannot be revoked now: its work has started, it has ended, or it is still being received (try again shortly)"))
				return
			}
			// Cancelled already (an earlier revoke whose answer was lost):
			// recorded as revoked below, and answered so.
		case err != nil:
			s.forgetMessage(ctx, agent, body, link.RequestID)
			s.drpUnavailable(w, r, "revoke", err)
			return
		}
		if err := s.records().MarkDRPRevoked(ctx, link.RequestID, agent.ID); err != nil {
			s.forgetMessage(ctx, agent, body, link.RequestID)
			s.drpUnavailable(w, r, "revoke", err)
			return
		}
		now := time.Now()
		link.RevokedAt = &now
	}
	v, err := s.lookup(ctx, link.RequestID)
	if err != nil {
		s.drpUnavailable(w, r, "look up request", err)
		return
	}
	st := s.drpStatusOf(v, link)
	st.Status, st.Reason = drp.StatusRevoked, "" // the new state, as section 2.04.1 asks
	writeJSON(w, http.StatusOK, st)
}

var drpVerifyTmpl = template.Must(template.New("verify").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Confirm your request</title></head>
<body style="font-family: sans-serif; line-height: 1.5; max-width: 32em; margin: 2em auto;">
<h1>Confirm your request</h1>
{{if .Done}}<p>Thank you: your identity is confirmed and your request goes ahead.</p>
{{if .RedirectTo}}<p><a href="{{.RedirectTo}}">Back to your agent</a></p>{{end}}
{{else}}<p>We mailed you a 6-digit code for request {{.ID}}. Enter it here.</p>
{{if .Problem}}<p role="alert"><strong>{{.Problem}}</strong></p>{{end}}
<form method="post"><input type="hidden" name="redirect_to" value="{{.RedirectTo}}">
<label>Code <input name="code" inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code" required></label>
<button type="submit">Confirm</button></form>{{end}}
</body></html>`))

// drpVerifyPage is the user_verification_url of an agent's request: the
// person enters the code Lethe mailed them (the same check as POST
// /v1/requests/{id}/verify, whose request token only the person who
// submits themselves holds). Only requests an agent submitted have it.
func (s *Server) drpVerifyPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	data := struct {
		ID, RedirectTo, Problem string
		Done                    bool
	}{ID: id}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	if !requestIDRe.MatchString(id) {
		http.Error(w, "no such request", http.StatusNotFound)
		return
	}
	callbacks, err := s.records().DRPAgentCallbacks(r.Context(), id)
	if err != nil {
		s.unavailable(w, r, "DRP request", err)
		return
	}
	if len(callbacks) == 0 {
		http.Error(w, "no such request", http.StatusNotFound)
		return
	}
	if s.MaxBody > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, s.MaxBody)
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	// Back to the agent only at an agent's own registered address: the
	// page is no open redirect on the company's domain.
	if back := r.Form.Get("redirect_to"); back != "" && slices.ContainsFunc(callbacks, func(cb string) bool { return sameOrigin(back, cb) }) {
		data.RedirectTo = back
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		code := strings.TrimSpace(r.PostForm.Get("code"))
		switch {
		case !codeRe.MatchString(code):
			data.Problem, status = "Enter the 6 digits from the email.", http.StatusUnprocessableEntity
		default:
			res, err := s.Verify(r.Context(), id, code)
			var refused *Refused
			switch {
			case err == nil && res.Accepted:
				data.Done = true
			case err == nil && res.Locked:
				data.Problem, status = "Too many wrong codes: ask your agent to have a new code sent.", http.StatusLocked
			case err == nil:
				data.Problem, status = "That code is not right.", http.StatusUnprocessableEntity
			case errors.As(err, &refused):
				data.Problem, status = refused.Message, refused.Status
			default:
				s.Log.ErrorContext(r.Context(), "DRP verify", "error", err)
				data.Problem, status = "We could not check the code now; try again.", http.StatusServiceUnavailable
			}
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = drpVerifyTmpl.Execute(w, data)
}
