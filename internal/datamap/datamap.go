// Package datamap reads the data map: the YAML file in which a company says
// where a person's data lives (tables of the application database, S3
// locations), and checks it against the live schema at start.
package datamap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/mail"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/processors"
)

// Map is a parsed data map.
type Map struct {
	Version     int          `yaml:"version"`
	Identity    *Identity    `yaml:"identity"`
	Accounts    *Accounts    `yaml:"accounts"`
	IDDocuments *IDDocuments `yaml:"id_documents"`
	Tables      []Table      `yaml:"tables"`
	S3          []Location   `yaml:"s3"`
	// Ignore lists tables of the application database the map leaves out
	// on purpose, each with the reason: a table with a foreign key into a
	// mapped table must be mapped or ignored (CheckCoverage).
	Ignore []Ignored `yaml:"ignore"`

	// Processors are the third parties that hold the data, as
	// processors.NewRegistry builds them. Parse checks their names only
	// (so fields and purposes can refer to them); the registry checks the
	// rest when the worker builds it.
	Processors []processors.Config `yaml:"processors"`
	// Fields are what a person may correct (rectification).
	Fields []Field `yaml:"fields"`
	// Consent is where the application keeps consents (withdrawal and grant).
	Consent *Consent `yaml:"consent"`
	// Selectors are named queries that find people: those affected by a
	// breach, the audience of a policy-change notice.
	Selectors []Selector `yaml:"selectors"`
	// Disclosure is what an access request answers beside the data itself
	// (GDPR Art. 15(1), CCPA §1798.110): why the data is processed, who
	// receives it, how long it is kept, where it came from, and which
	// tables hold what the person provided (GDPR Art. 20 portability).
	Disclosure *Disclosure `yaml:"disclosure"`
	// Backups says where backups of the application database live and how
	// long their rotation keeps them: backups cannot be edited, so an
	// erasure waits until every backup older than it has rotated out.
	Backups *Backups `yaml:"backups"`

	digest string // of the bytes Parse read: see Digest
}

// DefaultRights is the rights statement an access bundle carries when the
// data map's disclosure section sets none.
const DefaultRights = "You have the right to have inaccurate data about you rectified, to have your data erased, " +
	"to restrict or object to its processing, to receive the data you provided in a machine-readable format " +
	"and have it transmitted to another company (data portability), to withdraw a consent at any time, " +
	"and to lodge a complaint with a data protection supervisory authority."

// Disclosure is the information GDPR Art. 15(1) and the CCPA require a
// company to give with a copy of a person's data. Recipients lists third
// parties by name or category; Statement adds the map's processors to them.
type Disclosure struct {
	Purposes   []string `yaml:"purposes"`   // why the data is processed
	Categories []string `yaml:"categories"` // categories of personal data held
	Recipients []string `yaml:"recipients"` // who receives it, beside the processors
	Retention  string   `yaml:"retention"`  // how long it is kept, or the criteria
	Sources    string   `yaml:"sources"`    // where data not collected from the person came from
	Rights     string   `yaml:"rights"`     // the person's rights; empty: DefaultRights
	// ProvidedByPerson lists what the person provided themselves, the only
	// data a portability export (GDPR Art. 20) carries: tables of the map
	// (schema.table, from tables or the accounts table) and S3 locations,
	// written s3://bucket/prefix exactly as in the s3 section.
	ProvidedByPerson []string `yaml:"provided_by_person"`
}

// LocationRef is how provided_by_person names an S3 location:
// s3://bucket/prefix with the prefix template as written in the map.
func (l Location) LocationRef() string { return "s3://" + l.Bucket + "/" + l.Prefix }

// Statement is the map's disclosure ready to show a person: Rights
// defaults to DefaultRights, and every processor's name is added to
// Recipients (once). A map without a disclosure section yields just those.
func (m *Map) Statement() Disclosure {
	var d Disclosure
	if m.Disclosure != nil {
		d = *m.Disclosure
		d.Purposes = slices.Clone(d.Purposes)
		d.Categories = slices.Clone(d.Categories)
		d.Recipients = slices.Clone(d.Recipients)
		d.ProvidedByPerson = slices.Clone(d.ProvidedByPerson)
	}
	if strings.TrimSpace(d.Rights) == "" {
		d.Rights = DefaultRights
	}
	for _, p := range m.Processors {
		if !slices.Contains(d.Recipients, p.Name) {
			d.Recipients = append(d.Recipients, p.Name)
		}
	}
	return d
}

// ProvidedByPerson tells whether ref (a schema.table, or an S3 location's
// LocationRef) holds data the person provided themselves.
func (m *Map) ProvidedByPerson(ref string) bool {
	return m.Disclosure != nil && slices.Contains(m.Disclosure.ProvidedByPerson, ref)
}

// Selector is a company-written SELECT over the application database that
// returns one column of user ids; its parameters ($1, $2, …) are named, and
// values are always bound as parameters, never pasted into the SQL.
type Selector struct {
	Name   string   `yaml:"name"`
	SQL    string   `yaml:"sql"`
	Params []string `yaml:"params"`
}

// Selector finds a selector by name.
func (m *Map) Selector(name string) (Selector, bool) {
	for _, s := range m.Selectors {
		if s.Name == name {
			return s, true
		}
	}
	return Selector{}, false
}

var placeholderRe = regexp.MustCompile(`\$([0-9]+)`)

