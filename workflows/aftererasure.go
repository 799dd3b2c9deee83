package workflows

import (
	"slices"
	"time"

	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/sdk/workflow"
)

// afterErasureEventsPerRun bounds the history of one AfterErasure run:
// past it (or when the server suggests it), the workflow continues as new
// at the next moment every part is waiting.
const afterErasureEventsPerRun = 2000

// AfterErasure keeps every promise of an erasure that outlives its request,
// in one workflow (issue 16: one, where a request started up to three or
// more), each part side by side and as its own workflow keeps it:
//
//   - each processor that settled the erasure at once is checked again
//     when its retention window has passed (as ProcessorFollowUps);
//   - the backups taken before the erasure are watched until the rotation
//     has removed them all (as AwaitBackupRotation, the first check one
//     interval after the erasure);
//   - the rows kept under each legal hold stay until the hold ends, then
//     go, and the hold's key is destroyed (as ReleaseHold);
//   - for a bulk page, its people's held rows, released as each hold
//     ends (as ReleaseHeldInBulk).
//
// It ends when every part has. A run that grows long (a rotation overdue
// for months) continues as new with every part's state, at a moment when
// no part has a step in flight.
func AfterErasure(ctx workflow.Context, in contract.AfterErasureInput) (contract.AfterErasureProgress, error) {
	a := newAfterErasure(in)
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.AfterErasureProgress, error) {
		return a.view(), nil
	}); err != nil {
		return a.view(), err
	}
	// Newer than the version checks of the audit trail, mail and the
	// processors' queues: it takes them as passed (see leanRequestKey).
	ctx = workflow.WithValue(withActivityDefaults(ctx), leanRequestKey{}, workflow.Version(leanRequestAfterErasure))

	var failed error
	run := func(part func(workflow.Context) error) {
		a.running++
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer func() { a.running-- }()
			if err := part(ctx); err != nil && failed == nil {
				failed = err
			}
		})
	}
	if len(in.FollowUps) > 0 {
		run(a.followUps)
	}
	if a.backups != nil {
		run(a.watchBackups)
	}
	for i := range a.st.Holds {
		run(func(ctx workflow.Context) error { return a.releaseHold(ctx, &a.st.Holds[i]) })
	}
	if a.st.HeldInBulk != nil && len(a.st.HeldInBulk.Left) > 0 {
		run(a.releaseHeldInBulk)
	}

	long := func() bool {
		info := workflow.GetInfo(ctx)
		return info.GetCurrentHistoryLength() >= afterErasureEventsPerRun || info.GetContinueAsNewSuggested()
	}
	if err := workflow.Await(ctx, func() bool {
		return failed != nil || a.running == 0 || (a.waiting == a.running && long())
	}); err != nil {
		return a.view(), err
	}
	if failed != nil {
		return a.view(), failed
	}
	if a.running > 0 {
		next := in
		next.State = a.st
		next.HeldInBulk = nil // what is left is in the state
		return a.view(), workflow.NewContinueAsNewError(ctx, contract.WorkflowAfterErasure, next)
	}
	return a.view(), nil
}

// afterErasure is one running AfterErasure: its state, and how many of its
// parts run and how many of those wait.
type afterErasure struct {
	in               contract.AfterErasureInput
	st               *contract.AfterErasureState
	backups          *backupWatch
	running, waiting int
}

func newAfterErasure(in contract.AfterErasureInput) *afterErasure {
	st := in.State
	if st == nil {
		st = &contract.AfterErasureState{}
		for _, c := range in.FollowUps {
			st.FollowUps = append(st.FollowUps, contract.ProcessorFollowUpResult{Processor: c.Processor, Status: contract.FollowUpWaiting, DueAt: c.DueAt})
		}
		for _, h := range in.Holds {
			st.Holds = append(st.Holds, contract.HoldState{Held: h})
		}
		if len(in.HeldInBulk) > 0 {
			st.HeldInBulk = &contract.HeldInBulkState{Left: slices.Clone(in.HeldInBulk)}
		}
	}
	a := &afterErasure{in: in, st: st}
	if in.Backups != nil {
		watch := *in.Backups
		watch.State = st.Backups
		a.backups = newBackupWatch(watch)
		st.Backups = a.backups.st
	}
	return a
}

