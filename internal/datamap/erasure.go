package datamap

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// Via reaches a table's rows through a parent: the rows whose Column holds
// the ParentKey of one of the person's rows of Parent. Parent is another
// table of the map (keyed or itself reached via another, to any depth), or
// the accounts or identity table, with ParentKey its user id column: then
// Column holds the user id itself.
type Via struct {
	Column    string `yaml:"column"`
	Parent    string `yaml:"parent"` // schema.table
	ParentKey string `yaml:"parent_key"`
}

// Ways an anonymize action sets a column.
const (
	SetNull  = "null"  // SQL NULL
	SetFixed = "fixed" // the Value written in the map, such as "Former customer"
	SetHash  = "hash"  // the person's keyed pseudonym, which the caller passes
)

// Anonymization is one column an anonymize action overwrites. Value is the
// text of set: fixed, and only of it.
type Anonymization struct {
	Column string  `yaml:"column"`
	Set    string  `yaml:"set"`
	Value  *string `yaml:"value"`
}

// Step is one table on the way from a table's rows to the person, as Path
// gives it: the rows of Table whose Column holds a value of Refers in the
// person's rows of the next step's table; on the last step Refers is empty
// and Column holds the user id.
type Step struct {
	Table  string // schema.table
	Column string
	Refers string
	// By is, on the last step, what Column holds: empty for the user id,
	// else the identity table's column whose values it holds (Table.By).
	By string
}

// Path is the way from t's rows to the person: one step for a keyed table
// (Key holds the user id), one more per parent for a table declared with
// Via. It is nil for a via table that did not come from Parse, which
// resolves the chain: callers must refuse such a table.
func (t Table) Path() []Step {
	if t.Via == nil {
		if t.Key == "" {
			return nil
		}
		return []Step{{Table: t.Name, Column: t.Key, By: t.By}}
	}
	return slices.Clone(t.path)
}

// Backups says where the application database's backups live and how long
// they are kept. Promise is how long after an erasure the company promises
// that no backup holds the person any more; each location's Rotation is how
// long it keeps a backup. Both are periods as domain.ParsePeriod reads
// them (35d, 1mo, 15bd).
type Backups struct {
	Promise   string           `yaml:"promise"`
	Locations []BackupLocation `yaml:"locations"`
}

// BackupLocation is one place backups are written to: the objects under
// Prefix (which may be empty: the whole bucket) of Bucket.
type BackupLocation struct {
	Name     string `yaml:"name"`
	Bucket   string `yaml:"bucket"`
	Prefix   string `yaml:"prefix"`
	Rotation string `yaml:"rotation"`
}

