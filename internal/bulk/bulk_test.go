package bulk_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/bulk"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/sendgridfake"
)

const apiKey = "SG.bulk-test"

var notice = bulk.Message{
	Subject:  "Security incident",
	Text:     "Dear -name-, we are writing to tell you about an incident.",
	HTML:     "<p>Dear -name-, we are writing to tell you about an incident.</p>",
	Template: "breach_notice",
}

type env struct {
	lethe, app *pgxpool.Pool
	dm         *datamap.Map
	fake       *sendgridfake.Server
	sender     *mail.SendGrid
}

// setup gives a migrated Lethe database, the demo application database with
// 50 accounts, the demo data map and a SendGrid sender on the fake.
func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	lethe, _ := pgtest.NewPool(t)
	if err := store.Migrate(ctx, lethe); err != nil {
		t.Fatal(err)
	}
	app, _ := pgtest.NewPool(t)
	if err := demo.CreateSchema(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, app, nil, demo.SeedOptions{Accounts: 50, SkipObjectUpload: true}); err != nil {
		t.Fatal(err)
	}
	dm, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	fake := sendgridfake.New(t, apiKey)
	sender, err := mail.NewSendGrid(mail.SendGridConfig{APIKey: apiKey, BaseURL: fake.URL(), FromEmail: "privacy@lethe.test", FromName: "Privacy team"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{lethe: lethe, app: app, dm: dm, fake: fake, sender: sender}
}

// moreAccounts adds n accounts x-00001… with addresses x-00001@example.com…
// to the demo application (accounts only, no profiles).
func (e *env) moreAccounts(t *testing.T, n int) {
	t.Helper()
	_, err := e.app.Exec(context.Background(), `
		INSERT INTO demo.accounts (id, email)
		SELECT format('x-%s', lpad(i::text, 5, '0')), format('x-%s@example.com', lpad(i::text, 5, '0'))
		  FROM generate_series(1, $1) AS i`, n)
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) counts(t *testing.T, campaign string) bulk.CampaignCounts {
	t.Helper()
	c, err := bulk.Counts(context.Background(), e.lethe, campaign)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sendAll runs batches 1, 2, … until one says Done.
func (e *env) sendAll(t *testing.T, campaign string) (batches int) {
	t.Helper()
	for n := 1; ; n++ {
		res, err := bulk.SendBatch(context.Background(), e.lethe, e.app, e.dm, e.sender, campaign, notice, n)
		if err != nil {
			t.Fatalf("batch %d: %v", n, err)
		}
		if res.Claimed > bulk.BatchSize {
			t.Fatalf("batch %d claimed %d", n, res.Claimed)
		}
		if res.Done {
			return n
		}
		if n > 10_000 {
			t.Fatal("batches never done")
		}
	}
}

func TestAddFromQueryAndLinesAddEveryoneOnce(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	const campaign = "incident-2031"

	sel := `SELECT id FROM demo.accounts WHERE id <= $1;`
	added, err := bulk.AddFromQuery(ctx, e.lethe, e.app, campaign, sel, []any{"u-1030"})
	if err != nil || added != 30 {
		t.Fatalf("first add: %d, %v", added, err)
	}
	// The same people again, joined so the selector returns each id twice.
	sel2 := `SELECT a.id FROM demo.accounts a JOIN demo.marketing_consents c ON c.account_id = a.id WHERE a.id <= 'u-1035'`
	added, err = bulk.AddFromQuery(ctx, e.lethe, e.app, campaign, sel2, nil)
	if err != nil || added != 5 {
		t.Fatalf("second add: %d, %v", added, err)
	}

	lines := "u-1001\n\n   \r\n  u-1036 \r\nu-1036\nu-1037\t\nnobody-here\n"
	added, err = bulk.AddFromLines(ctx, e.lethe, campaign, strings.NewReader(lines))
	if err != nil || added != 3 {
		t.Fatalf("lines: %d, %v", added, err)
	}
	if c := e.counts(t, campaign); c != (bulk.CampaignCounts{Found: 38, Pending: 38}) {
		t.Fatalf("counts %+v", c)
	}
	// Another campaign keeps its own targets.
	if added, err := bulk.AddFromLines(ctx, e.lethe, "policy-7", strings.NewReader("u-1001\n")); err != nil || added != 1 {
		t.Fatalf("other campaign: %d, %v", added, err)
	}
	if c := e.counts(t, campaign); c.Found != 38 {
		t.Fatalf("counts %+v", c)
	}

	// Adding across chunk boundaries: 25,000 lines, 20,000 distinct ids.
	var b strings.Builder
	for i := range 25_000 {
		fmt.Fprintf(&b, "c-%05d\n", i%20_000)
	}
	added, err = bulk.AddFromLines(ctx, e.lethe, "chunks", strings.NewReader(b.String()))
	if err != nil || added != 20_000 {
		t.Fatalf("chunked: %d, %v", added, err)
	}
	added, err = bulk.AddFromLines(ctx, e.lethe, "chunks", strings.NewReader(b.String()))
	if err != nil || added != 0 {
		t.Fatalf("chunked again: %d, %v", added, err)
	}
	var first, last string
	if err := e.lethe.QueryRow(ctx, `SELECT (array_agg(user_id ORDER BY seq))[1], (array_agg(user_id ORDER BY seq))[20000] FROM lethe.notice_targets WHERE campaign = 'chunks'`).Scan(&first, &last); err != nil {
		t.Fatal(err)
	}
	if first != "c-00000" || last != "c-19999" {
		t.Fatalf("seq order: first %s, last %s", first, last)
	}
}

func TestAddFromLinesRefusesBadIDsByLineNumber(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	secret := "secret-" + strings.Repeat("x", 130)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"too long", "u-1001\n\n" + secret + "\n", "line 3: user id longer than 128 characters"},
		{"control", "u-1001\nsecret-\x01id\n", "line 2: user id contains a control character"},
		{"invalid utf-8", "secret-\xff\n", "line 1: user id is not valid UTF-8"},
		{"huge line", "u-1001\n" + strings.Repeat("s", 100_000) + "\n", "line 2: user id longer than 128 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bulk.AddFromLines(ctx, e.lethe, "bad-"+tc.name, strings.NewReader(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "sss") {
				t.Fatalf("error quotes the id: %v", err)
			}
		})
	}
	// 128 characters is fine.
	if added, err := bulk.AddFromLines(ctx, e.lethe, "ok", strings.NewReader(strings.Repeat("é", 128))); err != nil || added != 1 {
		t.Fatalf("128 characters: %d, %v", added, err)
	}
}