// Accounts says how the application keeps its accounts' life: the status
// column Lethe flips on deactivation and restore, the last-activity column
// the inactivity sweep reads, and what erasure does to the account row itself.
// Status (with its three values) and LastActive are optional: without a
// status column a deactivation only runs its grace period (the application
// disables the account itself) and an anonymized row is known by its email
// placeholder; without LastActive the sweep skips inactive accounts.
type Accounts struct {
	Table       string `yaml:"table"`        // schema.table
	Key         string `yaml:"key"`          // the user id column
	Email       string `yaml:"email"`        // the email column
	Status      string `yaml:"status"`       // optional: the status column
	Active      string `yaml:"active"`       // its value for an active account
	Deactivated string `yaml:"deactivated"`  // its value while a deactivation's grace period runs
	Erased      string `yaml:"erased"`       // its value once the account is anonymized
	LastActive  string `yaml:"last_active"`  // optional: timestamp of the last activity
	ClosedAt    string `yaml:"closed_at"`    // optional: when the account was closed
	EraseAction string `yaml:"erase_action"` // "anonymize" (keep the row, clear the email) or "delete"
	// Exclude lists columns of the account row never disclosed to the
	// person, not even in an access bundle (a password hash).
	Exclude []string `yaml:"exclude"`
	// Clear lists further columns set to NULL when erasure anonymizes the
	// account row (the excluded ones are cleared too): ids at processors,
	// a phone number, anything that still points at the person.
	Clear []string `yaml:"clear"`
}

// Identifier is the accounts table's name, ready for safe quoting.
func (a Accounts) Identifier() pgx.Identifier { return ident(a.Table) }

// IDDocuments says where ID documents sent for age-verification appeals live,
// and which support ticket each belongs to.
type IDDocuments struct {
	Table        string `yaml:"table"`         // schema.table of the documents
	Key          string `yaml:"key"`           // its primary key column
	Ticket       string `yaml:"ticket"`        // the column naming the appeal ticket
	Object       string `yaml:"object"`        // the column holding the S3 key of the document
	Bucket       string `yaml:"bucket"`        // the bucket of those objects
	Tickets      string `yaml:"tickets"`       // schema.table of the tickets
	TicketKey    string `yaml:"ticket_key"`    // its primary key column
	TicketClosed string `yaml:"ticket_closed"` // when the ticket was closed
}

// Identifier is the documents table's name, ready for safe quoting.
func (d IDDocuments) Identifier() pgx.Identifier { return ident(d.Table) }

// TicketsIdentifier is the tickets table's name, ready for safe quoting.
func (d IDDocuments) TicketsIdentifier() pgx.Identifier { return ident(d.Tickets) }

func ident(qualified string) pgx.Identifier {
	schema, table, _ := strings.Cut(qualified, ".")
	return pgx.Identifier{schema, table}
}

// Identity says where the application keeps its users: a request that names
// a person by email only is matched to their user id here (after the person
// proved they own the address).
type Identity struct {
	Table string `yaml:"table"` // schema.table
	Key   string `yaml:"key"`   // the user id column
	Email string `yaml:"email"` // the email column (compared case-insensitively)
}

// Identifier is the identity table's name, ready for safe quoting.
func (i Identity) Identifier() pgx.Identifier {
	schema, table, _ := strings.Cut(i.Table, ".")
	return pgx.Identifier{schema, table}
}

// Actions a table can take on a person's rows.
const (
	ActionDelete    = "delete"
	ActionRetain    = "retain"
	ActionAnonymize = "anonymize"
)

// Table is one table holding a person's rows: those whose Key column holds
// the user id or, for a table declaring Via instead, those reached through
// a foreign-key chain (account → project → comment rows). Path says how.
type Table struct {
	Name string `yaml:"name"` // schema.table
	Key  string `yaml:"key"`  // column holding the person's identifier (By)
	// By names what Key holds: empty for the user id, else a column of the
	// identity table whose value Key holds, such as its email column for a
	// table keyed by email address (compared case-insensitively) or a
	// phone column. The values are read from the person's identity row
	// before the erasure, and every email the request knows is added to
	// the identity's email column's.
	By string `yaml:"by"`
	// Label is how the person's mail names what this table holds ("your
	// reviews"); without it the mail says "other records". The operator's
	// receipt names the table.
	Label string `yaml:"label"`
	// Via, instead of Key, reaches the rows through a parent table.
	Via *Via `yaml:"via"`
	// Action is what erasure does: delete the rows, anonymize the columns
	// listed in Anonymize, or retain the rows under a legal hold.
	Action string `yaml:"action"`
	// Anonymize lists the columns an anonymize action overwrites, and with what.
	Anonymize []Anonymization `yaml:"anonymize"`
	// Hold says why and how long rows are retained (action retain): they are
	// kept through an erasure, listed in its outcome, and exported on access.
	Hold *Hold `yaml:"hold"`
	// Exclude lists columns never disclosed to the person, not even in an
	// access bundle: government ID numbers, full account numbers, secrets.
	Exclude []string `yaml:"exclude"`

	path []Step // a via table's way to the person, resolved by Parse
}

// Hold is a legal reason to keep rows through an erasure, and for how long:
// a period of months or days such as "120mo" for ten years of tax records.
// A row's hold ends Period after its Since column (a timestamp or date,
// such as the purchase date) or, without Since, Period after the erasure.
type Hold struct {
	Reason string `yaml:"reason"`
	Period string `yaml:"period"`
	Since  string `yaml:"since"`
}

// Location is an S3 prefix holding a person's objects; Prefix is a template
// such as "projects/{user_id}/".
type Location struct {
	Bucket string `yaml:"bucket"`
	Prefix string `yaml:"prefix"`
	// Label is how the person's mail names these objects ("your uploaded
	// files"); without it the mail says "files".
	Label string `yaml:"label"`
}

