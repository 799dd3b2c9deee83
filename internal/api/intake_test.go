package api

// Unit tests of POST /v1/requests and of how the request routes map what
// Temporal answers: the real routes through httptest, a real database (a
// fresh one per test, with Lethe's migrations), and a fake Temporal client
// that records every call. No Temporal server.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/policy"
	"github.com/lethe-privacy/lethe/internal/ratelimit"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// nothingLost is the documented answer of every 503.
const nothingLost = `{"error":"could not do that now; nothing was lost, try again"}`

// fakeStart is one workflow the API started.
type fakeStart struct {
	opts     client.StartWorkflowOptions
	workflow any
	input    contract.RequestInput
}

// recordingTemporal stands in for the Temporal client: it records the
// workflows started, described, queried and updated, and fails each kind of
// call with the error set for it. A workflow it started is running; any
// other is not found. Calls it does not fake panic on the nil client.Client,
// which the API answers 500.
type recordingTemporal struct {
	client.Client

	mu          sync.Mutex
	starts      []fakeStart
	failedIDs   []string // starts refused with startErr
	describes   []string
	queries     []string
	updates     []client.UpdateWorkflowOptions
	startErr    error
	describeErr error
	queryErr    error
	queryView   any // what a query answers when it does not fail
	updateErr   error
}

func (f *recordingTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		f.failedIDs = append(f.failedIDs, o.ID)
		return nil, f.startErr
	}
	if len(args) != 1 {
		panic(fmt.Sprintf("started with %d arguments, want 1", len(args)))
	}
	f.starts = append(f.starts, fakeStart{opts: o, workflow: wf, input: args[0].(contract.RequestInput)})
	return nil, nil
}

func (f *recordingTemporal) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.describes = append(f.describes, id)
	if f.describeErr != nil {
		return nil, f.describeErr
	}
	for _, s := range f.starts {
		if s.opts.ID == id {
			return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
				Status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING}}, nil
		}
	}
	return nil, serviceerror.NewNotFound("workflow not found")
}

func (f *recordingTemporal) QueryWorkflow(_ context.Context, id, _, query string, _ ...any) (converter.EncodedValue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, id+" "+query)
	if f.queryErr != nil {
		return nil, f.queryErr
	}
	return jsonValue{f.queryView}, nil
}

func (f *recordingTemporal) UpdateWorkflow(_ context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, o)
	if f.updateErr != nil {
		return nil, f.updateErr
	}
	return doneUpdate{}, nil
}

func (f *recordingTemporal) started() []fakeStart {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeStart(nil), f.starts...)
}

// jsonValue is a query's answer, as the SDK's data converter would decode it.
type jsonValue struct{ v any }

