package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/internal/testenv/shopapp"
	"github.com/lethe-privacy/lethe/worker/registry"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// bulkWorld is the bookshop (an application nobody here wrote) with a
// last-activity column, every customer inactive for 26 months and warned a
// month ago, and known at four processors (two of them, Mailchimp and
// SendGrid, with batch APIs).
type bulkWorld struct {
	*e2e
	customers  []shopapp.Customer
	stripe     *processorfake.Stripe
	mailchimp  *processorfake.Mailchimp
	sendgrid   *processorfake.SendGrid
	crm        *processorfake.Webhook
	stripeIDs  map[string]string // user id -> Stripe customer id
	contactIDs map[string]string // user id -> SendGrid contact id
}

// The rate each processor is held to in these tests, calls a second.
const (
	stripeRate    = 25
	mailchimpRate = 40
	crmRate       = 40
	sendgridRate  = 10
)

func newBulkWorld(t *testing.T, n int) *bulkWorld {
	t.Helper()
	ctx := context.Background()
	w := &bulkWorld{stripe: processorfake.NewStripe(t), mailchimp: processorfake.NewMailchimp(t), sendgrid: processorfake.NewSendGrid(t),
		crm: processorfake.NewWebhook(t), stripeIDs: map[string]string{}, contactIDs: map[string]string{}}
	// SendGrid deletes asynchronously: a contact stays readable a while.
	w.sendgrid.SetDeletionLag(2)
	t.Setenv("LETHE_STRIPE_KEY", w.stripe.APIKey)
	t.Setenv("LETHE_SENDGRID_KEY", w.sendgrid.APIKey)
	t.Setenv("LETHE_MAILCHIMP_KEY", w.mailchimp.APIKey)
	t.Setenv("LETHE_CRM_SECRET", string(w.crm.Secret))
	w.mailchimp.AddList("news")
	st := testenv.New(t)
	cs, err := shopapp.Seed(ctx, st.App, st.S3, n)
	if err != nil {
		t.Fatal(err)
	}
	w.customers = cs
	if _, err := st.App.Exec(ctx, `ALTER TABLE shop.customers ADD COLUMN last_seen_at timestamptz`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.App.Exec(ctx, `UPDATE shop.customers SET last_seen_at = $1`, time.Now().AddDate(0, -26, 0)); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		w.stripeIDs[c.UserID()] = w.stripe.AddCustomer(processorfake.StripeCustomer{Email: c.Email, Name: c.Name})
		w.mailchimp.AddMember("news", processorfake.MailchimpMember{Email: c.Email, Status: "subscribed"})
		w.contactIDs[c.UserID()] = w.sendgrid.AddContact(processorfake.SendGridContact{Email: c.Email, FirstName: c.Name})
		w.crm.AddSubject(processorfake.WebhookSubject{UserID: c.UserID(), Email: c.Email})
	}
	// The shop's team adds an accounts section for the sweep: the account's
	// erasure takes the email column over from the customers' anonymization.
	yaml := strings.Replace(string(shopapp.DataMapYAML()), "      - {column: email, set: hash}           # NOT NULL UNIQUE: a pseudonym, never \"null\"\n", "", 1)
	if yaml == string(shopapp.DataMapYAML()) {
		t.Fatal("the shop's map changed: update this test's edit of it")
	}
	yaml += "accounts: {table: shop.customers, key: id, email: email, last_active: last_seen_at, erase_action: anonymize}\n"
	m, err := datamap.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	m.Processors = []processors.Config{
		{Name: "stripe", Kind: "stripe", BaseURL: w.stripe.URL(), CredentialEnv: "LETHE_STRIPE_KEY", RateLimit: stripeRate},
		{Name: "mailchimp", Kind: "mailchimp", BaseURL: w.mailchimp.URL(), CredentialEnv: "LETHE_MAILCHIMP_KEY", Options: map[string]string{"list_id": "news"}, RateLimit: mailchimpRate},
		{Name: "crm", Kind: "webhook", BaseURL: w.crm.URL(), CredentialEnv: "LETHE_CRM_SECRET", RateLimit: crmRate},
		{Name: "sendgrid", Kind: "sendgrid", BaseURL: w.sendgrid.URL(), CredentialEnv: "LETHE_SENDGRID_KEY", RateLimit: sendgridRate},
	}
	w.e2e = startE2E(t, st, m, nil)
	// Everyone was warned a month ago for this last activity, and is due.
	for _, c := range cs {
		var seen time.Time
		if err := w.App.QueryRow(ctx, `SELECT last_seen_at FROM shop.customers WHERE id = $1`, c.ID).Scan(&seen); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Lethe.Exec(ctx, `INSERT INTO lethe.inactivity_notices (subject_ref, last_active, warned_at, due_at) VALUES ($1, $2, $3, $4)`,
			w.ref(c), seen, time.Now().AddDate(0, 0, -31), time.Now().AddDate(0, 0, -1)); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *bulkWorld) ref(c shopapp.Customer) string { return string(w.Deps.Subjects.UserID(c.UserID())) }

// sweep runs the inactivity sweep to its end.
func (w *bulkWorld) sweep(t *testing.T) contract.SweepTotals {
	t.Helper()
	ctx := context.Background()
	policy := contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}, WarnBefore: 30 * 24 * time.Hour}
	run, err := w.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: w.Config.TemporalTaskQueue}, contract.WorkflowInactiveSweep, contract.SweepInput{Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	var totals contract.SweepTotals
	if err := run.Get(ctx, &totals); err != nil {
		t.Fatal(err)
	}
	return totals
}

