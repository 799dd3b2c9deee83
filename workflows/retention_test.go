package workflows_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

func TestRetentionPurgesRequestsClosed24MonthsAgo(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	now := time.Date(2027, 3, 31, 2, 0, 0, 0, time.UTC)
	env.SetStartTime(now)
	var got time.Time
	fake(env, lc.PurgeClosedRequests, func(_ context.Context, in contract.PurgeRecordsInput) (contract.PurgeRecordsResult, error) {
		got = in.Cutoff
		return contract.PurgeRecordsResult{Requests: 3, SubjectKeys: 2}, nil
	})
	env.ExecuteWorkflow(workflows.RetainLetheRecords, contract.RetentionInput{KeepFor: domain.Period{Months: 24}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 3, 31, 2, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("cutoff %s, want %s", got, want)
	}
	var res contract.PurgeRecordsResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Requests != 3 {
		t.Fatalf("%+v %v", res, err)
	}
}
