//go:build !nodev

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/devstack"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/internal/testenv/sendgridfake"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// erasureBench is the whole product on the dev stack's parts, with what an
// erasure across every system needs that `starter dev` does not have: the
// demo application's file bucket keeps versions (in-memory S3 server), and
// its three processors are healthy fakes on loopback (Stripe, Mailchimp,
// the signed webhook). The Temporal server keeps its state in a SQLite file
// as in dev; the worker is registered as in production; the API is served
// over HTTP; mail goes to the SendGrid fake; logs are formatted at info
// level and discarded.
type erasureBench struct {
	cfg       config.Config
	lethe     *pgxpool.Pool
	app       *pgxpool.Pool
	objects   *s3.Client
	deps      registry.Deps
	temporal  client.Client
	api       *httptest.Server
	http      *http.Client
	backend   string // API keys
	operator  string
	stripe    *processorfake.Stripe
	mailchimp *processorfake.Mailchimp
	crm       *processorfake.Webhook
	customers map[string]string  // user id → Stripe customer id
	env       map[string]string  // the LETHE_* settings of cfg, for worker processes
	workers   []*workerProcess   // with engine.WorkerProcesses; else the worker runs in this process
	pgStore   *devstack.Postgres // Temporal's PostgreSQL store; nil on SQLite
}

// benchMailchimpList is the Mailchimp audience the fake holds the people in.
const benchMailchimpList = "news"

// newErasureBench starts an erasureBench for tb on the dev stack's engine
// (Temporal on SQLite, the worker in this process); everything stops when tb ends.
func newErasureBench(tb testing.TB) *erasureBench {
	tb.Helper()
	return newErasureBenchOn(tb, benchEngine{})
}

