package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// SubmitRequest is the body of POST /v1/requests.
type SubmitRequest struct {
	Type         string  `json:"type"`
	Subject      Subject `json:"subject"`
	Jurisdiction string  `json:"jurisdiction,omitempty"`
	// Verified: the company's backend (an API key with the backend role)
	// vouches for the person's identity; verification is skipped.
	Verified bool `json:"verified,omitempty"`
	// Details of a rectification or consent request.
	Details *Details `json:"details,omitempty"`
	// Expedited: "child" asks for the expedited erasure of a child's data
	// (P15), with its own short deadline. Operators only; type erasure.
	Expedited string `json:"expedited,omitempty"`
}

// Details says what a rectification corrects or a consent request changes.
type Details struct {
	Corrections map[string]string `json:"corrections,omitempty"` // field -> corrected value
	Consent     *ConsentDetails   `json:"consent,omitempty"`
	// PushTo: a portability bundle is also sent to this HTTPS endpoint the person names (GDPR Art. 20(2)).
	PushTo string `json:"push_to,omitempty"`
}

// ConsentDetails withdraws (granted false) or gives consent to one purpose.
type ConsentDetails struct {
	Purpose string `json:"purpose"`
	Granted *bool  `json:"granted"`
	Source  string `json:"source,omitempty"` // "gpc": a Global Privacy Control signal the backend forwards
}

// FieldsRefused answers a correction that fails validation: a reason per field.
type FieldsRefused struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields"`
}

