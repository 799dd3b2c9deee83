package domain_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// RequestStatuses lists every Status constant of the package, once: the
// metrics' lethe_requests shows each (zeros included), and a status left
// out would be counted as "other".
func TestRequestStatusesListsEveryStatus(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "request.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	ast.Inspect(f, func(n ast.Node) bool {
		v, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range v.Names {
			if strings.HasPrefix(name.Name, "Status") && i < len(v.Values) {
				if lit, ok := v.Values[i].(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					declared = append(declared, s)
				}
			}
		}
		return true
	})
	listed := domain.RequestStatuses()
	if len(declared) < 10 {
		t.Fatalf("found %d status constants: the scan no longer sees them", len(declared))
	}
	for _, s := range declared {
		if !slices.Contains(listed, s) {
			t.Errorf("RequestStatuses lacks %q", s)
		}
	}
	if len(listed) != len(declared) {
		t.Errorf("RequestStatuses lists %d statuses, the package declares %d", len(listed), len(declared))
	}
}
