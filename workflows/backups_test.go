package workflows_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// backupFake answers the backup watch's activities: each location's
// backups are modelled as objects last modified on given dates, deleted
// by the rotation when they reach its age (or never, for a stuck rotation).
type backupFake struct {
	env      *testsuite.TestWorkflowEnvironment
	backups  map[string][]time.Time // bucket -> last-modified dates
	rotation map[string]time.Duration
	stuck    map[string]bool
	counts   []string // bucket@MMDD of each listing
	mails    []contract.SendMailInput
	mailedAt []time.Time
	cleared  []contract.MarkBackupsClearInput
	audits   []contract.AuditInput
}

func newBackupFake(t *testing.T, env *testsuite.TestWorkflowEnvironment) *backupFake {
	f := &backupFake{env: env, backups: map[string][]time.Time{}, rotation: map[string]time.Duration{}, stuck: map[string]bool{}}
	fake(env, ledger.CountBackupsBefore, func(_ context.Context, in contract.CountBackupsInput) (contract.CountBackupsResult, error) {
		now := env.Now()
		f.counts = append(f.counts, in.Bucket+"@"+now.Format("0102"))
		var res contract.CountBackupsResult
		for _, at := range f.backups[in.Bucket] {
			rotated := !f.stuck[in.Bucket] && !now.Before(at.Add(f.rotation[in.Bucket]))
			if rotated || at.After(in.Before) {
				continue
			}
			res.Count++
			if res.Oldest.IsZero() || at.Before(res.Oldest) {
				res.Oldest = at
			}
		}
		return res, nil
	})
	fake(env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		if !in.ToPrivacyTeam {
			t.Errorf("mail %s to the person, want the privacy team", in.Key)
		}
		f.mails = append(f.mails, in)
		f.mailedAt = append(f.mailedAt, env.Now())
		return nil
	})
	fake(env, ledger.MarkBackupsClear, func(_ context.Context, in contract.MarkBackupsClearInput) error {
		f.cleared = append(f.cleared, in)
		return nil
	})
	fake(env, lc.AppendAudit, func(_ context.Context, in contract.AuditInput) error {
		f.audits = append(f.audits, in)
		return nil
	})
	return f
}

// daily backups for the 40 days before erasedAt.
func dailyBackups(erasedAt time.Time) []time.Time {
	var out []time.Time
	for d := 1; d <= 40; d++ {
		out = append(out, erasedAt.Add(-time.Duration(d)*aDay+time.Hour))
	}
	return out
}

func newBackupEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return s.NewTestWorkflowEnvironment()
}

func TestBackupWatchRecordsTheDayTheLastOlderBackupRotatedOut(t *testing.T) {
	// The first check is a day after the erasure (nothing taken before it
	// can have rotated out at once); a watch started before that checked
	// at once, and keeps doing so.
	for _, firstCheckLater := range []bool{true, false} {
		t.Run(fmt.Sprintf("first check later %v", firstCheckLater), func(t *testing.T) {
			backupWatchUntilClear(t, firstCheckLater)
		})
	}
}

func backupWatchUntilClear(t *testing.T, firstCheckLater bool) {
	env := newBackupEnv()
	erasedAt := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	env.SetStartTime(erasedAt)
	f := newBackupFake(t, env)
	// Nightly backups kept 35 days, weekly ones kept 30; the promise is 40 days.
	f.backups["nightly"], f.rotation["nightly"] = dailyBackups(erasedAt), 35*aDay
	f.backups["weekly"], f.rotation["weekly"] = dailyBackups(erasedAt)[:7], 30*aDay
	var during contract.BackupWatchProgress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(contract.QueryProgress)
		if err != nil {
			t.Error(err)
			return
		}
		_ = v.Get(&during)
	}, 10*aDay+time.Hour)
	env.ExecuteWorkflow(workflows.AwaitBackupRotation, contract.BackupWatchInput{
		RequestID: "req_a", ErasedAt: erasedAt, Promise: 40 * aDay, FirstCheckLater: firstCheckLater,
		Locations: []contract.BackupLocation{{Name: "nightly", Bucket: "nightly", Rotation: 35 * aDay}, {Name: "weekly", Bucket: "weekly", Prefix: "db/", Rotation: 30 * aDay}},
	})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var clearAt time.Time
	if err := env.GetWorkflowResult(&clearAt); err != nil {
		t.Fatal(err)
	}
	// The newest nightly backup before the erasure (taken 23 h before it)
	// goes 35 days after it was taken: the daily check after that finds none.
	want := erasedAt.Add(35 * aDay)
	if !clearAt.Equal(want) {
		t.Fatalf("clear at %s, want %s", clearAt, want)
	}
	if len(f.mails) != 0 {
		t.Fatalf("mails %+v: the rotations keep the promise, nobody needs telling", f.mails)
	}
	if len(f.cleared) != 1 || f.cleared[0].RequestID != "req_a" || !f.cleared[0].ClearAt.Equal(want) {
		t.Fatalf("ledger marks %+v", f.cleared)
	}
	if len(f.audits) != 1 || f.audits[0].Action != "erasure.backups_clear" || f.audits[0].RequestID != "req_a" ||
		f.audits[0].Detail["clear_at"] != want.Format(time.RFC3339) {
		t.Fatalf("audit %+v", f.audits)
	}
	// A location found clear is not listed again.
	weekly := 0
	for _, c := range f.counts {
		if strings.HasPrefix(c, "weekly@") {
			weekly++
		}
	}
	first, checks := 1, 10 // the first check on aDay 1; 10 by aDay 10
	if !firstCheckLater {
		first, checks = 0, 11
	}
	if weekly != 31-first || len(f.counts) != 31-first+36-first || f.counts[0] != fmt.Sprintf("nightly@03%02d", 1+first) {
		t.Fatalf("listings %v: want both listed from aDay %d, weekly until aDay 30 only, nightly until aDay 35", f.counts, first)
	}
	if during.Status != contract.BackupsWaiting || len(during.Locations) != 2 || during.Locations[0].Remaining == 0 || during.Checks != checks ||
		!during.Locations[0].ExpectedBy.Equal(erasedAt.Add(35*aDay)) {
		t.Fatalf("progress on aDay 10: %+v", during)
	}
}

