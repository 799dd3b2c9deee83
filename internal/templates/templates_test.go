package templates

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// data returns complete sample data for event name under jurisdiction j.
// Account events get no RequestID or RequestType, which they do not need.
func data(name, j string) Data {
	d := Data{
		CompanyName:  "Acme & Co",
		RequestID:    "req_abcdefghijklmnopqrstuvwxyz",
		RequestType:  "erasure",
		Jurisdiction: j,
		DueDate:      time.Date(2027, 1, 2, 23, 30, 0, 0, time.FixedZone("UTC-5", -5*3600)), // 3 January 2027 UTC
	}
	switch name {
	case VerificationCode:
		d.Code, d.CodeValidFor = "739104", 15*time.Minute
	case VerificationReminder, VerificationExpired:
		d.LinkURL = "https://acme.example/privacy/new"
		d.LapseDate = time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)
	case Extension:
		d.Reason = "We hold your data in several archived systems."
		d.OriginalDueDate = time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	case Completed:
		d.Lines = []string{"Deleted 6 rows from projects", "Deleted 2 files from uploads"}
	case Denied:
		d.Reason = "We could not confirm your identity."
	case Cancelled:
		d.Reason = "You withdrew the request."
	case OperatorReminder, OperatorEscalation:
		d.Lines = []string{"Stripe: manual deletion pending"}
	case OperatorTask:
		d.Lines = []string{"The mail completed to the person could not be sent (NoEmail): reach them another way."}
	}
	if slices.Contains(accountEvents, name) {
		d.RequestID, d.RequestType, d.DueDate = "", "", time.Time{}
		d.FinalDate = time.Date(2027, 2, 28, 23, 30, 0, 0, time.FixedZone("UTC-5", -5*3600)) // 1 March 2027 UTC
		switch name {
		case DeactivationNotice, DeactivationReminder:
			d.LinkURL = "https://acme.example/account/restore"
		case AccountErased:
			d.Lines = []string{"Deleted 6 rows from projects", "Deleted 2 files from uploads"}
		case InactivityWarning:
			d.LinkURL = "https://acme.example/login"
			d.LastActive = time.Date(2025, 5, 14, 8, 0, 0, 0, time.UTC)
		}
	}
	return d
}

// facts are what each event's message must say, in subject, text and HTML
// alike (the HTML compared after escaping the fact).
var facts = map[string][]string{
	Receipt:              {"req_abcdefghijklmnopqrstuvwxyz", "data erasure", "3 January 2027"},
	VerificationCode:     {"739104", "15 minutes", "If you did not ask for this, ignore this message"},
	VerificationReminder: {"have not yet confirmed", "https://acme.example/privacy/new", "20 December 2026"},
	VerificationExpired:  {"lapsed", "https://acme.example/privacy/new"},
	Extension:            {"3 January 2027", "3 November 2026", "several archived systems"},
	Completed:            {"Deleted 6 rows from projects", "Deleted 2 files from uploads"},
	Denied:               {"could not confirm your identity", "complain"},
	Cancelled:            {"cancelled", "You withdrew the request."},
	DeactivationNotice:   {"deactivated", "restore it until", "1 March 2027", "log in again", "https://acme.example/account/restore", "permanently deleted"},
	DeactivationReminder: {"permanently deleted", "1 March 2027", "unless you restore it", "https://acme.example/account/restore"},
	AccountRestored:      {"has been restored", "nothing will be deleted"},
	AccountErased:        {"ended on", "1 March 2027", "permanently deleted", "Deleted 6 rows from projects", "Deleted 2 files from uploads"},
	InactivityWarning:    {"inactive since", "14 May 2025", "1 March 2027", "https://acme.example/login", "permanently delete"},
	OperatorReminder:     {"req_abcdefghijklmnopqrstuvwxyz", "3 January 2027", "Stripe: manual deletion pending"},
	OperatorEscalation:   {"req_abcdefghijklmnopqrstuvwxyz", "3 January 2027", "overdue", "Stripe: manual deletion pending"},
	OperatorTask:         {"req_abcdefghijklmnopqrstuvwxyz", "needs someone", "could not be sent (NoEmail)", "3 January 2027"},
}