func TestSendAllBatchesEveryoneOnce(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.moreAccounts(t, 2450)
	const campaign = "incident-42"
	added, err := bulk.AddFromQuery(ctx, e.lethe, e.app, campaign, `SELECT id FROM demo.accounts`, nil)
	if err != nil || added != 2500 {
		t.Fatalf("add: %d, %v", added, err)
	}

	batches := e.sendAll(t, campaign)
	if batches != 3 {
		t.Fatalf("%d batches", batches)
	}
	if got, want := e.fake.Calls(), (2500+999)/1000; got != want {
		t.Fatalf("%d API calls, want %d", got, want)
	}
	if got := e.fake.Recipients(); got != 2500 {
		t.Fatalf("%d deliveries", got)
	}
	rows, err := e.app.Query(ctx, `SELECT email FROM demo.accounts`)
	if err != nil {
		t.Fatal(err)
	}
	var emails []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		emails = append(emails, s)
	}
	if len(emails) != 2500 {
		t.Fatalf("%d accounts", len(emails))
	}
	for _, em := range emails {
		if n := e.fake.Count(em); n != 1 {
			t.Fatalf("an address got %d messages", n)
		}
	}
	d := e.fake.To(demo.Accounts(1)[0].Email)
	if len(d) != 1 || d[0].Subject != notice.Subject ||
		d[0].Text != "Dear customer, we are writing to tell you about an incident." ||
		d[0].CustomArgs["template"] != "breach_notice" || d[0].CustomArgs["idempotency_key"] == "" {
		t.Fatalf("delivery %+v", d)
	}
	if c := e.counts(t, campaign); c != (bulk.CampaignCounts{Found: 2500, Sent: 2500}) {
		t.Fatalf("counts %+v", c)
	}

	// Running any batch again, or the next one, sends nothing.
	for _, n := range []int{1, 3, 4} {
		res, err := bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, campaign, notice, n)
		if err != nil || res != (bulk.BatchResult{Done: true}) {
			t.Fatalf("batch %d again: %+v, %v", n, res, err)
		}
	}
	if e.fake.Calls() != 3 {
		t.Fatalf("%d API calls", e.fake.Calls())
	}

	if err := bulk.Purge(ctx, e.lethe, campaign); err != nil {
		t.Fatal(err)
	}
	if c := e.counts(t, campaign); c != (bulk.CampaignCounts{}) {
		t.Fatalf("after purge %+v", c)
	}
}

