package workflows

import (
	"fmt"

	"github.com/lethe-privacy/lethe/workflows/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"
)

// pagesPerRun bounds the history of one run: then the sweep continues as new.
const pagesPerRun = 25

// bulkInFlight is how many pages' bulk erasures a sweep runs at once: the
// next page is read while the last ones are at the processors.
const bulkInFlight = 3

// InactiveAccountSweep runs daily from a Temporal Schedule. It pages through
// the accounts inactive for close to InactiveAfter (keyset pagination, so a
// million accounts cost only the inactive ones): each is warned once, WarnBefore
// ahead; one still inactive when its date comes is erased, and any activity in
// between cancels it. Then closed accounts past ClosedKeep are erased. The
// history stays bounded by continuing as new every few pages; a ledger makes
// sure nobody is warned or erased twice, across runs and retries. A dry run
// writes the list to S3 for an operator to review and changes nothing.
//
// Each page's accounts due are erased by an EraseInBulk of their own
// (processors, holds, verification and receipts included), a few pages at
// a time; runs from before bulk erasure erase rows and objects in the
// page's activity.
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
	inBulk := workflow.GetVersion(ctx, "bulk-erasure", workflow.DefaultVersion, 1) == 1
	var erasing []workflow.ChildWorkflowFuture // pages' bulk erasures, oldest first
	finish := func(n int) error {
		for ; n > 0 && len(erasing) > 0; n-- {
			var done contract.BulkErasureResult
			if err := erasing[0].Get(ctx, &done); err != nil {
				return fmt.Errorf("sweep: bulk erasure: %w", err)
			}
			st.Totals.Erased += done.People
			st.Totals.ErasureFailed += done.Failed
			erasing = erasing[1:]
		}
		return nil
	}
	for pages := 0; ; pages++ {
		if pages == pagesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			if err := finish(len(erasing)); err != nil {
				return st.Totals, err
			}
			st.Totals.Runs++
			return st.Totals, workflow.NewContinueAsNewError(ctx, contract.WorkflowInactiveSweep, contract.SweepInput{Policy: in.Policy, DryRun: in.DryRun, State: st})
		}
		page := contract.SweepPageInput{
			Policy: in.Policy, DryRun: in.DryRun, Now: st.Now, RunKey: st.RunKey, Phase: st.Phase, Cursor: st.Cursor, Page: st.Totals.Pages,
		}
		if inBulk {
			page.Batch = fmt.Sprintf("sweep-%s-%s-%d", st.RunKey, st.Phase, st.Totals.Pages)
			page.PageSize = contract.BulkPageSize
		}
		var res contract.SweepPageResult
		err := workflow.ExecuteActivity(ctx, accounts.SweepInactivePage, page).Get(ctx, &res)
		if err != nil {
			return st.Totals, fmt.Errorf("sweep %s page %d: %w", st.Phase, st.Totals.Pages, err)
		}
		st.Totals.Add(res)
		if res.ReportKey != "" {
			st.Totals.ReportKey = res.ReportKey
		}
		if len(res.Erase) > 0 {
			if len(erasing) == bulkInFlight {
				if err := finish(1); err != nil {
					return st.Totals, err
				}
			}
			why := contract.BulkInactive
			if st.Phase == contract.PhaseClosed {
				why = contract.BulkClosed
			}
			// A page that was started finishes whatever becomes of the sweep.
			erasing = append(erasing, workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID: page.Batch, ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON}),
				contract.WorkflowBulkErasure, contract.BulkErasureInput{Batch: page.Batch, Why: why, RunAt: st.Now, Subjects: res.Erase}))
		}
		st.Cursor = res.Next
		if !res.Done {
			continue
		}
		if st.Phase == contract.PhaseInactive && !in.Policy.ClosedKeep.IsZero() {
			st.Phase, st.Cursor = contract.PhaseClosed, contract.SweepCursor{}
			continue
		}
		if err := finish(len(erasing)); err != nil {
			return st.Totals, err
		}
		return st.Totals, nil
	}
}
