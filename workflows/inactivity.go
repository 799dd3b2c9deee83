package workflows

import (
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"go.temporal.io/sdk/workflow"
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
	Scanned   int    `json:"scanned"`
	Warned    int    `json:"warned"`
	Erased    int    `json:"erased"`
	Waiting   int    `json:"waiting"` // warned earlier, not due yet
	Pages     int    `json:"pages"`
	Runs      int    `json:"runs"` // continue-as-new generations
	ReportKey string `json:"report_key,omitempty"`
}

func (t *SweepTotals) add(p SweepPageResult) {
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
}

// SweepPageResult says what one page did and where the next one starts.
type SweepPageResult struct {
	Scanned, Warned, Erased, Waiting int
	Next                             SweepCursor
	Done                             bool
	ReportKey                        string
}

// pagesPerRun bounds the history of one run: then the sweep continues as new.
const pagesPerRun = 25

// InactiveAccountSweep runs daily from a Temporal Schedule. It pages through
// the accounts inactive for close to InactiveAfter (keyset pagination, so a
// million accounts cost only the inactive ones): each is warned once, WarnBefore
// ahead; one still inactive when its date comes is erased, and any activity in
// between cancels it. Then closed accounts past ClosedKeep are erased. The
// history stays bounded by continuing as new every few pages; a ledger makes
// sure nobody is warned or erased twice, across runs and retries. A dry run
// writes the list to S3 for an operator to review and changes nothing.
func InactiveAccountSweep(ctx workflow.Context, in SweepInput) (SweepTotals, error) {
	st := in.State
	if st == nil {
		now := workflow.Now(ctx)
		st = &SweepState{Now: now, RunKey: now.UTC().Format("20060102T150405Z"), Phase: PhaseInactive}
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (SweepState, error) { return *st, nil }); err != nil {
		return st.Totals, err
	}
	ctx = withActivityDefaults(ctx)
	for pages := 0; ; pages++ {
		if pages == pagesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			st.Totals.Runs++
			return st.Totals, workflow.NewContinueAsNewError(ctx, WorkflowInactiveSweep, SweepInput{Policy: in.Policy, DryRun: in.DryRun, State: st})
		}
		var res SweepPageResult
		err := workflow.ExecuteActivity(ctx, ActivitySweepPage, SweepPageInput{
			Policy: in.Policy, DryRun: in.DryRun, Now: st.Now, RunKey: st.RunKey, Phase: st.Phase, Cursor: st.Cursor, Page: st.Totals.Pages,
		}).Get(ctx, &res)
		if err != nil {
			return st.Totals, fmt.Errorf("sweep %s page %d: %w", st.Phase, st.Totals.Pages, err)
		}
		st.Totals.add(res)
		if res.ReportKey != "" {
			st.Totals.ReportKey = res.ReportKey
		}
		st.Cursor = res.Next
		if !res.Done {
			continue
		}
		if st.Phase == PhaseInactive && !in.Policy.ClosedKeep.IsZero() {
			st.Phase, st.Cursor = PhaseClosed, SweepCursor{}
			continue
		}
		return st.Totals, nil
	}
}
