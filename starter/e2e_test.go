package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/worker"

	"github.com/lethe-privacy/lethe/internal/api"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows"
)

// e2e is the whole product on the real embedded components: Temporal,
// PostgreSQL, S3; the worker as registered in production; the API over HTTP.
type e2e struct {
	*testenv.Stack
	API *httptest.Server
}

func newE2E(t *testing.T, seedAccounts int) *e2e {
	t.Helper()
	ctx := context.Background()
	st := testenv.New(t)
	if err := demo.Seed(ctx, st.App, st.S3, demo.SeedOptions{Accounts: seedAccounts}); err != nil {
		t.Fatal(err)
	}
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(ctx, st.App); err != nil {
		t.Fatal(err)
	}
	w := worker.New(st.Temporal, st.Config.TemporalTaskQueue, worker.Options{})
	registry.Register(w, registry.Deps{Lethe: st.Lethe, App: st.App, Objects: st.S3, Map: m, Log: st.Log})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	subjects, err := wiring.Subjects(st.Config)
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Temporal: st.Temporal, DB: st.Lethe, Subjects: subjects, TaskQueue: st.Config.TemporalTaskQueue, MaxBody: st.Config.MaxBodyBytes, Log: st.Log}
	e := &e2e{Stack: st, API: httptest.NewServer(srv.Handler())}
	t.Cleanup(e.API.Close)
	return e
}

func (e *e2e) call(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.API.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out
}

func (e *e2e) waitStatus(t *testing.T, id, want string) map[string]any {
	t.Helper()
	var last map[string]any
	testenv.Eventually(t, 20*time.Second, "request "+id+" to be "+want, func() bool {
		_, last = e.call(t, "GET", "/v1/requests/"+id, "")
		return last["status"] == want
	})
	return last
}

