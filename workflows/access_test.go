package workflows_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/workflows"
)

func TestTheBundleIsDeletedWhenItsLinkExpiresAndANewLinkWorksUntilThen(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(jan15)
	var deletedAt time.Time
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.ExpiryInput) (int, error) {
		deletedAt = env.Now()
		return 1, nil
	}, activity.RegisterOptions{Name: workflows.ActivityDeleteBundle})
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.LinkInput) (workflows.LinkResult, error) {
		return workflows.LinkResult{URL: "https://s3/presigned", ExpiresAt: in.ExpiresAt}, nil
	}, activity.RegisterOptions{Name: workflows.ActivityPresignLink})
	fresh, late := &outcome{}, &outcome{}
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(workflows.UpdateNewLink, "n1", callbacks{fresh}) }, 6*24*time.Hour)
	env.ExecuteWorkflow(workflows.KeepExport, workflows.ExpiryInput{RequestID: "req_x", Key: "exports/req_x/bundle.zip", ValidFor: 7 * 24 * time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if want := jan15.Add(7 * 24 * time.Hour); !deletedAt.Equal(want) {
		t.Fatalf("bundle deleted at %s, want %s", deletedAt, want)
	}
	if fresh.rejected != nil || fresh.err != nil || fresh.result.(workflows.LinkResult).ExpiresAt != jan15.Add(7*24*time.Hour) {
		t.Fatalf("a new link on day 6: %+v", fresh)
	}
	_ = late
}

func TestAFailingProcessorWaitsForTheOperatorWhoSkipsItWithAReason(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(func(context.Context) ([]string, error) { return []string{"mailchimp", "stripe"}, nil },
		activity.RegisterOptions{Name: workflows.ActivityExportSources})
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.ProcessorExportInput) error {
		if in.Processor == "mailchimp" {
			return temporal.NewNonRetryableApplicationError("400", workflows.RefusedNeedsOperator, nil)
		}
		return nil
	}, activity.RegisterOptions{Name: workflows.ActivityFetchProcessor})
	teamMails := 0
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.SendMailInput) error {
		if in.ToPrivacyTeam {
			teamMails++
		}
		return nil
	}, activity.RegisterOptions{Name: workflows.ActivitySendMail})
	var built workflows.BundleInput
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.BundleInput) (workflows.ExportResult, error) {
		built = in
		return workflows.ExportResult{Key: "k"}, nil
	}, activity.RegisterOptions{Name: workflows.ActivityBuildBundle})
	bad, skip := &outcome{}, &outcome{}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(workflows.UpdateProcessorDecision, "d0", callbacks{bad}, workflows.ProcessorDecision{Processor: "mailchimp", Action: "skip"})
		env.UpdateWorkflow(workflows.UpdateProcessorDecision, "d1", callbacks{skip}, workflows.ProcessorDecision{Processor: "mailchimp", Action: "skip", Reason: "account closed at Mailchimp"})
	}, time.Hour)
	env.ExecuteWorkflow(workflows.BuildExport, workflows.ExportInput{RequestID: "req_x", SubjectRef: "sr_x"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	refusedAs(t, bad, workflows.RefusedInput) // skipping needs a reason
	if teamMails != 1 || len(built.Processors) != 1 || built.Processors[0] != "stripe" || built.Gaps["mailchimp"] != "account closed at Mailchimp" {
		t.Fatalf("team mails %d, bundle %+v", teamMails, built)
	}
}
