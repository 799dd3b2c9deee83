package templates

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"math"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// This file is the package's one way to parse and execute a template, used
// by the request mails (Renderer) and the notices (BreachNotice, …) alike:
// the same functions, missingkey=error so that an unset field fails instead
// of showing "<no value>", text/template for subjects and plain text, and
// html/template (contextually escaped) for HTML.

// funcs are the functions every template may call:
//
//	date         a time.Time as "2 January 2027" in UTC (zero: error)
//	when         a time.Time as "2 January 2027 15:04 UTC" (zero: error)
//	duration     a time.Duration as "15 minutes", "24 hours", "2 days"
//	requestType  a request type as a noun phrase, e.g. "erasure" -> "data erasure"
//	jurisdiction a jurisdiction as a name, e.g. "gdpr" -> "GDPR"
//	count        an int or *int with thousands separators
//	hours        a float64 number of hours with at most one decimal
//	paras        a text's paragraphs (split at blank lines)
//	plain        a text's paragraphs joined by blank lines, for plain text
//	trim         strings.TrimSpace
var funcs = map[string]any{
	"date":         formatDate,
	"when":         formatTime,
	"duration":     formatDuration,
	"requestType":  describeRequestType,
	"jurisdiction": describeJurisdiction,
	"count":        countFunc,
	"hours":        formatHours,
	"paras":        paragraphs,
	"plain":        block,
	"trim":         strings.TrimSpace,
}

// newText parses src as the text template name.
func newText(name, src string) (*texttemplate.Template, error) {
	return texttemplate.New(name).Option("missingkey=error").Funcs(funcs).Parse(src)
}

// newHTML parses src as the HTML template name.
func newHTML(name, src string) (*htmltemplate.Template, error) {
	return htmltemplate.New(name).Option("missingkey=error").Funcs(funcs).Parse(src)
}

// mustText and mustHTML are newText and newHTML for the built-in notice
// templates, which cannot fail.
func mustText(name, src string) *texttemplate.Template {
	return texttemplate.Must(newText(name, src))
}

func mustHTML(name, src string) *htmltemplate.Template {
	return htmltemplate.Must(newHTML(name, src))
}

// executable is a parsed text or HTML template.
type executable interface {
	Execute(w io.Writer, data any) error
	Name() string
}

// execute renders t with data. An error names the template: a request
// mail's is named by its file, a notice's by its name (e.g. "breach.text").
func execute(t executable, data any) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("templates: %s: %w", t.Name(), err)
	}
	return b.String(), nil
}

// formatDate is domain.FormatDate: "2 January 2027" in UTC, and an error
// for a zero time, so an unset date never reaches a person as "1 January 0001".
var formatDate = domain.FormatDate

// formatTime renders t as "2 January 2027 15:04 UTC"; a zero time is an
// error so that "1 January 0001" never reaches anyone.
func formatTime(t time.Time) (string, error) {
	if t.IsZero() {
		return "", errors.New("time is not set")
	}
	return t.UTC().Format("2 January 2006 15:04 UTC"), nil
}

// formatDuration renders d in the largest whole unit among days, hours and
// minutes that it is a multiple of, e.g. "15 minutes", "36 hours", "2 days";
// anything shorter than a minute is rendered in seconds.
func formatDuration(d time.Duration) (string, error) {
	if d <= 0 {
		return "", errors.New("duration is not positive")
	}
	const day = 24 * time.Hour
	switch {
	case d%day == 0:
		return plural(int64(d/day), "day"), nil
	case d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour"), nil
	case d >= time.Minute:
		return plural(int64(d.Round(time.Minute)/time.Minute), "minute"), nil
	default:
		return plural(int64(d.Round(time.Second)/time.Second), "second"), nil
	}
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

var requestTypes = map[string]string{
	domain.TypeAccess:        "data access",
	domain.TypePortability:   "data portability",
	domain.TypeErasure:       "data erasure",
	domain.TypeRectification: "data correction",
	domain.TypeConsent:       "consent change",
	domain.TypeDeactivation:  "account deactivation",
}

// describeRequestType names a request type as a noun phrase that reads
// before "request", e.g. "your data erasure request". An unknown type is
// shown as it is; an empty one is an error.
func describeRequestType(t string) (string, error) {
	if t == "" {
		return "", errors.New("request type is not set")
	}
	if s, ok := requestTypes[t]; ok {
		return s, nil
	}
	return t, nil
}

// describeJurisdiction names a jurisdiction: "GDPR", "CCPA" or "default
// policy"; another value is shown as it is.
func describeJurisdiction(j string) string {
	switch j {
	case domain.GDPR, domain.CCPA:
		return strings.ToUpper(j)
	case domain.Company, "":
		return "default policy"
	}
	return j
}

func countFunc(v any) (string, error) {
	switch n := v.(type) {
	case int:
		return formatCount(n), nil
	case *int:
		if n == nil {
			return "", fmt.Errorf("count is not set")
		}
		return formatCount(*n), nil
	}
	return "", fmt.Errorf("count: want an int, got %T", v)
}

// formatCount renders n with thousands separators: 12345 -> "12,345".
func formatCount(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatHours renders h with at most one decimal: 30.5, 72.
func formatHours(h float64) string {
	return strconv.FormatFloat(math.Round(h*10)/10, 'f', -1, 64)
}

// paragraphs splits s at blank lines into trimmed, non-empty paragraphs.
func paragraphs(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var out []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return out
}

// block renders s for plain text: its paragraphs separated by blank lines.
func block(s string) string { return strings.Join(paragraphs(s), "\n\n") }
