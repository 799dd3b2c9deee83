package portal

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Page is what every page's template sees.
type Page struct {
	L       Lang
	Company string
	Title   string // a message key
	CSRF    string
	GPC     bool   // the browser sends Global Privacy Control
	OptOut  string // the data map's opt-out purpose ("" when none)
	Rights  []string
	Notice  string // a message already in the page's language
	Errors  []FieldError
	// ask
	Right         string
	Form          Form
	Jurisdictions []string
	Fields        []string
	Purposes      []string
	// request
	View     *contract.RequestView
	CodeForm bool
	Locked   bool
	Cancel   bool
	Download bool
	Link     *contract.LinkResult
	// message
	Text string // a message key
}

// Form is what the person typed, to show again beside an error.
type Form struct {
	Email, Jurisdiction, Field, Value, Purpose, Choice string
}

// FieldError is an error about one field (ID the input's id; "" for the page).
type FieldError struct {
	ID, Text string
}

// ErrorFor is the error about the field with this id, if any.
func (p Page) ErrorFor(id string) string {
	for _, e := range p.Errors {
		if e.ID == id {
			return e.Text
		}
	}
	return ""
}

func (p *Portal) page(r *http.Request, title string) Page {
	return Page{
		L: p.langs.pick(r.Header.Get("Accept-Language")), Company: p.opts.CompanyName, Title: title,
		GPC: gpc(r), OptOut: p.optOutPurpose(),
	}
}

func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, pg Page) {
	pg.CSRF = p.csrfToken(w, r)
	var buf bytes.Buffer
	if err := p.pages[name].Execute(&buf, pg); err != nil {
		p.log.ErrorContext(r.Context(), "render portal page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", pg.L.Tag)
	h.Set("Vary", "Accept-Language, Sec-GPC, Cookie")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers a page that says what went wrong, in the person's words, and nothing more.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, status int, key string) {
	pg := p.page(r, key+"_title")
	pg.Text = key
	p.render(w, r, status, "message", pg)
}

func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	pg := p.page(r, "home_title")
	for _, rt := range rights {
		if p.offers(rt.Name) {
			pg.Rights = append(pg.Rights, rt.Name)
		}
	}
	p.render(w, r, http.StatusOK, "home", pg)
}

// offers says whether the portal offers a right: correction and consent
// only when the data map has fields or purposes for them.
func (p *Portal) offers(name string) bool {
	switch name {
	case "correction":
		return len(p.fields()) > 0
	case "consent":
		return len(p.purposes()) > 0
	case "opt-out":
		return p.optOutPurpose() != ""
	}
	_, ok := findRight(name)
	return ok
}

func (p *Portal) askPage(r *http.Request, name string, f Form) Page {
	pg := p.page(r, "ask_"+name+"_title")
	pg.Right, pg.Form, pg.Jurisdictions = name, f, domain.Jurisdictions()
	for _, fl := range p.fields() {
		pg.Fields = append(pg.Fields, fl.Name)
	}
	pg.Purposes = p.purposes()
	return pg
}

func (p *Portal) askForm(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("right")
	if !p.offers(name) {
		p.fail(w, r, http.StatusNotFound, "error_not_found")
		return
	}
	p.render(w, r, http.StatusOK, "ask", p.askPage(r, name, Form{Jurisdiction: domain.Company, Choice: "withdraw"}))
}

func (p *Portal) ask(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("right")
	rt, ok := findRight(name)
	if !ok || !p.offers(name) {
		p.fail(w, r, http.StatusNotFound, "error_not_found")
		return
	}
	f := Form{
		Email: strings.TrimSpace(r.PostFormValue("email")), Jurisdiction: r.PostFormValue("jurisdiction"),
		Field: r.PostFormValue("field"), Value: r.PostFormValue("value"),
		Purpose: r.PostFormValue("purpose"), Choice: r.PostFormValue("choice"),
	}
	pg := p.askPage(r, name, f)
	in := api.SubmitRequest{Type: rt.Type, Subject: api.Subject{Email: f.Email}, Jurisdiction: f.Jurisdiction}
	switch name {
	case "correction":
		if !slices.Contains(pg.Fields, f.Field) {
			pg.Errors = append(pg.Errors, FieldError{"field", pg.L.T("error_field")})
		}
		if strings.TrimSpace(f.Value) == "" {
			pg.Errors = append(pg.Errors, FieldError{"value", pg.L.T("error_value_required")})
		}
		in.Details = &api.Details{Corrections: map[string]string{f.Field: f.Value}}
	case "consent":
		if f.Choice != "give" && f.Choice != "withdraw" {
			pg.Errors = append(pg.Errors, FieldError{"choice-give", pg.L.T("error_choice")})
		}
		granted := f.Choice == "give"
		in.Details = &api.Details{Consent: &api.ConsentDetails{Purpose: f.Purpose, Granted: &granted}}
	case "opt-out":
		no := false
		in.Details = &api.Details{Consent: &api.ConsentDetails{Purpose: p.optOutPurpose(), Granted: &no}}
		if gpc(r) {
			in.Details.Consent.Source = "gpc"
		}
	}
	if f.Email == "" {
		pg.Errors = append([]FieldError{{"email", pg.L.T("error_email_required")}}, pg.Errors...)
	}
	if len(pg.Errors) > 0 {
		p.render(w, r, http.StatusOK, "ask", pg)
		return
	}
	ctx := r.Context()
	out, err := p.api.SubmitForPerson(ctx, in, gpc(r))
	if err != nil {
		status := p.refusal(r, &pg, err, "")
		p.render(w, r, status, "ask", pg)
		return
	}
	if gpc(r) && name != "opt-out" {
		// The visitor is identified now: their browser's signal is their opt-out.
		if err := p.recordGPC(context.WithoutCancel(ctx), f.Email, in.Jurisdiction); err != nil {
			p.log.WarnContext(ctx, "record a Global Privacy Control opt-out", "error", errText(err))
		}
	}
	if out.Joined {
		// A request like it is already open: it is followed through the
		// link in the mails it sent, never handed to whoever types the
		// address (the API gives no token for a join).
		p.fail(w, r, http.StatusOK, "already_open")
		return
	}
	p.waitStarted(ctx, out.ID)
	p.follow(w, r, out.ID, out.RequestToken)
	http.Redirect(w, r, Prefix+"request", http.StatusSeeOther)
}