func TestRetryAfter503SendsEachPersonOnce(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	const campaign = "policy-2026-01"
	if _, err := bulk.AddFromQuery(ctx, e.lethe, e.app, campaign, `SELECT id FROM demo.accounts`, nil); err != nil {
		t.Fatal(err)
	}

	e.fake.FailNext(1, http.StatusServiceUnavailable, 0)
	res, err := bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, campaign, notice, 1)
	if err == nil || mail.IsPermanent(err) {
		t.Fatalf("want a retryable error, got %v", err)
	}
	if res.Claimed != 50 || res.Sent != 0 {
		t.Fatalf("failed batch: %+v", res)
	}
	if c := e.counts(t, campaign); c != (bulk.CampaignCounts{Found: 50, Pending: 50}) {
		t.Fatalf("counts after 503 %+v", c)
	}
	// Another batch number never takes batch 1's people.
	res, err = bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, campaign, notice, 2)
	if err != nil || res != (bulk.BatchResult{Done: true}) {
		t.Fatalf("batch 2: %+v, %v", res, err)
	}
	// The retry sends exactly them.
	res, err = bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, campaign, notice, 1)
	if err != nil || res != (bulk.BatchResult{Claimed: 50, Sent: 50, Done: true}) {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	for _, a := range demo.Accounts(50) {
		if n := e.fake.Count(a.Email); n != 1 {
			t.Fatalf("an address got %d messages", n)
		}
	}
	if e.fake.Calls() != 2 || e.fake.Recipients() != 50 {
		t.Fatalf("%d calls, %d deliveries", e.fake.Calls(), e.fake.Recipients())
	}
	if c := e.counts(t, campaign); c != (bulk.CampaignCounts{Found: 50, Sent: 50}) {
		t.Fatalf("counts %+v", c)
	}
}

func TestPermanentFailureRecordsFailed(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	const campaign = "incident-perm"
	if _, err := bulk.AddFromLines(ctx, e.lethe, campaign, strings.NewReader("u-1001\nu-1002\nghost\n")); err != nil {
		t.Fatal(err)
	}
	e.fake.FailNext(1, http.StatusBadRequest, 0)
	res, err := bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, campaign, notice, 1)
	var se *mail.SendError
	if !mail.IsPermanent(err) || !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Fatalf("want a permanent error, got %v", err)
	}
	if res.Claimed != 3 || res.NoEmail != 1 || res.Sent != 0 {
		t.Fatalf("result %+v", res)
	}
	if c := e.counts(t, campaign); c != (bulk.CampaignCounts{Found: 3, NoEmail: 1, Failed: 2}) {
		t.Fatalf("counts %+v", c)
	}
	// Failed people are not sent to by a retry.
	res, err = bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, campaign, notice, 1)
	if err != nil || res != (bulk.BatchResult{Done: true}) {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	if e.fake.Calls() != 1 || e.fake.Recipients() != 0 {
		t.Fatalf("%d calls, %d deliveries", e.fake.Calls(), e.fake.Recipients())
	}
}

