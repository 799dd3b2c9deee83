package workflows

import (
	"fmt"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe/workflows/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// reconcilePagesPerRun bounds the history of one run: then it continues as new.
const reconcilePagesPerRun = 50

// RestoreReconcile re-applies every erasure after a restore of the
// application database (P6), so that no restore brings anyone back. It walks
// the application's accounts (the data map's identity table, else its
// accounts table) in keyset pages; for each page an activity computes the
// keyed hash of every key, looks the page up in the erasure ledger and erases
// every match again, rows and objects, as an erasure does. Re-erasing is
// idempotent: someone erased and not restored costs a lookup and changes
// nothing. The history stays bounded by continuing as new; progress is the
// QueryProgress query; the end is audited as "erasure.reconciled".
func RestoreReconcile(ctx workflow.Context, in contract.ReconcileInput) (contract.ReconcileTotals, error) {
	st := in.State
	if st == nil {
		st = &contract.ReconcileState{RunRef: "reconcile:" + workflow.GetInfo(ctx).WorkflowExecution.RunID, StartedAt: workflow.Now(ctx)}
	}
	progress := contract.ReconcileProgress{Status: contract.ReconcileRunning, StartedAt: st.StartedAt}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.ReconcileProgress, error) {
		progress.Totals = st.Totals
		return progress, nil
	}); err != nil {
		return st.Totals, err
	}
	size := in.PageSize
	if size <= 0 {
		size = contract.ReconcilePageSize
	}
	ctx = withActivityDefaults(ctx)
	// Runs from bulk erasure on erase the people found again through
	// EraseInBulk, processors included; earlier runs erase rows and
	// objects in the page's activity.
	inBulk := workflow.GetVersion(ctx, "bulk-erasure", workflow.DefaultVersion, 1) == 1
	// A page may erase many people again: give it time, and heartbeats.
	pageCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour, HeartbeatTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
	for pages := 0; ; pages++ {
		if pages == reconcilePagesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			st.Totals.Runs++
			return st.Totals, workflow.NewContinueAsNewError(ctx, contract.WorkflowRestoreReconcile, contract.ReconcileInput{PageSize: in.PageSize, Requester: in.Requester, State: st})
		}
		page := contract.ReconcilePageInput{RunRef: st.RunRef, RunAt: st.StartedAt, Cursor: st.Cursor, PageSize: size}
		if inBulk {
			page.Batch = fmt.Sprintf("reconcile-%s-%d", strings.TrimPrefix(st.RunRef, "reconcile:"), st.Totals.Pages)
			page.PageSize = min(size, contract.BulkPageSize)
		}
		var res contract.ReconcilePageResult
		if err := workflow.ExecuteActivity(pageCtx, ledger.ReconcilePage, page).Get(ctx, &res); err != nil {
			return st.Totals, fmt.Errorf("reconcile page %d: %w", st.Totals.Pages, err)
		}
		if len(res.Erase) > 0 {
			var done contract.BulkErasureResult
			if err := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID: page.Batch, ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON}),
				contract.WorkflowBulkErasure, contract.BulkErasureInput{Batch: page.Batch, Why: contract.BulkReconcile, RunAt: st.StartedAt, RunRef: st.RunRef, Subjects: res.Erase},
			).Get(ctx, &done); err != nil {
				return st.Totals, fmt.Errorf("reconcile page %d: bulk erasure: %w", st.Totals.Pages, err)
			}
			res.Erased, res.Items = done.People, done.Items
		}
		st.Totals.Add(res)
		if res.Next != nil {
			st.Cursor = res.Next
		}
		if res.Done {
			break
		}
	}
	// The walk is over: its cursors become unreadable.
	if err := workflow.ExecuteActivity(ctx, lifecycle.ShredSubject, st.RunRef).Get(ctx, nil); err != nil {
		return st.Totals, fmt.Errorf("destroy the reconcile's cursor key: %w", err)
	}
	actor := in.Requester
	if actor == "" {
		actor = "system"
	}
	t := st.Totals
	if err := record(ctx, contract.AuditInput{Actor: actor, Action: "erasure.reconciled",
		Detail: map[string]string{
			"workflow_id": workflow.GetInfo(ctx).WorkflowExecution.ID, "started_at": st.StartedAt.UTC().Format(time.RFC3339),
			"scanned": fmt.Sprint(t.Scanned), "matched": fmt.Sprint(t.Matched), "erased": fmt.Sprint(t.Erased), "items": fmt.Sprint(t.Items),
		},
		Key: onceKey(st.RunRef, "erasure.reconciled")}); err != nil {
		return st.Totals, fmt.Errorf("audit the reconcile: %w", err)
	}
	progress.Status = contract.ReconcileCompleted
	return st.Totals, nil
}