func TestBackupWatchTellsTheTeamAtOnceWhenTheRotationOutlastsThePromise(t *testing.T) {
	env := newBackupEnv()
	erasedAt := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	env.SetStartTime(erasedAt)
	f := newBackupFake(t, env)
	f.backups["archive"], f.rotation["archive"] = dailyBackups(erasedAt)[:3], 90*aDay
	env.ExecuteWorkflow(workflows.AwaitBackupRotation, contract.BackupWatchInput{
		RequestID: "req_b", ErasedAt: erasedAt, Promise: 30 * aDay, CheckEvery: 7 * aDay,
		Locations: []contract.BackupLocation{{Name: "archive", Bucket: "archive", Rotation: 90 * aDay}},
	})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(f.mails) == 0 || f.mails[0].Key != "req_b:backups:promise" || !f.mailedAt[0].Equal(erasedAt) {
		t.Fatalf("mails %+v", f.mails)
	}
	m := f.mails[0]
	if m.Template != contract.MailOperatorReminder || !m.Data.DueDate.Equal(erasedAt.Add(30*aDay)) ||
		!strings.Contains(strings.Join(m.Data.Lines, " "), "rotation alone cannot keep the promise") {
		t.Fatalf("promise mail %+v", m)
	}
	if len(f.mails) != 1 {
		t.Fatalf("mails %+v: want the promise mail once, and no overdue mail (the rotation did its job)", f.mails)
	}
	var clearAt time.Time
	_ = env.GetWorkflowResult(&clearAt)
	if want := erasedAt.Add(91 * aDay); !clearAt.Equal(want) { // weekly checks: aDay 91 is the first after aDay 89 + 90
		t.Fatalf("clear at %s, want %s", clearAt, want)
	}
}

func TestBackupWatchTellsTheTeamOnceWhenTheRotationIsOverdue(t *testing.T) {
	env := newBackupEnv()
	erasedAt := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	env.SetStartTime(erasedAt)
	f := newBackupFake(t, env)
	f.backups["nightly"], f.rotation["nightly"] = dailyBackups(erasedAt)[:5], 14*aDay
	f.stuck["nightly"] = true // the lifecycle rule was deleted: nothing rotates
	fixedOn := erasedAt.Add(30 * aDay)
	env.RegisterDelayedCallback(func() { f.stuck["nightly"] = false }, 30*aDay-time.Hour) // an operator fixes it
	env.ExecuteWorkflow(workflows.AwaitBackupRotation, contract.BackupWatchInput{
		RequestID: "req_c", ErasedAt: erasedAt, Promise: 30 * aDay,
		Locations: []contract.BackupLocation{{Name: "nightly", Bucket: "nightly", Rotation: 14 * aDay}},
	})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(f.mails) != 1 {
		t.Fatalf("%d mails %+v, want one overdue mail", len(f.mails), f.mails)
	}
	m := f.mails[0]
	if m.Key != "req_c:backups:overdue" || m.Template != contract.MailOperatorEscalation || !m.Data.DueDate.Equal(erasedAt.Add(14*aDay)) ||
		!strings.Contains(strings.Join(m.Data.Lines, " "), "still holds 5 backups") {
		t.Fatalf("overdue mail %+v", m)
	}
	// It went on the first check after erasure + rotation + 2 checks (aDay 17),
	// not before: the check on aDay 16 is exactly on the limit.
	var clearAt time.Time
	_ = env.GetWorkflowResult(&clearAt)
	if !clearAt.Equal(fixedOn) {
		t.Fatalf("clear at %s, want %s (the first check after the fix)", clearAt, fixedOn)
	}
}

func TestBackupWatchContinuesAsNewWithItsState(t *testing.T) {
	env := newBackupEnv()
	erasedAt := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	env.SetStartTime(erasedAt)
	f := newBackupFake(t, env)
	f.backups["yearly"], f.rotation["yearly"] = dailyBackups(erasedAt)[:1], 400*aDay
	env.ExecuteWorkflow(workflows.AwaitBackupRotation, contract.BackupWatchInput{
		RequestID: "req_d", ErasedAt: erasedAt, Promise: 30 * aDay,
		Locations: []contract.BackupLocation{{Name: "yearly", Bucket: "yearly", Rotation: 400 * aDay}},
	})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "continue as new") {
		t.Fatalf("want continue-as-new after a bounded number of checks, got %v", err)
	}
	if len(f.counts) != 100 || len(f.mails) != 1 {
		t.Fatalf("%d listings, %d mails in one run", len(f.counts), len(f.mails))
	}
}
