package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// e2e is the whole product on the real embedded components: Temporal,
// PostgreSQL, S3, the SendGrid fake; the worker as registered in production;
// the API over HTTP.
type e2e struct {
	*testenv.Stack
	Worker            *registry.Worker
	API               *httptest.Server
	Deps              registry.Deps
	Backend, Operator string // API keys
}

func newE2E(t *testing.T, seedAccounts int, env map[string]string) *e2e {
	t.Helper()
	return newE2EWith(t, seedAccounts, env, nil)
}

// newE2EWith lets a test adjust the demo data map (e.g. point its processors
// at fakes) before the worker and the API load it.
func newE2EWith(t *testing.T, seedAccounts int, env map[string]string, tweak func(*datamap.Map)) *e2e {
	t.Helper()
	ctx := context.Background()
	st := testenv.New(t)
	t.Cleanup(func() {
		if t.Failed() { // what went wrong, from the logs (which carry no personal data)
			for _, line := range strings.Split(st.LogOutput.String(), "\n") {
				if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`) {
					t.Log(line)
				}
			}
		}
	})
	for k, v := range env {
		t.Setenv(k, v)
	}
	if err := demo.Seed(ctx, st.App, st.S3, demo.SeedOptions{Accounts: seedAccounts}); err != nil {
		t.Fatal(err)
	}
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	m.Processors = nil // the demo's processors point nowhere; tests that need them set fakes
	if tweak != nil {
		tweak(m)
	}
	return startE2E(t, st, m, env)
}

// startE2E starts the worker and the API on st for the application whose
// data map is m (already in st.App), with a backend and an operator key.
func startE2E(t *testing.T, st *testenv.Stack, m *datamap.Map, env map[string]string) *e2e {
	t.Helper()
	ctx := context.Background()
	if err := m.Validate(ctx, st.App); err != nil {
		t.Fatal(err)
	}
	cfg := st.Config
	cfg.RatePerIP, cfg.BurstPerIP = 1000, 1000 // every test client is 127.0.0.1
	if v, ok := env["LETHE_APPROVAL_TYPES"]; ok {
		cfg.ApprovalTypes = strings.Split(v, ",")
	}
	if v, ok := env["LETHE_MANUAL_TYPES"]; ok {
		cfg.ManualTypes = strings.Split(v, ",")
	}
	if v, ok := env["LETHE_DUE_COMPANY"]; ok {
		cfg.DueCompany = v
	}
	if v, ok := env["LETHE_DEACTIVATION_GRACE"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DeactivationGrace = d
	}
	if v, ok := env["LETHE_OPERATOR_REMINDERS"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		cfg.OperatorReminders = []time.Duration{d}
	}
	deps, err := registry.NewDeps(ctx, cfg, st.Lethe, st.App, st.S3, m, st.Log)
	if err != nil {
		t.Fatal(err)
	}
	w := registry.NewWorker(st.Temporal, cfg.TemporalTaskQueue, registry.WorkerOptions(), deps)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	srv, err := newAPIServer(cfg, st.Temporal, st.Lethe, m, st.Log)
	if err != nil {
		t.Fatal(err)
	}
	srv.APIKeys = apikeys.NewAuthenticator(st.Lethe, 0) // no cache: a revoked key stops at once
	codecHandler, err := codecServer(cfg, codec.HandlerOptions{Token: codecToken, AllowedOrigins: []string{"http://localhost:8233"}, Namespace: cfg.TemporalNamespace})
	if err != nil {
		t.Fatal(err)
	}
	srv.Extra = func(mux *http.ServeMux) { mux.Handle("/codec/", http.StripPrefix("/codec", codecHandler)) }
	e := &e2e{Stack: st, API: httptest.NewServer(srv.Handler()), Deps: deps, Worker: w}
	t.Cleanup(e.API.Close)
	if e.Backend, _, err = apikeys.Create(ctx, st.Lethe, "backend", apikeys.RoleBackend); err != nil {
		t.Fatal(err)
	}
	if e.Operator, _, err = apikeys.Create(ctx, st.Lethe, "operator", apikeys.RoleOperator); err != nil {
		t.Fatal(err)
	}
	return e
}

// call makes an API call; auth is an API key, "rt_…" a request token, or "".
func (e *e2e) call(t testing.TB, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.API.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case strings.HasPrefix(auth, "rt_"):
		req.Header.Set("X-Request-Token", auth)
	case auth != "":
		req.Header.Set("Authorization", "Bearer "+auth)
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
	testenv.Eventually(t, 30*time.Second, "request "+id+" to be "+want, func() bool {
		_, last = e.call(t, "GET", "/v1/requests/"+id, e.Operator, "")
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

func TestErasureThroughTheAPIRemovesRowsAndObjectsThenShredsTheIdentity(t *testing.T) {
	e := newE2E(t, 3, nil)
	ctx := context.Background()
	target, other := demo.Accounts(2)[0], demo.Accounts(2)[1]
	if n, _ := objectstore.CountPrefix(ctx, e.S3, demo.Bucket, "projects/"+target.ID+"/"); n.Total() != 6 {
		t.Fatalf("seed: want 6 project files in S3, got %d", n)
	}

	code, body := e.call(t, "POST", "/v1/requests", e.Backend,
		fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, target.ID, target.Email))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, body)
	}
	id := body["id"].(string)
	done := e.waitStatus(t, id, domain.StatusCompleted)

	// Rows gone, for this person only; the tax-law purchase stays.
	e.assertDemoPersonErased(t, target, other)
	// The API says what was done.
	outcome, _ := json.Marshal(done["outcome"])
	for _, want := range []string{"Deleted 6 rows from demo.project_files", "Deleted 6 files from lethe-app-data/projects/{user_id}/", "Kept 1 row in demo.purchases until", "tax law"} {
		if !strings.Contains(string(outcome), want) {
			t.Errorf("outcome %s lacks %q", outcome, want)
		}
	}
	// The person got the receipt and the completion mail, once each.
	mails, err := e.SendGrid.WaitFor(target.Email, 2, 10*time.Second)
	if err != nil {
		t.Fatalf("mail: %v (got %d)", err, len(mails))
	}
	// The completion mail names what went by the data map's labels, never a table or bucket.
	if len(e.SendGrid.To(target.Email)) != 2 || !strings.Contains(mails[1].Text, "the files of your projects (6 files)") || strings.Contains(mails[1].Text, "demo.") {
		t.Errorf("mails to the person: %d, last %q", len(e.SendGrid.To(target.Email)), mails[len(mails)-1].Subject)
	}
	// Nothing personal in the stored history, the logs or the audit trail.
	for _, wf := range []string{id} {
		assertHistoryClean(t, e.Stack, wf, target.ID, target.Email, target.Name)
	}
	for _, secret := range []string{target.ID, target.Email} {
		if strings.Contains(e.LogOutput.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
		if n := e.count(t, "SELECT count(*) FROM lethe.audit_log WHERE detail::text LIKE '%' || $1 || '%' OR subject_ref LIKE '%' || $1 || '%'", secret); n != 0 {
			t.Errorf("audit trail contains %q", secret)
		}
	}
	// The person's key is destroyed: the identity sealed in the history is unreadable.
	var ref string
	if err := e.Lethe.QueryRow(ctx, "SELECT subject_ref FROM lethe.requests WHERE id = $1", id).Scan(&ref); err != nil {
		t.Fatal(err)
	}
	sealed := sealedIdentityOf(t, e, id)
	if _, err := person.Open(ctx, e.Deps.Keys, ref, sealed); err == nil {
		t.Error("the erased person's identity can still be opened")
	}
}

// assertDemoPersonErased checks the demo application: every row of
// target's in the tables the map deletes by account gone, another
// person's there, the purchase under the tax hold kept, and target's
// files gone from every prefix, the other's there.
func (e *e2e) assertDemoPersonErased(t *testing.T, target, other demo.Account) {
	t.Helper()
	ctx := context.Background()
	m, _ := demo.DataMap()
	for _, tbl := range m.Tables {
		if tbl.Action != datamap.ActionDelete || tbl.Key != "account_id" {
			continue // held, anonymized (see erasure_test.go), or reached through a parent
		}
		if n := e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", tbl.Name), target.ID); n != 0 {
			t.Errorf("%s: %d rows of the erased person left", tbl.Name, n)
		}
		if n := e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", tbl.Name), other.ID); n == 0 {
			t.Errorf("%s: another person's rows were erased too", tbl.Name)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM demo.purchases WHERE account_id = $1", target.ID); n != 1 {
		t.Errorf("%d purchases, want the one under the tax hold kept", n)
	}
	for _, prefix := range []string{"projects/", "id-documents/"} {
		if n, err := objectstore.CountPrefix(ctx, e.S3, demo.Bucket, prefix+target.ID+"/"); err != nil || n.Total() != 0 {
			t.Errorf("%s: %d objects left (%v)", prefix, n.Total(), err)
		}
		if n, _ := objectstore.CountPrefix(ctx, e.S3, demo.Bucket, prefix+other.ID+"/"); n.Total() == 0 {
			t.Errorf("%s: another person's objects were erased too", prefix)
		}
	}
}

// sealedIdentityOf reads the sealed identity from the workflow's stored input.
func sealedIdentityOf(t *testing.T, e *e2e, id string) []byte {
	t.Helper()
	it := e.Temporal.GetWorkflowHistory(context.Background(), id, "", false, 0)
	ev, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	var in contract.RequestInput
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	topts, err := wiring.TemporalOptions(e.Config, e.Log)
	if err != nil {
		t.Fatal(err)
	}
	if err := topts.DataConverter.FromPayloads(attrs.GetInput(), &in); err != nil {
		t.Fatal(err)
	}
	return in.Identity
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

const codecToken = "operator-codec-token-0123456789"

var codeRe = regexp.MustCompile(`\b[0-9]{6}\b`)

func TestPersonVerifiesByCodeDuplicatesJoinAndLimitsRefuse(t *testing.T) {
	e := newE2E(t, 2, map[string]string{"LETHE_MANUAL_TYPES": "access"}) // the team answers access requests by hand here
	person := demo.Accounts(1)[0]
	submit := func(auth, body string) (int, map[string]any) { return e.call(t, "POST", "/v1/requests", auth, body) }

	// The person asks for their data; a code arrives by mail.
	code, body := submit("", fmt.Sprintf(`{"type":"access","subject":{"email":%q},"jurisdiction":"gdpr"}`, person.Email))
	if code != http.StatusAccepted || body["request_token"] == nil {
		t.Fatalf("submit: %d %v", code, body)
	}
	id, token := body["id"].(string), body["request_token"].(string)
	mails, err := e.SendGrid.WaitFor(person.Email, 2, 15*time.Second) // receipt and code
	if err != nil {
		t.Fatal(err)
	}
	var mailed string
	for _, m := range mails {
		if m.Subject != "" && codeRe.MatchString(m.Text) && strings.Contains(strings.ToLower(m.Subject+m.Text), "code") {
			mailed = codeRe.FindString(m.Text)
		}
	}
	if mailed == "" {
		t.Fatalf("no code in the mails: %+v", mails)
	}
	keepHistory(t, e.Stack, id, "request-awaiting-code")
	wrong := "000000"
	if mailed == wrong {
		wrong = "111111"
	}
	// Someone without the request's token gets nowhere.
	if code, _ := e.call(t, "POST", "/v1/requests/"+id+"/verify", "rt_forged", `{"code":"`+mailed+`"}`); code != http.StatusForbidden {
		t.Fatalf("forged token: %d", code)
	}
	code, body = e.call(t, "POST", "/v1/requests/"+id+"/verify", token, `{"code":"`+wrong+`"}`)
	if code != http.StatusUnprocessableEntity || body["accepted"] != false || body["tries_left"] != float64(4) {
		t.Fatalf("wrong code: %d %v", code, body)
	}
	code, body = e.call(t, "POST", "/v1/requests/"+id+"/verify", token, `{"code":"`+mailed+`"}`)
	if code != http.StatusOK || body["accepted"] != true {
		t.Fatalf("right code: %d %v", code, body)
	}
	e.waitStatus(t, id, domain.StatusInProgress)

	// The same request again joins the running one.
	code, body = submit("", fmt.Sprintf(`{"type":"access","subject":{"email":%q},"jurisdiction":"gdpr"}`, person.Email))
	if code != http.StatusOK || body["id"] != id || body["joined"] != true {
		t.Fatalf("duplicate: %d %v", code, body)
	}
	// Operators act with an operator key only.
	if code, _ := e.call(t, "POST", "/v1/requests/"+id+"/complete", e.Backend, `{"lines":["x"]}`); code != http.StatusForbidden {
		t.Fatalf("backend key completing: %d", code)
	}
	if code, _ := e.call(t, "POST", "/v1/requests/"+id+"/complete", token, `{"lines":["x"]}`); code != http.StatusForbidden {
		t.Fatalf("the person completing: %d", code)
	}
	if code, body := e.call(t, "POST", "/v1/requests/"+id+"/complete", e.Operator, `{"lines":["Sent the account export by hand"]}`); code != http.StatusOK {
		t.Fatalf("complete: %d %v", code, body)
	}
	e.waitStatus(t, id, domain.StatusCompleted)
	keepHistory(t, e.Stack, id, "request-verified-by-code-completed-by-hand")
	if code, body := e.call(t, "GET", "/v1/requests/"+id+"/audit", e.Operator, ""); code != http.StatusOK || len(body["entries"].([]any)) < 6 {
		t.Fatalf("audit: %d %v", code, body)
	}

	// CCPA: two access requests in 12 months; the third is refused with the date.
	ccpa := fmt.Sprintf(`{"type":"access","subject":{"user_id":%q},"jurisdiction":"ccpa","verified":true}`, person.ID)
	for i := 0; i < 2; i++ {
		code, body := submit(e.Backend, ccpa)
		if code != http.StatusAccepted {
			t.Fatalf("ccpa access %d: %d %v", i+1, code, body)
		}
		e.waitStatus(t, body["id"].(string), domain.StatusInProgress)
		e.call(t, "POST", "/v1/requests/"+body["id"].(string)+"/complete", e.Operator, `{"lines":["done"]}`)
		e.waitStatus(t, body["id"].(string), domain.StatusCompleted)
	}
	code, body = submit(e.Backend, ccpa)
	retryAt, _ := time.Parse(time.RFC3339, fmt.Sprint(body["retry_at"]))
	if code != http.StatusTooManyRequests || retryAt.Before(time.Now().AddDate(0, 11, 27)) || !strings.Contains(fmt.Sprint(body["error"]), retryAt.Format("2006")) {
		t.Fatalf("third CCPA access: %d %v", code, body)
	}

	// Personal data stays out of histories and logs.
	assertHistoryClean(t, e.Stack, id, person.Email, mailed)
	for _, secret := range []string{person.Email, mailed} {
		if strings.Contains(e.LogOutput.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	resp, err := e.Raw.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(resp)
	if bytes.Contains(b, []byte(person.Email)) || bytes.Contains(b, []byte(person.ID)) {
		t.Error("workflow ids or search attributes contain the person's email or id")
	}
}

func TestBadRequestsGetAReasonAndCreateNothing(t *testing.T) {
	e := newE2E(t, 1, nil)
	big := `{"type":"erasure","subject":{"email":"` + strings.Repeat("a", 70000) + `@example.com"}}`
	for _, c := range []struct {
		name, method, path, auth, body string
		status                         int
		reason                         string
	}{
		{"unknown field", "POST", "/v1/requests", "", `{"type":"erasure","subject":{"email":"a@example.com"},"admin":true}`, 400, "unknown field"},
		{"two objects", "POST", "/v1/requests", "", `{"type":"erasure","subject":{"email":"a@example.com"}} {}`, 400, "one object"},
		{"broken JSON", "POST", "/v1/requests", "", `{"type":`, 400, "malformed"},
		{"empty", "POST", "/v1/requests", "", ``, 400, "empty body"},
		{"unknown type", "POST", "/v1/requests", "", `{"type":"forget-me","subject":{"email":"a@example.com"}}`, 422, "type"},
		{"bad email", "POST", "/v1/requests", "", `{"type":"erasure","subject":{"email":"not-an-email"}}`, 422, "subject.email"},
		{"bad jurisdiction", "POST", "/v1/requests", "", `{"type":"erasure","subject":{"email":"a@example.com"},"jurisdiction":"mars"}`, 422, "jurisdiction"},
		{"no email to verify", "POST", "/v1/requests", "", `{"type":"erasure","subject":{"user_id":"u-1001"}}`, 422, "subject.email"},
		{"path in user id", "POST", "/v1/requests", e.Backend, `{"type":"erasure","subject":{"user_id":"../u-1002"},"verified":true}`, 422, "user_id"},
		{"vouching without a key", "POST", "/v1/requests", "", `{"type":"erasure","subject":{"email":"a@example.com"},"verified":true}`, 403, "backend"},
		{"vouching as operator", "POST", "/v1/requests", e.Operator, `{"type":"erasure","subject":{"email":"a@example.com"},"verified":true}`, 403, "backend"},
		{"bad key", "POST", "/v1/requests", "lethe_key_nope", `{"type":"erasure","subject":{"email":"a@example.com"}}`, 401, "API key"},
		{"oversized", "POST", "/v1/requests", "", big, 413, "larger than"},
		{"bad id", "GET", "/v1/requests/nope", e.Operator, "", 400, "id"},
		{"no token", "GET", "/v1/requests/req_aaaaaaaaaaaaaaaaaaaaaaaaaa", "", "", 401, "token"},
		{"unknown id", "GET", "/v1/requests/req_aaaaaaaaaaaaaaaaaaaaaaaaaa", e.Operator, "", 404, "no request"},
	} {
		code, body := e.call(t, c.method, c.path, c.auth, c.body)
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
	if strings.Contains(e.LogOutput.String(), "a@example.com") {
		t.Error("logs contain a submitted email")
	}
}

func TestLethesOwnSecurity(t *testing.T) {
	e := newE2E(t, 1, map[string]string{"LETHE_MANUAL_TYPES": "access"})
	ctx := context.Background()
	person := demo.Accounts(1)[0]
	code, body := e.call(t, "POST", "/v1/requests", e.Backend,
		fmt.Sprintf(`{"type":"access","subject":{"user_id":%q,"email":%q},"verified":true}`, person.ID, person.Email))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, body)
	}
	id := body["id"].(string)
	e.waitStatus(t, id, domain.StatusInProgress)

	t.Run("the codec server decodes for operators only", func(t *testing.T) {
		it := e.Raw.GetWorkflowHistory(ctx, id, "", false, 0)
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := protojson.Marshal(ev.GetWorkflowExecutionStartedEventAttributes().GetInput())
		if err != nil {
			t.Fatal(err)
		}
		post := func(token string) (int, []byte) {
			req, _ := http.NewRequest("POST", e.API.URL+"/codec/decode", bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Namespace", e.Config.TemporalNamespace)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		if code, _ := post(""); code != http.StatusUnauthorized {
			t.Fatalf("no token: %d", code)
		}
		if code, _ := post("wrong-token-wrong-token"); code != http.StatusUnauthorized {
			t.Fatalf("wrong token: %d", code)
		}
		code, decoded := post(codecToken)
		var payloads commonpb.Payloads
		if code != http.StatusOK || protojson.Unmarshal(decoded, &payloads) != nil || len(payloads.GetPayloads()) != 1 {
			t.Fatalf("decode: %d %s", code, decoded)
		}
		var in contract.RequestInput
		if err := json.Unmarshal(payloads.GetPayloads()[0].GetData(), &in); err != nil || in.RequestID != id || in.Type != "access" {
			t.Fatalf("decoded input %+v (%v)", in, err)
		}
		// Decoded, the identity is still sealed with the person's own key.
		if bytes.Contains(payloads.GetPayloads()[0].GetData(), []byte(person.Email)) {
			t.Fatal("the identity is readable after decoding: it must stay sealed")
		}
	})

	t.Run("a revoked key stops working", func(t *testing.T) {
		token, key, err := apikeys.Create(ctx, e.Lethe, "to revoke", apikeys.RoleOperator)
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := e.call(t, "GET", "/v1/requests/"+id, token, ""); code != http.StatusOK {
			t.Fatalf("fresh key: %d", code)
		}
		if err := apikeys.Revoke(ctx, e.Lethe, key.ID); err != nil {
			t.Fatal(err)
		}
		if code, _ := e.call(t, "GET", "/v1/requests/"+id, token, ""); code != http.StatusUnauthorized {
			t.Fatalf("revoked key: %d", code)
		}
	})

	t.Run("public routes are rate limited with Retry-After", func(t *testing.T) {
		cfg := e.Config
		cfg.RatePerIP, cfg.BurstPerIP = 0.01, 2
		srv, err := newAPIServer(cfg, e.Temporal, e.Lethe, nil, e.Log)
		if err != nil {
			t.Fatal(err)
		}
		api := httptest.NewServer(srv.Handler())
		defer api.Close()
		var last *http.Response
		for i := 0; i < 3; i++ {
			resp, err := http.Post(api.URL+"/v1/requests", "application/json", strings.NewReader(`{"type":"nope"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			last = resp
		}
		if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
			t.Fatalf("third call: %d, Retry-After %q", last.StatusCode, last.Header.Get("Retry-After"))
		}
	})

	t.Run("schedules are applied idempotently and follow the configuration", func(t *testing.T) {
		cfg := e.Config
		for i := 0; i < 2; i++ {
			if err := registry.ApplySchedules(ctx, e.Temporal, cfg); err != nil {
				t.Fatal(err)
			}
		}
		h := e.Temporal.ScheduleClient().GetHandle(ctx, "lethe-records-retention")
		if err := h.Pause(ctx, client.SchedulePauseOptions{Note: "operator paused it"}); err != nil {
			t.Fatal(err)
		}
		// Schedules apply changes asynchronously: wait until the pause shows.
		testenv.Eventually(t, 10*time.Second, "the pause to show", func() bool {
			d, err := h.Describe(ctx)
			return err == nil && d.Schedule.State.Paused
		})
		cfg.RecordsRetentionEvery = 6 * time.Hour
		if err := registry.ApplySchedules(ctx, e.Temporal, cfg); err != nil {
			t.Fatal(err)
		}
		var d *client.ScheduleDescription
		testenv.Eventually(t, 10*time.Second, "the new interval to show", func() bool {
			var err error
			d, err = h.Describe(ctx)
			return err == nil && d.Schedule.Spec.Intervals[0].Every == 6*time.Hour
		})
		if !d.Schedule.State.Paused {
			t.Fatal("applying the configuration unpaused an operator's pause")
		}
	})
}

func TestInactivitySweepWarnsErasesOnceAndASecondRunChangesNothing(t *testing.T) {
	e := newE2E(t, 6, nil)
	ctx := context.Background()
	acc := demo.Accounts(6)
	now := time.Now().UTC()
	set := func(sql string, args ...any) {
		t.Helper()
		if _, err := e.App.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	set(`UPDATE demo.accounts SET last_active_at = $1`, now)                                                           // everyone active...
	set(`UPDATE demo.accounts SET last_active_at = $2 WHERE id = $1`, acc[0].ID, now.AddDate(0, -25, 0))               // inactive 25 months, never warned
	set(`UPDATE demo.accounts SET last_active_at = $2 WHERE id = $1`, acc[1].ID, now.AddDate(0, -23, -15))             // inside the warning window
	set(`UPDATE demo.accounts SET last_active_at = $2 WHERE id = $1`, acc[3].ID, now.AddDate(0, -26, 0))               // warned earlier, due now
	set(`UPDATE demo.accounts SET status = 'closed', closed_at = $2 WHERE id = $1`, acc[4].ID, now.AddDate(0, 0, -40)) // closed 40 days ago
	var la time.Time
	if err := e.App.QueryRow(ctx, `SELECT last_active_at FROM demo.accounts WHERE id = $1`, acc[3].ID).Scan(&la); err != nil {
		t.Fatal(err)
	}
	ref3 := string(e.Deps.Subjects.UserID(acc[3].ID))
	if _, err := e.Lethe.Exec(ctx, `INSERT INTO lethe.inactivity_notices (subject_ref, last_active, warned_at, due_at) VALUES ($1, $2, $3, $4)`,
		ref3, la, now.AddDate(0, 0, -31), now.AddDate(0, 0, -1)); err != nil {
		t.Fatal(err)
	}
	policy := contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}, WarnBefore: 30 * 24 * time.Hour, ClosedKeep: domain.Period{Days: 30}}
	sweep := func() contract.SweepTotals {
		t.Helper()
		run, err := e.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: e.Config.TemporalTaskQueue}, contract.WorkflowInactiveSweep, contract.SweepInput{Policy: policy})
		if err != nil {
			t.Fatal(err)
		}
		var totals contract.SweepTotals
		if err := run.Get(ctx, &totals); err != nil {
			t.Fatal(err)
		}
		return totals
	}
	first := sweep()
	if first.Warned != 2 || first.Erased != 2 {
		t.Fatalf("first sweep: %+v, want 2 warned (25 and 23.5 months) and 2 erased (due, closed)", first)
	}
	keepHistoryOfType(t, e.Stack, contract.WorkflowInactiveSweep, "inactivity-sweep")
	for _, a := range acc[:2] {
		got, err := e.SendGrid.WaitFor(a.Email, 1, 10*time.Second)
		if err != nil || !strings.Contains(strings.ToLower(got[0].Subject+got[0].Text), "inactiv") {
			t.Fatalf("warning to %s: %v %+v", a.ID, err, got)
		}
	}
	for _, a := range []demo.Account{acc[2], acc[3], acc[4], acc[5]} {
		if n := len(e.SendGrid.To(a.Email)); n != 0 {
			t.Errorf("%s got %d mails, want none", a.ID, n)
		}
	}
	for _, a := range acc[3:5] {
		if n := e.count(t, "SELECT count(*) FROM demo.projects WHERE account_id = $1", a.ID); n != 0 {
			t.Errorf("%s: projects left after erasure", a.ID)
		}
		if n := e.count(t, "SELECT count(*) FROM demo.accounts WHERE id = $1 AND status = 'erased' AND email NOT LIKE '%example.com'", a.ID); n != 1 {
			t.Errorf("%s: account row not anonymized", a.ID)
		}
		if n, _ := objectstore.CountPrefix(ctx, e.S3, demo.Bucket, "projects/"+a.ID+"/"); n.Total() != 0 {
			t.Errorf("%s: %d files left", a.ID, n)
		}
	}
	for _, a := range []demo.Account{acc[0], acc[1], acc[2], acc[5]} {
		if n := e.count(t, "SELECT count(*) FROM demo.projects WHERE account_id = $1", a.ID); n == 0 {
			t.Errorf("%s was erased but should not be", a.ID)
		}
	}
	mailsBefore := e.SendGrid.Calls()
	second := sweep()
	if second.Warned != 0 || second.Erased != 0 || e.SendGrid.Calls() != mailsBefore {
		t.Fatalf("second sweep changed something: %+v, mails %d -> %d", second, mailsBefore, e.SendGrid.Calls())
	}
}