// errText is an error for the log: a refusal's reason names nobody.
func errText(err error) string {
	var ref *api.Refused
	if errors.As(err, &ref) {
		return ref.Message
	}
	return err.Error()
}

// waitStarted waits a moment for a new request to leave "received" (its
// code mailed, or its work begun), so the next page says what comes next.
func (p *Portal) waitStarted(ctx context.Context, id string) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		v, err := p.api.Lookup(ctx, id)
		if err != nil || v.Status != domain.StatusReceived {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refusal puts the API's refusal on the page, tied to its field (the
// page's own words; a correction's reason per field as the API gives it),
// and returns the status to answer: 200 for a mistake the page explains,
// 429 over a limit, 503 when a system did not answer.
func (p *Portal) refusal(r *http.Request, pg *Page, err error, codeField string) int {
	var ref *api.Refused
	if !errors.As(err, &ref) {
		p.log.ErrorContext(r.Context(), "portal step", "error", err, "route", r.Pattern)
		pg.Errors = append(pg.Errors, FieldError{"", pg.L.T("error_unavailable")})
		return http.StatusServiceUnavailable
	}
	add := func(id, key string, args ...any) { pg.Errors = append(pg.Errors, FieldError{id, pg.L.T(key, args...)}) }
	switch {
	case ref.Field == "subject.email":
		add("email", "error_email")
	case ref.Field == "jurisdiction":
		add("jurisdiction", "error_jurisdiction")
	case ref.Field == "code":
		add(codeField, "error_code_format")
	case len(ref.Fields) > 0:
		for _, reason := range ref.Fields {
			add("value", "error_value", "reason", reason)
		}
	case strings.HasPrefix(ref.Message, "details.consent.purpose"):
		add("purpose", "error_purpose")
	case !ref.RetryAt.IsZero():
		add("", "error_limit", "date", pg.L.Date(ref.RetryAt))
	case ref.Status == http.StatusTooManyRequests && ref.Reason == "":
		add("", "error_too_many_text")
	case ref.Reason == contract.RefusedRateLimited:
		add("", "error_resend_wait", "seconds", int(ref.RetryAfter.Seconds())+1)
	case ref.Reason == contract.RefusedExpired:
		add(codeField, "error_code_expired")
	case ref.Reason == contract.RefusedLocked:
		add(codeField, "error_code_locked")
	case ref.Reason == contract.RefusedState:
		add("", "error_state")
	default:
		add("", "error_refused")
	}
	// A page that shows a mistake to put right is a page like any other
	// (200); only a limit is answered as one.
	if ref.Status == http.StatusTooManyRequests && ref.Reason == "" {
		return http.StatusTooManyRequests
	}
	return http.StatusOK
}

// fromMail opens the link in a mail: the token goes into a cookie and the
// browser is sent on to an address without it.
func (p *Portal) fromMail(w http.ResponseWriter, r *http.Request) {
	id, token := r.PathValue("id"), r.URL.Query().Get("t")
	if !api.ValidRequestID(id) || !p.api.TokenMatches(id, token) {
		p.fail(w, r, http.StatusForbidden, "error_link")
		return
	}
	p.follow(w, r, id, token)
	http.Redirect(w, r, Prefix+"request", http.StatusSeeOther)
}

// requestPage is the followed request's page; ok false when it answered already.
func (p *Portal) requestPage(w http.ResponseWriter, r *http.Request) (Page, string, bool) {
	id, _, ok := p.current(r)
	if !ok {
		p.fail(w, r, http.StatusOK, "no_request")
		return Page{}, "", false
	}
	v, err := p.api.Lookup(r.Context(), id)
	if errors.Is(err, api.ErrNotFound) {
		p.setCookie(w, r, requestCookie, "", -1)
		p.fail(w, r, http.StatusOK, "no_request")
		return Page{}, "", false
	}
	if err != nil {
		p.log.ErrorContext(r.Context(), "look up request", "error", err)
		p.fail(w, r, http.StatusServiceUnavailable, "error_unavailable")
		return Page{}, "", false
	}
	pg := p.page(r, "request_title")
	pg.View = &v
	pg.CodeForm = v.Status == domain.StatusAwaitingVerification || v.Status == domain.StatusReceived && v.Verification != nil
	pg.Locked = v.Verification != nil && v.Verification.Locked
	pg.Cancel = api.PersonMayCancel(v.Status)
	pg.Download = v.Status == domain.StatusCompleted && (v.Type == domain.TypeAccess || v.Type == domain.TypePortability)
	return pg, id, true
}

func (p *Portal) request(w http.ResponseWriter, r *http.Request) {
	if pg, _, ok := p.requestPage(w, r); ok {
		p.render(w, r, http.StatusOK, "request", pg)
	}
}

func (p *Portal) verify(w http.ResponseWriter, r *http.Request) {
	pg, id, ok := p.requestPage(w, r)
	if !ok {
		return
	}
	code := strings.Join(strings.Fields(r.PostFormValue("code")), "")
	if code == "" {
		pg.Errors = append(pg.Errors, FieldError{"code", pg.L.T("error_code_required")})
		p.render(w, r, http.StatusOK, "request", pg)
		return
	}
	res, err := p.api.Verify(r.Context(), id, code)
	if err != nil {
		status := p.refusal(r, &pg, err, "code")
		p.render(w, r, status, "request", pg)
		return
	}
	if !res.Accepted {
		if res.Locked {
			pg.Locked = true
			pg.Errors = append(pg.Errors, FieldError{"code", pg.L.T("error_code_locked")})
		} else {
			pg.Errors = append(pg.Errors, FieldError{"code", pg.L.T("error_code_wrong", "tries", res.TriesLeft)})
		}
		if pg.View.Verification != nil {
			pg.View.Verification.TriesLeft = res.TriesLeft
		}
		p.render(w, r, http.StatusOK, "request", pg)
		return
	}
	http.Redirect(w, r, Prefix+"request", http.StatusSeeOther)
}

func (p *Portal) resend(w http.ResponseWriter, r *http.Request) {
	pg, id, ok := p.requestPage(w, r)
	if !ok {
		return
	}
	v, err := p.api.Resend(r.Context(), id)
	if err != nil {
		status := p.refusal(r, &pg, err, "code")
		p.render(w, r, status, "request", pg)
		return
	}
	pg.View.Verification = &v
	pg.Locked = false
	pg.Notice = pg.L.T("notice_code_sent")
	p.render(w, r, http.StatusOK, "request", pg)
}

// CancelReason is what the audit trail and the cancellation mail say when the person withdraws.
const CancelReason = "You withdrew this request through the privacy portal."

func (p *Portal) cancel(w http.ResponseWriter, r *http.Request) {
	pg, id, ok := p.requestPage(w, r)
	if !ok {
		return
	}
	if _, err := p.api.CancelForPerson(r.Context(), id, CancelReason); err != nil {
		status := p.refusal(r, &pg, err, "")
		p.render(w, r, status, "request", pg)
		return
	}
	http.Redirect(w, r, Prefix+"request", http.StatusSeeOther)
}

func (p *Portal) download(w http.ResponseWriter, r *http.Request) {
	pg, id, ok := p.requestPage(w, r)
	if !ok {
		return
	}
	link, err := p.api.NewLink(r.Context(), id)
	if err != nil {
		var ref *api.Refused
		if errors.As(err, &ref) && ref.Reason == contract.RefusedState {
			pg.Download = false
			pg.Errors = append(pg.Errors, FieldError{"", pg.L.T("error_bundle_gone")})
			p.render(w, r, http.StatusOK, "request", pg)
			return
		}
		status := p.refusal(r, &pg, err, "")
		p.render(w, r, status, "request", pg)
		return
	}
	pg.Link = &link
	p.render(w, r, http.StatusOK, "request", pg)
}

// forget drops the request's cookie from this browser.
func (p *Portal) forget(w http.ResponseWriter, r *http.Request) {
	p.setCookie(w, r, requestCookie, "", -1)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (p *Portal) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	ct, ok := staticType(name)
	if !ok || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		p.fail(w, r, http.StatusNotFound, "error_not_found")
		return
	}
	b, err := fs.ReadFile(p.files, "static/"+name)
	if err != nil {
		p.fail(w, r, http.StatusNotFound, "error_not_found")
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}
