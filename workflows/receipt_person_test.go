package workflows_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/workflows"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// personReceipt is a receipt as an erasure leaves it: several tables of one
// label, tables without one, a hold, two S3 locations (one labelled), four
// processors in every state, with ids, evidence and a reason an operator
// typed, and a backup location.
func personReceipt() contract.Receipt {
	hold := time.Date(2032, 11, 23, 0, 0, 0, 0, time.UTC)
	followUp := time.Date(2027, 2, 14, 0, 0, 0, 0, time.UTC)
	return contract.Receipt{RequestID: "req_1", Entries: []contract.ReceiptEntry{
		{System: contract.SystemPostgres, Name: "shop.accounts", Action: "anonymized", Count: 1},
		{System: contract.SystemPostgres, Name: "shop.addresses", Action: "deleted", Count: 2},
		{System: contract.SystemPostgres, Name: "shop.billing_addresses", Action: "deleted", Count: 1},
		{System: contract.SystemPostgres, Name: "shop.events", Action: "deleted", Count: 4},
		{System: contract.SystemPostgres, Name: "shop.sessions", Action: "deleted", Count: 3},
		{System: contract.SystemPostgres, Name: "shop.wishlists", Action: "deleted", Count: 0},
		{System: contract.SystemPostgres, Name: "shop.reviews", Action: "anonymized", Count: 5},
		{System: contract.SystemPostgres, Name: "shop.orders", Action: "retained", Count: 2, Basis: "tax law keeps order records", Until: hold},
		{System: contract.SystemPostgres, Name: "shop.order_lines", Action: "retained", Count: 7, Basis: "tax law keeps order records", Until: hold},
		{System: contract.SystemS3, Name: "shop-media/avatars/{user_id}/", Action: "deleted", Count: 3, Confirmation: "8 versions and delete markers"},
		{System: contract.SystemS3, Name: "shop-exports/{user_id}/", Action: "deleted", Count: 1},
		{System: contract.SystemProcessor, Name: "stripe", Action: contract.ProcessorConfirmed, Confirmation: "HTTP 200, customer cus_ABC123", Until: followUp},
		{System: contract.SystemProcessor, Name: "mailchimp", Action: contract.ProcessorAlreadyGone, Confirmation: "HTTP 404"},
		{System: contract.SystemProcessor, Name: "paypal", Action: contract.ProcessorDoneByHand, Confirmation: "closed by hand, ticket PP-4711"},
		{System: contract.SystemProcessor, Name: "crm", Action: contract.ProcessorSkipped, Basis: "the CRM holds nothing per Jane at support"},
		{System: contract.SystemBackups, Name: "pg-nightly", Action: "rotating out", Until: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)},
	}}
}

var personLabels = contract.ReceiptLabels{
	Tables: map[string]string{
		"shop.accounts": "your account", "shop.addresses": "your addresses", "shop.billing_addresses": "your addresses",
		"shop.reviews": "your reviews", "shop.orders": "your orders", "shop.order_lines": "your orders",
	},
	Locations: map[string]string{"shop-media/avatars/{user_id}/": "your profile pictures"},
}

