package contract

import "time"

// WorkflowAfterErasure keeps, in one workflow per request, every promise of
// an erasure that outlives its request: the follow-ups at processors, the
// backups' rotation and the end of each legal hold.
const WorkflowAfterErasure = "AfterErasure"

// AfterErasureWorkflowID names what outlives an erasure request.
func AfterErasureWorkflowID(requestID string) string { return requestID + "-after" }

// AfterErasureInput starts (or continues) what outlives an erasure. Each
// part may be empty; State is nil on a fresh run.
type AfterErasureInput struct {
	RequestID  string // the request's, or a bulk page's batch
	SubjectRef string // the person's; empty for a bulk page
	// FollowUps are the later checks at the processors that settled the
	// erasure at once, each when its DueAt has come.
	FollowUps []ProcessorFollowUpInput
	// Backups is the wait for every backup taken before the erasure to
	// rotate out; nil when the data map names no backup location. Its
	// first check is one CheckEvery after ErasedAt.
	Backups *BackupWatchInput
	// Holds are the person's rows kept under a legal hold, one table each,
	// erased when their hold ends.
	Holds []HeldRows
	// HeldInBulk are a bulk page's people's rows kept under legal holds,
	// each released when its hold ends (as ReleaseHeldInBulk).
	HeldInBulk []BulkHold         `json:",omitempty"`
	State      *AfterErasureState `json:",omitempty"`
}

// AfterErasureState carries every part across continue-as-new. It is
// written only while every part waits, so no step is in flight.
type AfterErasureState struct {
	FollowUps []ProcessorFollowUpResult // one per input check; CheckedAt set once made
	Backups   *BackupWatchState
	Holds     []HoldState // one per input hold
	// HeldInBulk is where a bulk page's holds stand; nil for a request.
	HeldInBulk *HeldInBulkState `json:",omitempty"`
}

// HeldInBulkState is where a bulk page's legal holds stand.
type HeldInBulkState struct {
	Left    []BulkHold // not yet released, each with its next end
	Deleted int        // rows erased so far
}

// HoldState is where the end of one legal hold stands.
type HoldState struct {
	Held    HeldRows // Until is the next end; zero once no held row remains
	Deleted int      // rows erased so far
	EndedAt time.Time
}

// AfterErasureProgress is what outlives an erasure request, as it stands
// (QueryProgress).
type AfterErasureProgress struct {
	RequestID string                    `json:"request_id"`
	FollowUps []ProcessorFollowUpResult `json:"follow_ups"`
	Backups   *BackupWatchProgress      `json:"backups,omitempty"`
	Holds     []HoldProgress            `json:"holds"`
	// HeldInBulk: a bulk page's holds.
	HeldInBulk *HeldInBulkProgress `json:"held_in_bulk,omitempty"`
}

// HeldInBulkProgress is a bulk page's legal holds, as they stand.
type HeldInBulkProgress struct {
	Left    int       `json:"left"`          // holds not yet released
	Next    time.Time `json:"next,omitzero"` // the next end
	Deleted int       `json:"deleted"`
}

// HoldProgress is one legal hold's rows, as they stand.
type HoldProgress struct {
	Table   string    `json:"table"`
	Until   time.Time `json:"until,omitzero"` // the next end
	Deleted int       `json:"deleted"`
	EndedAt time.Time `json:"ended_at,omitzero"`
}