// Ignored is a table of the application database the map leaves out on
// purpose, with the reason (it holds nothing about a person, or only
// what another table's erasure removes through ON DELETE CASCADE). With a
// column, it is one column the verification after an erasure must not
// read as the person's (a books.author_id that is no customer's id, a
// message's recipient_id kept on purpose); the table itself stays mapped
// or covered as before.
type Ignored struct {
	Table  string `yaml:"table"`  // schema.table
	Column string `yaml:"column"` // optional: only this column
	Reason string `yaml:"reason"`
}

// IgnoresTable tells whether the map leaves table (schema.table) out.
func (m *Map) IgnoresTable(table string) bool {
	return slices.ContainsFunc(m.Ignore, func(i Ignored) bool { return i.Table == table && i.Column == "" })
}

// IgnoresColumn tells whether the map names column of table as holding no
// person's identifier, or one kept on purpose (an ignore entry with that
// column).
func (m *Map) IgnoresColumn(table, column string) bool {
	return slices.ContainsFunc(m.Ignore, func(i Ignored) bool { return i.Table == table && i.Column != "" && i.Column == column })
}

// Check kinds: what a corrected value of a field must look like.
const (
	CheckText    = "text"    // any single- or multi-line text
	CheckName    = "name"    // a person's name: letters, spaces, ' - .
	CheckEmail   = "email"   // an email address (addr-spec, no display name)
	CheckCountry = "country" // an ISO 3166-1 alpha-2 code in upper case, such as DE
	CheckPhone   = "phone"   // an E.164 number such as +4930901820
)

// Field is one thing a person may correct: Column of Table, in the rows where
// Key holds their user id. Processors maps a processor's name to the name that
// processor gives the field (for its connector's Update).
type Field struct {
	Name       string            `yaml:"name"`
	Table      string            `yaml:"table"`  // schema.table
	Key        string            `yaml:"key"`    // column holding the user id
	Column     string            `yaml:"column"` // column corrected
	Check      Check             `yaml:"check"`
	Processors map[string]string `yaml:"processors"`
}

// Identifier is the field's table name, ready for safe quoting.
func (f Field) Identifier() pgx.Identifier { return ident(f.Table) }

// Check says what a corrected value must look like: its Kind (one of the
// Check* constants), at most MaxLength characters (0: no limit) and, if
// Pattern is set, matching that RE2 expression as a whole.
type Check struct {
	Kind      string `yaml:"kind"`
	MaxLength int    `yaml:"max_length"`
	Pattern   string `yaml:"pattern"`

	re *regexp.Regexp // Pattern anchored, compiled by Parse
}

// Consent says where the application keeps consents: one row per user id
// (Key) and purpose (Purpose), with whether it is granted, the source of the
// last change and when it was made. (Key, Purpose) must be unique, which
// Validate checks.
type Consent struct {
	Table     string    `yaml:"table"` // schema.table
	Key       string    `yaml:"key"`
	Purpose   string    `yaml:"purpose"`
	Granted   string    `yaml:"granted"`
	Source    string    `yaml:"source"`
	ChangedAt string    `yaml:"changed_at"`
	Purposes  []Purpose `yaml:"purposes"`
}

// Identifier is the consent table's name, ready for safe quoting.
func (c Consent) Identifier() pgx.Identifier { return ident(c.Table) }

// Purpose is one purpose a person can withdraw or give consent for, and the
// processors told when they do. NoVerification marks an opt-out that needs no
// identity verification (CCPA "do not sell or share"); Deadline, if set, is
// the period to act in, as domain.ParsePeriod reads it (1mo, 45d, 15bd).
type Purpose struct {
	Name           string   `yaml:"name"`
	Processors     []string `yaml:"processors"`
	NoVerification bool     `yaml:"no_verification"`
	Deadline       string   `yaml:"deadline"`
}

// Field returns the correctable field called name.
func (m *Map) Field(name string) (Field, bool) {
	for _, f := range m.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Purpose returns the consent purpose called name.
func (m *Map) Purpose(name string) (Purpose, bool) {
	if m.Consent == nil {
		return Purpose{}, false
	}
	for _, p := range m.Consent.Purposes {
		if p.Name == name {
			return p, true
		}
	}
	return Purpose{}, false
}

// Load reads and parses the data map at path.
func Load(path string) (*Map, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data map: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("data map %s: %w", path, err)
	}
	return m, nil
}

// validName is the rule for processor and backup names (a-z, 0-9, - _ .),
// the one processors.Config applies.
var validName = processors.ValidName

