package workflows

import (
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows/contract"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// backupChecksPerRun bounds the history of one run: then it continues as new.
const backupChecksPerRun = 100

// AwaitBackupRotation keeps the backup half of the erasure promise (P6).
// Backups cannot be edited, so an erased person stays in every backup taken
// before the erasure until the rotation deletes it (meanwhile the erasure
// ledger keeps a restore from bringing them back). The watch:
//
//   - tells the privacy team at once when a location keeps backups longer
//     than the promise: the rotation alone cannot keep it;
//   - lists every location each CheckEvery, the first time one interval
//     after the erasure, until none holds an object last modified at or
//     before the erasure;
//   - tells the team once when a location still holds such backups 2 checks
//     after its rotation should have removed them;
//   - then records the date in the ledger and the audit trail, and returns it.
func AwaitBackupRotation(ctx workflow.Context, in contract.BackupWatchInput) (time.Time, error) {
	b := newBackupWatch(in)
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (contract.BackupWatchProgress, error) {
		return b.view(), nil
	}); err != nil {
		return time.Time{}, err
	}
	ctx = withActivityDefaults(ctx)
	if err := b.tellIfRotationOutlastsPromise(ctx); err != nil {
		return time.Time{}, err
	}

	// No backup taken before the erasure has rotated out at the moment of
	// the erasure (only an empty location is clear then), so the first
	// check is one interval after it (issue 16: an activity and a workflow
	// task less per erasure), not at once. The input says so: watches
	// started before it (FirstCheckLater false) keep checking at once, and
	// the watch needs no version check (a marker and a search-attribute
	// upsert) of its own.
	if b.st.Checks == 0 && in.FirstCheckLater {
		if err := workflow.Sleep(ctx, b.every); err != nil {
			return time.Time{}, err
		}
	}
	for checks := 0; ; checks++ {
		if checks == backupChecksPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			next := in
			next.State = b.st
			return time.Time{}, workflow.NewContinueAsNewError(ctx, contract.WorkflowAwaitBackupRotation, next)
		}
		clear, err := b.check(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if clear {
			break
		}
		if err := workflow.Sleep(ctx, b.every); err != nil {
			return time.Time{}, err
		}
	}
	return b.recordClear(ctx)
}

// backupWatch is the wait of one erasure's backups (AwaitBackupRotation,
// and the backups part of AfterErasure), its state in st.
type backupWatch struct {
	in       contract.BackupWatchInput
	every    time.Duration
	st       *contract.BackupWatchState
	progress contract.BackupWatchProgress
}

func newBackupWatch(in contract.BackupWatchInput) *backupWatch {
	b := &backupWatch{in: in, every: in.CheckEvery, st: in.State}
	if b.every <= 0 {
		b.every = contract.DefaultBackupCheckEvery
	}
	if b.st == nil {
		b.st = &contract.BackupWatchState{}
		for _, l := range in.Locations {
			b.st.Locations = append(b.st.Locations, contract.BackupStatus{Name: l.Name, Rotation: l.Rotation, ExpectedBy: in.ErasedAt.Add(l.Rotation)})
		}
	}
	b.progress = contract.BackupWatchProgress{RequestID: in.RequestID, Status: contract.BackupsWaiting, ErasedAt: in.ErasedAt, Promise: in.Promise}
	if !b.st.ClearAt.IsZero() {
		b.progress.Status, b.progress.ClearAt = contract.BackupsClear, b.st.ClearAt
	}
	return b
}

// view is the watch as it stands (QueryProgress).
func (b *backupWatch) view() contract.BackupWatchProgress {
	p := b.progress
	p.Locations, p.Checks = b.st.Locations, b.st.Checks
	return p
}

// tellIfRotationOutlastsPromise tells the privacy team, once, of every
// location that keeps backups longer than the privacy policy promises.
func (b *backupWatch) tellIfRotationOutlastsPromise(ctx workflow.Context) error {
	in := b.in
	if b.st.PromiseMailed || in.Promise <= 0 {
		return nil
	}
	var lines []string
	for _, l := range in.Locations {
		if l.Rotation > in.Promise {
			lines = append(lines, fmt.Sprintf("Backup location %s keeps backups for %s, longer than the %s the privacy policy promises: "+
				"rotation alone cannot keep the promise. Shorten the rotation, or delete the backups taken before %s by hand.",
				l.Name, days(l.Rotation), days(in.Promise), in.ErasedAt.UTC().Format(time.RFC3339)))
		}
	}
	if len(lines) > 0 {
		lines = append(lines, "Meanwhile the erasure ledger re-applies this erasure after any restore (restore-reconcile).")
		if err := tell(ctx, contract.SendMailInput{RequestID: in.RequestID, Template: contract.MailOperatorReminder, Key: onceKey(in.RequestID, "backups", "promise"), ToPrivacyTeam: true,
			Data: contract.MailData{RequestType: domain.TypeErasure, DueDate: in.ErasedAt.Add(in.Promise), Lines: lines}}); err != nil {
			return err
		}
	}
	b.st.PromiseMailed = true
	return nil
}

