// Package templates renders what Lethe writes to people: the emails sent at
// each step of a privacy request and about a person's account (Renderer),
// and the notices of a personal-data breach or a policy change
// (BreachNotice, PublicNotice, AuthorityReport, PolicyChangeNotice; see
// notices.go). Both go through one engine (render.go): the same template
// functions, text/template for subjects and plain text, html/template
// (contextually escaped) for HTML, and missingkey=error.
//
// # Request and account mail
//
// The Renderer renders the emails to the person who made a request (receipt,
// verification, extension, outcome) and to the company's privacy team
// (reminders and escalations); and about a person's account: its
// deactivation and the grace period before it is erased, its restoration,
// its erasure, and a warning before an inactive account is deleted or
// anonymized.
//
// Every event has three templates, embedded in the binary under defaults/:
//
//	<event>.subject.tmpl  the subject line (text/template, one line)
//	<event>.text.tmpl     the plain-text body (text/template)
//	<event>.html.tmpl     the HTML body (html/template, contextually escaped)
//
// A company may replace any of them by putting a file with the same name in
// an override directory (see New). All templates are parsed, and test-rendered
// with sample data, when the Renderer is built, so a broken template stops
// the process at start-up rather than when the email is due.
//
// Templates see a Data value and the functions listed at funcs (render.go),
// among them:
//
//	date         a time.Time as "2 January 2027" in UTC; a zero time is an error
//	duration     a time.Duration as "15 minutes", "24 hours", "2 days"
//	requestType  a request type as a noun phrase, e.g. "erasure" -> "data erasure"
//	jurisdiction a jurisdiction as a name, e.g. "gdpr" -> "GDPR"
//
// # Breach and policy notices
//
// A personal-data breach or a privacy-policy change produces the notice
// emailed to each affected person, the report to a data-protection
// authority (GDPR Art. 33), a public notice for when individual notice is
// impossible or disproportionate (Art. 34(3)(c)), and the notice of a policy
// change. Their templates are built in (notice_templates.go).
//
// No personal data goes into a notice. Every text is the company's, identical
// for every recipient; the per-recipient greeting is the SendGrid
// substitution tag NameTag ("-name-"), filled in by the sender. For that
// reason the texts of a notice may not contain NameTag themselves. Times that
// matter are rendered in UTC as "2 January 2027 15:04 UTC"; a policy's
// effective date as "2 January 2027". Errors for input a notice cannot be
// rendered from wrap ErrInvalid and name the fields at fault, never their
// values.
//
// Like the rest of Lethe, no error from this package contains personal data:
// errors name events, files and fields, never their values.
package templates

