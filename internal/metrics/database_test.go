package metrics_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/internal/metrics"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// The database gauges, on a real database written the way Lethe writes it
// (the store's transitions, the audit trail's task entries, the hold keys,
// the erasure ledger), computed at the scrape.
func TestDatabaseGaugesCountWhatTheTablesHold(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewLethePool(t)
	now := time.Now().UTC().Truncate(time.Second)
	day := 24 * time.Hour

	// Requests: two erasures completed, one in progress two days past its
	// due date, an access request awaiting verification due in three days
	// (soon), a portability request due in three weeks (not soon), and a
	// completed one whose due date passed (closed: not overdue).
	records := store.New(pool)
	for i, r := range []struct {
		typ, status string
		due         time.Time
	}{
		{domain.TypeErasure, domain.StatusCompleted, now.Add(20 * day)},
		{domain.TypeErasure, domain.StatusCompleted, now.Add(-5 * day)},
		{domain.TypeErasure, domain.StatusInProgress, now.Add(-2 * day)},
		{domain.TypeAccess, domain.StatusAwaitingVerification, now.Add(3 * day)},
		{domain.TypePortability, domain.StatusVerified, now.Add(21 * day)},
	} {
		tr := store.Transition{ID: "req_" + string(rune('a'+i)), Type: r.typ, SubjectRef: "sr_" + string(rune('a'+i)) + "aaaaaaaaaaaaaaaaaaaa",
			Jurisdiction: "gdpr", Status: r.status, ReceivedAt: now.Add(-30 * day), DueAt: r.due}
		if domain.Closed(r.status) {
			closed := now
			tr.ClosedAt = &closed
		}
		if err := records.RecordTransition(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}

	// Operator tasks, entered as the erasure at a processor enters them:
	// PayPal's open for nine days and past its deadline, the CRM's open
	// since an hour, Stripe's resolved.
	for _, e := range []audit.Entry{
		{Actor: "system", Action: audit.TaskOpened, At: now.Add(-9 * day), IdempotencyKey: "req_c:paypal:task-1:opened",
			Detail: map[string]any{"request_id": "req_c", "processor": "paypal", "due_at": now.Add(-2 * day).Format(time.RFC3339)}},
		// An entry naming its request in the column and its processor in
		// the key only.
		{RequestID: "req_c", Actor: "system", Action: audit.TaskOpened, At: now.Add(-time.Hour), IdempotencyKey: "req_c:crm:task-2:opened",
			Detail: map[string]any{"due_at": now.Add(6 * day).Format(time.RFC3339)}},
		{Actor: "system", Action: audit.TaskOpened, At: now.Add(-10 * day), IdempotencyKey: "req_a:stripe:task-1:opened",
			Detail: map[string]any{"request_id": "req_a", "processor": "stripe", "due_at": now.Add(-3 * day).Format(time.RFC3339)}},
		{Actor: "operator:key_1", Action: audit.TaskResolved, At: now.Add(-8 * day), IdempotencyKey: "req_a:stripe:task-1:resolved",
			Detail: map[string]any{"request_id": "req_a", "processor": "stripe", "decision": "done"}},
	} {
		if _, err := audit.Append(ctx, pool, e); err != nil {
			t.Fatal(err)
		}
	}

	// Holds: two on demo.purchases (one of which ended: its key is gone),
	// one on shop.orders; a person's own key is no hold.
	master := make([]byte, 32)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	keys, err := person.NewKeyring(pool, []config.Key{{ID: "m1", Material: master}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{person.HoldRef("demo.purchases", "run-1"), person.HoldRef("demo.purchases", "run-2"),
		person.HoldRef("shop.orders", "run-3"), "sr_personalkeyaaaaaaaaaa"} {
		if _, err := keys.Seal(ctx, ref, []byte("u-1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := keys.Destroy(ctx, person.HoldRef("demo.purchases", "run-2")); err != nil {
		t.Fatal(err)
	}

	// The ledger: erased 50, 10 and 1 day ago; the 10-day one's backups
	// have rotated out. With a 40-day promise, the 50-day one is past it.
	for i, ago := range []time.Duration{50 * day, 10 * day, day} {
		ref := "sr_" + string(rune('a'+i)) + "bcdefghijklmnopqrstu"
		if err := ledger.Record(ctx, pool, ref, "req_l"+string(rune('a'+i)), "digest", now.Add(-ago)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := ledger.MarkBackupsClear(ctx, pool, "req_lb", now); err != nil || n != 1 {
		t.Fatalf("mark backups clear: %d %v", n, err)
	}

	promise, err := domain.ParsePeriod("40d")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewDatabase(metrics.DatabaseOptions{DB: pool, DueSoon: 7 * day, BackupPromise: promise,
		Processors: []string{"paypal", "stripe", "mailchimp"}, Now: func() time.Time { return now }}))
	got := scrape(t, reg)
	expect(t, got, map[string]float64{
		`lethe_requests{status="completed",type="erasure"}`:            2,
		`lethe_requests{status="in_progress",type="erasure"}`:          1,
		`lethe_requests{status="awaiting_verification",type="access"}`: 1,
		`lethe_requests{status="verified",type="portability"}`:         1,
		`lethe_requests{status="received",type="consent"}`:             0, // every type and status, zeros included
		`lethe_requests_overdue{type="erasure"}`:                       1,
		`lethe_requests_overdue{type="access"}`:                        0,
		`lethe_requests_due_soon{type="access"}`:                       1,
		`lethe_requests_due_soon{type="portability"}`:                  0,
		`lethe_request_oldest_overdue_seconds{type="erasure"}`:         (2 * day).Seconds(),
		`lethe_request_oldest_overdue_seconds{type="access"}`:          0,
		`lethe_operator_tasks_open{processor="paypal"}`:                1,
		`lethe_operator_tasks_open{processor="crm"}`:                   1,
		`lethe_operator_tasks_open{processor="stripe"}`:                0,
		`lethe_operator_tasks_open{processor="mailchimp"}`:             0,
		`lethe_operator_tasks_overdue{processor="paypal"}`:             1,
		`lethe_operator_tasks_overdue{processor="crm"}`:                0,
		`lethe_operator_task_oldest_age_seconds{processor="paypal"}`:   (9 * day).Seconds(),
		`lethe_operator_task_oldest_age_seconds{processor="crm"}`:      time.Hour.Seconds(),
		`lethe_operator_task_oldest_age_seconds{processor="stripe"}`:   0,
		`lethe_holds_active{table="demo.purchases"}`:                   1,
		`lethe_holds_active{table="shop.orders"}`:                      1,
		`lethe_backup_watches_open{}`:                                  2,
		`lethe_backup_watches_past_promise{}`:                          1,
		`lethe_backup_watch_oldest_age_seconds{}`:                      (50 * day).Seconds(),
		`lethe_metrics_database_up{}`:                                  1,
	})
	if len(got) < 66+3*6 {
		t.Errorf("only %d series", len(got))
	}

	// Without backups in the data map, no backup gauges.
	bare := prometheus.NewRegistry()
	bare.MustRegister(metrics.NewDatabase(metrics.DatabaseOptions{DB: pool}))
	for k := range scrape(t, bare) {
		if len(k) > len("lethe_backup") && k[:len("lethe_backup")] == "lethe_backup" {
			t.Errorf("%s without backups in the data map", k)
		}
	}
}

// A database that does not answer costs the scrape its database series,
// not the scrape: lethe_metrics_database_up says so.
func TestDatabaseGaugesWithoutADatabase(t *testing.T) {
	pool := pgtest.NewLethePool(t)
	pool.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewDatabase(metrics.DatabaseOptions{DB: pool, Timeout: 2 * time.Second}))
	got := scrape(t, reg)
	expect(t, got, map[string]float64{`lethe_metrics_database_up{}`: 0})
	if _, ok := got[`lethe_requests{status="completed",type="erasure"}`]; ok {
		t.Error("request gauges without a database")
	}
}
