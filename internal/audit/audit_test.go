package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

const (
	req   = "req_01J000000000000000000000"
	alice = "sr_alice0000000000000000000000000"
)

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.NewLethePool(t)
	return pool
}

func entry(i int) audit.Entry {
	return audit.Entry{
		RequestID:  req,
		SubjectRef: alice,
		Actor:      "system",
		Action:     "verification.code_sent",
		Detail:     map[string]any{"attempt": i, "channel": "email"},
	}
}

// appendN appends n entries and returns them in order.
func appendN(t *testing.T, db *pgxpool.Pool, n int) []audit.Recorded {
	t.Helper()
	out := make([]audit.Recorded, n)
	for i := range out {
		r, err := audit.Append(context.Background(), db, entry(i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

func verify(t *testing.T, db *pgxpool.Pool) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func count(t *testing.T, db *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM lethe.audit_log`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVerifyEmptyTrail(t *testing.T) {
	rep := verify(t, newDB(t))
	if !rep.Intact() || rep.Entries != 0 || rep.LastSeq != 0 || rep.LastHash != nil {
		t.Fatalf("empty trail: %+v", rep)
	}
}

func TestConcurrentAppendsKeepChainLinear(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := entry(i)
			e.RequestID = fmt.Sprintf("req_%03d", i%7)
			_, err := audit.Append(ctx, db, e)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rep := verify(t, db)
	if !rep.Intact() || rep.Entries != n {
		t.Fatalf("after %d concurrent appends: %+v", n, rep)
	}
	// Linear: every hash is the prev_hash of exactly one later entry, bar the last.
	var forks int
	err := db.QueryRow(ctx, `SELECT count(*) FROM (SELECT prev_hash FROM lethe.audit_log
		GROUP BY prev_hash HAVING count(*) > 1) f`).Scan(&forks)
	if err != nil {
		t.Fatal(err)
	}
	if forks != 0 {
		t.Fatalf("%d hashes are the prev_hash of more than one entry: the chain forked", forks)
	}
	var lastHash []byte
	if err := db.QueryRow(ctx, `SELECT hash FROM lethe.audit_log ORDER BY seq DESC LIMIT 1`).Scan(&lastHash); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rep.LastHash, lastHash) {
		t.Fatal("Report.LastHash is not the newest entry's hash")
	}
}

func TestIdempotentAppend(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	e := entry(1)
	e.IdempotencyKey = "req_01J000000000000000000000/verification.code_sent/1"
	first, err := audit.Append(ctx, db, e)
	if err != nil {
		t.Fatal(err)
	}
	retry := e
	retry.Detail = map[string]any{"attempt": 2} // a retry may differ in time and detail
	again, err := audit.Append(ctx, db, retry)
	if err != nil {
		t.Fatal(err)
	}
	if again.Seq != first.Seq || !bytes.Equal(again.Hash, first.Hash) || !again.At.Equal(first.At) ||
		again.Detail["attempt"] != json.Number("1") {
		t.Fatalf("retry returned %+v, want the first entry %+v", again, first)
	}

	// Concurrent retries of another activity: still one entry.
	e2 := entry(2)
	e2.IdempotencyKey = "req_01J000000000000000000000/request.received"
	e2.Action = "request.received"
	var wg sync.WaitGroup
	seqs := make([]int64, 10)
	for i := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := audit.Append(ctx, db, e2)
			if err != nil {
				t.Error(err)
			}
			seqs[i] = r.Seq
		}()
	}
	wg.Wait()
	for _, s := range seqs {
		if s != seqs[0] {
			t.Fatalf("concurrent appends with one key recorded seqs %v", seqs)
		}
	}
	if n := count(t, db); n != 2 {
		t.Fatalf("%d entries, want 2", n)
	}

	// The same key for another action is a caller's bug, not a retry.
	other := e
	other.Action = "request.extended"
	if _, err := audit.Append(ctx, db, other); !errors.Is(err, audit.ErrKeyConflict) {
		t.Fatalf("same key, other action: got %v, want ErrKeyConflict", err)
	}
	if n := count(t, db); n != 2 {
		t.Fatalf("%d entries after a conflict, want 2", n)
	}
	if rep := verify(t, db); !rep.Intact() || rep.Entries != 2 {
		t.Fatalf("%+v", rep)
	}
}

func TestTamperingIsReportedAtItsSeq(t *testing.T) {
	for name, update := range map[string]string{
		"detail":      `UPDATE lethe.audit_log SET detail = jsonb_set(detail, '{attempt}', '99') WHERE seq = $1`,
		"at":          `UPDATE lethe.audit_log SET at = at - interval '1 day' WHERE seq = $1`,
		"actor":       `UPDATE lethe.audit_log SET actor = 'subject' WHERE seq = $1`,
		"request_id":  `UPDATE lethe.audit_log SET request_id = 'req_other' WHERE seq = $1`,
		"subject_ref": `UPDATE lethe.audit_log SET subject_ref = NULL WHERE seq = $1`,
		"key order":   `UPDATE lethe.audit_log SET detail = detail || '{"extra": true}' WHERE seq = $1`,
	} {
		t.Run(name, func(t *testing.T) {
			db := newDB(t)
			recs := appendN(t, db, 10)
			victim := recs[4].Seq
			if _, err := db.Exec(context.Background(), update, victim); err != nil {
				t.Fatal(err)
			}
			rep := verify(t, db)
			if rep.FirstBroken != victim || rep.Reason == "" || rep.Entries != 10 {
				t.Fatalf("tampered with seq %d, report %+v", victim, rep)
			}
			if !strings.Contains(rep.Reason, "altered") {
				t.Fatalf("reason %q", rep.Reason)
			}
		})
	}
}

func TestDeletedEntryIsReported(t *testing.T) {
	ctx := context.Background()
	t.Run("middle", func(t *testing.T) {
		db := newDB(t)
		recs := appendN(t, db, 10)
		if _, err := db.Exec(ctx, `DELETE FROM lethe.audit_log WHERE seq = $1`, recs[4].Seq); err != nil {
			t.Fatal(err)
		}
		rep := verify(t, db)
		if rep.FirstBroken != recs[5].Seq || rep.Entries != 9 {
			t.Fatalf("deleted seq %d, report %+v", recs[4].Seq, rep)
		}
		if want := fmt.Sprintf("seq %d", recs[3].Seq); !strings.Contains(rep.Reason, want) {
			t.Fatalf("reason %q does not name the entry before the gap (%s)", rep.Reason, want)
		}
	})
	t.Run("first", func(t *testing.T) {
		db := newDB(t)
		recs := appendN(t, db, 3)
		if _, err := db.Exec(ctx, `DELETE FROM lethe.audit_log WHERE seq = $1`, recs[0].Seq); err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, db); rep.FirstBroken != recs[1].Seq {
			t.Fatalf("deleted the first entry, report %+v", rep)
		}
	})
	t.Run("altered and rehashed", func(t *testing.T) {
		// Whoever alters an entry and recomputes its hash breaks the next link.
		db := newDB(t)
		recs := appendN(t, db, 3)
		v := recs[1]
		forged := docHash(v.PrevHash, v.At.Format(time.RFC3339Nano), v.RequestID, v.SubjectRef, v.Actor, v.Action,
			`{"attempt":99,"channel":"email"}`)
		_, err := db.Exec(ctx, `UPDATE lethe.audit_log SET detail = '{"attempt": 99, "channel": "email"}', hash = $2
			WHERE seq = $1`, v.Seq, forged)
		if err != nil {
			t.Fatal(err)
		}
		rep := verify(t, db)
		if rep.FirstBroken != recs[2].Seq || !strings.Contains(rep.Reason, fmt.Sprintf("seq %d", v.Seq)) {
			t.Fatalf("altered and rehashed seq %d, report %+v", v.Seq, rep)
		}
	})
}

func TestPersonalDataIsRefused(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	const email = "alice.example@example.com"
	for name, e := range map[string]audit.Entry{
		"email in detail":         {Actor: "system", Action: "request.received", Detail: map[string]any{"to": email}},
		"email nested in detail":  {Actor: "system", Action: "request.received", Detail: map[string]any{"mail": map[string]any{"rcpt": []any{"ok", "Alice <" + email + ">"}}}},
		"email as a detail key":   {Actor: "system", Action: "request.received", Detail: map[string]any{email: true}},
		"url-encoded email":       {Actor: "system", Action: "request.received", Detail: map[string]any{"link": "https://x.test/?u=alice%40example.com"}},
		"long string in detail":   {Actor: "system", Action: "request.received", Detail: map[string]any{"note": strings.Repeat("x", 513)}},
		"email as subject":        {Actor: "system", Action: "request.received", SubjectRef: email},
		"name as subject":         {Actor: "system", Action: "request.received", SubjectRef: "Alice Example"},
		"email as request id":     {Actor: "system", Action: "request.received", RequestID: email},
		"email in actor":          {Actor: "operator:" + email, Action: "request.received"},
		"email in idempotency":    {Actor: "system", Action: "request.received", IdempotencyKey: "mail/" + email},
		"missing actor":           {Action: "request.received"},
		"missing action":          {Actor: "system"},
		"detail that is not JSON": {Actor: "system", Action: "request.received", Detail: map[string]any{"f": func() {}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := audit.Append(ctx, db, e)
			if !errors.Is(err, audit.ErrRefused) {
				t.Fatalf("got %v, want ErrRefused", err)
			}
			if msg := strings.ToLower(err.Error()); strings.Contains(msg, "alice") || strings.Contains(msg, "xxxx") {
				t.Fatalf("the error repeats the refused value: %s", msg)
			}
		})
	}
	if n := count(t, db); n != 0 {
		t.Fatalf("%d entries written, want none", n)
	}
	// Strings up to the limit, and things that merely contain "@", pass.
	ok := audit.Entry{Actor: "system", Action: "request.received", Detail: map[string]any{
		"note": strings.Repeat("é", 512), "module": "go.temporal.io/sdk@v1.50.0", "handle": "@lethe",
	}}
	if _, err := audit.Append(ctx, db, ok); err != nil {
		t.Fatal(err)
	}
}

// TestHashFollowsTheDocumentedFormat recomputes a hash as the package doc
// describes it, so that the trail can be checked without this package.
func TestHashFollowsTheDocumentedFormat(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	at := time.Date(2026, 3, 1, 12, 30, 0, 123456789, time.FixedZone("CET", 3600))
	first, err := audit.Append(ctx, db, audit.Entry{
		RequestID: req, Actor: "subject", Action: "request.received", At: at,
		Detail: map[string]any{"type": "erasure", "b": []any{1, 2.5, "<&>"}, "a": nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !first.At.Equal(at.Truncate(time.Microsecond)) || first.At.Location() != time.UTC {
		t.Fatalf("At = %v, want %v in UTC", first.At, at.Truncate(time.Microsecond))
	}
	if !bytes.Equal(first.PrevHash, make([]byte, 32)) {
		t.Fatalf("first prev_hash = %x, want zeros", first.PrevHash)
	}
	want := docHash(first.PrevHash, "2026-03-01T11:30:00.123456Z", req, "", "subject", "request.received",
		`{"a":null,"b":[1,2.5,"<&>"],"type":"erasure"}`)
	if !bytes.Equal(first.Hash, want) {
		t.Fatalf("hash %x, want %x", first.Hash, want)
	}

	second, err := audit.Append(ctx, db, audit.Entry{SubjectRef: alice, Actor: "system", Action: "key.destroyed"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(second.PrevHash, first.Hash) || second.At.IsZero() {
		t.Fatalf("second entry %+v", second)
	}
	stamp := second.At.UTC().Format(time.RFC3339Nano)
	if want := docHash(first.Hash, stamp, "", alice, "system", "key.destroyed", `{}`); !bytes.Equal(second.Hash, want) {
		t.Fatalf("hash %x, want %x", second.Hash, want)
	}
	if rep := verify(t, db); !rep.Intact() || rep.Entries != 2 || rep.LastSeq != second.Seq {
		t.Fatalf("%+v", rep)
	}
}

func docHash(prev []byte, fields ...string) []byte {
	h := sha256.New()
	h.Write(prev)
	for _, f := range fields {
		_ = binary.Write(h, binary.BigEndian, uint32(len(f)))
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// TestDetailSurvivesTheDatabase: jsonb reorders keys, drops whitespace and
// rewrites numbers; the hash is over what Verify reads back.
func TestDetailSurvivesTheDatabase(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	details := []map[string]any{
		nil,
		{},
		{"big": 1e21, "small": 1e-7, "third": 1.0 / 3, "neg": math.Copysign(0, -1), "int": int64(1) << 62},
		{"unicode": "Zoë ✓ \u2028 \t\n\"\\ \u007f", "html": "<script>&amp;</script>", "": "empty key"},
		{"nested": map[string]any{"zz": []any{map[string]any{"b": 1, "a": 2}}, "aa": json.RawMessage(`{"y": 1.50, "x": 1E2}`)}},
		{"longer key first?": 1, "k": 2, "kk": 3},
	}
	for i, d := range details {
		e := entry(i)
		e.Detail = d
		if _, err := audit.Append(ctx, db, e); err != nil {
			t.Fatalf("detail %d: %v", i, err)
		}
	}
	if rep := verify(t, db); !rep.Intact() || rep.Entries != int64(len(details)) {
		t.Fatalf("%+v", rep)
	}
}

func TestForRequest(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	for i, id := range []string{"req_a", "req_b", "req_a", "", "req_a"} {
		e := entry(i)
		e.RequestID = id
		if _, err := audit.Append(ctx, db, e); err != nil {
			t.Fatal(err)
		}
	}
	trail, err := audit.ForRequest(ctx, db, "req_a")
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 3 {
		t.Fatalf("%d entries for req_a, want 3", len(trail))
	}
	for i, r := range trail {
		if r.RequestID != "req_a" || (i > 0 && r.Seq <= trail[i-1].Seq) {
			t.Fatalf("trail %d: %+v", i, r)
		}
		if r.Actor != "system" || r.SubjectRef != alice || r.Detail["channel"] != "email" || len(r.Hash) != 32 {
			t.Fatalf("trail %d: %+v", i, r)
		}
	}
	if trail[1].Detail["attempt"] != json.Number("2") {
		t.Fatalf("detail %v", trail[1].Detail)
	}
	none, err := audit.ForRequest(ctx, db, "req_none")
	if err != nil || len(none) != 0 {
		t.Fatalf("unknown request: %v, %v", none, err)
	}
	if _, err := audit.ForRequest(ctx, db, "alice@example.com"); !errors.Is(err, audit.ErrRefused) {
		t.Fatalf("got %v, want ErrRefused", err)
	}
}