func TestDeactivationAndAppealsThroughTheAPI(t *testing.T) {
	e := newE2E(t, 2, nil)
	ctx := context.Background()
	person := demo.Accounts(1)[0]
	path := "/v1/accounts/" + person.ID
	if code, _ := e.call(t, "POST", path+"/deactivate", e.Operator, `{}`); code != http.StatusForbidden {
		t.Fatalf("operator deactivating: %d", code)
	}
	code, body := e.call(t, "POST", path+"/deactivate", e.Backend, fmt.Sprintf(`{"email":%q}`, person.Email))
	if code != http.StatusAccepted || body["status"] != contract.AccountDeactivated {
		t.Fatalf("deactivate: %d %v", code, body)
	}
	final := body["final_at"]
	testenv.Eventually(t, 10*time.Second, "the account to be disabled", func() bool {
		return e.count(t, "SELECT count(*) FROM demo.accounts WHERE id = $1 AND status = 'deactivated'", person.ID) == 1
	})
	// Deactivating twice is the same deactivation.
	if code, body := e.call(t, "POST", path+"/deactivate", e.Backend, `{}`); code != http.StatusAccepted || body["final_at"] != final {
		t.Fatalf("second deactivate: %d %v (final %v)", code, body, final)
	}
	if _, err := e.SendGrid.WaitFor(person.Email, 1, 10*time.Second); err != nil {
		t.Fatalf("deactivation notice: %v", err)
	}
	code, body = e.call(t, "POST", path+"/restore", e.Backend, "")
	if code != http.StatusOK || body["status"] != contract.AccountRestored {
		t.Fatalf("restore: %d %v", code, body)
	}
	if n := e.count(t, "SELECT count(*) FROM demo.accounts WHERE id = $1 AND status = 'active'", person.ID); n != 1 {
		t.Fatal("the restored account is not active")
	}
	keepHistoryOfType(t, e.Stack, contract.WorkflowDeactivation, "deactivation-restored")

	// An appeal ticket closed 61 days ago: its ID document goes at once.
	var ticket int64
	if err := e.App.QueryRow(ctx, `UPDATE demo.support_tickets SET status = 'closed', closed_at = now() - interval '61 days' WHERE account_id = $1 RETURNING id`, person.ID).Scan(&ticket); err != nil {
		t.Fatal(err)
	}
	code, body = e.call(t, "POST", fmt.Sprintf("/v1/appeals/%d/closed", ticket), e.Backend, fmt.Sprintf(`{"closed_at":%q}`, time.Now().AddDate(0, 0, -61).UTC().Format(time.RFC3339)))
	if code != http.StatusAccepted {
		t.Fatalf("appeal closed: %d %v", code, body)
	}
	testenv.Eventually(t, 10*time.Second, "the ID document to go", func() bool {
		return e.count(t, "SELECT count(*) FROM demo.id_documents WHERE account_id = $1", person.ID) == 0
	})
	if n, _ := objectstore.CountPrefix(ctx, e.S3, demo.Bucket, "id-documents/"+person.ID+"/"); n.Total() != 0 {
		t.Fatalf("ID document object left: %d", n)
	}
	testenv.Eventually(t, 10*time.Second, "the proof of deletion in the audit trail", func() bool {
		return e.count(t, "SELECT count(*) FROM lethe.audit_log WHERE action = 'id_documents.deleted'") == 1
	})
	keepHistory(t, e.Stack, contract.IDDocumentWorkflowID(fmt.Sprint(ticket)), "id-document-deletion")
}

