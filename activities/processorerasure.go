package activities

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// ProcessorErasure erases a person at the processors of the data map (P5,
// P7), follows asynchronous erasures, and re-checks them weeks later.
// Every call is safe to repeat: the connectors derive their idempotency
// keys and processor-side request ids from the request id.
type ProcessorErasure struct {
	Keys       *person.Keyring
	Processors *processors.Registry // nil when the data map names none
	Lethe      *pgxpool.Pool        // Lethe's own database: what the erasure at each processor did
	Log        *slog.Logger
	// HeartbeatEvery is how often a call in flight heartbeats; 0 means
	// DefaultHeartbeatEvery.
	HeartbeatEvery time.Duration
}

// DefaultHeartbeatEvery is how often a processor call in flight tells
// Temporal it is alive: a worker that dies during a call is noticed within
// the calls' heartbeat timeout (seconds), not their start-to-close timeout
// (minutes), and the call is tried again on another worker.
const DefaultHeartbeatEvery = 5 * time.Second

// keepAlive heartbeats until stop is called.
func (p *ProcessorErasure) keepAlive(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	every := p.HeartbeatEvery
	if every <= 0 {
		every = DefaultHeartbeatEvery
	}
	return heartbeatEvery(ctx, every)
}

// EraseAtProcessor asks one processor to erase the person. A processor
// without an API (a manual connector) answers needs_operator with its
// steps: a result, not an error. 429 and 5xx come back retryable (after
// the processor's Retry-After), anything an operator must look at as a
// non-retryable NeedsOperator error.
func (p *ProcessorErasure) EraseAtProcessor(ctx context.Context, in contract.ProcessorCallInput) (contract.ProcessorCall, error) {
	defer p.keepAlive(ctx)()
	eraser, err := p.eraser(in.Processor)
	if err != nil {
		return contract.ProcessorCall{}, err
	}
	subj, err := p.subject(ctx, in)
	if err != nil {
		return contract.ProcessorCall{}, err
	}
	out, err := eraser.Erase(ctx, subj)
	if err != nil {
		return contract.ProcessorCall{}, classifyProcessor(err)
	}
	p.log(ctx, "processor erasure", in.RequestID, out)
	return processorCall(ctx, out), nil
}

// AskProcessor is an erasure's first call at a processor, and its record
// when the answer settles it, in one step (issue 16: the erasure needs no
// workflow of its own at a processor that answers at once):
//
//   - a result an earlier attempt of the request's erasure recorded is
//     returned as it is (Earlier): the processor is not asked again;
//   - else the processor is asked to erase (EraseAtProcessor); done or
//     already gone settles it, and the result is recorded for a retried
//     erasure before it is returned (Recorded; when the record cannot be
//     written, the workflow writes it: the processor is not asked twice);
//   - any other answer is returned as it is, for the workflow that polls
//     or opens an operator task (errors too: they are the call's).
//
// Running it twice asks the processor at most twice, which the
// connectors make safe (idempotency keys from the request id).
func (p *ProcessorErasure) AskProcessor(ctx context.Context, in contract.ProcessorCallInput) (contract.ProcessorAnswer, error) {
	var out contract.ProcessorAnswer
	step := "processor:" + in.Processor
	if p.Lethe != nil {
		found, err := store.New(p.Lethe).ErasureStep(ctx, in.RequestID, step, &out.Result)
		if err != nil {
			return contract.ProcessorAnswer{}, classifyDB(err)
		}
		if found {
			out.Settled, out.Earlier, out.Recorded = true, true, true
			return out, nil
		}
	}
	call, err := p.EraseAtProcessor(ctx, in)
	if err != nil {
		return contract.ProcessorAnswer{}, err
	}
	status := contract.ProcessorConfirmed
	switch call.Status {
	case contract.ProcessorCallDone:
	case contract.ProcessorCallGone:
		status = contract.ProcessorAlreadyGone
	default:
		out.Call = call
		return out, nil
	}
	now := time.Now().UTC()
	out.Settled = true
	out.Result = contract.ProcessorErasureResult{Processor: in.Processor, Status: status, HTTPStatus: call.HTTPStatus, JobID: call.JobID,
		Refs: call.Refs, Note: call.Note, Attempts: max(int(call.Attempt), 1), ConfirmedAt: now}
	if status == contract.ProcessorConfirmed && in.FollowUpAfter > 0 {
		out.Result.FollowUpAt = now.Add(in.FollowUpAfter)
	}
	if p.Lethe != nil {
		if err := store.New(p.Lethe).RecordErasureStep(ctx, in.RequestID, step, out.Result); err != nil {
			p.Log.WarnContext(ctx, "processor result not recorded: the workflow records it", "request_id", in.RequestID, "processor", in.Processor, "error", err)
			return out, nil
		}
		out.Recorded = true
	}
	return out, nil
}