// check lists every location not yet clear once, and tells the team once
// when one still holds older backups 2 checks after its rotation should
// have removed them. clear: none holds a backup from before the erasure.
func (b *backupWatch) check(ctx workflow.Context) (clear bool, err error) {
	in, st := b.in, b.st
	listCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute, HeartbeatTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
	})
	clear = true
	for i, l := range in.Locations {
		s := &st.Locations[i]
		if !s.ClearAt.IsZero() {
			continue
		}
		var res contract.CountBackupsResult
		if err := workflow.ExecuteActivity(listCtx, ledger.CountBackupsBefore, contract.CountBackupsInput{Bucket: l.Bucket, Prefix: l.Prefix, Before: in.ErasedAt}).Get(ctx, &res); err != nil {
			return false, fmt.Errorf("list backup location %s: %w", l.Name, err)
		}
		s.Remaining, s.Oldest, s.CheckedAt = res.Count, res.Oldest, workflow.Now(ctx)
		if res.Count == 0 {
			s.ClearAt = s.CheckedAt
		} else {
			clear = false
		}
	}
	st.Checks++
	if clear {
		return true, nil
	}
	now := workflow.Now(ctx)
	var late []string
	for i, l := range in.Locations {
		s := st.Locations[i]
		if s.ClearAt.IsZero() && now.After(in.ErasedAt.Add(l.Rotation+2*b.every)) {
			late = append(late, fmt.Sprintf("Backup location %s still holds %d backups from before the erasure (the oldest from %s); "+
				"its rotation of %s should have removed them by %s. Check the rotation, or delete them by hand.",
				l.Name, s.Remaining, s.Oldest.UTC().Format(time.RFC3339), days(l.Rotation), s.ExpectedBy.UTC().Format(time.RFC3339)))
		}
	}
	if len(late) > 0 {
		b.progress.Status = contract.BackupsOverdue
		if !st.OverdueMailed {
			if err := tell(ctx, contract.SendMailInput{RequestID: in.RequestID, Template: contract.MailOperatorEscalation, Key: onceKey(in.RequestID, "backups", "overdue"), ToPrivacyTeam: true,
				Data: contract.MailData{RequestType: domain.TypeErasure, DueDate: latestExpected(st.Locations), Lines: late}}); err != nil {
				return false, err
			}
			st.OverdueMailed = true
		}
	}
	return false, nil
}

// recordClear records the day the backups were all gone in the ledger and
// the audit trail, and returns it.
func (b *backupWatch) recordClear(ctx workflow.Context) (time.Time, error) {
	in := b.in
	clearAt := workflow.Now(ctx)
	if err := workflow.ExecuteActivity(ctx, ledger.MarkBackupsClear, contract.MarkBackupsClearInput{RequestID: in.RequestID, ClearAt: clearAt}).Get(ctx, nil); err != nil {
		return time.Time{}, fmt.Errorf("record the backups clear in the ledger: %w", err)
	}
	detail := map[string]string{"clear_at": clearAt.UTC().Format(time.RFC3339), "erased_at": in.ErasedAt.UTC().Format(time.RFC3339),
		"locations": fmt.Sprint(len(in.Locations)), "checks": fmt.Sprint(b.st.Checks)}
	if err := record(ctx, contract.AuditInput{RequestID: in.RequestID, Actor: "system", Action: "erasure.backups_clear",
		Detail: detail, Key: onceKey(in.RequestID, "erasure.backups_clear")}); err != nil {
		return time.Time{}, fmt.Errorf("audit the backups clear: %w", err)
	}
	b.st.ClearAt = clearAt
	b.progress.Status, b.progress.ClearAt = contract.BackupsClear, clearAt
	return clearAt, nil
}

// latestExpected is the latest date by which a location should have been clear.
func latestExpected(ls []contract.BackupStatus) time.Time {
	var t time.Time
	for _, s := range ls {
		if s.ClearAt.IsZero() && s.ExpectedBy.After(t) {
			t = s.ExpectedBy
		}
	}
	return t
}

// days writes a duration in days when it is whole days ("35 days"), else as Go does.
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		if n := d / (24 * time.Hour); n != 1 {
			return fmt.Sprintf("%d days", n)
		}
		return "1 day"
	}
	return d.String()
}
