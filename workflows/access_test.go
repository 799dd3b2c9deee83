package workflows_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

func TestTheBundleIsDeletedWhenItsLinkExpiresAndANewLinkWorksUntilThen(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(jan15)
	var deletedAt time.Time
	fake(env, exports.DeleteBundle, func(_ context.Context, in contract.ExpiryInput) (int, error) {
		deletedAt = env.Now()
		return 1, nil
	})
	fake(env, exports.PresignLink, func(_ context.Context, in contract.LinkInput) (contract.LinkResult, error) {
		return contract.LinkResult{URL: "https://s3/presigned", ExpiresAt: in.ExpiresAt}, nil
	})
	fresh, late := &outcome{}, &outcome{}
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(contract.UpdateNewLink, "n1", callbacks{fresh}) }, 6*24*time.Hour)
	env.ExecuteWorkflow(workflows.KeepExport, contract.ExpiryInput{RequestID: "req_x", Key: "exports/req_x/bundle.zip", ValidFor: 7 * 24 * time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if want := jan15.Add(7 * 24 * time.Hour); !deletedAt.Equal(want) {
		t.Fatalf("bundle deleted at %s, want %s", deletedAt, want)
	}
	if fresh.rejected != nil || fresh.err != nil || fresh.result.(contract.LinkResult).ExpiresAt != jan15.Add(7*24*time.Hour) {
		t.Fatalf("a new link on day 6: %+v", fresh)
	}
	_ = late
}

func TestAFailingProcessorWaitsForTheOperatorWhoSkipsItWithAReason(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	fake(env, exports.ExportSources, func(context.Context) ([]string, error) { return []string{"mailchimp", "stripe"}, nil })
	fake(env, exports.FetchProcessorExport, func(_ context.Context, in contract.ProcessorExportInput) error {
		if in.Processor == "mailchimp" {
			return temporal.NewNonRetryableApplicationError("400", contract.RefusedNeedsOperator, nil)
		}
		return nil
	})
	teamMails := 0
	fake(env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		if in.ToPrivacyTeam {
			teamMails++
		}
		return nil
	})
	var built contract.BundleInput
	fake(env, exports.BuildBundle, func(_ context.Context, in contract.BundleInput) (contract.ExportResult, error) {
		built = in
		return contract.ExportResult{Key: "k"}, nil
	})
	bad, skip := &outcome{}, &outcome{}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.UpdateProcessorDecision, "d0", callbacks{bad}, contract.ProcessorDecision{Processor: "mailchimp", Action: "skip"})
		env.UpdateWorkflow(contract.UpdateProcessorDecision, "d1", callbacks{skip}, contract.ProcessorDecision{Processor: "mailchimp", Action: "skip", Reason: "account closed at Mailchimp"})
	}, time.Hour)
	env.ExecuteWorkflow(workflows.BuildExport, contract.ExportInput{RequestID: "req_x", SubjectRef: "sr_x"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	refusedAs(t, bad, contract.RefusedInput) // skipping needs a reason
	if teamMails != 1 || len(built.Processors) != 1 || built.Processors[0] != "stripe" || built.Gaps["mailchimp"] != "account closed at Mailchimp" {
		t.Fatalf("team mails %d, bundle %+v", teamMails, built)
	}
}