func (j jsonValue) HasValue() bool { return j.v != nil }
func (j jsonValue) Get(ptr any) error {
	b, err := json.Marshal(j.v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

// roleKeys authenticates the tokens "backend" and "operator" with their role.
type roleKeys struct{}

func (roleKeys) Authenticate(_ context.Context, token string) (apikeys.Key, error) {
	switch token {
	case apikeys.RoleBackend, apikeys.RoleOperator:
		return apikeys.Key{ID: "key-" + token, Role: token}, nil
	}
	return apikeys.Key{}, apikeys.ErrUnauthenticated
}

// syncBuffer collects the log lines of handlers that may run concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// intakeEnv is the API over a fresh database, with a recording Temporal.
type intakeEnv struct {
	s    *Server
	tmp  *recordingTemporal
	db   *pgxpool.Pool
	logs *syncBuffer
}

const intakeMaxBody = 4096

// newIntakeEnv builds the API with the configuration vars (defaults for
// the rest), identities sealed in the clear (plainKeys) and no rate limits.
func newIntakeEnv(t *testing.T, vars map[string]string) *intakeEnv {
	t.Helper()
	cfg, err := config.FromMap(vars)
	if err != nil {
		t.Fatal(err)
	}
	book, err := policy.FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := person.NewHasher(bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	e := &intakeEnv{tmp: &recordingTemporal{}, db: pgtest.NewLethePool(t), logs: &syncBuffer{}}
	e.s = &Server{Temporal: e.tmp, DB: e.db, Subjects: h, Keys: plainKeys{}, Policies: book, APIKeys: roleKeys{},
		TaskQueue: "lethe-test", MaxBody: intakeMaxBody, Log: slog.New(slog.NewTextHandler(e.logs, nil))}
	return e
}

// call sends body to path with token as the API key ("" is the person) from
// the client address addr ("" is httptest's).
func (e *intakeEnv) call(t *testing.T, method, path, token, addr, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if addr != "" {
		r.RemoteAddr = addr
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, r)
	return rec
}

func (e *intakeEnv) submit(t *testing.T, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	return e.call(t, http.MethodPost, "/v1/requests", token, "", body)
}

// submitted decodes an answer that must be want.
func submitted(t *testing.T, rec *httptest.ResponseRecorder, want int) Submitted {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("answer %d %s, want %d", rec.Code, rec.Body, want)
	}
	var out Submitted
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %s: %v", rec.Body, err)
	}
	return out
}

// requestRow is a row of lethe.requests.
type requestRow struct {
	ID, Type, SubjectRef, Jurisdiction, Status, WorkflowID string
	ReceivedAt                                             time.Time
	DueAt, ClosedAt                                        *time.Time
}

func (e *intakeEnv) rows(t *testing.T) []requestRow {
	t.Helper()
	rows, err := e.db.Query(context.Background(), `SELECT id, type, subject_ref, jurisdiction, status, workflow_id, received_at, due_at, closed_at
		FROM lethe.requests ORDER BY received_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []requestRow
	for rows.Next() {
		var r requestRow
		if err := rows.Scan(&r.ID, &r.Type, &r.SubjectRef, &r.Jurisdiction, &r.Status, &r.WorkflowID, &r.ReceivedAt, &r.DueAt, &r.ClosedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *intakeEnv) row(t *testing.T, id string) requestRow {
	t.Helper()
	for _, r := range e.rows(t) {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no row for %s in lethe.requests", id)
	return requestRow{}
}

// close ends a request as its workflow would, with status.
func (e *intakeEnv) close(t *testing.T, id, status string) {
	t.Helper()
	tag, err := e.db.Exec(context.Background(), `UPDATE lethe.requests SET status = $2, closed_at = now() WHERE id = $1`, id, status)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("close %s: %v, %d rows", id, err, tag.RowsAffected())
	}
}

// insertClaim records an open request of typ for ref received at, as a
// submission claims it before it starts the workflow.
func (e *intakeEnv) insertClaim(t *testing.T, ref, typ string, at time.Time) string {
	t.Helper()
	id, err := newRequestID()
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.db.Exec(context.Background(), `INSERT INTO lethe.requests (id, type, subject_ref, jurisdiction, status, workflow_id, received_at, due_at)
		VALUES ($1, $2, $3, 'gdpr', 'received', $1, $4::timestamptz, $4::timestamptz + interval '30 days')`, id, typ, ref, at)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// assertNoneLogged checks that no log line names any of the values.
func (e *intakeEnv) assertNoneLogged(t *testing.T, values ...string) {
	t.Helper()
	logs := strings.ToLower(e.logs.String())
	for _, v := range values {
		if strings.Contains(logs, strings.ToLower(v)) {
			t.Errorf("the logs name %q:\n%s", v, e.logs.String())
		}
	}
}

func sameInstant(a, b time.Time) bool {
	d := a.Sub(b)
	return d < time.Microsecond && d > -time.Microsecond // PostgreSQL keeps microseconds
}

// A valid submission is answered 202 with its id, status, deadline, token
// and routes; the request is recorded, open, with that deadline; one
// workflow is started with that id, and only the sealed identity in it
// carries the person's email.
func TestAValidSubmissionIsRecordedAndStartsOneWorkflow(t *testing.T) {
	e := newIntakeEnv(t, nil)
	const email = "ada.lovelace@example.com"
	out := submitted(t, e.submit(t, "", `{"type":"access","subject":{"email":"`+email+`"},"jurisdiction":"gdpr"}`), http.StatusAccepted)

	if !requestIDRe.MatchString(out.ID) || out.Status != "received" || out.Joined {
		t.Errorf("answer %+v: want a new request id, status received, not joined", out)
	}
	if out.RequestToken == "" || out.RequestToken != e.s.Subjects.RequestToken(out.ID) {
		t.Errorf("request token %q: want the one derived for %s", out.RequestToken, out.ID)
	}
	base := "/v1/requests/" + out.ID
	if want := map[string]string{"self": base, "verify": base + "/verify", "resend": base + "/resend"}; !reflect.DeepEqual(out.Links, want) {
		t.Errorf("links %v, want %v", out.Links, want)
	}

	rows := e.rows(t)
	if len(rows) != 1 {
		t.Fatalf("lethe.requests holds %d rows, want 1: %+v", len(rows), rows)
	}
	ref := string(e.s.Subjects.Email(email))
	got := rows[0]
	if got.ID != out.ID || got.WorkflowID != out.ID || got.Type != "access" || got.SubjectRef != ref ||
		got.Jurisdiction != "gdpr" || got.Status != "received" || got.ClosedAt != nil {
		t.Errorf("row %+v: want request %s, access, the person's ref, gdpr, received, open", got, out.ID)
	}
	pol := e.s.Policies.For("gdpr", "access")
	if got.DueAt == nil || !sameInstant(*got.DueAt, out.DueAt) || !sameInstant(pol.DueAt(got.ReceivedAt), out.DueAt) {
		t.Errorf("due %v, row %v received %v: want the policy's deadline from receipt (%v)", out.DueAt, got.DueAt, got.ReceivedAt, pol.DueAt(got.ReceivedAt))
	}

	starts := e.tmp.started()
	if len(starts) != 1 {
		t.Fatalf("%d workflows started, want 1", len(starts))
	}
	st := starts[0]
	if st.opts.ID != out.ID || st.opts.TaskQueue != "lethe-test" || st.workflow != contract.WorkflowPrivacyRequest {
		t.Errorf("started %q on %q as %v: want %s on lethe-test as %s", st.opts.ID, st.opts.TaskQueue, st.workflow, out.ID, contract.WorkflowPrivacyRequest)
	}
	in := st.input
	if in.RequestID != out.ID || in.Type != "access" || in.SubjectRef != ref || in.Jurisdiction != "gdpr" ||
		!in.HasEmail || in.HasUserID || in.PreVerified || in.Expedited || in.SubmittedBy != "subject" || in.PushTo != "" {
		t.Errorf("workflow input %+v", in)
	}
	if !reflect.DeepEqual(in.Policy, pol) {
		t.Errorf("workflow policy %+v, want %+v", in.Policy, pol)
	}
	who, err := person.Open(context.Background(), plainKeys{}, ref, in.Identity)
	if err != nil || who.Email != email || who.UserID != "" {
		t.Errorf("sealed identity %+v, %v: want the email", who, err)
	}
	in.Identity = nil
	plain, _ := json.Marshal(in)
	if bytes.Contains(plain, []byte(email)) || strings.Contains(fmt.Sprintf("%+v", st.opts.TypedSearchAttributes), email) {
		t.Errorf("the email is in the workflow's input or search attributes outside the sealed identity: %s", plain)
	}
	e.assertNoneLogged(t, email)
}

// The backend vouches for a person known by user id only: no code, no
// token, no code routes; the jurisdiction defaults to the company's own.
func TestABackendSubmissionByUserIDIsPreVerified(t *testing.T) {
	e := newIntakeEnv(t, nil)
	out := submitted(t, e.submit(t, apikeys.RoleBackend, `{"type":"erasure","subject":{"user_id":"u-1042"},"verified":true}`), http.StatusAccepted)
	if out.RequestToken != "" || len(out.Links) != 1 || out.Links["self"] != "/v1/requests/"+out.ID {
		t.Errorf("answer %+v: want no token and the self link only", out)
	}
	row := e.row(t, out.ID)
	if row.SubjectRef != string(e.s.Subjects.UserID("u-1042")) || row.Type != "erasure" || row.Jurisdiction != domain.Company {
		t.Errorf("row %+v: want the user id's ref, erasure, jurisdiction %q", row, domain.Company)
	}
	starts := e.tmp.started()
	if len(starts) != 1 {
		t.Fatalf("%d workflows started, want 1", len(starts))
	}
	in := starts[0].input
	if !in.PreVerified || in.HasEmail || !in.HasUserID || in.SubmittedBy != "backend:key-backend" || in.Jurisdiction != domain.Company {
		t.Errorf("workflow input %+v: want pre-verified, user id only, by the backend key", in)
	}
}

// Bad input is refused 4xx with a reason that repeats none of the input's
// personal data; nothing is recorded, nothing started, nothing panics.
func TestBadSubmissionsAreRefusedWithAReason(t *testing.T) {
	e := newIntakeEnv(t, nil)
	const email = "ada@example.com"
	valid := func(extra string) string {
		return `{"type":"access","subject":{"email":"` + email + `"}` + extra + `}`
	}
	for _, c := range []struct {
		name, token, contentType, body string
		status                         int
		reason                         string
	}{
		{"syntax error", "", "", `{"type":"access",}`, 400, "malformed JSON: syntax error at byte"},
		{"truncated", "", "", `{"type":"access","subject":{"email":"` + email, 400, "malformed JSON"},
		{"two objects", "", "", valid("") + valid(""), 400, "malformed JSON: one object only"},
		{"empty body", "", "", ``, 400, "empty body"},
		{"not an object", "", "", `["access"]`, 400, "malformed JSON"},
		{"wrong field type", "", "", `{"type":1,"subject":{"email":"` + email + `"}}`, 400, `field "type" wants a string`},
		{"unknown field", "", "", valid(`,"name":"Ada"`), 400, `unknown field "name"`},
		{"unknown field named by an email", "", "", valid(`,"` + email + `":1`), 400, "unknown field (not shown)"},
		{"not JSON", "", "text/plain", valid(""), 415, "send application/json"},
		{"oversized body", "", "", valid(`,"jurisdiction":"` + strings.Repeat("g", intakeMaxBody) + `"`), 413, fmt.Sprintf("body larger than %d bytes", intakeMaxBody)},
		{"missing type", "", "", `{"subject":{"email":"` + email + `"}}`, 422, "type: required"},
		{"unknown type", "", "", `{"type":"deletion","subject":{"email":"` + email + `"}}`, 422, `type: "deletion" is not a request type`},
		{"type that is an email", "", "", `{"type":"` + email + `","subject":{"email":"` + email + `"}}`, 422, "type: (not shown) is not a request type"},
		{"unknown jurisdiction", "", "", valid(`,"jurisdiction":"mars"`), 422, "jurisdiction: want gdpr, ccpa or default"},
		{"missing subject", "", "", `{"type":"access"}`, 422, "subject.email: required"},
		{"user id without email from the person", "", "", `{"type":"access","subject":{"user_id":"u-1"}}`, 422, "subject.email: required"},
		{"no subject from the backend", apikeys.RoleBackend, "", `{"type":"erasure","verified":true}`, 422, "subject: give an email or a user_id"},
		{"bad email", "", "", `{"type":"access","subject":{"email":"ada@@example.com"}}`, 422, "subject.email: not a valid email address"},
		{"email with a name", "", "", `{"type":"access","subject":{"email":"Ada <` + email + `>"}}`, 422, "subject.email: not a valid email address"},
		{"email too long", "", "", `{"type":"access","subject":{"email":"` + strings.Repeat("a", 250) + `@example.com"}}`, 422, "subject.email: not a valid email address"},
		{"bad user id", apikeys.RoleBackend, "", `{"type":"erasure","subject":{"user_id":"u 1"},"verified":true}`, 422, "subject.user_id"},
		{"person vouching for themselves", "", "", valid(`,"verified":true`), 403, "verified: only the company's backend"},
		{"operator vouching", apikeys.RoleOperator, "", valid(`,"verified":true`), 403, "verified: only the company's backend"},
		{"backend expediting", apikeys.RoleBackend, "", `{"type":"erasure","subject":{"email":"` + email + `"},"expedited":"child"}`, 403, "expedited: only the privacy team"},
		{"expediting an access", apikeys.RoleOperator, "", valid(`,"expedited":"child"`), 422, "expedited: only an erasure"},
		{"key not valid", "nope", "", valid(""), 401, "API key not valid"},
		{"details on an access", "", "", valid(`,"details":{"push_to":"https://example.org/in"}`), 422, "details: only rectification, consent and portability requests carry details"},
		{"push_to not https", "", "", `{"type":"portability","subject":{"email":"` + email + `"},"details":{"push_to":"http://example.org/in"}}`, 422, "details.push_to: want an https:// address"},
		{"consent without purpose", "", "", `{"type":"consent","subject":{"email":"` + email + `"},"details":{"consent":{"granted":false}}}`, 422, "details.consent"},
		{"correction nobody may make", "", "", `{"type":"rectification","subject":{"email":"` + email + `"},"details":{"corrections":{"email":"ada.new@example.org"}}}`, 422, "corrections refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/requests", strings.NewReader(c.body))
			r.Header.Set("Content-Type", "application/json")
			if c.contentType != "" {
				r.Header.Set("Content-Type", c.contentType)
			}
			if c.token != "" {
				r.Header.Set("Authorization", "Bearer "+c.token)
			}
			rec := httptest.NewRecorder()
			e.s.Handler().ServeHTTP(rec, r)
			if rec.Code != c.status {
				t.Fatalf("answer %d %s, want %d", rec.Code, rec.Body, c.status)
			}
			var msg string
			if rec.Code == http.StatusUnprocessableEntity && strings.Contains(rec.Body.String(), `"fields"`) {
				// A refused detail: the reason and, for corrections, one per field.
				var refused FieldsRefused
				if err := json.Unmarshal(rec.Body.Bytes(), &refused); err != nil {
					t.Fatal(err)
				}
				msg = refused.Error
				for _, tok := range emailLike([]byte(c.body)) {
					if strings.Contains(rec.Body.String(), tok) {
						t.Errorf("the answer %s repeats %q", rec.Body, tok)
					}
				}
			} else {
				msg = checkRefusal(t, rec, []byte(c.body))
			}
			if !strings.Contains(msg, c.reason) {
				t.Errorf("reason %q, want it to say %q", msg, c.reason)
			}
		})
	}
	if rows := e.rows(t); len(rows) != 0 {
		t.Errorf("refused submissions left %d rows: %+v", len(rows), rows)
	}
	if n := len(e.tmp.started()) + len(e.tmp.failedIDs) + len(e.tmp.describes); n != 0 {
		t.Errorf("refused submissions reached Temporal %d times", n)
	}
	e.assertNoneLogged(t, email, "ada.new@example.org")
}

// The public routes are limited per client address: over the burst, 429
// with Retry-After, and nothing recorded; another address, or an API key
// from the same one, goes through.
func TestPublicRoutesAreLimitedPerClientAddress(t *testing.T) {
	e := newIntakeEnv(t, nil)
	e.s.PerIP = ratelimit.New(0.001, 2)
	const addr = "198.51.100.7:40000"
	person := func(n int) string {
		return fmt.Sprintf(`{"type":"access","subject":{"email":"p%d@example.com"}}`, n)
	}
	first := submitted(t, e.call(t, http.MethodPost, "/v1/requests", "", addr, person(1)), http.StatusAccepted)
	submitted(t, e.call(t, http.MethodPost, "/v1/requests", "", addr, person(2)), http.StatusAccepted)

	rec := e.call(t, http.MethodPost, "/v1/requests", "", addr, person(3))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("third submission from %s: %d %v %s, want 429 with Retry-After", addr, rec.Code, rec.Header(), rec.Body)
	}
	checkRefusal(t, rec, []byte(person(3)))
	rec = e.call(t, http.MethodGet, "/v1/requests/"+first.ID, "", addr, "", "X-Request-Token", first.RequestToken)
	if rec.Code != http.StatusTooManyRequests {
		t.Errorf("following a request from %s over the limit: %d, want 429", addr, rec.Code)
	}
	// Any Authorization header is not a way round it: only a valid key is.
	rec = e.call(t, http.MethodGet, "/v1/requests/"+first.ID, "", addr, "", "Authorization", "Bearer not-a-key")
	if rec.Code != http.StatusTooManyRequests {
		t.Errorf("a made-up key from %s over the limit: %d, want 429", addr, rec.Code)
	}
	if n := len(e.rows(t)); n != 2 || len(e.tmp.started()) != 2 || len(e.tmp.queries) != 0 {
		t.Fatalf("over the limit: %d rows, %d starts, %d queries; want 2, 2, 0", n, len(e.tmp.started()), len(e.tmp.queries))
	}

	submitted(t, e.call(t, http.MethodPost, "/v1/requests", "", "203.0.113.9:1", person(3)), http.StatusAccepted)
	submitted(t, e.call(t, http.MethodPost, "/v1/requests", apikeys.RoleBackend, addr, `{"type":"erasure","subject":{"user_id":"u-4"},"verified":true}`), http.StatusAccepted)
	if n := len(e.rows(t)); n != 4 || len(e.tmp.started()) != 4 {
		t.Errorf("%d rows, %d starts; want 4", n, len(e.tmp.started()))
	}
}

