// Package portal is the privacy portal: the pages where a person asks for
// their rights without JavaScript, served by the API process under
// /privacy/. It calls the same code paths as the JSON API (package api):
// the same checks, limits, workflows and answers, and says the same thing
// whether or not an email belongs to an account.
//
// Secure by default: a strict Content-Security-Policy (no script at all),
// Referrer-Policy no-referrer, a CSRF token on every form (and Go's
// cross-origin protection), the API's rate and body limits, and the
// request token kept in an HttpOnly cookie, never in an address after the
// first load of a mailed link.
//
// Pages, styles, the logo and the messages are files (web/, embedded);
// a directory named in LETHE_PORTAL_DIR replaces any of them, and a
// messages/<language>.yaml file there adds a language.
package portal

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
)

// Prefix is where the portal is mounted.
const Prefix = "/privacy/"

// Headers every portal answer carries.
const (
	CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

const (
	requestCookie = "lethe_request" // "<request id>.<request token>"
	csrfCookie    = "lethe_csrf"
	csrfField     = "csrf"
)

// Options configure a Portal.
type Options struct {
	CompanyName string
	// PublicURL is where people reach Lethe; cookies are Secure when it
	// is https (or the connection is TLS).
	PublicURL string
	// Dir overrides the embedded pages, styles and messages; "" for none.
	Dir string
}

// Portal serves the privacy portal.
type Portal struct {
	api     *api.Server
	opts    Options
	files   fs.FS
	pages   map[string]*template.Template
	langs   *catalog
	secure  bool
	log     *slog.Logger
	handler http.Handler
}

// New builds the portal over the API's server. Every page is parsed and
// every language read now: a broken override stops the process at start.
func New(srv *api.Server, opts Options) (*Portal, error) {
	files, err := overlay(opts.Dir)
	if err != nil {
		return nil, err
	}
	p := &Portal{api: srv, opts: opts, files: files, log: srv.Log, secure: strings.HasPrefix(opts.PublicURL, "https://")}
	if p.langs, err = loadCatalog(files); err != nil {
		return nil, err
	}
	if p.pages, err = parsePages(files); err != nil {
		return nil, err
	}
	p.handler = p.routes()
	return p, nil
}

func (p *Portal) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /privacy/{$}", p.home)
	mux.HandleFunc("GET /privacy/ask/{right}", p.askForm)
	mux.HandleFunc("POST /privacy/ask/{right}", p.ask)
	mux.HandleFunc("GET /privacy/status/{id}", p.fromMail)
	mux.HandleFunc("GET /privacy/request", p.request)
	mux.HandleFunc("POST /privacy/request/verify", p.verify)
	mux.HandleFunc("POST /privacy/request/resend", p.resend)
	mux.HandleFunc("POST /privacy/request/cancel", p.cancel)
	mux.HandleFunc("POST /privacy/request/download", p.download)
	mux.HandleFunc("POST /privacy/request/forget", p.forget)
	mux.HandleFunc("GET /privacy/static/{file}", p.static)
	mux.HandleFunc("/privacy/", func(w http.ResponseWriter, r *http.Request) {
		p.fail(w, r, http.StatusNotFound, "error_not_found")
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fail(w, r, http.StatusForbidden, "error_csrf")
	}))
	return p.headers(p.limit(cop.Handler(mux)))
}

// ServeHTTP serves the routes under Prefix.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.handler.ServeHTTP(w, r) }

// headers sets the portal's security headers (replacing the API's, which
// allow no styles or images).
func (p *Portal) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "interest-cohort=(), camera=(), microphone=(), geolocation=()")
		if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// limit applies the API's per-client rate limit to every page but the
