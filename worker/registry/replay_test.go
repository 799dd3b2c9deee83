package registry_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Histories recorded from real runs (starter's tests, with
// LETHE_RECORD_HISTORIES=1) at the points where workflows wait for weeks or
// years: each must replay against the workflows of every later build, or
// the workflows running in production at that point would break at their
// next step. README, "Changing a workflow", says what to do when one fails.
const historiesDir = "testdata/histories"

func loadHistories(t *testing.T) map[string]*historypb.History {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*historypb.History{}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
		_ = r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = h
	}
	return out
}

func historyKeys(t *testing.T) []config.Key {
	t.Helper()
	keys, err := registry.HistoryKeys(historiesDir)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func replayerOptions(t *testing.T) worker.WorkflowReplayerOptions {
	t.Helper()
	dc, err := codec.NewDataConverter(historyKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	return worker.WorkflowReplayerOptions{DataConverter: dc, FailureConverter: codec.NewFailureConverter(dc)}
}

func workflowType(h *historypb.History) string {
	return h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
}

// registeredTypes are the workflow types the worker registers.
type registeredTypes []string

func (r *registeredTypes) RegisterWorkflow(any) {}
func (r *registeredTypes) RegisterWorkflowWithOptions(_ any, o workflow.RegisterOptions) {
	*r = append(*r, o.Name)
}
func (r *registeredTypes) RegisterDynamicWorkflow(any, workflow.DynamicRegisterOptions) {}

func TestEveryRecordedHistoryReplays(t *testing.T) {
	histories := loadHistories(t)
	replayer, err := registry.NewReplayer(historyKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]int{}
	for name, h := range histories {
		covered[workflowType(h)]++
		t.Run(name, func(t *testing.T) {
			if err := replayer.ReplayWorkflowHistory(nil, h); err != nil {
				t.Errorf("%s (workflow %s, %d events) no longer replays: running workflows at this point would break. "+
					"Put the change behind workflow.GetVersion (README, \"Changing a workflow\"):\n%v", name, workflowType(h), len(h.Events), err)
			}
		})
	}
	// A workflow type without a recorded history is not protected.
	var types registeredTypes
	registry.RegisterWorkflows(&types)
	for _, wt := range types {
		if covered[wt] == 0 {
			t.Errorf("no recorded history of %s: keep one in a test of it (keepHistory in starter) and record (LETHE_RECORD_HISTORIES=1)", wt)
		}
	}
	if len(types) != 21 {
		t.Errorf("%d workflow types registered: %v", len(types), types)
	}
}

// The replay test is only worth something if it fails on a change that
// would break running workflows: here, a request that now sleeps a minute
// before its first step, and a hold released at once instead of sleeping.
func TestANonDeterministicChangeFailsTheReplayNamingTheEvent(t *testing.T) {
	histories := loadHistories(t)
	cases := []struct {
		history, workflowType string
		changed               any
	}{
		{"request-extended-waiting-for-the-team", contract.WorkflowPrivacyRequest,
			func(ctx workflow.Context, in contract.RequestInput) (contract.RequestView, error) {
				if err := workflow.Sleep(ctx, time.Minute); err != nil {
					return contract.RequestView{}, err
				}
				return workflows.PrivacyRequest(ctx, in)
			}},
		{"hold-sleeping", contract.WorkflowReleaseHold,
			func(ctx workflow.Context, in contract.ReleaseHoldInput) (int, error) {
				// Released at once instead of sleeping until the hold ends.
				ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
				var n int
				return n, workflow.ExecuteActivity(ctx, "ReleaseHeldRows", in).Get(ctx, &n)
			}},
	}
	for _, c := range cases {
		h, ok := histories[c.history]
		if !ok {
			t.Fatalf("no recorded history %s", c.history)
		}
		r, err := worker.NewWorkflowReplayerWithOptions(replayerOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		r.RegisterWorkflowWithOptions(c.changed, workflow.RegisterOptions{Name: c.workflowType})
		err = r.ReplayWorkflowHistory(nil, h)
		if err == nil {
			t.Errorf("%s: a changed %s replayed without error", c.history, c.workflowType)
			continue
		}
		t.Logf("%s: %.300s", c.history, err)
		// TMPRL1100 is the SDK's code for a replay that diverged.
		if msg := err.Error(); !strings.Contains(msg, "TMPRL1100") && !strings.Contains(strings.ToLower(msg), "nondeterministic") {
			t.Errorf("%s: the error does not say what diverged: %v", c.history, err)
		}
	}
}

// The example of a versioned change (README, "Changing a workflow"): a
// failed request now tells the privacy team, behind
// workflow.GetVersion("tell-team-on-failure"). The history recorded before
// the change has no version marker and replays without the mail; the one
// recorded after has the marker and the mail. Both replay on this build.
func TestAVersionedChangeReplaysTheHistoriesFromBeforeAndAfterIt(t *testing.T) {
	histories := loadHistories(t)
	marker := func(h *historypb.History) (markers int, mails int) {
		for _, ev := range h.Events {
			// The marker's details are sealed like every payload; its name is not.
			if a := ev.GetMarkerRecordedEventAttributes(); a != nil && a.GetMarkerName() == "Version" {
				markers++
			}
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "SendRequestMail" {
				mails++
			}
		}
		return markers, mails
	}
	before, after := histories["request-failed-before-the-team-was-told"], histories["request-failed"]
	if before == nil || after == nil {
		t.Fatal("the two recorded histories of a failed request are missing")
	}
	bm, bMails := marker(before)
	am, aMails := marker(after)
	if bm != 0 || am != 1 || aMails != bMails+1 {
		t.Fatalf("markers %d/%d, mails %d/%d: want no marker before and one after, with one more mail", bm, am, bMails, aMails)
	}
	replayer, err := registry.NewReplayer(historyKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]*historypb.History{"before": before, "after": after} {
		if err := replayer.ReplayWorkflowHistory(nil, h); err != nil {
			t.Errorf("the history from %s the change does not replay: %v", name, err)
		}
	}
}