// The person's submissions are limited per person (whatever the type and
// the address's case): 429 with Retry-After, without naming them, nothing
// recorded. The backend's are not.
func TestSubmissionsAreLimitedPerPerson(t *testing.T) {
	e := newIntakeEnv(t, nil)
	e.s.PerSubject = ratelimit.New(0.001, 1)
	submitted(t, e.submit(t, "", `{"type":"access","subject":{"email":"ada@example.com"}}`), http.StatusAccepted)

	body := `{"type":"erasure","subject":{"email":"ADA@example.com"}}`
	rec := e.submit(t, "", body)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("second submission for the same person: %d %s, want 429 with Retry-After", rec.Code, rec.Body)
	}
	if msg := checkRefusal(t, rec, []byte(body)); !strings.Contains(msg, "too many requests for this person") {
		t.Errorf("reason %q", msg)
	}
	if n := len(e.rows(t)); n != 1 || len(e.tmp.started()) != 1 {
		t.Fatalf("%d rows, %d starts after the refusal; want 1, 1", n, len(e.tmp.started()))
	}

	submitted(t, e.submit(t, "", `{"type":"erasure","subject":{"email":"grace@example.com"}}`), http.StatusAccepted)
	submitted(t, e.submit(t, apikeys.RoleBackend, `{"type":"erasure","subject":{"email":"ada@example.com"},"verified":true}`), http.StatusAccepted)
	if n := len(e.rows(t)); n != 3 || len(e.tmp.started()) != 3 {
		t.Errorf("%d rows, %d starts; want 3", n, len(e.tmp.started()))
	}
	e.assertNoneLogged(t, "ada@example.com", "grace@example.com")
}