// erasedAtProcessors checks, from what each fake received and holds, that
// every customer of cs was erased exactly once at each processor, and that
// no processor was called faster than its rate.
func (w *bulkWorld) erasedAtProcessors(t *testing.T, cs []shopapp.Customer) {
	t.Helper()
	for _, c := range cs {
		id := w.stripeIDs[c.UserID()]
		if got, ok := w.stripe.Customer(id); !ok || !got.Deleted {
			t.Errorf("customer %d: still at Stripe", c.ID)
		}
		if n := answered(w.stripe.CallsTo("DELETE", "/v1/customers/"+id), 200); n != 1 {
			t.Errorf("customer %d: Stripe erased them %d times, want once", c.ID, n)
		}
		if !w.mailchimp.Forgotten("news", c.Email) {
			t.Errorf("customer %d: still in Mailchimp", c.ID)
		}
		hash := processorfake.SubscriberHash(c.Email)
		// Mailchimp takes a page's erasures in batches: an operation each.
		deletes := "/3.0/lists/news/members/" + hash + "/actions/delete-permanent"
		if n := answered(w.mailchimp.CallsTo("POST", deletes), 204) + answered(w.mailchimp.Operations("POST", deletes), 204); n != 1 {
			t.Errorf("customer %d: Mailchimp deleted them %d times, want once", c.ID, n)
		}
		if _, ok := w.crm.Subject(c.UserID()); ok {
			t.Errorf("customer %d: still in the CRM", c.ID)
		}
		if _, ok := w.sendgrid.Contact(w.contactIDs[c.UserID()]); ok {
			t.Errorf("customer %d: still in SendGrid", c.ID)
		}
		deleted := 0
		for _, d := range w.sendgrid.CallsTo("DELETE", "/v3/marketing/contacts") {
			if d.Status == http.StatusAccepted && slices.Contains(strings.Split(d.Query.Get("ids"), ","), w.contactIDs[c.UserID()]) {
				deleted++
			}
		}
		if deleted != 1 {
			t.Errorf("customer %d: SendGrid was asked to delete them %d times, want once", c.ID, deleted)
		}
	}
	for name, calls := range map[string][]processorfake.Call{
		"stripe":    w.stripe.CallsTo("DELETE", "/v1/customers/"),
		"mailchimp": w.mailchimp.Calls(),
		"crm":       w.crm.Calls(),
		"sendgrid":  w.sendgrid.Calls(),
	} {
		rate := map[string]int{"stripe": stripeRate, "mailchimp": mailchimpRate, "crm": crmRate, "sendgrid": sendgridRate}[name]
		// The server lets a second's worth through at once, then holds the rate.
		if most := processorfake.BusiestSecond(calls); most > 2*rate {
			t.Errorf("%s: %d calls within one second, its rate is %d/s", name, most, rate)
		}
		if len(calls) > 3*rate {
			span := calls[len(calls)-1].At.Sub(calls[0].At).Seconds()
			if sustained := float64(len(calls)-rate) / span; sustained > 1.25*float64(rate) {
				t.Errorf("%s: %d calls in %.1f s: %.1f/s sustained, its rate is %d/s", name, len(calls), span, sustained, rate)
			}
		}
	}
}

// answered counts the calls the fake answered with status.
func answered(calls []processorfake.Call, status int) int {
	n := 0
	for _, c := range calls {
		if c.Status == status {
			n++
		}
	}
	return n
}

