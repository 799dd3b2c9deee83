package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// runIncident runs `starter incident args…` in process as main does: its
// output, its error output, and the exit code main would give.
func runIncident(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := incidentCommand()
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

// incidentEnv points the commands' configuration (the environment, as for
// the worker) at the stack of e, with the demo's data map in a file.
func incidentEnv(t *testing.T, e *e2e) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "datamap.yaml")
	if err := os.WriteFile(path, demo.DataMapYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := e.Config
	for k, v := range map[string]string{
		"LETHE_DATABASE_URL": c.DatabaseURL, "LETHE_DATA_MAP": path, "LETHE_PAYLOAD_KEYS": c.PayloadKeys,
		"LETHE_TEMPORAL_ADDRESS": c.TemporalAddress, "LETHE_TEMPORAL_NAMESPACE": c.TemporalNamespace, "LETHE_TEMPORAL_TASK_QUEUE": c.TemporalTaskQueue,
		"LETHE_TEMPORAL_TLS": "false", "LETHE_TEMPORAL_API_KEY": "", "LETHE_LOG_LEVEL": "warn",
		"LETHE_BREACH_NOTIFY_WITHIN": c.BreachNotifyWithin.String(), "LETHE_BREACH_REPORT_WITHIN": c.BreachReportWithin.String(),
		"LETHE_INCIDENT_KEEP_OPEN": c.IncidentKeepOpen.String(),
	} {
		t.Setenv(k, v)
	}
}

