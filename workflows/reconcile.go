package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The restore-reconcile workflow and its activity.
const (
	WorkflowRestoreReconcile = "RestoreReconcile"
	ActivityReconcilePage    = "ReconcilePage"
)

// ReconcilePageSize is how many accounts one page of a reconcile looks at.
const ReconcilePageSize = 1000

// reconcilePagesPerRun bounds the history of one run: then it continues as new.
const reconcilePagesPerRun = 50

// ReconcileWorkflowID names a reconcile started at t: "restore-reconcile-20270110T090000Z".
func ReconcileWorkflowID(t time.Time) string {
	return "restore-reconcile-" + t.UTC().Format("20060102T150405Z")
}

// ReconcileInput starts (or continues) a restore-reconcile. State is nil on
// a fresh run.
type ReconcileInput struct {
	PageSize  int    // accounts per page; 0 means ReconcilePageSize
	Requester string // who asked ("operator:key_…", "cli"): the audit entry's actor; "" means system
	State     *ReconcileState
}

// ReconcileState carries a reconcile across continue-as-new.
//
// The cursor is the last account key seen, which may be the id of a person
// who was just erased again. It never appears in the clear: the activity
// seals it with a data key of the run's own (RunRef, in lethe.subject_keys),
// and the workflow destroys that key when the walk ends, so the cursors left
// in this history become unreadable (besides being codec-encrypted).
type ReconcileState struct {
	RunRef    string    // names the run and the key its cursor is sealed with
	StartedAt time.Time // fixed for the whole run: the ledger's last_reconciled_at
	Cursor    []byte    // the sealed last key; nil before the first page
	Totals    ReconcileTotals
}

// ReconcileTotals count what a reconcile did.
type ReconcileTotals struct {
	Scanned int `json:"scanned"` // accounts looked at
	Matched int `json:"matched"` // of those, in the erasure ledger
	Erased  int `json:"erased"`  // of those, found back and erased again
	Items   int `json:"items"`   // rows and objects erased again
	Pages   int `json:"pages"`
	Runs    int `json:"runs"` // continue-as-new generations
}

func (t *ReconcileTotals) add(p ReconcilePageResult) {
	t.Scanned += p.Scanned
	t.Matched += p.Matched
	t.Erased += p.Erased
	t.Items += p.Items
	t.Pages++
}

// Reconcile statuses.
const (
	ReconcileRunning   = "running"
	ReconcileCompleted = "completed"
)

// ReconcileProgress is the reconcile's state (QueryProgress): counts only.
type ReconcileProgress struct {
	Status    string          `json:"status"`
	StartedAt time.Time       `json:"started_at"`
	Totals    ReconcileTotals `json:"totals"`
}

// ReconcilePageInput asks for one page of the walk over the application's
// accounts, after Cursor (sealed with RunRef's key; nil: from the start).
type ReconcilePageInput struct {
	RunRef   string
	RunAt    time.Time
	Cursor   []byte
	PageSize int
}

// ReconcilePageResult says what one page did and where the next one starts.
type ReconcilePageResult struct {
	Scanned, Matched, Erased, Items int
	Next                            []byte // the sealed cursor after this page
	Done                            bool   // this was the last page
}

// RestoreReconcile re-applies every erasure after a restore of the
// application database (P6), so that no restore brings anyone back. It walks
// the application's accounts (the data map's identity table, else its
// accounts table) in keyset pages; for each page an activity computes the
// keyed hash of every key, looks the page up in the erasure ledger and erases
// every match again, rows and objects, as an erasure does. Re-erasing is
// idempotent: someone erased and not restored costs a lookup and changes
// nothing. The history stays bounded by continuing as new; progress is the
// QueryProgress query; the end is audited as "erasure.reconciled".
func RestoreReconcile(ctx workflow.Context, in ReconcileInput) (ReconcileTotals, error) {
	st := in.State
	if st == nil {
		st = &ReconcileState{RunRef: "reconcile:" + workflow.GetInfo(ctx).WorkflowExecution.RunID, StartedAt: workflow.Now(ctx)}
	}
	progress := ReconcileProgress{Status: ReconcileRunning, StartedAt: st.StartedAt}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (ReconcileProgress, error) {
		progress.Totals = st.Totals
		return progress, nil
	}); err != nil {
		return st.Totals, err
	}
	size := in.PageSize
	if size <= 0 {
		size = ReconcilePageSize
	}
	ctx = withActivityDefaults(ctx)
	// A page may erase many people again: give it time, and heartbeats.
	pageCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour, HeartbeatTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
	for pages := 0; ; pages++ {
		if pages == reconcilePagesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			st.Totals.Runs++
			return st.Totals, workflow.NewContinueAsNewError(ctx, WorkflowRestoreReconcile, ReconcileInput{PageSize: in.PageSize, Requester: in.Requester, State: st})
		}
		var res ReconcilePageResult
		if err := workflow.ExecuteActivity(pageCtx, ActivityReconcilePage, ReconcilePageInput{
			RunRef: st.RunRef, RunAt: st.StartedAt, Cursor: st.Cursor, PageSize: size,
		}).Get(ctx, &res); err != nil {
			return st.Totals, fmt.Errorf("reconcile page %d: %w", st.Totals.Pages, err)
		}
		st.Totals.add(res)
		if res.Next != nil {
			st.Cursor = res.Next
		}
		if res.Done {
			break
		}
	}
	// The walk is over: its cursors become unreadable.
	if err := workflow.ExecuteActivity(ctx, ActivityShredSubject, st.RunRef).Get(ctx, nil); err != nil {
		return st.Totals, fmt.Errorf("destroy the reconcile's cursor key: %w", err)
	}
	actor := in.Requester
	if actor == "" {
		actor = "system"
	}
	t := st.Totals
	if err := workflow.ExecuteActivity(ctx, ActivityAudit, AuditInput{Actor: actor, Action: "erasure.reconciled",
		Detail: map[string]string{
			"workflow_id": workflow.GetInfo(ctx).WorkflowExecution.ID, "started_at": st.StartedAt.UTC().Format(time.RFC3339),
			"scanned": fmt.Sprint(t.Scanned), "matched": fmt.Sprint(t.Matched), "erased": fmt.Sprint(t.Erased), "items": fmt.Sprint(t.Items),
		},
		Key: st.RunRef + ":erasure.reconciled"}).Get(ctx, nil); err != nil {
		return st.Totals, fmt.Errorf("audit the reconcile: %w", err)
	}
	progress.Status = ReconcileCompleted
	return st.Totals, nil
}
