//go:build !nodev

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/workflows/contract"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/sendgridfake"
	"github.com/lethe-privacy/lethe/internal/wiring"
)

// devFixture is what one `starter dev` run needs, on free ports and fresh
// databases so tests and benchmarks never touch a developer's stack.
type devFixture struct {
	cfg config.Config
	opt devOptions
}

func newDevFixture(tb testing.TB) devFixture {
	tb.Helper()
	cfg, err := config.FromMap(map[string]string{
		"LETHE_DATABASE_URL":     pgtest.NewDatabase(tb),
		"LETHE_APP_DATABASE_URL": pgtest.NewDatabase(tb),
		"LETHE_API_LISTEN":       "127.0.0.1:0", // the listener says which port (st.apiURL)
		"LETHE_LOG_LEVEL":        "error",
		// Metrics on ports of their own, never a running dev stack's.
		"LETHE_METRICS_ADDR":     "127.0.0.1:0",
		"LETHE_API_METRICS_ADDR": "127.0.0.1:0",
	})
	if err != nil {
		tb.Fatal(err)
	}
	// Without the processor sandboxes: benchmarks measure the thin path;
	// tests of the whole demo set Sandboxes.
	return devFixture{cfg: cfg, opt: devOptions{
		Dir: tb.TempDir(), TemporalPort: freePort(tb), UIPort: freePort(tb),
		S3Addr: "127.0.0.1:0", SeedAccounts: 3, Out: io.Discard,
	}}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start starts the dev stack. The ports freePort picked are free only
// until the stack binds them: another test's server (its Temporal picks
// ports of its own) may take one in between, which the stack reports as
// taken; then the fixture picks again, twice at most.
func (f devFixture) start(tb testing.TB) *devStack {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		st, err := startDev(context.Background(), f.cfg, f.opt)
		if err == nil {
			return st
		}
		if attempt == 3 || !strings.Contains(err.Error(), "is taken") {
			tb.Fatal(err)
		}
		tb.Logf("attempt %d: %v; picking other ports", attempt, err)
		f.opt.TemporalPort, f.opt.UIPort = freePort(tb), freePort(tb)
	}
}

