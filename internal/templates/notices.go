package templates

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
)

// NameTag is the substitution tag the sender replaces with each recipient's
// name (the same tag as mail.NameTag).
const NameTag = "-name-"

// DefaultAuthorityDeadline is the time from awareness within which the
// initial report to the authority is due under GDPR Art. 33(1).
const DefaultAuthorityDeadline = 72 * time.Hour

// ReportSchema identifies the JSON layout of AuthorityReport's document.
const ReportSchema = "lethe.breach_report.v1"

// ErrInvalid is wrapped by every error for input that cannot be rendered.
var ErrInvalid = errors.New("templates: invalid input")

// Incident is a personal-data breach as the company describes it. All texts
// are the company's and the same for everyone; none names a person.
type Incident struct {
	// ID is the company's reference for the incident, e.g. "INC-2027-004".
	ID string
	// AwareAt is when the company became aware of the breach.
	AwareAt time.Time
	// WhatHappened describes the nature of the breach. Blank lines separate
	// paragraphs.
	WhatHappened string
	// DataCategories are the categories of personal data involved, e.g.
	// "email addresses", "billing addresses".
	DataCategories []string
	// SubjectCategories are the categories of people concerned, e.g.
	// "customers", "newsletter subscribers" (Art. 33(3)(a)); optional.
	SubjectCategories []string
	// Consequences are the likely consequences of the breach.
	Consequences string
	// Measures are the measures taken or proposed to address the breach and
	// mitigate its effects.
	Measures string
	// WhatYouCanDo is the company's advice to the people affected; a
	// generic warning about phishing is used when empty.
	WhatYouCanDo string
	// Contact is the contact point (e.g. the data-protection officer's name,
	// email address and postal address).
	Contact string
	// CompanyName is the controller's name.
	CompanyName string

	// Phase is the number of this report to the authority, 1 for the initial
	// one (Art. 33(4): information may be provided in phases).
	Phase int
	// Found is the number of affected people identified so far, Notified
	// those told individually, WithoutContact those who cannot be told
	// (no usable contact details).
	Found, Notified, WithoutContact int
	// Records is the approximate number of personal-data records affected,
	// 0 when not yet known.
	Records int
	// ReportedAt is when this report is made to the authority.
	ReportedAt time.Time
	// AuthorityDeadline is the time from AwareAt within which the initial
	// report is due; 0 means DefaultAuthorityDeadline.
	AuthorityDeadline time.Duration
	// DelayReason gives the reasons for a phase-1 report made after
	// AuthorityDeadline (Art. 33(1)); required then.
	DelayReason string
	// NotificationRequired says whether the people affected must be told
	// (Art. 34(1)); NoNotificationReason says why not when false (e.g. the
	// data were encrypted, Art. 34(3)(a)).
	NotificationRequired bool
	NoNotificationReason string
	// PublicNoticeReason says why a public notice is used instead of
	// telling each person. When empty, PublicNotice explains it from
	// WithoutContact, which must then be positive.
	PublicNoticeReason string
}

// PolicyChange is a significant change to a company's policy.
type PolicyChange struct {
	// CompanyName is the company's name; Title the policy's, e.g.
	// "Privacy Policy".
	CompanyName, Title string
	// Summary says what changes. Blank lines separate paragraphs.
	Summary string
	// URL is where the updated policy can be read (http or https).
	URL string
	// EffectiveAt is when the changes take effect.
	EffectiveAt time.Time
}

// ReportDoc is the JSON document AuthorityReport produces. Its field names
// are stable; new fields may be added, none renamed or removed without a new
// ReportSchema. Times are RFC 3339 in UTC, whole seconds. Texts not yet known
// are "" and counts not yet known are null; in a later phase they can be
// supplied (Art. 33(4)).
//
//	schema                      ReportSchema
//	incident_id                 the company's reference for the incident
//	controller                  the controller's name
//	phase                       1 for the initial report, 2.. for follow-ups
//	aware_at                    when the controller became aware of the breach
//	reported_at                 when this report is made
//	hours_aware_to_report       hours from aware_at to reported_at, 1 decimal
//	deadline_hours              hours allowed for the initial report (72)
//	delay_reason                reasons for a late initial report, or ""
//	nature_of_breach            Art. 33(3)(a):
//	  description                 what happened
//	  personal_data_categories    categories of personal data concerned
//	  data_subject_categories     categories of data subjects concerned
//	  approx_data_subjects        approximate number of data subjects, or null
//	  approx_records              approximate number of records, or null
//	contact_point               Art. 33(3)(b): name and contact details
//	likely_consequences         Art. 33(3)(c)
//	measures                    Art. 33(3)(d): measures taken or proposed
//	data_subject_notification   communication to data subjects (Art. 34):
//	  required                    whether they must be told
//	  reason_not_required         why not, when required is false
//	  found                       people identified as affected so far
//	  notified                    people told individually
//	  without_contact             people who cannot be told individually
//	  pending                     found - notified - without_contact
type ReportDoc struct {
	Schema              string             `json:"schema"`
	IncidentID          string             `json:"incident_id"`
	Controller          string             `json:"controller"`
	Phase               int                `json:"phase"`
	AwareAt             time.Time          `json:"aware_at"`
	ReportedAt          time.Time          `json:"reported_at"`
	HoursAwareToReport  float64            `json:"hours_aware_to_report"`
	DeadlineHours       float64            `json:"deadline_hours"`
	DelayReason         string             `json:"delay_reason"`
	Nature              ReportNature       `json:"nature_of_breach"`
	ContactPoint        string             `json:"contact_point"`
	LikelyConsequences  string             `json:"likely_consequences"`
	Measures            string             `json:"measures"`
	SubjectNotification ReportNotification `json:"data_subject_notification"`
}

