package contract

import (
	"regexp"
	"time"
)

// Bulk erasure: the inactivity sweep and restore-reconcile erase pages of
// people (BulkPageSize at most) through EraseInBulk, one workflow per page,
// which does for each person everything EraseSubject does, without a
// workflow per person.
const (
	WorkflowBulkErasure       = "EraseInBulk"
	WorkflowReleaseHeldInBulk = "ReleaseHeldInBulk"
)

// BulkPageSize is the most people one EraseInBulk erases: its payloads (a
// sealed identity each) and history (a processor call per person and
// processor) stay well inside Temporal's limits.
const BulkPageSize = 200

// BulkCallsInFlight is how many of a page's calls to one processor are
// scheduled at a time. The processor's task queue sets the pace; a window
// keeps each workflow task's batch of scheduled activities small, which
// the history service reads back whole each time one of them starts
// (measured: with all of a page's 800 calls scheduled at once, a third of
// the engine's CPU went to reading those batches again).
const BulkCallsInFlight = 25

// Why a bulk erasure erases.
const (
	BulkInactive  = "inactive"  // the inactivity sweep: inactive past the policy
	BulkClosed    = "closed"    // the inactivity sweep: closed past their keep
	BulkReconcile = "reconcile" // restore-reconcile: erased, and a restore brought them back
)

// BulkSubject is one person to erase in bulk: their subject ref and their
// user id (and email), sealed under the batch's key.
type BulkSubject struct {
	Ref    string `json:"ref"`
	Sealed []byte `json:"sealed"`
}

// BulkErasureInput is one page of people to erase.
type BulkErasureInput struct {
	// Batch names the page ("sweep-<run>-inactive-3"): its key (which
	// seals the people, destroyed when the page is done), its workflow ids
	// and its idempotency keys.
	Batch    string
	Why      string // BulkInactive, BulkClosed, BulkReconcile
	RunAt    time.Time
	RunRef   string // the reconcile's run (its audit entries' key); empty for the sweep
	Subjects []BulkSubject
}

// BulkKeyRef is the key that seals a batch's people.
func BulkKeyRef(batch string) string { return "bulk:" + batch }

// bulkRequestIDRe is a BulkRequestID: a sweep's or reconcile's batch and
// a subject ref.
var bulkRequestIDRe = regexp.MustCompile(`^(sweep|reconcile)-[A-Za-z0-9-]{1,120}-sr_[a-z2-7]{16,64}$`)

// ValidBulkRequestID tells whether id names a person of a bulk erasure.
func ValidBulkRequestID(id string) bool { return bulkRequestIDRe.MatchString(id) }

// BulkRequestID is what names one person's erasure within a batch: in the
// processors' idempotency keys, the erasure steps, operator tasks.
func BulkRequestID(batch, ref string) string { return batch + "-" + ref }

// BulkPlan is what PrepareBulkErasure found: each person's identity, read
// before anything is erased, and what the data map erases beside the
// database.
type BulkPlan struct {
	People        []BulkPerson
	Processors    []PlannedProcessor
	Backups       []BackupLocation
	BackupPromise time.Duration
	MapDigest     string
}

// BulkPerson is one person of a page, found in the application.
type BulkPerson struct {
	Ref       string `json:"ref"`
	RequestID string `json:"request_id"`
	Identity  []byte `json:"identity"` // person.Identity sealed under the batch's key
}

// BulkPageInput asks EraseBulkPage to erase the page's people from the
// database (one transaction) and S3, and to verify.
type BulkPageInput struct {
	Batch  string
	Why    string
	RunAt  time.Time
	RunRef string
	People []BulkPerson
}

// BulkPageResult is what EraseBulkPage did, per person in the page's order.
type BulkPageResult struct {
	People []BulkOutcome
}

// BulkOutcome is one person's erasure in the database and S3.
type BulkOutcome struct {
	Ref   string `json:"ref"`
	Items int    `json:"items"` // rows and objects erased or anonymized by this page
	// Leftovers are what the verification found left outside a hold: the
	// person's erasure failed, and nothing else is done for them.
	Leftovers []string   `json:"leftovers,omitempty"`
	Held      []HeldRows `json:"held,omitempty"`
}