// static files, and its body limit to every form.
func (p *Portal) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.api.PerIP != nil && !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
			if ok, after := p.api.PerIP.Allow(ratelimit.ClientIP(r)); !ok {
				w.Header().Set("Retry-After", fmt.Sprint(int(after.Seconds())+1))
				p.fail(w, r, http.StatusTooManyRequests, "error_too_many")
				return
			}
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, p.api.MaxBody)
			if err := r.ParseForm(); err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					p.fail(w, r, http.StatusRequestEntityTooLarge, "error_too_big")
				} else {
					p.fail(w, r, http.StatusBadRequest, "error_bad_form")
				}
				return
			}
			if !p.csrfOK(r) {
				p.fail(w, r, http.StatusForbidden, "error_csrf")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// csrfToken is the browser's CSRF token (double submit: a cookie and the
// same value in every form), set when missing.
func (p *Portal) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	p.setCookie(w, r, csrfCookie, v, 0)
	r.AddCookie(&http.Cookie{Name: csrfCookie, Value: v})
	return v
}

func (p *Portal) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue(csrfField))) == 1
}

// setCookie sets an HttpOnly cookie on the portal's path, Secure when the
// portal is reached over TLS; maxAge < 0 deletes it. The CSRF cookie is
// SameSite=Strict; the request's is Lax, so that the link in a mail opened
// in webmail (another site) shows the request: every form also needs the
// CSRF token, which another site cannot read.
func (p *Portal) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	same := http.SameSiteStrictMode
	if name == requestCookie {
		same = http.SameSiteLaxMode
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: same, Secure: p.secure || r.TLS != nil,
	})
}

// current is the request the browser follows (its cookie), with its token checked.
func (p *Portal) current(r *http.Request) (id, token string, ok bool) {
	c, err := r.Cookie(requestCookie)
	if err != nil {
		return "", "", false
	}
	id, token, ok = strings.Cut(c.Value, ".")
	if !ok || !api.ValidRequestID(id) || !p.api.TokenMatches(id, token) {
		return "", "", false
	}
	return id, token, true
}

func (p *Portal) follow(w http.ResponseWriter, r *http.Request, id, token string) {
	p.setCookie(w, r, requestCookie, id+"."+token, int((90 * 24 * time.Hour).Seconds()))
}

// gpc says whether the browser sends Global Privacy Control.
func gpc(r *http.Request) bool { return r.Header.Get("Sec-GPC") == "1" }

// Rights the portal offers, in order, and what each submits.
type right struct {
	Name string // in the address: /privacy/ask/<name>
	Type string // the request type
}

var rights = []right{
	{"access", "access"},
	{"portability", "portability"},
	{"erasure", "erasure"},
	{"correction", "rectification"},
	{"consent", "consent"},
	{"opt-out", "consent"},
}

func findRight(name string) (right, bool) {
	for _, r := range rights {
		if r.Name == name {
			return r, true
		}
	}
	return right{}, false
}

// optOutPurpose is what "do not sell or share" and a Global Privacy Control
// signal withdraw (api.Server.OptOutPurpose: one rule for the portal and DRP).
func (p *Portal) optOutPurpose() string { return p.api.OptOutPurpose() }

func (p *Portal) fields() []datamap.Field {
	if p.api.Map == nil {
		return nil
	}
	return p.api.Map.Fields
}

func (p *Portal) purposes() []string {
	if p.api.Map == nil || p.api.Map.Consent == nil {
		return nil
	}
	var out []string
	for _, pu := range p.api.Map.Consent.Purposes {
		out = append(out, pu.Name)
	}
	return out
}

// recordGPC records an identified visitor's Global Privacy Control signal
// as the withdrawal of consent to sale or sharing, source "gpc".
func (p *Portal) recordGPC(ctx context.Context, email, jurisdiction string) error {
	purpose := p.optOutPurpose()
	if purpose == "" {
		return nil
	}
	no := false
	_, err := p.api.SubmitForPerson(ctx, api.SubmitRequest{
		Type: "consent", Subject: api.Subject{Email: email}, Jurisdiction: jurisdiction,
		Details: &api.Details{Consent: &api.ConsentDetails{Purpose: purpose, Granted: &no, Source: "gpc"}},
	}, true)
	return err
}
