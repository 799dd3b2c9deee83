package templates

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// est is a zone away from UTC, so tests see that times are shown in UTC.
var est = time.FixedZone("UTC-5", -5*3600)

// sample is a complete incident. AwareAt is 2 January 2027 15:04 UTC and
// ReportedAt 30.5 hours later.
func sample() Incident {
	return Incident{
		ID:                "INC-2027-004",
		AwareAt:           time.Date(2027, 1, 2, 10, 4, 0, 0, est),
		WhatHappened:      "An attacker used a stolen support-tool password to read customer records.\n\nThe access lasted about three hours.",
		DataCategories:    []string{"email addresses", "billing addresses"},
		SubjectCategories: []string{"customers"},
		Consequences:      "You may receive phishing emails that look like they come from us.",
		Measures:          "We revoked the password, enforced two-factor sign-in for all staff tools and hired an outside firm to investigate.",
		WhatYouCanDo:      "Be careful with emails asking you to sign in or pay.",
		Contact:           "Our data-protection officer, Data Protection Office, privacy@acme.example, 1 Main Street, Dublin",
		CompanyName:       "Acme & Co",
		Phase:             1,
		Found:             1234,
		Notified:          1200,
		WithoutContact:    30,
		Records:           5678,
		ReportedAt:        time.Date(2027, 1, 3, 21, 34, 0, 0, time.UTC),

		NotificationRequired: true,
	}
}

// inOrder checks that body contains each of want, in that order.
func inOrder(t *testing.T, what, body string, want ...string) {
	t.Helper()
	body = flat(body)
	at := 0
	for _, w := range want {
		w = flat(w)
		i := strings.Index(body[at:], w)
		if i < 0 {
			if strings.Contains(body, w) {
				t.Errorf("%s: %q is out of order:\n%s", what, w, body)
			} else {
				t.Errorf("%s: lacks %q:\n%s", what, w, body)
			}
			return
		}
		at += i + len(w)
	}
}

// clean checks that a rendered body has no template accidents.
func clean(t *testing.T, what, body string) {
	t.Helper()
	for _, bad := range []string{"<no value>", "0001", "ZgotmplZ", "%!", "<nil>"} {
		if strings.Contains(body, bad) {
			t.Errorf("%s contains %q:\n%s", what, bad, body)
		}
	}
}

func esc(s string) string { return strings.ReplaceAll(s, "&", "&amp;") }

func TestBreachNotice(t *testing.T) {
	in := sample()
	m, err := BreachNotice(in)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject == "" || strings.ContainsAny(m.Subject, "\r\n") || !strings.Contains(m.Subject, "Acme & Co") {
		t.Errorf("subject %q: want one line naming the company", m.Subject)
	}
	if !strings.HasPrefix(m.Text, "Dear -name-,\n") {
		t.Errorf("text does not start with the greeting:\n%s", m.Text)
	}
	if !strings.Contains(m.HTML, "<p>Dear -name-,</p>") || !strings.Contains(m.HTML, "<html") {
		t.Errorf("HTML is not a document starting with the greeting:\n%s", m.HTML)
	}
	facts := []string{
		"Dear -name-,", "INC-2027-004",
		"What happened", "stolen support-tool password", "about three hours",
		"2 January 2027 15:04 UTC", "phishing emails that look like",
		"What information was involved", "email addresses", "billing addresses",
		"What we are doing", "enforced two-factor sign-in",
		"What you can do", "Be careful with emails asking you to sign in or pay.",
		"For more information", "privacy@acme.example",
		"The Acme & Co team",
	}
	inOrder(t, "text", m.Text, facts...)
	htmlFacts := make([]string, len(facts))
	for i, f := range facts {
		htmlFacts[i] = esc(f)
	}
	inOrder(t, "HTML", m.HTML, htmlFacts...)
	if strings.Contains(m.HTML, "Acme & Co") {
		t.Errorf("company name not escaped in HTML:\n%s", m.HTML)
	}
	for _, b := range []string{m.Subject, m.Text, m.HTML} {
		clean(t, "breach notice", b)
	}
	if strings.Count(m.Text, NameTag) != 1 || strings.Count(m.HTML, NameTag) != 1 {
		t.Errorf("want exactly one %s in text and HTML", NameTag)
	}
}

