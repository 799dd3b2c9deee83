package portal

import (
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/person"
)

// These tests need no stack: the pages that call no workflow. The
// journeys through the whole product are in starter/portal_test.go.

func newTestPortal(t *testing.T, dir string) (*httptest.Server, *api.Server) {
	t.Helper()
	subjects, err := person.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Subjects: subjects, MaxBody: 4096, Log: slog.New(slog.DiscardHandler), Map: m}
	p, err := New(srv, Options{CompanyName: "Acme Test", PublicURL: "http://localhost", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv.Portal = p
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, srv
}

func get(t *testing.T, ts *httptest.Server, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPagesCarryTheSecurityHeadersAndSpeakTheVisitorsLanguage(t *testing.T) {
	ts, _ := newTestPortal(t, "")
	for _, c := range []struct{ accept, lang, want string }{
		{"de-DE,de;q=0.9,en;q=0.5", "de", "Ihre Datenschutzrechte"},
		{"fr-FR", "en", "Your privacy rights"},
		{"", "en", "Your privacy rights"},
	} {
		resp, body := get(t, ts, "/privacy/", "Accept-Language", c.accept)
		if resp.StatusCode != 200 {
			t.Fatalf("home: %d", resp.StatusCode)
		}
		h := resp.Header
		if h.Get("Content-Security-Policy") != CSP || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("security headers: %v", h)
		}
		if !strings.Contains(body, `<html lang="`+c.lang+`">`) || !strings.Contains(body, c.want) || h.Get("Content-Language") != c.lang {
			t.Fatalf("Accept-Language %q: want %s page saying %q", c.accept, c.lang, c.want)
		}
		if strings.Contains(body, "<script") || regexp.MustCompile(` style=`).MatchString(body) {
			t.Fatal("a page carries script or inline style, which its CSP forbids")
		}
		if !strings.Contains(body, "Acme Test") {
			t.Fatal("the company name is not on the page")
		}
	}
	resp, body := get(t, ts, "/privacy/static/portal.css")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(body, "@media") {
		t.Fatalf("stylesheet: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, _ := get(t, ts, "/privacy/static/..%2fportal.go"); resp.StatusCode != 404 {
		t.Fatalf("static outside its folder: %d", resp.StatusCode)
	}
}

func TestGlobalPrivacyControlIsAcknowledged(t *testing.T) {
	ts, _ := newTestPortal(t, "")
	_, without := get(t, ts, "/privacy/")
	_, with := get(t, ts, "/privacy/", "Sec-GPC", "1")
	if strings.Contains(without, `id="gpc-notice"`) || !strings.Contains(with, `id="gpc-notice"`) || !strings.Contains(with, "We honour it") {
		t.Fatal("want the GPC notice exactly when the browser sends Sec-GPC: 1")
	}
}

func TestFormsNeedTheirCSRFTokenAndTheSameOrigin(t *testing.T) {
	ts, _ := newTestPortal(t, "")
	resp, body := get(t, ts, "/privacy/ask/access")
	var csrf string
	for _, c := range resp.Cookies() {
		if c.Name == csrfCookie {
			csrf = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Fatalf("CSRF cookie not HttpOnly SameSite=Strict: %+v", c)
			}
		}
	}
	if csrf == "" || !strings.Contains(body, `name="csrf" value="`+csrf+`"`) {
		t.Fatal("the form does not carry the cookie's CSRF token")
	}
	post := func(token, cookie string, header ...string) int {
		form := url.Values{"csrf": {token}, "email": {"x@example.com"}, "jurisdiction": {"gdpr"}}
		req, _ := http.NewRequest("POST", ts.URL+"/privacy/ask/access", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: csrfCookie, Value: cookie})
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "x@example.com") && resp.StatusCode == 403 {
			t.Fatal("a refusal repeats the email")
		}
		return resp.StatusCode
	}
	if got := post("", csrf); got != http.StatusForbidden {
		t.Fatalf("no token: %d, want 403", got)
	}
	if got := post("forged", csrf); got != http.StatusForbidden {
		t.Fatalf("wrong token: %d, want 403", got)
	}
	if got := post(csrf, ""); got != http.StatusForbidden {
		t.Fatalf("no cookie: %d, want 403", got)
	}
	if got := post(csrf, csrf, "Sec-Fetch-Site", "cross-site"); got != http.StatusForbidden {
		t.Fatalf("cross-site: %d, want 403", got)
	}
	// The control: the same form with its token and cookie passes the
	// checks and reaches the form's own validation (an empty address).
	form := url.Values{"csrf": {csrf}, "email": {""}, "jurisdiction": {"gdpr"}}
	req, _ := http.NewRequest("POST", ts.URL+"/privacy/ask/access", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.AddCookie(&http.Cookie{Name: csrfCookie, Value: csrf})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `aria-invalid="true"`) {
		t.Fatalf("the form with its token: %d, want 200 with the email field's error", resp.StatusCode)
	}
	big := strings.Repeat("a", 5000)
	if got := post(big, big); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over the API's limit: %d, want 413", got)
	}
}

