package datamap

import (
	"bytes"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// violated reports a broken property, named by the kind of bug it would be.
func violated(t *testing.T, bug string, format string, args ...any) {
	t.Helper()
	t.Errorf("%s: "+format, append([]any{bug}, args...)...)
}

var (
	fuzzTableRe  = regexp.MustCompile(`^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$`)
	fuzzColumnRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	fuzzBucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

const userIDTemplate = "{user_id}"

// parseBudget is how long one Parse may take before it counts as
// pathological (YAML alias bombs and the like). The fuzzer itself reports
// an input that hangs for 10s.
const parseBudget = 2 * time.Second

// FuzzParse parses a fuzzed data map and, when it is accepted, fills in each
// S3 location's prefix for a fuzzed user id.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\ntables: [{name: app.users, key: id, action: delete}]\ns3: [{bucket: my-bucket, prefix: 'projects/{user_id}/'}]\n"), "u-1")
	f.Add([]byte("version: 1\n"), "")
	f.Add([]byte("version: 1\ntables: [{name: app.users, key: id, action: delete, exclude: [password_hash]}]\ns3: [{bucket: my-bucket, prefix: 'p/{user_id}/'}]\ndisclosure: {purposes: [service], rights: '', provided_by_person: [app.users, 's3://my-bucket/p/{user_id}/']}\n"), "u-1")
	f.Add([]byte("version: 1\naccounts: {table: app.accounts, key: id, email: email, status: status, active: a, deactivated: d, erased: e, last_active: seen, erase_action: delete}\ntables: [{name: app.files, via: {column: project_id, parent: app.projects, parent_key: id}, action: delete}, {name: app.projects, via: {column: owner, parent: app.accounts, parent_key: id}, action: delete}, {name: app.reviews, key: user_id, action: anonymize, anonymize: [{column: name, set: fixed, value: x}, {column: email, set: 'null'}, {column: ref, set: hash}]}, {name: app.orders, key: user_id, action: retain, hold: {reason: tax, period: 120mo, since: at}}]\nbackups: {promise: 40d, locations: [{name: pg-nightly, bucket: my-backups, prefix: 'pg/', rotation: 35d}]}\nprocessors: [{name: crm, kind: webhook, follow_up: 45d}]\n"), "u-1")
	f.Add([]byte("version: 1\nprocessors: [{name: crm, kind: webhook}]\nfields: [{name: bio, table: app.profiles, key: id, column: bio, check: {kind: text, max_length: 5, pattern: '[a-z]+'}, processors: {crm: bio}}]\nconsent: {table: app.consents, key: id, purpose: purpose, granted: granted, source: source, changed_at: at, purposes: [{name: ads, processors: [crm], deadline: 15bd}]}\n"), "hello")
	f.Fuzz(func(t *testing.T, data []byte, userID string) {
		start := time.Now()
		m, err := Parse(data)
		if took := time.Since(start); took > parseBudget {
			t.Errorf("Parse of %d bytes took %v", len(data), took)
		}
		if err != nil {
			if m != nil {
				t.Errorf("Parse returned a map with error %v", err)
			}
			return
		}
		if m == nil {
			t.Fatal("Parse returned neither a map nor an error")
		}

		if secondDocument(data) {
			violated(t, "second-document-ignored", "Parse accepted %q, which holds more than one YAML document", data)
		}

		// An accepted map is version 1 and names only plain lower-case
		// schema.table and column identifiers, each table once.
		if m.Version != 1 {
			t.Errorf("accepted version %d", m.Version)
		}
		if id := m.Identity; id != nil {
			if !fuzzTableRe.MatchString(id.Table) {
				t.Errorf("accepted identity table %q", id.Table)
			}
			if !fuzzColumnRe.MatchString(id.Key) || !fuzzColumnRe.MatchString(id.Email) {
				t.Errorf("accepted identity columns %q, %q", id.Key, id.Email)
			}
		}
		if a := m.Accounts; a != nil {
			if !fuzzTableRe.MatchString(a.Table) {
				t.Errorf("accepted accounts table %q", a.Table)
			}
			for _, c := range []string{a.Key, a.Email} {
				if !fuzzColumnRe.MatchString(c) {
					t.Errorf("accepted accounts column %q", c)
				}
			}
			for _, c := range []string{a.Status, a.LastActive} { // optional
				if c != "" && !fuzzColumnRe.MatchString(c) {
					t.Errorf("accepted accounts column %q", c)
				}
			}
			if a.ClosedAt != "" && !fuzzColumnRe.MatchString(a.ClosedAt) {
				t.Errorf("accepted accounts closed_at column %q", a.ClosedAt)
			}
		}
		if d := m.IDDocuments; d != nil {
			if !fuzzTableRe.MatchString(d.Table) || !fuzzTableRe.MatchString(d.Tickets) {
				t.Errorf("accepted id_documents tables %q, %q", d.Table, d.Tickets)
			}
			for _, c := range []string{d.Key, d.Ticket, d.Object, d.TicketKey, d.TicketClosed} {
				if !fuzzColumnRe.MatchString(c) {
					t.Errorf("accepted id_documents column %q", c)
				}
			}
			if !fuzzBucketRe.MatchString(d.Bucket) {
				t.Errorf("accepted id_documents bucket %q", d.Bucket)
			}
		}
		seen := map[string]bool{}
		for _, tb := range m.Tables {
			if !fuzzTableRe.MatchString(tb.Name) {
				t.Errorf("accepted table name %q", tb.Name)
			}
			if (tb.Key == "") == (tb.Via == nil) {
				t.Errorf("accepted table %q with key %q and via %+v: want exactly one", tb.Name, tb.Key, tb.Via)
			}
			if tb.Via == nil && !fuzzColumnRe.MatchString(tb.Key) {
				t.Errorf("accepted key column %q of %q", tb.Key, tb.Name)
			}
			switch tb.Action {
			case ActionDelete, ActionAnonymize:
				if tb.Hold != nil {
					t.Errorf("accepted a hold on %q with action %q", tb.Name, tb.Action)
				}
			case ActionRetain:
				if tb.Hold == nil || strings.TrimSpace(tb.Hold.Reason) == "" {
					t.Errorf("accepted retain table %q without a hold reason", tb.Name)
				} else if _, err := tb.Hold.Ends(time.Now()); err != nil {
					t.Errorf("accepted hold period %q of %q: %v", tb.Hold.Period, tb.Name, err)
				} else if tb.Hold.Since != "" && !fuzzColumnRe.MatchString(tb.Hold.Since) {
					t.Errorf("accepted hold since %q of %q", tb.Hold.Since, tb.Name)
				}
			default:
				t.Errorf("accepted action %q", tb.Action)
			}
			checkAnonymizeAccepted(t, tb)
			if seen[tb.Name] {
				t.Errorf("accepted table %q twice", tb.Name)
			}
			seen[tb.Name] = true
			checkExcludeAccepted(t, tb.Name, tb.Exclude)
		}
		for _, tb := range m.Tables {
			checkPathAccepted(t, m, tb)
		}
		if b := m.Backups; b != nil {
			names := map[string]bool{}
			for _, l := range b.Locations {
				if names[l.Name] || l.Name == "" || !fuzzBucketRe.MatchString(l.Bucket) {
					t.Errorf("accepted backup location %+v", l)
				}
				names[l.Name] = true
			}
			if len(b.Locations) == 0 {
				t.Error("accepted backups without locations")
			}
		}
		if again, err := Parse(data); err != nil || again.Digest() != m.Digest() || len(m.Digest()) != 16 {
			t.Errorf("the digest of the same bytes changed: %q, then %v (%v)", m.Digest(), again, err)
		}
		if a := m.Accounts; a != nil {
			checkExcludeAccepted(t, a.Table, a.Exclude)
		}

		// What a portability export carries is a table or an S3 location
		// of the map; the statement always has rights and every processor.
		if d := m.Disclosure; d != nil {
			for _, ref := range d.ProvidedByPerson {
				if !seen[ref] && (m.Accounts == nil || m.Accounts.Table != ref) && !slices.ContainsFunc(m.S3, func(l Location) bool { return l.LocationRef() == ref }) {
					t.Errorf("accepted provided_by_person %q, not in the map", ref)
				}
			}
		}
		st := m.Statement()
		if strings.TrimSpace(st.Rights) == "" {
			t.Error("Statement without rights")
		}
		for _, p := range m.Processors {
			if !slices.Contains(st.Recipients, p.Name) {
				t.Errorf("Statement recipients %q lack processor %q", st.Recipients, p.Name)
			}
		}

		// Fields and purposes name plain identifiers and only processors
		// the map declares; checking a value never panics.
		procs := map[string]bool{}
		for _, p := range m.Processors {
			if procs[p.Name] || p.Name == "" || p.Kind == "" {
				t.Errorf("accepted processor %q (kind %q)", p.Name, p.Kind)
			}
			procs[p.Name] = true
		}
		for _, fl := range m.Fields {
			if !fuzzColumnRe.MatchString(fl.Name) || !fuzzTableRe.MatchString(fl.Table) || !fuzzColumnRe.MatchString(fl.Key) || !fuzzColumnRe.MatchString(fl.Column) || fl.Key == fl.Column {
				t.Errorf("accepted field %+v", fl)
			}
			for p := range fl.Processors {
				if !procs[p] {
					t.Errorf("accepted field %s naming undeclared processor %q", fl.Name, p)
				}
			}
			if got, ok := m.Field(fl.Name); !ok || got.Column != fl.Column {
				t.Errorf("Field(%q) = %+v, %v", fl.Name, got, ok)
			}
			if err := CheckValue(fl, userID); err == nil && fl.Check.MaxLength > 0 && utf8.RuneCountInString(userID) > fl.Check.MaxLength {
				t.Errorf("CheckValue accepted %d characters for max_length %d", utf8.RuneCountInString(userID), fl.Check.MaxLength)
			}
		}
		if c := m.Consent; c != nil {
			if !fuzzTableRe.MatchString(c.Table) || len(c.Purposes) == 0 {
				t.Errorf("accepted consent %+v", c)
			}
			for _, col := range []string{c.Key, c.Purpose, c.Granted, c.Source, c.ChangedAt} {
				if !fuzzColumnRe.MatchString(col) {
					t.Errorf("accepted consent column %q", col)
				}
			}
			for _, p := range c.Purposes {
				if !fuzzColumnRe.MatchString(p.Name) {
					t.Errorf("accepted purpose %q", p.Name)
				}
				for _, proc := range p.Processors {
					if !procs[proc] {
						t.Errorf("accepted purpose %s naming undeclared processor %q", p.Name, proc)
					}
				}
			}
		}

		// Its S3 prefixes have {user_id} as their only template.
		for _, l := range m.S3 {
			if !fuzzBucketRe.MatchString(l.Bucket) {
				t.Errorf("accepted bucket %q", l.Bucket)
			}
			if !strings.Contains(l.Prefix, userIDTemplate) || strings.ContainsAny(strings.ReplaceAll(l.Prefix, userIDTemplate, ""), "{}") {
				t.Errorf("accepted prefix %q", l.Prefix)
			}
		}
		for _, l := range m.S3 {
			checkPrefixFor(t, l, userID)
		}
	})
}

// checkAnonymizeAccepted checks an accepted table anonymizes only with
// action anonymize, named columns each once, and fixed values that hold no
// email address.
func checkAnonymizeAccepted(t *testing.T, tb Table) {
	t.Helper()
	if (tb.Action == ActionAnonymize) != (len(tb.Anonymize) > 0) {
		t.Errorf("accepted table %q with action %q and anonymize %+v", tb.Name, tb.Action, tb.Anonymize)
	}
	for i, a := range tb.Anonymize {
		if !fuzzColumnRe.MatchString(a.Column) || slices.ContainsFunc(tb.Anonymize[:i], func(b Anonymization) bool { return b.Column == a.Column }) {
			t.Errorf("accepted anonymize column %q of %q", a.Column, tb.Name)
		}
		switch a.Set {
		case SetFixed:
			if a.Value == nil || strings.Contains(*a.Value, "@") {
				t.Errorf("accepted fixed value %v of %q", a.Value, tb.Name)
			}
		case SetNull, SetHash:
			if a.Value != nil {
				t.Errorf("accepted a value with set %q", a.Set)
			}
		default:
			t.Errorf("accepted set %q", a.Set)
		}
	}
}

// checkPathAccepted checks an accepted table's way to the person: it starts
// at the table, every step names a column, every step after the first is a
// table of the map, each table once (no cycle), and only the last step
// compares with the user id.
func checkPathAccepted(t *testing.T, m *Map, tb Table) {
	t.Helper()
	path := tb.Path()
	if len(path) == 0 || path[0].Table != tb.Name {
		t.Errorf("accepted table %q with path %+v", tb.Name, path)
		return
	}
	seen := map[string]bool{}
	for k, st := range path {
		if seen[st.Table] {
			t.Errorf("path of %q passes %q twice: %+v", tb.Name, st.Table, path)
		}
		seen[st.Table] = true
		if _, ok := m.Table(st.Table); !ok {
			t.Errorf("path of %q passes %q, not a table of the map", tb.Name, st.Table)
		}
		last := k == len(path)-1
		if !fuzzColumnRe.MatchString(st.Column) || (st.Refers == "") != last || (!last && !fuzzColumnRe.MatchString(st.Refers)) {
			t.Errorf("path of %q has step %+v", tb.Name, st)
		}
	}
}

// checkExcludeAccepted checks an accepted exclude list names columns, each once.
func checkExcludeAccepted(t *testing.T, table string, cols []string) {
	t.Helper()
	for i, c := range cols {
		if !fuzzColumnRe.MatchString(c) || slices.Contains(cols[:i], c) {
			t.Errorf("accepted exclude %q of %q", cols, table)
		}
	}
}

// checkPrefixFor checks PrefixFor either refuses id or fills the template in
// safely: no "..", no leading "/", and id exactly where {user_id} was.
func checkPrefixFor(t *testing.T, l Location, id string) {
	t.Helper()
	got, err := l.PrefixFor(id)
	if err != nil {
		return
	}
	if id == "" || strings.ContainsAny(id, `/\{}`) || strings.Contains(id, "..") {
		t.Errorf("PrefixFor(%q) of %q accepted an id that can escape: %q", id, l.Prefix, got)
	}
	parts := strings.Split(l.Prefix, userIDTemplate)
	rest := got
	for i, part := range parts {
		if i > 0 {
			var ok bool
			if rest, ok = strings.CutPrefix(rest, id); !ok {
				t.Fatalf("PrefixFor(%q) of %q = %q: the id is not where {user_id} was", id, l.Prefix, got)
			}
		}
		var ok bool
		if rest, ok = strings.CutPrefix(rest, part); !ok {
			t.Fatalf("PrefixFor(%q) of %q = %q: the template's text %q is not kept", id, l.Prefix, got, part)
		}
	}
	if rest != "" {
		t.Fatalf("PrefixFor(%q) of %q = %q: extra text %q", id, l.Prefix, got, rest)
	}
	if strings.HasPrefix(got, "/") {
		bug := ""
		if strings.HasPrefix(l.Prefix, "/") {
			bug = "prefix-leading-slash"
		}
		violated(t, bug, "PrefixFor(%q) of %q = %q starts with /", id, l.Prefix, got)
	}
	if strings.Contains(got, "..") {
		bug := "id-dots-join"
		for _, part := range parts {
			if strings.Contains(part, "..") {
				bug = "prefix-dotdot"
			}
		}
		violated(t, bug, "PrefixFor(%q) of %q = %q contains ..", id, l.Prefix, got)
	}
	// Another user's prefix never lies under this one's, or erasing one
	// would delete the other's objects.
	if other, err := l.PrefixFor(id + "0"); err == nil && strings.HasPrefix(other, got) {
		violated(t, "prefix-not-delimited", "PrefixFor(%q) of %q = %q is a prefix of PrefixFor(%q) = %q", id, l.Prefix, got, id+"0", other)
	}
}

// secondDocument tells whether data holds something after its first YAML
// document (an empty document, "---" alone, holds nothing).
func secondDocument(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first, second yaml.Node
	if dec.Decode(&first) != nil {
		return false
	}
	switch err := dec.Decode(&second); {
	case err == io.EOF:
		return false
	case err != nil:
		return true
	}
	for _, n := range second.Content {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!null" {
			return true
		}
	}
	return false
}
