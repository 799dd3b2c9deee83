package metrics

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lethe-privacy/lethe/internal/audit"
	"github.com/lethe-privacy/lethe/internal/domain"
	"github.com/lethe-privacy/lethe/internal/ledger"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/store"
)

// DatabaseOptions say what the database gauges read and how.
type DatabaseOptions struct {
	// DB is Lethe's own database.
	DB *pgxpool.Pool
	// DueSoon is how far ahead a due date counts as soon
	// (LETHE_METRICS_DUE_SOON).
	DueSoon time.Duration
	// BackupPromise is the data map's backup promise; zero when the map
	// declares no backups (or is not known): then no backup gauges.
	BackupPromise domain.Period
	// Processors are the data map's processor names: their operator task
	// gauges are there (at 0) before any task opens.
	Processors []string
	// Timeout bounds the reads of one scrape; 0 means 10 s.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Database computes the gauges of Lethe's database at every scrape: where
// the requests stand (by status, against their due dates), the operator
// tasks open, the erased people whose backups have not rotated out, the
// legal holds running. Each comes from a typed read of the package that
// owns its table (store, audit, ledger, person); nothing polls in between.
// A read that fails is logged and costs its own series only, with
// lethe_metrics_database_up at 0.
type Database struct {
	o     DatabaseOptions
	descs map[string]*prometheus.Desc
}

var _ prometheus.Collector = (*Database)(nil)

// NewDatabase is the collector; register it with the API's registry.
func NewDatabase(o DatabaseOptions) *Database {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Log = logger(o.Log)
	d := &Database{o: o, descs: map[string]*prometheus.Desc{}}
	for _, name := range d.names() {
		s := series(name)
		d.descs[name] = prometheus.NewDesc(s.Name, s.Help, s.Labels, nil)
	}
	return d
}

func (d *Database) names() []string {
	names := []string{Requests, RequestsOverdue, RequestsDueSoon, RequestOldestOverdue,
		OperatorTasksOpen, OperatorTasksOverdue, OperatorTaskOldestAge, HoldsActive, DatabaseUp, DatabaseScrapeDuration}
	if !d.o.BackupPromise.IsZero() {
		names = append(names, BackupWatchesOpen, BackupWatchesPastPromise, BackupWatchOldestAge)
	}
	return names
}

// Describe sends the descriptions of every gauge.
func (d *Database) Describe(ch chan<- *prometheus.Desc) {
	for _, name := range d.names() {
		ch <- d.descs[name]
	}
}

// Collect reads the database and sends the gauges.
func (d *Database) Collect(ch chan<- prometheus.Metric) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d.o.Timeout)
	defer cancel()
	now := d.o.Now()
	up := 1.0
	for _, read := range []struct {
		what string
		run  func(context.Context, time.Time, chan<- prometheus.Metric) error
	}{
		{"requests", d.requests},
		{"deadlines", d.deadlines},
		{"operator tasks", d.tasks},
		{"holds", d.holds},
		{"backup watches", d.backups},
	} {
		if err := read.run(ctx, now, ch); err != nil {
			up = 0
			d.o.Log.Warn("metrics: a database gauge could not be read", "gauges", read.what, "error", err)
		}
	}
	d.gauge(ch, DatabaseUp, up)
	d.gauge(ch, DatabaseScrapeDuration, time.Since(began).Seconds())
}

func (d *Database) gauge(ch chan<- prometheus.Metric, name string, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d.descs[name], prometheus.GaugeValue, v, labels...)
}

// requests: every request type and status, zeros included, so that a
// dashboard shows 0 rather than nothing.
func (d *Database) requests(ctx context.Context, _ time.Time, ch chan<- prometheus.Metric) error {
	counts, err := store.New(d.o.DB).CountByTypeStatus(ctx)
	if err != nil {
		return err
	}
	types, statuses := domain.RequestTypes(), domain.RequestStatuses()
	n := map[[2]string]int{}
	for _, c := range counts {
		n[[2]string{oneOf(c.Type, types), oneOf(c.Status, statuses)}] += c.Count
	}
	for _, t := range append(types, Other) {
		for _, s := range append(statuses, Other) {
			if v, ok := n[[2]string{t, s}]; ok || (t != Other && s != Other) {
				d.gauge(ch, Requests, float64(v), t, s)
			}
		}
	}
	return nil
}