func TestBreachNoticeOptionalParts(t *testing.T) {
	in := sample()
	in.WhatYouCanDo, in.Consequences, in.AwareAt, in.ID = "", "", time.Time{}, ""
	m, err := BreachNotice(in)
	if err != nil {
		t.Fatal(err)
	}
	inOrder(t, "text", m.Text, "What you can do", "We will never ask you for your password.", "For more information")
	inOrder(t, "HTML", m.HTML, "What you can do", "We will never ask you for your password.", "For more information")
	for _, b := range []string{m.Text, m.HTML} {
		clean(t, "breach notice", b)
		if strings.Contains(b, "became aware") || strings.Contains(b, "may mean") || strings.Contains(b, "reference") {
			t.Errorf("unset optional part is announced:\n%s", b)
		}
	}
}

func TestNoticeHTMLEscaping(t *testing.T) {
	in := sample()
	in.WhatHappened = `Someone posted <script>alert("x")</script> in a form.`
	in.PublicNoticeReason = "We cannot reach everyone."
	m, err := BreachNotice(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, `<script>alert("x")</script>`) {
		t.Errorf("text should carry the words as they are:\n%s", m.Text)
	}
	page, err := PublicNotice(in)
	if err != nil {
		t.Fatal(err)
	}
	report, _, err := AuthorityReport(in)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]string{"breach HTML": m.HTML, "public notice": string(page), "authority report": string(report)} {
		if strings.Contains(h, "<script") {
			t.Errorf("%s: <script> not escaped:\n%s", name, h)
		}
		if !strings.Contains(h, "&lt;script&gt;") {
			t.Errorf("%s: escaped <script> missing:\n%s", name, h)
		}
	}
}

