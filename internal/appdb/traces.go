package appdb

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Trace is a place where one of the person's identifiers was still found
// after an erasure: the table, the column and which identifier, never its
// value.
type Trace struct {
	Table  string `json:"table"`  // schema.table
	Column string `json:"column"` // the column holding it
	What   string `json:"what"`   // "email address", "user id", "id at stripe", …
	Rows   int    `json:"rows"`
}

// Known is what else Traces looks for, beside Person's user id and
// identity values.
type Known struct {
	// Emails are the person's email addresses known outside the identity
	// table: the request's, the account row's. Searched whether or not the
	// map has an identity section.
	Emails []string
	// ProcessorIDs are the person's ids at processors, read before the
	// erasure (the data map's processors' ids), by their key.
	ProcessorIDs map[string]string
	// Searched, when set, is called after each table is searched (an
	// activity heartbeats there: a large database takes a while).
	Searched func(table string)
}

// searchableText are the column types a searched identifier can hide in.
var searchableText = []string{"text", "character varying", "character", "json", "jsonb", "citext", "ARRAY", "xml"}

// emailColumnRe names columns that hold email addresses, wherever they are.
var emailColumnRe = regexp.MustCompile(`(?i)e_?mail|mail_?addr`)

// userRefColumnRe names columns that usually refer to a person's account.
var userRefColumnRe = regexp.MustCompile(`(?i)(^|_)(user|account|customer|member|owner|author|person|profile|subscriber|client|buyer)_?id$`)

// numericTypes hold integer ids.
var numericTypes = []string{"smallint", "integer", "bigint", "numeric"}

// Traces searches the application database for the person's identifiers
// after an erasure, independently of how the data map says to find their
// rows: every email address known for them (contained anywhere in a text
// or JSON column, case-insensitively), their values of the identity
// columns tables are keyed by, their ids at processors, and their user id
// (in columns that refer to the identity table by a foreign key or whose
// name says they hold a user id, and in the key columns the map declares).
// It searches every column of every table of the map, of the identity and
// accounts tables, and the email-like and foreign-key columns of every
// other table in the same schemas. A mis-keyed table, whose erasure
// matched nothing, shows here.
//
// Rows kept on purpose are no traces: the person's rows of retain tables
// (the legal hold keeps them whole), the user id in the column by which an
// anonymize table finds the rows it keeps, and the account row's user id
// when erasure anonymizes it.
func Traces(ctx context.Context, db Querier, m *datamap.Map, person Person, known Known) ([]Trace, error) {
	if person.UserID == "" {
		return nil, fmt.Errorf("appdb: traces: an empty user id")
	}
	s, err := newSearch(ctx, db, m)
	if err != nil {
		return nil, err
	}
	sought := seek(m, person, known)
	var out []Trace
	for _, tbl := range s.cols.tables() {
		cols := s.columnsOf(tbl)
		if !cols.searched(sought) {
			continue
		}
		found, err := s.count(ctx, db, tbl, cols, sought, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
		if known.Searched != nil {
			known.Searched(tbl)
		}
	}
	return out, nil
}

// search is where Traces looks: the live columns of the application's
// schemas and which of them can hold which identifier.
type search struct {
	m               *datamap.Map
	cols            schemaColumns
	refs            map[string]bool // columns with a foreign key into the identity or accounts table
	identityKeyType string
	mapped          map[string]datamap.Table
	declaredUser    map[string]bool // schema.table.column the map says holds the user id
	whole           map[string]bool // tables every column of which is searched
}

func newSearch(ctx context.Context, db Querier, m *datamap.Map) (*search, error) {
	cols, err := liveColumns(ctx, db, m)
	if err != nil {
		return nil, err
	}
	refs, err := identityReferences(ctx, db, m)
	if err != nil {
		return nil, err
	}
	s := &search{m: m, cols: cols, refs: refs, mapped: map[string]datamap.Table{}, declaredUser: map[string]bool{}, whole: map[string]bool{}}
	if m.Identity != nil {
		s.identityKeyType = cols.typeOf(m.Identity.Table, m.Identity.Key)
		s.whole[m.Identity.Table] = true
	}
	if m.Accounts != nil {
		s.whole[m.Accounts.Table] = true
	}
	for _, t := range m.Tables {
		s.mapped[t.Name] = t
		s.whole[t.Name] = true
		if p := t.Path(); len(p) > 0 && p[len(p)-1].By == "" {
			s.declaredUser[p[len(p)-1].Table+"."+p[len(p)-1].Column] = true
		}
	}
	return s, nil
}

// labelled is one identifier searched for, with what it is.
type labelled struct{ what, value string }

// sought is one person's identifiers as Traces searches for them: email
// addresses and other values lower-cased, the user id as it is.
type sought struct {
	userID string
	person Person
	emails []string
	others []labelled
}

func seek(m *datamap.Map, person Person, known Known) sought {
	out := sought{userID: person.UserID, person: person}
	add := func(v string) {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" && !slices.Contains(out.emails, v) {
			out.emails = append(out.emails, v)
		}
	}
	emailColumn := "" // the column of Person.Identifiers holding email addresses
	if m.Identity != nil {
		emailColumn = m.Identity.Email
	} else if m.Accounts != nil {
		emailColumn = m.Accounts.Email
	}
	for _, e := range person.Identifiers[emailColumn] {
		add(e)
	}
	for _, e := range known.Emails {
		add(e)
	}
	other := func(what, v string) {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			out.others = append(out.others, labelled{what: what, value: v})
		}
	}
	for _, col := range slices.Sorted(maps.Keys(person.Identifiers)) {
		if col == emailColumn {
			continue
		}
		for _, v := range person.Identifiers[col] {
			other(col, v)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(known.ProcessorIDs)) {
		other("id at "+strings.TrimSuffix(key, "_id"), known.ProcessorIDs[key])
	}
	return out
}

