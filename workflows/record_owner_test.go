package workflows_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// Every workflow records and tells through record.go (record, tell), so
// that one idempotency-key scheme and one failure policy hold everywhere:
// no other file runs the audit or mail activities itself. A request's
// transitions, which write its status with the entry, go through
// untilWritten in request.go.
func TestOnlyRecordGoRunsTheAuditAndMailActivities(t *testing.T) {
	allowed := map[string]string{"AppendAudit": "record.go", "SendRequestMail": "record.go", "RecordTransition": "request.go"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if owner, ok := allowed[sel.Sel.Name]; ok && path != owner {
				t.Errorf("%s: %s runs %s itself: use record or tell (workflows/record.go)", fset.Position(sel.Pos()), path, sel.Sel.Name)
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("checked %d files: is the test running in the workflows folder?", checked)
	}
}