// Subject identifies the person a request is about.
type Subject struct {
	Email  string `json:"email,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

// Submitted answers a submission. RequestToken lets the person follow and
// verify this request (send it as X-Request-Token); keep it secret.
type Submitted struct {
	ID           string            `json:"id"`
	Status       string            `json:"status"`
	Joined       bool              `json:"joined,omitempty"` // a request like it was running: this is it
	DueAt        time.Time         `json:"due_at"`
	RequestToken string            `json:"request_token,omitempty"`
	Links        map[string]string `json:"links"`
}

// Refusal answers a request over a limit: when the person may ask again.
type Refusal struct {
	Error   string    `json:"error"`
	RetryAt time.Time `json:"retry_at"`
}

var (
	userIDRe    = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
	requestIDRe = regexp.MustCompile(`^req_[a-z2-7]{26}$`)
)

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.caller(w, r)
	if !ok {
		return
	}
	var in SubmitRequest
	if !s.decode(w, r, &in) {
		return
	}
	out, err := s.submitAs(r.Context(), in, caller)
	if err != nil {
		s.writeRefusal(w, r, err)
		return
	}
	status := http.StatusAccepted
	if out.Joined {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
}

// SubmitForPerson submits a request the person makes themself (the privacy
// portal), through the same checks, limits and workflow as POST
// /v1/requests without a key. gpc: their browser sent Global Privacy
// Control, which a consent request may then name as its source. A refusal
// is a *Refused; any other error means nothing was created.
func (s *Server) SubmitForPerson(ctx context.Context, in SubmitRequest, gpc bool) (Submitted, error) {
	return s.submitAs(ctx, in, caller{gpc: gpc})
}

// OptOutPurpose is the data map's consent purpose that the "do not sell or
// share" opt-out withdraws, for every way it arrives (the portal's form, a
// browser's Global Privacy Control, a DRP agent's sale:opt-out): the one
// LETHE_DRP_SALE_PURPOSE names when the map has it, else the map's first
// purpose withdrawn without verification; "" when the map has none.
func (s *Server) OptOutPurpose() string {
	if s.DRP != nil && s.DRP.SalePurpose != "" {
		if _, ok := s.purpose(s.DRP.SalePurpose); ok {
			return s.DRP.SalePurpose
		}
	}
	if s.Map == nil || s.Map.Consent == nil {
		return ""
	}
	for _, pu := range s.Map.Consent.Purposes {
		if pu.NoVerification {
			return pu.Name
		}
	}
	return ""
}

// submitAs is the one way a privacy request enters Lethe, whoever makes it:
// the JSON API, the privacy portal (SubmitForPerson) and the Data Rights
// Protocol's agents. It validates the submission against who makes it
// (c), joins a running request of the same type for the same person,
// applies the limits, claims the person's open slot and starts the
// request's workflow. It answers the request (Joined for a running request
// like it), a *Refused, or an error from a system that did not answer.
func (s *Server) submitAs(ctx context.Context, in SubmitRequest, caller caller) (Submitted, error) {
	if in.Jurisdiction == "" {
		in.Jurisdiction = domain.Company
	}
	if msg := validateSubmission(in, caller); msg != "" {
		status := http.StatusUnprocessableEntity
		if in.Verified && !caller.mayVouch() || in.Expedited != "" && caller.role != apikeys.RoleOperator {
			status = http.StatusForbidden
		}
		return Submitted{}, &Refused{Status: status, Message: msg, Field: fieldOf(msg)}
	}
	change, noVerification, pol, refused := s.checkDetails(in, caller)
	if refused != nil {
		return Submitted{}, &Refused{Status: http.StatusUnprocessableEntity, Message: refused.Error, Fields: refused.Fields, body: refused}
	}
	// Vouched for by the backend (or a trusted agent), an opt-out that needs
	// no verification, or an operator's expedited erasure: no code is asked for.
	preVerified := in.Verified || noVerification || in.Expedited != ""
	ref := s.Subjects.Email(in.Subject.Email)
	if in.Subject.UserID != "" {
		ref = s.Subjects.UserID(in.Subject.UserID)
	}
	if caller.limitedPerSubject() && s.PerSubject != nil {
		if ok, after := s.PerSubject.Allow(string(ref)); !ok {
			return Submitted{}, &Refused{Status: http.StatusTooManyRequests, Message: "too many requests for this person; try again later", RetryAfter: after}
		}
	}
	now := time.Now().UTC()

	// A request like it still running: this submission joins it.
	if existing, err := s.openRequest(ctx, string(ref), in.Type); err != nil {
		return Submitted{}, unavailable("find open request", err)
	} else if existing != nil {
		return s.joined(existing, caller, preVerified), nil
	}
	// Limits per person and type (P14); a child's data goes whatever the count.
	if in.Expedited != "" {
		pol = s.Policies.ExpeditedErasure()
	} else if retryAt, err := s.overLimit(ctx, string(ref), in.Type, in.Jurisdiction, now); err != nil {
		return Submitted{}, unavailable("check limits", err)
	} else if !retryAt.IsZero() {
		msg := fmt.Sprintf("limit reached for %s requests; you can ask again from %s", in.Type, retryAt.Format(domain.DateLayout))
		return Submitted{}, &Refused{Status: http.StatusTooManyRequests, Message: msg, RetryAt: retryAt, RetryAfter: time.Until(retryAt),
			body: Refusal{Error: msg, RetryAt: retryAt}}
	}

	id, err := newRequestID()
	if err != nil {
		return Submitted{}, unavailable("request id", err)
	}
	due := pol.DueAt(now)
	// Claim the one open slot for this person and type; a concurrent twin loses and joins.
	claimed, err := s.claim(ctx, id, string(ref), in, now, due)
	if err != nil {
		return Submitted{}, unavailable("record request", err)
	}
	if !claimed {
		existing, err := s.openRequest(ctx, string(ref), in.Type)
		if err != nil || existing == nil {
			return Submitted{}, unavailable("join request", err)
		}
		return s.joined(existing, caller, preVerified), nil
	}
	who := person.Identity{Email: in.Subject.Email, UserID: in.Subject.UserID, Corrections: change.Corrections, Consent: change.Consent}
	sealed, err := person.Seal(ctx, s.Keys, string(ref), who)
	if err == nil {
		_, err = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:        id,
			TaskQueue: s.TaskQueue,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				contract.RequestTypeKey.ValueSet(in.Type),
				contract.StatusKey.ValueSet(domain.StatusReceived),
				contract.SubjectRefKey.ValueSet(string(ref)),
				contract.JurisdictionKey.ValueSet(in.Jurisdiction),
				contract.DueAtKey.ValueSet(due),
			),
		}, contract.WorkflowPrivacyRequest, contract.RequestInput{
			RequestID: id, Type: in.Type, SubjectRef: string(ref), Jurisdiction: in.Jurisdiction,
			Identity: sealed, HasEmail: in.Subject.Email != "", HasUserID: in.Subject.UserID != "",
			PreVerified: preVerified, SubmittedBy: caller.actor(), Policy: pol, PushTo: pushTo(in),
			Expedited: in.Expedited != "",
		})
	}
	if err != nil {
		// Nothing half-created: the claim goes with the failed start.
		if derr := s.records().DeleteClaim(context.WithoutCancel(ctx), id); derr != nil {
			s.Log.ErrorContext(ctx, "release claim", "request_id", id, "error", derr)
		}
		return Submitted{}, unavailable("start request", err)
	}
	s.Log.InfoContext(ctx, "request accepted", "request_id", id, "type", in.Type, "subject_ref", ref, "by", caller.actor())
	out := Submitted{ID: id, Status: domain.StatusReceived, DueAt: due, Links: links(id, !preVerified)}
	if caller.role == "" {
		out.RequestToken = s.Subjects.RequestToken(id)
	}
	return out, nil
}

func validateSubmission(in SubmitRequest, c caller) string {
	switch {
	case in.Type == "":
		return "type: required; want one of access, portability, erasure, rectification, consent, deactivation"
	case !slices.Contains(domain.RequestTypes(), in.Type):
		return fmt.Sprintf("type: %s is not a request type; want one of access, portability, erasure, rectification, consent, deactivation", quoteIfPlain(in.Type))
	case !slices.Contains(domain.Jurisdictions(), in.Jurisdiction):
		return "jurisdiction: want gdpr, ccpa or default"
	case in.Subject.Email != "" && !validEmail(in.Subject.Email):
		return "subject.email: not a valid email address"
	case in.Subject.UserID != "" && !userIDRe.MatchString(in.Subject.UserID):
		return "subject.user_id: want 1 to 128 letters, digits or ._:@-"
	case in.Verified && !c.mayVouch():
		return "verified: only the company's backend (an API key with the backend role) may vouch for an identity"
	case in.Expedited != "" && c.role != apikeys.RoleOperator:
		return "expedited: only the privacy team (an API key with the operator role) may start an expedited erasure"
	case in.Expedited != "" && in.Expedited != "child":
		return "expedited: want \"child\" (the erasure of a child's data)"
	case in.Expedited != "" && in.Type != domain.TypeErasure:
		return "expedited: only an erasure can be expedited"
	case !in.Verified && in.Expedited == "" && in.Subject.Email == "" && !optOutWithoutVerification(in):
		return "subject.email: required, to verify the person's identity"
	case in.Subject.Email == "" && in.Subject.UserID == "":
		return "subject: give an email or a user_id"
	}
	return ""
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && len(s) <= 254
}

// records is the store of Lethe's request records, in DB: the API holds
// no SQL on them.
func (s *Server) records() *store.Store { return store.New(s.DB) }

// openRequest is the person's running request of this type, if any.
func (s *Server) openRequest(ctx context.Context, ref, typ string) (*Submitted, error) {
	open, ok, err := s.records().OpenRequest(ctx, ref, typ)
	if err != nil || !ok {
		return nil, err
	}
	out := Submitted{ID: open.ID, Status: open.Status, DueAt: open.DueAt}
	// A claim whose workflow never started (the API died in between) is released.
	if _, err := s.Temporal.DescribeWorkflowExecution(ctx, out.ID, ""); err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			err = s.records().Abandon(ctx, out.ID)
			if err == nil {
				return s.openRequestAfterRelease(ctx, ref, typ, out)
			}
		}
		return nil, err
	}
	out.Links = links(out.ID, mayAskForCode(out.Status))
	return &out, nil
}

func (s *Server) openRequestAfterRelease(ctx context.Context, ref, typ string, was Submitted) (*Submitted, error) {
	closed, err := s.records().Closed(ctx, was.ID)
	if err != nil {
		return nil, err
	}
	if closed {
		return nil, nil
	}
	was.Links = links(was.ID, mayAskForCode(was.Status)) // still being started: join it
	return &was, nil
}

// joined answers a submission that joins the running request; one that
// needs no code does not learn of the code's routes while the running
// request has not asked for one.
func (s *Server) joined(existing *Submitted, c caller, preVerified bool) Submitted {
	existing.Joined = true
	if preVerified && existing.Status == domain.StatusReceived {
		existing.Links = links(existing.ID, false)
	}
	// Whoever joins without a key gets no request token: knowing someone's
	// email address must not open their running request (its status, its
	// cancel, its download). The person follows it through the link in the
	// mails they were sent.
	existing.RequestToken = ""
	return *existing
}

// claim records the request as the person's one open request of its type.
func (s *Server) claim(ctx context.Context, id, ref string, in SubmitRequest, now, due time.Time) (bool, error) {
	return s.records().Claim(ctx, id, in.Type, ref, in.Jurisdiction, now, due)
}

// overLimit is zero when the person may make this request, else when they may again.
func (s *Server) overLimit(ctx context.Context, ref, typ, jurisdiction string, now time.Time) (time.Time, error) {
	var retryAt time.Time
	for _, l := range s.Policies.Limits(typ, jurisdiction) {
		since := l.Per.Before(now) // business days as calendar days: the window is never shorter
		times, err := s.records().CountedSince(ctx, ref, typ, l.Jurisdiction, since)
		if err != nil {
			return time.Time{}, err
		}
		if len(times) >= l.Max {
			// The oldest of the last Max requests leaves the window first.
			at := l.Per.After(times[len(times)-l.Max])
			if at.After(retryAt) {
				retryAt = at
			}
		}
	}
	return retryAt, nil
}

// links are a request's routes: verify and resend only when it asks the
// person for a code (a request the backend vouched for never does).
func links(id string, code bool) map[string]string {
	base := "/v1/requests/" + id
	if !code {
		return map[string]string{"self": base}
	}
	return map[string]string{"self": base, "verify": base + "/verify", "resend": base + "/resend"}
}

// mayAskForCode says whether a running request in status may still ask
// the person for a code.
func mayAskForCode(status string) bool {
	return status == domain.StatusReceived || status == domain.StatusAwaitingVerification
}

// optOutWithoutVerification: a consent withdrawal, which some purposes take
// without identity verification (CCPA's opt-out of sale or sharing).
func optOutWithoutVerification(in SubmitRequest) bool {
	return in.Type == domain.TypeConsent && in.Details != nil && in.Details.Consent != nil &&
		in.Details.Consent.Granted != nil && !*in.Details.Consent.Granted
}

// checkDetails validates what a rectification or consent request carries
// against the data map, and picks the request's policy. A correction that
// fails gets a reason per field; values are never repeated.
func (s *Server) checkDetails(in SubmitRequest, c caller) (change person.Identity, noVerification bool, pol domain.Policy, refused *FieldsRefused) {
	pol = s.Policies.For(in.Jurisdiction, in.Type)
	refuse := func(msg string, fields map[string]string) (person.Identity, bool, domain.Policy, *FieldsRefused) {
		return change, false, pol, &FieldsRefused{Error: msg, Fields: fields}
	}
	d := in.Details
	switch in.Type {
	case domain.TypeRectification:
		if d == nil || len(d.Corrections) == 0 {
			return refuse("details.corrections: say which fields to correct", nil)
		}
		if len(d.Corrections) > 20 {
			return refuse("details.corrections: at most 20 fields at once", nil)
		}
		fields := map[string]string{}
		for name, value := range d.Corrections {
			shown := "(a field name)"
			if plainName.MatchString(name) {
				shown = name
			}
			f, ok := s.field(name)
			if !ok {
				fields[shown] = "this field cannot be corrected through a request"
				continue
			}
			if err := datamap.CheckValue(f, value); err != nil {
				fields[shown] = err.Error()
			}
		}
		if len(fields) > 0 {
			return refuse("corrections refused", fields)
		}
		change.Corrections = d.Corrections
	case domain.TypeConsent:
		if d == nil || d.Consent == nil || d.Consent.Granted == nil || d.Consent.Purpose == "" {
			return refuse(`details.consent: want {"purpose": …, "granted": true|false}`, nil)
		}
		p, ok := s.purpose(d.Consent.Purpose)
		if !ok {
			return refuse("details.consent.purpose: not a purpose this company asks consent for", nil)
		}
		source := d.Consent.Source
		switch {
		case source == "":
			source = "request"
		case source == "gpc" && (c.role == apikeys.RoleBackend || c.gpc):
		default:
			return refuse(`details.consent.source: only the company's backend may forward "gpc"`, nil)
		}
		change.Consent = &person.ConsentChange{Purpose: p.Name, Granted: *d.Consent.Granted, Source: source}
		if !*d.Consent.Granted && p.NoVerification {
			noVerification = true
			if p.Deadline != "" {
				if due, err := domain.ParsePeriod(p.Deadline); err == nil {
					pol.Due = due
				}
			}
		}
	case domain.TypePortability:
		if d != nil && (d.Corrections != nil || d.Consent != nil) {
			return refuse("details: a portability request carries only push_to", nil)
		}
		if d != nil && d.PushTo != "" {
			u, err := url.Parse(d.PushTo)
			if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
				return refuse("details.push_to: want an https:// address", nil)
			}
		}
	default:
		if d != nil {
			return refuse("details: only rectification, consent and portability requests carry details", nil)
		}
	}
	return change, noVerification, pol, nil
}

func (s *Server) field(name string) (datamap.Field, bool) {
	if s.Map == nil {
		return datamap.Field{}, false
	}
	return s.Map.Field(name)
}

func (s *Server) purpose(name string) (datamap.Purpose, bool) {
	if s.Map == nil {
		return datamap.Purpose{}, false
	}
	return s.Map.Purpose(name)
}

func pushTo(in SubmitRequest) string {
	if in.Type == domain.TypePortability && in.Details != nil {
		return in.Details.PushTo
	}
	return ""
}
