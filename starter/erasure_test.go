package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/processors"
	"github.com/lethe-privacy/lethe/internal/testenv"
	"github.com/lethe-privacy/lethe/internal/testenv/processorfake"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// erasureWorld is the demo application with every kind of system an
// erasure reaches: its processors are fakes that fail the way real ones do,
// and its file bucket keeps versions.
type erasureWorld struct {
	*e2e
	person, other demo.Account
	stripe        *processorfake.Stripe
	mailchimp     *processorfake.Mailchimp
	crm           *processorfake.Webhook
	customer      string
}

func newErasureWorld(t *testing.T) *erasureWorld {
	t.Helper()
	return newErasureWorldWith(t, nil)
}

// newErasureWorldWith starts the world with settings (see startE2E).
func newErasureWorldWith(t *testing.T, env map[string]string) *erasureWorld {
	t.Helper()
	w := &erasureWorld{person: demo.Accounts(2)[0], other: demo.Accounts(2)[1]}
	w.stripe, w.mailchimp, w.crm = processorfake.NewStripe(t), processorfake.NewMailchimp(t), processorfake.NewWebhook(t)
	w.customer = w.stripe.AddCustomer(processorfake.StripeCustomer{Email: w.person.Email, Name: w.person.Name})
	w.stripe.AddCustomer(processorfake.StripeCustomer{Email: w.other.Email, Name: w.other.Name})
	w.mailchimp.AddList("news")
	w.mailchimp.AddMember("news", processorfake.MailchimpMember{Email: w.person.Email, Status: "subscribed"})
	w.mailchimp.AddMember("news", processorfake.MailchimpMember{Email: w.other.Email, Status: "subscribed"})
	w.crm.AddSubject(processorfake.WebhookSubject{UserID: w.person.ID, Email: w.person.Email})
	t.Setenv("LETHE_STRIPE_KEY", w.stripe.APIKey)
	t.Setenv("LETHE_MAILCHIMP_KEY", w.mailchimp.APIKey)
	t.Setenv("LETHE_CRM_SECRET", string(w.crm.Secret))
	w.e2e = newE2EWith(t, 2, env, func(m *datamap.Map) {
		m.Processors = []processors.Config{
			{Name: "stripe", Kind: "stripe", BaseURL: w.stripe.URL(), CredentialEnv: "LETHE_STRIPE_KEY", IDs: map[string]string{"stripe_customer_id": "stripe_customer_id"}},
			{Name: "mailchimp", Kind: "mailchimp", BaseURL: w.mailchimp.URL(), CredentialEnv: "LETHE_MAILCHIMP_KEY", Options: map[string]string{"list_id": "news"}},
			{Name: "crm", Kind: "webhook", BaseURL: w.crm.URL(), CredentialEnv: "LETHE_CRM_SECRET"},
			{Name: "paypal", Kind: "manual", Options: map[string]string{"preset": "paypal"}},
		}
	})
	ctx := context.Background()
	// The application knows the person's Stripe customer id: Stripe is asked about that customer.
	if _, err := w.App.Exec(ctx, "UPDATE demo.accounts SET stripe_customer_id = $2 WHERE id = $1", w.person.ID, w.customer); err != nil {
		t.Fatal(err)
	}
	// The files bucket keeps versions: an overwritten file has two, a
	// deleted one leaves a delete marker; all of them are the person's.
	if _, err := w.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(demo.Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	prefix := "projects/" + w.person.ID + "/"
	page, err := w.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(demo.Bucket), Prefix: aws.String(prefix)})
	if err != nil || len(page.Contents) < 2 {
		t.Fatalf("seed: %v, %d files", err, len(page.Contents))
	}
	if _, err := w.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(demo.Bucket), Key: page.Contents[0].Key, Body: bytes.NewReader([]byte("second version"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(demo.Bucket), Key: page.Contents[1].Key}); err != nil {
		t.Fatal(err)
	}
	// A backup taken before the erasure: the backups watch waits for it to rotate out.
	if _, err := w.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(demo.BackupBucket), Key: aws.String("postgres/nightly-1.dump"), Body: bytes.NewReader([]byte("dump"))}); err != nil {
		t.Fatal(err)
	}
	return w
}

