package appdb_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
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
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module's root is not %s: %v", root, err)
	}
	fset := token.NewFileSet()
	scanned := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			if slices.Contains(sqlOwners, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		scanned++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				s = lit.Value
			}
			if sqlStatement.MatchString(s) && !notTheApplication.MatchString(s) {
				pos := fset.Position(lit.Pos())
				t.Errorf("%s:%d: SQL on the application's tables outside internal/appdb: %q (build it in appdb, from the data map)", rel, pos.Line, firstLine(s))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 50 {
		t.Fatalf("only %d files scanned under %s: is this the module's root?", scanned, root)
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}