func TestPeopleWithoutEmailAreCountedNoEmail(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	accts := demo.Accounts(5)
	// u-1002 has an empty address, u-1003 one SendGrid would refuse, and
	// u-1004 shares u-1005's address (in other case): one message for both.
	for _, q := range []string{
		`UPDATE demo.accounts SET email = '' WHERE id = 'u-1002'`,
		`UPDATE demo.accounts SET email = 'not an address' WHERE id = 'u-1003'`,
		`UPDATE demo.accounts SET email = upper(` + quote(accts[4].Email) + `) WHERE id = 'u-1004'`,
	} {
		if _, err := e.app.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	const campaign = "incident-noemail"
	lines := "u-1001\nu-1002\nu-1003\nu-1004\nu-1005\nerased-long-ago\n"
	if _, err := bulk.AddFromLines(ctx, e.lethe, campaign, strings.NewReader(lines)); err != nil {
		t.Fatal(err)
	}
	res, err := bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, campaign, notice, 1)
	if err != nil || res != (bulk.BatchResult{Claimed: 6, Sent: 3, NoEmail: 3, Done: true}) {
		t.Fatalf("batch: %+v, %v", res, err)
	}
	if c := e.counts(t, campaign); c != (bulk.CampaignCounts{Found: 6, Sent: 3, NoEmail: 3}) {
		t.Fatalf("counts %+v", c)
	}
	if e.fake.Count(accts[0].Email) != 1 || e.fake.Count(accts[4].Email) != 1 || e.fake.Recipients() != 2 {
		t.Fatalf("deliveries: %d", e.fake.Recipients())
	}

	// Nobody with an address: no API call at all.
	if _, err := bulk.AddFromLines(ctx, e.lethe, "only-ghosts", strings.NewReader("ghost-1\nghost-2\n")); err != nil {
		t.Fatal(err)
	}
	res, err = bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, "only-ghosts", notice, 1)
	if err != nil || res != (bulk.BatchResult{Claimed: 2, NoEmail: 2, Done: true}) {
		t.Fatalf("ghosts: %+v, %v", res, err)
	}
	if e.fake.Calls() != 1 {
		t.Fatalf("%d calls", e.fake.Calls())
	}
}

func TestConcurrentBatchesNeverShareAPerson(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.moreAccounts(t, 4950)
	const campaign = "incident-concurrent"
	if _, err := bulk.AddFromQuery(ctx, e.lethe, e.app, campaign, `SELECT id FROM demo.accounts`, nil); err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				n := int(next.Add(1))
				res, err := bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, campaign, notice, n)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Done || n > 100 {
					return
				}
			}
		})
	}
	wg.Wait()
	if c := e.counts(t, campaign); c != (bulk.CampaignCounts{Found: 5000, Sent: 5000}) {
		t.Fatalf("counts %+v", c)
	}
	if e.fake.Recipients() != 5000 {
		t.Fatalf("%d deliveries", e.fake.Recipients())
	}
	for i := 1; i <= 4950; i++ {
		if n := e.fake.Count(fmt.Sprintf("x-%05d@example.com", i)); n != 1 {
			t.Fatalf("an address got %d messages", n)
		}
	}
}

func TestSendBatchRefusesBadInput(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	if _, err := bulk.AddFromLines(ctx, e.lethe, "c", strings.NewReader("u-1001\n")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		msg   bulk.Message
		batch int
	}{
		{"no subject", bulk.Message{Text: "x"}, 1},
		{"no body", bulk.Message{Subject: "x"}, 1},
		{"batch 0", notice, 0},
	} {
		if _, err := bulk.SendBatch(ctx, e.lethe, e.app, e.dm, e.sender, "c", tc.msg, tc.batch); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// Nothing was claimed by the refused calls.
	if c := e.counts(t, "c"); c != (bulk.CampaignCounts{Found: 1, Pending: 1}) {
		t.Fatalf("counts %+v", c)
	}
	var claimed int
	if err := e.lethe.QueryRow(ctx, `SELECT count(*) FROM lethe.notice_targets WHERE batch IS NOT NULL`).Scan(&claimed); err != nil || claimed != 0 {
		t.Fatalf("claimed %d, %v", claimed, err)
	}
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
