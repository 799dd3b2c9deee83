//go:build !nodev

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"gopkg.in/yaml.v3"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/devstack"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// benchEngine is the Temporal an erasureBench runs on, and where its worker runs.
type benchEngine struct {
	// PostgresShards > 0 puts Temporal on PostgreSQL (the production
	// compose file's persistence) with that many history shards, in two
	// fresh databases dropped when the test ends; 0 keeps the dev stack's
	// SQLite file.
	PostgresShards int
	// WorkerProcesses > 0 runs that many processes of the worker binary
	// (./worker, built for the test) instead of the worker in the test's
	// process.
	WorkerProcesses int
}

func (e benchEngine) String() string {
	s := "sqlite"
	if e.PostgresShards > 0 {
		s = fmt.Sprintf("postgres-%dshards", e.PostgresShards)
	}
	if e.WorkerProcesses == 0 {
		return s + "/worker-in-process"
	}
	return fmt.Sprintf("%s/%d-worker-processes", s, e.WorkerProcesses)
}

// postgres gives the engine's PostgreSQL store on the tests' server
// (pgtest.ServerURL), nil for SQLite. Its databases are new and dropped
// when tb ends, after the server has stopped.
func (e benchEngine) postgres(tb testing.TB) *devstack.Postgres {
	tb.Helper()
	if e.PostgresShards == 0 {
		return nil
	}
	p, err := devstack.ParsePostgresURL(pgtest.ServerURL(), e.PostgresShards)
	if err != nil {
		tb.Fatalf("LETHE_TEST_DATABASE_URL: %v", err)
	}
	p.AdminDatabase = p.Database
	p.Database = fmt.Sprintf("lethe_test_temporal_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	p.VisibilityDatabase = p.Database + "_visibility"
	// Four services, two stores: at most 40 connections, so that a test
	// leaves room on a server with the default max_connections of 100.
	p.MaxConns = 5
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pgtest.ServerURL())
		if err != nil {
			tb.Errorf("drop Temporal's test databases: %v", err)
			return
		}
		defer c.Close(ctx)
		for _, db := range []string{p.Database, p.VisibilityDatabase} {
			if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
				tb.Errorf("drop %s: %v", db, err)
			}
		}
	})
	return &p
}

// workerProcess is one process of the worker binary.
type workerProcess struct {
	cmd *exec.Cmd
	log string // its stdout and stderr
}

// identity is the worker's identity in histories: the SDK's default, "pid@host@".
func (p *workerProcess) identityPrefix() string { return strconv.Itoa(p.cmd.Process.Pid) + "@" }

// buildWorker builds the worker binary (./worker) into dir.
func buildWorker(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "lethe-worker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/lethe-privacy/lethe/worker").CombinedOutput()
	if err != nil {
		tb.Fatalf("go build ./worker: %v\n%s", err, out)
	}
	return bin
}

// startWorkers runs n processes of the worker binary, configured only
// through the environment as in production: the bench's LETHE_* settings,
// its Temporal, and the data map m written to a file. It returns when each
// has logged that it started; they are stopped (SIGINT) when tb ends.
func (w *erasureBench) startWorkers(tb testing.TB, n int, m *datamap.Map) {
	tb.Helper()
	dir := tb.TempDir()
	bin := buildWorker(tb, dir)
	mapYAML, err := workerDataMap(m)
	if err != nil {
		tb.Fatal(err)
	}
	mapFile := filepath.Join(dir, "datamap.yaml")
	if err := os.WriteFile(mapFile, mapYAML, 0o600); err != nil {
		tb.Fatal(err)
	}
	env := os.Environ() // the processors' credentials are in it (tb.Setenv)
	for k, v := range w.env {
		env = append(env, k+"="+v)
	}
	env = append(env, "LETHE_TEMPORAL_ADDRESS="+w.cfg.TemporalAddress, "LETHE_DATA_MAP="+mapFile,
		"LETHE_METRICS_ADDR=off", "LETHE_LOG_LEVEL=info")
	w.workers = append(w.workers, runWorkerProcesses(tb, bin, dir, env, n)...)
}

