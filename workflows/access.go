package workflows

import (
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ExportInput builds a person's data bundle (P3): access, or portability.
type ExportInput struct {
	RequestID   string
	SubjectRef  string
	Identity    []byte
	Portability bool // only the data the person provided (GDPR Art. 20)
}

// ExportResult is where the bundle is and what it holds (no personal data).
type ExportResult struct {
	Key     string   `json:"key"` // the bundle's S3 key in the export bucket
	Sources []string `json:"sources"`
	Gaps    []string `json:"gaps,omitempty"`
	Bytes   int64    `json:"bytes"`
}

// ProcessorExportInput fetches one processor's data about the person into
// Lethe's export bucket, ahead of the bundle.
type ProcessorExportInput struct {
	RequestID  string
	SubjectRef string
	Identity   []byte
	Processor  string
}

// BundleInput builds the bundle from every system, with the processors' parts fetched before.
type BundleInput struct {
	RequestID   string
	SubjectRef  string
	Identity    []byte
	Portability bool
	Processors  []string          // fetched parts to include
	Gaps        map[string]string // processor -> why it is missing
}

// ExpiryInput keeps a bundle for as long as its link is valid.
type ExpiryInput struct {
	RequestID string
	Key       string
	ValidFor  time.Duration
}

// LinkResult is a download link.
type LinkResult struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LinkInput asks for a presigned link to a bundle, valid until ExpiresAt.
type LinkInput struct {
	Key       string
	ExpiresAt time.Time
}

// UpdateNewLink asks a kept bundle for a fresh link.
const UpdateNewLink = "new_link"

// ExpiryWorkflowID is the workflow that keeps a request's bundle.
func ExpiryWorkflowID(requestID string) string { return requestID + "-bundle" }

// BuildExport gathers the person's data from every system of the data map:
// each processor that can export is fetched by its own activity, so a slow
// one holds up nobody and a failing one becomes a gap the index states; then
// one activity streams the database rows, the files and the processors'
// parts into a single ZIP in S3.
func BuildExport(ctx workflow.Context, in ExportInput) (ExportResult, error) {
	ctx = withActivityDefaults(ctx)
	var names []string
	if err := workflow.ExecuteActivity(ctx, ActivityExportSources).Get(ctx, &names); err != nil {
		return ExportResult{}, err
	}
	// An operator decides about a processor that keeps failing: retry it, or
	// leave it out with a reason the index states.
	decisions := map[string]ProcessorDecision{}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateProcessorDecision,
		func(ctx workflow.Context, d ProcessorDecision) error { decisions[d.Processor] = d; return nil },
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d ProcessorDecision) error {
			if d.Action != "retry" && d.Action != "skip" {
				return temporal.NewApplicationError("action: retry or skip", RefusedInput)
			}
			if d.Action == "skip" && d.Reason == "" {
				return temporal.NewApplicationError("a reason is required to skip a source", RefusedInput)
			}
			return nil
		}}); err != nil {
		return ExportResult{}, err
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
				err := workflow.ExecuteActivity(fetchCtx, ActivityFetchProcessor, ProcessorExportInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: in.Identity, Processor: name}).Get(ctx, nil)
				if err == nil {
					fetched = append(fetched, name)
					return
				}
				// It keeps failing: the privacy team decides, through the API or the UI.
				delete(decisions, name)
				_ = workflow.ExecuteActivity(ctx, ActivitySendMail, SendMailInput{RequestID: in.RequestID, Template: MailOperatorReminder, ToPrivacyTeam: true,
					Key: fmt.Sprintf("%s:export-stuck:%s", in.RequestID, name), Data: MailData{RequestType: "access", Jurisdiction: "gdpr", DueDate: workflow.Now(ctx),
						Lines: []string{"processor " + name + " does not answer: retry or skip it (POST /v1/requests/" + in.RequestID + "/sources)"}}}).Get(ctx, nil)
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
	var res ExportResult
	err := workflow.ExecuteActivity(withLongActivity(ctx), ActivityBuildBundle, BundleInput{RequestID: in.RequestID, SubjectRef: in.SubjectRef, Identity: in.Identity,
		Portability: in.Portability, Processors: fetched, Gaps: gaps}).Get(ctx, &res)
	return res, err
}

