package appdb_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/testenv/gosource"
)

// sqlStatement matches a string literal that builds a statement on tables:
// a SELECT with a FROM, an UPDATE … SET, a DELETE FROM, an INSERT INTO, or
// a fragment naming its table through a format verb (" FROM %s", " JOIN %s").
var sqlStatement = regexp.MustCompile(`\bSELECT\b[\s\S]*\bFROM\b|\bUPDATE\s+\S+\s+SET\b|\bDELETE\s+FROM\b|\bINSERT\s+INTO\b|\b(FROM|JOIN|INTO|UPDATE)\s+%`)

// notTheApplication marks a statement on Lethe's own tables or on
// PostgreSQL's catalog, not on the application's.
var notTheApplication = regexp.MustCompile(`\blethe\.|\binformation_schema\.|\bpg_[a-z_]+`)

// sqlOwners are the folders allowed to hold SQL on the application's
// tables, from the module's root: this package, which builds it from the
// data map; the data map's validation, which checks the map's selectors
// against the schema; the fakes of the tests and the seeds of the demo and
// the development stack, which create the application's tables.
var sqlOwners = []string{
	"internal/appdb",
	"internal/datamap",
	"internal/testenv",
	"internal/demo",
	"internal/devstack",
}

// TestOnlyAppdbBuildsSQLOnTheApplicationsTables keeps one package building
// the statements on the company's application database: a string literal
// outside sqlOwners that builds a SELECT, UPDATE, DELETE or INSERT on a
// table that is neither Lethe's own (lethe.*) nor PostgreSQL's catalog
// fails it, naming the file and line. Test files are not looked at.
func TestOnlyAppdbBuildsSQLOnTheApplicationsTables(t *testing.T) {
	skip := func(dir string) bool { return slices.Contains(sqlOwners, dir) }
	gosource.StringLiterals(t, skip, func(l gosource.Literal) {
		if sqlStatement.MatchString(l.Value) && !notTheApplication.MatchString(l.Value) {
			t.Errorf("%s:%d: SQL on the application's tables outside internal/appdb: %q (build it in appdb, from the data map)", l.File, l.Line, firstLine(l.Value))
		}
	})
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}
