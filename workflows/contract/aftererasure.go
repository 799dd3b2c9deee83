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
	RequestID  string
	SubjectRef string
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
	State *AfterErasureState `json:",omitempty"`
}

// AfterErasureState carries every part across continue-as-new. It is
// written only while every part waits, so no step is in flight.
type AfterErasureState struct {
	FollowUps []ProcessorFollowUpResult // one per input check; CheckedAt set once made
	Backups   *BackupWatchState
	Holds     []HoldState // one per input hold
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
}

// HoldProgress is one legal hold's rows, as they stand.
type HoldProgress struct {
	Table   string    `json:"table"`
	Until   time.Time `json:"until,omitzero"` // the next end
	Deleted int       `json:"deleted"`
	EndedAt time.Time `json:"ended_at,omitzero"`
}