// containedFrom is the length from which an identifier other than an
// email address is searched for inside a value; a shorter one must be the
// whole value.
const containedFrom = 6

// searchedColumn is one column of a table and what is searched in it.
type searchedColumn struct {
	name   string
	emails bool // email addresses, contained anywhere
	others bool // every other identifier
	userID bool // the user id, as the whole value
}

// tableColumns are the columns searched in one table.
type tableColumns struct {
	table string
	cols  []searchedColumn
	// nondeterministic: a searched column compares under a collation only
	// PostgreSQL applies (TracesOfPage then counts each person there).
	nondeterministic bool
}

// searched tells whether anything of the person is searched in the table.
func (t tableColumns) searched(p sought) bool {
	for _, c := range t.cols {
		if c.emails && len(p.emails) > 0 || c.others && len(p.others) > 0 || c.userID {
			return true
		}
	}
	return false
}

// columnsOf says which columns of tbl are searched for what. Rows kept on
// purpose are no traces: the user id in the column by which an anonymize
// table finds the rows it keeps, and the account row's user id when
// erasure anonymizes it.
func (s *search) columnsOf(tbl string) tableColumns {
	m := s.m
	exempt := map[string]bool{} // column: the user id there is kept on purpose
	if t, ok := s.mapped[tbl]; ok && t.Action == datamap.ActionAnonymize {
		// The rows stay, found by their user id column, unless that
		// column is one anonymization overwrites.
		if p := t.Path(); len(p) == 1 && p[0].By == "" && !slices.ContainsFunc(t.Anonymize, func(a datamap.Anonymization) bool { return a.Column == p[0].Column }) {
			exempt[p[0].Column] = true
		}
	}
	if a := m.Accounts; a != nil && a.Table == tbl && a.EraseAction == "anonymize" {
		exempt[a.Key] = true
	}
	if id := m.Identity; id != nil && id.Table == tbl {
		if t, ok := s.mapped[tbl]; ok && t.Action == datamap.ActionAnonymize {
			exempt[id.Key] = true
		}
		if a := m.Accounts; a != nil && a.Table == tbl && a.EraseAction == "anonymize" {
			exempt[id.Key] = true
		}
	}
	out := tableColumns{table: tbl}
	for _, c := range s.cols.of(tbl) {
		if m.IgnoresColumn(tbl, c.name) {
			// The map says this column holds no person's identifier (or
			// keeps it on purpose), with a reason.
			continue
		}
		text := slices.Contains(searchableText, c.dataType)
		holdsUserID := s.refs[tbl+"."+c.name] || s.declaredUser[tbl+"."+c.name] ||
			(m.Identity != nil && tbl == m.Identity.Table && c.name == m.Identity.Key) ||
			(m.Accounts != nil && tbl == m.Accounts.Table && c.name == m.Accounts.Key) ||
			(userRefColumnRe.MatchString(c.name) && compatibleID(c.dataType, s.identityKeyType) && !m.IgnoresTable(tbl))
		sc := searchedColumn{
			name:   c.name,
			emails: text && (s.whole[tbl] || emailColumnRe.MatchString(c.name)),
			others: text && s.whole[tbl],
			userID: holdsUserID && !exempt[c.name],
		}
		if sc.emails || sc.others || sc.userID {
			out.cols = append(out.cols, sc)
			out.nondeterministic = out.nondeterministic || c.nondeterministic
		}
	}
	return out
}

