package registry_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/worker/registry"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
)

// The compiler checks that every activity a workflow calls exists: the
// workflows name them by method (lifecycle.AppendAudit). This checks the
// rest: the struct of every method they call is registered, every
// registered activity is called, and registering them all on a worker
// neither panics on a name registered twice nor on an exported method
// that is not an activity.
func TestEveryActivityTheWorkflowsCallIsRegistered(t *testing.T) {
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("registering on a worker: %v", p)
			}
		}()
		registry.Register(worker.New(c, "registry-test", registry.WorkerOptions()), registry.Deps{})
	}()

	registered := map[string]bool{} // "Lifecycle.AppendAudit"
	acts := reflect.ValueOf(registry.NewActivities(registry.Deps{}))
	for i := range acts.NumField() {
		typ := acts.Field(i).Type()
		for m := range typ.Methods() {
			registered[typ.Elem().Name()+"."+m.Name] = true
		}
	}

	called := workflowActivityCalls(t)
	if len(called) < 30 {
		t.Fatalf("found %d activity calls in the workflows: the scan no longer sees them", len(called))
	}
	for call, where := range called {
		if !registered[call] {
			t.Errorf("%s calls activity %s, which the worker does not register", where, call)
		}
	}
	for name := range registered {
		if called[name] == "" {
			t.Errorf("the worker registers activity %s, which no workflow calls", name)
		}
	}
}

// workflowActivityCalls finds the activity methods the workflows call: the
// selectors on their package-level nil pointers to activity structs
// (var eraser *activities.Erasure; eraser.VerifyErasure), as
// "Erasure.VerifyErasure" → the first place it is called.
func workflowActivityCalls(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("../../workflows/*.go")
	if err != nil {
		t.Fatal(err)
	}
	handles := map[string]string{} // variable → struct
	var parsed []*ast.File
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				v := s.(*ast.ValueSpec)
				star, ok := v.Type.(*ast.StarExpr)
				if !ok {
					continue
				}
				if sel, ok := star.X.(*ast.SelectorExpr); ok && sel.X.(*ast.Ident).Name == "activities" {
					for _, n := range v.Names {
						handles[n.Name] = sel.Sel.Name
					}
				}
			}
		}
	}
	calls := map[string]string{}
	for _, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && handles[x.Name] != "" {
					call := handles[x.Name] + "." + sel.Sel.Name
					if calls[call] == "" {
						calls[call] = fset.Position(sel.Pos()).String()
					}
				}
			}
			return true
		})
	}
	return calls
}

// The worker binary and the production API must not carry the Temporal
// server, nor the dev stack's S3 server, processor sandboxes and other test
// fakes; workflows must not import anything that does I/O; internal/ must
// not import worker or starter.
func TestDependenciesPointOneWay(t *testing.T) {
	deps := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list", "-deps"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", args, err, out)
		}
		return strings.Fields(string(out))
	}
	for _, target := range [][]string{{"../../worker"}, {"-tags", "nodev", "../../starter"}} {
		for _, d := range deps(target...) {
			if strings.HasPrefix(d, "go.temporal.io/server") || strings.HasPrefix(d, "github.com/temporalio/ui-server") ||
				strings.HasPrefix(d, "github.com/lethe-privacy/lethe/internal/testenv") || strings.HasPrefix(d, "github.com/lethe-privacy/lethe/internal/devstack") ||
				strings.HasPrefix(d, "github.com/lethe-privacy/lethe/internal/demo") || strings.HasPrefix(d, "github.com/johannesboyne/gofakes3") {
				t.Errorf("%v links %s", target, d)
				break
			}
		}
	}
	// The SDK itself uses the network; the workflows' own imports may not,
	// nor those of the contract and the domain they are written in. The
	// workflows import package activities only to name its methods (nil
	// pointers: the workers run them, never the workflow).
	const lethe = "github.com/lethe-privacy/lethe/"
	for _, pkg := range []string{"workflows", "workflows/contract", "internal/domain"} {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "../../"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, imp := range strings.Fields(string(out)) {
			allowed := strings.HasPrefix(imp, "go.temporal.io/sdk/") || strings.HasPrefix(imp, "go.temporal.io/api/") || !strings.Contains(imp, ".") ||
				imp == lethe+"workflows/contract" || imp == lethe+"internal/domain" || pkg == "workflows" && imp == lethe+"activities"
			for _, io := range []string{"net", "os", "database", "io/fs", "math/rand", "crypto/rand", "syscall"} {
				if imp == io || strings.HasPrefix(imp, io+"/") {
					allowed = false
				}
			}
			if !allowed {
				t.Errorf("%s imports %s: workflows must do no I/O", pkg, imp)
			}
			if pkg != "workflows" && imp == "go.temporal.io/sdk/workflow" {
				t.Errorf("%s imports the SDK's workflow package: activities and the API depend on it", pkg)
			}
		}
	}
	for _, d := range deps("../../internal/...") {
		if strings.HasPrefix(d, "github.com/lethe-privacy/lethe/worker") || strings.HasPrefix(d, "github.com/lethe-privacy/lethe/starter") {
			t.Errorf("internal/ depends on %s", d)
		}
	}
}
