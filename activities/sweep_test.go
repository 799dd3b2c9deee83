package activities_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/templates"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// A warning at 23 months, then activity at 23.5 months: nobody is erased.
func TestActivityAfterTheWarningCancelsTheErasure(t *testing.T) {
	ctx := context.Background()
	app := newDemoApp(t, 1)
	pool, objects, m, keys, hasher := app.pool, app.objects, app.m, app.keys, app.hasher
	outbox, _ := mail.NewOutbox(t.TempDir())
	tpl, err := templates.New("")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	l := &activities.Lifecycle{DB: pool, App: pool, Map: m, Keys: keys, Subjects: hasher, Mail: mail.NewOnce(pool, outbox), Templates: tpl,
		CompanyName: "Example", PublicURL: "http://localhost", PrivacyTeam: "team@example.com", Log: log}
	life := &activities.AccountLife{Lifecycle: l, Erasure: &activities.Erasure{App: pool, Objects: objects, Map: m, Keys: keys, Subjects: hasher, Log: log}, ExportBucket: demo.Bucket}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(life.SweepInactivePage)
	policy := contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}, WarnBefore: 30 * 24 * time.Hour}
	page := func(now time.Time) contract.SweepPageResult {
		t.Helper()
		v, err := env.ExecuteActivity(life.SweepInactivePage, contract.SweepPageInput{Policy: policy, Now: now, Phase: contract.PhaseInactive, RunKey: "t"})
		if err != nil {
			t.Fatal(err)
		}
		var res contract.SweepPageResult
		_ = v.Get(&res)
		return res
	}
	user := demo.Accounts(1)[0].ID
	t0 := time.Now().UTC().Truncate(time.Second)
	if _, err := pool.Exec(ctx, `UPDATE demo.accounts SET last_active_at = $2 WHERE id = $1`, user, domain.AddCalendarMonths(t0, -23).AddDate(0, 0, -2)); err != nil {
		t.Fatal(err)
	}
	// A dry run lists who would be warned, in S3, and changes nothing.
	v, err := env.ExecuteActivity(life.SweepInactivePage, contract.SweepPageInput{Policy: policy, Now: t0, Phase: contract.PhaseInactive, RunKey: "dry", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var dry contract.SweepPageResult
	_ = v.Get(&dry)
	var notices int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM lethe.inactivity_notices`).Scan(&notices)
	if dry.Warned != 1 || notices != 0 || dry.ReportKey == "" {
		t.Fatalf("dry run: %+v, %d notices recorded", dry, notices)
	}
	if n, err := objectstore.CountPrefix(ctx, objects, demo.Bucket, "reports/inactivity-dry-run/dry/"); err != nil || n.Total() != 1 {
		t.Fatalf("dry-run report: %d objects (%v)", n, err)
	}
	if r := page(t0); r.Warned != 1 || r.Erased != 0 {
		t.Fatalf("at 23 months: %+v, want one warning", r)
	}
	if r := page(t0.AddDate(0, 0, 1)); r.Warned != 0 || r.Waiting != 1 {
		t.Fatalf("a day later: %+v, want no second warning", r)
	}
	// The person logs in at 23.5 months.
	if _, err := pool.Exec(ctx, `UPDATE demo.accounts SET last_active_at = $2 WHERE id = $1`, user, t0.AddDate(0, 0, 15)); err != nil {
		t.Fatal(err)
	}
	if r := page(t0.AddDate(0, 2, 0)); r.Erased != 0 {
		t.Fatalf("after the due date: %+v, want no erasure", r)
	}
	var projects int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM demo.projects WHERE account_id = $1`, user).Scan(&projects)
	if projects == 0 {
		t.Fatal("an account active again was erased")
	}
	// Without the login it would have gone: same history, no activity.
	if _, err := pool.Exec(ctx, `UPDATE demo.accounts SET last_active_at = $2 WHERE id = $1`, user, domain.AddCalendarMonths(t0, -23).AddDate(0, 0, -2)); err != nil {
		t.Fatal(err)
	}
	if r := page(t0.AddDate(0, 2, 0)); r.Erased != 1 {
		t.Fatalf("still inactive after the due date: %+v, want the erasure", r)
	}
	// The swept account is in the erasure ledger: no restore brings it back.
	var inLedger int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM lethe.erasure_ledger WHERE user_ref = $1 AND request_id = 'sweep:inactive'`, string(hasher.UserID(user))).Scan(&inLedger); err != nil || inLedger != 1 {
		t.Fatalf("ledger: %d entries (%v), want the swept account", inLedger, err)
	}
}

// failingOnce fails its first send (SendGrid down), then sends.
type failingOnce struct {
	next  mail.Sender
	calls int
	sent  []mail.Message
}

func (f *failingOnce) Send(ctx context.Context, m mail.Message) error {
	f.calls++
	if f.calls == 1 {
		return errors.New("503 from SendGrid")
	}
	f.sent = append(f.sent, m)
	return f.next.Send(ctx, m)
}

// A page retried after the warning mail failed still warns: the person is
// never found "warned" by a warning that was not sent.
func TestAWarningWhoseMailFailedIsSentOnTheRetry(t *testing.T) {
	ctx := context.Background()
	app := newDemoApp(t, 1)
	pool, objects, m, keys, hasher := app.pool, app.objects, app.m, app.keys, app.hasher
	outbox, _ := mail.NewOutbox(t.TempDir())
	sender := &failingOnce{next: outbox}
	tpl, err := templates.New("")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	l := &activities.Lifecycle{DB: pool, App: pool, Map: m, Keys: keys, Subjects: hasher, Mail: mail.NewOnce(pool, sender), Templates: tpl,
		CompanyName: "Example", PublicURL: "http://localhost", PrivacyTeam: "team@example.com", Log: log}
	life := &activities.AccountLife{Lifecycle: l, Erasure: &activities.Erasure{App: pool, Objects: objects, Map: m, Keys: keys, Subjects: hasher, Log: log}, ExportBucket: demo.Bucket}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(life.SweepInactivePage)
	user := demo.Accounts(1)[0]
	t0 := time.Now().UTC().Truncate(time.Second)
	if _, err := pool.Exec(ctx, `UPDATE demo.accounts SET last_active_at = $2 WHERE id = $1`, user.ID, domain.AddCalendarMonths(t0, -23).AddDate(0, 0, -2)); err != nil {
		t.Fatal(err)
	}
	in := contract.SweepPageInput{Policy: contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}, WarnBefore: 30 * 24 * time.Hour},
		Now: t0, Phase: contract.PhaseInactive, RunKey: "t"}
	if _, err := env.ExecuteActivity(life.SweepInactivePage, in); err == nil {
		t.Fatal("the first attempt succeeded although the mail failed")
	}
	v, err := env.ExecuteActivity(life.SweepInactivePage, in) // Temporal's retry
	if err != nil {
		t.Fatal(err)
	}
	var res contract.SweepPageResult
	_ = v.Get(&res)
	if res.Warned != 1 || len(sender.sent) != 1 || sender.sent[0].To != user.Email {
		t.Fatalf("retry: %+v, %d mails sent; want the one warning", res, len(sender.sent))
	}
	var audited int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM lethe.audit_log WHERE action = 'inactivity.warned'`).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("audit entries: %d (%v), want 1", audited, err)
	}
}