// Digest identifies the data map an erasure followed, for the erasure
// ledger: the first 16 hex digits of the SHA-256 of the bytes Parse read
// (those of `sha256sum datamap.yaml`). A map not made by Parse is hashed
// in its canonical YAML form instead.
func (m *Map) Digest() string {
	if m.digest != "" {
		return m.digest
	}
	b, err := yaml.Marshal(m)
	if err != nil { // a Map always marshals; keep Digest total anyway
		b = fmt.Appendf(nil, "%#v", *m)
	}
	return digest(b)
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Table returns the map's table called name (schema.table).
func (m *Map) Table(name string) (Table, bool) {
	for _, t := range m.Tables {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

// HoldLength reads a hold period: a domain.Period of calendar months
// ("120mo") or days ("30d"), longer than zero. Business days are refused: a
// legal hold is counted in calendar time.
func HoldLength(period string) (months, days int, err error) {
	p, err := holdPeriod(period)
	return p.Months, p.Days, err
}

func holdPeriod(period string) (domain.Period, error) {
	p, err := domain.ParseCalendarPeriod(period)
	if err != nil || p.IsZero() {
		return domain.Period{}, fmt.Errorf("hold period %q: want a number of months or days such as 120mo or 30d, longer than zero", period)
	}
	return p, nil
}

// Ends is when a hold that started at start ends: start plus the hold's
// period, in UTC, months as calendar months (31 January + 1mo is the last
// day of February, as in PostgreSQL's interval arithmetic).
func (h Hold) Ends(start time.Time) (time.Time, error) {
	p, err := holdPeriod(h.Period)
	if err != nil {
		return time.Time{}, err
	}
	return p.After(start.UTC()), nil
}

// parseTables checks what erasure does to each table: exactly one of key
// and via, each via chain resolved (into the table's path) and free of
// cycles, the action and what goes with it (anonymize columns, a hold).
func (m *Map) parseTables() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	index := map[string]int{}
	for i, t := range m.Tables {
		if _, dup := index[t.Name]; !dup {
			index[t.Name] = i
		}
	}
	for i := range m.Tables {
		t := &m.Tables[i]
		where := fmt.Sprintf("tables[%d] (%s)", i, t.Name)
		switch {
		case t.Via == nil && t.Key == "":
			bad("%s: want key (the column holding the user id) or via (a parent table)", where)
		case t.Via != nil && t.Key != "":
			bad("%s: key and via: want one of them", where)
		case t.Via == nil && !identRe.MatchString(t.Key):
			bad("%s: key %q: want a column name", where, t.Key)
		case t.Via != nil:
			v := t.Via
			if !identRe.MatchString(v.Column) {
				bad("%s: via column %q: want a column name", where, v.Column)
			}
			if !identRe.MatchString(v.ParentKey) {
				bad("%s: via parent_key %q: want a column name", where, v.ParentKey)
			}
			if v.Parent == t.Name {
				bad("%s: via parent is the table itself", where)
			}
		}
		if t.By != "" {
			switch id := m.Identity; {
			case t.Via != nil:
				bad("%s: by goes with key (the column holding that identifier), not with via", where)
			case !identRe.MatchString(t.By):
				bad("%s: by %q: want a column of the identity table, such as its email column", where, t.By)
			case id == nil:
				bad("%s: by %s needs the identity section: the person's %s is read from the identity table", where, t.By, t.By)
			case t.By == id.Key:
				bad("%s: by %s is the identity table's user id: leave by out", where, t.By)
			}
		}
		if t.Label != "" && (!plainText(t.Label, false) || utf8.RuneCountInString(t.Label) > 80) {
			bad("%s: label: want one line of text of at most 80 characters, such as \"your reviews\"", where)
		}
		switch t.Action {
		case ActionDelete, ActionRetain, ActionAnonymize:
		default:
			bad("%s: action %q: want %s, %s or %s", where, t.Action, ActionDelete, ActionAnonymize, ActionRetain)
		}
		if t.Action == ActionRetain {
			switch h := t.Hold; {
			case h == nil || strings.TrimSpace(h.Reason) == "" || h.Period == "":
				bad("%s: action retain needs hold: {reason, period}", where)
			default:
				if _, _, err := HoldLength(h.Period); err != nil {
					bad("%s: %v", where, err)
				}
				if h.Since != "" && !identRe.MatchString(h.Since) {
					bad("%s: hold since %q: want a column name", where, h.Since)
				}
				if !plainText(h.Reason, false) {
					bad("%s: hold reason: want one line of text without control characters", where)
				}
			}
		} else if t.Hold != nil {
			bad("%s: a hold goes with action retain", where)
		}
		if t.Action == ActionAnonymize {
			errs = append(errs, checkAnonymize(where, t.Anonymize)...)
		} else if len(t.Anonymize) > 0 {
			bad("%s: anonymize goes with action anonymize", where)
		}
	}
	if len(errs) > 0 {
		return errs // chains are resolved over well-formed tables only
	}
	for i := range m.Tables {
		if m.Tables[i].Via == nil {
			continue
		}
		path, err := m.resolve(i, index)
		if err != nil {
			errs = append(errs, fmt.Errorf("tables[%d] (%s): via: %w", i, m.Tables[i].Name, err))
			continue
		}
		m.Tables[i].path = path
	}
	if len(errs) > 0 {
		return errs
	}
	// A retained row must still be found when its hold ends: nothing on its
	// way to the person may be deleted or have a column of the way anonymized.
	for i, t := range m.Tables {
		if t.Action != ActionRetain {
			continue
		}
		path := t.Path()
		for k := 1; k < len(path); k++ {
			p := m.Tables[index[path[k].Table]]
			switch {
			case p.Action == ActionDelete:
				bad("tables[%d] (%s): retained rows are reached via %s, whose rows erasure deletes: they could not be found when the hold ends", i, t.Name, p.Name)
			case p.Action == ActionAnonymize && slices.ContainsFunc(p.Anonymize, func(a Anonymization) bool {
				return a.Column == path[k].Column || a.Column == path[k-1].Refers
			}):
				bad("tables[%d] (%s): retained rows are reached via %s, which anonymizes a column of the way: they could not be found when the hold ends", i, t.Name, p.Name)
			}
		}
	}
	return errs
}

// resolve follows table i's via chain to the person.
func (m *Map) resolve(i int, index map[string]int) ([]Step, error) {
	var path []Step
	visited := []string{}
	for cur := i; ; {
		t := m.Tables[cur]
		if t.Via == nil {
			return append(path, Step{Table: t.Name, Column: t.Key, By: t.By}), nil
		}
		if slices.Contains(visited, t.Name) {
			return nil, fmt.Errorf("a cycle: %s → %s", strings.Join(visited, " → "), t.Name)
		}
		visited = append(visited, t.Name)
		v := t.Via
		if j, ok := index[v.Parent]; ok {
			path = append(path, Step{Table: t.Name, Column: v.Column, Refers: v.ParentKey})
			cur = j
			continue
		}
		var userKey string
		switch {
		case m.Accounts != nil && v.Parent == m.Accounts.Table:
			userKey = m.Accounts.Key
		case m.Identity != nil && v.Parent == m.Identity.Table:
			userKey = m.Identity.Key
		default:
			return nil, fmt.Errorf("parent %q is neither a table of tables nor the accounts or identity table", v.Parent)
		}
		if v.ParentKey != userKey {
			return nil, fmt.Errorf("parent %s: parent_key %q: want its user id column %s", v.Parent, v.ParentKey, userKey)
		}
		return append(path, Step{Table: t.Name, Column: v.Column}), nil
	}
}

// checkAnonymize checks an anonymize list: at least one column, each once,
// set to null, hash or a fixed value that is no email address.
func checkAnonymize(where string, list []Anonymization) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(list) == 0 {
		bad("%s: action anonymize needs anonymize: [{column, set}, …]", where)
	}
	for i, a := range list {
		w := fmt.Sprintf("%s: anonymize[%d]", where, i)
		switch {
		case !identRe.MatchString(a.Column):
			bad("%s: column %q: want a column name", w, a.Column)
		case slices.ContainsFunc(list[:i], func(b Anonymization) bool { return b.Column == a.Column }):
			bad("%s: column %s is listed twice", w, a.Column)
		}
		switch a.Set {
		case SetNull, SetHash:
			if a.Value != nil {
				bad("%s (%s): a value goes with set: fixed", w, a.Column)
			}
		case SetFixed:
			switch {
			case a.Value == nil:
				bad("%s (%s): set fixed needs value", w, a.Column)
			case strings.Contains(*a.Value, "@"):
				bad("%s (%s): the fixed value contains @: an anonymized column must not hold an email address", w, a.Column)
			case !plainText(*a.Value, true):
				bad("%s (%s): the fixed value must be text without control characters", w, a.Column)
			}
		case "":
			bad(`%s (%s): set: want "null" (quoted: unquoted, YAML reads null as no value), fixed or hash`, w, a.Column)
		default:
			bad(`%s (%s): set %q: want "null", fixed or hash`, w, a.Column, a.Set)
		}
	}
	return errs
}

// parseBackups checks the backups section: a promise, and locations with
// unique names, valid buckets and rotation periods.
func (m *Map) parseBackups() []error {
	b := m.Backups
	if b == nil {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !positivePeriod(b.Promise) {
		bad("backups: promise %q: want a period such as 40d, 1mo or 20bd, longer than zero", b.Promise)
	}
	if len(b.Locations) == 0 {
		bad("backups: locations: want at least one")
	}
	for i, l := range b.Locations {
		where := fmt.Sprintf("backups.locations[%d]", i)
		switch {
		case !validName(l.Name):
			bad("%s: name %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", where, l.Name)
		case slices.ContainsFunc(b.Locations[:i], func(o BackupLocation) bool { return o.Name == l.Name }):
			bad("%s: name %q appears twice", where, l.Name)
		}
		if !bucketRe.MatchString(l.Bucket) {
			bad("%s (%s): bucket %q is not a valid bucket name", where, l.Name, l.Bucket)
		}
		if !plainText(l.Prefix, false) {
			bad("%s (%s): prefix %q: want an object key prefix without control characters", where, l.Name, l.Prefix)
		}
		if !positivePeriod(l.Rotation) {
			bad("%s (%s): rotation %q: want a period such as 35d, 1mo or 20bd, longer than zero", where, l.Name, l.Rotation)
		}
	}
	return errs
}

// columnInfo is what Validate reads of one live column.
type columnInfo struct {
	nullable bool
	dataType string // information_schema's data_type: text, integer, timestamp with time zone, …
	udt      string // its udt_name, the base type's name: int8, text, citext, uuid, …
	domain   string // the domain the column is declared with, if any
}

// schemaColumns holds the live columns by schema.table.column.
type schemaColumns map[string]columnInfo

// textTypes are the data types a pseudonym can be written to.
var textTypes = []string{"text", "character varying", "character"}

// timeTypes are the data types a hold's since column may have.
var timeTypes = []string{"timestamp with time zone", "timestamp without time zone", "date"}

// validateTable checks the columns t's erasure uses against the live
// schema: its key or via column and the parent's key, the anonymized
// columns (null ones nullable, hashed ones text), the hold's since column
// (a timestamp or date that is never NULL).
func (m *Map) validateTable(t Table, columns map[string]map[string]bool, schema schemaColumns) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	has := func(table, column string) bool { return columns[table][column] }
	if t.Via == nil {
		if !has(t.Name, t.Key) {
			bad("data map: table %s has no column %s", t.Name, t.Key)
		}
	} else {
		v := t.Via
		if !has(t.Name, v.Column) {
			bad("data map: table %s has no column %s (via)", t.Name, v.Column)
		}
		_, mapped := m.Table(v.Parent)
		switch {
		case columns[v.Parent] == nil && !mapped: // a mapped parent is reported as a table
			bad("data map: table %s: via parent %s does not exist in the application database", t.Name, v.Parent)
		case columns[v.Parent] != nil && !has(v.Parent, v.ParentKey):
			bad("data map: table %s: via parent %s has no column %s", t.Name, v.Parent, v.ParentKey)
		}
	}
	errs = append(errs, m.validateWay(t, columns, schema)...) // the key's or via column's type, by (keytypes.go)
	for _, a := range t.Anonymize {
		c, ok := schema[t.Name+"."+a.Column]
		switch {
		case !ok:
			bad("data map: table %s has no column %s (anonymize)", t.Name, a.Column)
		case a.Set == SetNull && !c.nullable:
			bad("data map: table %s: column %s is NOT NULL, so anonymize cannot set it null: use set: hash (a keyed pseudonym, for text columns) or set: fixed with a value", t.Name, a.Column)
		case a.Set == SetHash && !slices.Contains(textTypes, c.dataType):
			bad("data map: table %s: column %s is %s, so anonymize cannot write a pseudonym (text) to it", t.Name, a.Column, c.dataType)
		}
	}
	if h := t.Hold; h != nil && h.Since != "" {
		c, ok := schema[t.Name+"."+h.Since]
		switch {
		case !ok:
			bad("data map: table %s has no column %s (hold since)", t.Name, h.Since)
		case !slices.Contains(timeTypes, c.dataType):
			bad("data map: table %s: hold since column %s is %s: want a timestamp or date", t.Name, h.Since, c.dataType)
		case c.nullable:
			bad("data map: table %s: hold since column %s may be NULL: a row without a start would never be released (make it NOT NULL)", t.Name, h.Since)
		}
	}
	return errs
}