func TestBreachNoticeRefusesIncomplete(t *testing.T) {
	cases := map[string]func(*Incident){
		"WhatHappened":   func(in *Incident) { in.WhatHappened = " \n " },
		"DataCategories": func(in *Incident) { in.DataCategories = nil },
		"Measures":       func(in *Incident) { in.Measures = "" },
		"Contact":        func(in *Incident) { in.Contact = "" },
		"CompanyName":    func(in *Incident) { in.CompanyName = "" },
		"blank entry":    func(in *Incident) { in.DataCategories = []string{"email addresses", " "} },
		"line break":     func(in *Incident) { in.CompanyName = "Acme\nBcc: x" },
		NameTag:          func(in *Incident) { in.Measures = "We told " + NameTag + " already." },
	}
	for want, mutate := range cases {
		t.Run(want, func(t *testing.T) {
			in := sample()
			mutate(&in)
			_, err := BreachNotice(in)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
			if strings.Contains(err.Error(), "Acme") || strings.Contains(err.Error(), "password") {
				t.Errorf("error %q quotes a value", err)
			}
			if _, err := PublicNotice(in); !errors.Is(err, ErrInvalid) && want != NameTag {
				t.Errorf("public notice accepted it: %v", err)
			}
		})
	}
	_, err := BreachNotice(Incident{})
	if err == nil {
		t.Fatal("empty incident accepted")
	}
	for _, f := range []string{"WhatHappened", "DataCategories", "Measures", "Contact"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
}

func TestPublicNotice(t *testing.T) {
	in := sample()
	in.PublicNoticeReason = "Many of the people affected used the service without an account, so we hold no way to reach them."
	page, err := PublicNotice(in)
	if err != nil {
		t.Fatal(err)
	}
	h := string(page)
	inOrder(t, "public notice", h,
		"<html", "Public notice of a data breach at Acme &amp; Co",
		"Why we are telling you in a public notice:", "hold no way to reach them",
		"What happened", "stolen support-tool password", "2 January 2027 15:04 UTC",
		"What information was involved", "email addresses", "billing addresses",
		"What we are doing", "enforced two-factor sign-in",
		"What you can do", "Be careful with emails",
		"For more information", "privacy@acme.example")
	clean(t, "public notice", h)
	if strings.Contains(h, NameTag) || strings.Contains(h, "Dear") {
		t.Errorf("public notice is addressed to a person:\n%s", h)
	}

	in.PublicNoticeReason = ""
	page, err = PublicNotice(in)
	if err != nil {
		t.Fatal(err)
	}
	inOrder(t, "public notice", string(page), "Why we are telling you in a public notice:", "do not hold working contact details for 30 of the people affected", "What happened")

	in.WithoutContact = 0
	if _, err := PublicNotice(in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "PublicNoticeReason") {
		t.Errorf("public notice without a reason: err = %v", err)
	}
}

func TestAuthorityReport(t *testing.T) {
	in := sample()
	h, j, err := AuthorityReport(in)
	if err != nil {
		t.Fatal(err)
	}
	inOrder(t, "report", string(h),
		"<html", "Article 33",
		"Controller", "Acme &amp; Co", "Incident reference", "INC-2027-004",
		"Report phase", "Phase 1 (initial notification)", "Art. 33(4)",
		"Controller became aware", "2 January 2027 15:04 UTC",
		"Reported", "3 January 2027 21:34 UTC",
		"Hours from awareness to report", "30.5 (within the 72-hour deadline)",
		"(a) Nature of the breach", "stolen support-tool password",
		"Categories of personal data concerned", "email addresses; billing addresses",
		"Categories of data subjects concerned", "customers",
		"Approximate number of data subjects concerned", "1,234",
		"Approximate number of personal data records concerned", "5,678",
		"(b) Contact point", "privacy@acme.example",
		"(c) Likely consequences", "phishing emails",
		"(d) Measures taken or proposed", "enforced two-factor sign-in",
		"Communication to data subjects", "told individually",
		"Identified as affected so far", "1,234",
		"Notified individually", "1,200",
		"Without contact details", "30",
		"Notification pending", "4")
	clean(t, "report", string(h))
	if strings.Contains(string(h), "Not yet known") || strings.Contains(string(h), "Reasons for the delay") {
		t.Errorf("complete report has gaps or a delay:\n%s", h)
	}

	// Every Art. 33(3) field is in the JSON under its documented name.
	var raw map[string]any
	if err := json.Unmarshal(j, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "incident_id", "controller", "phase", "aware_at", "reported_at",
		"hours_aware_to_report", "deadline_hours", "delay_reason", "nature_of_breach", "contact_point",
		"likely_consequences", "measures", "data_subject_notification"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q:\n%s", k, j)
		}
	}
	nature, _ := raw["nature_of_breach"].(map[string]any)
	for _, k := range []string{"description", "personal_data_categories", "data_subject_categories", "approx_data_subjects", "approx_records"} {
		if _, ok := nature[k]; !ok {
			t.Errorf("JSON nature_of_breach lacks %q:\n%s", k, j)
		}
	}
	notif, _ := raw["data_subject_notification"].(map[string]any)
	for _, k := range []string{"required", "reason_not_required", "found", "notified", "without_contact", "pending"} {
		if _, ok := notif[k]; !ok {
			t.Errorf("JSON data_subject_notification lacks %q:\n%s", k, j)
		}
	}
	if raw["aware_at"] != "2027-01-02T15:04:00Z" || raw["reported_at"] != "2027-01-03T21:34:00Z" {
		t.Errorf("times not in UTC: %v, %v", raw["aware_at"], raw["reported_at"])
	}

	// Round trip: the document decodes to what was meant and encodes back
	// to the same bytes.
	var doc ReportDoc
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatal(err)
	}
	subjects, records := 1234, 5678
	want := ReportDoc{
		Schema:             ReportSchema,
		IncidentID:         "INC-2027-004",
		Controller:         "Acme & Co",
		Phase:              1,
		AwareAt:            time.Date(2027, 1, 2, 15, 4, 0, 0, time.UTC),
		ReportedAt:         time.Date(2027, 1, 3, 21, 34, 0, 0, time.UTC),
		HoursAwareToReport: 30.5,
		DeadlineHours:      72,
		Nature: ReportNature{
			Description:            in.WhatHappened,
			PersonalDataCategories: []string{"email addresses", "billing addresses"},
			DataSubjectCategories:  []string{"customers"},
			ApproxDataSubjects:     &subjects,
			ApproxRecords:          &records,
		},
		ContactPoint:       in.Contact,
		LikelyConsequences: in.Consequences,
		Measures:           in.Measures,
		SubjectNotification: ReportNotification{
			Required: true, Found: 1234, Notified: 1200, WithoutContact: 30, Pending: 4,
		},
	}
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("decoded report:\n got %+v\nwant %+v", doc, want)
	}
	again, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(again, '\n'), j) {
		t.Errorf("round trip changed the document:\n%s\n---\n%s", j, again)
	}
}

