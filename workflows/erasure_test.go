package workflows_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"go.temporal.io/sdk/activity"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/workflows"
	"github.com/stretchr/testify/mock"
)

// fakeSystems stands in for the activities and counts their calls.
type fakeSystems struct {
	tables, objects  int
	objectsFailFirst int
}

func (f *fakeSystems) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.EraseTablesInput) (workflows.EraseTablesResult, error) {
		f.tables++
		return workflows.EraseTablesResult{Deleted: map[string]int{"demo.projects": 2}}, nil
	}, activity.RegisterOptions{Name: workflows.ActivityEraseTables})
	env.RegisterActivityWithOptions(func(_ context.Context, in workflows.EraseObjectsInput) (workflows.EraseObjectsResult, error) {
		f.objects++
		if f.objects <= f.objectsFailFirst {
			return workflows.EraseObjectsResult{}, errors.New("s3: 503 slow down")
		}
		return workflows.EraseObjectsResult{Deleted: map[string]int{"bucket/prefix": 6}}, nil
	}, activity.RegisterOptions{Name: workflows.ActivityEraseObjects})
}

func TestEraseSubjectDoesNotRedoACompletedSystem(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	f := &fakeSystems{objectsFailFirst: 2}
	f.register(env)
	env.ExecuteWorkflow(workflows.EraseSubject, workflows.ErasureInput{RequestID: "req_1", SubjectRef: "sr_x"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p workflows.ErasureProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if f.tables != 1 || f.objects != 3 {
		t.Fatalf("tables erased %d times, objects tried %d times; want 1 and 3", f.tables, f.objects)
	}
	if p.Status != workflows.StatusCompleted || p.Systems[0].Deleted["demo.projects"] != 2 || p.Systems[1].Deleted["bucket/prefix"] != 6 {
		t.Fatalf("progress %+v", p)
	}
}

func TestEraseSubjectStopsAtAPermanentFailure(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	f := &fakeSystems{}
	f.register(env)
	env.OnActivity(workflows.ActivityEraseTables, mock.Anything, mock.Anything).Return(workflows.EraseTablesResult{},
		temporal.NewNonRetryableApplicationError("erase demo.x: undefined table", "DatabaseError", nil))
	env.ExecuteWorkflow(workflows.EraseSubject, workflows.ErasureInput{RequestID: "req_1", SubjectRef: "sr_x"})
	if env.GetWorkflowError() == nil {
		t.Fatal("want the workflow to fail")
	}
	if f.objects != 0 {
		t.Fatal("objects erased after the tables failed")
	}
}
