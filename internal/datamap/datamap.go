// Package datamap reads the data map: the YAML file in which a company says
// where a person's data lives (tables of the application database, S3
// locations), and checks it against the live schema at start.
package datamap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"
)

// Map is a parsed data map.
type Map struct {
	Version  int        `yaml:"version"`
	Identity *Identity  `yaml:"identity"`
	Tables   []Table    `yaml:"tables"`
	S3       []Location `yaml:"s3"`
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
		if !strings.Contains(l.Prefix, "{user_id}") {
			errs = append(errs, fmt.Errorf("%s: prefix %q must contain {user_id}", where, l.Prefix))
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
	if userID == "" || strings.ContainsAny(userID, "/\\{}") || strings.Contains(userID, "..") {
		return "", errors.New("user id cannot be used in an object key")
	}
	return strings.ReplaceAll(l.Prefix, "{user_id}", userID), nil
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