// At the end of its grace period a deactivated account is erased by the
// deactivation itself: every row and file of the person gone (the held
// purchase kept), the receipt audited and mailed, and what outlives the
// erasure in one AfterErasure; no EraseSubject workflow.
func TestADeactivatedAccountIsErasedAtTheEndOfItsGracePeriod(t *testing.T) {
	e := newE2E(t, 2, map[string]string{"LETHE_DEACTIVATION_GRACE": "3s"})
	ctx := context.Background()
	target, other := demo.Accounts(2)[0], demo.Accounts(2)[1]
	code, body := e.call(t, "POST", "/v1/accounts/"+target.ID+"/deactivate", e.Backend, fmt.Sprintf(`{"email":%q}`, target.Email))
	if code != http.StatusAccepted {
		t.Fatalf("deactivate: %d %v", code, body)
	}
	id := contract.DeactivationWorkflowID(string(e.Deps.Subjects.UserID(target.ID)))
	waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var v contract.DeactivationView
	if err := e.Temporal.GetWorkflow(waitCtx, id, "").Get(waitCtx, &v); err != nil {
		t.Fatalf("the deactivation: %v", err)
	}
	if v.Status != contract.AccountErased {
		t.Fatalf("deactivation ended %+v, want the account erased", v)
	}

	// The application: the person's rows and files gone, the other's kept.
	e.assertDemoPersonErased(t, target, other)
	// The receipt in the audit trail and in the last mail.
	ref := string(e.Deps.Subjects.UserID(target.ID))
	if n := e.count(t, "SELECT count(*) FROM lethe.audit_log WHERE subject_ref = $1 AND action IN ('erasure.receipt', 'account.erased')", ref); n != 2 {
		t.Errorf("%d of the receipt and the account's erasure in the audit trail, want both", n)
	}
	if mails, err := e.SendGrid.WaitFor(target.Email, 2, 10*time.Second); err != nil || !strings.Contains(mails[len(mails)-1].Text, "the files of your projects") {
		t.Errorf("the last mail (%v): want the receipt, naming what went", err)
	}
	// The engine: the erasure ran in the deactivation; one AfterErasure
	// waits for the purchase's hold to end.
	if c, err := e.Raw.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s'", contract.WorkflowEraseSubject)}); err != nil || c.GetCount() != 0 {
		t.Errorf("%d EraseSubject workflows (%v), want none", c.GetCount(), err)
	}
	q, err := e.Temporal.QueryWorkflow(ctx, contract.AfterErasureWorkflowID(id), "", contract.QueryProgress)
	if err != nil {
		t.Fatalf("what outlives the erasure: %v", err)
	}
	var after contract.AfterErasureProgress
	if err := q.Get(&after); err != nil || len(after.Holds) != 1 || after.Holds[0].Table != "demo.purchases" || !after.Holds[0].EndedAt.IsZero() {
		t.Fatalf("AfterErasure %+v (%v): want the purchase's hold waiting", after, err)
	}
	keepHistory(t, e.Stack, id, "deactivation-erased-in-itself")
	assertHistoryClean(t, e.Stack, id, target.ID, target.Email, target.Name)
}