// BulkReceiptsInput asks for a receipt per person of the page.
type BulkReceiptsInput struct {
	Batch   string
	Why     string
	RunAt   time.Time // when the page's erasure completed
	SweptAt time.Time // the sweep's or reconcile's reference time
	RunRef  string
	People  []BulkReceipt
}

// BulkReceipt is what a person's receipt adds to what EraseBulkPage
// recorded: the processors' outcomes, and the backups.
type BulkReceipt struct {
	Ref       string         `json:"ref"`
	RequestID string         `json:"request_id"`
	Items     int            `json:"items"`
	Entries   []ReceiptEntry `json:"entries,omitempty"`
	Failed    []string       `json:"failed,omitempty"` // systems where the erasure did not complete
}

// BulkErasureResult counts what a page did.
type BulkErasureResult struct {
	People         int `json:"people"`          // erased and verified
	Failed         int `json:"failed"`          // left for the privacy team
	ProcessorCalls int `json:"processor_calls"` // erase calls that answered
	OperatorTasks  int `json:"operator_tasks"`  // processors handed to EraseAtProcessor
	Held           int `json:"held"`            // people with rows under a legal hold
	Items          int `json:"items"`           // rows and objects erased
}

// Add counts another page.
func (r *BulkErasureResult) Add(o BulkErasureResult) {
	r.People += o.People
	r.Failed += o.Failed
	r.ProcessorCalls += o.ProcessorCalls
	r.OperatorTasks += o.OperatorTasks
	r.Held += o.Held
	r.Items += o.Items
}

// BulkHold is one person's rows kept under a legal hold by a bulk erasure.
type BulkHold struct {
	Ref       string   `json:"ref"`
	RequestID string   `json:"request_id"`
	Held      HeldRows `json:"held"`
}

// ReleaseHeldInBulkInput are the holds of one page, released as each ends.
type ReleaseHeldInBulkInput struct {
	Batch string
	Holds []BulkHold
}

// ReleaseDueInput asks for the holds that have ended to be released.
type ReleaseDueInput struct {
	Batch string
	Holds []BulkHold
}

// ReleaseDueResult says which holds are released for good and the rows
// they erased, and when the next of the rest ends.
type ReleaseDueResult struct {
	Released []int       `json:"released"` // indexes into the input's holds
	Deleted  int         `json:"deleted"`
	Next     []time.Time `json:"next"` // per input hold: its next end (zero when released)
}

// ProcessorBatchInput asks a processor with a batch API (Mailchimp's
// /batches, SendGrid's searches and deletions of many) to erase some of a page's people in one job (Job nil), or how
// that job is going.
type ProcessorBatchInput struct {
	Batch     string // the page
	Processor string
	People    []ProcessorBatchPerson
	Job       *ProcessorBatchJob `json:",omitempty"`
}

// ProcessorBatchPerson is one person of a batch job: their erasure's
// request id and their identity, sealed under the page's key.
type ProcessorBatchPerson struct {
	RequestID string
	Identity  []byte
}

// ProcessorBatchJob is a processor's batch job: its id, its step, and what
// an earlier step found of each person (processor ids only).
type ProcessorBatchJob struct {
	ID      string           `json:"id"`
	Step    string           `json:"step,omitempty"`
	Found   [][]ProcessorRef `json:"found,omitempty"`
	Refused []string         `json:"refused,omitempty"`
}

// ProcessorBatchProgress is how a batch job stands: once Done, Calls has
// one answer per person, in order (ProcessorCallRefused for a person the
// job could not erase); else Job is what to follow next.
type ProcessorBatchProgress struct {
	Done  bool              `json:"done"`
	Job   ProcessorBatchJob `json:"job"`
	Calls []ProcessorCall   `json:"calls,omitempty"`
}

// BatchRunning is the error type of a batch job's check while the job
// runs: the check is retried on its retry policy's backoff, so following a
// job adds nothing to the history until it moves on.
const BatchRunning = "BatchRunning"