// ReportNature is Art. 33(3)(a) in ReportDoc.
type ReportNature struct {
	Description            string   `json:"description"`
	PersonalDataCategories []string `json:"personal_data_categories"`
	DataSubjectCategories  []string `json:"data_subject_categories"`
	ApproxDataSubjects     *int     `json:"approx_data_subjects"`
	ApproxRecords          *int     `json:"approx_records"`
}

// ReportNotification is the communication to data subjects in ReportDoc.
type ReportNotification struct {
	Required          bool   `json:"required"`
	ReasonNotRequired string `json:"reason_not_required"`
	Found             int    `json:"found"`
	Notified          int    `json:"notified"`
	WithoutContact    int    `json:"without_contact"`
	Pending           int    `json:"pending"`
}

// noticeView is what the breach-notice templates see.
type noticeView struct {
	Incident
	Advice string // WhatYouCanDo or the default
	Reason string // why a public notice is used
}

// BreachNotice renders the notice to each affected person (Art. 34(2)):
// "Dear -name-," then What happened (with the likely consequences), What
// information was involved, What we are doing, What you can do, For more
// information. It refuses an incident without WhatHappened,
// DataCategories, Measures, Contact or CompanyName.
func BreachNotice(in Incident) (Message, error) {
	if err := checkNotice("breach notice", in, true); err != nil {
		return Message{}, err
	}
	v := newNoticeView(in)
	subject, err := execute(breachSubjectT, v)
	if err != nil {
		return Message{}, err
	}
	text, err := execute(breachTextT, v)
	if err != nil {
		return Message{}, err
	}
	html, err := execute(breachHTMLT, v)
	if err != nil {
		return Message{}, err
	}
	return Message{Subject: strings.TrimSpace(subject), Text: text, HTML: html}, nil
}

// PublicNotice renders an HTML page announcing the breach to the public, for
// when telling each person is impossible or disproportionate
// (Art. 34(3)(c)): the same five sections as BreachNotice, and why a public
// notice is used (PublicNoticeReason, or else WithoutContact people cannot be
// reached). It has the same required fields as BreachNotice.
func PublicNotice(in Incident) ([]byte, error) {
	if err := checkNotice("public notice", in, false); err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.PublicNoticeReason) == "" && in.WithoutContact <= 0 {
		return nil, fmt.Errorf("%w: public notice: missing PublicNoticeReason (or a positive WithoutContact)", ErrInvalid)
	}
	v := newNoticeView(in)
	v.Reason = strings.TrimSpace(in.PublicNoticeReason)
	html, err := execute(publicHTMLT, v)
	if err != nil {
		return nil, err
	}
	return []byte(html), nil
}

func newNoticeView(in Incident) noticeView {
	v := noticeView{Incident: in, Advice: strings.TrimSpace(in.WhatYouCanDo)}
	if v.Advice == "" {
		v.Advice = "Be careful with unexpected emails, calls or messages that mention " +
			in.CompanyName + " or ask for your password or payment details. " +
			"We will never ask you for your password."
	}
	return v
}