// newErasureBenchOn is newErasureBench on the given engine (engine_bench_test.go).
func newErasureBenchOn(tb testing.TB, engine benchEngine) *erasureBench {
	tb.Helper()
	ctx := context.Background()
	w := &erasureBench{customers: map[string]string{}}
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))

	w.stripe, w.mailchimp, w.crm = processorfake.NewStripe(tb), processorfake.NewMailchimp(tb), processorfake.NewWebhook(tb)
	w.mailchimp.AddList(benchMailchimpList)
	tb.Setenv("LETHE_STRIPE_KEY", w.stripe.APIKey)
	tb.Setenv("LETHE_MAILCHIMP_KEY", w.mailchimp.APIKey)
	tb.Setenv("LETHE_CRM_SECRET", string(w.crm.Secret))
	sendgrid := sendgridfake.New(tb, testenv.SendGridKey)
	sendgrid.KeepBodies(false)

	s3srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s3srv.Close() })
	payloadKey, _ := codec.GenerateKey()
	masterKey, _ := codec.GenerateKey()
	hashKey, _ := codec.GenerateKey()
	w.env = map[string]string{
		"LETHE_DATABASE_URL":         pgtest.NewDatabase(tb),
		"LETHE_APP_DATABASE_URL":     pgtest.NewDatabase(tb),
		"LETHE_S3_ENDPOINT":          s3srv.URL,
		"LETHE_S3_PATH_STYLE":        "true",
		"LETHE_S3_ACCESS_KEY_ID":     s3local.AccessKeyID,
		"LETHE_S3_SECRET_ACCESS_KEY": s3local.SecretAccessKey,
		"LETHE_SENDGRID_API_KEY":     testenv.SendGridKey,
		"LETHE_SENDGRID_BASE_URL":    sendgrid.URL(),
		"LETHE_PAYLOAD_KEYS":         codec.FormatKey(payloadKey),
		"LETHE_MASTER_KEYS":          codec.FormatKey(masterKey),
		"LETHE_SUBJECT_HASH_KEY":     base64.StdEncoding.EncodeToString(hashKey.Material),
		"LETHE_OUTBOX_DIR":           tb.TempDir(),
		// A deactivated account is erased two seconds later
		// (TestOneAccountDeletionCostsTheEngine).
		"LETHE_DEACTIVATION_GRACE": "2s",
	}
	if w.cfg, err = config.FromMap(w.env); err != nil {
		tb.Fatal(err)
	}
	w.cfg.RatePerIP, w.cfg.BurstPerIP, w.cfg.RatePerSubject, w.cfg.BurstPerSubj = 1e6, 1e6, 1e6, 1e6

	// PostgreSQL: Lethe's database and the demo application's.
	if w.lethe, err = store.Open(ctx, w.cfg.DatabaseURL, false); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(w.lethe.Close)
	if w.app, err = store.Connect(ctx, w.cfg.AppDatabaseURL); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(w.app.Close)
	if err := demo.CreateSchema(ctx, w.app); err != nil {
		tb.Fatal(err)
	}

	// S3: the files bucket keeps every version; the backup location exists
	// and is empty, so each erasure's backups watch ends at its first look.
	if w.objects, err = wiring.Objects(ctx, w.cfg); err != nil {
		tb.Fatal(err)
	}
	for _, b := range []string{w.cfg.S3ExportBucket, demo.Bucket, "lethe-backups"} {
		if err := objectstore.EnsureBucket(ctx, w.objects, b); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := w.objects.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(demo.Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		tb.Fatal(err)
	}

	// The demo data map, its processors pointed at the fakes.
	m, err := demo.DataMap()
	if err != nil {
		tb.Fatal(err)
	}
	// Each at its kind's default rate (stripe 20/s, mailchimp and the
	// webhook 5/s), unless LETHE_BENCH_PROCESSOR_RATE sets one for all.
	rate := benchProcessorRate(tb)
	m.Processors = []processors.Config{
		{Name: "stripe", Kind: "stripe", BaseURL: w.stripe.URL(), CredentialEnv: "LETHE_STRIPE_KEY", RateLimit: rate},
		{Name: "mailchimp", Kind: "mailchimp", BaseURL: w.mailchimp.URL(), CredentialEnv: "LETHE_MAILCHIMP_KEY", Options: map[string]string{"list_id": benchMailchimpList}, RateLimit: rate},
		{Name: "crm", Kind: "webhook", BaseURL: w.crm.URL(), CredentialEnv: "LETHE_CRM_SECRET", RateLimit: rate},
	}
	if err := m.Validate(ctx, w.app); err != nil {
		tb.Fatal(err)
	}

	// Temporal on a SQLite file, as `starter dev` runs it, or on PostgreSQL.
	w.pgStore = engine.postgres(tb)
	temporal, err := devstack.StartTemporal(devstack.TemporalOptions{
		DatabaseFile: filepath.Join(tb.TempDir(), "temporal.db"), FrontendPort: freePort(tb),
		Namespace: w.cfg.TemporalNamespace, SearchAttributes: contract.SearchAttributes(),
		Postgres: w.pgStore, LogFile: filepath.Join(tb.TempDir(), "temporal.log"),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(temporal.Stop)
	w.cfg.TemporalAddress = temporal.Address
	topts, err := wiring.TemporalOptions(w.cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	tc, err := temporalclient.Dial(ctx, topts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(tc.Close)
	w.temporal = tc
	if err := temporalclient.EnsureSearchAttributes(ctx, tc, w.cfg.TemporalNamespace, contract.SearchAttributes()); err != nil {
		tb.Fatal(err)
	}

	// The worker, registered as in production, and the API.
	if w.deps, err = registry.NewDeps(ctx, w.cfg, w.lethe, w.app, w.objects, m, log); err != nil {
		tb.Fatal(err)
	}
	if engine.WorkerProcesses > 0 {
		w.startWorkers(tb, engine.WorkerProcesses, m)
	} else {
		wk := registry.NewWorker(tc, w.cfg.TemporalTaskQueue, registry.WorkerOptions(), w.deps)
		if err := wk.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(wk.Stop)
	}
	srv, err := newAPIServer(w.cfg, tc, w.lethe, m, log)
	if err != nil {
		tb.Fatal(err)
	}
	w.api = httptest.NewServer(srv.Handler())
	tb.Cleanup(w.api.Close)
	w.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
	if w.backend, _, err = apikeys.Create(ctx, w.lethe, "backend", apikeys.RoleBackend); err != nil {
		tb.Fatal(err)
	}
	if w.operator, _, err = apikeys.Create(ctx, w.lethe, "operator", apikeys.RoleOperator); err != nil {
		tb.Fatal(err)
	}
	return w
}

// seed creates the first n demo accounts (the rows of the demo seed in 11
// tables, filesPerProject files in each of 2 projects under
// projects/<id>/, and one ID document) and makes each a customer at
// Stripe, a member of the Mailchimp list and a subject of the CRM webhook.
// Accounts seeded before are left alone.
func (w *erasureBench) seed(tb testing.TB, n, filesPerProject int) []demo.Account {
	tb.Helper()
	ctx := context.Background()
	if err := demo.Seed(ctx, w.app, w.objects, demo.SeedOptions{Accounts: n, FilesPerProject: filesPerProject}); err != nil {
		tb.Fatal(err)
	}
	people := demo.Accounts(n)
	for _, p := range people {
		if _, ok := w.customers[p.ID]; ok {
			continue
		}
		w.customers[p.ID] = w.stripe.AddCustomer(processorfake.StripeCustomer{Email: p.Email, Name: p.Name})
		w.mailchimp.AddMember(benchMailchimpList, processorfake.MailchimpMember{Email: p.Email, Status: "subscribed"})
		w.crm.AddSubject(processorfake.WebhookSubject{UserID: p.ID, Email: p.Email})
	}
	return people
}

// submit asks the API to erase a person, as the company's backend does.
func (w *erasureBench) submit(tb testing.TB, p demo.Account) string {
	tb.Helper()
	id, err := w.trySubmit(p)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// trySubmit is submit for client goroutines, which must not stop the benchmark.
func (w *erasureBench) trySubmit(p demo.Account) (string, error) {
	code, body, err := w.call("POST", "/v1/requests", w.backend,
		fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, p.ID, p.Email))
	if err != nil {
		return "", err
	}
	if code != http.StatusAccepted {
		return "", fmt.Errorf("submit: %d %v", code, body)
	}
	return body["id"].(string), nil
}

// waitCompleted polls GET /v1/requests/{id} every 20 ms until the request
// is completed, and returns the last answer.
func (w *erasureBench) waitCompleted(tb testing.TB, id string) map[string]any {
	tb.Helper()
	var last map[string]any
	testenv.Eventually(tb, 60*time.Second, "request "+id+" to complete", func() bool {
		var err error
		if _, last, err = w.call("GET", "/v1/requests/"+id, w.operator, ""); err != nil {
			tb.Fatal(err)
		}
		if last["status"] == domain.StatusFailed || last["status"] == domain.StatusNeedsAttention {
			tb.Fatalf("request %s failed: %v", id, last)
		}
		return last["status"] == domain.StatusCompleted
	})
	return last
}

func (w *erasureBench) call(method, path, key, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, w.api.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: answer is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out, nil
}

// assertErased checks every system for each person: no row left in the
// tables the data map deletes, the account row anonymized, the purchase
// kept under its hold, no object, version or delete marker left, and each
// processor's erasure done.
func (w *erasureBench) assertErased(tb testing.TB, people []demo.Account) {
	tb.Helper()
	ctx := context.Background()
	ids := make([]string, len(people))
	for i, p := range people {
		ids[i] = p.ID
	}
	count := func(sql string) int {
		var n int
		if err := w.app.QueryRow(ctx, sql, ids).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		return n
	}
	for _, t := range w.deps.Map.Tables {
		if t.Action != datamap.ActionDelete || t.Key == "" {
			continue
		}
		if n := count(fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = ANY($1)", t.Name, t.Key)); n != 0 {
			tb.Errorf("%s: %d rows of erased people left", t.Name, n)
		}
	}
	if n := count("SELECT count(*) FROM demo.project_comments c JOIN demo.projects p ON p.id = c.project_id WHERE p.account_id = ANY($1)"); n != 0 {
		tb.Errorf("demo.project_comments: %d rows of erased people left", n)
	}
	if n := count("SELECT count(*) FROM demo.accounts WHERE id = ANY($1) AND status = 'erased' AND email LIKE 'erased+%'"); n != len(people) {
		tb.Errorf("%d of %d account rows anonymized", n, len(people))
	}
	if n := count("SELECT count(*) FROM demo.purchases WHERE account_id = ANY($1)"); n != len(people) {
		tb.Errorf("%d of %d purchases kept under the tax-law hold", n, len(people))
	}
	for _, p := range people {
		for _, prefix := range []string{"projects/", "id-documents/"} {
			if c, err := objectstore.CountPrefix(ctx, w.objects, demo.Bucket, prefix+p.ID+"/"); err != nil || c.Total() != 0 {
				tb.Errorf("%s%s: %+v left (%v)", prefix, p.ID, c, err)
			}
		}
		if c, ok := w.stripe.Customer(w.customers[p.ID]); !ok || !c.Deleted {
			tb.Errorf("stripe: customer of %s not deleted", p.ID)
		}
		if !w.mailchimp.Forgotten(benchMailchimpList, p.Email) {
			tb.Errorf("mailchimp: member %s not permanently deleted", p.ID)
		}
		if _, ok := w.crm.Subject(p.ID); ok {
			tb.Errorf("crm: subject %s still known", p.ID)
		}
	}
}

// BenchmarkErasureLatency5Tables100Objects3Processors: one erasure at a
// time through the API — POST /v1/requests as the backend (verified), then
// GET every 20 ms until completed — for a person with rows in 11 tables
// (8 deleted, the account row and reviews anonymized, the purchase held), 100 files under projects/<id>/ plus an
// ID document in a versioned bucket, and three healthy processors (Stripe,
// Mailchimp, signed webhook). Everyone is seeded before the timer starts.
func BenchmarkErasureLatency5Tables100Objects3Processors(b *testing.B) {
	w := newErasureBench(b)
	people := w.seed(b, b.N, 50) // 2 projects × 50 files
	ctx := context.Background()
	if c, err := objectstore.CountPrefix(ctx, w.objects, demo.Bucket, "projects/"+people[0].ID+"/"); err != nil || c.Versions+c.Objects != 100 {
		b.Fatalf("seed: %+v objects under projects/ (%v), want 100", c, err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for _, p := range people {
		began := time.Now()
		done := w.waitCompleted(b, w.submit(b, p))
		lat = append(lat, time.Since(began))
		b.StopTimer()
		outcome, _ := json.Marshal(done["outcome"])
		for _, want := range []string{"Deleted 100 files from lethe-app-data/projects/{user_id}/", "Kept 1 row in demo.purchases",
			"stripe: erasure confirmed", "mailchimp: erasure confirmed", "crm: erasure confirmed"} {
			if !strings.Contains(string(outcome), want) {
				b.Fatalf("receipt %s lacks %q", outcome, want)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	w.assertErased(b, people)
	reportPercentiles(b, lat)
}

// BenchmarkSustainedErasures: b.N people (the demo seed's rows in 11 tables
// and 7 files each, and the three healthy processor fakes) erased by 20
// concurrent clients, each submitting through the API and waiting for its
// request to complete before taking the next person; the wall time until
// all are complete gives erasures/s (and ns/op). Before that, as many
// other people are erased with the same concurrency by calling the
// activities' code directly, in process and in order, without Temporal and
// without the API: that gives direct-erasures/s; ratio = erasures/s ÷
// direct-erasures/s.
func BenchmarkSustainedErasures(b *testing.B) {
	const clients = 20
	w := newErasureBench(b)
	people := w.seed(b, 2*b.N, 0)
	viaTemporal, direct := people[:b.N], people[b.N:]
	ctx := context.Background()
	done := watchCompletions(b, w.lethe)
	defer done.stop()

	// Without Temporal first, so that nothing the erasures through Temporal
	// leave running (backups watches, follow-ups) competes with it.
	eraser := newDirectEraser(b, w.deps)
	began := time.Now()
	concurrently(clients, direct, func(p demo.Account) {
		if err := eraser.erase(ctx, p); err != nil {
			b.Errorf("direct erasure of %s: %v", p.ID, err)
		}
	})
	directTook := time.Since(began)

	b.ResetTimer()
	began = time.Now()
	concurrently(clients, viaTemporal, func(p demo.Account) {
		id, err := w.trySubmit(p)
		if err != nil {
			b.Error(err)
			return
		}
		select {
		case <-done.wait(id):
		case <-time.After(5 * time.Minute):
			b.Errorf("request %s not complete after 5 minutes", id)
		}
	})
	temporalTook := time.Since(began)
	b.StopTimer()

	w.assertErased(b, people)
	perSec := float64(b.N) / temporalTook.Seconds()
	directPerSec := float64(b.N) / directTook.Seconds()
	b.ReportMetric(perSec, "erasures/s")
	b.ReportMetric(directPerSec, "direct-erasures/s")
	b.ReportMetric(perSec/directPerSec, "ratio")
}

// concurrently runs do for every person, at most n at a time.
func concurrently(n int, people []demo.Account, do func(demo.Account)) {
	jobs := make(chan demo.Account)
	var wg sync.WaitGroup
	for range min(n, len(people)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				do(p)
			}
		}()
	}
	for _, p := range people {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
}

// completions tells waiters when their request is completed, by reading
// Lethe's record of requests every 20 ms in one query for all of them
// (the last step of a request writes its status there), so that waiting
// costs the stack next to nothing.
type completions struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
	stop    func() // stops watching and waits until the watcher is gone
}

func watchCompletions(tb testing.TB, db *pgxpool.Pool) *completions {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	c := &completions{waiting: map[string]chan struct{}{}, stop: func() { cancel(); <-stopped }}
	go func() {
		defer close(stopped)
		for ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			c.mu.Lock()
			ids := make([]string, 0, len(c.waiting))
			for id := range c.waiting {
				ids = append(ids, id)
			}
			c.mu.Unlock()
			if len(ids) == 0 {
				continue
			}
			rows, err := db.Query(ctx, `SELECT id, status FROM lethe.requests WHERE id = ANY($1) AND status IN ('completed', 'failed')`, ids)
			if err != nil {
				if ctx.Err() == nil {
					tb.Errorf("watch completions: %v", err)
				}
				return
			}
			for rows.Next() {
				var id, status string
				if err := rows.Scan(&id, &status); err != nil {
					if ctx.Err() == nil {
						tb.Errorf("watch completions: %v", err)
					}
					continue
				}
				if status == domain.StatusFailed || status == domain.StatusNeedsAttention {
					tb.Errorf("request %s failed", id)
				}
				c.mu.Lock()
				close(c.waiting[id])
				delete(c.waiting, id)
				c.mu.Unlock()
			}
			rows.Close()
		}
	}()
	return c
}

// wait returns a channel closed when the request id is completed.
func (c *completions) wait(id string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	c.waiting[id] = ch
	return ch
}

// directEraser erases a person by calling, in order and in process, the
// code of every activity that the PrivacyRequest workflow runs for a
// backend-verified erasure — without Temporal, its retries, its histories
// and the API. It takes the functions from the worker's own registry
// (registry.NewActivities); EraseOwnSystems heartbeats, so it runs in the
// SDK's test activity environment. What outlives a request (the backups
// watch, processor follow-ups, hold releases) is left out.
type directEraser struct {
	deps           registry.Deps
	seq            sync.Mutex
	n              int
	recordStep     func(context.Context, contract.TransitionInput) error
	sendMail       func(context.Context, contract.SendMailInput) error
	plan           func(context.Context, contract.ErasureInput) (contract.ErasurePlan, error)
	eraseOwn       func(context.Context, contract.EraseOwnSystemsInput) (contract.EraseOwnSystemsResult, error)
	eraseProcessor func(context.Context, contract.ProcessorCallInput) (contract.ProcessorCall, error)
	audit          func(context.Context, contract.AuditInput) error
	shred          func(context.Context, string) error
}

func newDirectEraser(tb testing.TB, deps registry.Deps) *directEraser {
	tb.Helper()
	acts := registry.NewActivities(deps)
	return &directEraser{
		deps:           deps,
		recordStep:     acts.Lifecycle.RecordTransition,
		sendMail:       acts.Lifecycle.SendRequestMail,
		plan:           acts.Erasure.PlanAndRecordErasure,
		eraseOwn:       inActivityContext(acts.Erasure.EraseOwnSystems),
		eraseProcessor: acts.ProcessorErasure.EraseAtProcessor,
		audit:          acts.Lifecycle.AppendAudit,
		shred:          acts.Lifecycle.ShredSubject,
	}
}

// inActivityContext runs an activity function that heartbeats (and so
// needs an activity context) through the SDK's test activity environment,
// one per call, without Temporal.
func inActivityContext[In, Out any](fn func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	return func(_ context.Context, in In) (Out, error) {
		var out Out
		suite := &testsuite.WorkflowTestSuite{}
		suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
		env := suite.NewTestActivityEnvironment()
		env.RegisterActivity(fn)
		v, err := env.ExecuteActivity(fn, in)
		if err != nil {
			return out, err
		}
		return out, v.Get(&out)
	}
}

// erase runs one person's erasure: what the API does to accept it (seal
// the identity under the person's reference), then the request's steps
// and the erasure's, one after the other.
func (d *directEraser) erase(ctx context.Context, p demo.Account) error {
	d.seq.Lock()
	d.n++
	requestID := fmt.Sprintf("req_direct%06d", d.n)
	d.seq.Unlock()
	ref := string(d.deps.Subjects.UserID(p.ID))
	sealed, err := person.Seal(ctx, d.deps.Keys, ref, person.Identity{Email: p.Email, UserID: p.ID})
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	received := time.Now().UTC()
	due := received.AddDate(0, 1, 0)
	seq := 0
	step := func(status, actor, action string) error {
		seq++
		return d.recordStep(ctx, contract.TransitionInput{RequestID: requestID, Type: domain.TypeErasure, SubjectRef: ref, Jurisdiction: "gdpr",
			Status: status, ReceivedAt: received, DueAt: due, Actor: actor, Action: action, Seq: seq})
	}
	mail := func(template string, lines []string) error {
		return d.sendMail(ctx, contract.SendMailInput{RequestID: requestID, SubjectRef: ref, Identity: sealed, Template: template,
			Key: requestID + ":" + template + ":0", Data: contract.MailData{RequestType: domain.TypeErasure, Jurisdiction: "gdpr", DueDate: due, Lines: lines}})
	}

	// The request: received, receipt mailed, verified by the backend, in progress.
	if err := step(domain.StatusReceived, "backend:bench", "request.received"); err != nil {
		return err
	}
	if err := mail(contract.MailReceipt, nil); err != nil {
		return err
	}
	if err := step(domain.StatusVerified, "backend:bench", "request.verified"); err != nil {
		return err
	}
	if err := step(domain.StatusInProgress, "system", "request.in_progress"); err != nil {
		return err
	}

	// The erasure: plan and ledger, the database and S3 erased and
	// verified, every processor, receipt.
	plan, err := d.plan(ctx, contract.ErasureInput{RequestID: requestID, SubjectRef: ref, Identity: sealed, Jurisdiction: "gdpr"})
	if err != nil || !plan.Found {
		return fmt.Errorf("plan (found %v): %w", plan.Found, err)
	}
	receipt := contract.Receipt{RequestID: requestID, MapDigest: plan.MapDigest}
	own, err := d.eraseOwn(ctx, contract.EraseOwnSystemsInput{RequestID: requestID, SubjectRef: ref, Identity: plan.Identity})
	if err != nil {
		return err
	}
	if len(own.Leftovers) > 0 {
		return fmt.Errorf("left: %v", own.Leftovers)
	}
	for _, t := range own.Tables.Tables {
		receipt.Entries = append(receipt.Entries, contract.ReceiptEntry{System: contract.SystemPostgres, Name: t.Table, Action: t.Action, Count: t.Rows, Basis: t.Reason, Until: t.Until})
	}
	for _, o := range own.Objects {
		receipt.Entries = append(receipt.Entries, contract.ReceiptEntry{System: contract.SystemS3, Name: o.Location, Action: "deleted", Count: o.Objects})
	}
	for _, proc := range plan.Processors {
		call, err := d.eraseProcessor(ctx, contract.ProcessorCallInput{RequestID: requestID, SubjectRef: ref, Identity: plan.Identity, Processor: proc.Name})
		if err != nil {
			return err
		}
		if call.Status != contract.ProcessorCallDone && call.Status != contract.ProcessorCallGone {
			return fmt.Errorf("%s answered %s", proc.Name, call.Status)
		}
		receipt.Entries = append(receipt.Entries, contract.ReceiptEntry{System: contract.SystemProcessor, Name: proc.Name, Action: contract.ProcessorConfirmed})
	}
	receipt.CompletedAt = time.Now().UTC()
	if err := d.audit(ctx, contract.AuditInput{RequestID: requestID, SubjectRef: ref, Actor: "system", Action: "erasure.receipt",
		Detail: receipt.AuditDetail(), Key: requestID + ":erasure.receipt"}); err != nil {
		return err
	}

	// The request closes: completion mail with the receipt, key shredded, completed.
	if err := mail(contract.MailCompleted, receipt.Lines()); err != nil {
		return err
	}
	if err := d.shred(ctx, ref); err != nil {
		return err
	}
	return step(domain.StatusCompleted, "system", "request.completed")
}

// benchProcessorRate is LETHE_BENCH_PROCESSOR_RATE, the calls a second
// the benchmarks' data map allows each processor fake (0, the default:
// each kind's published default). The processors' rates bound a stream of
// erasures by design (the slowest at 5/s); the fakes answer at once, so a
// higher rate measures what the engine sustains, as a company whose
// contracts allow more would set rate_limit.
func benchProcessorRate(tb testing.TB) float64 {
	v := os.Getenv("LETHE_BENCH_PROCESSOR_RATE")
	if v == "" {
		return 0
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r < 0 || r > 10000 {
		tb.Fatalf("LETHE_BENCH_PROCESSOR_RATE=%q: want calls a second, 0 to 10000", v)
	}
	return r
}