func (d *Database) deadlines(ctx context.Context, now time.Time, ch chan<- prometheus.Metric) error {
	soon := d.o.DueSoon
	if soon <= 0 {
		soon = 7 * 24 * time.Hour
	}
	list, err := store.New(d.o.DB).OpenDeadlines(ctx, now, now.Add(soon))
	if err != nil {
		return err
	}
	types := domain.RequestTypes()
	type stand struct {
		overdue, soon int
		oldest        time.Time
	}
	by := map[string]*stand{}
	for _, t := range types {
		by[t] = &stand{}
	}
	for _, l := range list {
		t := oneOf(l.Type, types)
		s := by[t]
		if s == nil {
			s = &stand{}
			by[t] = s
		}
		s.overdue += l.Overdue
		s.soon += l.DueSoon
		if !l.OldestDue.IsZero() && (s.oldest.IsZero() || l.OldestDue.Before(s.oldest)) {
			s.oldest = l.OldestDue
		}
	}
	for t, s := range by {
		d.gauge(ch, RequestsOverdue, float64(s.overdue), t)
		d.gauge(ch, RequestsDueSoon, float64(s.soon), t)
		d.gauge(ch, RequestOldestOverdue, age(now, s.oldest), t)
	}
	return nil
}

func (d *Database) tasks(ctx context.Context, now time.Time, ch chan<- prometheus.Metric) error {
	open, err := audit.OpenTasks(ctx, d.o.DB)
	if err != nil {
		return err
	}
	type stand struct {
		open, overdue int
		oldest        time.Time
	}
	by := map[string]*stand{}
	for _, p := range d.o.Processors {
		by[label(p)] = &stand{}
	}
	for _, t := range open {
		p := label(t.Processor)
		s := by[p]
		if s == nil {
			s = &stand{}
			by[p] = s
		}
		s.open++
		if !t.DueAt.IsZero() && t.DueAt.Before(now) {
			s.overdue++
		}
		if s.oldest.IsZero() || t.OpenedAt.Before(s.oldest) {
			s.oldest = t.OpenedAt
		}
	}
	for p, s := range by {
		d.gauge(ch, OperatorTasksOpen, float64(s.open), p)
		d.gauge(ch, OperatorTasksOverdue, float64(s.overdue), p)
		d.gauge(ch, OperatorTaskOldestAge, age(now, s.oldest), p)
	}
	return nil
}

func (d *Database) holds(ctx context.Context, _ time.Time, ch chan<- prometheus.Metric) error {
	live, err := person.LiveHolds(ctx, d.o.DB)
	if err != nil {
		return err
	}
	by := map[string]int{}
	for table, n := range live {
		by[label(table)] += n
	}
	for _, table := range slices.Sorted(maps.Keys(by)) {
		d.gauge(ch, HoldsActive, float64(by[table]), table)
	}
	return nil
}

func (d *Database) backups(ctx context.Context, now time.Time, ch chan<- prometheus.Metric) error {
	if d.o.BackupPromise.IsZero() {
		return nil
	}
	p, err := ledger.PendingBackups(ctx, d.o.DB, d.o.BackupPromise.Before(now))
	if err != nil {
		return err
	}
	d.gauge(ch, BackupWatchesOpen, float64(p.Open))
	d.gauge(ch, BackupWatchesPastPromise, float64(p.PastPromise))
	d.gauge(ch, BackupWatchOldestAge, age(now, p.OldestErasedAt))
	return nil
}

// age is how long before now t was, in seconds; 0 for the zero time.
func age(now, t time.Time) float64 {
	if t.IsZero() || t.After(now) {
		return 0
	}
	return now.Sub(t).Seconds()
}