import (
	"embed"
	"fmt"
	htmltemplate "html/template"
	"os"
	"path/filepath"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// The events Lethe sends email for. Each is also the base name of the
// event's template files, e.g. "receipt.subject.tmpl".
const (
	// Receipt tells the person their request was received: its type, its
	// reference and its due date (and, under CCPA, that this email is the
	// confirmation of receipt the law requires). Unless Data.Verified, it
	// says a one-time code may follow.
	Receipt = "receipt"
	// VerificationCode sends the one-time code (Data.Code) and how long it
	// is valid (Data.CodeValidFor).
	VerificationCode = "verification_code"
	// VerificationReminder tells the person they have not verified yet, where
	// to get a new code (Data.LinkURL) and when the request lapses
	// (Data.LapseDate).
	VerificationReminder = "verification_reminder"
	// VerificationExpired tells the person the request lapsed unverified and
	// where to submit it again (Data.LinkURL).
	VerificationExpired = "verification_expired"
	// Extension tells the person the deadline is extended: why (Data.Reason),
	// the new due date (Data.DueDate) and the original one
	// (Data.OriginalDueDate).
	Extension = "extension"
	// Completed tells the person what was done (Data.Lines) and, for access
	// and portability, where to download the data (Data.LinkURL, until
	// Data.LinkExpires).
	Completed = "completed"
	// Denied tells the person the request was refused, why (Data.Reason),
	// and that they may complain to a supervisory authority.
	Denied = "denied"
	// Cancelled tells the person the request was cancelled, with an optional
	// Data.Reason.
	Cancelled = "cancelled"

	// The account events below concern a person's account rather than a
	// request: they need neither Data.RequestID nor Data.RequestType.

	// DeactivationNotice tells the person their account was deactivated,
	// that it can be restored (by logging in again, or at Data.LinkURL) until
	// Data.FinalDate, and that after that date the account and its data are
	// permanently deleted.
	DeactivationNotice = "deactivation_notice"
	// DeactivationReminder reminds the person that their deactivated account
	// will be permanently deleted on Data.FinalDate unless they restore it
	// (at Data.LinkURL).
	DeactivationReminder = "deactivation_reminder"
	// AccountRestored tells the person their deactivated account was
	// restored and nothing will be deleted.
	AccountRestored = "account_restored"
	// AccountErased tells the person the grace period ended on
	// Data.FinalDate and their account and its data were permanently
	// deleted; Data.Lines optionally lists what was done.
	AccountErased = "account_erased"
	// InactivityWarning tells the person their account has been inactive
	// since Data.LastActive and will be deleted (or, if Data.Anonymize,
	// anonymized) on Data.FinalDate unless they log in before then
	// (at Data.LinkURL).
	InactivityWarning = "inactivity_warning"
	// OperatorReminder tells the privacy team a request is due on
	// Data.DueDate and not done; Data.Lines optionally lists what is open.
	// With Data.TaskDeadline it is about one task of the request (a
	// processor's erasure): it states the request's due date (DueDate,
	// when known) and the task's deadline separately.
	OperatorReminder = "operator_reminder"
	// OperatorEscalation tells the privacy team a request is overdue since
	// Data.DueDate, or (with Data.TaskDeadline) that a task of it passed its
	// deadline; Data.Lines optionally lists what is open.
	OperatorEscalation = "operator_escalation"
	// OperatorTask tells the privacy team that Lethe cannot do something on
	// its own (a mail that cannot be sent, an audit entry that cannot be
	// written): Data.Lines says what, without personal data. It may concern
	// a request (Data.RequestID, Data.DueDate) or none (an incident, an
	// account), so it needs neither RequestID nor RequestType.
	OperatorTask = "operator_task"
)

var names = []string{
	Receipt, VerificationCode, VerificationReminder, VerificationExpired,
	Extension, Completed, Denied, Cancelled,
	DeactivationNotice, DeactivationReminder, AccountRestored, AccountErased,
	InactivityWarning,
	OperatorReminder, OperatorEscalation, OperatorTask,
}

// accountEvents are the events about an account rather than a request: they
// do not need RequestID and RequestType.
var accountEvents = []string{
	DeactivationNotice, DeactivationReminder, AccountRestored, AccountErased,
	InactivityWarning,
}

// Names lists every event, people's first and the privacy team's last.
func Names() []string { return slices.Clone(names) }

// The suffixes of an event's three template files.
const (
	subjectSuffix = ".subject.tmpl"
	textSuffix    = ".text.tmpl"
	htmlSuffix    = ".html.tmpl"
)

//go:embed defaults/*.tmpl
var defaults embed.FS

// Data is what a template can show. CompanyName is needed by every event,
// and RequestID and RequestType by every event but the account events (see
// the event constants); Render reports any other field an event needs that
// is missing.
type Data struct {
	// CompanyName is the company the request was made to, or that holds the
	// account.
	CompanyName string
	// RequestID is the request's reference, e.g. "req_…".
	RequestID string
	// RequestType is access, portability, erasure, rectification, consent or
	// deactivation; another value is shown as it is.
	RequestType string
	// Jurisdiction is gdpr, ccpa or default; it selects the legal wording.
	Jurisdiction string
	// DueDate is when the request must be answered (after any extension).
	DueDate time.Time
	// OriginalDueDate is the due date before an extension.
	OriginalDueDate time.Time
	// Code is the one-time verification code and CodeValidFor how long it
	// is valid.
	Code         string
	CodeValidFor time.Duration
	// Reason explains an extension, a denial or a cancellation.
	Reason string
	// Lines are what was done (Completed, AccountErased), in the person's
	// words, e.g. "Deleted: your projects (6), your uploaded files (2
	// files)."; or what is still open (operator events), one statement each.
	Lines []string
	// LinkURL is the link the email offers: a new code, a new request, a
	// download, the request in the operators' console, or where to log in to
	// restore or keep an account.
	LinkURL string
	// LinkExpires is when a download link stops working, if it does.
	LinkExpires time.Time
	// StatusURL is the request's page in the privacy portal, for the
	// person: it carries the request's token, which the portal moves into
	// a cookie at once. Empty in mails to the privacy team.
	StatusURL string
	// LapseDate is when an unverified request lapses.
	LapseDate time.Time
	// FinalDate is when a deactivated or inactive account is permanently
	// deleted (or anonymized) unless it is restored or used before; for
	// AccountErased, when the grace period ended.
	FinalDate time.Time
	// LastActive is when an inactive account was last used.
	LastActive time.Time
	// Anonymize says an inactive account will be anonymized rather than
	// deleted (InactivityWarning).
	Anonymize bool
	// Verified says the person's identity needs no confirming (the
	// company's backend vouched for it): the Receipt promises no code.
	Verified bool
	// TaskDeadline is the deadline of an operator task (operator events
	// about a processor's erasure); DueDate is then the request's own due
	// date, or zero when the task belongs to no request.
	TaskDeadline time.Time
}

// Message is a rendered email: a one-line subject, a plain-text body and an
// HTML body. A request mail's HTML body may be empty if a company's override
// makes it so; a notice's texts may contain NameTag.
type Message struct {
	Subject, Text, HTML string
}

// Renderer renders the emails for every event. It is immutable once built
// and safe for concurrent use.
type Renderer struct {
	events map[string]*event
}

// event is one event's parsed templates, each named by the file it came
// from.
type event struct {
	subject, text *texttemplate.Template
	html          *htmltemplate.Template
}

// source is one template file's text and where it came from.
type source struct {
	path, text string
}

// New builds a Renderer from the embedded defaults. If overrideDir is not
// empty, every file in it named like a default (e.g. "denied.html.tmpl")
// replaces that default, and the others stay. A *.tmpl file there that is no
// default's name is an error, so that a misspelt override is not silently
// ignored; other files and subdirectories are ignored.
//
// Every template is parsed with missingkey=error and rendered with sample
// data in every jurisdiction; the first failure is returned with the file's
// path.
func New(overrideDir string) (*Renderer, error) {
	sources := make(map[string]source, 3*len(names))
	for _, n := range names {
		for _, suffix := range []string{subjectSuffix, textSuffix, htmlSuffix} {
			file := n + suffix
			b, err := defaults.ReadFile("defaults/" + file)
			if err != nil {
				return nil, fmt.Errorf("templates: default %s: %w", file, err)
			}
			sources[file] = source{path: "defaults/" + file, text: string(b)}
		}
	}
	if overrideDir != "" {
		if err := readOverrides(overrideDir, sources); err != nil {
			return nil, err
		}
	}

	r := &Renderer{events: make(map[string]*event, len(names))}
	for _, n := range names {
		e, err := parse(n, sources)
		if err != nil {
			return nil, err
		}
		r.events[n] = e
	}
	// Render every jurisdiction, and both wordings of Anonymize, Verified
	// and TaskDeadline (with and without a request due date), so that no
	// branch of a template goes untried.
	for _, j := range domain.Jurisdictions() {
		for i, flag := range []bool{false, true, true} {
			d := sampleData
			d.Jurisdiction, d.Anonymize, d.Verified = j, flag, flag
			if !flag {
				d.TaskDeadline = time.Time{}
			}
			if i == 2 {
				d.DueDate = time.Time{}
			}
			for _, n := range names {
				if i == 2 && n != OperatorReminder && n != OperatorEscalation {
					continue
				}
				if _, err := r.Render(n, d); err != nil {
					return nil, err
				}
			}
		}
	}
	return r, nil
}

// readOverrides replaces sources by the files of the same name in dir.
func readOverrides(dir string, sources map[string]source) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("templates: override directory: %w", err)
	}
	for _, entry := range entries {
		file := entry.Name()
		if entry.IsDir() || !strings.HasSuffix(file, ".tmpl") {
			continue
		}
		path := filepath.Join(dir, file)
		if _, ok := sources[file]; !ok {
			return fmt.Errorf("templates: %s: not the name of a template (want <event>%s, %s or %s, with an event from templates.Names)",
				path, subjectSuffix, textSuffix, htmlSuffix)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("templates: %w", err)
		}
		sources[file] = source{path: path, text: string(b)}
	}
	return nil
}

