package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// personRows counts a person's rows in every table of the data map reached
// by a key column, the account row included.
func personRows(t *testing.T, e *e2e, m *datamap.Map, userID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tbl := range m.Tables {
		if tbl.Key == "" {
			continue
		}
		out[tbl.Name] = e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", tbl.Identifier().Sanitize(), pgx.Identifier{tbl.Key}.Sanitize()), userID)
	}
	out["demo.accounts(active)"] = e.count(t, "SELECT count(*) FROM demo.accounts WHERE id = $1 AND status = 'active'", userID)
	return out
}

// A database restore brings an erased person back; restore-reconcile
// erases them again, and nobody else.
func TestRestoreReconcileErasesAgainThosePersonsARestoreBroughtBack(t *testing.T) {
	pgDump, pgRestore := "/usr/bin/pg_dump", "/usr/bin/pg_restore"
	for _, tool := range []string{pgDump, pgRestore} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s (PostgreSQL client tools): %v", tool, err)
		}
	}
	e := newE2E(t, 3, nil)
	ctx := context.Background()
	target, other := demo.Accounts(3)[0], demo.Accounts(3)[1]
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	before := personRows(t, e, m, target.ID)
	otherBefore := personRows(t, e, m, other.ID)
	if before["demo.project_files"] == 0 || before["demo.accounts(active)"] != 1 {
		t.Fatalf("seed: %v", before)
	}
	files := listKeys(t, e, "projects/"+target.ID+"/")
	if len(files) == 0 {
		t.Fatal("seed: the person has no files")
	}
	otherFiles := len(listKeys(t, e, "projects/"+other.ID+"/"))

	// The nightly backup of the application database (its own schema: Lethe's
	// database is kept apart and is not restored with it).
	dbURL := e.Config.AppDatabase()
	dump := filepath.Join(t.TempDir(), "app.dump")
	if out, err := exec.CommandContext(ctx, pgDump, "-Fc", "--schema=demo", "-f", dump, "-d", dbURL).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}

	// The person asks to be erased.
	code, body := e.call(t, "POST", "/v1/requests", e.Backend,
		fmt.Sprintf(`{"type":"erasure","subject":{"user_id":%q,"email":%q},"jurisdiction":"gdpr","verified":true}`, target.ID, target.Email))
	if code != http.StatusAccepted {
		t.Fatalf("submit: %d %v", code, body)
	}
	requestID := body["id"].(string)
	e.waitStatus(t, requestID, domain.StatusCompleted)
	if got := personRows(t, e, m, target.ID); got["demo.project_files"] != 0 || got["demo.accounts(active)"] != 0 {
		t.Fatalf("after the erasure: %v", got)
	}
	ref := string(e.Deps.Subjects.UserID(target.ID))
	entry, ok, err := ledger.Get(ctx, e.Lethe, ref)
	if err != nil || !ok {
		t.Fatalf("the erasure is not in the erasure ledger (%v): EraseSubject must call Ledger.RecordErasure before it deletes anything", err)
	}
	if entry.RequestID != requestID || entry.MapDigest == "" || entry.ReconciledCount != 0 {
		t.Fatalf("ledger entry %+v", entry)
	}

	// Disaster: the database is restored from last night's backup, and the
	// files from theirs. The person is back.
	if out, err := exec.CommandContext(ctx, pgRestore, "--clean", "--if-exists", "--no-owner", "-d", dbURL, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	for _, k := range files {
		if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(demo.Bucket), Key: aws.String(k), Body: strings.NewReader("restored")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := personRows(t, e, m, target.ID); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("after the restore: %v, want the rows back as they were: %v", got, before)
	}

	// The operator runs restore-reconcile through the API.
	if code, _ := e.call(t, "POST", "/v1/reconcile", e.Backend, ""); code != http.StatusForbidden {
		t.Fatalf("a backend key started a reconcile: %d", code)
	}
	code, body = e.call(t, "POST", "/v1/reconcile", e.Operator, "")
	if code != http.StatusAccepted {
		t.Fatalf("start reconcile: %d %v", code, body)
	}
	wfID, _ := body["id"].(string)
	if !strings.HasPrefix(wfID, "restore-reconcile-") {
		t.Fatalf("workflow id %q", wfID)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var totals contract.ReconcileTotals
	if err := e.Temporal.GetWorkflow(waitCtx, wfID, "").Get(waitCtx, &totals); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	keepHistory(t, e.Stack, wfID, "restore-reconcile")
	if totals.Scanned != 3 || totals.Matched != 1 || totals.Erased != 1 || totals.Items < before["demo.project_files"]+len(files) {
		t.Fatalf("reconcile totals %+v", totals)
	}

	// The person is gone again, files too; the legal hold and everyone else stay.
	got := personRows(t, e, m, target.ID)
	if got["demo.accounts(active)"] != 0 {
		t.Errorf("the erased person's account is active again")
	}
	for _, tbl := range m.Tables {
		switch {
		case tbl.Key == "":
		case tbl.Action == datamap.ActionRetain && got[tbl.Name] != before[tbl.Name]:
			t.Errorf("%s: %d rows, want the %d under the legal hold", tbl.Name, got[tbl.Name], before[tbl.Name])
		case tbl.Action == datamap.ActionDelete && got[tbl.Name] != 0:
			t.Errorf("%s: %d rows of the erased person back after the reconcile", tbl.Name, got[tbl.Name])
		}
	}
	if left := listKeys(t, e, "projects/"+target.ID+"/"); len(left) != 0 {
		t.Errorf("%d restored files of the erased person left", len(left))
	}
	if got := personRows(t, e, m, other.ID); fmt.Sprint(got) != fmt.Sprint(otherBefore) {
		t.Errorf("another person's rows changed: %v, were %v", got, otherBefore)
	}
	if n := len(listKeys(t, e, "projects/"+other.ID+"/")); n != otherFiles {
		t.Errorf("another person's files: %d, were %d", n, otherFiles)
	}

	// The ledger and the audit trail show the reconcile.
	entry, _, _ = ledger.Get(ctx, e.Lethe, ref)
	if entry.ReconciledCount != 1 || entry.LastReconciledAt.IsZero() {
		t.Fatalf("ledger entry after the reconcile: %+v", entry)
	}
	if n := e.count(t, "SELECT count(*) FROM lethe.audit_log WHERE action = 'erasure.reapplied' AND request_id = $1 AND subject_ref = $2", requestID, ref); n != 1 {
		t.Errorf("%d erasure.reapplied audit entries, want 1", n)
	}
	if n := e.count(t, "SELECT count(*) FROM lethe.audit_log WHERE action = 'erasure.reconciled' AND actor LIKE 'operator:%' AND detail->>'erased' = '1' AND detail->>'scanned' = '3'"); n != 1 {
		t.Errorf("%d erasure.reconciled audit entries with the counts, want 1", n)
	}
	code, body = e.call(t, "GET", "/v1/reconcile/"+wfID, e.Operator, "")
	if code != http.StatusOK || body["status"] != contract.ReconcileCompleted {
		t.Errorf("progress: %d %v", code, body)
	}
	// Nothing personal in the reconcile's history (its cursor is sealed) or the logs.
	assertHistoryClean(t, e.Stack, wfID, target.ID, target.Email, other.ID)
	for _, secret := range []string{target.ID, target.Email} {
		if strings.Contains(e.LogOutput.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}

	// The CLI's run, later: the person is found in the ledger, nothing is
	// back, nothing is erased or counted.
	var out bytes.Buffer
	if err := runReconcile(waitCtx, e.Temporal, e.Config.TemporalTaskQueue, 2, true, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "scanned 3 accounts in 2 pages: 1 in the erasure ledger, 0 found back") {
		t.Fatalf("CLI said %q", out.String())
	}
	if entry, _, _ = ledger.Get(ctx, e.Lethe, ref); entry.ReconciledCount != 1 {
		t.Fatalf("a reconcile that found nobody back was counted: %+v", entry)
	}
}

func listKeys(t *testing.T, e *e2e, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(e.S3, &s3.ListObjectsV2Input{Bucket: aws.String(demo.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}