func httpGet(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// submitErasure posts an erasure for a demo account, as the printed command
// does, and waits until it completes.
func submitErasure(tb testing.TB, st *devStack, a demo.Account) string {
	tb.Helper()
	req, _ := http.NewRequest("POST", st.apiURL+"/v1/requests",
		strings.NewReader(fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"verified":true}`, a.ID, a.Email)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+st.backendKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	var out struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("submit: %d", resp.StatusCode)
	}
	testenv.Eventually(tb, 20*time.Second, "erasure to complete", func() bool {
		_, body := authGet(tb, st, "/v1/requests/"+out.ID)
		return strings.Contains(body, `"status":"completed"`)
	})
	return out.ID
}

func authGet(tb testing.TB, st *devStack, path string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest("GET", st.apiURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+st.operatorKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The demo as a newcomer meets it: the first erasure reaches every system,
// the processors' sandboxes included, which really lose the person; PayPal,
// which has no API, opens an operator task the privacy team resolves
// through the API; the receipt lists every processor. A restart keeps the
// workflows, and brings nobody back, in the database or in the sandboxes.
func TestDevDemoErasesAcrossTheSandboxesAndKeepsWorkflowsAcrossRestarts(t *testing.T) {
	f := newDevFixture(t)
	f.opt.Sandboxes = true
	st := f.start(t)
	if code, body := httpGet(t, st.apiURL+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, _ := httpGet(t, st.ui.URL+"/"); code != 200 {
		t.Fatalf("Temporal UI: %d", code)
	}
	person, other := demo.Accounts(2)[0], demo.Accounts(2)[1]
	stripe, mailchimp, crm := st.sandboxes.Stripe["stripe"], st.sandboxes.Mailchimp["mailchimp"], st.sandboxes.Webhook["crm"]
	if stripe == nil || mailchimp == nil || crm == nil || st.sandboxes.SendGrid["sendgrid-marketing"] == nil {
		t.Fatalf("sandboxes: %+v", st.sandboxes)
	}
	// The sandboxes hold the demo accounts: Stripe by the id the application keeps.
	if c, ok := stripe.Customer(demo.StripeCustomerID(person.ID)); !ok || c.Deleted || c.Email != person.Email {
		t.Fatalf("the Stripe sandbox lacks the demo account's customer: %+v", c)
	}
	if _, ok := mailchimp.Member("demo-newsletter", person.Email); !ok {
		t.Fatal("the Mailchimp sandbox lacks the demo account")
	}
	if _, ok := crm.Subject(person.ID); !ok {
		t.Fatal("the CRM sandbox lacks the demo account")
	}
	var welcome strings.Builder
	st.printWelcome(&welcome)
	for _, want := range []string{person.ID, "/processors/paypal/task", "stripe ", "crm ", "no API"} {
		if !strings.Contains(welcome.String(), want) {
			t.Errorf("the welcome lacks %q:\n%s", want, welcome.String())
		}
	}

	id := postRequest(t, st, fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, person.ID, person.Email))
	// PayPal's operator task opens while the other processors confirm.
	var procs map[string]any
	testenv.Eventually(t, 60*time.Second, "the paypal task, and the other processors confirmed", func() bool {
		_, body := authGet(t, st, "/v1/requests/"+id+"/erasure")
		var progress struct{ Processors map[string]any }
		_ = json.Unmarshal([]byte(body), &progress)
		procs = progress.Processors
		status := func(name string) any { v, _ := procs[name].(map[string]any); return v["status"] }
		paypal, _ := procs["paypal"].(map[string]any)
		return paypal["status"] == "needs_operator" && paypal["task"] != nil &&
			status("stripe") == "confirmed" && status("mailchimp") == "confirmed" && status("crm") == "confirmed"
	})
	if code, body := authPost(t, st, "/v1/requests/"+id+"/processors/paypal/task",
		`{"action":"done","evidence":"deleted in the PayPal dashboard, ticket 4711"}`); code != http.StatusOK {
		t.Fatalf("resolve the PayPal task: %d %s", code, body)
	}
	done := waitCompleted(t, st, id)
	outcome, _ := json.Marshal(done["outcome"])
	for _, want := range []string{"stripe: erasure confirmed", "mailchimp: erasure confirmed", "crm: erasure confirmed",
		"paypal: erased by our privacy team", "sendgrid-marketing: held nothing", "Anonymized 1 row in demo.accounts"} {
		if !strings.Contains(string(outcome), want) {
			t.Errorf("receipt %s lacks %q", outcome, want)
		}
	}
	// The sandboxes really lost the person, and only them.
	if c, ok := stripe.Customer(demo.StripeCustomerID(person.ID)); !ok || !c.Deleted {
		t.Errorf("the Stripe customer is not deleted: %+v", c)
	}
	if c, ok := stripe.Customer(demo.StripeCustomerID(other.ID)); !ok || c.Deleted {
		t.Errorf("another Stripe customer was touched: %+v", c)
	}
	if !mailchimp.Forgotten("demo-newsletter", person.Email) {
		t.Error("the Mailchimp member is not permanently deleted")
	}
	if _, ok := crm.Subject(person.ID); ok {
		t.Error("the CRM still knows the person")
	}
	// The UI lists the workflow; the codec endpoint decodes what it shows.
	if code, body := httpGet(t, st.ui.URL+"/api/v1/namespaces/default/workflows"); code != 200 || !strings.Contains(body, id) {
		t.Fatalf("UI workflow list: %d, want it to contain %s", code, id)
	}
	if code, _ := httpGet(t, st.apiURL+"/codec/decode"); code == http.StatusNotFound {
		t.Fatal("codec endpoint not mounted")
	}
	st.Stop()

	st = f.start(t)
	defer st.Stop()
	ctx := context.Background()
	c := mustTemporal(t, st)
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatalf("after a restart the workflow is gone from Temporal: %v", err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetType().GetName(); got != contract.WorkflowPrivacyRequest {
		t.Fatalf("workflow type %q", got)
	}
	if _, body := authGet(t, st, "/v1/requests/"+id); !strings.Contains(body, `"status":"completed"`) || !strings.Contains(body, `"systems"`) {
		t.Fatalf("after restart GET says %s", body)
	}
	// Seeding again on restart brings nobody back: not in the database, not in the sandboxes.
	var n int
	if err := st.app.QueryRow(ctx, "SELECT count(*) FROM demo.projects WHERE account_id = $1", person.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after restart the erased account has %d projects (%v)", n, err)
	}
	if _, ok := st.sandboxes.Stripe["stripe"].Customer(demo.StripeCustomerID(person.ID)); ok {
		t.Error("after restart the Stripe sandbox holds the erased person again")
	}
	if _, ok := st.sandboxes.Webhook["crm"].Subject(person.ID); ok {
		t.Error("after restart the CRM sandbox holds the erased person again")
	}
	if _, ok := st.sandboxes.Stripe["stripe"].Customer(demo.StripeCustomerID(other.ID)); !ok {
		t.Error("after restart the Stripe sandbox lacks the other demo accounts")
	}
}

// --seed-accounts 0 seeds nothing: no account, no file, nobody in the
// sandboxes, and the welcome says so instead of offering an erasure.
func TestDevSeedsNoAccountWithSeedAccountsZero(t *testing.T) {
	f := newDevFixture(t)
	f.opt.SeedAccounts, f.opt.Sandboxes = 0, true
	st := f.start(t)
	defer st.Stop()
	ctx := context.Background()
	var n int
	if err := st.app.QueryRow(ctx, "SELECT count(*) FROM demo.accounts").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d demo accounts (%v), want none", n, err)
	}
	objects, err := wiring.Objects(ctx, st.cfg)
	if err != nil {
		t.Fatal(err)
	}
	list, err := objects.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(demo.Bucket)})
	if err != nil || len(list.Versions)+len(list.DeleteMarkers) != 0 {
		t.Fatalf("the demo bucket holds %d objects (%v), want none", len(list.Versions), err)
	}
	if _, ok := st.sandboxes.Stripe["stripe"].Customer(demo.StripeCustomerID(demo.Accounts(1)[0].ID)); ok {
		t.Fatal("the Stripe sandbox holds a demo account")
	}
	var welcome strings.Builder
	st.printWelcome(&welcome)
	if !strings.Contains(welcome.String(), "--seed-accounts 0") || strings.Contains(welcome.String(), `"type":"erasure"`) {
		t.Fatalf("the welcome offers to erase nobody:\n%s", welcome.String())
	}
}

// postRequest submits a request as the company's backend.
func postRequest(tb testing.TB, st *devStack, body string) string {
	tb.Helper()
	code, out := devCall(tb, st, "POST", "/v1/requests", st.backendKey, body)
	var r struct{ ID string }
	_ = json.Unmarshal([]byte(out), &r)
	if code != http.StatusAccepted || r.ID == "" {
		tb.Fatalf("submit: %d %s", code, out)
	}
	return r.ID
}

func authPost(tb testing.TB, st *devStack, path, body string) (int, string) {
	tb.Helper()
	return devCall(tb, st, "POST", path, st.operatorKey, body)
}

func devCall(tb testing.TB, st *devStack, method, path, key, body string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest(method, st.apiURL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitCompleted waits for a request to complete and returns its view.
func waitCompleted(tb testing.TB, st *devStack, id string) map[string]any {
	tb.Helper()
	var view map[string]any
	testenv.Eventually(tb, 60*time.Second, "the request to complete", func() bool {
		_, body := authGet(tb, st, "/v1/requests/"+id)
		view = nil
		_ = json.Unmarshal([]byte(body), &view)
		if view["status"] == "failed" || view["status"] == "needs_attention" {
			tb.Fatalf("the request failed: %s", body)
		}
		return view["status"] == "completed"
	})
	return view
}

// BenchmarkDevStackStart measures `starter dev` from call to ready, without
// compilation: the Temporal server, UI, S3, seeding, worker and API.
func BenchmarkDevStackStart(b *testing.B) {
	for i := 0; i < b.N; i++ {
		f := newDevFixture(b)
		began := time.Now()
		st := f.start(b)
		b.ReportMetric(time.Since(began).Seconds(), "s/start")
		b.StopTimer()
		st.Stop()
		b.StartTimer()
	}
}

// BenchmarkDevErasureLatency measures the thin erasure path end to end on the
// dev stack: POST /v1/requests until GET reports it completed.
func BenchmarkDevErasureLatency(b *testing.B) {
	f := newDevFixture(b)
	f.opt.SeedAccounts = b.N + 1
	st := f.start(b)
	defer st.Stop()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		began := time.Now()
		submitErasure(b, st, demo.Accounts(b.N)[i])
		lat = append(lat, time.Since(began))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func mustTemporal(tb testing.TB, st *devStack) client.Client {
	tb.Helper()
	c, err := temporalclient.Dial(context.Background(), st.topts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// reportPercentiles reports p50 and p99 of lat in milliseconds.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkDevSubmitVerify100Clients: 100 concurrent clients each submit a
// request as a person would and verify it with the code from the mail, on
// the dev stack (mail through the SendGrid fake). It reports submit and verify
// latency and checks that every accepted request reached in_progress.
func BenchmarkDevSubmitVerify100Clients(b *testing.B) {
	const clients = 100
	sg, err := sendgridfake.Start("SG.bench")
	if err != nil {
		b.Fatal(err)
	}
	defer sg.Close()
	f := newDevFixture(b)
	f.cfg.SendGridAPIKey, f.cfg.SendGridBaseURL = "SG.bench", sg.URL()
	f.cfg.RatePerIP, f.cfg.BurstPerIP, f.cfg.RatePerSubject, f.cfg.BurstPerSubj = 1e6, 1e6, 1e6, 1e6
	st := f.start(b)
	defer st.Stop()

	var mu sync.Mutex
	var submitLat, verifyLat []time.Duration
	var accepted []string
	jobs := make(chan int)
	var wg sync.WaitGroup
	post := func(path, token, body string) (int, map[string]any, time.Duration) {
		req, _ := http.NewRequest("POST", st.apiURL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("X-Request-Token", token)
		}
		began := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Error(err)
			return 0, nil, 0
		}
		took := time.Since(began)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, took
	}
	b.ResetTimer()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				email := fmt.Sprintf("bench-%d-%d@example.com", b.N, i)
				code, out, took := post("/v1/requests", "", fmt.Sprintf(`{"type":"access","subject":{"email":%q},"jurisdiction":"gdpr"}`, email))
				if code != http.StatusAccepted {
					b.Errorf("submit: %d %v", code, out)
					continue
				}
				id, token := out["id"].(string), out["request_token"].(string)
				mails, err := sg.WaitFor(email, 2, 60*time.Second)
				if err != nil {
					b.Errorf("code mail: %v", err)
					continue
				}
				var mailed string
				for _, m := range mails {
					if strings.Contains(m.Subject, "code") || strings.Contains(m.Subject, "Code") {
						mailed = benchCodeRe.FindString(m.Text)
					}
				}
				vcode, vout, vtook := post("/v1/requests/"+id+"/verify", token, `{"code":"`+mailed+`"}`)
				if vcode != http.StatusOK {
					b.Errorf("verify: %d %v", vcode, vout)
					continue
				}
				mu.Lock()
				submitLat, verifyLat, accepted = append(submitLat, took), append(verifyLat, vtook), append(accepted, id)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	b.StopTimer()

	// No accepted request is lost: each one's workflow reached in_progress.
	lost := 0
	for _, id := range accepted {
		ok := false
		for try := 0; try < 100 && !ok; try++ {
			var status string
			_ = st.lethe.QueryRow(context.Background(), "SELECT status FROM lethe.requests WHERE id = $1", id).Scan(&status)
			ok = status == domain.StatusInProgress
			if !ok {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if !ok {
			lost++
		}
	}
	reportNamed(b, "submit", submitLat)
	reportNamed(b, "verify", verifyLat)
	b.ReportMetric(float64(len(accepted)), "accepted")
	b.ReportMetric(float64(lost), "lost")
	if lost > 0 {
		b.Errorf("%d accepted requests did not reach in_progress", lost)
	}
}

var benchCodeRe = regexp.MustCompile(`\b[0-9]{6}\b`)

func reportNamed(b *testing.B, name string, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
}

// BenchmarkSweepMillionAccounts: the inactivity sweep over 1,000,000 accounts
// of which 10,000 were warned earlier and are now due, on the dev stack. It
// reports the sweep's time, the process's peak heap (the whole dev stack:
// Temporal server, worker and API in one process, so an upper bound for the
// worker) and the longest history of the sweep's runs.
//
// The demo's four API processors (not its manual PayPal, which would open an
// operator task per person) run against the dev sandboxes, which do not
// know the swept accounts (each call answers "nothing held"), at
// LETHE_BENCH_PROCESSOR_RATE calls a second each (default 100): the
// processors' published limits would set the time instead (10,000 people
// at 5 calls a second take 2,000 s whatever the engine does).
//
// LETHE_BENCH_SWEEP_DUE sets how many of the million are due (default
// 10,000; a divisor of 1,000,000).
func BenchmarkSweepMillionAccounts(b *testing.B) {
	const total = 1_000_000
	due := 10_000
	if v := os.Getenv("LETHE_BENCH_SWEEP_DUE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || total%n != 0 {
			b.Fatalf("LETHE_BENCH_SWEEP_DUE %q: want a divisor of %d", v, total)
		}
		due = n
	}
	ctx := context.Background()
	f := newDevFixture(b)
	f.opt.SeedAccounts = 1
	f.opt.Sandboxes = true
	f.opt.SandboxRateLimit = 100
	if v := os.Getenv("LETHE_BENCH_PROCESSOR_RATE"); v != "" {
		rate, err := strconv.ParseFloat(v, 64)
		if err != nil || rate <= 0 {
			b.Fatalf("LETHE_BENCH_PROCESSOR_RATE %q: want calls a second above zero", v)
		}
		f.opt.SandboxRateLimit = rate
	}
	// LETHE_BENCH_WORKER_PROCESS=1: the worker runs as a process of its own
	// (the worker binary, configured through the environment as in
	// production), so that its peak RSS is measured apart.
	apart := os.Getenv("LETHE_BENCH_WORKER_PROCESS") == "1"
	f.opt.NoWorker = apart
	st := f.start(b)
	defer st.Stop()
	var worker *workerProcess
	if apart {
		worker = startDevWorkerProcess(b, st)
	}
	now := time.Now().UTC()
	old := now.AddDate(0, -26, 0)
	began := time.Now()
	if _, err := st.app.Exec(ctx, `INSERT INTO demo.accounts (id, email, status, last_active_at)
		SELECT 'b-' || lpad(g::text, 7, '0'), 'b' || g || '@example.com', 'active',
		       CASE WHEN g % ($1::int / $2::int) = 0 THEN $3::timestamptz ELSE $4::timestamptz - (g % 500) * interval '1 day' END
		FROM generate_series(1, $1::int) g`, total, due, old, now); err != nil {
		b.Fatal(err)
	}
	if _, err := st.app.Exec(ctx, `ANALYZE demo.accounts`); err != nil {
		b.Fatal(err)
	}
	subjects, _ := wiring.Subjects(st.cfg)
	rows := make([][]any, 0, due)
	for g := total / due; g <= total; g += total / due {
		ref := string(subjects.UserID(fmt.Sprintf("b-%07d", g)))
		rows = append(rows, []any{ref, old, now.AddDate(0, 0, -31), now.AddDate(0, 0, -1)})
	}
	if _, err := st.lethe.CopyFrom(ctx, pgx.Identifier{"lethe", "inactivity_notices"}, []string{"subject_ref", "last_active", "warned_at", "due_at"}, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d accounts (%d due) in %s", total, due, time.Since(began).Round(time.Second))
	// LETHE_BENCH_SWEEP_KNOWN=1: every due account is also a customer, a
	// member, a contact and a subject at the demo's four sandboxed
	// processors, so each processor really erases them (else they answer
	// "not found").
	known := os.Getenv("LETHE_BENCH_SWEEP_KNOWN") == "1"
	if known {
		sb := st.sandboxes
		for g := total / due; g <= total; g += total / due {
			email, user := fmt.Sprintf("b%d@example.com", g), fmt.Sprintf("b-%07d", g)
			for _, f := range sb.Stripe {
				f.AddCustomer(processorfake.StripeCustomer{Email: email})
			}
			for _, f := range sb.Mailchimp {
				f.AddMember("demo-newsletter", processorfake.MailchimpMember{Email: email})
			}
			for _, f := range sb.SendGrid {
				f.AddContact(processorfake.SendGridContact{Email: email})
			}
			for _, f := range sb.Webhook {
				f.AddSubject(processorfake.WebhookSubject{UserID: user, Email: email})
			}
		}
	}
	processorCalls := func() int {
		n := 0
		for _, f := range st.sandboxes.Stripe {
			n += len(f.Calls())
		}
		for _, f := range st.sandboxes.Mailchimp {
			n += len(f.Calls())
		}
		for _, f := range st.sandboxes.SendGrid {
			n += len(f.Calls())
		}
		for _, f := range st.sandboxes.Webhook {
			n += len(f.Calls())
		}
		return n
	}
	callsBefore := processorCalls()

	peakHeap := samplePeakHeap()
	c := mustTemporal(b, st)
	b.ResetTimer()
	began = time.Now()
	policy := contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}, WarnBefore: 30 * 24 * time.Hour}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bench-sweep", TaskQueue: st.cfg.TemporalTaskQueue}, contract.WorkflowInactiveSweep, contract.SweepInput{Policy: policy})
	if err != nil {
		b.Fatal(err)
	}
	var totals contract.SweepTotals
	if err := run.Get(ctx, &totals); err != nil {
		b.Fatal(err)
	}
	took := time.Since(began)
	b.StopTimer()
	peak := peakHeap()
	if totals.Erased != due {
		b.Fatalf("erased %d, want %d (%+v)", totals.Erased, due, totals)
	}
	// The longest history among the sweep's runs (continue-as-new keeps each short).
	longest := int64(0)
	pages := 0
	for _, q := range []string{`WorkflowId = "bench-sweep"`, fmt.Sprintf("WorkflowType = '%s'", contract.WorkflowBulkErasure)} {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetType().GetName() == contract.WorkflowBulkErasure {
				pages++
			}
			longest = max(longest, e.GetHistoryLength())
		}
	}
	b.ReportMetric(float64(processorCalls()-callsBefore), "processor-http-calls")
	if known {
		for name, f := range st.sandboxes.Stripe {
			if deleted := answered(f.CallsTo("DELETE", "/v1/customers/"), 200); deleted != due {
				b.Errorf("%s: %d customers deleted, want %d", name, deleted, due)
			}
		}
		for name, f := range st.sandboxes.SendGrid {
			for g := total / due; g <= total; g += total / due {
				if _, ok := f.ContactByEmail(fmt.Sprintf("b%d@example.com", g)); ok {
					b.Errorf("%s: a contact is left", name)
					break
				}
			}
		}
		for name, f := range st.sandboxes.Mailchimp {
			for g := total / due; g <= total; g += total / due {
				if !f.Forgotten("demo-newsletter", fmt.Sprintf("b%d@example.com", g)) {
					b.Errorf("%s: a member is left", name)
					break
				}
			}
		}
	}
	perPerson, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowType = '%s'", contract.WorkflowEraseAtProcessor)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(perPerson.GetCount()), "erase-at-processor-workflows")
	b.ReportMetric(float64(pages), "bulk-pages")
	b.ReportMetric(took.Seconds(), "s/sweep")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(peakRSSMiB(b), "peak-rss-MiB")
	if worker != nil {
		b.ReportMetric(peakRSSOfMiB(b, worker.cmd.Process.Pid), "worker-peak-rss-MiB")
	}
	b.ReportMetric(float64(longest), "max-history-events")
	b.ReportMetric(float64(totals.Runs+1), "runs")
	b.ReportMetric(float64(totals.Scanned), "scanned")
}

// startDevWorkerProcess runs the worker binary against the dev stack st
// (started with NoWorker): its databases, Temporal, S3, keys, data map and
// the sandboxes' credentials, all through the environment.
func startDevWorkerProcess(tb testing.TB, st *devStack) *workerProcess {
	tb.Helper()
	dir := tb.TempDir()
	bin := buildWorker(tb, dir)
	mapYAML, err := workerDataMap(st.dataMap)
	if err != nil {
		tb.Fatal(err)
	}
	mapFile := filepath.Join(dir, "datamap.yaml")
	if err := os.WriteFile(mapFile, mapYAML, 0o600); err != nil {
		tb.Fatal(err)
	}
	c := st.cfg
	env := append(os.Environ(),
		"LETHE_DATABASE_URL="+c.DatabaseURL, "LETHE_APP_DATABASE_URL="+c.AppDatabaseURL,
		"LETHE_TEMPORAL_ADDRESS="+c.TemporalAddress, "LETHE_TEMPORAL_NAMESPACE="+c.TemporalNamespace, "LETHE_TEMPORAL_TASK_QUEUE="+c.TemporalTaskQueue,
		"LETHE_S3_ENDPOINT="+c.S3Endpoint, "LETHE_S3_REGION="+c.S3Region, "LETHE_S3_ACCESS_KEY_ID="+c.S3AccessKeyID,
		"LETHE_S3_SECRET_ACCESS_KEY="+c.S3SecretAccessKey, "LETHE_S3_PATH_STYLE="+strconv.FormatBool(c.S3UsePathStyle), "LETHE_S3_EXPORT_BUCKET="+c.S3ExportBucket,
		"LETHE_PAYLOAD_KEYS="+c.PayloadKeys, "LETHE_MASTER_KEYS="+c.MasterKeys, "LETHE_SUBJECT_HASH_KEY="+c.SubjectHashKey,
		"LETHE_OUTBOX_DIR="+c.OutboxDir, "LETHE_DATA_MAP="+mapFile, "LETHE_METRICS_ADDR=off", "LETHE_LOG_LEVEL=info")
	if st.sandboxes != nil {
		for _, p := range st.dataMap.Processors {
			if v, ok := st.sandboxes.LookupEnv(p.CredentialEnv); ok && p.CredentialEnv != "" {
				env = append(env, p.CredentialEnv+"="+v)
			}
		}
	}
	return runWorkerProcesses(tb, bin, dir, env, 1)[0]
}

// peakRSSMiB is this process's peak resident set (VmHWM): the whole dev
// stack's, so an upper bound for the worker's.
func peakRSSMiB(tb testing.TB) float64 { return vmHWM(tb, "/proc/self/status") }

// vmHWM reads the peak resident set (VmHWM) from a /proc status file, in MiB.
func vmHWM(tb testing.TB, status string) float64 {
	b, err := os.ReadFile(status)
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				tb.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	tb.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkBreachMillion: a breach affecting 1,000,000 people on the dev
// stack, notified through the SendGrid fake: total time from declaration to
// the last notice, SendGrid calls, duplicates and misses, peak heap of the
// whole process, and the longest history among the incident's workflows.
func BenchmarkBreachMillion(b *testing.B) {
	const total = 1_000_000
	ctx := context.Background()
	sg, err := sendgridfake.Start("SG.bench")
	if err != nil {
		b.Fatal(err)
	}
	defer sg.Close()
	sg.KeepBodies(false)
	f := newDevFixture(b)
	f.opt.SeedAccounts = 1
	f.cfg.SendGridAPIKey, f.cfg.SendGridBaseURL = "SG.bench", sg.URL()
	st := f.start(b)
	defer st.Stop()
	if _, err := st.app.Exec(ctx, `INSERT INTO demo.accounts (id, email, status) SELECT 'b-' || lpad(g::text, 7, '0'), 'b' || g || '@example.com', 'active' FROM generate_series(1, $1::int) g`, total); err != nil {
		b.Fatal(err)
	}
	// Exactly a million affected: the seeded demo account is not among them.
	if _, err := st.app.Exec(ctx, `UPDATE demo.accounts SET status = 'closed' WHERE id LIKE 'u-%'; ANALYZE demo.accounts`); err != nil {
		b.Fatal(err)
	}
	peakHeap := samplePeakHeap()
	c := mustTemporal(b, st)
	b.ResetTimer()
	began := time.Now()
	inc := contract.Incident{ID: "inc_benchmarkmillion", AwareAt: began.UTC(), WhatHappened: "Benchmark.", DataCategories: []string{"email address"},
		Measures: "None.", Contact: "privacy@example.com", NotificationRequired: true, Affected: contract.AffectedSource{Selector: "active_accounts"},
		NotifyWithin: 48 * time.Hour, ReportWithin: 72 * time.Hour, EscalateAt: []float64{0.5, 0.8}, KeepOpen: time.Minute, DeclaredBy: "operator:bench"}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: inc.ID, TaskQueue: st.cfg.TemporalTaskQueue}, contract.WorkflowBreach, inc)
	if err != nil {
		b.Fatal(err)
	}
	for sg.Recipients() < total {
		time.Sleep(100 * time.Millisecond)
		if time.Since(began) > 30*time.Minute {
			b.Fatalf("only %d notices after 30 minutes", sg.Recipients())
		}
	}
	took := time.Since(began)
	b.StopTimer()
	peak := peakHeap()
	_ = c.CancelWorkflow(ctx, run.GetID(), "")
	misses, dups := 0, 0
	for i := 1; i <= total; i++ {
		switch sg.Count(fmt.Sprintf("b%d@example.com", i)) {
		case 0:
			misses++
		case 1:
		default:
			dups++
		}
	}
	longest := int64(0)
	if resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: `WorkflowId STARTS_WITH "inc_benchmarkmillion"`}); err == nil {
		for _, e := range resp.GetExecutions() {
			longest = max(longest, e.GetHistoryLength())
		}
	}
	b.ReportMetric(took.Seconds(), "s/notify")
	b.ReportMetric(float64(sg.Calls()), "sendgrid-calls")
	b.ReportMetric(float64(dups), "duplicates")
	b.ReportMetric(float64(misses), "misses")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(longest), "max-history-events")
}

// samplePeakHeap samples the heap in use until the returned function is
// called, which gives the peak in bytes.
func samplePeakHeap() func() uint64 {
	var peak uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	return func() uint64 { close(stop); <-done; return peak }
}