// A breach declared, followed, widened and closed from the command line:
// the workflow the API would start, its notices, its audit trail.
func TestIncidentCommandDeclaresFollowsAddsPeopleAndClosesABreach(t *testing.T) {
	e := newE2E(t, 6, nil)
	ctx := context.Background()
	people := demo.Accounts(6)
	// Account 6 is not among those affected at first; it is added later from a list in S3.
	if _, err := e.App.Exec(ctx, `UPDATE demo.accounts SET created_at = now() - interval '400 days' WHERE id = $1`, people[5].ID); err != nil {
		t.Fatal(err)
	}
	incidentEnv(t, e)
	var printed strings.Builder // everything the commands printed
	run := func(args ...string) (string, string, int) {
		t.Helper()
		out, errOut, code := runIncident(t, args...)
		printed.WriteString(out + errOut)
		return out, errOut, code
	}

	awareAt := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	from, to := time.Now().AddDate(0, 0, -30).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	out, errOut, code := run("declare", "--aware-at", awareAt.Format(time.RFC3339),
		"--what-happened", "A backup of the support database was readable without a password for three hours.",
		"--data-category", "email address", "--data-category", "support ticket text, with attachments",
		"--consequences", "Phishing mails are possible.", "--measures", "We closed the access and rotated every credential.",
		"--what-you-can-do", "Be wary of mails asking for your password.", "--contact", "privacy@example.com", "--records", "20",
		"--selector", "accounts_created_between", "--param", "from="+from, "--param", "to="+to)
	if code != 0 {
		t.Fatalf("declare: exit %d\n%s%s", code, out, errOut)
	}
	m := regexp.MustCompile(`^incident (inc_[a-z2-7]{16}) declared\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("declare printed no incident id:\n%s", out)
	}
	id := m[1]
	for _, line := range []string{`notify by +` + regexp.QuoteMeta(awareAt.Add(48*time.Hour).Format(time.RFC3339)) + ` \(in 4[56]h([0-9]+m)?\) +every affected person mailed`,
		`report by +` + regexp.QuoteMeta(awareAt.Add(72*time.Hour).Format(time.RFC3339)) + ` \(in (69|70)h([0-9]+m)?\) +the authority report`} {
		if !regexp.MustCompile(`(?m)^` + line + `$`).MatchString(out) {
			t.Fatalf("declare printed no line %q:\n%s", line, out)
		}
	}

	// The workflow is the API's: its input, as the worker reads it.
	d, err := e.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil || d.GetWorkflowExecutionInfo().GetType().GetName() != contract.WorkflowBreach {
		t.Fatalf("workflow %s: %v %v", id, d.GetWorkflowExecutionInfo().GetType(), err)
	}
	inc := startInput(t, e, id)
	if inc.ID != id || !inc.AwareAt.Equal(awareAt) || inc.DeclaredBy != "cli" || !inc.NotificationRequired || inc.Records != 20 ||
		!slices.Equal(inc.DataCategories, []string{"email address", "support ticket text, with attachments"}) || inc.Contact != "privacy@example.com" ||
		inc.Affected.Selector != "accounts_created_between" || !slices.Equal(inc.Affected.Params, []string{from, to}) ||
		inc.NotifyWithin != 48*time.Hour || inc.ReportWithin != 72*time.Hour || inc.KeepOpen != e.Config.IncidentKeepOpen || !slices.Equal(inc.EscalateAt, e.Config.BreachEscalateAt) {
		t.Fatalf("the workflow's input %+v", inc)
	}
	testenv.Eventually(t, 10*time.Second, "the incident in the workflow list", func() bool {
		resp, err := e.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowType = %q", contract.WorkflowBreach)})
		return err == nil && len(resp.GetExecutions()) == 1 && resp.GetExecutions()[0].GetExecution().GetWorkflowId() == id
	})
	testenv.Eventually(t, 30*time.Second, "the declaration in the audit trail, by cli", func() bool {
		return e.count(t, "SELECT count(*) FROM lethe.audit_log WHERE action = 'incident.declared' AND actor = 'cli' AND idempotency_key LIKE $1", "incident:"+id+":%") == 1
	})

	view := func() contract.IncidentView {
		var v contract.IncidentView
		resp, err := e.Temporal.QueryWorkflow(ctx, id, "", contract.QueryProgress)
		if err == nil {
			err = resp.Get(&v)
		}
		if err != nil {
			t.Fatalf("query %s: %v", id, err)
		}
		return v
	}
	waitSent := func(sent int) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%d notices sent and 2 reports more", sent), func() bool {
			v := view()
			return v.Counts.Sent == sent && v.Status == contract.IncidentNotified && len(v.Reports) >= 2
		})
	}
	waitSent(5)
	for i, p := range people {
		if got, want := len(e.SendGrid.To(p.Email)), map[bool]int{true: 1, false: 0}[i < 5]; got != want {
			t.Fatalf("%s received %d notices, want %d", p.ID, got, want)
		}
	}

	// status: human, and the API's JSON.
	out, errOut, code = run("status", id)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	for _, line := range []string{`incident +` + id, `status +notified`, `aware at +` + regexp.QuoteMeta(awareAt.Format(time.RFC3339)) + ` \(2h([0-9]+m)? ago\)`,
		`notify by +` + regexp.QuoteMeta(awareAt.Add(48*time.Hour).Format(time.RFC3339)) + ` \(in .*\)`,
		`report by +` + regexp.QuoteMeta(awareAt.Add(72*time.Hour).Format(time.RFC3339)) + ` \(in .*\)`,
		`notified at +[0-9T:Z-]+ \((now|[0-9hm]+ ago)\)`, `people +5 found, 5 sent, 0 without email, 0 failed, 0 pending`,
		`report, phase 1 +s3://` + e.Config.S3ExportBucket + `/reports/incidents/` + id + `/phase-1\.html`,
		`report, phase 2 +s3://` + e.Config.S3ExportBucket + `/reports/incidents/` + id + `/phase-2\.html`, `escalations +none`} {
		if !regexp.MustCompile(`(?m)^` + line + `$`).MatchString(out) {
			t.Errorf("status printed no line %q", line)
		}
	}
	if t.Failed() {
		t.Fatalf("status printed:\n%s", out)
	}
	out, _, code = run("status", "--json", id)
	apiCode, apiView := e.call(t, "GET", "/v1/incidents/"+id, e.Operator, "")
	var cliView map[string]any
	if err := json.Unmarshal([]byte(out), &cliView); code != 0 || err != nil || apiCode != http.StatusOK {
		t.Fatalf("status --json: exit %d, %v:\n%s", code, err, out)
	}
	if !reflect.DeepEqual(cliView, apiView) {
		t.Fatalf("status --json says\n%v\nthe API says\n%v", cliView, apiView)
	}

	// add-people: a person found later is told, and nobody twice.
	key := "incidents/" + id + "/more.txt"
	if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Config.S3ExportBucket), Key: aws.String(key),
		Body: strings.NewReader(people[5].ID + "\n" + people[0].ID + "\n")}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = run("add-people", id, "--object-key", key)
	if code != 0 || !strings.Contains(out, "incident "+id+": the people of object "+key+" are being found and told, nobody twice") {
		t.Fatalf("add-people: exit %d\n%s%s", code, out, errOut)
	}
	waitSent(6)
	for _, p := range people {
		if n := len(e.SendGrid.To(p.Email)); n != 1 {
			t.Errorf("%s received %d notices, want exactly one", p.ID, n)
		}
	}

	// close: the workflow ends, closed, and the audit trail says so.
	out, errOut, code = run("close", id)
	if code != 0 || out != "incident "+id+" closed: 6 people found, 6 notices sent\n" {
		t.Fatalf("close: exit %d\n%s%s", code, out, errOut)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var final contract.IncidentView
	if err := e.Temporal.GetWorkflow(wctx, id, "").Get(wctx, &final); err != nil || final.Status != contract.IncidentClosed || final.Counts.Sent != 6 {
		t.Fatalf("the incident ended %+v, %v", final, err)
	}
	if n := e.count(t, "SELECT count(*) FROM lethe.audit_log WHERE action = 'incident.closed' AND actor = 'cli' AND detail->>'sent' = '6' AND detail->>'found' = '6' AND idempotency_key LIKE $1", "incident:"+id+":%"); n != 1 {
		t.Fatalf("%d incident.closed audit entries by cli with the counts, want 1", n)
	}
	if out, _, code = run("status", id); code != 0 || !regexp.MustCompile(`(?m)^status +closed$`).MatchString(out) {
		t.Fatalf("status after close: exit %d\n%s", code, out)
	}

	// An ended incident, an unknown one, a policy notice: said so, exit 1.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"close", id}, "lethe: incident " + id + " has already ended: nothing to close\n"},
		{[]string{"add-people", id, "--object-key", key}, "lethe: incident " + id + " has ended and takes no more people: declare a new incident for them\n"},
		{[]string{"status", "inc_aaaaaaaaaaaaaaaa"}, "lethe: no incident has id inc_aaaaaaaaaaaaaaaa\n"},
		{[]string{"close", "inc_aaaaaaaaaaaaaaaa"}, "lethe: no incident has id inc_aaaaaaaaaaaaaaaa\n"},
		{[]string{"add-people", "inc_aaaaaaaaaaaaaaaa", "--selector", "active_accounts"}, "lethe: no incident has id inc_aaaaaaaaaaaaaaaa\n"},
	} {
		out, errOut, code := run(c.args...)
		if code != 1 || out != "" || errOut != c.want {
			t.Errorf("%v: exit %d, printed %q, said %q; want exit 1 and %q", c.args, code, out, errOut, c.want)
		}
	}
	code, body := e.call(t, "POST", "/v1/policy-notices", e.Operator, `{"title":"New policy","summary":"Shorter retention.","url":"https://example.com/p","audience":{"selector":"active_accounts"}}`)
	if code != http.StatusAccepted {
		t.Fatalf("policy notice: %d %v", code, body)
	}
	pn, _ := body["id"].(string)
	if _, errOut, code := run("status", pn); code != 1 || errOut != "lethe: "+pn+" is not an incident (a "+contract.WorkflowPolicyNotice+" workflow)\n" {
		t.Errorf("status of a policy notice: exit %d, %q", code, errOut)
	}

	// Nobody's address or user id in what the commands printed or the stack logged.
	for _, p := range people {
		for _, secret := range []string{p.ID, p.Email} {
			if strings.Contains(printed.String(), secret) || strings.Contains(e.LogOutput.String(), secret) {
				t.Errorf("%q printed or logged", secret)
			}
		}
	}
}