// parse parses the three templates of the event name. Each is named by the
// file it came from, so that an error in it names the file.
func parse(name string, sources map[string]source) (*event, error) {
	s, t, h := sources[name+subjectSuffix], sources[name+textSuffix], sources[name+htmlSuffix]
	e := &event{}
	var err error
	if e.subject, err = newText(s.path, s.text); err != nil {
		return nil, fmt.Errorf("templates: %s: %w", s.path, err)
	}
	if e.text, err = newText(t.path, t.text); err != nil {
		return nil, fmt.Errorf("templates: %s: %w", t.path, err)
	}
	if e.html, err = newHTML(h.path, h.text); err != nil {
		return nil, fmt.Errorf("templates: %s: %w", h.path, err)
	}
	return e, nil
}

// Render renders the email for the event name (one of Names) with d.
// It fails if the event is unknown, if d lacks a field the event needs, if
// a template fails, or if the subject is empty or not a single line.
func (r *Renderer) Render(name string, d Data) (Message, error) {
	e, ok := r.events[name]
	if !ok {
		return Message{}, fmt.Errorf("templates: unknown event %q", name)
	}
	if missing := missingFields(name, d); len(missing) > 0 {
		return Message{}, fmt.Errorf("templates: %s: missing %s", name, strings.Join(missing, ", "))
	}

	subject, err := execute(e.subject, d)
	if err != nil {
		return Message{}, err
	}
	var m Message
	m.Subject = strings.TrimSpace(subject)
	switch {
	case m.Subject == "":
		return Message{}, fmt.Errorf("templates: %s: subject is empty", e.subject.Name())
	case strings.ContainsFunc(m.Subject, unicode.IsControl):
		return Message{}, fmt.Errorf("templates: %s: subject is not a single line", e.subject.Name())
	}

	text, err := execute(e.text, d)
	if err != nil {
		return Message{}, err
	}
	if m.Text = strings.TrimSpace(text); m.Text == "" {
		return Message{}, fmt.Errorf("templates: %s: body is empty", e.text.Name())
	}
	m.Text += "\n"

	html, err := execute(e.html, d)
	if err != nil {
		return Message{}, err
	}
	if m.HTML = strings.TrimSpace(html); m.HTML != "" {
		m.HTML += "\n"
	}
	return m, nil
}