// count searches one table for one person's identifiers, in the rows at
// ctids when ctids is not nil (what a page's search found there, read in
// the same snapshot). The person's held rows of a retain table stay whole:
// only the rest is searched.
func (s *search) count(ctx context.Context, db Querier, tbl string, cols tableColumns, p sought, ctids []string) ([]Trace, error) {
	var args []any
	param := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	type check struct{ column, what, cond string }
	var checks []check
	var emailParam, uidParam string
	for _, c := range cols.cols {
		if c.emails && len(p.emails) > 0 {
			if emailParam == "" {
				patterns := make([]string, len(p.emails))
				for i, e := range p.emails {
					patterns[i] = "%" + likeEscape(e) + "%"
				}
				emailParam = param(patterns)
			}
			checks = append(checks, check{c.name, "email address", fmt.Sprintf("lower(%s::text) LIKE ANY(%s::text[])", column(0, c.name), emailParam)})
		}
		if c.others {
			for _, o := range p.others {
				if len(o.value) >= containedFrom {
					checks = append(checks, check{c.name, o.what, fmt.Sprintf("strpos(lower(%s::text), %s) > 0", column(0, c.name), param(o.value))})
				} else {
					checks = append(checks, check{c.name, o.what, fmt.Sprintf("lower(%s::text) = %s", column(0, c.name), param(o.value))})
				}
			}
		}
		if c.userID {
			if uidParam == "" {
				uidParam = param(p.userID)
			}
			checks = append(checks, check{c.name, "user id", fmt.Sprintf("%s::text = %s::text", column(0, c.name), uidParam)})
		}
	}
	if len(checks) == 0 {
		return nil, nil
	}
	where := "true"
	if t, ok := s.mapped[tbl]; ok && t.Action == datamap.ActionRetain {
		_, match, err := Match(t, len(args)+1)
		if err != nil {
			return nil, err
		}
		args = append(args, p.person.Arg(t))
		// IS NOT TRUE: a row the match cannot decide (a NULL key) is
		// not held, so it is searched.
		where = "(" + match + ") IS NOT TRUE"
	}
	if ctids != nil {
		where += fmt.Sprintf(" AND %s.ctid = ANY(%s::tid[])", alias(0), param(ctids))
	}
	counts := make([]string, len(checks))
	for i, ch := range checks {
		counts[i] = fmt.Sprintf("count(*) FILTER (WHERE %s)", ch.cond)
	}
	n := make([]int, len(checks))
	dest := make([]any, len(checks))
	for i := range n {
		dest[i] = &n[i]
	}
	sql := fmt.Sprintf("SELECT %s FROM %s AS %s WHERE %s", strings.Join(counts, ", "), table(tbl), alias(0), where)
	if err := db.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		return nil, dbError("search for the person's identifiers in", tbl, err)
	}
	var out []Trace
	for i, ch := range checks {
		if n[i] == 0 {
			continue
		}
		if k := slices.IndexFunc(out, func(t Trace) bool { return t.Column == ch.column && t.What == ch.what }); k >= 0 {
			out[k].Rows = max(out[k].Rows, n[i])
			continue
		}
		out = append(out, Trace{Table: tbl, Column: ch.column, What: ch.what, Rows: n[i]})
	}
	return out, nil
}

// likeEscape escapes LIKE's wildcards (the default escape is a backslash).
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// compatibleID tells whether a column of type colType can hold a user id of
// the identity key's type: text holds any, numbers hold numbers.
func compatibleID(colType, keyType string) bool {
	switch {
	case keyType == "":
		return false
	case colType == keyType:
		return true
	case slices.Contains(numericTypes, colType) && slices.Contains(numericTypes, keyType):
		return true
	case colType == "text" || colType == "character varying" || colType == "citext":
		return true
	}
	return false
}

