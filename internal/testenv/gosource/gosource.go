// Package gosource reads the module's own Go source for tests that keep a
// rule of the code base: which package may write SQL on which tables.
package gosource

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Literal is one string literal of a non-test Go file.
type Literal struct {
	File  string // from the module's root, with forward slashes
	Dir   string // File's folder: the package, e.g. internal/store
	Line  int
	Value string // unquoted
}

// ModuleRoot is the folder of go.mod, found upwards from the test's folder.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("gosource: no go.mod above the test's folder")
		}
		dir = parent
	}
}

// StringLiterals calls fn for every string literal of every non-test Go
// file of the module, skipping hidden folders, testdata, vendor and the
// folders skip reports (by their path from the root), and returns how many
// files it read. Comments are not literals.
func StringLiterals(t testing.TB, skip func(dir string) bool, fn func(Literal)) int {
	t.Helper()
	root := ModuleRoot(t)
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
			if rel != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || (skip != nil && skip(rel))) {
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
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				s = lit.Value
			}
			fn(Literal{File: rel, Dir: filepath.ToSlash(filepath.Dir(rel)), Line: fset.Position(lit.Pos()).Line, Value: s})
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("gosource: only %d files read under %s: is this the module's root?", files, root)
	}
	return files
}
