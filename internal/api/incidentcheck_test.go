package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/apikeys"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// checkNow is when the declarations of these tests are made.
func checkNow() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }

func checkPolicy() NoticePolicy {
	return NoticePolicy{NotifyWithin: 48 * time.Hour, ReportWithin: 72 * time.Hour, EscalateAt: []float64{0.5, 0.8}, KeepOpen: 720 * time.Hour}
}

func checkMap() *datamap.Map {
	return &datamap.Map{Selectors: []datamap.Selector{
		{Name: "accounts_created_between", SQL: "SELECT id FROM demo.accounts WHERE created_at >= $1 AND created_at < $2", Params: []string{"from", "to"}},
		{Name: "active_accounts", SQL: "SELECT id FROM demo.accounts"},
	}}
}

// goodIncident is a declaration every check accepts.
func goodIncident() IncidentBody {
	return IncidentBody{
		AwareAt: time.Date(2026, 11, 22, 9, 0, 0, 0, time.FixedZone("CET", 3600)), WhatHappened: "A backup was readable.",
		DataCategories: []string{"email address"}, Measures: "Access closed.", Contact: "privacy@example.com", Records: 20,
		Affected: AffectedBody{Selector: "accounts_created_between", Params: map[string]string{"to": "2026-11-01T00:00:00Z", "from": "2026-01-01T00:00:00Z"}},
	}
}

