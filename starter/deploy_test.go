package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/worker/registry"
)

// Rolling a new worker build out beside the old one: build b1 runs alone
// and becomes current by itself; a request waits on it for the person's
// code; build b2 starts beside it and is promoted; b1 stops. The waiting
// request moves to b2 at its next step and completes there.
func TestANewWorkerBuildTakesOverAWaitingRequestAndFinishesIt(t *testing.T) {
	e := newE2E(t, 1, map[string]string{"LETHE_MANUAL_TYPES": "access"})
	ctx := context.Background()
	e.Worker.Stop() // the e2e's unversioned worker

	start := func(build string) *registry.Worker {
		t.Helper()
		cfg := e.Config
		cfg.WorkerBuildID, cfg.WorkerDeployment = build, "lethe-test"
		w := registry.NewWorker(e.Temporal, cfg.TemporalTaskQueue, registry.DeployedWorkerOptions(cfg), e.Deps)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
		return w
	}
	v1 := start("b1")
	promoted, err := temporalclient.PromoteFirstVersion(ctx, e.Temporal, "lethe-test", "b1")
	if err != nil || !promoted {
		t.Fatalf("first version: promoted %v, %v", promoted, err)
	}

	person := demo.Accounts(1)[0]
	code, out := e.call(t, "POST", "/v1/requests", "", fmt.Sprintf(`{"type":"access","subject":{"email":%q},"jurisdiction":"gdpr"}`, person.Email))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, out)
	}
	id, token := out["id"].(string), out["request_token"].(string)
	mails, err := e.SendGrid.WaitFor(person.Email, 2, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// An access request has no erasure: its workflow answers no erasure
	// query, and the API says so (not that the engine is unavailable).
	if code, out := e.call(t, "GET", "/v1/requests/"+id+"/erasure", e.Operator, ""); code != http.StatusNotFound {
		t.Fatalf("an access request's erasure: %d %v, want 404", code, out)
	}
	mailed := ""
	for _, m := range mails {
		if c := codeRe.FindString(m.Text); c != "" && strings.Contains(strings.ToLower(m.Subject+m.Text), "code") {
			mailed = c
		}
	}
	runsOn := func() string {
		d, err := e.Temporal.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		return d.WorkflowExecutionInfo.GetVersioningInfo().GetDeploymentVersion().GetBuildId()
	}
	if b := runsOn(); b != "b1" {
		t.Fatalf("the request runs on %q, want b1", b)
	}

	// The new build beside the old; promoted; the old one stops.
	start("b2")
	testenv.Eventually(t, 30*time.Second, "b2 to be promoted", func() bool {
		return temporalclient.Promote(ctx, e.Temporal, "lethe-test", "b2") == nil
	})
	v1.Stop()
	d, err := temporalclient.DescribeDeployment(ctx, e.Temporal, "lethe-test")
	if err != nil || d.Current != "b2" || len(d.Versions) != 2 {
		t.Fatalf("deployment %+v, %v", d, err)
	}

	// The person's code reaches the request, now on b2; the team completes it.
	if code, body := e.call(t, "POST", "/v1/requests/"+id+"/verify", token, `{"code":"`+mailed+`"}`); code != http.StatusOK {
		t.Fatalf("verify after the rollout: %d %v", code, body)
	}
	e.waitStatus(t, id, domain.StatusInProgress)
	if code, body := e.call(t, "POST", "/v1/requests/"+id+"/complete", e.Operator, `{"lines":["Sent the export by hand"]}`); code != http.StatusOK {
		t.Fatalf("complete: %d %v", code, body)
	}
	e.waitStatus(t, id, domain.StatusCompleted)
	if b := runsOn(); b != "b2" {
		t.Fatalf("the request finished on %q, want b2", b)
	}
}
