package export

import (
	"fmt"
	"html/template"
	"io"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// indexPage is index.html: one self-contained page (no scripts, fonts,
// images or styles from elsewhere) that a person opens from the unpacked
// archive, offline.
var indexPage = template.Must(template.New("index.html").Funcs(template.FuncMap{
	"href":  href,
	"bytes": humanBytes,
	"kind": func(k string) string {
		switch k {
		case KindAccount:
			return "account"
		case KindTable:
			return "database table"
		case KindObjects:
			return "stored files"
		case KindProcessor:
			return "service provider"
		}
		return k
	},
	"unit": func(k string, n int) string {
		unit := "row"
		switch k {
		case KindObjects:
			unit = "file"
		case KindProcessor:
			unit = "record"
		}
		if n != 1 {
			unit += "s"
		}
		return unit
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #eee; vertical-align: top; }
td.n { text-align: right; white-space: nowrap; } code { font-size: .9em; word-break: break-all; }
.note { color: #555; } .gap { color: #8a1f11; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{if .M.Portability -}}
<p>This archive holds the personal data <strong>you provided to us</strong>, in a structured, machine-readable format
(JSON and your original files), so that you can keep it or give it to another service (right to data portability, GDPR Art. 20).</p>
{{- else -}}
<p>This archive holds a copy of the personal data we have about you, and the information the law says comes with it
(right of access, GDPR Art. 15; right to know, CCPA).</p>
{{- end}}
<p class="note">Prepared on {{.M.GeneratedAt.Format "2 January 2006 at 15:04 UTC"}}.
Data is in JSON files (one object per record) and your files are as you stored them.
<a href="manifest.json">manifest.json</a> describes this archive for programs.</p>

<h2 id="contents">What this archive contains</h2>
<p>{{.M.Counts.Rows}} database rows, {{.M.Counts.Files}} files ({{bytes .M.Counts.FileBytes}}) and {{.M.Counts.Records}} records from service providers, from {{.M.Counts.Sources}} sources.</p>
<table>
<tr><th>Source</th><th>Kind</th><th>Items</th><th>Where</th></tr>
{{range .M.Sources -}}
<tr><td><code>{{.Name}}</code></td><td>{{kind .Kind}}</td><td class="n">{{.Count}} {{unit .Kind .Count}}{{if .Bytes}} ({{bytes .Bytes}}){{end}}{{if not .Complete}} <span class="gap">incomplete</span>{{end}}</td>
<td>{{if .Path}}<a href="{{href .Path}}"><code>{{.Path}}</code></a>{{else if eq .Kind "objects"}}see the files below{{end}}</td></tr>
{{end -}}
</table>
{{with .M.Files}}
<h3>Files</h3>
<table>
<tr><th>File</th><th>Size</th><th>Last changed</th></tr>
{{range . -}}
<tr><td><a href="{{href .Path}}"><code>{{.Path}}</code></a></td><td class="n">{{bytes .Size}}</td><td>{{.LastModified.Format "2006-01-02 15:04"}}</td></tr>
{{end -}}
</table>
{{end}}
{{with .S.Purposes}}
<h2 id="purposes">Why we process your data</h2>
<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>
{{end}}
{{with .S.Categories}}
<h2 id="categories">Categories of personal data we hold</h2>
<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>
{{end}}
<h2 id="recipients">Who receives your data</h2>
{{with .S.Recipients}}<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{else}}<p>Nobody outside our company.</p>{{end}}
{{with .S.Retention}}
<h2 id="retention">How long we keep it</h2>
<p>{{.}}</p>
{{end}}
{{with .S.Sources}}
<h2 id="source">Where the data came from</h2>
<p>{{.}}</p>
{{end}}
<h2 id="rights">Your rights</h2>
<p>{{.S.Rights}}</p>

<h2 id="left-out">What is left out</h2>
{{if or .M.Exclusions .M.Portability -}}
<ul>
{{if .M.Portability}}<li>Data you did not provide yourself (such as data we recorded or received about you) is not part of a portability archive; ask for a copy of your data to receive it.</li>{{end}}
{{range .M.Exclusions}}<li>Left out: <code>{{.Source}}.{{.Column}}</code> – {{.Reason}}.</li>
{{end -}}
</ul>
{{- else -}}
<p>Nothing.</p>
{{- end}}

<h2 id="gaps">What could not be included</h2>
{{with .M.Gaps -}}
<ul class="gap">
{{range .}}<li><code>{{.Source}}</code>: {{.Reason}}</li>
{{end -}}
</ul>
{{- else -}}
<p>Nothing: every source was exported.</p>
{{- end}}
</body>
</html>
`))

// writeIndex renders index.html.
func writeIndex(w io.Writer, ix Index, m Manifest) error {
	title := ix.Title
	if title == "" {
		title = "Your personal data"
	}
	return indexPage.Execute(w, struct {
		Title string
		M     Manifest
		S     datamap.Disclosure
	}{title, m, ix.Statement})
}

// humanBytes writes n bytes for people: 512 B, 4.0 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