// ProcessorDecision is an operator's decision about a processor that keeps failing.
type ProcessorDecision struct {
	Processor string
	Action    string // "retry" or "skip"
	Reason    string // why it is left out (skip); stated in the bundle's index
	Actor     string
}

// UpdateProcessorDecision carries a ProcessorDecision to a running export.
const UpdateProcessorDecision = "processor_decision"

// withLongActivity lets an activity run long (a big bundle) while it heartbeats.
func withLongActivity(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute},
	})
}

// KeepExport keeps a bundle while its link is valid: a fresh link can be had
// until then, and when it passes a durable timer deletes the bundle.
func KeepExport(ctx workflow.Context, in ExpiryInput) (int, error) {
	expires := workflow.Now(ctx).Add(in.ValidFor)
	deleted := false
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateNewLink,
		func(ctx workflow.Context) (LinkResult, error) {
			var link LinkResult
			err := workflow.ExecuteActivity(withActivityDefaults(ctx), ActivityPresignLink, LinkInput{Key: in.Key, ExpiresAt: expires}).Get(ctx, &link)
			return link, err
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error {
			if deleted || !workflow.Now(ctx).Before(expires) {
				return temporal.NewApplicationError("the bundle has expired and was deleted: ask for your data again", RefusedState)
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
	err := workflow.ExecuteActivity(withActivityDefaults(ctx), ActivityDeleteBundle, in).Get(ctx, &n)
	return n, err
}

// export runs an access or portability request's work: the bundle, its
// keeper, and the link the completion mail carries.
func (r *request) export(ctx workflow.Context) error {
	child := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: r.in.RequestID + "-export"})
	var res ExportResult
	if err := workflow.ExecuteChildWorkflow(child, WorkflowBuildExport, ExportInput{RequestID: r.in.RequestID, SubjectRef: r.in.SubjectRef,
		Identity: r.in.Identity, Portability: r.in.Type == domain.TypePortability}).Get(ctx, &res); err != nil {
		return fmt.Errorf("build the bundle: %w", err)
	}
	valid := r.in.Policy.LinkValidFor
	keeper := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: ExpiryWorkflowID(r.in.RequestID), ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON})
	f := workflow.ExecuteChildWorkflow(keeper, WorkflowKeepExport, ExpiryInput{RequestID: r.in.RequestID, Key: res.Key, ValidFor: valid})
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return err
	}
	var link LinkResult
	if err := workflow.ExecuteActivity(ctx, ActivityPresignLink, LinkInput{Key: res.Key, ExpiresAt: workflow.Now(ctx).Add(valid)}).Get(ctx, &link); err != nil {
		return err
	}
	r.link = link
	r.view.Outcome = append(r.view.Outcome, fmt.Sprintf("Your data from %d sources is ready to download until %s.", len(res.Sources), link.ExpiresAt.Format("2 January 2006")))
	for _, gap := range res.Gaps {
		r.view.Outcome = append(r.view.Outcome, "Not included: "+gap)
	}
	if r.in.PushTo != "" {
		// Portability to a third party the person named: the same bundle, sent there.
		if err := workflow.ExecuteActivity(ctx, ActivityPushBundle, PushInput{RequestID: r.in.RequestID, Key: res.Key, URL: r.in.PushTo}).Get(ctx, nil); err != nil {
			return fmt.Errorf("send the bundle to the named recipient: %w", err)
		}
		r.view.Outcome = append(r.view.Outcome, "A copy was sent to the recipient you named.")
		if err := r.audit(ctx, "system", "export.transferred", nil); err != nil {
			return err
		}
	}
	return nil
}

// PushInput sends a bundle to a third party's HTTPS endpoint.
type PushInput struct {
	RequestID string
	Key       string
	URL       string // personal-ish (the person chose it): only in encrypted payloads
}
