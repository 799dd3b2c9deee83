package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// StartProcessorBatch submits the erasure of some of a bulk page's people
// as one job at a processor with a batch API, and returns the job to
// follow (FollowProcessorBatch). The job is recorded in Lethe's database
// as soon as the processor answers: a retry after a lost completion
// follows the recorded job instead of submitting a second one.
func (p *ProcessorErasure) StartProcessorBatch(ctx context.Context, in contract.ProcessorBatchInput) (contract.ProcessorBatchJob, error) {
	defer p.keepAlive(ctx)()
	be, err := p.batchEraser(in)
	if err != nil {
		return contract.ProcessorBatchJob{}, err
	}
	step := batchStep(in) + ":start"
	var job contract.ProcessorBatchJob
	if found, err := p.batchRecord(ctx, in.Batch, step, &job); err != nil || found {
		return job, err
	}
	subjects, err := p.batchSubjects(ctx, in)
	if err != nil {
		return contract.ProcessorBatchJob{}, err
	}
	started, err := be.StartErasures(ctx, subjects)
	if err != nil {
		return contract.ProcessorBatchJob{}, classifyProcessor(err)
	}
	job = batchJobOf(started)
	if p.Log != nil {
		p.Log.InfoContext(ctx, "processor batch started", "batch", in.Batch, "processor", in.Processor, "job", job.ID, "people", len(in.People))
	}
	return job, p.recordBatch(ctx, in.Batch, step, job)
}