// runWorkerProcesses starts n processes of the worker binary bin with env,
// logging into dir, and returns when each has logged that it started; they
// are stopped (SIGINT) when tb ends.
func runWorkerProcesses(tb testing.TB, bin, dir string, env []string, n int) []*workerProcess {
	tb.Helper()
	var out []*workerProcess
	for i := range n {
		p := &workerProcess{cmd: exec.Command(bin), log: filepath.Join(dir, fmt.Sprintf("worker-%d.log", i))}
		logFile, err := os.Create(p.log)
		if err != nil {
			tb.Fatal(err)
		}
		p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = env, logFile, logFile
		if err := p.cmd.Start(); err != nil {
			tb.Fatalf("start worker process: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = p.cmd.Wait(); _ = logFile.Close(); close(exited) }()
		tb.Cleanup(func() {
			_ = p.cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = p.cmd.Process.Kill()
				<-exited
			}
		})
		out = append(out, p)
		deadline := time.Now().Add(90 * time.Second)
		for {
			b, _ := os.ReadFile(p.log)
			if strings.Contains(string(b), `"worker started"`) {
				break
			}
			select {
			case <-exited:
				tb.Fatalf("worker process %d exited at start:\n%s", i, b)
			default:
			}
			if time.Now().After(deadline) {
				tb.Fatalf("worker process %d not started after 90 s:\n%s", i, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return out
}

// peakRSSOfMiB is a running process's peak resident set (VmHWM), in MiB.
func peakRSSOfMiB(tb testing.TB, pid int) float64 {
	tb.Helper()
	return vmHWM(tb, fmt.Sprintf("/proc/%d/status", pid))
}

// workerDataMap is m as a data map file the worker loads: m's processors
// are the bench's three fakes, so the references of fields and consent
// purposes to the demo's other processors (which m carries without using)
// are left out.
func workerDataMap(m *datamap.Map) ([]byte, error) {
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, err
	}
	var c datamap.Map
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, p := range c.Processors {
		known[p.Name] = true
	}
	for i := range c.Fields {
		for p := range c.Fields[i].Processors {
			if !known[p] {
				delete(c.Fields[i].Processors, p)
			}
		}
	}
	if c.Consent != nil {
		for i := range c.Consent.Purposes {
			c.Consent.Purposes[i].Processors = slices.DeleteFunc(c.Consent.Purposes[i].Processors, func(p string) bool { return !known[p] })
		}
	}
	return yaml.Marshal(&c)
}

// workerErrors returns the lines of the worker processes' logs at level ERROR.
func (w *erasureBench) workerErrors() []string {
	var lines []string
	for _, p := range w.workers {
		f, err := os.Open(p.log)
		if err != nil {
			lines = append(lines, err.Error())
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"level":"ERROR"`) {
				lines = append(lines, sc.Text())
			}
		}
		_ = f.Close()
	}
	return lines
}

// historyCounts is what the histories of a set of workflow executions cost.
type historyCounts struct {
	executions, running                  int
	workflowTasks, activities, localActs int
	// by identity of the worker that started them
	activityStarts, workflowTaskStarts map[string]int
	// by workflow type: executions, workflow tasks, activities
	byType map[string][3]int
}

// countHistories reads the history of every workflow execution of the
// namespace started at or after since, and counts its workflow tasks
// (WorkflowTaskCompleted), activities (ActivityTaskScheduled), local
// activities (markers "LocalActivity"), and per worker identity the
// activity and workflow tasks it started.
func (w *erasureBench) countHistories(tb testing.TB, since time.Time) historyCounts {
	tb.Helper()
	ctx := context.Background()
	type exec struct{ id, run, typ string }
	var execs []exec
	c := historyCounts{activityStarts: map[string]int{}, workflowTaskStarts: map[string]int{}, byType: map[string][3]int{}}
	query := "StartTime >= '" + since.UTC().Format(time.RFC3339Nano) + "'"
	var token []byte
	for {
		resp, err := w.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: w.cfg.TemporalNamespace, Query: query, NextPageToken: token, PageSize: 1000})
		if err != nil {
			tb.Fatalf("list workflows: %v", err)
		}
		for _, e := range resp.Executions {
			execs = append(execs, exec{e.Execution.WorkflowId, e.Execution.RunId, e.Type.GetName()})
			if e.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				c.running++
			}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	c.executions = len(execs)
	var mu sync.Mutex
	jobs := make(chan exec)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				it := w.temporal.GetWorkflowHistory(ctx, e.id, e.run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
				mu.Lock()
				t := c.byType[e.typ]
				t[0]++
				c.byType[e.typ] = t
				mu.Unlock()
				for it.HasNext() {
					ev, err := it.Next()
					if err != nil {
						tb.Errorf("history of %s: %v", e.id, err)
						break
					}
					mu.Lock()
					switch ev.EventType {
					case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
						c.workflowTasks++
						t := c.byType[e.typ]
						t[1]++
						c.byType[e.typ] = t
					case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
						c.activities++
						t := c.byType[e.typ]
						t[2]++
						c.byType[e.typ] = t
					case enumspb.EVENT_TYPE_MARKER_RECORDED:
						if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
							c.localActs++
						}
					case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
						c.activityStarts[ev.GetActivityTaskStartedEventAttributes().GetIdentity()]++
					case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
						c.workflowTaskStarts[ev.GetWorkflowTaskStartedEventAttributes().GetIdentity()]++
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, e := range execs {
		jobs <- e
	}
	close(jobs)
	wg.Wait()
	return c
}

// byProcess sums counts by identity into one per worker process (index
// into w.workers), and the tasks no process of w.workers took.
func (w *erasureBench) byProcess(counts map[string]int) (per []int, others int) {
	per = make([]int, len(w.workers))
	for id, n := range counts {
		found := false
		for i, p := range w.workers {
			if strings.HasPrefix(id, p.identityPrefix()) {
				per[i] += n
				found = true
			}
		}
		if !found {
			others += n
		}
	}
	return per, others
}

// sustained erases people through the API, clients at a time, as
// BenchmarkSustainedErasures does, and returns each erasure's latency
// (submit to completed in Lethe's store) and the wall time.
func (w *erasureBench) sustained(b *testing.B, clients int, people []demo.Account, done *completions) ([]time.Duration, time.Duration) {
	var mu sync.Mutex
	lat := make([]time.Duration, 0, len(people))
	began := time.Now()
	concurrently(clients, people, func(p demo.Account) {
		start := time.Now()
		id, err := w.trySubmit(p)
		if err != nil {
			b.Error(err)
			return
		}
		select {
		case <-done.wait(id):
			mu.Lock()
			lat = append(lat, time.Since(start))
			mu.Unlock()
		case <-time.After(5 * time.Minute):
			b.Errorf("request %s not complete after 5 minutes", id)
		}
	})
	return lat, time.Since(began)
}

// BenchmarkEngines measures, in one run, sustained erasures through the
// API (as BenchmarkSustainedErasures: the demo seed's rows in 11 tables,
// 7 files each, three healthy processor fakes, 20 concurrent clients) on
// each engine: the dev stack (Temporal on SQLite, the worker in the test's
// process), Temporal on PostgreSQL with 4 history shards with the worker
// in the test's process, and on PostgreSQL with 1 and then 2 processes of
// the worker binary. Each reports erasures/s, p50/p99 latency, the direct
// path's erasures/s and the ratio, and per erasure the workflow
// executions, workflow tasks, activities and local activities counted from
// the histories of every workflow execution started during the timed run.
// With worker processes it also reports each process's share of activity
// and workflow tasks (shareN-acts, shareN-wfts), which must both be > 0.
//
//	go test ./starter -run '^$' -bench BenchmarkEngines -benchtime 60x -timeout 40m
func BenchmarkEngines(b *testing.B) {
	for _, e := range []benchEngine{
		{},
		{PostgresShards: 4},
		{PostgresShards: 4, WorkerProcesses: 1},
		{PostgresShards: 4, WorkerProcesses: 2},
	} {
		b.Run(e.String(), func(b *testing.B) { benchmarkEngine(b, e) })
	}
}

func benchmarkEngine(b *testing.B, e benchEngine) {
	clients := benchClients(b)
	w := newErasureBenchOn(b, e)
	people := w.seed(b, 2*b.N, 0)
	viaTemporal, direct := people[:b.N], people[b.N:]
	ctx := context.Background()
	done := watchCompletions(b, w.lethe)
	defer done.stop()

	eraser := newDirectEraser(b, w.deps)
	began := time.Now()
	concurrently(clients, direct, func(p demo.Account) {
		if err := eraser.erase(ctx, p); err != nil {
			b.Errorf("direct erasure of %s: %v", p.ID, err)
		}
	})
	directTook := time.Since(began)

	since := time.Now().Add(-time.Second) // visibility's start times are the server's clock: same machine
	b.ResetTimer()
	lat, took := w.sustained(b, clients, viaTemporal, done)
	b.StopTimer()
	traceOne(b, w)

	w.assertErased(b, people)
	if len(lat) != b.N {
		b.Fatalf("%d of %d erasures completed", len(lat), b.N)
	}
	perSec := float64(b.N) / took.Seconds()
	directPerSec := float64(b.N) / directTook.Seconds()
	b.ReportMetric(perSec, "erasures/s")
	b.ReportMetric(directPerSec, "direct-erasures/s")
	b.ReportMetric(perSec/directPerSec, "ratio")
	reportPercentiles(b, lat)

	// What each erasure cost the engine, from the histories. Visibility
	// lags the last closes a little: wait until it has every request.
	var c historyCounts
	for range 50 {
		if c = w.countHistories(b, since); c.executions >= b.N {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.workflowTasks == 0 || c.activities == 0 {
		b.Fatalf("histories: %+v: an erasure costs workflow tasks and activities", c)
	}
	n := float64(b.N)
	b.ReportMetric(float64(c.executions)/n, "workflows/erasure")
	b.ReportMetric(float64(c.workflowTasks)/n, "wft/erasure")
	b.ReportMetric(float64(c.activities)/n, "acts/erasure")
	b.ReportMetric(float64(c.localActs)/n, "localacts/erasure")
	b.ReportMetric(float64(c.running), "still-running")
	if len(w.workers) > 0 {
		acts, actsElsewhere := w.byProcess(c.activityStarts)
		wfts, wftsElsewhere := w.byProcess(c.workflowTaskStarts)
		if actsElsewhere+wftsElsewhere > 0 {
			b.Errorf("%d activity and %d workflow tasks taken by no worker process", actsElsewhere, wftsElsewhere)
		}
		for i := range w.workers {
			b.ReportMetric(float64(acts[i])/float64(c.activities), fmt.Sprintf("share%d-acts", i+1))
			b.ReportMetric(float64(wfts[i])/float64(c.workflowTasks), fmt.Sprintf("share%d-wfts", i+1))
			// The warm-up run of one erasure may well land on one process.
			if b.N >= 10 && (acts[i] == 0 || wfts[i] == 0) {
				b.Errorf("worker process %d took %d activity and %d workflow tasks", i+1, acts[i], wfts[i])
			}
		}
		if errs := w.workerErrors(); len(errs) > 0 {
			b.Logf("worker processes logged %d errors, first: %s", len(errs), errs[0])
		}
	}
	b.Logf("%s N=%d: %.2f erasures/s, histories %+v", e, b.N, perSec, c)
}

// benchClients is how many clients submit at once: LETHE_BENCH_CLIENTS,
// 20 by default. Each waits for its erasure to complete before it submits
// the next, so too few clients measure latency rather than what the
// engine sustains.
func benchClients(tb testing.TB) int {
	v := os.Getenv("LETHE_BENCH_CLIENTS")
	if v == "" {
		return 20
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("LETHE_BENCH_CLIENTS=%q: want a number of clients, at least 1", v)
	}
	return n
}
