//go:build !nodev

package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// engineCost is what one request cost the Temporal engine, summed over the
// histories of every workflow it started (its children, theirs, and those
// that outlive it): the engine's work per request is about proportional to
// these counts (issue 16).
type engineCost struct {
	Workflows       int            // workflow executions
	WorkflowTasks   int            // WorkflowTaskCompleted events
	Activities      int            // ActivityTaskScheduled events
	LocalActivities int            // MarkerRecorded events of local activities
	Events          int            // all history events
	PerType         map[string]int // workflow executions by type
}

// Steps is what the engine dispatches to a worker: workflow tasks and
// activities (local activities ride in workflow tasks, and are counted
// apart).
func (c engineCost) Steps() int { return c.WorkflowTasks + c.Activities }

func (c engineCost) String() string {
	return fmt.Sprintf("%d workflows %v, %d workflow tasks, %d activities, %d local activities, %d events",
		c.Workflows, c.PerType, c.WorkflowTasks, c.Activities, c.LocalActivities, c.Events)
}

// localActivityMarker is the marker name the Go SDK records a local
// activity's result under.
const localActivityMarker = "LocalActivity"

// requestCost waits until every workflow the request with this id started
// has nothing in flight (closed, or waiting on a timer, a signal or an
// operator), then counts what their histories hold. The workflows are
// found through the request's history and its children's (each child's
// start is an event of its parent), not through visibility.
func requestCost(tb testing.TB, c client.Client, requestID string) engineCost {
	tb.Helper()
	ctx := context.Background()
	type run struct{ id, runID string }
	var tree []run
	walk := func() bool {
		tree = tree[:0]
		seen := map[run]bool{}
		queue := []run{{id: requestID}}
		for len(queue) > 0 {
			r := queue[0]
			queue = queue[1:]
			d, err := c.DescribeWorkflowExecution(ctx, r.id, r.runID)
			if err != nil {
				return false
			}
			info := d.GetWorkflowExecutionInfo()
			r.runID = info.GetExecution().GetRunId()
			if seen[r] {
				continue
			}
			seen[r] = true
			tree = append(tree, r)
			if info.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING &&
				(d.GetPendingWorkflowTask() != nil || len(d.GetPendingActivities()) > 0 || len(d.GetPendingChildren()) > 0) {
				return false
			}
			it := c.GetWorkflowHistory(ctx, r.id, r.runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return false
				}
				if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
					queue = append(queue, run{id: a.GetWorkflowExecution().GetWorkflowId(), runID: a.GetWorkflowExecution().GetRunId()})
				}
			}
		}
		return true
	}
	// Twice in a row the same tree, nothing in flight: a workflow that
	// finished its task between two looks cannot be missed.
	var last string
	testenv.Eventually(tb, 60*time.Second, "the workflows of request "+requestID+" to settle", func() bool {
		if !walk() {
			last = ""
			return false
		}
		now := fmt.Sprint(tree)
		settled := now == last
		last = now
		return settled
	})

	cost := engineCost{PerType: map[string]int{}}
	for _, r := range tree {
		cost.Workflows++
		it := c.GetWorkflowHistory(ctx, r.id, r.runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				tb.Fatalf("history of %s: %v", r.id, err)
			}
			cost.Events++
			switch ev.GetEventType() {
			case enums.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
				cost.PerType[ev.GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()]++
			case enums.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
				cost.WorkflowTasks++
			case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				cost.Activities++
			case enums.EVENT_TYPE_MARKER_RECORDED:
				if strings.EqualFold(ev.GetMarkerRecordedEventAttributes().GetMarkerName(), localActivityMarker) {
					cost.LocalActivities++
				}
			}
		}
	}
	return cost
}

// One erasure through the API, on the benchmark's stack (the demo person's
// rows in 11 tables, files in a versioned bucket, three healthy processor
// fakes that answer done at once, an empty backups location): what it costs
// the engine stays within bounds, so that a change that adds workflows,
// workflow tasks or activities to every erasure fails here (issue 16).
//
//	go test ./starter -run TestOneErasureCostsTheEngine -v
func TestOneErasureCostsTheEngine(t *testing.T) {
	w := newErasureBench(t)
	people := w.seed(t, 1, 2)
	id := w.submit(t, people[0])
	w.waitCompleted(t, id)
	cost := requestCost(t, w.temporal, id)
	w.assertErased(t, people)
	t.Logf("one erasure with 3 processors: %s; %d workflow tasks + activities", cost, cost.Steps())
	// Before issue 16: 10 workflows, 43 workflow tasks + 23 activities = 66;
	// after the lean erasure: 5 workflows, 21-22 + 14 = 35-36 (and 6 local
	// activities); after the erasure in its request: 4 workflows, 15 + 9 =
	// 24 (and 7 local activities); with the follow-ups started beside the
	// rest and the backups' first check a day later: 11 + 7 = 18 (and 6);
	// with the receipt mailed beside the work (lean-request): 10-12 + 7
	// (79-85 events: the checks lean-request implies leave no marker); with
	// one AfterErasure for all that outlives the request (lean-request
	// version 2): 2 workflows, 9 + 7 (70 events).
	// Workflow tasks vary a little with timing (activities that end
	// together are answered in one task): the bound leaves room for it.
	cost.within(t, "one erasure", 2, 19)
}

// within fails the test when what costs more than maxWorkflows workflows
// or maxSteps workflow tasks + activities.
func (c engineCost) within(t *testing.T, what string, maxWorkflows, maxSteps int) {
	t.Helper()
	if c.Workflows > maxWorkflows || c.Steps() > maxSteps {
		t.Errorf("%s costs %d workflows and %d workflow tasks + activities, want at most %d and %d", what, c.Workflows, c.Steps(), maxWorkflows, maxSteps)
	}
}

// One account deleted through the API (deactivated, then erased at the end
// of its grace period, two seconds here), on the same stack: what the
// deactivation and everything it started cost the engine. Account
// deletions are the company's most common erasure.
//
//	go test ./starter -run TestOneAccountDeletionCostsTheEngine -v
func TestOneAccountDeletionCostsTheEngine(t *testing.T) {
	w := newErasureBench(t)
	people := w.seed(t, 1, 2)
	p := people[0]
	code, body, err := w.call("POST", "/v1/accounts/"+p.ID+"/deactivate", w.backend, fmt.Sprintf(`{"email":%q}`, p.Email))
	if err != nil || code != 202 {
		t.Fatalf("deactivate: %d %v %v", code, body, err)
	}
	id := contract.DeactivationWorkflowID(string(w.deps.Subjects.UserID(p.ID)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var v contract.DeactivationView
	if err := w.temporal.GetWorkflow(ctx, id, "").Get(ctx, &v); err != nil || v.Status != contract.AccountErased {
		t.Fatalf("the deactivation: %+v %v", v, err)
	}
	cost := requestCost(t, w.temporal, id)
	w.assertErased(t, people)
	t.Logf("one account deletion with 3 processors: %s; %d workflow tasks + activities", cost, cost.Steps())
	// Before deactivation-erases-itself: 5 workflows (AccountDeactivation,
	// EraseSubject, ProcessorFollowUps, AwaitBackupRotation, ReleaseHold),
	// 22 workflow tasks + 13 activities (and 3 local activities), 137
	// events; after: 2 workflows (AccountDeactivation, AfterErasure),
	// 12-13 + 9 (and 3 local), 80-83 events. Workflow tasks vary a little
	// with timing.
	cost.within(t, "one account deletion", 2, 24)
}