// The policy's limits per person and type (P14, access@ccpa=2/12mo by
// default) answer 429 with retry_at, the day the oldest counted request
// leaves the window; refused and cancelled requests do not count, nor
// requests under another jurisdiction.
func TestRequestLimitsAnswer429WithRetryAt(t *testing.T) {
	e := newIntakeEnv(t, nil)
	body := `{"type":"access","subject":{"email":"ada@example.com"},"jurisdiction":"ccpa"}`
	first := submitted(t, e.submit(t, "", body), http.StatusAccepted)
	// Received on the 15th of last month (no month-end rounding), now done.
	now := time.Now().UTC()
	at := time.Date(now.Year(), now.Month()-1, 15, 10, 0, 0, 0, time.UTC)
	if _, err := e.db.Exec(context.Background(), `UPDATE lethe.requests SET received_at = $2 WHERE id = $1`, first.ID, at); err != nil {
		t.Fatal(err)
	}
	e.close(t, first.ID, "completed")
	second := submitted(t, e.submit(t, "", body), http.StatusAccepted)
	e.close(t, second.ID, "completed")

	rec := e.submit(t, "", body)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("third access@ccpa in 12 months: %d %s, want 429 with Retry-After", rec.Code, rec.Body)
	}
	var refusal Refusal
	if err := json.Unmarshal(rec.Body.Bytes(), &refusal); err != nil {
		t.Fatal(err)
	}
	// A year after the first, on the calendar the API reads it in (the
	// database's times come in the local zone).
	want := e.row(t, first.ID).ReceivedAt.AddDate(1, 0, 0)
	if !refusal.RetryAt.Equal(want) || !strings.Contains(refusal.Error, "limit reached for access requests; you can ask again from "+want.Format("2 January 2006")) {
		t.Errorf("refusal %+v, want retry_at %v", refusal, want)
	}
	if strings.Contains(rec.Body.String(), "ada@") {
		t.Errorf("the refusal names the person: %s", rec.Body)
	}
	if n := len(e.rows(t)); n != 2 || len(e.tmp.started()) != 2 {
		t.Fatalf("%d rows, %d starts after the refusal; want 2, 2", n, len(e.tmp.started()))
	}

	// Another jurisdiction has no such limit.
	gdpr := submitted(t, e.submit(t, "", strings.Replace(body, "ccpa", "gdpr", 1)), http.StatusAccepted)
	e.close(t, gdpr.ID, "completed")
	// A cancelled request gives its place back.
	e.close(t, second.ID, "cancelled")
	submitted(t, e.submit(t, "", body), http.StatusAccepted)
	if n := len(e.rows(t)); n != 4 || len(e.tmp.started()) != 4 {
		t.Errorf("%d rows, %d starts; want 4", n, len(e.tmp.started()))
	}
}

