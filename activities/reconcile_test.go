package activities_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/lethe-privacy/lethe/activities"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// ledgerFixture is the demo application with seeded accounts and files,
// and a Ledger over it.
type ledgerFixture struct {
	pool    *pgxpool.Pool
	objects *s3.Client
	m       *datamap.Map
	keys    *person.Keyring
	hasher  *person.Hasher
	ledger  *activities.Ledger
	env     *testsuite.TestActivityEnvironment
}

func newLedgerFixture(t *testing.T, accounts int) *ledgerFixture {
	t.Helper()
	app := newDemoApp(t, accounts)
	pool, objects, m, keys, hasher, log := app.pool, app.objects, app.m, app.keys, app.hasher, app.log
	l := &activities.Ledger{Lethe: pool, App: pool, Backups: objects, Map: m, Keys: keys, Subjects: hasher,
		Erasure: &activities.Erasure{App: pool, Objects: objects, Map: m, Keys: keys, Subjects: hasher, Log: log}, Log: log}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(l)
	return &ledgerFixture{pool: pool, objects: objects, m: m, keys: keys, hasher: hasher, ledger: l, env: env}
}

func (f *ledgerFixture) page(t *testing.T, in contract.ReconcilePageInput) contract.ReconcilePageResult {
	t.Helper()
	v, err := f.env.ExecuteActivity(f.ledger.ReconcilePage, in)
	if err != nil {
		t.Fatal(err)
	}
	var res contract.ReconcilePageResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

// rowsOf counts the person's rows in the tables an erasure deletes from
// by key, and their project files in S3.
func (f *ledgerFixture) rowsOf(t *testing.T, userID string) (rows, files int) {
	t.Helper()
	ctx := context.Background()
	for _, tbl := range f.m.Tables {
		if tbl.Action != datamap.ActionDelete || tbl.Key == "" {
			continue
		}
		var n int
		if err := f.pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", tbl.Identifier().Sanitize(), pgx.Identifier{tbl.Key}.Sanitize()), userID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		rows += n
	}
	c, err := objectstore.CountPrefix(ctx, f.objects, demo.Bucket, "projects/"+userID+"/")
	if err != nil {
		t.Fatal(err)
	}
	return rows, c.Total()
}

func TestRecordErasureKeepsOnlyTheKeyedHashOfTheUserID(t *testing.T) {
	ctx := context.Background()
	f := newLedgerFixture(t, 2)
	a := demo.Accounts(1)[0]
	// An email-only request: the ledger entry is the hash of the user id
	// the identity table gives for the address.
	ref := string(f.hasher.Email(a.Email))
	sealed, err := person.Seal(ctx, f.keys, ref, person.Identity{Email: a.Email})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retry changes nothing
		if _, err := f.env.ExecuteActivity(f.ledger.RecordErasure, contract.RecordErasureInput{RequestID: "req_1", SubjectRef: ref, Identity: sealed}); err != nil {
			t.Fatal(err)
		}
	}
	e, ok, err := ledger.Get(ctx, f.pool, string(f.hasher.UserID(a.ID)))
	if err != nil || !ok {
		t.Fatalf("ledger entry: %v %v", ok, err)
	}
	if e.RequestID != "req_1" || e.MapDigest != f.m.Digest() || time.Since(e.ErasedAt) > time.Minute {
		t.Fatalf("entry %+v", e)
	}
	var leaked int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM lethe.erasure_ledger l WHERE l::text LIKE '%' || $1 || '%' OR l::text LIKE '%' || $2 || '%'`, a.ID, a.Email).Scan(&leaked); err != nil || leaked != 0 {
		t.Fatalf("%d ledger rows carry the user id or email (%v)", leaked, err)
	}
	// Someone the application does not know cannot be recorded.
	ghost := string(f.hasher.Email("nobody@example.com"))
	sealed, _ = person.Seal(ctx, f.keys, ghost, person.Identity{Email: "nobody@example.com"})
	_, err = f.env.ExecuteActivity(f.ledger.RecordErasure, contract.RecordErasureInput{RequestID: "req_2", SubjectRef: ghost, Identity: sealed})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() {
		t.Fatalf("unknown person: %v, want a non-retryable error", err)
	}
}

// A person in the ledger whose rows a restore brought back is erased again
// by the page that finds them; nobody else is touched; the cursor never
// carries a user id in the clear; a second run finds nothing to do.
func TestReconcilePageErasesThosePersonsARestoreBroughtBack(t *testing.T) {
	ctx := context.Background()
	f := newLedgerFixture(t, 3)
	accts := demo.Accounts(3)
	back, other := accts[1], accts[2]
	ref := string(f.hasher.UserID(back.ID))
	if err := ledger.Record(ctx, f.pool, ref, "req_back", f.m.Digest(), time.Now()); err != nil {
		t.Fatal(err)
	}
	rowsBefore, filesBefore := f.rowsOf(t, back.ID)
	if rowsBefore == 0 || filesBefore == 0 {
		t.Fatalf("seed: %d rows, %d files", rowsBefore, filesBefore)
	}
	otherRows, otherFiles := f.rowsOf(t, other.ID)

	run := contract.ReconcilePageInput{RunRef: "reconcile:run-1", RunAt: time.Date(2027, 2, 1, 3, 0, 0, 0, time.UTC), PageSize: 2}
	p1 := f.page(t, run)
	if p1.Scanned != 2 || p1.Matched != 1 || p1.Erased != 1 || p1.Items < rowsBefore+filesBefore || p1.Done || len(p1.Next) == 0 {
		t.Fatalf("page 1: %+v", p1)
	}
	for _, a := range accts {
		if bytes.Contains(p1.Next, []byte(a.ID)) {
			t.Fatal("the cursor carries a user id in the clear")
		}
	}
	run.Cursor = p1.Next
	p2 := f.page(t, run)
	if p2.Scanned != 1 || p2.Matched != 0 || !p2.Done {
		t.Fatalf("page 2: %+v", p2)
	}
	if rows, files := f.rowsOf(t, back.ID); rows != 0 || files != 0 {
		t.Fatalf("after the reconcile: %d rows and %d files of the erased person left", rows, files)
	}
	var status string
	if err := f.pool.QueryRow(ctx, `SELECT status FROM demo.accounts WHERE id = $1`, back.ID).Scan(&status); err != nil || status != f.m.Accounts.Erased {
		t.Fatalf("account row status %q (%v), want it anonymized", status, err)
	}
	var held int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM demo.purchases WHERE account_id = $1`, back.ID).Scan(&held); err != nil || held != 1 {
		t.Fatalf("%d purchases (%v): the legal hold must keep them", held, err)
	}
	if rows, files := f.rowsOf(t, other.ID); rows != otherRows || files != otherFiles {
		t.Fatalf("another person: %d/%d rows, %d/%d files", rows, otherRows, files, otherFiles)
	}
	e, _, _ := ledger.Get(ctx, f.pool, ref)
	if e.ReconciledCount != 1 || !e.LastReconciledAt.Equal(run.RunAt) {
		t.Fatalf("ledger entry %+v, want the run counted", e)
	}
	var audited int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM lethe.audit_log WHERE action = 'erasure.reapplied' AND subject_ref = $1 AND request_id = 'req_back'`, ref).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("%d audit entries (%v), want 1", audited, err)
	}

	// The page again (a retry), then a later run: the person is found in the
	// ledger, but nothing is left to erase and nothing is counted.
	run.Cursor = nil
	if again := f.page(t, run); again.Matched != 1 || again.Erased != 0 || again.Items != 0 {
		t.Fatalf("page 1 again: %+v", again)
	}
	later := contract.ReconcilePageInput{RunRef: "reconcile:run-2", RunAt: run.RunAt.AddDate(0, 1, 0)}
	if r := f.page(t, later); r.Scanned != 3 || r.Matched != 1 || r.Erased != 0 || !r.Done {
		t.Fatalf("later run: %+v", r)
	}
	if e, _, _ := ledger.Get(ctx, f.pool, ref); e.ReconciledCount != 1 {
		t.Fatalf("ledger entry %+v: a run that erased nothing was counted", e)
	}

	// Once the run's key is destroyed its cursors open no more.
	if err := f.keys.Destroy(ctx, "reconcile:run-1"); err != nil {
		t.Fatal(err)
	}
	run.Cursor = p1.Next
	_, err := f.env.ExecuteActivity(f.ledger.ReconcilePage, run)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() {
		t.Fatalf("page with a shredded cursor: %v, want a non-retryable error", err)
	}
}

func TestCountBackupsBeforeCountsOnlyBackupsFromBeforeTheErasure(t *testing.T) {
	ctx := context.Background()
	f := newLedgerFixture(t, 1)
	if err := objectstore.EnsureBucket(ctx, f.objects, "backups"); err != nil {
		t.Fatal(err)
	}
	put := func(key string) {
		if _, err := f.objects.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("backups"), Key: aws.String(key), Body: strings.NewReader("dump")}); err != nil {
			t.Fatal(err)
		}
	}
	put("db/nightly-1.dump")
	put("db/nightly-2.dump")
	put("other/unrelated.dump")
	time.Sleep(1100 * time.Millisecond) // S3 dates have a second's precision
	erasedAt := time.Now()
	time.Sleep(1100 * time.Millisecond)
	put("db/nightly-3.dump") // taken after the erasure: does not hold the person
	count := func(prefix string, before time.Time) contract.CountBackupsResult {
		t.Helper()
		v, err := f.env.ExecuteActivity(f.ledger.CountBackupsBefore, contract.CountBackupsInput{Bucket: "backups", Prefix: prefix, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		var res contract.CountBackupsResult
		_ = v.Get(&res)
		return res
	}
	if r := count("db/", erasedAt); r.Count != 2 || r.Oldest.IsZero() || r.Oldest.After(erasedAt) {
		t.Fatalf("before the erasure: %+v, want the 2 older dumps", r)
	}
	if r := count("db/", erasedAt.Add(-time.Hour)); r.Count != 0 || !r.Oldest.IsZero() {
		t.Fatalf("before an earlier erasure: %+v, want none", r)
	}
}