// resolveTask waits for a processor's operator task to show in the
// erasure's progress (GET /v1/requests/{id}/erasure), then resolves it
// through the API.
func (w *erasureWorld) resolveTask(t *testing.T, id, processor, body string) {
	t.Helper()
	var progress map[string]any
	testenv.Eventually(t, 60*time.Second, "the "+processor+" task to open", func() bool {
		_, progress = w.call(t, "GET", "/v1/requests/"+id+"/erasure", w.Operator, "")
		procs, _ := progress["processors"].(map[string]any)
		view, _ := procs[processor].(map[string]any)
		return view != nil && view["status"] == "needs_operator" && view["task"] != nil
	})
	// The privacy team's list of open tasks in the Temporal UI shows it too.
	testenv.Eventually(t, 30*time.Second, "the "+processor+" task in the UI's list", func() bool {
		resp, err := w.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("LetheTaskDueAt IS NOT NULL AND WorkflowId = '%s'", contract.ProcessorErasureWorkflowID(id, processor))})
		return err == nil && len(resp.Executions) == 1
	})
	if code, out := w.call(t, "POST", "/v1/requests/"+id+"/processors/"+processor+"/task", w.Operator, body); code != http.StatusOK {
		t.Fatalf("resolve the %s task: %d %v", processor, code, out)
	}
}