// A second submission of the same type for the same person, while the
// first is open, joins it: 200, joined, the same id and deadline, but no
// request token (an email address does not open someone's request); no
// second row, no second workflow. Another type, or the same once the
// first has ended, is a new request.
func TestASecondIdenticalSubmissionJoinsTheFirst(t *testing.T) {
	e := newIntakeEnv(t, nil)
	first := submitted(t, e.submit(t, "", `{"type":"access","subject":{"email":"ada@example.com"},"jurisdiction":"gdpr"}`), http.StatusAccepted)
	joined := submitted(t, e.submit(t, "", `{"type":"access","subject":{"email":"Ada@Example.COM"},"jurisdiction":"gdpr"}`), http.StatusOK)
	if !joined.Joined || joined.ID != first.ID || joined.Status != "received" || !sameInstant(joined.DueAt, first.DueAt) ||
		first.RequestToken == "" || joined.RequestToken != "" || !reflect.DeepEqual(joined.Links, first.Links) {
		t.Errorf("joined %+v, want the first %+v", joined, first)
	}
	if rows := e.rows(t); len(rows) != 1 || len(e.tmp.started()) != 1 {
		t.Fatalf("after a duplicate: %d rows, %d starts; want 1, 1", len(rows), len(e.tmp.started()))
	}
	if len(e.tmp.describes) != 1 || e.tmp.describes[0] != first.ID {
		t.Errorf("described %v: want the open request's workflow checked once", e.tmp.describes)
	}

	other := submitted(t, e.submit(t, "", `{"type":"erasure","subject":{"email":"ada@example.com"}}`), http.StatusAccepted)
	e.close(t, first.ID, "completed")
	again := submitted(t, e.submit(t, "", `{"type":"access","subject":{"email":"ada@example.com"},"jurisdiction":"gdpr"}`), http.StatusAccepted)
	if other.ID == first.ID || again.ID == first.ID || again.ID == other.ID || again.Joined {
		t.Errorf("ids %s, %s, %s: want three requests", first.ID, other.ID, again.ID)
	}
	if rows := e.rows(t); len(rows) != 3 || len(e.tmp.started()) != 3 {
		t.Errorf("%d rows, %d starts; want 3, 3", len(rows), len(e.tmp.started()))
	}
}