func TestThePersonsReceiptSpeaksInLabels(t *testing.T) {
	lines := personReceipt().PersonLines(personLabels)
	want := []string{
		"Deleted: your addresses (3), other records (7), your profile pictures (3 files), files (1 file).",
		"Anonymized, so that they no longer identify you: your account (1), your reviews (5).",
		"Kept under a legal hold until 23 November 2032: your orders (tax law keeps order records).",
		"Asked stripe to erase your data: confirmed; we check again after 14 February 2027.",
		"Asked mailchimp to erase your data: it held nothing about you (confirmed).",
		"Asked paypal to erase your data: done by our privacy team.",
		"We did not ask crm to erase your data; our privacy team recorded why.",
		"Our backups still hold a copy until 1 March 2027, when they are replaced; if one is restored before then, your data is erased from it again.",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	all := strings.Join(lines, "\n")
	for _, bad := range []string{"shop.", "{", "}", "shop-media", "shop-exports", "avatars", "cus_ABC123", "HTTP", "PP-4711", "by hand", "Jane", "pg-nightly", "versions"} {
		if strings.Contains(all, bad) {
			t.Errorf("the person's receipt contains %q:\n%s", bad, all)
		}
	}
	// The operator's receipt keeps every technical detail.
	operator := strings.Join(personReceipt().Lines(), "\n")
	for _, keep := range []string{"shop.addresses", "shop-media/avatars/{user_id}/", "cus_ABC123", "PP-4711", "Jane at support", "pg-nightly"} {
		if !strings.Contains(operator, keep) {
			t.Errorf("the operator's receipt lacks %q:\n%s", keep, operator)
		}
	}
}

func TestThePersonsReceiptWithoutLabelsOrData(t *testing.T) {
	lines := personReceipt().PersonLines(contract.ReceiptLabels{})
	if !strings.HasPrefix(lines[0], "Deleted: other records (10), files (4 files).") ||
		!strings.Contains(lines[2], "until 23 November 2032: other records (tax law keeps order records)") {
		t.Errorf("unlabelled:\n%s", strings.Join(lines, "\n"))
	}
	if got := (contract.Receipt{NothingHeld: true}).PersonLines(personLabels); len(got) != 1 || !strings.Contains(got[0], "We hold no data about you") {
		t.Errorf("nothing held: %q", got)
	}
	empty := contract.Receipt{Entries: []contract.ReceiptEntry{{System: contract.SystemPostgres, Name: "shop.events", Action: "deleted"}}}
	if got := empty.PersonLines(personLabels); len(got) != 1 || strings.Contains(got[0], "shop") {
		t.Errorf("nothing erased: %q", got)
	}
}

// The request hands the person's completion mail the erasure's receipt
// (the activity words it with the data map's labels), and says in the
// receipt mail of a request the backend vouched for that no code comes.
func TestTheCompletionMailCarriesTheReceiptAndTheReceiptMailTheVerification(t *testing.T) {
	p := policyGDPR()
	p.FulfilByHand = false
	l := newLifecycle(t, jan15)
	v := l.run(contract.RequestInput{Type: domain.TypeErasure, Jurisdiction: "gdpr", PreVerified: true, SubmittedBy: "backend:k", HasUserID: true, Policy: p})
	if v.Status != domain.StatusCompleted {
		t.Fatalf("request %+v", v)
	}
	if r := l.mailed(contract.MailReceipt); len(r) != 1 || !r[0].data.Verified {
		t.Fatalf("receipt mail %+v: want Verified", r)
	}
	done := l.mailed(contract.MailCompleted)
	if len(done) != 1 || done[0].data.Receipt == nil {
		t.Fatalf("completion mail %+v: want the erasure's receipt", done)
	}
	person := strings.Join(done[0].data.Receipt.PersonLines(contract.ReceiptLabels{}), "\n")
	if !strings.Contains(person, "Deleted: other records (2), files (12 files).") || strings.Contains(person, "b/p/") {
		t.Errorf("the person's lines from the mail's receipt:\n%s", person)
	}
	// The operator's outcome keeps the technical receipt.
	if !strings.Contains(strings.Join(v.Outcome, "\n"), "Deleted 6 files from b/p/") {
		t.Errorf("outcome %q", v.Outcome)
	}

	// A person who must verify is told a code may come.
	l = newLifecycle(t, jan15)
	l.verify(time.Minute, code(1))
	l.run(contract.RequestInput{Type: domain.TypeErasure, Jurisdiction: "gdpr", Policy: p})
	if r := l.mailed(contract.MailReceipt); len(r) != 1 || r[0].data.Verified {
		t.Fatalf("receipt mail %+v: want not Verified", r)
	}
}

// The mail that tells a person their deactivated account was erased
// carries the erasure's receipt too.
func TestTheAccountErasedMailCarriesTheReceipt(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(jan15)
	env.RegisterWorkflowWithOptions(workflows.EraseSubject, workflow.RegisterOptions{Name: contract.WorkflowEraseSubject})
	mails := map[string]contract.MailData{}
	fake(env, accounts.SetAccountStatus, func(context.Context, contract.AccountStatusInput) error { return nil })
	fake(env, lc.AppendAudit, func(context.Context, contract.AuditInput) error { return nil })
	fake(env, lc.SendRequestMail, func(_ context.Context, in contract.SendMailInput) error {
		mails[in.Template] = in.Data
		return nil
	})
	fake(env, lc.ShredSubject, func(context.Context, string) error { return nil })
	newFakeSystems().register(env)
	env.ExecuteWorkflow(workflows.AccountDeactivation, contract.DeactivationInput{SubjectRef: "sr_x", HasEmail: true, GracePeriod: 30 * aDay, RequestedBy: "backend:k"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	erased, ok := mails[contract.MailAccountErased]
	if !ok || erased.Receipt == nil || len(erased.Receipt.Entries) == 0 || len(erased.Lines) == 0 {
		t.Fatalf("account erased mail %+v: want the receipt", erased)
	}
	if notice := mails[contract.MailDeactivationNotice]; notice.Receipt != nil {
		t.Fatalf("the deactivation notice carries a receipt: %+v", notice)
	}
}