// FollowProcessorBatch checks the job StartProcessorBatch submitted.
// While the job runs it fails with the retryable contract.BatchRunning
// (the retry policy's backoff is the polling, and the history holds only
// the attempt that saw it move on); when it moves on to its next step, the
// next job is returned (recorded, as StartProcessorBatch's is); when it is
// done, each person's answer.
func (p *ProcessorErasure) FollowProcessorBatch(ctx context.Context, in contract.ProcessorBatchInput) (contract.ProcessorBatchProgress, error) {
	defer p.keepAlive(ctx)()
	if in.Job == nil {
		return contract.ProcessorBatchProgress{}, temporal.NewNonRetryableApplicationError("no batch job to follow", "BadInput", nil)
	}
	be, err := p.batchEraser(in)
	if err != nil {
		return contract.ProcessorBatchProgress{}, err
	}
	step := batchStep(in) + ":after:" + in.Job.ID + ":" + in.Job.Step
	var next contract.ProcessorBatchJob
	if found, err := p.batchRecord(ctx, in.Batch, step, &next); err != nil || found {
		return contract.ProcessorBatchProgress{Job: next}, err
	}
	subjects, err := p.batchSubjects(ctx, in)
	if err != nil {
		return contract.ProcessorBatchProgress{}, err
	}
	prog, err := be.ErasuresProgress(ctx, processorsJobOf(*in.Job), subjects)
	if err != nil {
		return contract.ProcessorBatchProgress{}, classifyProcessor(err)
	}
	if !prog.Done {
		if prog.Job.ID == in.Job.ID && prog.Job.Step == in.Job.Step {
			// Benign: the SDK logs it at debug, not as an activity error.
			return contract.ProcessorBatchProgress{}, temporal.NewApplicationErrorWithOptions(
				fmt.Sprintf("%s batch %s (%s): %d of %d operations finished", in.Processor, in.Job.ID, in.Job.Step, prog.Finished, prog.Total),
				contract.BatchRunning, temporal.ApplicationErrorOptions{Category: temporal.ApplicationErrorCategoryBenign})
		}
		next = batchJobOf(prog.Job)
		return contract.ProcessorBatchProgress{Job: next}, p.recordBatch(ctx, in.Batch, step, next)
	}
	out := contract.ProcessorBatchProgress{Done: true, Job: *in.Job, Calls: make([]contract.ProcessorCall, len(in.People))}
	if len(prog.Outcomes) != len(in.People) {
		return contract.ProcessorBatchProgress{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s batch %s answered for %d people, not %d", in.Processor, in.Job.ID, len(prog.Outcomes), len(in.People)), contract.RefusedNeedsOperator, nil)
	}
	refused := 0
	for i, o := range prog.Outcomes {
		if o.Err != "" {
			out.Calls[i] = contract.ProcessorCall{Processor: in.Processor, Status: contract.ProcessorCallRefused, Note: o.Err}
			refused++
			continue
		}
		out.Calls[i] = processorCall(ctx, o.Outcome)
	}
	if p.Log != nil {
		p.Log.InfoContext(ctx, "processor batch done", "batch", in.Batch, "processor", in.Processor, "job", in.Job.ID, "people", len(in.People), "refused", refused)
	}
	return out, nil
}

// batchStep names a batch's records in lethe.erasure_steps (under the
// page): the processor and which of the page's people, by the first's
// request id and their number.
func batchStep(in contract.ProcessorBatchInput) string {
	return fmt.Sprintf("processor-batch:%s:%s:%d", in.Processor, in.People[0].RequestID, len(in.People))
}

// batchEraser finds the named connector's batch API.
func (p *ProcessorErasure) batchEraser(in contract.ProcessorBatchInput) (processors.BatchEraser, error) {
	if len(in.People) == 0 {
		return nil, temporal.NewNonRetryableApplicationError("a batch of nobody", "BadInput", nil)
	}
	if p.Processors != nil {
		if be, ok := p.Processors.BatchEraser(in.Processor); ok {
			return be, nil
		}
	}
	return nil, temporal.NewNonRetryableApplicationError("processor "+in.Processor+" is not in the data map or cannot erase in batches", "UnknownProcessor", nil)
}

// batchSubjects opens the page's sealed identities into what the
// connector needs.
func (p *ProcessorErasure) batchSubjects(ctx context.Context, in contract.ProcessorBatchInput) ([]processors.Subject, error) {
	out := make([]processors.Subject, len(in.People))
	for i, person := range in.People {
		s, err := p.subject(ctx, contract.ProcessorCallInput{RequestID: person.RequestID, Identity: person.Identity, IdentityKey: contract.BulkKeyRef(in.Batch)})
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func (p *ProcessorErasure) batchRecord(ctx context.Context, batch, step string, dst *contract.ProcessorBatchJob) (bool, error) {
	if p.Lethe == nil {
		return false, nil
	}
	found, err := store.New(p.Lethe).ErasureStep(ctx, batch, step, dst)
	return found, classifyDB(err)
}

// recordBatch records a job the processor accepted. A record that cannot
// be written is not the job's failure (the processor has it, and the
// workflow gets it with this answer): it is logged, not retried, which
// would submit the job again.
func (p *ProcessorErasure) recordBatch(ctx context.Context, batch, step string, job contract.ProcessorBatchJob) error {
	if p.Lethe == nil {
		return nil
	}
	if err := store.New(p.Lethe).RecordErasureStep(ctx, batch, step, job); err != nil && p.Log != nil {
		p.Log.WarnContext(ctx, "processor batch not recorded: a lost answer would submit it again", "batch", batch, "job", job.ID, "error", err)
	}
	return nil
}

func batchJobOf(j processors.BatchJob) contract.ProcessorBatchJob {
	out := contract.ProcessorBatchJob{ID: j.ID, Step: j.Step, Refused: j.Refused}
	for _, refs := range j.Found {
		var rs []contract.ProcessorRef
		for _, r := range refs {
			rs = append(rs, contract.ProcessorRef{Kind: r.Kind, ID: r.ID})
		}
		out.Found = append(out.Found, rs)
	}
	return out
}

func processorsJobOf(j contract.ProcessorBatchJob) processors.BatchJob {
	out := processors.BatchJob{ID: j.ID, Step: j.Step, Refused: j.Refused}
	for _, refs := range j.Found {
		var rs []processors.Ref
		for _, r := range refs {
			rs = append(rs, processors.Ref{Kind: r.Kind, ID: r.ID})
		}
		out.Found = append(out.Found, rs)
	}
	return out
}
