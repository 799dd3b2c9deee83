package contract

import "time"

// ErasureInput starts the erasure of one person's data (P4–P7). Identity is
// sealed with the person's data key; the activities open it to find them.
type ErasureInput struct {
	RequestID    string
	SubjectRef   string
	Identity     []byte
	Jurisdiction string
	// Expedited marks the erasure of a child's data (P15): operator tasks
	// at processors get ExpeditedTaskDeadline instead of the usual week.
	Expedited bool
}

// Step statuses of one system in an erasure.
const (
	StepPending = "pending"
	StepRunning = "running"
	StepDone    = "done"
	StepFailed  = "failed"
)

// Systems of the data map an erasure reaches.
const (
	SystemPostgres  = "postgres"
	SystemS3        = "s3"
	SystemProcessor = "processor"
	SystemBackups   = "backups"
)

// ExpeditedTaskDeadline is how long an operator task at a processor may
// stay open in an expedited erasure (a child's data), against the usual
// DefaultProcessorTaskDeadline.
const ExpeditedTaskDeadline = 24 * time.Hour

// SystemProgress is how far the erasure got in one system of the data map:
// the database, one S3 location, one processor. It names tables, buckets and
// processors, never the person.
type SystemProgress struct {
	System string `json:"system"` // postgres, s3, processor, backups
	Name   string `json:"name,omitempty"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// ErasureProgress is the erasure's state, readable at any moment with the
// QueryProgress query (API: GET /v1/requests/{id}; Temporal UI: Queries).
type ErasureProgress struct {
	RequestID string           `json:"request_id"`
	Status    string           `json:"status"`
	Systems   []SystemProgress `json:"systems"`
	Receipt   *Receipt         `json:"receipt,omitempty"`
	// Answered are the processors that settled the erasure at the first
	// call, which have no EraseAtProcessor workflow to ask: their view.
	Answered []ProcessorErasureView `json:"answered,omitempty"`
}

// Summary is the receipt as lines for the person's completion mail.
func (p ErasureProgress) Summary() []string {
	if p.Receipt == nil {
		return nil
	}
	return p.Receipt.Lines()
}

// QueryProgress is the name of the query every Lethe workflow answers.
const QueryProgress = "progress"

// QueryErasure is the query a PrivacyRequest that runs its erasure itself
// answers with the erasure's progress (ErasureProgress), once the erasure
// has started; an older request's erasure is its EraseSubject workflow's
// QueryProgress.
const QueryErasure = "erasure"

// ErasurePlan is what the data map says to erase for one person, with the
// person resolved once, before anything is erased (an email-only request
// could not be matched to its user id after the account row is anonymized).
type ErasurePlan struct {
	Found bool // the application knows the person
	// Identity is the request's identity with the user id resolved, sealed
	// with the person's key: every step uses it.
	Identity   []byte
	Locations  []string // S3 locations as bucket/prefix templates
	Processors []PlannedProcessor
	Backups    []BackupLocation
	// BackupPromise is how soon the privacy policy says backups forget a
	// person; 0 when the data map declares no backups.
	BackupPromise time.Duration
	MapDigest     string // the data map's version, recorded in the ledger
}

// PlannedProcessor is one processor the erasure asks to delete the person.
type PlannedProcessor struct {
	Name     string
	FollowUp time.Duration // its own retention window: checked again after it
	// BatchSize, in a bulk erasure's plan, is how many people one batch
	// job at the processor takes; 0 when it has no batch API (a call per
	// person).
	BatchSize int `json:",omitempty"`
}

// EraseTablesInput asks for one person's rows to go from every table of the data map.
type EraseTablesInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}

// TableOutcome is what an erasure did in one table.
type TableOutcome struct {
	Table  string    `json:"table"`
	Action string    `json:"action"` // deleted, anonymized, retained
	Rows   int       `json:"rows"`
	Reason string    `json:"reason,omitempty"` // legal basis of a hold
	Until  time.Time `json:"until,omitzero"`   // when a hold ends
}

// HeldRows are a person's rows kept under a legal hold, and what the
// erasure needs to erase them when it ends: the user id sealed with a key
// of the hold's own (HoldRef), destroyed when the last row goes.
type HeldRows struct {
	Table   string
	Until   time.Time
	HoldRef string
	Sealed  []byte
}

// EraseTablesResult says what happened in each table, and what is held.
type EraseTablesResult struct {
	Tables []TableOutcome
	Held   []HeldRows
}

// EraseObjectsInput asks for one person's objects to go from one S3
// location of the data map (by its index in the map), every version included.
type EraseObjectsInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
	Location   int
}

// EraseObjectsResult counts what went from one location.
type EraseObjectsResult struct {
	Location string // bucket/prefix template
	Objects  int    // keys
	Versions int    // object versions and delete markers (versioned buckets)
}

// EraseOwnSystemsInput asks for one person to go from the company's own
// systems of the data map (the application database and every S3
// location), and for those to be read again.
type EraseOwnSystemsInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}

// EraseOwnSystemsResult is what went from the application database and
// from each S3 location (in the map's order), and what the verification
// found left there: empty when the erasure is complete.
type EraseOwnSystemsResult struct {
	Tables    EraseTablesResult
	Objects   []EraseObjectsResult
	Leftovers []string
}

// OwnSystemsFailure is the detail of an EraseOwnSystems that failed for
// good in one of the company's own systems: which (0 the application
// database, 1+i the map's i-th S3 location), and what the systems before
// it erased. The systems after it were not reached.
type OwnSystemsFailure struct {
	Failed  int
	Tables  *EraseTablesResult
	Objects []EraseObjectsResult
}

// VerifyErasureInput asks every system again whether anything of the person remains.
type VerifyErasureInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
}

// VerifyErasureResult lists what remains outside legal holds; empty when
// the erasure is complete. Entries name tables and locations only.
type VerifyErasureResult struct {
	Leftovers []string
}

// ReleaseHoldInput erases rows kept under a legal hold once the hold ends.
type ReleaseHoldInput struct {
	RequestID  string
	SubjectRef string
	Held       HeldRows
}

// EraseHeldInput erases the held rows whose hold has ended.
type EraseHeldInput struct {
	RequestID string
	Held      HeldRows
}

// EraseHeldResult says how many rows went, and when the next hold ends
// (zero when no held row remains).
type EraseHeldResult struct {
	Deleted int
	Next    time.Time
}
