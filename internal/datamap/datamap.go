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
	"os"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"
)

// Map is a parsed data map.
type Map struct {
	Version     int          `yaml:"version"`
	Identity    *Identity    `yaml:"identity"`
	Accounts    *Accounts    `yaml:"accounts"`
	IDDocuments *IDDocuments `yaml:"id_documents"`
	Tables      []Table      `yaml:"tables"`
	S3          []Location   `yaml:"s3"`
}

// Accounts says how the application keeps its accounts' life: the status
// column Lethe flips on deactivation and restore, the last-activity column
// the inactivity sweep reads, and what erasure does to the account row itself.
type Accounts struct {
	Table       string `yaml:"table"`        // schema.table
	Key         string `yaml:"key"`          // the user id column
	Email       string `yaml:"email"`        // the email column
	Status      string `yaml:"status"`       // the status column
	Active      string `yaml:"active"`       // its value for an active account
	Deactivated string `yaml:"deactivated"`  // its value while a deactivation's grace period runs
	Erased      string `yaml:"erased"`       // its value once the account is anonymized
	LastActive  string `yaml:"last_active"`  // timestamp of the last activity
	ClosedAt    string `yaml:"closed_at"`    // optional: when the account was closed
	EraseAction string `yaml:"erase_action"` // "anonymize" (keep the row, clear the email) or "delete"
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
	ActionDelete = "delete"
)

// Table is one table holding a person's rows, found by Key = the user id.
type Table struct {
	Name   string `yaml:"name"`   // schema.table
	Key    string `yaml:"key"`    // column holding the company's user id
	Action string `yaml:"action"` // delete
}

// Location is an S3 prefix holding a person's objects; Prefix is a template
// such as "projects/{user_id}/".
type Location struct {
	Bucket string `yaml:"bucket"`
	Prefix string `yaml:"prefix"`
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

var (
	identRe  = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
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
		for _, c := range []string{a.Key, a.Email, a.Status, a.LastActive} {
			column("accounts", c, false)
		}
		column("accounts", a.ClosedAt, true)
		if a.Active == "" || a.Deactivated == "" || a.Erased == "" {
			errs = append(errs, errors.New("accounts: active, deactivated and erased status values are required"))
		}
		if a.EraseAction != "anonymize" && a.EraseAction != "delete" {
			errs = append(errs, fmt.Errorf("accounts: erase_action %q: want anonymize or delete", a.EraseAction))
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
		if !identRe.MatchString(t.Key) {
			errs = append(errs, fmt.Errorf("%s (%s): key %q: want a column name", where, t.Name, t.Key))
		}
		if t.Action != ActionDelete {
			errs = append(errs, fmt.Errorf("%s (%s): action %q: want %q", where, t.Name, t.Action, ActionDelete))
		}
	}
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
			errs = append(errs, fmt.Errorf("%s: prefix %q must not start with / or put dots next to {user_id} or contain ..", where, l.Prefix))
		}
		if rest := strings.ReplaceAll(l.Prefix, "{user_id}", ""); strings.ContainsAny(rest, "{}") {
			errs = append(errs, fmt.Errorf("%s: prefix %q: only {user_id} can be filled in", where, l.Prefix))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &m, nil
}

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
	rows, err := db.Query(ctx, `SELECT table_schema || '.' || table_name, column_name
		FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		return fmt.Errorf("data map: read schema: %w", err)
	}
	columns := map[string]map[string]bool{}
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			return fmt.Errorf("data map: read schema: %w", err)
		}
		if columns[table] == nil {
			columns[table] = map[string]bool{}
		}
		columns[table][column] = true
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
	if a := m.Accounts; a != nil {
		need(a.Table, a.Key, a.Email, a.Status, a.LastActive, a.ClosedAt)
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
		if !cols[t.Key] {
			errs = append(errs, fmt.Errorf("data map: table %s has no column %s", t.Name, t.Key))
		}
	}
	return errors.Join(errs...)
}
