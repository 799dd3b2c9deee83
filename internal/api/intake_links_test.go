package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/policy"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// startTemporal records the requests started; every one is running.
type startTemporal struct {
	taskTemporal
	started []contract.RequestInput
}

func (f *startTemporal) ExecuteWorkflow(_ context.Context, _ client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.started = append(f.started, args[0].(contract.RequestInput))
	return nil, nil
}

// plainKeys seals nothing: the identity is not what these tests look at.
type plainKeys struct{}

func (plainKeys) Seal(_ context.Context, _ string, p []byte) ([]byte, error) { return p, nil }
func (plainKeys) Open(_ context.Context, _ string, s []byte) ([]byte, error) { return s, nil }

func intakeServer(t *testing.T, role string) (*Server, *startTemporal) {
	t.Helper()
	cfg, err := config.FromMap(nil)
	if err != nil {
		t.Fatal(err)
	}
	book, err := policy.FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := person.NewHasher(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	tmp := &startTemporal{taskTemporal: taskTemporal{status: enums.WORKFLOW_EXECUTION_STATUS_RUNNING}}
	return &Server{Temporal: tmp, DB: pgtest.NewLethePool(t), Subjects: h, Keys: plainKeys{}, Policies: book,
		APIKeys: fakeKeys{role: role}, MaxBody: 1 << 20, Log: slog.New(slog.DiscardHandler)}, tmp
}

func submitAs(t *testing.T, s *Server, key bool, body string) (int, Submitted, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/requests", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key {
		r.Header.Set("Authorization", "Bearer key")
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, r)
	var out Submitted
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %d %s: %v", rec.Code, rec.Body, err)
	}
	return rec.Code, out, rec.Body.String()
}

// A request the company's backend vouches for never asks for a code: its
// answer offers no route to type or resend one, also when it is joined.
func TestABackendVerifiedRequestAnswersWithoutCodeRoutes(t *testing.T) {
	s, tmp := intakeServer(t, apikeys.RoleBackend)
	body := `{"type":"erasure","subject":{"user_id":"u-1","email":"ada@example.com"},"jurisdiction":"gdpr","verified":true}`
	code, out, raw := submitAs(t, s, true, body)
	if code != http.StatusAccepted || len(tmp.started) != 1 || !tmp.started[0].PreVerified {
		t.Fatalf("answer %d %s, started %+v", code, raw, tmp.started)
	}
	if out.Links["self"] != "/v1/requests/"+out.ID || len(out.Links) != 1 || strings.Contains(raw, "verify") || strings.Contains(raw, "resend") {
		t.Errorf("links %v: want self only (%s)", out.Links, raw)
	}
	code, joined, raw := submitAs(t, s, true, body)
	if code != http.StatusOK || !joined.Joined || joined.ID != out.ID || len(tmp.started) != 1 {
		t.Fatalf("second submission %d %s", code, raw)
	}
	if len(joined.Links) != 1 || strings.Contains(raw, "verify") {
		t.Errorf("joined links %v: want self only", joined.Links)
	}
}

// The person's own request does ask for a code: the routes are offered.
func TestAPersonsRequestAnswersWithCodeRoutes(t *testing.T) {
	s, tmp := intakeServer(t, "")
	code, out, raw := submitAs(t, s, false, `{"type":"access","subject":{"email":"grace@example.com"},"jurisdiction":"ccpa"}`)
	if code != http.StatusAccepted || len(tmp.started) != 1 || tmp.started[0].PreVerified || out.RequestToken == "" {
		t.Fatalf("answer %d %s", code, raw)
	}
	base := "/v1/requests/" + out.ID
	if out.Links["verify"] != base+"/verify" || out.Links["resend"] != base+"/resend" || out.Links["self"] != base {
		t.Errorf("links %v: want self, verify and resend", out.Links)
	}
}