func (w *erasureWorld) submitErasure(t *testing.T, extra string) string {
	t.Helper()
	code, body := w.call(t, "POST", "/v1/requests", w.Backend,
		fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true%s}`, w.person.ID, w.person.Email, extra))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, body)
	}
	return body["id"].(string)
}

func TestErasureReachesEverySystemAndLeavesAReceipt(t *testing.T) {
	w := newErasureWorld(t)
	ctx := context.Background()
	before := func(table string) int {
		return w.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE account_id = $1", table), w.other.ID)
	}
	otherComments := w.count(t, "SELECT count(*) FROM demo.project_comments c JOIN demo.projects p ON p.id = c.project_id WHERE p.account_id = $1", w.other.ID)
	personComments := w.count(t, "SELECT count(*) FROM demo.project_comments c JOIN demo.projects p ON p.id = c.project_id WHERE p.account_id = $1", w.person.ID)
	personReviews := w.count(t, "SELECT count(*) FROM demo.reviews WHERE account_id = $1", w.person.ID)
	otherProjects := before("demo.projects")
	if personComments == 0 || personReviews == 0 || otherComments == 0 {
		t.Fatalf("seed: %d comments, %d reviews", personComments, personReviews)
	}

	// Stripe fails twice with 503, Mailchimp asks to wait with 429 +
	// Retry-After, the CRM refuses with 400 (an operator task), PayPal has
	// no API (an operator task from the start).
	w.stripe.Inject(processorfake.Fault{Status: 503, Times: 2, Method: "DELETE"})
	w.mailchimp.Inject(processorfake.Fault{Status: 429, Times: 1, RetryAfter: 2 * time.Second, Method: "POST"})
	w.crm.Inject(processorfake.Fault{Status: 400, Times: 1})

	id := w.submitErasure(t, "")
	w.resolveTask(t, id, "crm", `{"action":"retry","reason":"the CRM fixed its endpoint"}`)
	w.resolveTask(t, id, "paypal", `{"action":"done","evidence":"subject referred to PayPal's privacy hub, ticket PP-1234"}`)
	done := w.waitStatus(t, id, domain.StatusCompleted)

	// Nothing of the person is left except the hold.
	m, _ := demo.DataMap()
	for _, tbl := range m.Tables {
		if tbl.Action != datamap.ActionDelete || tbl.Key == "" {
			continue
		}
		if n := w.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", tbl.Name, tbl.Key), w.person.ID); n != 0 {
			t.Errorf("%s: %d rows of the erased person left", tbl.Name, n)
		}
	}
	if n := w.count(t, "SELECT count(*) FROM demo.project_comments c JOIN demo.projects p ON p.id = c.project_id WHERE p.account_id = $1", w.other.ID); n != otherComments {
		t.Errorf("another person's comments: %d, want %d", n, otherComments)
	}
	if n := before("demo.projects"); n != otherProjects {
		t.Errorf("another person's projects: %d, want %d", n, otherProjects)
	}
	if n := w.count(t, "SELECT count(*) FROM demo.reviews WHERE account_id = $1", w.person.ID); n != 0 {
		t.Errorf("%d reviews still linked to the person", n)
	}
	if n := w.count(t, "SELECT count(*) FROM demo.reviews WHERE account_id IS NULL AND author_name = 'Former customer' AND author_email IS NULL"); n != personReviews {
		t.Errorf("anonymized reviews: %d, want %d", n, personReviews)
	}
	if n := w.count(t, "SELECT count(*) FROM demo.purchases WHERE account_id = $1", w.person.ID); n != 1 {
		t.Errorf("purchases are under a legal hold and must stay, got %d", n)
	}
	if n := w.count(t, "SELECT count(*) FROM demo.accounts WHERE id = $1 AND email LIKE 'erased+%' AND status = 'erased'", w.person.ID); n != 1 {
		t.Errorf("the account row is not anonymized")
	}
	for _, prefix := range []string{"projects/", "id-documents/"} {
		if n, err := objectstore.CountPrefix(ctx, w.S3, demo.Bucket, prefix+w.person.ID+"/"); err != nil || n.Total() != 0 {
			t.Errorf("%s: %+v left, every version and delete marker included (%v)", prefix, n, err)
		}
		if n, _ := objectstore.CountPrefix(ctx, w.S3, demo.Bucket, prefix+w.other.ID+"/"); n.Total() == 0 {
			t.Errorf("%s: another person's objects were erased too", prefix)
		}
	}

	// Each processor was called exactly as required.
	if c, ok := w.stripe.Customer(w.customer); ok && !c.Deleted {
		t.Errorf("stripe: the customer is not deleted")
	}
	if calls := w.stripe.CallsTo("DELETE", "/v1/customers/"+w.customer); len(calls) != 3 {
		t.Errorf("stripe: %d DELETE calls, want 3 (two 503s, then the delete)", len(calls))
	}
	for _, c := range w.stripe.CallsTo("GET", "/v1/customers") {
		if c.Query.Get("email") != "" || strings.Contains(c.Path, "search") {
			t.Errorf("stripe: looked the person up by email (%s) though the application knows their customer id", c.Path)
		}
	}
	if n := w.count(t, "SELECT count(*) FROM demo.accounts WHERE id = $1 AND stripe_customer_id IS NOT NULL", w.person.ID); n != 0 {
		t.Errorf("the anonymized account row still names the Stripe customer")
	}
	if !w.mailchimp.Forgotten("news", w.person.Email) {
		t.Errorf("mailchimp: the member is not permanently deleted")
	}
	if m, ok := w.mailchimp.Member("news", w.other.Email); !ok || m.Status != "subscribed" {
		t.Errorf("mailchimp: another member was touched")
	}
	deletes := w.mailchimp.CallsTo("POST", "/3.0/lists/news/members/")
	if len(deletes) != 2 {
		t.Errorf("mailchimp: %d delete-permanent calls, want 2 (a 429, then the delete)", len(deletes))
	}
	if len(w.crm.Deliveries()) == 0 {
		t.Errorf("crm: no erasure delivered after the operator's retry")
	}

	// The receipt: in the API, the audit trail and the person's mail.
	outcome, _ := json.Marshal(done["outcome"])
	t.Logf("receipt: %s", outcome)
	for _, want := range []string{
		"Deleted 6 rows from demo.project_files", fmt.Sprintf("Deleted %d rows from demo.project_comments", personComments),
		fmt.Sprintf("Anonymized %d row", personReviews), "Kept 1 row in demo.purchases until", "tax law",
		"Deleted 6 files from lethe-app-data/projects/{user_id}/", "stripe: erasure confirmed", "mailchimp: erasure confirmed",
		"crm: erasure confirmed", "paypal: erased by our privacy team", "Backups in postgres-nightly rotate out by",
	} {
		if !strings.Contains(string(outcome), want) {
			t.Errorf("receipt %s lacks %q", outcome, want)
		}
	}
	var receipts int
	if err := w.Lethe.QueryRow(ctx, "SELECT count(*) FROM lethe.audit_log WHERE request_id = $1 AND action = 'erasure.receipt'", id).Scan(&receipts); err != nil || receipts != 1 {
		n := receipts
		t.Errorf("%d receipts in the audit trail", n)
	}
	mails, err := w.SendGrid.WaitFor(w.person.Email, 2, 10*time.Second)
	if err != nil || !strings.Contains(mails[len(mails)-1].Text, "Asked stripe to erase your data: confirmed") {
		t.Errorf("the completion mail does not carry the receipt (%v)", err)
	}

	// What outlives the request runs on, in one workflow: the follow-ups at
	// processors, the backups watch, the hold's end. Stripe and Mailchimp
	// erased at the first call (after retries): they have no workflow of
	// their own, and it checks both; crm, erased through its own workflow
	// (an operator's retry), has its own follow-up.
	for _, wf := range []string{contract.AfterErasureWorkflowID(id), contract.ProcessorFollowUpWorkflowID(id, "crm")} {
		d, err := w.Temporal.DescribeWorkflowExecution(ctx, wf, "")
		if err != nil || d.WorkflowExecutionInfo.Status != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Errorf("%s: want running, got %v", wf, err)
		}
	}
	for _, wf := range []string{contract.ProcessorFollowUpsWorkflowID(id), id + "-backups", id + "-hold-demo.purchases"} {
		if _, err := w.Temporal.DescribeWorkflowExecution(ctx, wf, ""); err == nil {
			t.Errorf("%s: started beside the request's AfterErasure", wf)
		}
	}
	resp, err := w.Temporal.QueryWorkflow(ctx, contract.AfterErasureWorkflowID(id), "", contract.QueryProgress)
	if err != nil {
		t.Fatal(err)
	}
	var after contract.AfterErasureProgress
	if err := resp.Get(&after); err != nil {
		t.Fatal(err)
	}
	var checks []string
	for _, c := range after.FollowUps {
		checks = append(checks, c.Processor+":"+c.Status)
	}
	slices.Sort(checks)
	if !slices.Equal(checks, []string{"mailchimp:waiting", "stripe:waiting"}) || after.Backups == nil || after.Backups.Status != contract.BackupsWaiting ||
		len(after.Backups.Locations) != 1 || len(after.Holds) != 1 || after.Holds[0].Table != "demo.purchases" || !after.Holds[0].Until.After(time.Now()) {
		t.Errorf("what outlives the request: %+v", after)
	}
	for _, wf := range []string{contract.ProcessorErasureWorkflowID(id, "stripe"), contract.ProcessorErasureWorkflowID(id, "mailchimp")} {
		if _, err := w.Temporal.DescribeWorkflowExecution(ctx, wf, ""); err == nil {
			t.Errorf("%s: a processor that erased at the first call got a workflow of its own", wf)
		}
	}
	for _, wf := range []string{id, id + "-erasure-crm", contract.AfterErasureWorkflowID(id)} {
		assertHistoryClean(t, w.Stack, wf, w.person.ID, w.person.Email, w.person.Name)
	}
	for name, wf := range map[string]string{
		// Issue 16 (lean-erasure): processors asked by the erasure, a
		// workflow only for those that did not settle it at once, given the
		// first answer; and local-writes (audit entries and statuses as local
		// activities). The histories from before replay beside these
		// (request-erasure-completed, erasure-completed-with-hold,
		// processor-erasure-retried-503, processor-erasure-task-retried,
		// processor-erasure-task-done-by-hand).
		// Then lean-request: the request runs the erasure itself
		// (request-erasure-completed-local-writes and
		// erasure-completed-with-hold-lean are the histories from before).
		// Then lean-request version 2: one AfterErasure for what outlives
		// the request (request-erasure-completed-in-request,
		// processor-followups-waiting, backups-waiting-for-the-first-check
		// and hold-sleeping are the histories from before).
		"request-erasure-completed-with-after-erasure":           id,
		"after-erasure-waiting":                                  contract.AfterErasureWorkflowID(id),
		"processor-erasure-task-retried-given-first-answer":      contract.ProcessorErasureWorkflowID(id, "crm"),
		"processor-erasure-task-done-by-hand-given-first-answer": contract.ProcessorErasureWorkflowID(id, "paypal"),
		"processor-followup-waiting":                             contract.ProcessorFollowUpWorkflowID(id, "crm"),
	} {
		keepHistory(t, w.Stack, wf, name)
	}
}

func TestAWorkerStoppedInTheMiddleOfAnErasureLeavesNoStepDoneTwice(t *testing.T) {
	w := newErasureWorld(t)
	ctx := context.Background()
	// Stripe answers slowly: the worker stops while the erasure is under way.
	w.stripe.SetLatency(2 * time.Second)
	id := w.submitErasure(t, "")
	testenv.Eventually(t, 30*time.Second, "the erasure to reach Stripe", func() bool { return len(w.stripe.Calls()) > 0 })
	w.restartWorker(t)
	w.resolveTask(t, id, "paypal", `{"action":"done","evidence":"subject referred to PayPal, ticket PP-9"}`)
	done := w.waitStatus(t, id, domain.StatusCompleted)

	// Every processor erased once; the database and S3 once, with real counts.
	if n := len(w.stripe.CallsTo("DELETE", "/v1/customers/")); n != 1 {
		t.Errorf("stripe: %d deletes, want 1", n)
	}
	if n := len(w.mailchimp.CallsTo("POST", "/3.0/lists/news/members/")); n != 1 {
		t.Errorf("mailchimp: %d delete-permanent calls, want 1", n)
	}
	if n := len(w.crm.Deliveries()); n != 1 {
		t.Errorf("crm: %d erasure deliveries, want 1", n)
	}
	outcome, _ := json.Marshal(done["outcome"])
	for _, want := range []string{"Deleted 6 rows from demo.project_files", "Deleted 6 files from lethe-app-data/projects/{user_id}/", "stripe: erasure confirmed"} {
		if !strings.Contains(string(outcome), want) {
			t.Errorf("receipt %s lacks %q", outcome, want)
		}
	}
	// The request's last step (its audit entry) may land just after GET says completed.
	var receipts, completions int
	testenv.Eventually(t, 10*time.Second, "the completion in the audit trail", func() bool {
		err := w.Lethe.QueryRow(ctx, "SELECT count(*) FILTER (WHERE action = 'erasure.receipt'), count(*) FILTER (WHERE action = 'request.completed') FROM lethe.audit_log WHERE request_id = $1", id).Scan(&receipts, &completions)
		return err == nil && completions > 0
	})
	time.Sleep(200 * time.Millisecond) // a second entry would land now
	if err := w.Lethe.QueryRow(ctx, "SELECT count(*) FILTER (WHERE action = 'erasure.receipt'), count(*) FILTER (WHERE action = 'request.completed') FROM lethe.audit_log WHERE request_id = $1", id).Scan(&receipts, &completions); err != nil {
		t.Fatal(err)
	}
	if receipts != 1 || completions != 1 {
		t.Errorf("audit: %d receipts, %d completions; want 1 each", receipts, completions)
	}
	if n := len(w.SendGrid.To(w.person.Email)); n != 2 {
		t.Errorf("the person got %d mails, want 2 (received, completed)", n)
	}
	if n := w.count(t, "SELECT count(*) FROM demo.projects WHERE account_id = $1", w.person.ID); n != 0 {
		t.Errorf("%d projects left", n)
	}
}

func TestAChildsDataIsErasedOnAnOperatorsExpeditedRequest(t *testing.T) {
	e := newE2E(t, 2, nil)
	child := demo.Accounts(1)[0]
	body := fmt.Sprintf(`{"type":"erasure","expedited":"child","subject":{"user_id":%q}}`, child.ID)
	// Only the privacy team may expedite; only an erasure can be.
	if code, out := e.call(t, "POST", "/v1/requests", e.Backend, body); code != http.StatusForbidden {
		t.Fatalf("backend key: %d %v, want 403", code, out)
	}
	if code, out := e.call(t, "POST", "/v1/requests", e.Operator, strings.Replace(body, `"erasure"`, `"access"`, 1)); code != http.StatusUnprocessableEntity {
		t.Fatalf("expedited access: %d %v, want 422", code, out)
	}
	code, out := e.call(t, "POST", "/v1/requests", e.Operator, body)
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, out)
	}
	due, err := time.Parse(time.RFC3339Nano, out["due_at"].(string))
	if err != nil || due.After(time.Now().Add(3*24*time.Hour+time.Minute)) {
		t.Fatalf("due %v (%v): want the expedited deadline of 3 days", due, err)
	}
	e.waitStatus(t, out["id"].(string), domain.StatusCompleted)
	if n := e.count(t, "SELECT count(*) FROM demo.projects WHERE account_id = $1", child.ID); n != 0 {
		t.Fatalf("%d projects of the child left", n)
	}
}