// view is what outlives the erasure, as it stands (QueryProgress).
func (a *afterErasure) view() contract.AfterErasureProgress {
	p := contract.AfterErasureProgress{RequestID: a.in.RequestID, FollowUps: a.st.FollowUps, Holds: []contract.HoldProgress{}}
	if p.FollowUps == nil {
		p.FollowUps = []contract.ProcessorFollowUpResult{}
	}
	if a.backups != nil {
		b := a.backups.view()
		p.Backups = &b
	}
	for _, h := range a.st.Holds {
		p.Holds = append(p.Holds, contract.HoldProgress{Table: h.Held.Table, Until: h.Held.Until, Deleted: h.Deleted, EndedAt: h.EndedAt})
	}
	if b := a.st.HeldInBulk; b != nil {
		p.HeldInBulk = &contract.HeldInBulkProgress{Left: len(b.Left), Deleted: b.Deleted}
		if len(b.Left) > 0 {
			p.HeldInBulk.Next = firstHoldEnd(b.Left)
		}
	}
	return p
}

// waitUntil sleeps until at, counted as waiting: the only moment a part
// may be cut by continue-as-new, its state written before.
func (a *afterErasure) waitUntil(ctx workflow.Context, at time.Time) error {
	wait := at.Sub(workflow.Now(ctx))
	if wait <= 0 {
		return nil
	}
	a.waiting++
	defer func() { a.waiting-- }()
	return workflow.Sleep(ctx, wait)
}

// followUps checks each processor when its retention window has passed,
// those due within followUpsTogether of one another together.
func (a *afterErasure) followUps(ctx workflow.Context) error {
	checks, res := a.in.FollowUps, a.st.FollowUps
	for {
		done := make([]bool, len(checks))
		for i := range res {
			done[i] = !res[i].CheckedAt.IsZero()
		}
		batch, at := nextFollowUps(checks, done)
		if len(batch) == 0 {
			return nil
		}
		if err := a.waitUntil(ctx, at); err != nil {
			return err
		}
		if err := checkFollowUpsTogether(ctx, checks, res, batch); err != nil {
			return err
		}
	}
}

// watchBackups checks the backup locations each interval, the first one
// interval after the erasure, until none holds a backup from before it.
func (a *afterErasure) watchBackups(ctx workflow.Context) error {
	b := a.backups
	if !b.st.ClearAt.IsZero() {
		return nil
	}
	if err := b.tellIfRotationOutlastsPromise(ctx); err != nil {
		return err
	}
	if b.st.NextCheckAt.IsZero() {
		b.st.NextCheckAt = b.in.ErasedAt.Add(b.every)
	}
	for {
		if err := a.waitUntil(ctx, b.st.NextCheckAt); err != nil {
			return err
		}
		clear, err := b.check(ctx)
		if err != nil {
			return err
		}
		if clear {
			_, err := b.recordClear(ctx)
			return err
		}
		b.st.NextCheckAt = workflow.Now(ctx).Add(b.every)
	}
}

// releaseHold keeps one legal hold's rows until it ends (rows with later
// ends wait for theirs), then destroys its key and audits its end.
func (a *afterErasure) releaseHold(ctx workflow.Context, h *contract.HoldState) error {
	for !h.Held.Until.IsZero() {
		if err := a.waitUntil(ctx, h.Held.Until); err != nil {
			return err
		}
		res, err := eraseHeldRows(ctx, a.in.RequestID, h.Held)
		if err != nil {
			return err
		}
		h.Deleted += res.Deleted
		h.Held.Until = res.Next
	}
	if !h.EndedAt.IsZero() {
		return nil
	}
	if err := endHold(ctx, a.in.RequestID, a.in.SubjectRef, h.Held, h.Deleted); err != nil {
		return err
	}
	h.EndedAt = workflow.Now(ctx)
	return nil
}

// releaseHeldInBulk keeps a bulk page's legal holds: at each end, the rows
// of every hold that has ended go, and a hold with nothing left is
// released for good (its key destroyed, its end audited).
func (a *afterErasure) releaseHeldInBulk(ctx workflow.Context) error {
	b := a.st.HeldInBulk
	for len(b.Left) > 0 {
		if err := a.waitUntil(ctx, firstHoldEnd(b.Left)); err != nil {
			return err
		}
		rest, deleted, err := releaseDueHolds(ctx, a.in.RequestID, b.Left)
		if err != nil {
			return err
		}
		b.Left, b.Deleted = rest, b.Deleted+deleted
	}
	return nil
}
