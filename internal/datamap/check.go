package datamap

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// CheckReport is every problem of a data map, in the order a person fixes
// them: what does not parse, what does not fit the live schema, which
// tables the map leaves out (CheckCoverage). Each problem is one line
// naming the table or column, listed once.
type CheckReport struct {
	Parse    []string
	Schema   []string
	Coverage []string
	// Map is the parsed map, nil when it does not parse.
	Map *Map
	// Tables is the number of tables of the live schema.
	Tables int
}

// Problems is the number of problems found.
func (r CheckReport) Problems() int { return len(r.Parse) + len(r.Schema) + len(r.Coverage) }

// CheckMap parses the map in b and, even when that fails, checks what
// parsed against the live database db: Validate's checks (never running a
// selector that did not parse) and the coverage. Its error is a failure to
// read the database, not a problem of the map.
func CheckMap(ctx context.Context, db Querier, b []byte) (CheckReport, error) {
	var r CheckReport
	cat, err := readCatalog(ctx, db)
	if err != nil {
		return r, fmt.Errorf("data map check: %w", err)
	}
	r.Tables = len(cat.names)
	m, err := Parse(b)
	whole := m
	if err != nil {
		r.Parse = lines(err, "")
		// Check what parsed: decoded leniently, with what Parse refused left out.
		var loose Map
		dec := yaml.NewDecoder(bytes.NewReader(b))
		if dec.Decode(&loose) != nil {
			return r, nil
		}
		whole, m = &loose, loose.checkable()
	} else {
		r.Map = m
	}
	seen := map[string]bool{}
	for _, p := range r.Parse {
		seen[p] = true
	}
	once := func(list []string) []string {
		var out []string
		for _, s := range list {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
		return out
	}
	r.Schema = once(lines(m.Validate(ctx, db), "data map: "))
	var cov []string
	for _, u := range whole.coverage(cat) {
		cov = append(cov, u.String())
	}
	r.Coverage = once(cov)
	return r, nil
}

// lines splits a (joined) error into one line per problem, each without
// prefix.
func lines(err error, prefix string) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, lines(e, prefix)...)
		}
		return out
	}
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimPrefix(strings.TrimSpace(l), prefix); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// qualified tells whether name is a table as a map names it: schema.table
// in lower case.
func qualified(name string) bool { return strings.Contains(name, ".") && expressible(name) }

// checkable is a copy of a map that did not parse, with what Parse refused
// left out, so that Validate checks the rest against the live schema
// without repeating Parse's problems: sections whose tables or columns are
// not names, and every selector (whose SQL is run only once it parses).
func (m *Map) checkable() *Map {
	c := *m
	c.Selectors = nil
	col := func(name string) bool { return identRe.MatchString(name) }
	if id := c.Identity; id != nil && !(qualified(id.Table) && col(id.Key) && col(id.Email)) {
		c.Identity = nil
	}
	if a := c.Accounts; a != nil && !(qualified(a.Table) && col(a.Key) && col(a.Email) && (a.Status == "" || col(a.Status)) && (a.LastActive == "" || col(a.LastActive))) {
		c.Accounts = nil
	}
	if d := c.IDDocuments; d != nil && !(qualified(d.Table) && qualified(d.Tickets)) {
		c.IDDocuments = nil
	}
	if k := c.Consent; k != nil && !qualified(k.Table) {
		c.Consent = nil
	}
	c.Tables = nil
	for _, t := range m.Tables {
		switch {
		case !qualified(t.Name) || (t.Via == nil) == (t.Key == "") || (t.By != "" && !col(t.By)):
			continue
		case t.Via == nil && !col(t.Key):
			continue
		case t.Via != nil && !(col(t.Via.Column) && col(t.Via.ParentKey) && qualified(t.Via.Parent)):
			continue
		}
		t.Anonymize = keep(t.Anonymize, func(a Anonymization) bool { return col(a.Column) })
		t.Exclude = keep(t.Exclude, col)
		if t.Hold != nil && t.Hold.Since != "" && !col(t.Hold.Since) {
			h := *t.Hold
			h.Since = ""
			t.Hold = &h
		}
		c.Tables = append(c.Tables, t)
	}
	c.Fields = keep(c.Fields, func(f Field) bool { return qualified(f.Table) })
	return &c
}

func keep[T any](list []T, ok func(T) bool) []T {
	var out []T
	for _, v := range list {
		if ok(v) {
			out = append(out, v)
		}
	}
	return out
}