func TestCorrectionsAndConsentReachTheDatabaseAndTheProcessors(t *testing.T) {
	person := demo.Accounts(1)[0]
	stripe, mailchimp, marketing, crm := processorfake.NewStripe(t), processorfake.NewMailchimp(t), processorfake.NewSendGrid(t), processorfake.NewWebhook(t)
	customer := stripe.AddCustomer(processorfake.StripeCustomer{Email: person.Email, Name: person.Name})
	mailchimp.AddList("news")
	mailchimp.AddMember("news", processorfake.MailchimpMember{Email: person.Email, Status: "subscribed", MergeFields: map[string]string{"FNAME": "Ada"}})
	marketing.AddGroup(42)
	marketing.AddContact(processorfake.SendGridContact{Email: person.Email})
	crm.AddSubject(processorfake.WebhookSubject{UserID: person.ID, Email: person.Email})
	t.Setenv("LETHE_STRIPE_KEY", stripe.APIKey)
	t.Setenv("LETHE_MAILCHIMP_KEY", mailchimp.APIKey)
	t.Setenv("LETHE_SENDGRID_MARKETING_KEY", marketing.APIKey)
	t.Setenv("LETHE_CRM_SECRET", string(crm.Secret))
	e := newE2EWith(t, 2, nil, func(m *datamap.Map) {
		m.Processors = []processors.Config{
			{Name: "stripe", Kind: "stripe", BaseURL: stripe.URL(), CredentialEnv: "LETHE_STRIPE_KEY"},
			{Name: "mailchimp", Kind: "mailchimp", BaseURL: mailchimp.URL(), CredentialEnv: "LETHE_MAILCHIMP_KEY", Options: map[string]string{"list_id": "news", "purposes": "marketing_email"}},
			{Name: "sendgrid-marketing", Kind: "sendgrid", BaseURL: marketing.URL(), CredentialEnv: "LETHE_SENDGRID_MARKETING_KEY", Options: map[string]string{"groups": "marketing_email=42"}},
			{Name: "crm", Kind: "webhook", BaseURL: crm.URL(), CredentialEnv: "LETHE_CRM_SECRET"},
		}
	})
	ctx := context.Background()
	submit := func(auth, body string) string {
		t.Helper()
		code, out := e.call(t, "POST", "/v1/requests", auth, body)
		if code != http.StatusAccepted {
			t.Fatalf("submit %s: %d %v", body, code, out)
		}
		done := e.waitStatus(t, out["id"].(string), domain.StatusCompleted)
		keepHistory(t, e.Stack, out["id"].(string), "request-change-"+strings.SplitN(strings.TrimPrefix(body, `{"type":"`), `"`, 2)[0])
		return fmt.Sprint(done["outcome"])
	}
	who := fmt.Sprintf(`"subject":{"user_id":%q,"email":%q},"verified":true`, person.ID, person.Email)

	// A correction reaches the database and the processors that hold the field.
	outcome := submit(e.Backend, `{"type":"rectification",`+who+`,"details":{"corrections":{"display_name":"Ada Lovelace"}}}`)
	var name string
	if err := e.App.QueryRow(ctx, "SELECT display_name FROM demo.profiles WHERE account_id = $1", person.ID).Scan(&name); err != nil || name != "Ada Lovelace" {
		t.Fatalf("database: %q %v", name, err)
	}
	if c, _ := stripe.Customer(customer); c.Name != "Ada Lovelace" {
		t.Fatalf("stripe customer name %q (outcome %s)", c.Name, outcome)
	}
	if m, _ := mailchimp.Member("news", person.Email); m.MergeFields["FNAME"] != "Ada Lovelace" {
		t.Fatalf("mailchimp FNAME %q (outcome %s)", m.MergeFields["FNAME"], outcome)
	}
	if len(crm.Deliveries()) == 0 {
		t.Fatalf("the CRM webhook was not called (outcome %s)", outcome)
	}
	// A correction of a field that cannot be corrected, or a bad value, is refused per field.
	code, body := e.call(t, "POST", "/v1/requests", e.Backend, `{"type":"rectification",`+who+`,"details":{"corrections":{"email":"new@example.com","country":"Germany"}}}`)
	fields, _ := body["fields"].(map[string]any)
	if code != http.StatusUnprocessableEntity || fields["email"] == nil || fields["country"] == nil || strings.Contains(fmt.Sprint(body), "new@example.com") {
		t.Fatalf("bad corrections: %d %v", code, body)
	}

	// An opt-out reaches the database, Mailchimp and SendGrid Marketing; a re-subscribe reverses it.
	consent := func(granted bool) string {
		return submit(e.Backend, fmt.Sprintf(`{"type":"consent",%s,"details":{"consent":{"purpose":"marketing_email","granted":%t}}}`, who, granted))
	}
	consent(false)
	var granted bool
	var source string
	if err := e.App.QueryRow(ctx, "SELECT granted, source FROM demo.marketing_consents WHERE account_id = $1 AND purpose = 'marketing_email'", person.ID).Scan(&granted, &source); err != nil || granted || source != "request" {
		t.Fatalf("database consent: %v %q %v", granted, source, err)
	}
	if m, _ := mailchimp.Member("news", person.Email); m.Status != "unsubscribed" {
		t.Fatalf("mailchimp status %q after the opt-out", m.Status)
	}
	if !marketing.Suppressed(42, person.Email) {
		t.Fatal("SendGrid Marketing group 42 does not suppress the address after the opt-out")
	}
	consent(true)
	if m, _ := mailchimp.Member("news", person.Email); m.Status != "subscribed" {
		t.Fatalf("mailchimp status %q after the re-subscribe", m.Status)
	}
	if marketing.Suppressed(42, person.Email) {
		t.Fatal("SendGrid Marketing still suppresses the address after the re-subscribe")
	}

	// An opt-out of sale or sharing needs no verification, and is due in 15 business days.
	code, body = e.call(t, "POST", "/v1/requests", "", fmt.Sprintf(`{"type":"consent","subject":{"email":%q},"jurisdiction":"ccpa","details":{"consent":{"purpose":"sale_sharing","granted":false}}}`, person.Email))
	if code != http.StatusAccepted {
		t.Fatalf("sale opt-out: %d %v", code, body)
	}
	due, _ := time.Parse(time.RFC3339, fmt.Sprint(body["due_at"]))
	if want := domain.AddBusinessDays(time.Now().UTC(), 15); due.Sub(want).Abs() > time.Hour {
		t.Fatalf("sale opt-out due %s, want 15 business days (%s)", due, want)
	}
	e.waitStatus(t, body["id"].(string), domain.StatusCompleted)
	if err := e.App.QueryRow(ctx, "SELECT granted FROM demo.marketing_consents WHERE account_id = $1 AND purpose = 'sale_sharing'", person.ID).Scan(&granted); err != nil || granted {
		t.Fatalf("sale_sharing consent after the opt-out: %v %v", granted, err)
	}
	if strings.Contains(e.LogOutput.String(), "Ada Lovelace") {
		t.Error("logs contain a corrected value")
	}
}