// The sweep erases 200 due accounts of the bookshop through the bulk path:
// their rows and objects, each processor once per person at its rate,
// held orders kept under their hold with one workflow releasing them, a
// receipt per person; then a restore brings three back, and the reconcile
// erases them again, at the processors too.
func TestTheSweepErasesTwoHundredAccountsEverywhereAtEachProcessorsRate(t *testing.T) {
	const n = 200
	w := newBulkWorld(t, n)
	ctx := context.Background()
	began := time.Now()
	totals := w.sweep(t)
	t.Logf("sweep of %d due accounts: %s, %+v", n, time.Since(began).Round(time.Millisecond), totals)
	if totals.Erased != n || totals.ErasureFailed != 0 {
		var why string
		_ = w.Lethe.QueryRow(ctx, `SELECT detail::text FROM lethe.audit_log WHERE action = 'erasure.incomplete' LIMIT 1`).Scan(&why)
		t.Fatalf("sweep totals %+v: want %d erased, none failed (the first erasure.incomplete: %s)", totals, n, why)
	}

	// The application: nothing of anyone left but the held orders.
	ids := make([]int64, n)
	refs := make([]string, n)
	for i, c := range w.customers {
		ids[i], refs[i] = c.ID, w.ref(c)
	}
	for _, q := range []string{
		`SELECT count(*) FROM shop.addresses WHERE customer_id = ANY($1)`,
		`SELECT count(*) FROM shop.login_events WHERE customer_id = ANY($1)`,
		`SELECT count(*) FROM shop.wishlists WHERE customer_id = ANY($1)`,
		`SELECT count(*) FROM shop.customers WHERE id = ANY($1) AND email LIKE '%kestrel.example'`,
		`SELECT count(*) FROM shop.orders WHERE customer_id = ANY($1) AND placed_at < now() - interval '72 months'`,
	} {
		if left := w.count(t, q, ids); left != 0 {
			t.Errorf("%d rows left: %s", left, q)
		}
	}
	if held := w.count(t, `SELECT count(*) FROM shop.orders WHERE customer_id = ANY($1)`, ids); held != n {
		t.Errorf("%d recent orders held, want %d (one each, under the tax hold)", held, n)
	}
	for _, c := range w.customers[:5] {
		if left, err := objectstore.CountPrefix(ctx, w.S3, shopapp.Bucket, fmt.Sprintf("avatars/%d/", c.ID)); err != nil || left.Total() != 0 {
			t.Errorf("customer %d: %d avatar versions left (%v)", c.ID, left.Total(), err)
		}
	}
	// The processors: each person once, within each one's rate.
	w.erasedAtProcessors(t, w.customers)
	// Mailchimp, which has a batch API, got the page as two batches (each
	// member's contact id, then the erasures), not a call per person.
	if got := w.mailchimp.Batches(); got != 2 {
		t.Errorf("Mailchimp got %d batches, want 2 for the page", got)
	}
	if got := len(w.mailchimp.CallsTo("", "/3.0/lists/news/members/")); got != 0 {
		t.Errorf("Mailchimp got %d calls for single members, want none: the page goes in batches", got)
	}
	// SendGrid got one search and one deletion per 100 people, and its
	// asynchronous deletions were followed by the page, not by a workflow
	// per person.
	if s, d := len(w.sendgrid.CallsTo("POST", "/v3/marketing/contacts/search/emails")), len(w.sendgrid.CallsTo("DELETE", "/v3/marketing/contacts")); s != n/100 || d != n/100 {
		t.Errorf("SendGrid got %d searches and %d deletions, want %d of each", s, d, n/100)
	}
	if per, err := w.Raw.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s'", contract.WorkflowEraseAtProcessor)}); err != nil || per.GetCount() != 0 {
		t.Errorf("%d EraseAtProcessor workflows (%v), want none: no workflow per person", per.GetCount(), err)
	}
	// A receipt per person, naming every system.
	if got := w.count(t, `SELECT count(DISTINCT subject_ref) FROM lethe.audit_log WHERE action = 'erasure.receipt' AND subject_ref = ANY($1)`, refs); got != n {
		t.Errorf("%d people have a receipt, want %d", got, n)
	}
	var detail string
	if err := w.Lethe.QueryRow(ctx, `SELECT detail::text FROM lethe.audit_log WHERE action = 'erasure.receipt' AND subject_ref = $1`, refs[0]).Scan(&detail); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shop.addresses", "shop.orders", "kestrel-uploads", "stripe", "mailchimp", "crm", "sendgrid", "tax law"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the receipt does not name %q: %s", want, detail)
		}
	}
	// What outlives the page is one AfterErasure: the held orders wait for
	// their holds to end, and each processor's erasures are checked again
	// after its retention window. No workflow per person, none per part.
	for _, old := range []string{contract.WorkflowReleaseHeldInBulk, contract.WorkflowProcessorFollowUps, contract.WorkflowAwaitBackupRotation} {
		if c, err := w.Raw.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s'", old)}); err != nil || c.GetCount() != 0 {
			t.Errorf("%d %s workflows (%v), want none: the page's AfterErasure keeps it", c.GetCount(), old, err)
		}
	}
	resp, err := w.Raw.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", contract.WorkflowAfterErasure)})
	if err != nil || len(resp.Executions) != 1 {
		t.Fatalf("running %s: %v (%v), want one for the page", contract.WorkflowAfterErasure, resp.GetExecutions(), err)
	}
	keepHistoryOfType(t, w.Stack, contract.WorkflowAfterErasure, "after-erasure-bulk-page")
	// Its input carries the page's follow-ups and holds: well under the
	// server's 2 MB limit on a payload (for 200 people at 4 processors;
	// it grows with people times processors).
	first, err := w.Raw.GetWorkflowHistory(ctx, resp.Executions[0].GetExecution().GetWorkflowId(), "", false, 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, p := range first.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads() {
		size += p.Size()
	}
	t.Logf("the page's AfterErasure input: %d bytes", size)
	if size == 0 || size > 1<<20 {
		t.Errorf("the page's AfterErasure input is %d bytes, want under 1 MiB", size)
	}
	v, err := w.Temporal.QueryWorkflow(ctx, resp.Executions[0].GetExecution().GetWorkflowId(), "", contract.QueryProgress)
	if err != nil {
		t.Fatal(err)
	}
	var after contract.AfterErasureProgress
	if err := v.Get(&after); err != nil {
		t.Fatal(err)
	}
	if len(after.FollowUps) != 4*n {
		t.Errorf("%d follow-up checks, want %d (four processors each)", len(after.FollowUps), 4*n)
	}
	for _, f := range after.FollowUps {
		if f.Status != contract.FollowUpWaiting || !f.CheckedAt.IsZero() {
			t.Fatalf("a follow-up check made already: %+v", f)
		}
	}
	// Two tables hold each person's recent order: the order, its lines.
	if h := after.HeldInBulk; h == nil || h.Left != 2*n || h.Deleted != 0 || !h.Next.After(time.Now()) {
		t.Errorf("held in bulk %+v, want the %d people's orders and order lines held until their hold ends, none deleted", h, n)
	}
	// The page's key is gone: its sealed identities are unreadable.
	if got := w.count(t, `SELECT count(*) FROM lethe.subject_keys WHERE subject_ref LIKE 'bulk:%' AND destroyed_at IS NULL`); got != 0 {
		t.Errorf("%d bulk keys still usable after the sweep", got)
	}

	// A restore brings three people back, in the application and (synced
	// from it) at the processors.
	back := w.customers[:3]
	for _, c := range back {
		if _, err := w.App.Exec(ctx, `UPDATE shop.customers SET email = $2, full_name = $3 WHERE id = $1`, c.ID, c.Email, c.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := w.App.Exec(ctx, `INSERT INTO shop.addresses (customer_id, line1, city, postcode) VALUES ($1, '221B Baker Street', 'London', 'NW1 6XE')`, c.ID); err != nil {
			t.Fatal(err)
		}
		w.stripeIDs[c.UserID()] = w.stripe.AddCustomer(processorfake.StripeCustomer{Email: c.Email, Name: c.Name})
		w.mailchimp.AddMember("news", processorfake.MailchimpMember{Email: c.Email, Status: "subscribed"})
		w.contactIDs[c.UserID()] = w.sendgrid.AddContact(processorfake.SendGridContact{Email: c.Email})
		w.crm.AddSubject(processorfake.WebhookSubject{UserID: c.UserID(), Email: c.Email})
	}
	stripeBefore := len(w.stripe.CallsTo("DELETE", "/v1/customers/"))
	run, err := w.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: w.Config.TemporalTaskQueue}, contract.WorkflowRestoreReconcile, contract.ReconcileInput{})
	if err != nil {
		t.Fatal(err)
	}
	var rec contract.ReconcileTotals
	waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := run.Get(waitCtx, &rec); err != nil {
		open, _ := w.Raw.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "ExecutionStatus = 'Running'"})
		for _, ex := range open.GetExecutions() {
			t.Log("open:", ex.GetType().GetName(), ex.GetExecution().GetWorkflowId())
			if ex.GetType().GetName() == contract.WorkflowEraseAtProcessor {
				if v, err := w.Temporal.QueryWorkflow(ctx, ex.GetExecution().GetWorkflowId(), "", contract.QueryProgress); err == nil {
					var view contract.ProcessorErasureView
					_ = v.Get(&view)
					t.Logf("view: %+v", view)
					if view.Task != nil {
						t.Logf("task: %+v", *view.Task)
					}
				}
			}
		}
		rows, _ := w.Lethe.Query(ctx, `SELECT request_id, detail::text FROM lethe.audit_log WHERE action = 'processor.task_opened'`)
		for rows.Next() {
			var id, d string
			_ = rows.Scan(&id, &d)
			t.Log("task:", id, d)
		}
		rows.Close()
		for _, mb := range w.mailchimp.Calls()[len(w.mailchimp.Calls())-3:] {
			t.Log("mailchimp:", mb.Method, mb.Path, mb.Status, string(mb.Body))
		}
		for _, mb := range w.crm.Calls()[len(w.crm.Calls())-3:] {
			t.Log("crm:", mb.Method, mb.Path, mb.Status)
		}
		t.Fatal(err)
	}
	if rec.Matched != n || rec.Erased != len(back) {
		t.Errorf("reconcile %+v: want %d matched and %d erased again", rec, n, len(back))
	}
	for _, c := range back {
		id := w.stripeIDs[c.UserID()]
		if got, ok := w.stripe.Customer(id); !ok || !got.Deleted {
			t.Errorf("customer %d: back at Stripe after the reconcile", c.ID)
		}
		if _, ok := w.sendgrid.Contact(w.contactIDs[c.UserID()]); ok {
			t.Errorf("customer %d: back in SendGrid after the reconcile", c.ID)
		}
		if !w.mailchimp.Forgotten("news", c.Email) {
			t.Errorf("customer %d: back in Mailchimp after the reconcile", c.ID)
		}
		if left := w.count(t, `SELECT count(*) FROM shop.addresses WHERE customer_id = $1`, c.ID); left != 0 {
			t.Errorf("customer %d: restored address left", c.ID)
		}
	}
	if calls := len(w.stripe.CallsTo("DELETE", "/v1/customers/")) - stripeBefore; calls != len(back) {
		t.Errorf("the reconcile asked Stripe %d times, want %d: only the people the restore brought back", calls, len(back))
	}
}