// startInput is the input a workflow was started with, decrypted as the
// worker does.
func startInput(t *testing.T, e *e2e, id string) contract.Incident {
	t.Helper()
	opts, err := wiring.TemporalOptions(e.Config, e.Log)
	if err != nil {
		t.Fatal(err)
	}
	it := e.Temporal.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	var inc contract.Incident
	if err := opts.DataConverter.FromPayloads(ev.GetWorkflowExecutionStartedEventAttributes().GetInput(), &inc); err != nil {
		t.Fatal(err)
	}
	return inc
}

// incidentBody is the API's JSON body for the same input as the CLI's
// flags: the test's own translation, field by field.
func incidentBody(t *testing.T, flags [][2]string) string {
	t.Helper()
	body, affected, params := map[string]any{}, map[string]any{}, map[string]string{}
	var categories []string
	for _, f := range flags {
		field := strings.ReplaceAll(strings.TrimPrefix(f[0], "--"), "-", "_")
		switch f[0] {
		case "--data-category":
			categories = append(categories, f[1])
		case "--records":
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			body[field] = n
		case "--notification-required", "--public-notice":
			body[field] = f[1] == "true"
		case "--selector", "--object-key":
			affected[field] = f[1]
		case "--param":
			k, v, _ := strings.Cut(f[1], "=")
			params[k] = v
		default:
			body[field] = f[1]
		}
	}
	if categories != nil {
		body["data_categories"] = categories
	}
	if len(params) > 0 {
		affected["params"] = params
	}
	body["affected"] = affected
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// args are the flags as the CLI takes them, each --flag=value.
func args(cmd []string, flags [][2]string) []string {
	out := slices.Clone(cmd)
	for _, f := range flags {
		out = append(out, f[0]+"="+f[1])
	}
	return out
}

// Bad input is refused by the CLI in the words of the API's 4xx for the
// same input (one check, written once), with the flags to fix, exit 1, and
// nothing started.
func TestIncidentCommandRefusesBadInputInTheAPIsWords(t *testing.T) {
	e := newE2E(t, 0, nil)
	ctx := context.Background()
	incidentEnv(t, e)
	good := [][2]string{
		{"--aware-at", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, {"--what-happened", "A laptop was stolen."},
		{"--data-category", "email address"}, {"--measures", "We wiped it remotely."}, {"--contact", "privacy@example.com"},
		{"--selector", "accounts_created_between"}, {"--param", "from=2026-01-01T00:00:00Z"}, {"--param", "to=2026-02-01T00:00:00Z"},
	}
	without := func(names ...string) [][2]string {
		return slices.DeleteFunc(slices.Clone(good), func(f [2]string) bool {
			return slices.Contains(names, f[0]) || slices.Contains(names, f[0]+" "+f[1])
		})
	}
	with := func(base [][2]string, extra ...[2]string) [][2]string { return append(slices.Clone(base), extra...) }
	for name, c := range map[string]struct {
		flags [][2]string
		fix   string // the flags the CLI names
	}{
		"no aware-at":              {without("--aware-at"), "--aware-at"},
		"aware-at to come":         {with(without("--aware-at"), [2]string{"--aware-at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}), "--aware-at"},
		"no texts":                 {without("--what-happened", "--contact"), "--what-happened, --contact"},
		"no data category":         {without("--data-category"), "--data-category"},
		"no notification, no why":  {with(good, [2]string{"--notification-required", "false"}), "--no-notification-reason"},
		"no source":                {without("--selector", "--param"), "--selector, --object-key"},
		"two sources":              {with(good, [2]string{"--object-key", "incidents/list.txt"}), "--selector, --object-key"},
		"bad object key":           {with(without("--selector", "--param"), [2]string{"--object-key", "../lethe/secrets"}), "--object-key"},
		"unknown selector":         {with(without("--selector"), [2]string{"--selector", "everyone"}), "--selector"},
		"missing param":            {without("--param to=2026-02-01T00:00:00Z"), "--param"},
		"foreign param":            {with(good, [2]string{"--param", "email=ada@example.com"}), "--param"},
		"params of a selector w/o": {with(without("--selector", "--param"), [2]string{"--selector", "active_accounts"}, [2]string{"--param", "x=1"}), "--param"},
	} {
		t.Run("declare "+name, func(t *testing.T) {
			apiCode, answer := e.call(t, "POST", "/v1/incidents", e.Operator, incidentBody(t, c.flags))
			msg, _ := answer["error"].(string)
			if apiCode != http.StatusUnprocessableEntity || msg == "" {
				t.Fatalf("the API answered %d %v, want 422", apiCode, answer)
			}
			out, errOut, code := runIncident(t, args([]string{"declare"}, c.flags)...)
			if want := "lethe: " + msg + " (fix: " + c.fix + ")\n"; code != 1 || out != "" || errOut != want {
				t.Fatalf("the CLI: exit %d, printed %q, said %q; want exit 1 and %q", code, out, errOut, want)
			}
			if strings.Contains(errOut, "ada@example.com") {
				t.Fatalf("the refusal repeats the input: %q", errOut)
			}
		})
	}

	// add-people takes the API's "affected" object: the same refusals.
	const someID = "inc_abcdefghijklmnop"
	for name, c := range map[string]struct {
		flags [][2]string
		fix   string
	}{
		"no source":        {nil, "--selector, --object-key"},
		"bad object key":   {[][2]string{{"--object-key", "a/../b"}}, "--object-key"},
		"unknown selector": {[][2]string{{"--selector", "everyone"}}, "--selector"},
		"missing param":    {[][2]string{{"--selector", "buyers_since"}}, "--param"},
	} {
		t.Run("add-people "+name, func(t *testing.T) {
			var affected map[string]any
			if err := json.Unmarshal([]byte(incidentBody(t, c.flags)), &struct{ Affected *map[string]any }{&affected}); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(affected)
			apiCode, answer := e.call(t, "POST", "/v1/incidents/"+someID+"/people", e.Operator, string(b))
			msg, _ := answer["error"].(string)
			if apiCode != http.StatusUnprocessableEntity || msg == "" {
				t.Fatalf("the API answered %d %v to %s, want 422", apiCode, answer, b)
			}
			out, errOut, code := runIncident(t, args([]string{"add-people", someID}, c.flags)...)
			if want := "lethe: " + msg + " (fix: " + c.fix + ")\n"; code != 1 || out != "" || errOut != want {
				t.Fatalf("the CLI: exit %d, printed %q, said %q; want exit 1 and %q", code, out, errOut, want)
			}
		})
	}

	// A malformed id: the API's 400, in its words.
	apiCode, answer := e.call(t, "GET", "/v1/incidents/INC-42", e.Operator, "")
	msg, _ := answer["error"].(string)
	if apiCode != http.StatusBadRequest || msg == "" {
		t.Fatalf("the API answered %d %v to a malformed id", apiCode, answer)
	}
	for _, cmd := range [][]string{{"status", "INC-42"}, {"close", "INC-42"}, {"add-people", "INC-42", "--selector", "active_accounts"}} {
		out, errOut, code := runIncident(t, cmd...)
		if want := "lethe: " + msg + ": an incident's id is inc_ and 16 letters and digits, as `incident declare` printed it\n"; code != 1 || out != "" || errOut != want {
			t.Errorf("%v: exit %d, printed %q, said %q; want %q", cmd, code, out, errOut, want)
		}
	}

	// What only flags can get wrong: said so, never a panic.
	for _, c := range []struct {
		args []string
		want string
	}{
		{args([]string{"declare"}, with(without("--aware-at"), [2]string{"--aware-at", "yesterday"})), "--aware-at: want a time with its zone (RFC 3339)"},
		{args([]string{"declare"}, with(without("--aware-at"), [2]string{"--aware-at", "2026-11-22 08:00"})), "--aware-at: want a time with its zone (RFC 3339)"},
		{args([]string{"declare"}, with(good, [2]string{"--param", "from"})), "--param: want name=value"},
		{args([]string{"declare"}, with(good, [2]string{"--param", "from=2026-03-01T00:00:00Z"})), `--param: "from" given twice`},
		{args([]string{"declare"}, with(good, [2]string{"--records", "many"})), `invalid argument "many" for "--records"`},
		{args([]string{"declare"}, with(good, [2]string{"--notification-required", "perhaps"})), `invalid argument "perhaps" for "--notification-required"`},
		{[]string{"status"}, "accepts 1 arg(s), received 0"},
		{[]string{"close", someID, "another"}, "accepts 1 arg(s), received 2"},
	} {
		out, errOut, code := runIncident(t, c.args...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "lethe: ") || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, printed %q, said %q; want exit 1 and %q", c.args, code, out, errOut, c.want)
		}
	}

	// Without a data map, a selector cannot be checked: the API's words too.
	t.Setenv("LETHE_DATA_MAP", "")
	if _, errOut, code := runIncident(t, args([]string{"declare"}, good)...); code != 1 || errOut != "lethe: selector: no data map is loaded (LETHE_DATA_MAP) (fix: --selector)\n" {
		t.Errorf("no data map: exit %d, %q", code, errOut)
	}

	// Nothing was started, by the API or the CLI.
	resp, err := e.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowType = %q", contract.WorkflowBreach)})
	if err != nil || len(resp.GetExecutions()) != 0 {
		t.Fatalf("%d incidents started after refusals (%v)", len(resp.GetExecutions()), err)
	}
}
