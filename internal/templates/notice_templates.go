package templates

import (
	htmltemplate "html/template"
)

// The notices' templates (see notices.go). Unlike the request mails'
// templates under defaults/, they are built in: a company cannot override them.

// Shared pieces of the HTML documents.
const htmlStyle = `<body style="font-family: sans-serif; line-height: 1.5; color: #222; max-width: 42em;">`

var breachSubjectT = mustText("breach.subject",
	`Important: a data breach at {{trim .CompanyName}} involving your personal information`)

var breachTextT = mustText("breach.text", `Dear -name-,

We are writing to tell you about a data breach at {{.CompanyName}} that involves your personal information{{with trim .ID}} (our reference: {{.}}){{end}}.

What happened
-------------
{{plain .WhatHappened}}
{{- if not .AwareAt.IsZero}}

We became aware of it on {{when .AwareAt}}.
{{- end}}
{{- with plain .Consequences}}

What this may mean for you:
{{.}}
{{- end}}

What information was involved
-----------------------------
{{- range .DataCategories}}
- {{trim .}}
{{- end}}

What we are doing
-----------------
{{plain .Measures}}

What you can do
---------------
{{plain .Advice}}

For more information
--------------------
{{plain .Contact}}

We are sorry that this happened.

The {{.CompanyName}} team
`)

var breachHTMLT = mustHTML("breach.html", `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.CompanyName}}: a data breach involving your personal information</title></head>
`+htmlStyle+`
<p>Dear -name-,</p>
<p>We are writing to tell you about a data breach at {{.CompanyName}} that involves your personal information{{with trim .ID}} (our reference: {{.}}){{end}}.</p>
{{template "sections" .}}
<p>We are sorry that this happened.</p>
<p>The {{.CompanyName}} team</p>
</body>
</html>
{{define "sections"}}
<h2>What happened</h2>
{{- range paras .WhatHappened}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}
{{- if not .AwareAt.IsZero}}
<p>We became aware of it on {{when .AwareAt}}.</p>
{{- end}}
{{- with paras .Consequences}}
<p><strong>What this may mean:</strong></p>
{{- range .}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}
{{- end}}
<h2>What information was involved</h2>
<ul>
{{- range .DataCategories}}
<li>{{trim .}}</li>
{{- end}}
</ul>
<h2>What we are doing</h2>
{{- range paras .Measures}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}
<h2>What you can do</h2>
{{- range paras .Advice}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}
<h2>For more information</h2>
{{- range paras .Contact}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}
{{end}}`)

var publicHTMLT = template2(breachHTMLT, "public.html", `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.CompanyName}}: public notice of a data breach</title></head>
`+htmlStyle+`
<h1>Public notice of a data breach at {{.CompanyName}}</h1>
<p>{{.CompanyName}} is publishing this notice for the people whose personal information was involved in a data breach{{with trim .ID}} (our reference: {{.}}){{end}}.</p>
<p><strong>Why we are telling you in a public notice:</strong>
{{- if .Reason}} {{.Reason}}
{{- else}} we do not hold working contact details for {{count .WithoutContact}} of the people affected, so we cannot tell each of them directly.
{{- end}}</p>
<p>If you have used {{.CompanyName}}, your information may be involved. Please read this notice and contact us if you have questions.</p>
{{template "sections" .}}
<p>We are sorry that this happened.</p>
<p>{{.CompanyName}}</p>
</body>
</html>
`)

// template2 parses src as a new template sharing base's associated
// templates (e.g. "sections").
func template2(base *htmltemplate.Template, name, src string) *htmltemplate.Template {
	t := htmltemplate.Must(base.Clone())
	return htmltemplate.Must(t.New(name).Parse(src))
}