// Identical submissions at the same moment: one claims the request and
// starts its workflow, every other joins it.
func TestConcurrentTwinsStartOneWorkflow(t *testing.T) {
	e := newIntakeEnv(t, nil)
	const twins = 8
	answers := make([]*httptest.ResponseRecorder, twins)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range twins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := httptest.NewRequest(http.MethodPost, "/v1/requests", strings.NewReader(`{"type":"erasure","subject":{"email":"ada@example.com"}}`))
			answers[i] = httptest.NewRecorder()
			e.s.Handler().ServeHTTP(answers[i], r)
		}()
	}
	close(start)
	wg.Wait()
	accepted, ids := 0, map[string]bool{}
	for _, rec := range answers {
		out := submitted(t, rec, rec.Code) // checked below
		switch {
		case rec.Code == http.StatusAccepted && !out.Joined:
			accepted++
		case rec.Code == http.StatusOK && out.Joined:
		default:
			t.Errorf("answer %d %s: want 202, or 200 joined", rec.Code, rec.Body)
		}
		ids[out.ID] = true
	}
	rows := e.rows(t)
	if accepted != 1 || len(ids) != 1 || len(rows) != 1 || len(e.tmp.started()) != 1 || !ids[rows[0].ID] {
		t.Errorf("%d accepted, ids %v, %d rows, %d starts: want one request", accepted, ids, len(rows), len(e.tmp.started()))
	}
}

// A claim whose workflow never started (the API died in between) is
// released after a minute, and the next submission is a new request; a
// younger one is being started and is joined.
func TestAClaimWithoutItsWorkflowIsReleasedAfterAMinute(t *testing.T) {
	e := newIntakeEnv(t, nil)
	ref := string(e.s.Subjects.Email("ada@example.com"))
	stale := e.insertClaim(t, ref, "access", time.Now().Add(-5*time.Minute))
	young := e.insertClaim(t, ref, "erasure", time.Now().Add(-10*time.Second))

	out := submitted(t, e.submit(t, "", `{"type":"access","subject":{"email":"ada@example.com"}}`), http.StatusAccepted)
	if out.ID == stale {
		t.Fatalf("joined the stale claim %s", stale)
	}
	if r := e.row(t, stale); r.Status != "abandoned" || r.ClosedAt == nil {
		t.Errorf("stale claim %+v: want abandoned and closed", r)
	}
	joined := submitted(t, e.submit(t, "", `{"type":"erasure","subject":{"email":"ada@example.com"}}`), http.StatusOK)
	if !joined.Joined || joined.ID != young {
		t.Errorf("answer %+v: want to join the claim %s being started", joined, young)
	}
	if r := e.row(t, young); r.Status != "received" || r.ClosedAt != nil {
		t.Errorf("young claim %+v: want it open", r)
	}
	if starts := e.tmp.started(); len(starts) != 1 || starts[0].opts.ID != out.ID {
		t.Errorf("started %+v: want only %s", starts, out.ID)
	}
}

// shape is an answer with what differs from one request to the next (id,
// token, deadline) replaced: what someone could compare.
func shape(t *testing.T, rec *httptest.ResponseRecorder, received time.Time) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	id, _ := m["id"].(string)
	if tok, ok := m["request_token"].(string); ok {
		m["request_token"] = strings.HasPrefix(tok, "rt_")
	}
	if due, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["due_at"])); err == nil {
		m["due_at"] = due.Sub(received).Round(time.Minute).String()
	}
	b, _ := json.Marshal(m)
	h := rec.Header().Clone()
	h.Del("Date")
	return fmt.Sprintf("%d %v %s", rec.Code, h, strings.ReplaceAll(string(b), id, "ID"))
}

// Someone erased and someone never seen get the same answer, and the same
// work behind it: no answer tells who was erased.
func TestAnErasedAndAnUnknownEmailGetTheSameAnswer(t *testing.T) {
	e := newIntakeEnv(t, nil)
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	keys, err := person.NewKeyring(e.db, []config.Key{{ID: "m1", Material: master}})
	if err != nil {
		t.Fatal(err)
	}
	e.s.Keys = keys
	ctx := context.Background()

	// The erased person: an erasure done, their key destroyed.
	const erased, stranger = "erased.person@example.com", "never.seen@example.com"
	ref := string(e.s.Subjects.Email(erased))
	old, err := person.Seal(ctx, keys, ref, person.Identity{Email: erased})
	if err != nil {
		t.Fatal(err)
	}
	done := e.insertClaim(t, ref, "erasure", time.Now().Add(-48*time.Hour))
	e.close(t, done, "completed")
	if err := keys.Destroy(ctx, ref); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ token, body string }{
		{"", `{"type":"access","subject":{"email":%q},"jurisdiction":"gdpr"}`},
		{apikeys.RoleBackend, `{"type":"erasure","subject":{"email":%q},"jurisdiction":"gdpr","verified":true}`},
	} {
		before := len(e.tmp.describes)
		recErased := e.submit(t, c.token, fmt.Sprintf(c.body, erased))
		describedErased := len(e.tmp.describes) - before
		recStranger := e.submit(t, c.token, fmt.Sprintf(c.body, stranger))
		describedStranger := len(e.tmp.describes) - before - describedErased
		if recErased.Code != http.StatusAccepted {
			t.Fatalf("erased person: %d %s, want 202", recErased.Code, recErased.Body)
		}
		outErased, outStranger := submitted(t, recErased, 202), submitted(t, recStranger, 202)
		a := shape(t, recErased, e.row(t, outErased.ID).ReceivedAt)
		b := shape(t, recStranger, e.row(t, outStranger.ID).ReceivedAt)
		if a != b {
			t.Errorf("the answers differ:\n erased:  %s\n unknown: %s", a, b)
		}
		if describedErased != describedStranger {
			t.Errorf("Temporal asked %d times for the erased person, %d for the unknown one", describedErased, describedStranger)
		}
	}

	// Both requests run, each with an identity its live key opens; what the
	// destroyed key sealed stays unreadable.
	starts := e.tmp.started()
	if len(starts) != 4 {
		t.Fatalf("%d workflows started, want 4", len(starts))
	}
	for _, st := range starts {
		who, err := person.Open(ctx, keys, st.input.SubjectRef, st.input.Identity)
		if err != nil || (who.Email != erased && who.Email != stranger) {
			t.Errorf("identity of %s: %+v, %v", st.opts.ID, who, err)
		}
	}
	if _, err := person.Open(ctx, keys, ref, old); !errors.Is(err, person.ErrKeyDestroyed) {
		t.Errorf("what the destroyed key sealed: %v, want ErrKeyDestroyed", err)
	}
	e.assertNoneLogged(t, erased, stranger)
}

