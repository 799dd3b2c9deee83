package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
)

// runDatamap runs `starter datamap args…` in process as main does: its
// output, its error output, and the exit code main would give.
func runDatamap(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := datamapCommand()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as the root command
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		errOut.WriteString("lethe: " + err.Error() + "\n")
		code = 1
	}
	return out.String(), errOut.String(), code
}

func TestDataMapCommandChecksAndDiscoversWithoutTemporal(t *testing.T) {
	ctx := context.Background()
	db, url := pgtest.NewPool(t)
	customers, err := shopapp.Seed(ctx, db, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LETHE_DATABASE_URL", "")
	t.Setenv("LETHE_DATA_MAP", "")
	t.Setenv("LETHE_APP_DATABASE_URL", url)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The shop's map: no problem, one summary line, exit 0 (the map from
	// LETHE_DATA_MAP, the database from LETHE_APP_DATABASE_URL).
	t.Setenv("LETHE_DATA_MAP", write("good.yaml", shopapp.DataMapYAML()))
	out, errOut, code := runDatamap(t, "check")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "good.yaml: no problems: identity shop.customers, 9 tables mapped, 1 ignored") {
		t.Fatalf("check on the shop's map: exit %d\n%s%s", code, out, errOut)
	}
	t.Setenv("LETHE_DATA_MAP", "")

	// Mis-keyed, and login events left out: both problems at once, each on
	// its own line, once; exit 1.
	bad := strings.Replace(string(shopapp.MisKeyedDataMapYAML()),
		"  - {name: shop.login_events, key: customer_id, action: delete, label: your sign-in history}\n", "", 1)
	badPath := write("bad.yaml", []byte(bad))
	out, errOut, code = runDatamap(t, "check", "--map", badPath, "--app-database", url)
	if code != 1 {
		t.Fatalf("check on a bad map: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "schema:   table shop.newsletter_signups: key address looks like an email address") || !strings.Contains(lines[0], "add `by: email`") ||
		!strings.HasPrefix(lines[1], "coverage: table shop.login_events is neither in tables nor in ignore") {
		t.Errorf("check output:\n%s", out)
	}
	if !strings.Contains(errOut, "bad.yaml: 2 problems (0 parse, 1 schema, 1 coverage)") {
		t.Errorf("check error: %s", errOut)
	}

	// Discover drafts a map; it is written once, never over a file, and
	// checks clean against the database it came from.
	draft := filepath.Join(dir, "draft.yaml")
	out, errOut, code = runDatamap(t, "discover", "--write", draft)
	if code != 0 || !strings.Contains(out, "Tables holding the person (9)") || !strings.Contains(out, "Wrote a draft data map to "+draft+": 9 tables, 1 ignored") {
		t.Fatalf("discover --write: exit %d\n%s%s", code, out, errOut)
	}
	b, err := os.ReadFile(draft)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := datamap.Parse(b); err != nil {
		t.Fatalf("the draft does not parse: %v", err)
	}
	for _, c := range customers {
		if strings.Contains(out, c.Email) || strings.Contains(string(b), c.Email) || strings.Contains(out, c.Name) {
			t.Errorf("discover printed a customer's data")
		}
	}
	if _, errOut, code = runDatamap(t, "discover", "--write", draft); code != 1 || !strings.Contains(errOut, "the file exists") {
		t.Errorf("discover over an existing file: exit %d %s", code, errOut)
	}
	if after, _ := os.ReadFile(draft); !bytes.Equal(after, b) {
		t.Error("the draft was overwritten")
	}
	out, errOut, code = runDatamap(t, "check", "--map", draft)
	if code != 0 || !strings.Contains(out, "no problems") {
		t.Errorf("check on the draft: exit %d\n%s%s", code, out, errOut)
	}

	// With a map, discover names what it leaves out.
	out, errOut, code = runDatamap(t, "discover", "--map", badPath)
	if code != 0 || !strings.Contains(out, "\nshop.login_events\n  - holds the person's rows") {
		t.Errorf("discover --map: exit %d\n%s%s", code, out, errOut)
	}

	// Without a database, a clear error.
	t.Setenv("LETHE_APP_DATABASE_URL", "")
	if _, errOut, code = runDatamap(t, "check", "--map", badPath); code != 1 || !strings.Contains(errOut, "pass --app-database URL or set LETHE_APP_DATABASE_URL") {
		t.Errorf("no database: exit %d %s", code, errOut)
	}
}