type liveColumn struct {
	name, dataType string
	// nondeterministic: the column's collation compares strings other than
	// byte for byte (case- or accent-insensitive), which only PostgreSQL
	// can apply.
	nondeterministic bool
}

// schemaColumns are the live columns of the tables Traces searches, by table.
type schemaColumns map[string][]liveColumn

func (s schemaColumns) tables() []string {
	out := make([]string, 0, len(s))
	for t := range s {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (s schemaColumns) of(table string) []liveColumn { return s[table] }

func (s schemaColumns) typeOf(table, col string) string {
	for _, c := range s[table] {
		if c.name == col {
			return c.dataType
		}
	}
	return ""
}

// liveColumns reads every base table's columns in the schemas the map's
// tables (and identity and accounts tables) live in.
func liveColumns(ctx context.Context, db Querier, m *datamap.Map) (schemaColumns, error) {
	var schemas []string
	addSchema := func(qualified string) {
		if s, _, ok := strings.Cut(qualified, "."); ok && !slices.Contains(schemas, s) {
			schemas = append(schemas, s)
		}
	}
	for _, t := range m.Tables {
		addSchema(t.Name)
	}
	if m.Identity != nil {
		addSchema(m.Identity.Table)
	}
	if m.Accounts != nil {
		addSchema(m.Accounts.Table)
	}
	rows, err := db.Query(ctx, `SELECT c.table_schema || '.' || c.table_name, c.column_name,
			CASE WHEN c.data_type = 'USER-DEFINED' THEN c.udt_name ELSE c.data_type END,
			coalesce(NOT co.collisdeterministic, false)
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		LEFT JOIN pg_catalog.pg_namespace cn ON cn.nspname = c.collation_schema
		LEFT JOIN pg_catalog.pg_collation co ON co.collname = c.collation_name AND co.collnamespace = cn.oid
		WHERE c.table_schema = ANY($1) AND t.table_type = 'BASE TABLE'
		ORDER BY 1, c.ordinal_position`, schemas)
	if err != nil {
		return nil, dbError("read the columns of", strings.Join(schemas, ", "), err)
	}
	out := schemaColumns{}
	var table string
	var c liveColumn
	_, err = pgx.ForEachRow(rows, []any{&table, &c.name, &c.dataType, &c.nondeterministic}, func() error {
		out[table] = append(out[table], c)
		return nil
	})
	if err != nil {
		return nil, dbError("read the columns of", strings.Join(schemas, ", "), err)
	}
	return out, nil
}

// identityReferences are the columns (schema.table.column) with a
// one-column foreign key into the identity table's or the accounts table's
// user id column.
func identityReferences(ctx context.Context, db Querier, m *datamap.Map) (map[string]bool, error) {
	out := map[string]bool{}
	var targets [][2]string
	if id := m.Identity; id != nil {
		targets = append(targets, [2]string{id.Table, id.Key})
	}
	if a := m.Accounts; a != nil {
		targets = append(targets, [2]string{a.Table, a.Key})
	}
	for _, target := range targets {
		schema, tbl, _ := strings.Cut(target[0], ".")
		rows, err := db.Query(ctx, `SELECT cn.nspname || '.' || cl.relname, a.attname
			FROM pg_constraint k
			JOIN pg_class cl ON cl.oid = k.conrelid
			JOIN pg_namespace cn ON cn.oid = cl.relnamespace
			JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
			JOIN pg_class pt ON pt.oid = k.confrelid
			JOIN pg_namespace pn ON pn.oid = pt.relnamespace
			JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
			WHERE k.contype = 'f' AND array_length(k.conkey, 1) = 1
			  AND pn.nspname = $1 AND pt.relname = $2 AND pa.attname = $3`, schema, tbl, target[1])
		if err != nil {
			return nil, dbError("read the foreign keys into", target[0], err)
		}
		var table, col string
		_, err = pgx.ForEachRow(rows, []any{&table, &col}, func() error {
			out[table+"."+col] = true
			return nil
		})
		if err != nil {
			return nil, dbError("read the foreign keys into", target[0], err)
		}
	}
	return out, nil
}