// Temporal refusing the start answers the documented 503: nothing
// half-created is left (the claim goes with the failed start, so the
// person is not locked out), and the same submission then succeeds.
func TestAFailedStartAnswers503AndTheRetrySucceeds(t *testing.T) {
	e := newIntakeEnv(t, nil)
	e.tmp.startErr = serviceerror.NewUnavailable("frontend is unavailable")
	body := `{"type":"erasure","subject":{"email":"ada@example.com"}}`
	rec := e.submit(t, "", body)
	if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != nothingLost {
		t.Fatalf("answer %d %s, want 503 %s", rec.Code, rec.Body, nothingLost)
	}
	if len(e.tmp.failedIDs) != 1 {
		t.Fatalf("%d starts tried, want 1", len(e.tmp.failedIDs))
	}
	if rows := e.rows(t); len(rows) != 0 {
		t.Errorf("after the failed start lethe.requests holds %+v: want the claim released", rows)
	}
	if !strings.Contains(e.logs.String(), "start request") {
		t.Errorf("the failure is not logged: %s", e.logs)
	}

	e.tmp.startErr = nil
	out := submitted(t, e.submit(t, "", body), http.StatusAccepted)
	if out.ID == e.tmp.failedIDs[0] || out.Joined {
		t.Errorf("retry answered %+v", out)
	}
	if rows := e.rows(t); len(rows) != 1 || rows[0].ID != out.ID || rows[0].ClosedAt != nil || len(e.tmp.started()) != 1 {
		t.Errorf("after the retry: rows %+v, %d starts; want the one request", rows, len(e.tmp.started()))
	}
	e.assertNoneLogged(t, "ada@example.com")
}

// Temporal unavailable while a request is open: 503, and the open
// request's row is kept as it was (neither released nor abandoned), also a
// claim old enough to be released; once Temporal answers, the submission
// joins it.
func TestTemporalUnavailableKeepsTheOpenRequest(t *testing.T) {
	e := newIntakeEnv(t, nil)
	body := `{"type":"access","subject":{"email":"ada@example.com"}}`
	first := submitted(t, e.submit(t, "", body), http.StatusAccepted)
	stale := e.insertClaim(t, string(e.s.Subjects.Email("ada@example.com")), "erasure", time.Now().Add(-5*time.Minute))

	e.tmp.describeErr = serviceerror.NewUnavailable("frontend is unavailable")
	for _, b := range []string{body, `{"type":"erasure","subject":{"email":"ada@example.com"}}`} {
		rec := e.submit(t, "", b)
		if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != nothingLost {
			t.Fatalf("answer %d %s, want 503 %s", rec.Code, rec.Body, nothingLost)
		}
	}
	for _, id := range []string{first.ID, stale} {
		if r := e.row(t, id); r.Status != "received" || r.ClosedAt != nil {
			t.Errorf("row %+v after 503: want it open, as it was", r)
		}
	}
	if n := len(e.rows(t)); n != 2 || len(e.tmp.started()) != 1 || len(e.tmp.failedIDs) != 0 {
		t.Errorf("%d rows, %d starts: want 2 rows and the first start only", n, len(e.tmp.started()))
	}

	e.tmp.describeErr = nil
	joined := submitted(t, e.submit(t, "", body), http.StatusOK)
	if !joined.Joined || joined.ID != first.ID {
		t.Errorf("answer %+v: want to join %s", joined, first.ID)
	}
	e.assertNoneLogged(t, "ada@example.com")
}

// Lethe's database unavailable: 503 too, and nothing started.
func TestDatabaseUnavailableAnswers503(t *testing.T) {
	e := newIntakeEnv(t, nil)
	e.db.Close()
	rec := e.submit(t, "", `{"type":"access","subject":{"email":"ada@example.com"}}`)
	if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != nothingLost {
		t.Fatalf("answer %d %s, want 503 %s", rec.Code, rec.Body, nothingLost)
	}
	if len(e.tmp.started())+len(e.tmp.failedIDs) != 0 {
		t.Errorf("a workflow was started without a record")
	}
}

