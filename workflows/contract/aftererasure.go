package contract

import (
	"fmt"
	"time"
)

// WorkflowAfterErasure keeps, in one workflow per request, every promise of
// an erasure that outlives its request: the follow-ups at processors, the
// backups' rotation and the end of each legal hold.
const WorkflowAfterErasure = "AfterErasure"

// AfterErasureWorkflowID names what outlives an erasure request.
func AfterErasureWorkflowID(requestID string) string { return requestID + "-after" }

// AfterErasurePartWorkflowID names part i (from 0) of what outlives a bulk
// page (see AfterErasureInput.Split): the first is AfterErasureWorkflowID.
func AfterErasurePartWorkflowID(batch string, i int) string {
	if i == 0 {
		return AfterErasureWorkflowID(batch)
	}
	return fmt.Sprintf("%s-%d", AfterErasureWorkflowID(batch), i+1)
}

// AfterErasureItemsMax is the most follow-ups and holds one AfterErasure
// takes: at about 450 bytes each in its input, it stays near 700 kB, well
// under the 2 MB the server refuses in a payload, however many processors
// a bulk page's people were erased at.
const AfterErasureItemsMax = 1500

// Split cuts what outlives a bulk page into inputs of at most limit
// follow-ups and holds each, in order; the backups watch and a request's
// holds go with the first. One input, in itself, when it fits.
func (in AfterErasureInput) Split(limit int) []AfterErasureInput {
	limit = max(limit, 1)
	if len(in.FollowUps)+len(in.Holds)+len(in.HeldInBulk) <= limit {
		return []AfterErasureInput{in}
	}
	followUps, held := in.FollowUps, in.HeldInBulk
	var parts []AfterErasureInput
	for len(parts) == 0 || len(followUps)+len(held) > 0 {
		p := AfterErasureInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef}
		if len(parts) == 0 {
			p.Backups, p.Holds = in.Backups, in.Holds
		}
		room := max(limit-len(p.Holds), 0)
		if n := min(room, len(followUps)); n > 0 {
			p.FollowUps, followUps = followUps[:n:n], followUps[n:]
			room -= n
		}
		if n := min(room, len(held)); n > 0 {
			p.HeldInBulk, held = held[:n:n], held[n:]
		}
		parts = append(parts, p)
	}
	return parts
}

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
