package activities_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/templates"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// mailWorld is the demo application with a Lifecycle that writes its mail
// to an outbox.
type mailWorld struct {
	demoApp
	l      *activities.Lifecycle
	outbox string
	person []byte // the sealed identity of sr_x
}

func newMailWorld(t *testing.T) mailWorld {
	t.Helper()
	app := newDemoApp(t, 1)
	dir := t.TempDir()
	outbox, err := mail.NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := templates.New("")
	if err != nil {
		t.Fatal(err)
	}
	person, err := person.Seal(context.Background(), app.keys, "sr_x", person.Identity{Email: "ada.1001@example.com", UserID: demo.Accounts(1)[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	l := &activities.Lifecycle{DB: app.pool, App: app.pool, Map: app.m, Keys: app.keys, Subjects: app.hasher, Mail: outbox, Templates: tpl,
		CompanyName: "Example", PublicURL: "http://localhost", PrivacyTeam: "team@example.com", Log: slog.New(slog.DiscardHandler)}
	return mailWorld{demoApp: app, l: l, outbox: dir, person: person}
}

// last is the newest mail in the outbox.
func (w mailWorld) last(t *testing.T) mail.OutboxMessage {
	t.Helper()
	list, err := mail.ListOutbox(w.outbox)
	if err != nil || len(list) == 0 {
		t.Fatalf("outbox: %d mails (%v)", len(list), err)
	}
	m, err := mail.ReadOutbox(list[len(list)-1].Path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// demoReceipt is what an erasure of a demo account leaves, with a table
// the map does not label, processors' ids, an operator's evidence and
// reason, and a backup location.
func demoReceipt() contract.Receipt {
	return contract.Receipt{RequestID: "req_1", Entries: []contract.ReceiptEntry{
		{System: contract.SystemPostgres, Name: "demo.accounts", Action: "anonymized", Count: 1},
		{System: contract.SystemPostgres, Name: "demo.legacy_notes", Action: "deleted", Count: 2},
		{System: contract.SystemPostgres, Name: "demo.project_comments", Action: "deleted", Count: 3},
		{System: contract.SystemPostgres, Name: "demo.project_files", Action: "deleted", Count: 6},
		{System: contract.SystemPostgres, Name: "demo.projects", Action: "deleted", Count: 2},
		{System: contract.SystemPostgres, Name: "demo.purchases", Action: "retained", Count: 1, Basis: "tax law keeps purchase records", Until: time.Date(2035, 11, 23, 0, 0, 0, 0, time.UTC)},
		{System: contract.SystemPostgres, Name: "demo.reviews", Action: "anonymized", Count: 4},
		{System: contract.SystemS3, Name: "lethe-app-data/projects/{user_id}/", Action: "deleted", Count: 6, Confirmation: "9 versions and delete markers"},
		{System: contract.SystemProcessor, Name: "crm", Action: contract.ProcessorSkipped, Basis: "crm account closed, says Jane Roe"},
		{System: contract.SystemProcessor, Name: "paypal", Action: contract.ProcessorDoneByHand, Confirmation: "subject referred to PayPal, ticket PP-9"},
		{System: contract.SystemProcessor, Name: "stripe", Action: contract.ProcessorConfirmed, Confirmation: "HTTP 200, customer cus_Q1w2"},
		{System: contract.SystemBackups, Name: "postgres-nightly", Action: "rotating out", Until: time.Date(2027, 2, 20, 0, 0, 0, 0, time.UTC)},
	}}
}

func TestTheErasureCompletionMailNamesWhatWasErasedByItsLabels(t *testing.T) {
	w := newMailWorld(t)
	receipt := demoReceipt()
	err := w.l.SendRequestMail(context.Background(), contract.SendMailInput{
		RequestID: "req_1", SubjectRef: "sr_x", Identity: w.person, Template: contract.MailCompleted, Key: "req_1:completed:0",
		Data: contract.MailData{RequestType: domain.TypeErasure, Jurisdiction: "gdpr", DueDate: time.Date(2027, 2, 15, 0, 0, 0, 0, time.UTC),
			Lines: receipt.Lines(), Receipt: &receipt},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := w.last(t)
	if m.To != "ada.1001@example.com" || m.Template != templates.Completed {
		t.Fatalf("mail to %q (%s)", m.To, m.Template)
	}
	text := strings.Join(strings.Fields(m.Text), " ")
	for _, want := range []string{
		"Deleted: other records (2), your projects (11), the files of your projects (6 files).",
		"Anonymized, so that they no longer identify you: your account (1), your reviews (4).",
		"Kept under a legal hold until 23 November 2035: your purchases (tax law keeps purchase records).",
		"We did not ask crm to erase your data",
		"Asked paypal to erase your data: done by our privacy team.",
		"Asked stripe to erase your data: confirmed.",
		"Our backups still hold a copy until 20 February 2027",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the mail lacks %q:\n%s", want, m.Text)
		}
	}
	for _, body := range []string{m.Subject, m.Text, m.HTML} {
		for _, bad := range []string{"demo.", "{", "}", "lethe-app-data", "user_id", "cus_Q1w2", "HTTP 200", "PP-9", "referred", "Jane Roe", "postgres-nightly", "versions"} {
			if strings.Contains(body, bad) {
				t.Errorf("the person's mail contains %q:\n%s", bad, body)
			}
		}
	}
	// The operator's receipt, as the API and the audit trail carry it, keeps the detail.
	operator := strings.Join(receipt.Lines(), "\n")
	for _, keep := range []string{"demo.project_files", "lethe-app-data/projects/{user_id}/", "PP-9", "Jane Roe"} {
		if !strings.Contains(operator, keep) {
			t.Errorf("the operator's receipt lacks %q", keep)
		}
	}
}

// A processor task's mail states the request's due date, as Lethe recorded
// it, and the task's deadline, each as what it is.
func TestATaskMailStatesTheRequestsDueDateAndTheTasksDeadline(t *testing.T) {
	w := newMailWorld(t)
	ctx := context.Background()
	due := time.Date(2027, 2, 15, 0, 0, 0, 0, time.UTC)
	if _, err := w.pool.Exec(ctx, `INSERT INTO lethe.requests (id, type, subject_ref, jurisdiction, status, workflow_id, received_at, due_at)
		VALUES ('req_1', 'erasure', 'sr_x', 'gdpr', 'in_progress', 'req_1', $1, $2)`, due.AddDate(0, -1, 0), due); err != nil {
		t.Fatal(err)
	}
	task := time.Date(2027, 1, 22, 0, 0, 0, 0, time.UTC)
	send := func(requestID, template string) mail.OutboxMessage {
		t.Helper()
		err := w.l.SendRequestMail(ctx, contract.SendMailInput{RequestID: requestID, Template: template, Key: requestID + ":" + template, ToPrivacyTeam: true,
			Data: contract.MailData{RequestType: domain.TypeErasure, Jurisdiction: "gdpr", DueDate: task, TaskDeadline: task, Lines: []string{"Erasure at processor paypal needs an operator"}}})
		if err != nil {
			t.Fatal(err)
		}
		return w.last(t)
	}
	for _, template := range []string{contract.MailOperatorReminder, contract.MailOperatorEscalation} {
		m := send("req_1", template)
		text := strings.Join(strings.Fields(m.Text), " ")
		if m.To != "team@example.com" || !strings.Contains(text, "The request is due on 15 February 2027; this task's deadline is 22 January 2027") {
			t.Errorf("%s to %s:\n%s", template, m.To, m.Text)
		}
		if strings.Contains(m.Subject+text, "due on 22 January") {
			t.Errorf("%s gives the task's deadline as the request's due date:\n%s\n%s", template, m.Subject, m.Text)
		}
	}
	// The task of an account's erasure belongs to no request: its deadline only.
	m := send("deactivation-sr_x", contract.MailOperatorReminder)
	if text := strings.Join(strings.Fields(m.Text), " "); !strings.Contains(text, "This task's deadline is 22 January 2027") || strings.Contains(text, "request is due") {
		t.Errorf("a task of no request:\n%s", m.Text)
	}
}

// The receipt of a request the backend vouched for promises no code.
func TestTheReceiptOfABackendVerifiedRequestPromisesNoCode(t *testing.T) {
	w := newMailWorld(t)
	for _, verified := range []bool{true, false} {
		key := "req_1:receipt:verified"
		if !verified {
			key = "req_2:receipt"
		}
		err := w.l.SendRequestMail(context.Background(), contract.SendMailInput{RequestID: "req_1", SubjectRef: "sr_x", Identity: w.person,
			Template: contract.MailReceipt, Key: key,
			Data: contract.MailData{RequestType: domain.TypeErasure, Jurisdiction: "gdpr", DueDate: time.Date(2027, 2, 15, 0, 0, 0, 0, time.UTC), Verified: verified}})
		if err != nil {
			t.Fatal(err)
		}
		m := w.last(t)
		if got := strings.Contains(strings.ToLower(m.Text+m.HTML), "code"); got == verified {
			t.Errorf("verified %v: the receipt mentions a code: %v\n%s", verified, got, m.Text)
		}
	}
}

// An application without a status column or a last activity: deactivation
// and restore change nothing in its database but still need the account;
// the sweep skips inactivity and still erases closed accounts.
func TestAccountsWithoutStatusOrLastActive(t *testing.T) {
	w := newMailWorld(t)
	ctx := context.Background()
	acc := *w.m.Accounts
	acc.Status, acc.Active, acc.Deactivated, acc.Erased, acc.LastActive = "", "", "", "", ""
	w.m.Accounts = &acc
	log := slog.New(slog.DiscardHandler)
	life := &activities.AccountLife{Lifecycle: w.l, ExportBucket: demo.Bucket,
		Erasure: &activities.Erasure{App: w.pool, Lethe: w.pool, Objects: w.objects, Map: w.m, Keys: w.keys, Subjects: w.hasher, Log: log}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(life.SetAccountStatus)
	env.RegisterActivity(life.SweepInactivePage)
	user := demo.Accounts(1)[0].ID
	status := func() string {
		var st string
		if err := w.pool.QueryRow(ctx, `SELECT status FROM demo.accounts WHERE id = $1`, user).Scan(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, to := range []string{contract.AccountDeactivated, "active"} {
		if _, err := env.ExecuteActivity(life.SetAccountStatus, contract.AccountStatusInput{SubjectRef: "sr_x", Identity: w.person, Status: to}); err != nil {
			t.Fatalf("%s: %v", to, err)
		}
		if st := status(); st != "active" {
			t.Fatalf("%s: the unmapped status column changed to %q", to, st)
		}
	}
	stranger, _ := person.Seal(ctx, w.keys, "sr_y", person.Identity{UserID: "u-nobody"})
	_, err := env.ExecuteActivity(life.SetAccountStatus, contract.AccountStatusInput{SubjectRef: "sr_y", Identity: stranger, Status: contract.AccountDeactivated})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != "UnknownAccount" {
		t.Fatalf("an unknown account: %v", err)
	}

	// Long inactive, and closed long ago.
	if _, err := w.pool.Exec(ctx, `UPDATE demo.accounts SET last_active_at = now() - interval '5 years', closed_at = now() - interval '90 days' WHERE id = $1`, user); err != nil {
		t.Fatal(err)
	}
	page := func(phase string) contract.SweepPageResult {
		t.Helper()
		v, err := env.ExecuteActivity(life.SweepInactivePage, contract.SweepPageInput{Phase: phase, Now: time.Now(), RunKey: "t",
			Policy: contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}, WarnBefore: 30 * 24 * time.Hour, ClosedKeep: domain.Period{Days: 30}}})
		if err != nil {
			t.Fatal(err)
		}
		var res contract.SweepPageResult
		_ = v.Get(&res)
		return res
	}
	if r := page(contract.PhaseInactive); !r.Done || r.Scanned != 0 || r.Warned != 0 {
		t.Fatalf("inactive phase without last_active: %+v, want nothing", r)
	}
	if r := page(contract.PhaseClosed); !r.Done || r.Erased != 1 {
		t.Fatalf("closed phase: %+v, want the closed account erased", r)
	}
	var email string
	if err := w.pool.QueryRow(ctx, `SELECT email FROM demo.accounts WHERE id = $1`, user).Scan(&email); err != nil || !strings.HasSuffix(email, "@invalid") {
		t.Fatalf("the closed account's row: %q (%v)", email, err)
	}
	if r := page(contract.PhaseClosed); r.Erased != 0 {
		t.Fatalf("a second sweep: %+v, want the erased account left alone", r)
	}
}

// A task Lethe gives the privacy team (a mail that could not go, an audit
// entry that could not be written) reaches the team with or without a
// request, saying what to do.
func TestAnOperatorTaskReachesTheTeamWithOrWithoutARequest(t *testing.T) {
	w := newMailWorld(t)
	ctx := context.Background()
	for _, requestID := range []string{"req_1", ""} {
		line := "The audit entry erasure.reconciled could not be written (DatabaseError)."
		err := w.l.SendRequestMail(ctx, contract.SendMailInput{RequestID: requestID, Template: contract.MailOperatorTask, Key: requestID + ":x:audit-failed", ToPrivacyTeam: true,
			Data: contract.MailData{Lines: []string{line}}})
		if err != nil {
			t.Fatalf("request %q: %v", requestID, err)
		}
		m := w.last(t)
		text := strings.Join(strings.Fields(m.Text), " ")
		if m.To != "team@example.com" || !strings.Contains(text, line) || !strings.Contains(m.Subject, "needs a person") {
			t.Errorf("request %q: to %s, %s\n%s", requestID, m.To, m.Subject, m.Text)
		}
		if strings.Contains(m.Subject, "request") != (requestID != "") {
			t.Errorf("request %q: subject %q", requestID, m.Subject)
		}
	}
}
