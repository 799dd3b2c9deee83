package portal

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"
	"gopkg.in/yaml.v3"
)

//go:embed web
var embedded embed.FS

// layered reads a file from the override directory when it has it, else
// from the embedded defaults.
type layered struct {
	over fs.FS // nil: no override directory
	base fs.FS
}

func (l layered) Open(name string) (fs.File, error) {
	if l.over != nil {
		f, err := l.over.Open(name)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return l.base.Open(name)
}

// names lists the files of dir in both layers.
func (l layered) names(dir string) ([]string, error) {
	var out []string
	for _, f := range []fs.FS{l.base, l.over} {
		if f == nil {
			continue
		}
		entries, err := fs.ReadDir(f, dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() && !slices.Contains(out, e.Name()) {
				out = append(out, e.Name())
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func overlay(dir string) (layered, error) {
	base, err := fs.Sub(embedded, "web")
	if err != nil {
		return layered{}, err
	}
	l := layered{base: base}
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil || !st.IsDir() {
			return l, fmt.Errorf("LETHE_PORTAL_DIR: %s is not a directory", dir)
		}
		l.over = os.DirFS(dir)
	}
	return l, nil
}

// pageNames are the portal's pages (templates/<name>.html), each drawn in
// templates/layout.html.
var pageNames = []string{"home", "ask", "request", "message"}

func parsePages(files fs.FS) (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Option("missingkey=error").ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("portal page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// catalog holds each language's messages (messages/<tag>.yaml, a flat map
// of key to text with {name} placeholders). English is the fallback for
// a language and for a key a translation lacks.
type catalog struct {
	tags    []language.Tag // tags[0] is English
	byTag   map[string]map[string]string
	matcher language.Matcher
}

func loadCatalog(files layered) (*catalog, error) {
	names, err := files.names("messages")
	if err != nil {
		return nil, err
	}
	c := &catalog{byTag: map[string]map[string]string{}}
	for _, name := range names {
		base, ok := strings.CutSuffix(name, ".yaml")
		if !ok {
			continue
		}
		tag, err := language.Parse(base)
		if err != nil {
			return nil, fmt.Errorf("portal messages %s: not a language tag", name)
		}
		// An override's file adds to and replaces the default's keys.
		m := map[string]string{}
		for _, layer := range []fs.FS{files.base, files.over} {
			if layer == nil {
				continue
			}
			raw, err := fs.ReadFile(layer, "messages/"+name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if err := yaml.Unmarshal(raw, &m); err != nil {
				return nil, fmt.Errorf("portal messages %s: %w", name, err)
			}
		}
		c.byTag[tag.String()] = m
		if tag == language.English {
			c.tags = append([]language.Tag{tag}, c.tags...)
		} else {
			c.tags = append(c.tags, tag)
		}
	}
	en, ok := c.byTag["en"]
	if !ok {
		return nil, errors.New("portal messages: messages/en.yaml is missing")
	}
	for tag, m := range c.byTag {
		for k := range m {
			if _, ok := en[k]; !ok {
				return nil, fmt.Errorf("portal messages %s.yaml: key %q is not in en.yaml", tag, k)
			}
		}
	}
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// Lang is one language's messages, as pages use them: {{.L.T "key"}}.
type Lang struct {
	Tag      string
	messages map[string]string
	fallback map[string]string
}

// pick chooses the language for an Accept-Language header.
func (c *catalog) pick(acceptLanguage string) Lang {
	tags, _, _ := language.ParseAcceptLanguage(acceptLanguage)
	_, i, _ := c.matcher.Match(tags...)
	tag := c.tags[i]
	return Lang{Tag: tag.String(), messages: c.byTag[tag.String()], fallback: c.byTag["en"]}
}

// Languages are the tags the portal speaks, English first.
func (c *catalog) Languages() []string {
	var out []string
	for _, t := range c.tags {
		out = append(out, t.String())
	}
	return out
}

// T is the message key with {name} placeholders filled from args (name, value pairs).
func (l Lang) T(key string, args ...any) string {
	s, ok := l.messages[key]
	if !ok {
		if s, ok = l.fallback[key]; !ok {
			return key
		}
	}
	for i := 0; i+1 < len(args); i += 2 {
		s = strings.ReplaceAll(s, "{"+fmt.Sprint(args[i])+"}", fmt.Sprint(args[i+1]))
	}
	return s
}

// Has says whether the key has a message.
func (l Lang) Has(key string) bool {
	_, ok := l.fallback[key]
	return ok
}

// Date is a time as the language writes a date, in UTC ("date_format"
// with {day}, {month} as a word from month_1…month_12, {year}).
func (l Lang) Date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	return l.T("date_format", "day", t.Day(), "month", l.T("month_"+strconv.Itoa(int(t.Month()))), "year", t.Year())
}

// staticType is the Content-Type of a static file, by extension.
func staticType(name string) (string, bool) {
	switch path.Ext(name) {
	case ".css":
		return "text/css; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	case ".png":
		return "image/png", true
	case ".ico":
		return "image/x-icon", true
	case ".woff2":
		return "font/woff2", true
	}
	return "", false
}