var (
	identRe  = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	envRe    = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	// remoteFieldRe is a processor's own field name: "name", "FNAME",
	// "metadata.plan", "shipping[name]".
	remoteFieldRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\[\]-]{0,127}$`)
)

// Parse decodes a data map strictly (an unknown field is an error) and checks
// it is well formed. It does not look at a database: see Validate.
func Parse(b []byte) (*Map, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var m Map
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	// One document only: tables after a "---" must not be silently ignored.
	var rest yaml.Node
	if err := dec.Decode(&rest); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse: the data map must be one YAML document")
	}
	var errs []error
	if m.Version != 1 {
		errs = append(errs, fmt.Errorf("version: want 1, got %d", m.Version))
	}
	if id := m.Identity; id != nil {
		schema, table, ok := strings.Cut(id.Table, ".")
		if !ok || !identRe.MatchString(schema) || !identRe.MatchString(table) {
			errs = append(errs, fmt.Errorf("identity: table %q: want schema.table in lower case", id.Table))
		}
		if !identRe.MatchString(id.Key) || !identRe.MatchString(id.Email) {
			errs = append(errs, fmt.Errorf("identity (%s): key and email must be column names", id.Table))
		}
	}
	tableName := func(where, name string) {
		schema, table, ok := strings.Cut(name, ".")
		if !ok || !identRe.MatchString(schema) || !identRe.MatchString(table) {
			errs = append(errs, fmt.Errorf("%s: table %q: want schema.table in lower case", where, name))
		}
	}
	column := func(where, name string, optional bool) {
		if (name != "" || !optional) && !identRe.MatchString(name) {
			errs = append(errs, fmt.Errorf("%s: %q: want a column name", where, name))
		}
	}
	if a := m.Accounts; a != nil {
		tableName("accounts", a.Table)
		for _, c := range []string{a.Key, a.Email} {
			column("accounts", c, false)
		}
		for _, c := range []string{a.Status, a.LastActive, a.ClosedAt} {
			column("accounts", c, true)
		}
		switch values := a.Active != "" || a.Deactivated != "" || a.Erased != ""; {
		case a.Status != "" && (a.Active == "" || a.Deactivated == "" || a.Erased == ""):
			errs = append(errs, fmt.Errorf("accounts: status %s needs its three values: active, deactivated and erased", a.Status))
		case a.Status == "" && values:
			errs = append(errs, errors.New("accounts: active, deactivated and erased are values of the status column: name it (status) or leave them out"))
		}
		if a.EraseAction != "anonymize" && a.EraseAction != "delete" {
			errs = append(errs, fmt.Errorf("accounts: erase_action %q: want anonymize or delete", a.EraseAction))
		}
		errs = append(errs, checkExclude("accounts ("+a.Table+")", a.Exclude)...)
		for _, c := range a.Clear {
			switch {
			case !identRe.MatchString(c):
				errs = append(errs, fmt.Errorf("accounts (%s): clear: %q: want a column name", a.Table, c))
			case c == a.Key || c == a.Email || c == a.Status || c == a.LastActive:
				errs = append(errs, fmt.Errorf("accounts (%s): clear: %s is managed by Lethe", a.Table, c))
			}
		}
	}
	if d := m.IDDocuments; d != nil {
		tableName("id_documents", d.Table)
		tableName("id_documents.tickets", d.Tickets)
		for _, c := range []string{d.Key, d.Ticket, d.Object, d.TicketKey, d.TicketClosed} {
			column("id_documents", c, false)
		}
		if !bucketRe.MatchString(d.Bucket) {
			errs = append(errs, fmt.Errorf("id_documents: bucket %q is not a valid bucket name", d.Bucket))
		}
	}
	seen := map[string]bool{}
	for i, t := range m.Tables {
		where := fmt.Sprintf("tables[%d]", i)
		schema, table, ok := strings.Cut(t.Name, ".")
		if !ok || !identRe.MatchString(schema) || !identRe.MatchString(table) {
			errs = append(errs, fmt.Errorf("%s: name %q: want schema.table in lower case", where, t.Name))
		}
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("%s: table %q appears twice", where, t.Name))
		}
		seen[t.Name] = true
		errs = append(errs, checkExclude(where+" ("+t.Name+")", t.Exclude)...)
	}
	// Keys and via chains, actions, anonymization, holds: see erasure.go.
	errs = append(errs, m.parseTables()...)
	errs = append(errs, m.parseBackups()...)
	for i, l := range m.S3 {
		where := fmt.Sprintf("s3[%d]", i)
		if !bucketRe.MatchString(l.Bucket) {
			errs = append(errs, fmt.Errorf("%s: bucket %q is not a valid bucket name", where, l.Bucket))
		}
		// "{user_id}/" exactly once, so one person's prefix is never the start
		// of another's ("users/1" would also match "users/10/…").
		if strings.Count(l.Prefix, "{user_id}") != 1 || !strings.Contains(l.Prefix, "{user_id}/") {
			errs = append(errs, fmt.Errorf("%s: prefix %q must contain {user_id}/ once", where, l.Prefix))
		}
		if strings.HasPrefix(l.Prefix, "/") || strings.Contains(l.Prefix, "..") || strings.Contains(l.Prefix, "{user_id}.") || strings.Contains(l.Prefix, ".{user_id}") {
			errs = append(errs, fmt.Errorf("%s: prefix %q must not start with /, contain \"..\" or put dots next to {user_id}", where, l.Prefix))
		}
		if rest := strings.ReplaceAll(l.Prefix, "{user_id}", ""); strings.ContainsAny(rest, "{}") {
			errs = append(errs, fmt.Errorf("%s: prefix %q: only {user_id} can be filled in", where, l.Prefix))
		}
		if l.Label != "" && (!plainText(l.Label, false) || utf8.RuneCountInString(l.Label) > 80) {
			errs = append(errs, fmt.Errorf("%s: label: want one line of text of at most 80 characters, such as \"your uploaded files\"", where))
		}
	}
	for i, ig := range m.Ignore {
		where := fmt.Sprintf("ignore[%d]", i)
		tableName(where, ig.Table)
		switch {
		case ig.Column != "" && !identRe.MatchString(ig.Column):
			errs = append(errs, fmt.Errorf("%s: column %q: want a lower-case column name", where, ig.Column))
		case ig.Column == "" && seen[ig.Table]:
			errs = append(errs, fmt.Errorf("%s: table %q is also in tables: map it or ignore it, not both (to leave out one column, add column:)", where, ig.Table))
		case slices.ContainsFunc(m.Ignore[:i], func(o Ignored) bool { return o.Table == ig.Table && o.Column == ig.Column }):
			errs = append(errs, fmt.Errorf("%s: table %q appears twice", where, ig.Table))
		}
		switch {
		case strings.TrimSpace(ig.Reason) != "" && plainText(ig.Reason, false):
		case ig.Column != "":
			errs = append(errs, fmt.Errorf("%s (%s.%s): reason: say in one line why the column holds no person's identifier, or why it stays", where, ig.Table, ig.Column))
		default:
			errs = append(errs, fmt.Errorf("%s (%s): reason: say in one line why the table holds nothing of a person", where, ig.Table))
		}
	}
	errs = append(errs, m.parseProcessing()...)
	errs = append(errs, m.parseDisclosure()...)
	selectorNames := map[string]bool{}
	for i, sel := range m.Selectors {
		where := fmt.Sprintf("selectors[%d]", i)
		if !identRe.MatchString(sel.Name) || selectorNames[sel.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q: want a unique lower-case name", where, sel.Name))
		}
		selectorNames[sel.Name] = true
		q := strings.ToLower(strings.TrimSpace(sel.SQL))
		if !strings.HasPrefix(q, "select") || strings.Contains(q, ";") {
			errs = append(errs, fmt.Errorf("%s (%s): sql: want one SELECT statement", where, sel.Name))
		}
		highest := 0
		for _, mm := range placeholderRe.FindAllStringSubmatch(sel.SQL, -1) {
			var n int
			fmt.Sscan(mm[1], &n)
			highest = max(highest, n)
		}
		if highest != len(sel.Params) {
			errs = append(errs, fmt.Errorf("%s (%s): the SQL uses %d parameters, params names %d", where, sel.Name, highest, len(sel.Params)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.digest = digest(b)
	return &m, nil
}

// checkExclude checks a table's exclude list: column names, each once.
func checkExclude(where string, cols []string) []error {
	var errs []error
	for i, c := range cols {
		switch {
		case !identRe.MatchString(c):
			errs = append(errs, fmt.Errorf("%s: exclude[%d] %q: want a column name", where, i, c))
		case slices.Contains(cols[:i], c):
			errs = append(errs, fmt.Errorf("%s: exclude: column %s is listed twice", where, c))
		}
	}
	return errs
}

// parseDisclosure checks the disclosure section: lists of non-empty
// entries, each once; texts without control characters other than line
// breaks and tabs; provided_by_person naming only tables and S3 locations
// of the map.
func (m *Map) parseDisclosure() []error {
	d := m.Disclosure
	if d == nil {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, list := range []struct {
		name    string
		entries []string
	}{{"purposes", d.Purposes}, {"categories", d.Categories}, {"recipients", d.Recipients}} {
		for i, e := range list.entries {
			switch {
			case strings.TrimSpace(e) == "":
				bad("disclosure.%s[%d]: empty", list.name, i)
			case !plainText(e, false):
				bad("disclosure.%s[%d]: want one line of text without control characters", list.name, i)
			case slices.Contains(list.entries[:i], e):
				bad("disclosure.%s[%d]: %q is listed twice", list.name, i, e)
			}
		}
	}
	for _, text := range []struct{ name, value string }{{"retention", d.Retention}, {"sources", d.Sources}, {"rights", d.Rights}} {
		if !plainText(text.value, true) {
			bad("disclosure.%s: want text without control characters other than line breaks and tabs", text.name)
		}
	}
	known := map[string]bool{}
	for _, t := range m.Tables {
		known[t.Name] = true
	}
	if m.Accounts != nil {
		known[m.Accounts.Table] = true
	}
	for _, l := range m.S3 {
		known[l.LocationRef()] = true
	}
	for i, ref := range d.ProvidedByPerson {
		switch {
		case !known[ref]:
			bad("disclosure.provided_by_person[%d]: %q is neither a table of the map (schema.table) nor an S3 location (s3://bucket/prefix)", i, ref)
		case slices.Contains(d.ProvidedByPerson[:i], ref):
			bad("disclosure.provided_by_person[%d]: %q is listed twice", i, ref)
		}
	}
	return errs
}

// plainText tells whether s is valid UTF-8 without control characters
// (line breaks and tabs allowed if multiline).
func plainText(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t')) {
			return false
		}
	}
	return true
}

// parseProcessing checks the processors, fields and consent sections, and
// compiles the fields' patterns.
func (m *Map) parseProcessing() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	tableOK := func(name string) bool {
		schema, table, ok := strings.Cut(name, ".")
		return ok && identRe.MatchString(schema) && identRe.MatchString(table)
	}

	procs := map[string]bool{}
	for i, p := range m.Processors {
		where := fmt.Sprintf("processors[%d]", i)
		switch {
		case !validName(p.Name):
			bad("%s: name %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", where, p.Name)
		case procs[p.Name]:
			bad("%s: processor %q appears twice", where, p.Name)
		}
		procs[p.Name] = true
		if p.Kind == "" {
			bad("%s (%s): kind is required", where, p.Name)
		}
		if p.CredentialEnv != "" && !envRe.MatchString(p.CredentialEnv) {
			bad("%s (%s): credential_env %q: want an environment variable name (A-Z, 0-9, _)", where, p.Name, p.CredentialEnv)
		}
		if p.FollowUp != "" {
			if !positivePeriod(p.FollowUp) {
				bad("%s (%s): follow_up %q: want a period such as 30d, 1mo or 20bd, longer than zero", where, p.Name, p.FollowUp)
			}
		}
		if p.RateLimit < 0 || p.RateLimit > 10000 {
			bad("%s (%s): rate_limit %g: want calls a second between 0 (the kind's default) and 10000", where, p.Name, p.RateLimit)
		}
		for _, key := range slices.Sorted(maps.Keys(p.IDs)) {
			switch {
			case !identRe.MatchString(key):
				bad("%s (%s): ids: key %q: want a lower-case identifier such as stripe_customer_id", where, p.Name, key)
			case !identRe.MatchString(p.IDs[key]):
				bad("%s (%s): ids.%s: %q: want a column of the identity table", where, p.Name, key, p.IDs[key])
			case m.Identity == nil:
				bad("%s (%s): ids need the identity section: they are columns of its table", where, p.Name)
			}
		}
	}

	// The account row's email is the accounts section's to erase: it
	// writes a placeholder there, which an anonymization of the same column
	// in tables would contradict (and the verification would then fail).
	if a := m.Accounts; a != nil && a.EraseAction != "delete" {
		for i, t := range m.Tables {
			if t.Name == a.Table && slices.ContainsFunc(t.Anonymize, func(an Anonymization) bool { return an.Column == a.Email }) {
				bad("tables[%d] (%s): anonymizes %s, the accounts section's email column, which the account's erasure replaces with a placeholder: leave that column out of anonymize", i, t.Name, a.Email)
			}
		}
	}

	// Columns Lethe itself manages are not for people to correct.
	managed := map[string]string{}
	if a := m.Accounts; a != nil {
		for _, c := range []string{a.Key, a.Status, a.LastActive, a.ClosedAt} {
			if c != "" {
				managed[a.Table+"."+c] = "accounts"
			}
		}
	}
	if id := m.Identity; id != nil {
		managed[id.Table+"."+id.Key] = "identity"
	}
	names := map[string]bool{}
	columns := map[string]string{}
	remote := map[string]string{} // processor + "\x00" + its field -> our field
	for i, f := range m.Fields {
		where := fmt.Sprintf("fields[%d]", i)
		if !identRe.MatchString(f.Name) {
			bad("%s: name %q: want a lower-case identifier such as display_name", where, f.Name)
		} else if names[f.Name] {
			bad("%s: field %q appears twice", where, f.Name)
		}
		names[f.Name] = true
		where = fmt.Sprintf("%s (%s)", where, f.Name)
		if !tableOK(f.Table) {
			bad("%s: table %q: want schema.table in lower case", where, f.Table)
		}
		if !identRe.MatchString(f.Key) {
			bad("%s: key %q: want a column name", where, f.Key)
		}
		switch {
		case !identRe.MatchString(f.Column):
			bad("%s: column %q: want a column name", where, f.Column)
		case f.Column == f.Key:
			bad("%s: column %s is the key: a user id cannot be corrected", where, f.Column)
		case managed[f.Table+"."+f.Column] != "":
			bad("%s: column %s of %s is managed by Lethe (%s)", where, f.Column, f.Table, managed[f.Table+"."+f.Column])
		case m.Consent != nil && f.Table == m.Consent.Table:
			bad("%s: table %s is the consent table: consents change through consent requests", where, f.Table)
		case columns[f.Table+"."+f.Column] != "":
			bad("%s: column %s of %s is already field %s", where, f.Column, f.Table, columns[f.Table+"."+f.Column])
		default:
			columns[f.Table+"."+f.Column] = f.Name
		}
		c := &m.Fields[i].Check
		switch c.Kind {
		case CheckText, CheckName, CheckEmail, CheckCountry, CheckPhone:
		default:
			bad("%s: check kind %q: want text, name, email, country or phone", where, c.Kind)
		}
		if c.MaxLength < 0 {
			bad("%s: check max_length %d: want 0 (no limit) or more", where, c.MaxLength)
		}
		if c.Pattern != "" {
			re, err := regexp.Compile(anchor(c.Pattern))
			if err != nil {
				bad("%s: check pattern is not a valid RE2 expression: %v", where, err)
			}
			c.re = re
		}
		for _, p := range slices.Sorted(maps.Keys(f.Processors)) {
			name := f.Processors[p]
			switch {
			case !procs[p]:
				bad("%s: processor %q is not in processors", where, p)
			case !remoteFieldRe.MatchString(name):
				bad("%s: processor %s field %q: want 1-128 characters of letters, digits, _ . - [ ]", where, p, name)
			case remote[p+"\x00"+name] != "":
				bad("%s: processor %s field %s is already field %s", where, p, name, remote[p+"\x00"+name])
			default:
				remote[p+"\x00"+name] = f.Name
			}
		}
	}

	if c := m.Consent; c != nil {
		if !tableOK(c.Table) {
			bad("consent: table %q: want schema.table in lower case", c.Table)
		}
		cols := map[string]bool{}
		for _, col := range []struct{ what, name string }{
			{"key", c.Key}, {"purpose", c.Purpose}, {"granted", c.Granted}, {"source", c.Source}, {"changed_at", c.ChangedAt},
		} {
			switch {
			case !identRe.MatchString(col.name):
				bad("consent (%s): %s %q: want a column name", c.Table, col.what, col.name)
			case cols[col.name]:
				bad("consent (%s): %s: column %s is used twice", c.Table, col.what, col.name)
			}
			cols[col.name] = true
		}
		if len(c.Purposes) == 0 {
			bad("consent (%s): purposes: want at least one", c.Table)
		}
		seen := map[string]bool{}
		for i, p := range c.Purposes {
			where := fmt.Sprintf("consent.purposes[%d]", i)
			if !identRe.MatchString(p.Name) {
				bad("%s: name %q: want a lower-case identifier such as marketing_email", where, p.Name)
			} else if seen[p.Name] {
				bad("%s: purpose %q appears twice", where, p.Name)
			}
			seen[p.Name] = true
			where = fmt.Sprintf("%s (%s)", where, p.Name)
			for j, proc := range p.Processors {
				switch {
				case !procs[proc]:
					bad("%s: processor %q is not in processors", where, proc)
				case slices.Contains(p.Processors[:j], proc):
					bad("%s: processor %q is listed twice", where, proc)
				}
			}
			if p.Deadline != "" {
				if !positivePeriod(p.Deadline) {
					bad("%s: deadline %q: want a period such as 1mo, 45d or 15bd, longer than zero", where, p.Deadline)
				}
			}
		}
	}
	return errs
}

// positivePeriod says whether s is a period domain.ParsePeriod reads
// ("1mo", "45d", "15bd") and longer than zero.
func positivePeriod(s string) bool {
	p, err := domain.ParsePeriod(s)
	return err == nil && !p.IsZero()
}

func anchor(pattern string) string { return `^(?:` + pattern + `)$` }

// CheckValue checks one corrected value of f. Its error is the reason the
// value is refused, for the person to read; it never repeats the value.
func CheckValue(f Field, value string) error {
	c := f.Check
	if !utf8.ValidString(value) {
		return errors.New("not valid text (invalid UTF-8)")
	}
	multiline := c.Kind == CheckText
	for _, r := range value {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t')) {
			return errors.New("contains a control character")
		}
	}
	if n := utf8.RuneCountInString(value); c.MaxLength > 0 && n > c.MaxLength {
		return fmt.Errorf("too long: at most %d characters", c.MaxLength)
	}
	switch c.Kind {
	case CheckText:
	case CheckName:
		if err := checkName(value); err != nil {
			return err
		}
	case CheckEmail:
		if !validEmail(value) {
			return errors.New("not a valid email address")
		}
	case CheckCountry:
		if len(value) != 2 || !strings.Contains(countryCodes, " "+value+" ") {
			return errors.New("want a country code such as DE (ISO 3166-1 alpha-2, upper case)")
		}
	case CheckPhone:
		if !phoneRe.MatchString(value) {
			return errors.New("want a phone number in international form such as +4930901820 (E.164)")
		}
	default:
		return errors.New("this field cannot be corrected (no known check)")
	}
	if c.Pattern != "" {
		re := c.re
		if re == nil { // a Field not made by Parse
			var err error
			if re, err = regexp.Compile(anchor(c.Pattern)); err != nil {
				return errors.New("this field cannot be corrected (its pattern is invalid)")
			}
		}
		if !re.MatchString(value) {
			return errors.New("not in the form this field needs")
		}
	}
	return nil
}

var phoneRe = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func checkName(v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return errors.New("must not be empty")
	case strings.TrimSpace(v) != v:
		return errors.New("must not start or end with a space")
	case !strings.ContainsFunc(v, unicode.IsLetter):
		return errors.New("want at least one letter")
	}
	for _, r := range v {
		if !(unicode.IsLetter(r) || unicode.IsMark(r) || r == ' ' || r == '\'' || r == '’' || r == '-' || r == '.') {
			return errors.New("want letters, spaces, hyphens, apostrophes and full stops only")
		}
	}
	return nil
}

// validEmail accepts a plain address (no display name, no comments) whose
// domain is a host name with at least two labels.
func validEmail(v string) bool {
	if len(v) > 254 || strings.ContainsFunc(v, unicode.IsSpace) {
		return false
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Name != "" || a.Address != v {
		return false
	}
	local, domain, ok := cutLast(v, "@")
	if !ok || local == "" || len(local) > 64 {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") ||
			strings.ContainsFunc(l, func(r rune) bool { return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-') }) {
			return false
		}
	}
	tld := labels[len(labels)-1]
	return strings.ContainsFunc(tld, unicode.IsLetter)
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// countryCodes are the officially assigned ISO 3166-1 alpha-2 codes.
const countryCodes = " " +
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ " +
	"BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
	"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ " +
	"DE DJ DK DM DO DZ " +
	"EC EE EG EH ER ES ET " +
	"FI FJ FK FM FO FR " +
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY " +
	"HK HM HN HR HT HU " +
	"ID IE IL IM IN IO IQ IR IS IT " +
	"JE JM JO JP " +
	"KE KG KH KI KM KN KP KR KW KY KZ " +
	"LA LB LC LI LK LR LS LT LU LV LY " +
	"MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ " +
	"NA NC NE NF NG NI NL NO NP NR NU NZ " +
	"OM " +
	"PA PE PF PG PH PK PL PM PN PR PS PT PW PY " +
	"QA " +
	"RE RO RS RU RW " +
	"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ " +
	"TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ " +
	"UA UG UM US UY UZ " +
	"VA VC VE VG VI VN VU " +
	"WF WS " +
	"YE YT " +
	"ZA ZM ZW "

// Identifier is the table's name, ready for safe quoting with Sanitize.
func (t Table) Identifier() pgx.Identifier {
	schema, table, _ := strings.Cut(t.Name, ".")
	return pgx.Identifier{schema, table}
}

// PrefixFor fills in the location's template for one user id. An id that
// could escape its prefix ("/", "..", empty) is refused.
func (l Location) PrefixFor(userID string) (string, error) {
	if userID == "" || strings.ContainsAny(userID, "/\\{}") || strings.Contains(userID, "..") || strings.HasPrefix(userID, ".") || strings.HasSuffix(userID, ".") {
		return "", errors.New("user id cannot be used in an object key")
	}
	prefix := strings.ReplaceAll(l.Prefix, "{user_id}", userID)
	if strings.Contains(prefix, "..") || strings.HasPrefix(prefix, "/") {
		return "", errors.New("user id cannot be used in an object key")
	}
	return prefix, nil
}

// Querier is what Validate needs of a database: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Validate checks every table and column of the map exists in the live
// database; each problem names the table or column.
func (m *Map) Validate(ctx context.Context, db Querier) error {
	rows, err := db.Query(ctx, `SELECT table_schema || '.' || table_name, column_name, is_nullable = 'YES', data_type,
			udt_name, coalesce(domain_name, '')
		FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		return fmt.Errorf("data map: read schema: %w", err)
	}
	columns := map[string]map[string]bool{}
	schema := schemaColumns{}
	for rows.Next() {
		var table, column, dataType, udt, domain string
		var nullable bool
		if err := rows.Scan(&table, &column, &nullable, &dataType, &udt, &domain); err != nil {
			return fmt.Errorf("data map: read schema: %w", err)
		}
		if columns[table] == nil {
			columns[table] = map[string]bool{}
		}
		columns[table][column] = true
		schema[table+"."+column] = columnInfo{nullable: nullable, dataType: dataType, udt: udt, domain: domain}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("data map: read schema: %w", err)
	}
	var errs []error
	if id := m.Identity; id != nil {
		cols, ok := columns[id.Table]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("data map: identity table %s does not exist in the application database", id.Table))
		case !cols[id.Key]:
			errs = append(errs, fmt.Errorf("data map: identity table %s has no column %s", id.Table, id.Key))
		case !cols[id.Email]:
			errs = append(errs, fmt.Errorf("data map: identity table %s has no column %s", id.Table, id.Email))
		}
	}
	need := func(table string, cols ...string) {
		have, ok := columns[table]
		if !ok {
			errs = append(errs, fmt.Errorf("data map: table %s does not exist in the application database", table))
			return
		}
		for _, c := range cols {
			if c != "" && !have[c] {
				errs = append(errs, fmt.Errorf("data map: table %s has no column %s", table, c))
			}
		}
	}
	if id := m.Identity; id != nil {
		for _, p := range m.Processors {
			for _, key := range slices.Sorted(maps.Keys(p.IDs)) {
				if cols, ok := columns[id.Table]; ok && !cols[p.IDs[key]] {
					errs = append(errs, fmt.Errorf("data map: processor %s: ids.%s: identity table %s has no column %s", p.Name, key, id.Table, p.IDs[key]))
				}
			}
		}
	}
	if a := m.Accounts; a != nil {
		need(a.Table, a.Key, a.Email, a.Status, a.LastActive, a.ClosedAt)
		if _, ok := columns[a.Table]; ok {
			for _, c := range a.Exclude {
				if !columns[a.Table][c] {
					errs = append(errs, fmt.Errorf("data map: accounts: table %s has no column %s (exclude)", a.Table, c))
				}
			}
			for _, c := range a.Clear {
				if !columns[a.Table][c] {
					errs = append(errs, fmt.Errorf("data map: accounts: table %s has no column %s (clear)", a.Table, c))
				}
			}
		}
	}
	if d := m.IDDocuments; d != nil {
		need(d.Table, d.Key, d.Ticket, d.Object)
		need(d.Tickets, d.TicketKey, d.TicketClosed)
	}
	for _, t := range m.Tables {
		cols, ok := columns[t.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("data map: table %s does not exist in the application database", t.Name))
			continue
		}
		errs = append(errs, m.validateTable(t, columns, schema)...)
		for _, c := range t.Exclude {
			if !cols[c] {
				errs = append(errs, fmt.Errorf("data map: table %s has no column %s (exclude)", t.Name, c))
			}
		}
	}
	for _, f := range m.Fields {
		need(f.Table, f.Key, f.Column)
	}
	if c := m.Consent; c != nil {
		before := len(errs)
		need(c.Table, c.Key, c.Purpose, c.Granted, c.Source, c.ChangedAt)
		if len(errs) == before {
			ok, err := uniqueOn(ctx, db, c.Table, c.Key, c.Purpose)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("data map: consent table %s: read its indexes: %w", c.Table, err))
			case !ok:
				errs = append(errs, fmt.Errorf("data map: consent table %s has no primary key or unique index on exactly (%s, %s)", c.Table, c.Key, c.Purpose))
			}
		}
	}
	for _, sel := range m.Selectors {
		// EXPLAIN plans the query without running it: unknown tables or
		// columns and syntax errors show here, at start.
		args := make([]any, len(sel.Params))
		rows, err := db.Query(ctx, "EXPLAIN "+sel.SQL, args...)
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("data map: selector %s does not plan: %w", sel.Name, err))
		}
	}
	return errors.Join(errs...)
}

// uniqueOn tells whether table has a unique index (or primary key) on exactly
// the given columns, in any order, with no predicate or expression: what
// INSERT … ON CONFLICT (columns) needs.
func uniqueOn(ctx context.Context, db Querier, table string, columns ...string) (bool, error) {
	schema, name, _ := strings.Cut(table, ".")
	want := slices.Clone(columns)
	slices.Sort(want)
	rows, err := db.Query(ctx, `SELECT (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
			WHERE a.attrelid = i.indrelid AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts-1]))
		FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL`, schema, name)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var cols []string
		if err := rows.Scan(&cols); err != nil {
			return false, err
		}
		if slices.Equal(cols, want) {
			found = true
		}
	}
	return found, rows.Err()
}
