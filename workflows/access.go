package workflows

import (
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// exports builds and delivers bundles (a nil pointer: see activities.go).
var exports *activities.Exports

// BuildExport gathers the person's data from every system of the data map:
// each processor that can export is fetched by its own activity, so a slow
// one holds up nobody and a failing one becomes a gap the index states; then
// one activity streams the database rows, the files and the processors'
// parts into a single ZIP in S3.
func BuildExport(ctx workflow.Context, in contract.ExportInput) (contract.ExportResult, error) {
	ctx = withActivityDefaults(ctx)
	var names []string
	if err := workflow.ExecuteActivity(ctx, exports.ExportSources).Get(ctx, &names); err != nil {
		return contract.ExportResult{}, err
	}
	// An operator decides about a processor that keeps failing: retry it, or
	// leave it out with a reason the index states.
	decisions := map[string]contract.ProcessorDecision{}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateProcessorDecision,
		func(ctx workflow.Context, d contract.ProcessorDecision) error { decisions[d.Processor] = d; return nil },
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d contract.ProcessorDecision) error {
			if d.Action != "retry" && d.Action != "skip" {
				return temporal.NewApplicationError("action: retry or skip", contract.RefusedInput)
			}
			if d.Action == "skip" && d.Reason == "" {
				return temporal.NewApplicationError("a reason is required to skip a source", contract.RefusedInput)
			}
			return nil
		}}); err != nil {
		return contract.ExportResult{}, err
	}
	fetchCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 8},
	})
	gaps := map[string]string{}
	var fetched []string
	wg := workflow.NewWaitGroup(ctx)
	for _, name := range names {
		name := name
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			for {
				err := workflow.ExecuteActivity(fetchCtx, exports.FetchProcessorExport, contract.ProcessorExportInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: in.Identity, Processor: name}).Get(ctx, nil)
				if err == nil {
					fetched = append(fetched, name)
					return
				}
				// It keeps failing: the privacy team decides, through the API or the UI.
				delete(decisions, name)
				if err := tell(ctx, contract.SendMailInput{RequestID: in.RequestID, Template: contract.MailOperatorReminder, ToPrivacyTeam: true,
					Key: onceKey(in.RequestID, "export-stuck", name), Data: contract.MailData{RequestType: domain.TypeAccess, Jurisdiction: domain.GDPR, DueDate: workflow.Now(ctx),
						Lines: []string{"processor " + name + " does not answer: retry or skip it (POST /v1/requests/" + in.RequestID + "/sources)"}}}); err != nil {
					return
				}
				if err := workflow.Await(ctx, func() bool { _, ok := decisions[name]; return ok }); err != nil {
					return
				}
				if d := decisions[name]; d.Action == "skip" {
					gaps[name] = d.Reason
					return
				}
			}
		})
	}
	wg.Wait(ctx)
	var res contract.ExportResult
	err := workflow.ExecuteActivity(withLongActivity(ctx), exports.BuildBundle, contract.BundleInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: in.Identity,
		Portability: in.Portability, Processors: fetched, Gaps: gaps}).Get(ctx, &res)
	return res, err
}

// withLongActivity lets an activity run long (a big bundle) while it heartbeats.
func withLongActivity(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
}

// KeepExport keeps a bundle while its link is valid: a fresh link can be had
// until then, and when it passes a durable timer deletes the bundle.
func KeepExport(ctx workflow.Context, in contract.ExpiryInput) (int, error) {
	expires := workflow.Now(ctx).Add(in.ValidFor)
	deleted := false
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateNewLink,
		func(ctx workflow.Context) (contract.LinkResult, error) {
			var link contract.LinkResult
			err := workflow.ExecuteActivity(withActivityDefaults(ctx), exports.PresignLink, contract.LinkInput{Key: in.Key, ExpiresAt: expires}).Get(ctx, &link)
			return link, err
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error {
			if deleted || !workflow.Now(ctx).Before(expires) {
				return temporal.NewApplicationError("the bundle has expired and was deleted: ask for your data again", contract.RefusedState)
			}
			return nil
		}}); err != nil {
		return 0, err
	}
	if err := workflow.Sleep(ctx, in.ValidFor); err != nil {
		return 0, err
	}
	deleted = true
	var n int
	err := workflow.ExecuteActivity(withActivityDefaults(ctx), exports.DeleteBundle, in).Get(ctx, &n)
	return n, err
}

// export runs an access or portability request's work: the bundle, its
// keeper, and the link the completion mail carries.
func (r *request) export(ctx workflow.Context) error {
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: r.in.RequestID + "-export"})
	var res contract.ExportResult
	if err := workflow.ExecuteChildWorkflow(child, contract.WorkflowBuildExport, contract.ExportInput{RequestID: r.in.RequestID, SubjectRef: r.in.SubjectRef,
		Identity: r.in.Identity, Portability: r.in.Type == domain.TypePortability}).Get(ctx, &res); err != nil {
		return fmt.Errorf("build the bundle: %w", err)
	}
	valid := r.in.Policy.LinkValidFor
	keeper := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: contract.ExpiryWorkflowID(r.in.RequestID), ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON})
	f := workflow.ExecuteChildWorkflow(keeper, contract.WorkflowKeepExport, contract.ExpiryInput{RequestID: r.in.RequestID, Key: res.Key, ValidFor: valid})
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return err
	}
	var link contract.LinkResult
	if err := workflow.ExecuteActivity(ctx, exports.PresignLink, contract.LinkInput{Key: res.Key, ExpiresAt: workflow.Now(ctx).Add(valid)}).Get(ctx, &link); err != nil {
		return err
	}
	r.link = link
	r.view.Outcome = append(r.view.Outcome, fmt.Sprintf("Your data from %d sources is ready to download until %s.", len(res.Sources), link.ExpiresAt.Format(domain.DateLayout)))
	for _, gap := range res.Gaps {
		r.view.Outcome = append(r.view.Outcome, "Not included: "+gap)
	}
	if r.in.PushTo != "" {
		// Portability to a third party the person named: the same bundle, sent there.
		if err := workflow.ExecuteActivity(ctx, exports.PushBundle, contract.PushInput{RequestID: r.in.RequestID, Key: res.Key, URL: r.in.PushTo}).Get(ctx, nil); err != nil {
			return fmt.Errorf("send the bundle to the named recipient: %w", err)
		}
		r.view.Outcome = append(r.view.Outcome, "A copy was sent to the recipient you named.")
		if err := r.audit(ctx, "system", "export.transferred", nil); err != nil {
			return err
		}
	}
	return nil
}
