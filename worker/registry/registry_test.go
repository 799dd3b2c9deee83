package registry_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows"
)

func TestEveryActivityTheWorkflowsCallIsRegistered(t *testing.T) {
	acts := registry.Activities(registry.Deps{})
	for _, name := range workflows.ActivityNames() {
		if acts[name] == nil {
			t.Errorf("workflows call activity %q, which the worker does not register", name)
		}
	}
	if len(acts) != len(workflows.ActivityNames()) {
		t.Errorf("registered %d activities, the contract names %d", len(acts), len(workflows.ActivityNames()))
	}
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
	// nor those of the contract and the domain they are written in.
	const lethe = "github.com/lethe-privacy/lethe/"
	for _, pkg := range []string{"workflows", "workflows/contract", "internal/domain"} {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "../../"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, imp := range strings.Fields(string(out)) {
			allowed := strings.HasPrefix(imp, "go.temporal.io/sdk/") || strings.HasPrefix(imp, "go.temporal.io/api/") || !strings.Contains(imp, ".") ||
				imp == lethe+"workflows/contract" || imp == lethe+"internal/domain"
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