// Following a request: the workflow's own view while it runs; Lethe's
// record once its history is gone; 404 for no such request; 503 when
// Temporal cannot say.
func TestFollowingARequestMapsTemporalAnswers(t *testing.T) {
	e := newIntakeEnv(t, nil)
	id := e.insertClaim(t, string(e.s.Subjects.Email("ada@example.com")), "access", time.Now().Add(-time.Hour))
	e.close(t, id, "completed")
	unknown, _ := newRequestID()
	get := func(id string) *httptest.ResponseRecorder {
		return e.call(t, http.MethodGet, "/v1/requests/"+id, "", "", "", "X-Request-Token", e.s.Subjects.RequestToken(id))
	}
	status := func(rec *httptest.ResponseRecorder) string {
		var v map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &v)
		return fmt.Sprint(v["id"], " ", v["status"])
	}

	e.tmp.queryView = map[string]any{"id": id, "status": "awaiting_verification"}
	if rec := get(id); rec.Code != http.StatusOK || status(rec) != id+" awaiting_verification" {
		t.Errorf("running: %d %s, want the workflow's view", rec.Code, rec.Body)
	}
	e.tmp.queryErr = serviceerror.NewNotFound("workflow not found")
	if rec := get(id); rec.Code != http.StatusOK || status(rec) != id+" completed" {
		t.Errorf("history gone: %d %s, want the record", rec.Code, rec.Body)
	}
	if rec := get(unknown); rec.Code != http.StatusNotFound {
		t.Errorf("no such request: %d %s, want 404", rec.Code, rec.Body)
	}
	e.tmp.queryErr = serviceerror.NewUnavailable("frontend is unavailable")
	if rec := get(id); rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != nothingLost {
		t.Errorf("Temporal unavailable: %d %s, want 503", rec.Code, rec.Body)
	}
	if rec := e.call(t, http.MethodGet, "/v1/requests/"+id, "", "", "", "X-Request-Token", e.s.Subjects.RequestToken(unknown)); rec.Code != http.StatusForbidden {
		t.Errorf("another request's token: %d, want 403", rec.Code)
	}
	if want := []string{id + " " + contract.QueryProgress, id + " " + contract.QueryProgress, unknown + " " + contract.QueryProgress, id + " " + contract.QueryProgress}; !reflect.DeepEqual(e.tmp.queries, want) {
		t.Errorf("queries %v, want %v", e.tmp.queries, want)
	}
}

// A workflow update's refusal maps to its status with the workflow's
// reason; an ended workflow is 409; anything else is the 503. Only the
// code's hash goes to the workflow.
func TestAnUpdateMapsTemporalRefusals(t *testing.T) {
	e := newIntakeEnv(t, nil)
	id, _ := newRequestID()
	refused := func(typ, msg string, details ...any) error {
		return temporal.NewApplicationErrorWithOptions(msg, typ, temporal.ApplicationErrorOptions{NonRetryable: true, Details: details})
	}
	for _, c := range []struct {
		name       string
		err        error
		status     int
		body       string
		retryAfter string
	}{
		{"wrong state", refused(contract.RefusedState, "the request is not waiting for a code"), 409, "the request is not waiting for a code", ""},
		{"expired", refused(contract.RefusedExpired, "the code has expired"), 410, "the code has expired", ""},
		{"locked", refused(contract.RefusedLocked, "too many wrong codes"), 423, "too many wrong codes", ""},
		{"rate limited", refused(contract.RefusedRateLimited, "wait before asking again", 30*time.Second), 429, "wait before asking again", "31"},
		{"bad input", refused(contract.RefusedInput, "the code is not for this request"), 422, "the code is not for this request", ""},
		{"unknown refusal", refused("SomethingElse", "internal detail"), 503, "nothing was lost", ""},
		{"workflow ended", serviceerror.NewNotFound("workflow not found"), 409, "the request has ended and takes no more actions", ""},
		{"Temporal unavailable", serviceerror.NewUnavailable("frontend is unavailable"), 503, "nothing was lost", ""},
		{"timed out", context.DeadlineExceeded, 503, "nothing was lost", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.tmp.updateErr = c.err
			before := len(e.tmp.updates)
			rec := e.call(t, http.MethodPost, "/v1/requests/"+id+"/verify", "", "", `{"code":"123456"}`, "X-Request-Token", e.s.Subjects.RequestToken(id))
			if rec.Code != c.status || rec.Header().Get("Retry-After") != c.retryAfter {
				t.Errorf("answer %d (Retry-After %q) %s, want %d (%q)", rec.Code, rec.Header().Get("Retry-After"), rec.Body, c.status, c.retryAfter)
			}
			if c.status == http.StatusServiceUnavailable {
				if strings.TrimSpace(rec.Body.String()) != nothingLost {
					t.Errorf("answer %s, want %s", rec.Body, nothingLost)
				}
			} else if msg := checkRefusal(t, rec, nil); msg != c.body {
				t.Errorf("reason %q, want the workflow's %q", msg, c.body)
			}
			if len(e.tmp.updates) != before+1 {
				t.Fatalf("%d updates asked for, want 1", len(e.tmp.updates)-before)
			}
			u := e.tmp.updates[before]
			want := []any{contract.VerifyInput{CodeHash: e.s.Subjects.CodeHash(id, "123456")}}
			if u.WorkflowID != id || u.UpdateName != contract.UpdateVerify || !reflect.DeepEqual(u.Args, want) || strings.Contains(fmt.Sprint(u.Args), "123456") {
				t.Errorf("update %q %q %+v: want %s with the code's hash only", u.WorkflowID, u.UpdateName, u.Args, contract.UpdateVerify)
			}
		})
	}
	if n := len(e.rows(t)); n != 0 {
		t.Errorf("updates left %d rows", n)
	}
}