func TestAuthorityReportPhasesAndGaps(t *testing.T) {
	// An early report with facts still unknown says so and stays valid.
	in := sample()
	in.Found, in.Notified, in.WithoutContact, in.Records = 0, 0, 0, 0
	in.Consequences, in.Measures, in.DataCategories, in.SubjectCategories = "", "", nil, nil
	in.NotificationRequired, in.NoNotificationReason = false, "The data were encrypted with keys that were not exposed (Art. 34(3)(a))."
	h, j, err := AuthorityReport(in)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(h), "Not yet known."); n != 6 {
		t.Errorf("want 6 facts not yet known, got %d:\n%s", n, h)
	}
	inOrder(t, "report", string(h), "Communication to data subjects", "not required", "encrypted with keys")
	var doc ReportDoc
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Nature.ApproxDataSubjects != nil || doc.Nature.ApproxRecords != nil ||
		doc.Nature.PersonalDataCategories == nil || len(doc.Nature.PersonalDataCategories) != 0 ||
		doc.SubjectNotification.Required || doc.SubjectNotification.ReasonNotRequired == "" {
		t.Errorf("unknowns not reported as such: %+v", doc)
	}
	if !bytes.Contains(j, []byte(`"approx_records": null`)) || !bytes.Contains(j, []byte(`"personal_data_categories": []`)) {
		t.Errorf("unknown counts should be null and lists []:\n%s", j)
	}

	// A late initial report needs reasons for the delay; a later phase does not.
	in = sample()
	in.ReportedAt = in.AwareAt.Add(80 * time.Hour)
	if _, _, err := AuthorityReport(in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "DelayReason") {
		t.Errorf("late initial report without reasons: err = %v", err)
	}
	in.DelayReason = "The scope was only established after forensic analysis."
	h, j, err = AuthorityReport(in)
	if err != nil {
		t.Fatal(err)
	}
	inOrder(t, "late report", string(h), "80 (later than the 72-hour deadline)", "Reasons for the delay", "forensic analysis")
	if !bytes.Contains(j, []byte(`"delay_reason": "The scope`)) {
		t.Errorf("JSON lacks the delay reason:\n%s", j)
	}
	in.DelayReason, in.Phase = "", 2
	h, _, err = AuthorityReport(in)
	if err != nil {
		t.Fatal(err)
	}
	inOrder(t, "phase 2", string(h), "Phase 2 (supplements earlier reports", "Art. 33(4)", "80")
	if strings.Contains(string(h), "deadline)") {
		t.Errorf("phase 2 judged against the initial deadline:\n%s", h)
	}

	// A configured deadline is used.
	in = sample()
	in.AuthorityDeadline = 24 * time.Hour
	if _, _, err := AuthorityReport(in); err == nil || !strings.Contains(err.Error(), "DelayReason") {
		t.Errorf("30.5 h against a 24 h deadline: err = %v", err)
	}
}

