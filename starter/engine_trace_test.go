//go:build !nodev

package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// traceOne, with LETHE_BENCH_TRACE=1, prints to stderr the history of one
// request from the middle of a BenchmarkEngines run, each event with its
// time since the start and since the event before: where an erasure waits
// (a task queue's rate limit showed up so, an activity scheduled and
// started seconds later).
func traceOne(b *testing.B, w *erasureBench) {
	if os.Getenv("LETHE_BENCH_TRACE") == "" {
		return
	}
	ctx := context.Background()
	resp, err := w.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "WorkflowType = 'PrivacyRequest'", PageSize: 100})
	if err != nil || len(resp.Executions) < 10 {
		b.Logf("trace: %d requests listed (%v)", len(resp.GetExecutions()), err)
		return
	}
	id := resp.Executions[len(resp.Executions)/2].Execution.WorkflowId
	it := w.temporal.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var t0, prev time.Time
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return
		}
		t := ev.EventTime.AsTime()
		if t0.IsZero() {
			t0, prev = t, t
		}
		name := ""
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			name = a.ActivityType.Name
		}
		if a := ev.GetMarkerRecordedEventAttributes(); a != nil {
			name = a.MarkerName
		}
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
			name = a.WorkflowType.Name
		}
		fmt.Fprintf(os.Stderr, "%3d %6dms +%5dms %s %s\n", ev.EventId, t.Sub(t0).Milliseconds(), t.Sub(prev).Milliseconds(), ev.EventType, name)
		prev = t
	}
}