// A worker that dies in the middle of a bulk page: another takes the page
// over; nobody is erased twice at a processor, and nobody lacks a receipt.
func TestAWorkerDyingInTheMiddleOfABulkPageRepeatsNoErasureAndLosesNoReceipt(t *testing.T) {
	const n = 60
	w := newBulkWorld(t, n)
	ctx := context.Background()
	w.stripe.SetLatency(30 * time.Millisecond)
	w.Worker.Stop()
	o := registry.WorkerOptions()
	o.WorkerStopTimeout = 0 // stopping cuts running calls off, as a crash would
	dying := registry.NewWorker(w.Temporal, w.Config.TemporalTaskQueue, o, w.Deps)
	if err := dying.Start(); err != nil {
		t.Fatal(err)
	}
	policy := contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}, WarnBefore: 30 * 24 * time.Hour}
	run, err := w.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: w.Config.TemporalTaskQueue}, contract.WorkflowInactiveSweep, contract.SweepInput{Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "the page to be half way through Stripe", func() bool {
		return len(w.stripe.CallsTo("DELETE", "/v1/customers/")) >= n/3
	})
	dying.Stop()
	live := registry.NewWorker(w.Temporal, w.Config.TemporalTaskQueue, registry.WorkerOptions(), w.Deps)
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(live.Stop)
	var totals contract.SweepTotals
	if err := run.Get(ctx, &totals); err != nil {
		t.Fatal(err)
	}
	if totals.Erased != n {
		t.Fatalf("sweep %+v, want %d erased", totals, n)
	}
	keepHistoryOfType(t, w.Stack, contract.WorkflowBulkErasure, "bulk-erasure-worker-died")
	w.erasedAtProcessors(t, w.customers)
	refs := make([]string, n)
	for i, c := range w.customers {
		refs[i] = w.ref(c)
	}
	if got := w.count(t, `SELECT count(*) FROM lethe.audit_log WHERE action = 'erasure.receipt' AND subject_ref = ANY($1)`, refs); got != n {
		t.Errorf("%d receipts, want exactly one per person (%d)", got, n)
	}
	// The CRM takes each erasure as a signed delivery: a call cut off by
	// the crash is delivered again (same idempotency key), never more.
	per := map[string]int{}
	for _, d := range w.crm.Deliveries() {
		if d.Action == "erase" {
			per[d.IdempotencyKey]++
		}
	}
	if len(per) != n || slices.ContainsFunc(mapValues(per), func(k int) bool { return k > 2 }) {
		t.Errorf("CRM erase deliveries by key: %v, want one key per person, delivered at most twice", per)
	}
}

