package workflows_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	sdklog "go.temporal.io/sdk/log"
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
