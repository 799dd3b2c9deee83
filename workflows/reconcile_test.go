package workflows_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

func TestReconcileWalksEveryPageThenShredsItsCursorKeyAndAudits(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	start := time.Date(2027, 2, 1, 3, 0, 0, 0, time.UTC)
	env.SetStartTime(start)

	// Three pages: 1000, 1000, 400 accounts; the second has two people the
	// restore brought back, the third one more erased person still gone.
	pages := []contract.ReconcilePageResult{
		{Scanned: 1000, Next: []byte("sealed-1")},
		{Scanned: 1000, Matched: 2, Erased: 2, Items: 31, Next: []byte("sealed-2")},
		{Scanned: 400, Matched: 1, Next: []byte("sealed-3"), Done: true},
	}
	var seen []contract.ReconcilePageInput
	fake(env, ledger.ReconcilePage, func(_ context.Context, in contract.ReconcilePageInput) (contract.ReconcilePageResult, error) {
		seen = append(seen, in)
		return pages[len(seen)-1], nil
	})
	var shredded []string
	fake(env, lc.ShredSubject, func(_ context.Context, ref string) error {
		shredded = append(shredded, ref)
		return nil
	})
	var audits []contract.AuditInput
	fake(env, lc.AppendAudit, func(_ context.Context, in contract.AuditInput) error {
		if len(shredded) == 0 {
			t.Error("audited before the cursor key was destroyed")
		}
		audits = append(audits, in)
		return nil
	})

	env.ExecuteWorkflow(workflows.RestoreReconcile, contract.ReconcileInput{Requester: "operator:key_abc"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var got contract.ReconcileTotals
	if err := env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	want := contract.ReconcileTotals{Scanned: 2400, Matched: 3, Erased: 2, Items: 31, Pages: 3}
	if got != want {
		t.Fatalf("totals %+v, want %+v", got, want)
	}
	if len(seen) != 3 {
		t.Fatalf("%d pages asked for, want 3", len(seen))
	}
	// Each page starts where the last stopped, with the same run and size,
	// and names the bulk erasure of the people it finds.
	for i, in := range seen {
		var wantCursor []byte
		if i > 0 {
			wantCursor = pages[i-1].Next
		}
		if !bytes.Equal(in.Cursor, wantCursor) || in.RunRef != seen[0].RunRef || in.PageSize != min(contract.ReconcilePageSize, contract.BulkPageSize) || in.Batch == "" || !in.RunAt.Equal(start) {
			t.Errorf("page %d: %+v", i, in)
		}
	}
	if seen[0].RunRef == "" || len(shredded) != 1 || shredded[0] != seen[0].RunRef {
		t.Fatalf("cursor key %q, shredded %v: want the run's key destroyed once", seen[0].RunRef, shredded)
	}
	if len(audits) != 1 {
		t.Fatalf("%d audit entries, want 1", len(audits))
	}
	a := audits[0]
	if a.Action != "erasure.reconciled" || a.Actor != "operator:key_abc" || a.Detail["scanned"] != "2400" || a.Detail["erased"] != "2" ||
		a.Detail["matched"] != "3" || a.Detail["items"] != "31" || a.Key == "" {
		t.Fatalf("audit %+v", a)
	}
	// The progress query answers with counts only.
	v, err := env.QueryWorkflow(contract.QueryProgress)
	if err != nil {
		t.Fatal(err)
	}
	var p contract.ReconcileProgress
	if err := v.Get(&p); err != nil || p.Status != contract.ReconcileCompleted || p.Totals != want {
		t.Fatalf("progress %+v (%v)", p, err)
	}
}

// A page that fails is retried (after a backoff timer): meanwhile the
// progress query shows what the finished pages did, and the retry is not
// counted twice.
func TestReconcileProgressWhileAPageIsRetried(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	calls := 0
	fake(env, ledger.ReconcilePage, func(_ context.Context, in contract.ReconcilePageInput) (contract.ReconcilePageResult, error) {
		calls++
		if calls == 2 {
			return contract.ReconcilePageResult{}, errors.New("connection reset")
		}
		return contract.ReconcilePageResult{Scanned: in.PageSize, Next: []byte{byte(calls)}, Done: calls == 4}, nil
	})
	fake(env, lc.ShredSubject, func(context.Context, string) error { return nil })
	fake(env, lc.AppendAudit, func(context.Context, contract.AuditInput) error { return nil })
	var during contract.ReconcileProgress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(contract.QueryProgress)
		if err != nil {
			t.Error(err)
			return
		}
		_ = v.Get(&during)
	}, 500*time.Millisecond)
	env.ExecuteWorkflow(workflows.RestoreReconcile, contract.ReconcileInput{PageSize: 10})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if during.Status != contract.ReconcileRunning || during.Totals.Pages != 1 || during.Totals.Scanned != 10 {
		t.Fatalf("progress while page 2 waits for its retry: %+v", during)
	}
	var got contract.ReconcileTotals
	_ = env.GetWorkflowResult(&got)
	if got.Scanned != 30 || got.Pages != 3 {
		t.Fatalf("totals %+v, want 3 pages of 10", got)
	}
}

func TestReconcileContinuesAsNewToKeepItsHistoryBounded(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	pages := 0
	fake(env, ledger.ReconcilePage, func(_ context.Context, in contract.ReconcilePageInput) (contract.ReconcilePageResult, error) {
		pages++
		return contract.ReconcilePageResult{Scanned: 1000, Next: []byte(fmt.Sprint(pages))}, nil
	})
	env.ExecuteWorkflow(workflows.RestoreReconcile, contract.ReconcileInput{})
	err := env.GetWorkflowError()
	if err == nil || !workflow.IsContinueAsNewError(err) {
		t.Fatalf("want continue-as-new after a bounded number of pages, got %v", err)
	}
	if pages != 50 {
		t.Fatalf("%d pages in one run, want 50", pages)
	}
	// The next run starts where this one stopped, with its counts and key.
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatal(err)
	}
	var next contract.ReconcileInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || string(next.State.Cursor) != "50" || next.State.Totals.Scanned != 50000 || next.State.Totals.Runs != 1 || next.State.RunRef == "" {
		t.Fatalf("continued with %+v", next.State)
	}
}
