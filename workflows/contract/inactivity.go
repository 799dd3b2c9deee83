package contract

import (
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
)

// InactivityPolicy is what the company promised about inactive and closed accounts (P9).
type InactivityPolicy struct {
	InactiveAfter domain.Period // "inactive for more than two years": 24mo
	WarnBefore    time.Duration // the warning goes this long before (30 days)
	ClosedKeep    domain.Period // "kept for 30 days after the account closes" (zero: not applied)
}

// SweepInput runs (or continues) a sweep. State is nil on a fresh run.
type SweepInput struct {
	Policy InactivityPolicy
	DryRun bool // count and list, change nothing
	State  *SweepState
}

// Sweep phases.
const (
	PhaseInactive = "inactive"
	PhaseClosed   = "closed"
)

// SweepState carries a sweep across continue-as-new.
type SweepState struct {
	Now    time.Time // the sweep's reference time, fixed for the whole run
	RunKey string    // names the run (dry-run report, audit)
	Phase  string
	Cursor SweepCursor
	Totals SweepTotals
}

// SweepCursor is where the keyset scan stopped (an account id is no
// personal data on its own, but the cursor stays inside encrypted payloads).
type SweepCursor struct {
	LastActive time.Time `json:"last_active"`
	ID         string    `json:"id"`
}

// SweepTotals count what a sweep did.
type SweepTotals struct {
	Scanned int `json:"scanned"`
	Warned  int `json:"warned"`
	Erased  int `json:"erased"`
	Waiting int `json:"waiting"` // warned earlier, not due yet
	// ErasureFailed counts the people a bulk erasure could not finish: the
	// privacy team has a task for each page with any.
	ErasureFailed int    `json:"erasure_failed,omitempty"`
	Pages         int    `json:"pages"`
	Runs          int    `json:"runs"` // continue-as-new generations
	ReportKey     string `json:"report_key,omitempty"`
}

func (t *SweepTotals) Add(p SweepPageResult) {
	t.Scanned += p.Scanned
	t.Warned += p.Warned
	t.Erased += p.Erased
	t.Waiting += p.Waiting
	t.Pages++
}

// SweepPageInput asks for one page of the sweep.
type SweepPageInput struct {
	Policy InactivityPolicy
	DryRun bool
	Now    time.Time
	RunKey string
	Phase  string
	Cursor SweepCursor
	Page   int
	// Batch, when set, names the bulk erasure of this page: the accounts
	// due are sealed into the result's Erase under its key, for
	// EraseInBulk, instead of being erased by the page (runs from before
	// bulk erasure). PageSize is then at most BulkPageSize.
	Batch    string
	PageSize int
}

// SweepPageResult says what one page did and where the next one starts.
type SweepPageResult struct {
	Scanned, Warned, Erased, Waiting int
	Next                             SweepCursor
	Done                             bool
	ReportKey                        string
	Erase                            []BulkSubject // with Batch: the people to erase in bulk
}