func TestBreachNoticeReachesEveryAffectedPersonOnceAndTheReportIsInS3(t *testing.T) {
	e := newE2E(t, 6, nil)
	ctx := context.Background()
	people := demo.Accounts(6)
	// Account 6 is not among those affected at first; it is added later from a list in S3.
	if _, err := e.App.Exec(ctx, `UPDATE demo.accounts SET created_at = now() - interval '400 days' WHERE id = $1`, people[5].ID); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"aware_at":%q,"what_happened":"A backup of the support database was readable without a password for three hours.",
		"data_categories":["email address","support ticket text"],"consequences":"Phishing mails are possible.",
		"measures":"We closed the access and rotated every credential.","what_you_can_do":"Be wary of mails asking for your password.",
		"contact":"privacy@example.com","records":20,
		"affected":{"selector":"accounts_created_between","params":{"from":%q,"to":%q}}}`,
		time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339), time.Now().AddDate(0, 0, -30).UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if code, _ := e.call(t, "POST", "/v1/incidents", e.Backend, body); code != http.StatusForbidden {
		t.Fatalf("a backend key declaring an incident: %d", code)
	}
	code, out := e.call(t, "POST", "/v1/incidents", e.Operator, body)
	if code != http.StatusAccepted {
		t.Fatalf("declare: %d %v", code, out)
	}
	id := out["id"].(string)
	waitIncident := func(sent float64) map[string]any {
		var v map[string]any
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%v notices sent", sent), func() bool {
			_, v = e.call(t, "GET", "/v1/incidents/"+id, e.Operator, "")
			counts, _ := v["counts"].(map[string]any)
			return counts != nil && counts["Sent"] == sent && v["status"] == contract.IncidentNotified
		})
		return v
	}
	v := waitIncident(5)
	for _, p := range people[:5] {
		got := e.SendGrid.To(p.Email)
		if len(got) != 1 || !strings.Contains(got[0].Text, "What happened") || !strings.Contains(got[0].Text, "rotated every credential") {
			t.Fatalf("%s received %d notices: %+v", p.ID, len(got), got)
		}
	}
	if n := len(e.SendGrid.To(people[5].Email)); n != 0 {
		t.Fatalf("an unaffected person got %d notices", n)
	}
	for _, ext := range []string{".html", ".json"} {
		if n, err := objectstore.CountPrefix(ctx, e.S3, e.Config.S3ExportBucket, "reports/incidents/"+id+"/phase-1"+ext); err != nil || n.Total() != 1 {
			t.Fatalf("authority report %s in S3: %d (%v)", ext, n, err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "a later phase of the report, with the counts", func() bool {
		_, v = e.call(t, "GET", "/v1/incidents/"+id, e.Operator, "")
		reports, _ := v["reports"].([]any)
		return len(reports) >= 2
	})

	// A person found later is told too, and nobody twice.
	if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Config.S3ExportBucket), Key: aws.String("incidents/" + id + "/more.txt"),
		Body: strings.NewReader(people[5].ID + "\n" + people[0].ID + "\n")}); err != nil {
		t.Fatal(err)
	}
	if code, out := e.call(t, "POST", "/v1/incidents/"+id+"/people", e.Operator, `{"object_key":"incidents/`+id+`/more.txt"}`); code != http.StatusOK {
		t.Fatalf("add people: %d %v", code, out)
	}
	waitIncident(6)
	for _, p := range people {
		if n := len(e.SendGrid.To(p.Email)); n != 1 {
			t.Errorf("%s received %d notices, want exactly one", p.ID, n)
		}
	}
	if code, _ := e.call(t, "POST", "/v1/incidents/"+id+"/close", e.Operator, ""); code != http.StatusOK {
		t.Fatalf("close: %d", code)
	}

	// A policy change goes to every active account, once.
	code, out = e.call(t, "POST", "/v1/policy-notices", e.Operator, `{"title":"New privacy policy","summary":"We now keep support tickets for two years.","url":"https://example.com/privacy","audience":{"selector":"active_accounts"}}`)
	if code != http.StatusAccepted {
		t.Fatalf("policy notice: %d %v", code, out)
	}
	testenv.Eventually(t, 30*time.Second, "the policy notice to go out", func() bool {
		for _, p := range people {
			if len(e.SendGrid.To(p.Email)) != 2 {
				return false
			}
		}
		return true
	})
	last := e.SendGrid.To(people[0].Email)[1]
	if !strings.Contains(last.Text, "take effect on") {
		t.Fatalf("policy notice text %q", last.Text)
	}
	keepHistory(t, e.Stack, id, "breach-notified-more-people-closed")
	keepHistoryOfType(t, e.Stack, contract.WorkflowSendNotices, "send-notices")
	keepHistoryOfType(t, e.Stack, contract.WorkflowPolicyNotice, "policy-notice")
}

// restartWorker stops the worker, as a deploy would, and starts a new one.
func (e *e2e) restartWorker(t *testing.T) {
	t.Helper()
	e.Worker.Stop()
	w := registry.NewWorker(e.Temporal, e.Config.TemporalTaskQueue, registry.WorkerOptions(), e.Deps)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	e.Worker = w
	t.Cleanup(w.Stop)
}

func TestAWorkerRestartInTheMiddleOfANoticeRunSendsNobodyTwice(t *testing.T) {
	e := newE2E(t, 1, nil)
	ctx := context.Background()
	const n = 5000
	if _, err := e.App.Exec(ctx, `INSERT INTO demo.accounts (id, email) SELECT 'r-' || lpad(g::text, 5, '0'), 'r' || g || '@example.com' FROM generate_series(1, $1::int) g`, n); err != nil {
		t.Fatal(err)
	}
	e.SendGrid.KeepBodies(false)
	code, out := e.call(t, "POST", "/v1/policy-notices", e.Operator, `{"title":"New policy","summary":"Shorter retention.","url":"https://example.com/p","audience":{"selector":"active_accounts"}}`)
	if code != http.StatusAccepted {
		t.Fatalf("policy notice: %d %v", code, out)
	}
	testenv.Eventually(t, 30*time.Second, "the first batches to go", func() bool { return e.SendGrid.Calls() >= 1 })
	e.restartWorker(t)
	testenv.Eventually(t, 60*time.Second, "every notice to go", func() bool { return e.SendGrid.Recipients() >= n+1 })
	time.Sleep(500 * time.Millisecond) // anything sent twice would arrive now
	if got := e.SendGrid.Recipients(); got != n+1 {
		t.Fatalf("%d recipients for %d people", got, n+1)
	}
	for i := 1; i <= n; i += 97 {
		if c := e.SendGrid.Count(fmt.Sprintf("r%d@example.com", i)); c != 1 {
			t.Fatalf("r%d got %d notices", i, c)
		}
	}
	if calls := e.SendGrid.Calls(); calls > n/1000+2 {
		t.Fatalf("%d SendGrid calls for %d people", calls, n+1)
	}
	keepHistoryOfType(t, e.Stack, contract.WorkflowPolicyNotice, "policy-notice-across-a-worker-restart")
}

func TestAccessExportBundlesEverySystemAndTheLinkWorks(t *testing.T) {
	person := demo.Accounts(1)[0]
	stripe, mailchimp := processorfake.NewStripe(t), processorfake.NewMailchimp(t)
	stripe.AddCustomer(processorfake.StripeCustomer{Email: person.Email, Name: person.Name})
	mailchimp.AddList("news")
	mailchimp.AddMember("news", processorfake.MailchimpMember{Email: person.Email, Status: "subscribed", MergeFields: map[string]string{"FNAME": "Ada"}})
	t.Setenv("LETHE_STRIPE_KEY", stripe.APIKey)
	t.Setenv("LETHE_MAILCHIMP_KEY", mailchimp.APIKey)
	e := newE2EWith(t, 2, nil, func(m *datamap.Map) {
		m.Processors = []processors.Config{
			{Name: "stripe", Kind: "stripe", BaseURL: stripe.URL(), CredentialEnv: "LETHE_STRIPE_KEY"},
			{Name: "mailchimp", Kind: "mailchimp", BaseURL: mailchimp.URL(), CredentialEnv: "LETHE_MAILCHIMP_KEY", Options: map[string]string{"list_id": "news", "purposes": "marketing_email"}},
		}
	})
	ctx := context.Background()
	code, out := e.call(t, "POST", "/v1/requests", e.Backend, fmt.Sprintf(`{"type":"access","subject":{"user_id":%q,"email":%q},"verified":true}`, person.ID, person.Email))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, out)
	}
	id := out["id"].(string)
	e.waitStatus(t, id, domain.StatusCompleted)
	keepHistory(t, e.Stack, id, "request-access-completed")
	keepHistory(t, e.Stack, id+"-export", "build-export")
	keepHistory(t, e.Stack, contract.ExpiryWorkflowID(id), "keep-export-waiting")
	mails, err := e.SendGrid.WaitFor(person.Email, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`https?://[^\s"<>]+`).FindString(mails[len(mails)-1].Text)
	if !strings.Contains(link, "X-Amz-Signature") {
		t.Fatalf("no presigned link in the completion mail: %q", mails[len(mails)-1].Text)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	zipBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the link answered %d", resp.StatusCode)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatalf("not a ZIP: %v", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	// Every row of the person, from every table.
	m, _ := demo.DataMap()
	for _, tbl := range m.Tables {
		var rows []map[string]any
		if err := json.Unmarshal(files["data/postgres/"+tbl.Name+".json"], &rows); err != nil {
			t.Fatalf("%s: %v", tbl.Name, err)
		}
		from, where, err := appdb.Match(tbl, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := e.count(t, "SELECT count(*) FROM "+from+" WHERE "+where, person.ID); len(rows) != want {
			t.Errorf("%s: %d rows in the bundle, %d in the database", tbl.Name, len(rows), want)
		}
	}
	// Every file, byte for byte.
	for _, prefix := range []string{"projects/" + person.ID + "/", "id-documents/" + person.ID + "/"} {
		p := s3.NewListObjectsV2Paginator(e.S3, &s3.ListObjectsV2Input{Bucket: aws.String(demo.Bucket), Prefix: aws.String(prefix)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				obj, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(demo.Bucket), Key: o.Key})
				if err != nil {
					t.Fatal(err)
				}
				want, _ := io.ReadAll(obj.Body)
				obj.Body.Close()
				if got, ok := files["files/"+demo.Bucket+"/"+aws.ToString(o.Key)]; !ok || !bytes.Equal(got, want) {
					t.Errorf("file %s missing or changed in the bundle", aws.ToString(o.Key))
				}
			}
		}
	}
	// The processors' data, the Art. 15 sections, and no excluded field anywhere.
	for _, name := range []string{"data/processors/stripe.json", "data/processors/mailchimp.json", "index.html", "manifest.json"} {
		if len(files[name]) == 0 {
			t.Errorf("%s missing from the bundle", name)
		}
	}
	index := strings.ToLower(string(files["index.html"]))
	for _, section := range []string{"purpose", "recipient", "retention", "right", "password_hash"} {
		if !strings.Contains(index, section) {
			t.Errorf("index.html lacks %q", section)
		}
	}
	for name, b := range files {
		if name != "index.html" && name != "manifest.json" && bytes.Contains(b, []byte("argon2id")) {
			t.Errorf("%s contains the excluded password hash", name)
		}
	}
	// A fresh link while the bundle is kept.
	code, out = e.call(t, "POST", "/v1/requests/"+id+"/link", e.Backend, "")
	if code != http.StatusOK || !strings.Contains(fmt.Sprint(out["url"]), "X-Amz-Signature") {
		t.Fatalf("new link: %d %v", code, out)
	}
	assertHistoryClean(t, e.Stack, id+"-export", person.Email, person.ID)
}