func TestNewIncidentTurnsADeclarationIntoTheWorkflowsInput(t *testing.T) {
	inc, err := checkPolicy().NewIncident(goodIncident(), checkMap(), "cli", checkNow())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^inc_[a-z2-7]{16}$`).MatchString(inc.ID) || CheckIncidentID(inc.ID) != nil {
		t.Fatalf("id %q", inc.ID)
	}
	if want := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC); !inc.AwareAt.Equal(want) || inc.AwareAt.Location() != time.UTC {
		t.Fatalf("aware_at %v, want %v in UTC", inc.AwareAt, want)
	}
	// Parameters in the selector's order, whatever the order given.
	if inc.Affected.Selector != "accounts_created_between" || !slices.Equal(inc.Affected.Params, []string{"2026-01-01T00:00:00Z", "2026-11-01T00:00:00Z"}) {
		t.Fatalf("affected %+v", inc.Affected)
	}
	if !inc.NotificationRequired || inc.NotifyWithin != 48*time.Hour || inc.ReportWithin != 72*time.Hour || inc.KeepOpen != 720*time.Hour ||
		!slices.Equal(inc.EscalateAt, []float64{0.5, 0.8}) || inc.DeclaredBy != "cli" || inc.Records != 20 || inc.Contact != "privacy@example.com" {
		t.Fatalf("incident %+v", inc)
	}
	if other, _ := checkPolicy().NewIncident(goodIncident(), checkMap(), "cli", checkNow()); other.ID == inc.ID {
		t.Fatal("two declarations got the same id")
	}

	// No notification: the people are not looked for, the reason is kept.
	in := goodIncident()
	no := false
	in.NotificationRequired, in.NoNotificationReason, in.Affected = &no, "The data was encrypted.", AffectedBody{}
	inc, err = checkPolicy().NewIncident(in, nil, "operator:key_1", checkNow())
	if err != nil || inc.NotificationRequired || inc.NoNotificationReason != "The data was encrypted." || !reflect.DeepEqual(inc.Affected, contract.AffectedSource{}) {
		t.Fatalf("recorded incident %+v, %v", inc, err)
	}

	// An object of user ids.
	src, err := Affected(nil, AffectedBody{ObjectKey: "incidents/inc_1/more.txt"})
	if err != nil || src.ObjectKey != "incidents/inc_1/more.txt" || src.Selector != "" {
		t.Fatalf("object source %+v, %v", src, err)
	}
}

func TestNewIncidentRefusesWithWhatToFix(t *testing.T) {
	no := false
	for name, tc := range map[string]struct {
		edit   func(*IncidentBody)
		m      *datamap.Map
		reason string
		fields []string
	}{
		"no aware_at":       {func(b *IncidentBody) { b.AwareAt = time.Time{} }, checkMap(), "aware_at: when the team became aware, not in the future", []string{"aware_at"}},
		"aware_at to come":  {func(b *IncidentBody) { b.AwareAt = checkNow().Add(2 * time.Minute) }, checkMap(), "aware_at: when the team became aware, not in the future", []string{"aware_at"}},
		"no texts":          {func(b *IncidentBody) { b.WhatHappened, b.Contact = "", "" }, checkMap(), "what_happened, data_categories, measures and contact are required", []string{"what_happened", "contact"}},
		"no categories":     {func(b *IncidentBody) { b.DataCategories = nil }, checkMap(), "what_happened, data_categories, measures and contact are required", []string{"data_categories"}},
		"no reason":         {func(b *IncidentBody) { b.NotificationRequired = &no }, checkMap(), "no_notification_reason: every breach is recorded; say why people are not told", []string{"no_notification_reason"}},
		"no source":         {func(b *IncidentBody) { b.Affected = AffectedBody{} }, checkMap(), "give affected.selector (with params) or affected.object_key", []string{"selector", "object_key"}},
		"two sources":       {func(b *IncidentBody) { b.Affected.ObjectKey = "list.txt" }, checkMap(), "give affected.selector (with params) or affected.object_key", []string{"selector", "object_key"}},
		"bad object key":    {func(b *IncidentBody) { b.Affected = AffectedBody{ObjectKey: "../secrets"} }, checkMap(), "object_key: not a valid object key", []string{"object_key"}},
		"no data map":       {func(*IncidentBody) {}, nil, "selector: no data map is loaded (LETHE_DATA_MAP)", []string{"selector"}},
		"unknown selector":  {func(b *IncidentBody) { b.Affected.Selector = "everyone" }, checkMap(), "selector: not a selector of the data map", []string{"selector"}},
		"missing parameter": {func(b *IncidentBody) { delete(b.Affected.Params, "to") }, checkMap(), "params: to is required by selector accounts_created_between", []string{"params"}},
		"foreign parameter": {func(b *IncidentBody) { b.Affected.Params["user"] = "ada@example.com" }, checkMap(), "params: only the selector's own parameters: from, to", []string{"params"}},
		"parameters of none": {func(b *IncidentBody) {
			b.Affected = AffectedBody{Selector: "active_accounts", Params: map[string]string{"x": "1"}}
		}, checkMap(), "params: selector active_accounts takes none", []string{"params"}},
	} {
		t.Run(name, func(t *testing.T) {
			in := goodIncident()
			tc.edit(&in)
			inc, err := checkPolicy().NewIncident(in, tc.m, "cli", checkNow())
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("accepted (%+v) or refused without an InputError: %v", inc, err)
			}
			if ie.Reason != tc.reason || err.Error() != tc.reason || !slices.Equal(ie.Fields, tc.fields) {
				t.Fatalf("refused %q %v, want %q %v", ie.Reason, ie.Fields, tc.reason, tc.fields)
			}
			if inc.ID != "" {
				t.Fatalf("a refused declaration has id %q", inc.ID)
			}
			if strings.Contains(err.Error(), "@") {
				t.Fatalf("the refusal repeats the input: %q", err)
			}
		})
	}
	for _, id := range []string{"", "inc_", "inc_ABCDEFGHIJKLMNOP", "req_abcdefghijklmnop", "inc_abcdefghijklmnop/close", "inc_abcdefghijklmnopq"} {
		var ie *InputError
		if err := CheckIncidentID(id); !errors.As(err, &ie) || ie.Reason != "id: not an incident or notice id" {
			t.Errorf("id %q: %v", id, err)
		}
	}
	for _, id := range []string{"inc_abcdefghijklmnop", "pn_a2b3c4d5e6f7g2h3"} {
		if err := CheckIncidentID(id); err != nil {
			t.Errorf("id %q refused: %v", id, err)
		}
	}
}

// declareTemporal records the workflow the declare route starts.
type declareTemporal struct {
	client.Client
	opts client.StartWorkflowOptions
	args []any
}

func (f *declareTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, args ...any) (client.WorkflowRun, error) {
	f.opts, f.args = o, args
	return nil, nil
}

// The route answers what NewIncident says, and starts what it made.
func TestTheDeclareRouteChecksWithNewIncident(t *testing.T) {
	declare := func(body string) (*httptest.ResponseRecorder, *declareTemporal) {
		tmp := &declareTemporal{}
		s := fuzzServer()
		s.Temporal, s.APIKeys, s.Map, s.Notices, s.TaskQueue = tmp, fakeKeys{role: apikeys.RoleOperator}, checkMap(), checkPolicy(), "lethe"
		r := httptest.NewRequest(http.MethodPost, "/v1/incidents", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer key")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, r)
		return rec, tmp
	}
	in := goodIncident()
	in.AwareAt = time.Now().Add(-time.Hour).Truncate(time.Second)
	in.Affected.Params["user"] = "x"
	body, _ := json.Marshal(in)
	_, want := checkPolicy().NewIncident(in, checkMap(), "operator:k2", time.Now())
	rec, tmp := declare(string(body))
	var answer Error
	if rec.Code != http.StatusUnprocessableEntity || json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer.Error != want.Error() || tmp.args != nil {
		t.Fatalf("answer %d %s, want 422 %q and nothing started", rec.Code, rec.Body, want)
	}

	delete(in.Affected.Params, "user")
	body, _ = json.Marshal(in)
	rec, tmp = declare(string(body))
	var ok struct {
		ID       string    `json:"id"`
		NotifyBy time.Time `json:"notify_by"`
		ReportBy time.Time `json:"report_by"`
	}
	if rec.Code != http.StatusAccepted || json.Unmarshal(rec.Body.Bytes(), &ok) != nil || len(tmp.args) != 1 {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	inc := tmp.args[0].(contract.Incident)
	if inc.ID != ok.ID || tmp.opts.ID != ok.ID || inc.DeclaredBy != "operator:k2" || !ok.NotifyBy.Equal(in.AwareAt.Add(48*time.Hour)) || !ok.ReportBy.Equal(in.AwareAt.Add(72*time.Hour)) ||
		!slices.Equal(inc.Affected.Params, []string{"2026-01-01T00:00:00Z", "2026-11-01T00:00:00Z"}) {
		t.Fatalf("started %+v (options %+v), answered %+v", inc, tmp.opts, ok)
	}
}