// missingFields lists the fields of d that the event name needs and lacks.
func missingFields(name string, d Data) []string {
	var missing []string
	need := func(ok bool, field string) {
		if !ok {
			missing = append(missing, field)
		}
	}
	need(d.CompanyName != "", "CompanyName")
	if !slices.Contains(accountEvents, name) && name != OperatorTask {
		need(d.RequestID != "", "RequestID")
		need(d.RequestType != "", "RequestType")
	}
	switch name {
	case Receipt:
		need(!d.DueDate.IsZero(), "DueDate")
	case OperatorReminder, OperatorEscalation:
		need(!d.DueDate.IsZero() || !d.TaskDeadline.IsZero(), "DueDate")
	case VerificationCode:
		need(d.Code != "", "Code")
		need(d.CodeValidFor > 0, "CodeValidFor")
	case VerificationReminder:
		need(d.LinkURL != "", "LinkURL")
		need(!d.LapseDate.IsZero(), "LapseDate")
	case VerificationExpired:
		need(d.LinkURL != "", "LinkURL")
	case Extension:
		need(d.Reason != "", "Reason")
		need(!d.DueDate.IsZero(), "DueDate")
		need(!d.OriginalDueDate.IsZero(), "OriginalDueDate")
	case Completed, OperatorTask:
		need(len(d.Lines) > 0, "Lines")
	case Denied:
		need(d.Reason != "", "Reason")
	case DeactivationNotice, DeactivationReminder:
		need(d.LinkURL != "", "LinkURL")
		need(!d.FinalDate.IsZero(), "FinalDate")
	case AccountErased:
		need(!d.FinalDate.IsZero(), "FinalDate")
	case InactivityWarning:
		need(d.LinkURL != "", "LinkURL")
		need(!d.FinalDate.IsZero(), "FinalDate")
		need(!d.LastActive.IsZero(), "LastActive")
	}
	return missing
}

// sampleData is the data every template is test-rendered with by New: every
// field is set, so a template that fails on it is broken.
var sampleData = Data{
	CompanyName:     "Example Ltd",
	RequestID:       "req_aaaaaaaaaaaaaaaaaaaaaaaaaa",
	RequestType:     domain.TypeErasure,
	Jurisdiction:    domain.GDPR,
	DueDate:         time.Date(2027, 3, 2, 0, 0, 0, 0, time.UTC),
	OriginalDueDate: time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC),
	Code:            "482913",
	CodeValidFor:    15 * time.Minute,
	Reason:          "sample reason",
	Lines:           []string{"sample line one", "sample line two"},
	LinkURL:         "https://example.com/privacy/requests/new",
	LinkExpires:     time.Date(2027, 1, 9, 0, 0, 0, 0, time.UTC),
	LapseDate:       time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC),
	FinalDate:       time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC),
	LastActive:      time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	Anonymize:       true,
	Verified:        true,
	TaskDeadline:    time.Date(2027, 1, 12, 0, 0, 0, 0, time.UTC),
}