func TestAuthorityReportRefusesIncomplete(t *testing.T) {
	cases := map[string]func(*Incident){
		"ID":                   func(in *Incident) { in.ID = "" },
		"CompanyName":          func(in *Incident) { in.CompanyName = "" },
		"WhatHappened":         func(in *Incident) { in.WhatHappened = "" },
		"Contact":              func(in *Incident) { in.Contact = "" },
		"AwareAt":              func(in *Incident) { in.AwareAt = time.Time{} },
		"ReportedAt":           func(in *Incident) { in.ReportedAt = time.Time{} },
		"Phase":                func(in *Incident) { in.Phase = 0 },
		"before AwareAt":       func(in *Incident) { in.ReportedAt = in.AwareAt.Add(-time.Minute) },
		"NoNotificationReason": func(in *Incident) { in.NotificationRequired = false },
		"negative":             func(in *Incident) { in.Records = -1 },
		"exceeds Found":        func(in *Incident) { in.Notified = in.Found },
	}
	for want, mutate := range cases {
		t.Run(want, func(t *testing.T) {
			in := sample()
			mutate(&in)
			h, j, err := AuthorityReport(in)
			if !errors.Is(err, ErrInvalid) || h != nil || j != nil {
				t.Fatalf("err = %v, want ErrInvalid and no output", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		})
	}
}

func TestPolicyChangeNotice(t *testing.T) {
	p := PolicyChange{
		CompanyName: "Acme & Co",
		Title:       "Privacy Policy",
		Summary:     "We now use Stripe instead of PayPal for payments.\n\nWe keep invoices for 10 years instead of 7.",
		URL:         "https://acme.example/privacy?v=2027&lang=en",
		EffectiveAt: time.Date(2027, 1, 2, 15, 4, 0, 0, time.UTC),
	}
	m, err := PolicyChangeNotice(p)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Acme & Co: changes to our Privacy Policy" {
		t.Errorf("subject = %q", m.Subject)
	}
	if !strings.HasPrefix(m.Text, "Dear -name-,\n") || !strings.Contains(m.HTML, "<p>Dear -name-,</p>") {
		t.Errorf("no greeting:\n%s\n%s", m.Text, m.HTML)
	}
	inOrder(t, "text", m.Text, "Dear -name-,", "changes to our Privacy Policy", "What is changing",
		"Stripe instead of PayPal", "10 years instead of 7",
		"These changes take effect on 2 January 2027.", "https://acme.example/privacy?v=2027&lang=en", "The Acme & Co team")
	inOrder(t, "HTML", m.HTML, "Dear -name-,", "changes to our Privacy Policy", "What is changing",
		"Stripe instead of PayPal", "10 years instead of 7",
		"These changes take effect on 2 January 2027.", `href="https://acme.example/privacy?v=2027&amp;lang=en"`, "The Acme &amp; Co team")
	for _, b := range []string{m.Subject, m.Text, m.HTML} {
		clean(t, "policy notice", b)
	}

	// The effective date is the UTC day.
	p.EffectiveAt = time.Date(2027, 1, 1, 23, 30, 0, 0, est)
	m, err = PolicyChangeNotice(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, "take effect on 2 January 2027.") {
		t.Errorf("effective date not in UTC:\n%s", m.Text)
	}
}

func TestPolicyChangeNoticeRefusesIncomplete(t *testing.T) {
	valid := PolicyChange{CompanyName: "Acme", Title: "Privacy Policy", Summary: "New processor.",
		URL: "https://acme.example/privacy", EffectiveAt: time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)}
	cases := map[string]func(*PolicyChange){
		"CompanyName": func(p *PolicyChange) { p.CompanyName = "" },
		"Title":       func(p *PolicyChange) { p.Title = " " },
		"Summary":     func(p *PolicyChange) { p.Summary = "" },
		"URL":         func(p *PolicyChange) { p.URL = "" },
		"EffectiveAt": func(p *PolicyChange) { p.EffectiveAt = time.Time{} },
		"not an absolute http(s) URL": func(p *PolicyChange) {
			p.URL = "javascript:alert(1)"
		},
		"line break": func(p *PolicyChange) { p.Title = "Privacy\nPolicy" },
		NameTag:      func(p *PolicyChange) { p.Summary = "Hello " + NameTag },
	}
	for want, mutate := range cases {
		t.Run(want, func(t *testing.T) {
			p := valid
			mutate(&p)
			_, err := PolicyChangeNotice(p)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	s, err := formatTime(time.Date(2027, 1, 2, 10, 4, 59, 0, est))
	if err != nil || s != "2 January 2027 15:04 UTC" {
		t.Errorf("formatTime = %q, %v", s, err)
	}
	if _, err := formatTime(time.Time{}); err == nil {
		t.Error("formatTime accepted a zero time")
	}
	s, err = formatDate(time.Date(2027, 1, 1, 23, 0, 0, 0, est))
	if err != nil || s != "2 January 2027" {
		t.Errorf("formatDate = %q, %v", s, err)
	}
	for n, want := range map[int]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %q, want %q", n, got, want)
		}
	}
	if got := paragraphs(" a\r\nb \n\n\n c \n"); !reflect.DeepEqual(got, []string{"a\nb", "c"}) {
		t.Errorf("paragraphs = %q", got)
	}
}