func mapValues(m map[string]int) []int {
	out := make([]int, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// One person whose erasure the application's database refuses (a trigger
// the shop's team wrote) fails alone: the rest of the page is erased, that
// person gets erasure.incomplete and no receipt, is not marked erased, and
// the team is told.
func TestOnePersonTheDatabaseRefusesFailsAloneNotThePage(t *testing.T) {
	const n = 20
	w := newBulkWorld(t, n)
	ctx := context.Background()
	stuck := w.customers[7]
	if _, err := w.App.Exec(ctx, fmt.Sprintf(`
		CREATE FUNCTION shop.keep_%[1]d() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.customer_id = %[1]d THEN RAISE EXCEPTION 'address under dispute' USING ERRCODE = 'check_violation'; END IF;
			RETURN OLD;
		END $$;
		CREATE TRIGGER keep BEFORE DELETE ON shop.addresses FOR EACH ROW EXECUTE FUNCTION shop.keep_%[1]d();`, stuck.ID)); err != nil {
		t.Fatal(err)
	}
	// And the CRM refuses every erasure (a 400): an operator task for each
	// person, which the team resolves through the API under the id its mail gives.
	w.crm.Inject(processorfake.Fault{Status: http.StatusBadRequest})
	policy := contract.InactivityPolicy{InactiveAfter: domain.Period{Months: 24}, WarnBefore: 30 * 24 * time.Hour}
	run, err := w.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: w.Config.TemporalTaskQueue}, contract.WorkflowInactiveSweep, contract.SweepInput{Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	var handedOver []string
	testenv.Eventually(t, 60*time.Second, "the CRM's refusals to become operator tasks", func() bool {
		resp, err := w.Raw.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", contract.WorkflowEraseAtProcessor)})
		if err != nil || len(resp.Executions) != n-1 {
			return false
		}
		handedOver = handedOver[:0]
		for _, e := range resp.Executions {
			handedOver = append(handedOver, strings.TrimSuffix(e.GetExecution().GetWorkflowId(), "-erasure-crm"))
		}
		return true
	})
	for _, personID := range handedOver {
		testenv.Eventually(t, 30*time.Second, "the task to be open", func() bool {
			code, _ := w.call(t, "POST", "/v1/bulk/"+personID+"/processors/crm/task", w.Operator, `{"action":"done","evidence":"deleted in the CRM by hand, ticket 88"}`)
			return code == http.StatusOK
		})
	}
	var totals contract.SweepTotals
	if err := run.Get(ctx, &totals); err != nil {
		t.Fatal(err)
	}
	w.crm.ClearFaults()
	if totals.Erased != n-1 || totals.ErasureFailed != 1 {
		t.Fatalf("sweep %+v: want %d erased and 1 failed", totals, n-1)
	}
	personID := handedOver[0]
	ref := personID[strings.LastIndex(personID, "-")+1:]
	if got := w.count(t, `SELECT count(*) FROM lethe.audit_log WHERE subject_ref = $1 AND action IN ('processor.task_opened', 'processor.task_resolved')`, ref); got != 2 {
		t.Errorf("%d processor task entries in the person's trail, want 2 (opened, resolved)", got)
	}
	var receipt string
	if err := w.Lethe.QueryRow(ctx, `SELECT detail::text FROM lethe.audit_log WHERE subject_ref = $1 AND action = 'erasure.receipt'`, ref).Scan(&receipt); err != nil || !strings.Contains(receipt, "crm: erased by our privacy team") {
		t.Errorf("the handed-over person's receipt %q (%v): want the CRM done by hand", receipt, err)
	}
	for _, c := range w.customers {
		left := w.count(t, `SELECT count(*) FROM shop.wishlists WHERE customer_id = $1`, c.ID)
		if c.ID == stuck.ID && left == 0 {
			t.Errorf("the refused person's rows went: their savepoint did not roll back")
		}
		if c.ID != stuck.ID && left != 0 {
			t.Errorf("customer %d: not erased because another person was refused", c.ID)
		}
	}
	ref = w.ref(stuck)
	if got := w.count(t, `SELECT count(*) FROM lethe.audit_log WHERE subject_ref = $1 AND action = 'erasure.incomplete'`, ref); got != 1 {
		t.Errorf("%d erasure.incomplete entries for the refused person, want 1", got)
	}
	if got := w.count(t, `SELECT count(*) FROM lethe.audit_log WHERE subject_ref = $1 AND action IN ('erasure.receipt', 'account.erased_inactive')`, ref); got != 0 {
		t.Errorf("the refused person has %d receipts or erased entries, want none", got)
	}
	if got := w.count(t, `SELECT count(*) FROM lethe.inactivity_notices WHERE subject_ref = $1 AND erased_at IS NOT NULL`, ref); got != 0 {
		t.Error("the refused person is marked erased: the next sweep would skip them")
	}
	if _, ok := w.stripe.Customer(w.stripeIDs[stuck.UserID()]); !ok {
		t.Fatal("stripe fake lost the customer")
	} else if got, _ := w.stripe.Customer(w.stripeIDs[stuck.UserID()]); got.Deleted {
		t.Error("the refused person was erased at Stripe while their rows stayed")
	}
	if _, err := w.SendGrid.WaitFor(w.Config.PrivacyTeamEmail, 1, 10*time.Second); err != nil {
		t.Errorf("the privacy team was not told: %v", err)
	}
}

// The page's verification searches the whole application for everyone at
// once and still finds each person's own traces: a table the map forgot
// holds one person's user id and another's address; those two get
// erasure.incomplete naming the table, no receipt, and stay due; the rest
// of the page is erased with a receipt each.
func TestAPageVerificationFindsTheTracesOfEachPersonTheMapMissed(t *testing.T) {
	const n = 20
	w := newBulkWorld(t, n)
	ctx := context.Background()
	byID, byEmail := w.customers[3], w.customers[11]
	for _, q := range []struct {
		sql string
		arg []any
	}{
		{`CREATE TABLE shop.support_tickets (id serial PRIMARY KEY, customer_id text, requester_email text, subject text)`, nil},
		{`INSERT INTO shop.support_tickets (customer_id, subject) VALUES ($1, 'late delivery')`, []any{byID.UserID()}},
		{`INSERT INTO shop.support_tickets (requester_email, subject) VALUES (upper($1), 'a question')`, []any{byEmail.Email}},
	} {
		if _, err := w.App.Exec(ctx, q.sql, q.arg...); err != nil {
			t.Fatal(err)
		}
	}
	totals := w.sweep(t)
	if totals.Erased != n-2 || totals.ErasureFailed != 2 {
		t.Fatalf("sweep %+v: want %d erased and the 2 with traces failed", totals, n-2)
	}
	for _, c := range w.customers {
		ref := w.ref(c)
		receipts := w.count(t, `SELECT count(*) FROM lethe.audit_log WHERE subject_ref = $1 AND action = 'erasure.receipt'`, ref)
		if c.ID != byID.ID && c.ID != byEmail.ID {
			if receipts != 1 {
				t.Errorf("customer %d: %d receipts, want 1", c.ID, receipts)
			}
			continue
		}
		var detail string
		if err := w.Lethe.QueryRow(ctx, `SELECT detail::text FROM lethe.audit_log WHERE subject_ref = $1 AND action = 'erasure.incomplete'`, ref).Scan(&detail); err != nil {
			t.Errorf("customer %d: no erasure.incomplete: %v", c.ID, err)
		} else if !strings.Contains(detail, "shop.support_tickets") {
			t.Errorf("customer %d: erasure.incomplete %s does not name the forgotten table", c.ID, detail)
		} else if strings.Contains(strings.ToLower(detail), strings.ToLower(c.Email)) {
			t.Errorf("customer %d: the audit entry carries the address", c.ID)
		}
		if receipts != 0 {
			t.Errorf("customer %d has a receipt while the forgotten table holds them", c.ID)
		}
		if got := w.count(t, `SELECT count(*) FROM lethe.inactivity_notices WHERE subject_ref = $1 AND erased_at IS NOT NULL`, ref); got != 0 {
			t.Errorf("customer %d is marked erased: the next sweep would skip them", c.ID)
		}
	}
}

// A person whose erasure one of Mailchimp's batches refuses is asked again
// on their own (an EraseAtProcessor), and erased; the rest of the page is
// not. A batch refused whole hands each of its people over the same way.
func TestWhatABatchCannotEraseIsErasedPersonByPerson(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fail     func(w *bulkWorld)
		handedOn int
	}{
		{"one person refused", func(w *bulkWorld) {
			stuck := w.customers[4]
			w.mailchimp.FailNextOperations(1, http.StatusInternalServerError, "/3.0/lists/news/members/"+processorfake.SubscriberHash(stuck.Email)+"/actions/")
		}, 1},
		{"the whole batch refused", func(w *bulkWorld) {
			w.mailchimp.Inject(processorfake.Fault{Status: http.StatusBadRequest, Times: 1, Method: "POST", PathPrefix: "/3.0/batches"})
		}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 12
			w := newBulkWorld(t, n)
			ctx := context.Background()
			tc.fail(w)
			if totals := w.sweep(t); totals.Erased != n || totals.ErasureFailed != 0 {
				t.Fatalf("sweep %+v, want all %d erased", totals, n)
			}
			w.erasedAtProcessors(t, w.customers)
			per, err := w.Raw.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
				Query: fmt.Sprintf("WorkflowType = '%s'", contract.WorkflowEraseAtProcessor)})
			if err != nil || per.GetCount() != int64(tc.handedOn) {
				t.Errorf("%d EraseAtProcessor workflows (%v), want %d: those the batch could not erase", per.GetCount(), err, tc.handedOn)
			}
			refs := make([]string, n)
			for i, c := range w.customers {
				refs[i] = w.ref(c)
			}
			if got := w.count(t, `SELECT count(*) FROM lethe.audit_log WHERE action = 'erasure.receipt' AND subject_ref = ANY($1) AND detail::text LIKE '%mailchimp%'`, refs); got != n {
				t.Errorf("%d receipts name Mailchimp, want %d", got, n)
			}
		})
	}
}