// ProcessorErasureStatus asks how an asynchronous erasure is going: by the
// connector's own check from what the erasure recorded (SendGrid contact,
// OpenDSR request), else by repeating the erasure, which is safe and
// reports progress (webhook jobs).
func (p *ProcessorErasure) ProcessorErasureStatus(ctx context.Context, in contract.ProcessorCallInput) (contract.ProcessorCall, error) {
	defer p.keepAlive(ctx)()
	eraser, err := p.eraser(in.Processor)
	if err != nil {
		return contract.ProcessorCall{}, err
	}
	if c, ok := p.Processors.Confirmer(in.Processor); ok && in.Earlier != nil {
		out, err := c.Confirm(ctx, processorOutcome(in.Processor, *in.Earlier))
		if err != nil {
			return contract.ProcessorCall{}, classifyProcessor(err)
		}
		switch out.Status {
		case processors.StatusStillPresent:
			out.Status = processors.StatusPending // the processor has not got to it yet
			return processorCall(ctx, out), nil
		case processors.StatusNeedsOperator:
			// No check without the identity: ask again below.
		default:
			return processorCall(ctx, out), nil
		}
	}
	subj, err := p.subject(ctx, in)
	if err != nil {
		return contract.ProcessorCall{}, err
	}
	out, err := eraser.Erase(ctx, subj)
	if err != nil {
		return contract.ProcessorCall{}, classifyProcessor(err)
	}
	return processorCall(ctx, out), nil
}

// ConfirmProcessorErasure re-checks an erasure after the processor's retention
// window, from what the erasure recorded only: the identity is shredded by
// then. A connector that cannot check answers needs_operator.
func (p *ProcessorErasure) ConfirmProcessorErasure(ctx context.Context, in contract.ConfirmErasureInput) (contract.ProcessorCall, error) {
	defer p.keepAlive(ctx)()
	if _, err := p.eraser(in.Processor); err != nil {
		return contract.ProcessorCall{}, err
	}
	c, ok := p.Processors.Confirmer(in.Processor)
	if !ok {
		return contract.ProcessorCall{Processor: in.Processor, Status: contract.ProcessorCallNeedsOperator,
			Steps: []string{"Ask " + in.Processor + " to confirm that the subject's data is erased, and record its answer."}}, nil
	}
	out, err := c.Confirm(ctx, processorOutcome(in.Processor, in.Erasure))
	if err != nil {
		return contract.ProcessorCall{}, classifyProcessor(err)
	}
	p.log(ctx, "processor erasure re-checked", in.RequestID, out)
	return processorCall(ctx, out), nil
}

// eraser finds the named connector; a name the data map does not have is
// final.
func (p *ProcessorErasure) eraser(name string) (processors.Eraser, error) {
	if p.Processors != nil {
		if e, ok := p.Processors.Eraser(name); ok {
			return e, nil
		}
	}
	return nil, temporal.NewNonRetryableApplicationError("processor "+name+" is not in the data map or cannot erase", "UnknownProcessor", nil)
}

// subject opens the sealed identity into what a connector needs.
func (p *ProcessorErasure) subject(ctx context.Context, in contract.ProcessorCallInput) (processors.Subject, error) {
	key := in.SubjectRef
	if in.IdentityKey != "" {
		key = in.IdentityKey
	}
	id, err := openIdentity(ctx, p.Keys, key, in.Identity)
	if err != nil {
		return processors.Subject{}, err
	}
	return processors.Subject{RequestID: in.RequestID, Email: id.Email, UserID: id.UserID, IDs: id.IDs}, nil
}

func (p *ProcessorErasure) log(ctx context.Context, msg, requestID string, out processors.Outcome) {
	if p.Log != nil {
		p.Log.InfoContext(ctx, msg, "request_id", requestID, "processor", out.Processor, "status", out.Status,
			"http_status", out.HTTPStatus, "job_id", out.JobID)
	}
}

// processorCall turns a connector's Outcome into the workflows' terms.
func processorCall(ctx context.Context, out processors.Outcome) contract.ProcessorCall {
	call := contract.ProcessorCall{Processor: out.Processor, Status: string(out.Status), HTTPStatus: out.HTTPStatus,
		JobID: out.JobID, Steps: out.Steps, Note: out.Note}
	for _, r := range out.Refs {
		call.Refs = append(call.Refs, contract.ProcessorRef{Kind: r.Kind, ID: r.ID})
	}
	if activity.IsActivity(ctx) {
		call.Attempt = activity.GetInfo(ctx).Attempt
	}
	return call
}

// processorOutcome is the reverse: what an earlier call recorded.
func processorOutcome(processor string, c contract.ProcessorCall) processors.Outcome {
	out := processors.Outcome{Processor: processor, Action: processors.ActionErase, Status: processors.Status(c.Status),
		HTTPStatus: c.HTTPStatus, JobID: c.JobID}
	for _, r := range c.Refs {
		out.Refs = append(out.Refs, processors.Ref{Kind: r.Kind, ID: r.ID})
	}
	return out
}