// checkNotice checks what a notice to people needs. tagFree says the texts
// go to SendGrid, where NameTag in them would be replaced.
func checkNotice(what string, in Incident, tagFree bool) error {
	var missing []string
	for _, f := range []struct {
		name, value string
	}{
		{"WhatHappened", in.WhatHappened},
		{"Measures", in.Measures},
		{"Contact", in.Contact},
		{"CompanyName", in.CompanyName},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if !hasItems(in.DataCategories) {
		missing = append(missing, "DataCategories")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s: missing %s", ErrInvalid, what, strings.Join(missing, ", "))
	}
	return checkTexts(what, in, tagFree)
}

// checkTexts refuses a one-line field with a line break, blank list
// entries, and (when tagFree) NameTag in any text.
func checkTexts(what string, in Incident, tagFree bool) error {
	var bad []string
	if strings.ContainsAny(in.CompanyName, "\r\n") {
		bad = append(bad, "CompanyName has a line break")
	}
	if strings.ContainsAny(in.ID, "\r\n") {
		bad = append(bad, "ID has a line break")
	}
	for _, l := range []struct {
		name  string
		items []string
	}{{"DataCategories", in.DataCategories}, {"SubjectCategories", in.SubjectCategories}} {
		for _, s := range l.items {
			if strings.TrimSpace(s) == "" {
				bad = append(bad, l.name+" has a blank entry")
				break
			}
		}
	}
	if tagFree {
		for _, f := range []struct{ name, value string }{
			{"ID", in.ID}, {"WhatHappened", in.WhatHappened}, {"Consequences", in.Consequences},
			{"Measures", in.Measures}, {"WhatYouCanDo", in.WhatYouCanDo}, {"Contact", in.Contact},
			{"CompanyName", in.CompanyName}, {"DataCategories", strings.Join(in.DataCategories, "\n")},
		} {
			if strings.Contains(f.value, NameTag) {
				bad = append(bad, f.name+" contains "+NameTag)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, what, strings.Join(bad, "; "))
	}
	return nil
}

func hasItems(l []string) bool {
	return slices.ContainsFunc(l, func(s string) bool { return strings.TrimSpace(s) != "" })
}

// reportView is what the authority-report template sees.
type reportView struct {
	Doc      ReportDoc
	Late     bool // a phase-1 report after the deadline
	Deadline string
}

// AuthorityReport renders the report to a data-protection authority, as an
// HTML document and as JSON (see ReportDoc): the contents of GDPR Art. 33(3)
// (a) nature of the breach with the categories and approximate numbers of
// data subjects and records, (b) the contact point, (c) likely consequences,
// (d) measures taken or proposed; and when the controller became aware, when
// it reports, the hours between, the phase (Art. 33(4)) and the state of the
// communication to data subjects. Facts not yet known are reported as such,
// to be supplied in a later phase.
//
// It refuses an incident without ID, CompanyName, AwareAt, ReportedAt (not
// before AwareAt), Phase >= 1, WhatHappened or Contact; a phase-1 report
// after the deadline without DelayReason; NotificationRequired false without
// NoNotificationReason; and negative or inconsistent counts.
func AuthorityReport(in Incident) (html []byte, jsonDoc []byte, err error) {
	doc, err := reportDoc(in)
	if err != nil {
		return nil, nil, err
	}
	deadline := in.AuthorityDeadline
	if deadline == 0 {
		deadline = DefaultAuthorityDeadline
	}
	v := reportView{
		Doc:      doc,
		Late:     doc.Phase == 1 && in.ReportedAt.Sub(in.AwareAt) > deadline,
		Deadline: formatHours(deadline.Hours()),
	}
	h, err := execute(reportHTMLT, v)
	if err != nil {
		return nil, nil, err
	}
	j, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("templates: authority report: %w", err)
	}
	return []byte(h), append(j, '\n'), nil
}

func reportDoc(in Incident) (ReportDoc, error) {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"ID", in.ID}, {"CompanyName", in.CompanyName},
		{"WhatHappened", in.WhatHappened}, {"Contact", in.Contact},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if in.AwareAt.IsZero() {
		missing = append(missing, "AwareAt")
	}
	if in.ReportedAt.IsZero() {
		missing = append(missing, "ReportedAt")
	}
	if len(missing) > 0 {
		return ReportDoc{}, fmt.Errorf("%w: authority report: missing %s", ErrInvalid, strings.Join(missing, ", "))
	}
	if err := checkTexts("authority report", in, false); err != nil {
		return ReportDoc{}, err
	}
	var bad []string
	if in.Phase < 1 {
		bad = append(bad, "Phase is below 1")
	}
	if in.ReportedAt.Before(in.AwareAt) {
		bad = append(bad, "ReportedAt is before AwareAt")
	}
	if in.AuthorityDeadline < 0 {
		bad = append(bad, "AuthorityDeadline is negative")
	}
	if in.Found < 0 || in.Notified < 0 || in.WithoutContact < 0 || in.Records < 0 {
		bad = append(bad, "a count is negative")
	} else if in.Notified+in.WithoutContact > in.Found {
		bad = append(bad, "Notified plus WithoutContact exceeds Found")
	}
	deadline := in.AuthorityDeadline
	if deadline == 0 {
		deadline = DefaultAuthorityDeadline
	}
	elapsed := in.ReportedAt.Sub(in.AwareAt)
	if in.Phase == 1 && elapsed > deadline && strings.TrimSpace(in.DelayReason) == "" {
		bad = append(bad, "DelayReason is missing for an initial report after the deadline")
	}
	if !in.NotificationRequired && strings.TrimSpace(in.NoNotificationReason) == "" {
		bad = append(bad, "NoNotificationReason is missing while NotificationRequired is false")
	}
	if len(bad) > 0 {
		return ReportDoc{}, fmt.Errorf("%w: authority report: %s", ErrInvalid, strings.Join(bad, "; "))
	}

	doc := ReportDoc{
		Schema:             ReportSchema,
		IncidentID:         strings.TrimSpace(in.ID),
		Controller:         strings.TrimSpace(in.CompanyName),
		Phase:              in.Phase,
		AwareAt:            in.AwareAt.UTC().Truncate(time.Second),
		ReportedAt:         in.ReportedAt.UTC().Truncate(time.Second),
		HoursAwareToReport: math.Round(elapsed.Hours()*10) / 10,
		DeadlineHours:      math.Round(deadline.Hours()*10) / 10,
		DelayReason:        strings.TrimSpace(in.DelayReason),
		Nature: ReportNature{
			Description:            strings.TrimSpace(in.WhatHappened),
			PersonalDataCategories: trimmed(in.DataCategories),
			DataSubjectCategories:  trimmed(in.SubjectCategories),
		},
		ContactPoint:       strings.TrimSpace(in.Contact),
		LikelyConsequences: strings.TrimSpace(in.Consequences),
		Measures:           strings.TrimSpace(in.Measures),
		SubjectNotification: ReportNotification{
			Required:          in.NotificationRequired,
			ReasonNotRequired: strings.TrimSpace(in.NoNotificationReason),
			Found:             in.Found,
			Notified:          in.Notified,
			WithoutContact:    in.WithoutContact,
			Pending:           in.Found - in.Notified - in.WithoutContact,
		},
	}
	if in.NotificationRequired {
		doc.SubjectNotification.ReasonNotRequired = ""
	}
	if in.Found > 0 {
		n := in.Found
		doc.Nature.ApproxDataSubjects = &n
	}
	if in.Records > 0 {
		n := in.Records
		doc.Nature.ApproxRecords = &n
	}
	return doc, nil
}

