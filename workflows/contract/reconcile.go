package contract

import "time"

// WorkflowRestoreReconcile is the restore-reconcile workflow.
const WorkflowRestoreReconcile = "RestoreReconcile"

// ReconcilePageSize is how many accounts one page of a reconcile looks at.
const ReconcilePageSize = 1000

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

func (t *ReconcileTotals) Add(p ReconcilePageResult) {
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
	// Batch, when set, names the bulk erasure of this page: the people
	// found in the ledger are sealed into the result's Erase under its
	// key, for EraseInBulk (which asks the processors again too), instead
	// of being erased again by the page (runs from before bulk erasure).
	Batch string
}

// ReconcilePageResult says what one page did and where the next one starts.
type ReconcilePageResult struct {
	Scanned, Matched, Erased, Items int
	Next                            []byte        // the sealed cursor after this page
	Done                            bool          // this was the last page
	Erase                           []BulkSubject // with Batch: the people to erase again in bulk
}
