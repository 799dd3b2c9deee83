package workflows

import (
	"fmt"

	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/sdk/workflow"
)

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
func InactiveAccountSweep(ctx workflow.Context, in contract.SweepInput) (contract.SweepTotals, error) {
	st := in.State
	if st == nil {
		now := workflow.Now(ctx)
		st = &contract.SweepState{Now: now, RunKey: now.UTC().Format("20060102T150405Z"), Phase: contract.PhaseInactive}
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.SweepState, error) { return *st, nil }); err != nil {
		return st.Totals, err
	}
	ctx = withActivityDefaults(ctx)
	for pages := 0; ; pages++ {
		if pages == pagesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			st.Totals.Runs++
			return st.Totals, workflow.NewContinueAsNewError(ctx, contract.WorkflowInactiveSweep, contract.SweepInput{Policy: in.Policy, DryRun: in.DryRun, State: st})
		}
		var res contract.SweepPageResult
		err := workflow.ExecuteActivity(ctx, accounts.SweepInactivePage, contract.SweepPageInput{
			Policy: in.Policy, DryRun: in.DryRun, Now: st.Now, RunKey: st.RunKey, Phase: st.Phase, Cursor: st.Cursor, Page: st.Totals.Pages,
		}).Get(ctx, &res)
		if err != nil {
			return st.Totals, fmt.Errorf("sweep %s page %d: %w", st.Phase, st.Totals.Pages, err)
		}
		st.Totals.Add(res)
		if res.ReportKey != "" {
			st.Totals.ReportKey = res.ReportKey
		}
		st.Cursor = res.Next
		if !res.Done {
			continue
		}
		if st.Phase == contract.PhaseInactive && !in.Policy.ClosedKeep.IsZero() {
			st.Phase, st.Cursor = contract.PhaseClosed, contract.SweepCursor{}
			continue
		}
		return st.Totals, nil
	}
}