var reportHTMLT = mustHTML("report.html", `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Personal data breach notification: {{.Doc.Controller}}, {{.Doc.IncidentID}}, phase {{.Doc.Phase}}</title>
<style>
th { text-align: left; vertical-align: top; padding-right: 1em; font-weight: normal; color: #555; }
td { vertical-align: top; }
</style></head>
`+htmlStyle+`
<h1>Notification of a personal data breach</h1>
<p>Notification to the supervisory authority under Article 33 of the General Data Protection Regulation (GDPR).</p>
<table>
<tr><th>Controller</th><td>{{.Doc.Controller}}</td></tr>
<tr><th>Incident reference</th><td>{{.Doc.IncidentID}}</td></tr>
<tr><th>Report phase</th><td>Phase {{.Doc.Phase}}{{if eq .Doc.Phase 1}} (initial notification){{else}} (supplements earlier reports on this incident){{end}}.
Information may be provided in phases (Art. 33(4)); anything marked "not yet known" will follow in a later phase.</td></tr>
<tr><th>Controller became aware</th><td>{{when .Doc.AwareAt}}</td></tr>
<tr><th>Reported</th><td>{{when .Doc.ReportedAt}}</td></tr>
<tr><th>Hours from awareness to report</th><td>{{hours .Doc.HoursAwareToReport}}
{{- if eq .Doc.Phase 1}}{{if .Late}} (later than the {{.Deadline}}-hour deadline){{else}} (within the {{.Deadline}}-hour deadline){{end}}{{end}}</td></tr>
{{- with .Doc.DelayReason}}
<tr><th>Reasons for the delay</th><td style="white-space: pre-line;">{{.}}</td></tr>
{{- end}}
</table>

<h2>(a) Nature of the breach</h2>
{{- range paras .Doc.Nature.Description}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}
<table>
<tr><th>Categories of personal data concerned</th><td>{{if .Doc.Nature.PersonalDataCategories}}{{range $i, $c := .Doc.Nature.PersonalDataCategories}}{{if $i}}; {{end}}{{$c}}{{end}}{{else}}Not yet known.{{end}}</td></tr>
<tr><th>Categories of data subjects concerned</th><td>{{if .Doc.Nature.DataSubjectCategories}}{{range $i, $c := .Doc.Nature.DataSubjectCategories}}{{if $i}}; {{end}}{{$c}}{{end}}{{else}}Not yet known.{{end}}</td></tr>
<tr><th>Approximate number of data subjects concerned</th><td>{{with .Doc.Nature.ApproxDataSubjects}}{{count .}}{{else}}Not yet known.{{end}}</td></tr>
<tr><th>Approximate number of personal data records concerned</th><td>{{with .Doc.Nature.ApproxRecords}}{{count .}}{{else}}Not yet known.{{end}}</td></tr>
</table>

<h2>(b) Contact point for more information</h2>
{{- range paras .Doc.ContactPoint}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}

<h2>(c) Likely consequences of the breach</h2>
{{- with paras .Doc.LikelyConsequences}}{{range .}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}{{else}}
<p>Not yet known.</p>
{{- end}}

<h2>(d) Measures taken or proposed</h2>
{{- with paras .Doc.Measures}}{{range .}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}{{else}}
<p>Not yet known.</p>
{{- end}}

<h2>Communication to data subjects (Art. 34)</h2>
{{- if .Doc.SubjectNotification.Required}}
<p>The people concerned are being told individually without undue delay.</p>
{{- else}}
<p>Individual communication is not required: <span style="white-space: pre-line;">{{.Doc.SubjectNotification.ReasonNotRequired}}</span></p>
{{- end}}
<table>
<tr><th>Identified as affected so far</th><td>{{count .Doc.SubjectNotification.Found}}</td></tr>
<tr><th>Notified individually</th><td>{{count .Doc.SubjectNotification.Notified}}</td></tr>
<tr><th>Without contact details (cannot be notified individually)</th><td>{{count .Doc.SubjectNotification.WithoutContact}}</td></tr>
<tr><th>Notification pending</th><td>{{count .Doc.SubjectNotification.Pending}}</td></tr>
</table>
</body>
</html>
`)

var policySubjectT = mustText("policy.subject", `{{trim .CompanyName}}: changes to our {{trim .Title}}`)

var policyTextT = mustText("policy.text", `Dear -name-,

We are making changes to our {{trim .Title}}.

What is changing
----------------
{{plain .Summary}}

These changes take effect on {{date .EffectiveAt}}.

You can read the updated {{trim .Title}} here:
{{.URL}}

The {{trim .CompanyName}} team
`)

var policyHTMLT = mustHTML("policy.html", `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{trim .CompanyName}}: changes to our {{trim .Title}}</title></head>
`+htmlStyle+`
<p>Dear -name-,</p>
<p>We are making changes to our {{trim .Title}}.</p>
<h2>What is changing</h2>
{{- range paras .Summary}}
<p style="white-space: pre-line;">{{.}}</p>
{{- end}}
<p><strong>These changes take effect on {{date .EffectiveAt}}.</strong></p>
<p>You can read the updated {{trim .Title}} here: <a href="{{.URL}}">{{.URL}}</a></p>
<p>The {{trim .CompanyName}} team</p>
</body>
</html>
`)