func TestMailLinkMovesTheTokenIntoACookie(t *testing.T) {
	ts, srv := newTestPortal(t, "")
	id := "req_" + strings.Repeat("a", 26)
	token := srv.Subjects.RequestToken(id)
	resp, body := get(t, ts, "/privacy/status/"+id+"?t=wrong")
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "wrong") {
		t.Fatalf("a wrong token: %d", resp.StatusCode)
	}
	resp, _ = get(t, ts, "/privacy/status/"+id+"?t="+url.QueryEscape(token))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/privacy/request" {
		t.Fatalf("the mailed link: %d to %q, want 303 to /privacy/request", resp.StatusCode, resp.Header.Get("Location"))
	}
	var got *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == requestCookie {
			got = c
		}
	}
	if got == nil || !got.HttpOnly || got.SameSite != http.SameSiteLaxMode || got.Path != Prefix || got.Value != id+"."+token {
		t.Fatalf("request cookie: %+v", got)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatal("the redirect carries no Referrer-Policy")
	}
}

func TestADirectoryReplacesTextsAndAddsALanguage(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "messages"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("messages/en.yaml", "home_title: Your choices at Acme\n")
	write("messages/fr.yaml", "home_title: Vos droits\n")
	write("static/brand.css", ":root { --brand: #0a7d32; }\n")
	ts, _ := newTestPortal(t, dir)
	if _, body := get(t, ts, "/privacy/"); !strings.Contains(body, "Your choices at Acme") || !strings.Contains(body, "Get a copy of your data") {
		t.Fatal("an English override should replace its key and keep the other defaults")
	}
	if _, body := get(t, ts, "/privacy/", "Accept-Language", "fr"); !strings.Contains(body, "Vos droits") || !strings.Contains(body, `lang="fr"`) {
		t.Fatal("messages/fr.yaml should add French")
	}
	if _, body := get(t, ts, "/privacy/static/brand.css"); !strings.Contains(body, "#0a7d32") {
		t.Fatal("static/brand.css should replace the colours")
	}
	write("messages/xx-broken.yaml", "nope: [\n")
	subjects, _ := person.NewHasher([]byte("0123456789abcdef0123456789abcdef"))
	if _, err := New(&api.Server{Subjects: subjects, Log: slog.New(slog.DiscardHandler)}, Options{Dir: dir}); err == nil {
		t.Fatal("a broken messages file should stop the portal at start")
	}
}

// Every key a page names is in English, and German translates every English key.
func TestEveryMessageKeyIsDefinedAndTranslated(t *testing.T) {
	files, err := overlay("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := loadCatalog(files)
	if err != nil {
		t.Fatal(err)
	}
	en, de := c.byTag["en"], c.byTag["de"]
	var keys []string
	for _, name := range append([]string{"layout"}, pageNames...) {
		b, err := fs.ReadFile(files, "templates/"+name+".html")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\.T "([a-z0-9_-]+)"`).FindAllStringSubmatch(string(b), -1) {
			keys = append(keys, m[1])
		}
	}
	// And the keys the handlers use.
	src, err := os.ReadFile("handlers.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"((?:error|notice)_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		keys = append(keys, m[1])
	}
	for _, r := range rights {
		keys = append(keys, "right_"+r.Name+"_name", "right_"+r.Name+"_text", "ask_"+r.Name+"_title", "ask_"+r.Name+"_submit", "type_"+r.Type)
	}
	for _, s := range []string{"received", "awaiting_verification", "verified", "awaiting_approval", "in_progress", "needs_attention", "completed", "denied", "expired", "cancelled", "failed", "abandoned"} {
		keys = append(keys, "status_"+s, "status_"+s+"_text")
	}
	for _, j := range []string{"gdpr", "ccpa", "default"} {
		keys = append(keys, "jurisdiction_"+j)
	}
	for _, k := range []string{"error_not_found", "error_csrf", "error_too_many", "error_too_big", "error_bad_form", "error_link", "error_unavailable", "no_request"} {
		keys = append(keys, k, k+"_title")
	}
	for _, k := range keys {
		if _, ok := en[k]; !ok {
			t.Errorf("en.yaml lacks %q", k)
		}
	}
	for k := range en {
		if _, ok := de[k]; !ok {
			t.Errorf("de.yaml lacks %q", k)
		}
	}
	l := c.pick("de")
	if got := l.Date(time.Date(2027, 3, 5, 23, 0, 0, 0, time.UTC)); got != "5. März 2027" {
		t.Errorf("a German date: %q", got)
	}
}