// trimmed returns l's entries trimmed, never nil (so JSON has [] not null).
func trimmed(l []string) []string {
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// PolicyChangeNotice renders the notice of a policy change to each account:
// "Dear -name-," then what changes, "These changes take effect on 2 January
// 2027." and the link to the policy. Every field is required.
func PolicyChangeNotice(p PolicyChange) (Message, error) {
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"CompanyName", p.CompanyName}, {"Title", p.Title}, {"Summary", p.Summary}, {"URL", p.URL},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	if p.EffectiveAt.IsZero() {
		missing = append(missing, "EffectiveAt")
	}
	if len(missing) > 0 {
		return Message{}, fmt.Errorf("%w: policy change notice: missing %s", ErrInvalid, strings.Join(missing, ", "))
	}
	var bad []string
	if strings.ContainsAny(p.CompanyName, "\r\n") {
		bad = append(bad, "CompanyName has a line break")
	}
	if strings.ContainsAny(p.Title, "\r\n") {
		bad = append(bad, "Title has a line break")
	}
	if u, err := url.Parse(strings.TrimSpace(p.URL)); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad = append(bad, "URL is not an absolute http(s) URL")
	}
	for _, f := range []struct{ name, value string }{
		{"CompanyName", p.CompanyName}, {"Title", p.Title}, {"Summary", p.Summary}, {"URL", p.URL},
	} {
		if strings.Contains(f.value, NameTag) {
			bad = append(bad, f.name+" contains "+NameTag)
		}
	}
	if len(bad) > 0 {
		return Message{}, fmt.Errorf("%w: policy change notice: %s", ErrInvalid, strings.Join(bad, "; "))
	}
	p.URL = strings.TrimSpace(p.URL)
	subject, err := execute(policySubjectT, p)
	if err != nil {
		return Message{}, err
	}
	text, err := execute(policyTextT, p)
	if err != nil {
		return Message{}, err
	}
	html, err := execute(policyHTMLT, p)
	if err != nil {
		return Message{}, err
	}
	return Message{Subject: strings.TrimSpace(subject), Text: text, HTML: html}, nil
}