// The orders a page keeps under the tax hold go when the hold ends (here
// fifteen seconds after the sweep), each person's lines with their order,
// and each hold's end is audited; the holds that run on (the lines' own,
// six years from the erasure) keep waiting in the page's AfterErasure.
func TestABulkPagesHeldOrdersGoWhenTheirHoldEnds(t *testing.T) {
	const n = 3
	w := newBulkWorld(t, n)
	ctx := context.Background()
	ids := make([]int64, n)
	refs := make([]string, n)
	for i, c := range w.customers {
		ids[i], refs[i] = c.ID, w.ref(c)
	}
	// Each customer's recent order was placed six years ago less fifteen seconds.
	var recent []string
	rows, err := w.App.Query(ctx, `UPDATE shop.orders SET placed_at = now() - interval '72 months' + interval '15 seconds'
		WHERE customer_id = ANY($1) AND placed_at > now() - interval '1 year' RETURNING order_no::text`, ids)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var no string
		if err := rows.Scan(&no); err != nil {
			t.Fatal(err)
		}
		recent = append(recent, no)
	}
	if rows.Close(); rows.Err() != nil || len(recent) != n {
		t.Fatalf("%d recent orders (%v), want one each", len(recent), rows.Err())
	}
	if lines := w.count(t, `SELECT count(*) FROM shop.order_lines WHERE order_no::text = ANY($1)`, recent); lines == 0 {
		t.Fatal("the recent orders have no lines")
	}
	if totals := w.sweep(t); totals.Erased != n {
		t.Fatalf("sweep %+v, want %d erased", totals, n)
	}
	if held := w.count(t, `SELECT count(*) FROM shop.orders WHERE customer_id = ANY($1)`, ids); held != n {
		t.Fatalf("%d orders kept after the sweep, want the %d under the hold (the sweep took too long?)", held, n)
	}
	testenv.Eventually(t, 90*time.Second, "the held orders to go when their hold ends", func() bool {
		return w.count(t, `SELECT count(*) FROM shop.orders WHERE customer_id = ANY($1)`, ids) == 0 &&
			w.count(t, `SELECT count(*) FROM lethe.audit_log WHERE action = 'erasure.hold_ended' AND subject_ref = ANY($1)`, refs) == n
	})
	if lines := w.count(t, `SELECT count(*) FROM shop.order_lines WHERE order_no::text = ANY($1)`, recent); lines != 0 {
		t.Errorf("%d lines of the released orders left", lines)
	}
	resp, err := w.Raw.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", contract.WorkflowAfterErasure)})
	if err != nil || len(resp.Executions) != 1 {
		t.Fatalf("running %s: %v (%v), want the page's", contract.WorkflowAfterErasure, resp.GetExecutions(), err)
	}
	var after contract.AfterErasureProgress
	testenv.Eventually(t, 30*time.Second, "the page's AfterErasure to count the released orders", func() bool {
		v, err := w.Temporal.QueryWorkflow(ctx, resp.Executions[0].GetExecution().GetWorkflowId(), "", contract.QueryProgress)
		return err == nil && v.Get(&after) == nil && after.HeldInBulk != nil && after.HeldInBulk.Left == n
	})
	if h := after.HeldInBulk; h.Deleted != n || !h.Next.After(time.Now().AddDate(5, 0, 0)) {
		t.Errorf("held in bulk %+v: want the %d orders deleted, the lines' holds waiting six years", h, n)
	}
	keepHistoryOfType(t, w.Stack, contract.WorkflowAfterErasure, "after-erasure-bulk-page-hold-ended")
}