func (e *e2e) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.App.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestErasureThroughTheAPIRemovesRowsAndObjects(t *testing.T) {
	e := newE2E(t, 3)
	ctx := context.Background()
	target, other := demo.Accounts(2)[0], demo.Accounts(2)[1]
	if n, _ := objectstore.CountPrefix(ctx, e.S3, demo.Bucket, "projects/"+target.ID+"/"); n != 6 {
		t.Fatalf("seed: want 6 project files in S3, got %d", n)
	}

	code, body := e.call(t, "POST", "/v1/requests", fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q},"jurisdiction":"gdpr"}`, target.ID))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, body)
	}
	id := body["id"].(string)
	done := e.waitStatus(t, id, workflows.StatusCompleted)

	// Rows gone, for this person only; the tax-law purchase stays.
	m, _ := demo.DataMap()
	for _, tbl := range m.Tables {
		if n := e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", tbl.Name), target.ID); n != 0 {
			t.Errorf("%s: %d rows of the erased person left", tbl.Name, n)
		}
		if n := e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", tbl.Name), other.ID); n == 0 {
			t.Errorf("%s: another person's rows were erased too", tbl.Name)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM demo.purchases WHERE account_id = $1", target.ID); n != 1 {
		t.Errorf("purchases are not in the erasure's data map and must stay, got %d", n)
	}
	// Objects gone, for this person only.
	for _, prefix := range []string{"projects/", "id-documents/"} {
		if n, err := objectstore.CountPrefix(ctx, e.S3, demo.Bucket, prefix+target.ID+"/"); err != nil || n != 0 {
			t.Errorf("%s: %d objects left (%v)", prefix, n, err)
		}
		if n, _ := objectstore.CountPrefix(ctx, e.S3, demo.Bucket, prefix+other.ID+"/"); n == 0 {
			t.Errorf("%s: another person's objects were erased too", prefix)
		}
	}
	// The API says what was done.
	systems, _ := json.Marshal(done["systems"])
	for _, want := range []string{`"demo.project_files":6`, `"lethe-app-data/projects/{user_id}/":6`} {
		if !strings.Contains(string(systems), want) {
			t.Errorf("GET /v1/requests/%s systems = %s, want %s", id, systems, want)
		}
	}
	// Lethe's record of it, without the person's id.
	var status, ref string
	if err := e.Lethe.QueryRow(ctx, "SELECT status, subject_ref FROM lethe.requests WHERE id = $1", id).Scan(&status, &ref); err != nil {
		t.Fatal(err)
	}
	if status != workflows.StatusCompleted || strings.Contains(ref, target.ID) {
		t.Errorf("lethe.requests: status %q subject_ref %q", status, ref)
	}
	// The history Temporal stores has no personal data in plaintext.
	assertHistoryClean(t, e.Stack, id, target.ID, target.Email)
	if strings.Contains(e.LogOutput.String(), target.ID) {
		t.Errorf("logs contain the person's user id")
	}
}

// assertHistoryClean reads a workflow's history without the codec, as anyone
// with access to Temporal's database would, and looks for the secrets.
func assertHistoryClean(t *testing.T, st *testenv.Stack, workflowID string, secrets ...string) {
	t.Helper()
	it := st.Raw.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	var all bytes.Buffer
	events := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		events++
		b, _ := json.Marshal(ev)
		all.Write(b)
		all.WriteString(ev.String())
	}
	if events == 0 {
		t.Fatal("empty history")
	}
	for _, s := range secrets {
		if bytes.Contains(all.Bytes(), []byte(s)) {
			t.Errorf("history of %s contains %q in plaintext", workflowID, s)
		}
	}
	if !bytes.Contains(all.Bytes(), []byte("binary/encrypted")) {
		t.Errorf("history payloads are not marked as encrypted")
	}
}

func TestBadRequestsGetAReasonAndCreateNothing(t *testing.T) {
	e := newE2E(t, 1)
	big := `{"type":"erasure","subject":{"user_id":"` + strings.Repeat("a", 70000) + `"}}`
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		reason                   string
	}{
		{"unknown field", "POST", "/v1/requests", `{"type":"erasure","subject":{"user_id":"u-1001"},"admin":true}`, 400, "unknown field"},
		{"two objects", "POST", "/v1/requests", `{"type":"erasure","subject":{"user_id":"u-1001"}} {}`, 400, "one object"},
		{"broken JSON", "POST", "/v1/requests", `{"type":`, 400, "malformed"},
		{"empty", "POST", "/v1/requests", ``, 400, "empty body"},
		{"unknown type", "POST", "/v1/requests", `{"type":"forget-me","subject":{"user_id":"u-1001"}}`, 422, "type"},
		{"bad email", "POST", "/v1/requests", `{"type":"erasure","subject":{"user_id":"u-1001","email":"not-an-email"}}`, 422, "subject.email"},
		{"bad jurisdiction", "POST", "/v1/requests", `{"type":"erasure","subject":{"user_id":"u-1001"},"jurisdiction":"mars"}`, 422, "jurisdiction"},
		{"no user id", "POST", "/v1/requests", `{"type":"erasure","subject":{}}`, 422, "user_id"},
		{"path in user id", "POST", "/v1/requests", `{"type":"erasure","subject":{"user_id":"../u-1002"}}`, 422, "user_id"},
		{"oversized", "POST", "/v1/requests", big, 413, "larger than"},
		{"bad id", "GET", "/v1/requests/nope", "", 400, "id"},
		{"unknown id", "GET", "/v1/requests/req_aaaaaaaaaaaaaaaaaaaaaaaaaa", "", 404, "no request"},
	} {
		code, body := e.call(t, c.method, c.path, c.body)
		if code != c.status || !strings.Contains(fmt.Sprint(body["error"]), c.reason) {
			t.Errorf("%s: got %d %v, want %d with %q", c.name, code, body, c.status, c.reason)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM lethe.requests"); n != 0 {
		t.Errorf("bad requests created %d request records", n)
	}
	resp, err := e.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{})
	if err == nil && len(resp.GetExecutions()) != 0 {
		t.Errorf("bad requests started %d workflows", len(resp.GetExecutions()))
	}
	if n := e.count(t, "SELECT count(*) FROM demo.projects WHERE account_id = 'u-1001'"); n == 0 {
		t.Error("a refused request erased data")
	}
}
