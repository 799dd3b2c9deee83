package activities_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// A batch job at Mailchimp, followed as a bulk page follows it: submitted
// once even when its start runs again (a lost answer), "running" while it
// runs, moved on to its erasure step once even when that check runs
// again, then one answer per person.
func TestABatchJobIsSubmittedOnceAndAnswersForEachPerson(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewLethePool(t)
	master, _ := codec.GenerateKey()
	keys, err := person.NewKeyring(pool, []config.Key{master})
	if err != nil {
		t.Fatal(err)
	}
	mc := processorfake.NewMailchimp(t)
	mc.SetBatchPolls(2)
	reg, err := processors.NewRegistry([]processors.Config{
		{Name: "news", Kind: "mailchimp", BaseURL: mc.URL(), CredentialEnv: "MC_KEY", Options: map[string]string{"list_id": "l1"}},
	}, processors.BuildOptions{LookupEnv: func(string) (string, bool) { return mc.APIKey, true }})
	if err != nil {
		t.Fatal(err)
	}
	const batch = "sweep-test-page-1"
	in := contract.ProcessorBatchInput{Batch: batch, Processor: "news"}
	for i := range 5 {
		e := fmt.Sprintf("p%d@example.org", i)
		if i != 3 {
			mc.AddMember("l1", processorfake.MailchimpMember{Email: e})
		}
		sealed, err := person.Seal(ctx, keys, contract.BulkKeyRef(batch), person.Identity{Email: e, UserID: fmt.Sprint("u", i)})
		if err != nil {
			t.Fatal(err)
		}
		in.People = append(in.People, contract.ProcessorBatchPerson{RequestID: contract.BulkRequestID(batch, fmt.Sprint("sr", i)), Identity: sealed})
	}
	act := &activities.ProcessorErasure{Keys: keys, Processors: reg, Lethe: pool, Log: slog.New(slog.DiscardHandler)}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(act.StartProcessorBatch)
	env.RegisterActivity(act.FollowProcessorBatch)

	start := func() contract.ProcessorBatchJob {
		v, err := env.ExecuteActivity(act.StartProcessorBatch, in)
		if err != nil {
			t.Fatal(err)
		}
		var job contract.ProcessorBatchJob
		if err := v.Get(&job); err != nil {
			t.Fatal(err)
		}
		return job
	}
	job := start()
	if again := start(); again.ID != job.ID || mc.Batches() != 1 {
		t.Fatalf("a second start gave job %s (first %s) and %d batches: want the recorded job, one batch", again.ID, job.ID, mc.Batches())
	}
	var prog contract.ProcessorBatchProgress
	follow := func() error {
		in.Job = &job
		v, err := env.ExecuteActivity(act.FollowProcessorBatch, in)
		if err != nil {
			return err
		}
		return v.Get(&prog)
	}
	var steps []string
	for range 10 {
		err := follow()
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.Type() == contract.BatchRunning && !app.NonRetryable() {
			steps = append(steps, "running")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if prog.Done {
			break
		}
		steps = append(steps, prog.Job.Step)
		next := prog.Job
		// The answer lost, the check runs again: the recorded next job,
		// not a second erasure batch.
		if err := follow(); err != nil || prog.Job.ID != next.ID || mc.Batches() != 2 {
			t.Fatalf("the step again: %+v %v, %d batches", prog, err, mc.Batches())
		}
		job = next
	}
	if fmt.Sprint(steps) != "[running running erase running running]" {
		t.Fatalf("the job went %v", steps)
	}
	if !prog.Done || len(prog.Calls) != 5 {
		t.Fatalf("progress %+v", prog)
	}
	for i, c := range prog.Calls {
		want := contract.ProcessorCallDone
		if i == 3 {
			want = contract.ProcessorCallGone
		}
		if c.Status != want {
			t.Errorf("person %d: %s, want %s", i, c.Status, want)
		}
		if _, still := mc.Member("l1", fmt.Sprintf("p%d@example.org", i)); still {
			t.Errorf("person %d still a member", i)
		}
	}
	if mc.Batches() != 2 {
		t.Fatalf("%d batches, want 2", mc.Batches())
	}
}