// flat collapses every run of white space in s to one space, so that
// checks do not depend on where a template wraps its lines.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

func newRenderer(t *testing.T, dir string) *Renderer {
	t.Helper()
	r, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDefaultsRender(t *testing.T) {
	r := newRenderer(t, "")
	for _, name := range Names() {
		for _, j := range []string{"gdpr", "ccpa", "default"} {
			t.Run(name+"/"+j, func(t *testing.T) {
				m, err := r.Render(name, data(name, j))
				if err != nil {
					t.Fatal(err)
				}
				if m.Subject == "" || strings.ContainsAny(m.Subject, "\r\n") {
					t.Errorf("subject %q: want one non-empty line", m.Subject)
				}
				if !strings.Contains(m.HTML, "<html") {
					t.Errorf("HTML body is not a document:\n%s", m.HTML)
				}
				for _, f := range facts[name] {
					if !strings.Contains(strings.ToLower(flat(m.Text)), strings.ToLower(f)) {
						t.Errorf("text lacks %q:\n%s", f, m.Text)
					}
					html := strings.ReplaceAll(f, "&", "&amp;")
					if !strings.Contains(strings.ToLower(flat(m.HTML)), strings.ToLower(html)) {
						t.Errorf("HTML lacks %q:\n%s", html, m.HTML)
					}
				}
				for _, body := range []string{m.Subject, m.Text, m.HTML} {
					for _, bad := range []string{"<no value>", "0001", "ZgotmplZ"} {
						if strings.Contains(body, bad) {
							t.Errorf("message contains %q:\n%s", bad, body)
						}
					}
				}
				if strings.Contains(m.HTML, "Acme & Co") {
					t.Errorf("company name not escaped in HTML:\n%s", m.HTML)
				}
			})
		}
	}
}

func TestJurisdictionWording(t *testing.T) {
	r := newRenderer(t, "")
	cases := []struct {
		name, j, want string
	}{
		{Receipt, "ccpa", "confirms that we received your request"},
		{Denied, "gdpr", "supervisory authority"},
		{Denied, "default", "supervisory authority"},
		{Denied, "ccpa", "California Privacy Protection Agency"},
	}
	for _, c := range cases {
		m, err := r.Render(c.name, data(c.name, c.j))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(flat(m.Text), c.want) || !strings.Contains(flat(m.HTML), c.want) {
			t.Errorf("%s/%s lacks %q:\n%s\n%s", c.name, c.j, c.want, m.Text, m.HTML)
		}
	}
	m, err := r.Render(Receipt, data(Receipt, "gdpr"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Text, "California") {
		t.Errorf("GDPR receipt mentions CCPA:\n%s", m.Text)
	}
}

func TestInactivityWarningWording(t *testing.T) {
	r := newRenderer(t, "")
	for _, anonymize := range []bool{false, true} {
		d := data(InactivityWarning, "gdpr")
		d.Anonymize = anonymize
		m, err := r.Render(InactivityWarning, d)
		if err != nil {
			t.Fatal(err)
		}
		want, notWant := "delete", "anonymiz"
		if anonymize {
			want, notWant = "anonymize", "delete"
		}
		for _, body := range []string{m.Subject, m.Text, m.HTML} {
			body = flat(body)
			if !strings.Contains(body, want) || strings.Contains(body, notWant) {
				t.Errorf("Anonymize=%v: want %q and not %q:\n%s", anonymize, want, notWant, body)
			}
			if !strings.Contains(body, "1 March 2027") {
				t.Errorf("Anonymize=%v: lacks the final date:\n%s", anonymize, body)
			}
		}
		if !strings.Contains(flat(m.Text), "before 1 March 2027") || !strings.Contains(flat(m.HTML), "log in") {
			t.Errorf("Anonymize=%v: does not say to log in before the final date:\n%s\n%s", anonymize, m.Text, m.HTML)
		}
	}
}

func TestAccountErasedWithoutLines(t *testing.T) {
	r := newRenderer(t, "")
	d := data(AccountErased, "gdpr")
	d.Lines = nil
	m, err := r.Render(AccountErased, d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Text, "what we did") || strings.Contains(m.HTML, "<ul>") {
		t.Errorf("empty Lines still announced:\n%s\n%s", m.Text, m.HTML)
	}
	if !strings.Contains(flat(m.Text), "ended on 1 March 2027") {
		t.Errorf("text lacks the final date:\n%s", m.Text)
	}
}

func TestCompletedDownloadLink(t *testing.T) {
	r := newRenderer(t, "")
	d := data(Completed, "gdpr")
	d.RequestType = "access"
	d.LinkURL = "https://dl.example/bundle?sig=a&b=c"
	d.LinkExpires = time.Date(2027, 1, 9, 12, 0, 0, 0, time.UTC)
	m, err := r.Render(Completed, d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, d.LinkURL) || !strings.Contains(m.Text, "9 January 2027") {
		t.Errorf("text lacks link or expiry:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, `href="https://dl.example/bundle?sig=a&amp;b=c"`) {
		t.Errorf("HTML lacks link:\n%s", m.HTML)
	}
}

func TestMailHTMLEscaping(t *testing.T) {
	r := newRenderer(t, "")
	d := data(Denied, "gdpr")
	d.Reason = `<script>alert("x")</script>`
	d.Lines = []string{"<b>bold</b>"}
	m, err := r.Render(Denied, d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") {
		t.Errorf("HTML contains an unescaped script:\n%s", m.HTML)
	}
	if !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Errorf("HTML lacks the escaped reason:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, d.Reason) {
		t.Errorf("plain text should show the reason as it is:\n%s", m.Text)
	}

	for _, name := range []string{Cancelled, DeactivationNotice, DeactivationReminder, InactivityWarning} {
		d = data(name, "gdpr")
		d.LinkURL = "javascript:alert(1)"
		m, err = r.Render(name, d)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(m.HTML, "javascript:") {
			t.Errorf("%s: HTML contains an unsafe URL:\n%s", name, m.HTML)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	r := newRenderer(t, "")
	if _, err := r.Render("nope", data(Receipt, "gdpr")); err == nil || !strings.Contains(err.Error(), `unknown event "nope"`) {
		t.Errorf("unknown event: %v", err)
	}

	d := data(VerificationCode, "gdpr")
	d.Code = ""
	_, err := r.Render(VerificationCode, d)
	if err == nil || !strings.Contains(err.Error(), "missing Code") {
		t.Errorf("missing code: %v", err)
	}

	d = data(VerificationCode, "gdpr")
	d.CompanyName = "Acme\r\nBcc: victim@example.com"
	_, err = r.Render(VerificationCode, d)
	if err == nil || !strings.Contains(err.Error(), "single line") {
		t.Errorf("multi-line subject: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "victim") {
		t.Errorf("error leaks data: %v", err)
	}

	d = data(Completed, "gdpr")
	d.LinkURL = "https://dl.example/x" // LinkExpires stays zero: not shown, no error
	if _, err := r.Render(Completed, d); err != nil {
		t.Errorf("optional LinkExpires: %v", err)
	}

	// Request events still need RequestID and RequestType.
	d = data(Receipt, "gdpr")
	d.RequestID, d.RequestType = "", ""
	if _, err := r.Render(Receipt, d); err == nil || !strings.Contains(err.Error(), "missing RequestID, RequestType") {
		t.Errorf("receipt without request: %v", err)
	}

	// Account events need no request, only their own fields.
	if _, err := r.Render(AccountRestored, Data{CompanyName: "Acme"}); err != nil {
		t.Errorf("account restored with only CompanyName: %v", err)
	}
	missing := map[string]string{
		DeactivationNotice:   "missing LinkURL, FinalDate",
		DeactivationReminder: "missing LinkURL, FinalDate",
		AccountRestored:      "missing CompanyName",
		AccountErased:        "missing FinalDate",
		InactivityWarning:    "missing LinkURL, FinalDate, LastActive",
	}
	for _, name := range accountEvents {
		d := Data{CompanyName: "Acme"}
		if name == AccountRestored {
			d.CompanyName = ""
		}
		_, err := r.Render(name, d)
		if err == nil || !strings.HasSuffix(err.Error(), missing[name]) {
			t.Errorf("%s with no fields: %v, want %q", name, err, missing[name])
		}
	}
}

func TestNames(t *testing.T) {
	got := Names()
	if len(got) != 16 {
		t.Fatalf("Names() = %v", got)
	}
	got[0] = "changed"
	if Names()[0] != Receipt {
		t.Error("Names returns the package's own slice")
	}

	// Every default file belongs to an event, and every event has its three.
	files, err := fs.Glob(defaults, "defaults/*")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range Names() {
		for _, s := range []string{subjectSuffix, textSuffix, htmlSuffix} {
			want = append(want, "defaults/"+n+s)
		}
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("default files %v, want %v", files, want)
	}
}

func write(t *testing.T, dir, file, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOverride(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "denied.text.tmpl", "Sorry, {{.CompanyName}} says no: {{.Reason}}\n")
	write(t, dir, "README.md", "not a template")
	if err := os.Mkdir(filepath.Join(dir, "drafts"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := newRenderer(t, dir)
	defaults := newRenderer(t, "")

	d := data(Denied, "gdpr")
	m, err := r.Render(Denied, d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Sorry, Acme & Co says no: We could not confirm your identity.\n"; m.Text != want {
		t.Errorf("overridden text = %q, want %q", m.Text, want)
	}
	dm, err := defaults.Render(Denied, d)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != dm.Subject || m.HTML != dm.HTML {
		t.Error("overriding the text body changed the subject or HTML")
	}
	for _, name := range Names() {
		if name == Denied {
			continue
		}
		got, err := r.Render(name, data(name, "gdpr"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := defaults.Render(name, data(name, "gdpr"))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s changed by an override of another event", name)
		}
	}
}

func TestOverrideErrors(t *testing.T) {
	cases := []struct {
		what, file, text, want string
	}{
		{"syntax", "extension.html.tmpl", "<p>{{.Reason</p>", "extension.html.tmpl"},
		{"unknown field", "receipt.text.tmpl", "{{.Nickname}}", "receipt.text.tmpl"},
		{"unknown function", "completed.subject.tmpl", "{{shout .RequestID}}", "completed.subject.tmpl"},
		{"two-line subject", "denied.subject.tmpl", "Refused\n{{.RequestID}}", "denied.subject.tmpl"},
		{"misspelt name", "reciept.text.tmpl", "hello", "reciept.text.tmpl"},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, c.file, c.text)
			_, err := New(dir)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, c.want)) {
				t.Errorf("error %q does not name %s", err, filepath.Join(dir, c.want))
			}
		})
	}
	if _, err := New(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("New with a missing override directory succeeded")
	}
}

func TestFormatDuration(t *testing.T) {
	cases := map[time.Duration]string{
		15 * time.Minute: "15 minutes",
		time.Minute:      "1 minute",
		time.Hour:        "1 hour",
		36 * time.Hour:   "36 hours",
		48 * time.Hour:   "2 days",
		90 * time.Second: "2 minutes",
		30 * time.Second: "30 seconds",
	}
	for d, want := range cases {
		if got, err := formatDuration(d); err != nil || got != want {
			t.Errorf("formatDuration(%v) = %q, %v; want %q", d, got, err, want)
		}
	}
	if _, err := formatDuration(0); err == nil {
		t.Error("formatDuration(0) succeeded")
	}
	if _, err := formatDate(time.Time{}); err == nil {
		t.Error("formatDate(zero) succeeded")
	}
}
