package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// historiesDir is where recorded histories live: `go test ./worker/registry`
// replays every one of them against the workflows of each later build.
const historiesDir = "../worker/registry/testdata/histories"

// keepHistory takes the history of a workflow as it stands now (running or
// closed), seals its payloads under the histories' test key, and replays
// it against this build's workflows: a point of a real run that the code
// must keep replaying. With LETHE_RECORD_HISTORIES=1 it also writes it to
// historiesDir as <name>.json (README, "Changing a workflow").
func keepHistory(t *testing.T, st *testenv.Stack, workflowID, name string) {
	t.Helper()
	ctx := context.Background()
	it := st.Raw.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", name, err)
		}
		h.Events = append(h.Events, ev)
	}
	if err := reseal(ctx, h, st.Config.PayloadKeys); err != nil {
		t.Fatalf("history of %s: %v", name, err)
	}
	keys := historyKeys(t)
	replayer, err := registry.NewReplayer(keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := replayer.ReplayWorkflowHistory(nil, h); err != nil {
		t.Fatalf("the history of %s just recorded does not replay: %v", name, err)
	}
	if os.Getenv("LETHE_RECORD_HISTORIES") != "1" {
		return
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: " "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(historiesDir, name+".json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s: %d events", name, len(h.Events))
}

// historyKeys is the payload key recorded histories are sealed under: a
// test key, kept beside them, that seals only test data.
func historyKeys(t *testing.T) []config.Key {
	t.Helper()
	keys, err := registry.HistoryKeys(historiesDir)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// reseal opens every payload the stack sealed under its own (random) key
// and seals it again under the histories' key.
func reseal(ctx context.Context, h *historypb.History, stackKeys string) error {
	from, err := payloadCodec(stackKeys)
	if err != nil {
		return err
	}
	keys, err := registry.HistoryKeys(historiesDir)
	if err != nil {
		return err
	}
	to, err := codec.NewCodec(keys)
	if err != nil {
		return err
	}
	return proxy.VisitPayloads(ctx, h, proxy.VisitPayloadsOptions{
		SkipSearchAttributes: true,
		Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
			out := make([]*commonpb.Payload, len(ps))
			for i, p := range ps {
				out[i] = p
				if string(p.GetMetadata()[converter.MetadataEncoding]) != codec.MetadataEncodingEncrypted {
					continue
				}
				open, err := from.Decode([]*commonpb.Payload{p})
				if err != nil {
					return nil, err
				}
				sealed, err := to.Encode(open)
				if err != nil {
					return nil, err
				}
				out[i] = sealed[0]
			}
			return out, nil
		},
	})
}

func payloadCodec(keys string) (*codec.Codec, error) {
	ks, err := config.ParseKeys(keys)
	if err != nil {
		return nil, err
	}
	return codec.NewCodec(ks)
}

// keepHistoryOfType keeps the history of the newest workflow of a type, for
// workflows whose ids a test does not know (a child, a scheduled run).
func keepHistoryOfType(t *testing.T, st *testenv.Stack, workflowType, name string) {
	t.Helper()
	var id string
	testenv.Eventually(t, 15*time.Second, "a "+workflowType+" workflow to show", func() bool {
		resp, err := st.Raw.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s'", workflowType)})
		if err != nil || len(resp.Executions) == 0 {
			return false
		}
		id = resp.Executions[0].Execution.WorkflowId
		return true
	})
	keepHistory(t, st, id, name)
}

// The points no other test stops at: a request extended while the team
// works on it by hand, and the scheduled housekeeping workflows.
func TestHistoriesOfAnExtendedRequestAndTheHousekeeping(t *testing.T) {
	e := newE2E(t, 2, map[string]string{"LETHE_MANUAL_TYPES": "access"})
	ctx := context.Background()
	person := demo.Accounts(1)[0]
	code, out := e.call(t, "POST", "/v1/requests", e.Backend, fmt.Sprintf(`{"type":"access","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, person.ID, person.Email))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, out)
	}
	id := out["id"].(string)
	e.waitStatus(t, id, domain.StatusInProgress)
	if code, out := e.call(t, "POST", "/v1/requests/"+id+"/extend", e.Operator, `{"reason":"The archive must be searched by hand","by":"1mo"}`); code != http.StatusOK {
		t.Fatalf("extend: %d %v", code, out)
	}
	testenv.Eventually(t, 10*time.Second, "the extension mail", func() bool {
		return e.count(t, "SELECT count(*) FROM lethe.audit_log WHERE request_id = $1 AND action = 'request.extended'", id) == 1
	})
	keepHistory(t, e.Stack, id, "request-extended-waiting-for-the-team")

	run := func(workflowType string, arg any) {
		t.Helper()
		r, err := e.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: e.Config.TemporalTaskQueue}, workflowType, arg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Get(ctx, nil); err != nil {
			t.Fatalf("%s: %v", workflowType, err)
		}
		keepHistory(t, e.Stack, r.GetID(), map[string]string{
			contract.WorkflowRetainRecords: "records-retention", contract.WorkflowIDDocSweep: "id-document-sweep"}[workflowType])
	}
	run(contract.WorkflowRetainRecords, contract.RetentionInput{KeepFor: domain.Period{Months: 36}})
	run(contract.WorkflowIDDocSweep, 60*24*time.Hour)
}
