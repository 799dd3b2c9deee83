package bulk_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/bulk"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/mail"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/sendgridfake"
)

// BenchmarkSendMillion adds a million targets from a list of user ids (as an
// S3 object would hold them) and sends them all, batch after batch, through
// the SendGrid fake keeping counts only. It reports the seconds taken to add,
// to send and in total, the API calls made, duplicates (addresses that got
// more than one message), misses (addresses that got none) and the peak heap
// while adding and overall (the latter includes the fake's per-address
// counts, about a million map entries, since it runs in this process).
func BenchmarkSendMillion(b *testing.B) {
	const people = 1_000_000
	ctx := context.Background()
	lethe, _ := pgtest.NewPool(b)
	if err := store.Migrate(ctx, lethe); err != nil {
		b.Fatal(err)
	}
	app, _ := pgtest.NewPool(b)
	if _, err := app.Exec(ctx, `
		CREATE SCHEMA bench;
		CREATE TABLE bench.people (id text PRIMARY KEY, email text);
		INSERT INTO bench.people (id, email)
		SELECT format('b-%s', lpad(i::text, 7, '0')), format('b-%s@example.com', lpad(i::text, 7, '0'))
		  FROM generate_series(1, 1000000) AS i;
		ANALYZE bench.people`); err != nil {
		b.Fatal(err)
	}
	dm := &datamap.Map{Identity: &datamap.Identity{Table: "bench.people", Key: "id", Email: "email"}}
	fake, err := sendgridfake.Start(apiKey)
	if err != nil {
		b.Fatal(err)
	}
	defer fake.Close()
	fake.KeepBodies(false)
	sender, err := mail.NewSendGrid(mail.SendGridConfig{APIKey: apiKey, BaseURL: fake.URL(), FromEmail: "privacy@lethe.test"})
	if err != nil {
		b.Fatal(err)
	}

	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Go(func() {
		var ms runtime.MemStats
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			for p := peak.Load(); ms.HeapAlloc > p && !peak.CompareAndSwap(p, ms.HeapAlloc); p = peak.Load() {
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	var addTime, sendTime time.Duration
	var addPeak uint64
	b.ResetTimer()
	for i := range b.N {
		fake.Reset()
		campaign := fmt.Sprintf("bench-%d", i)

		began := time.Now()
		pr, pw := io.Pipe()
		go func() {
			w := bufio.NewWriter(pw)
			for j := 1; j <= people; j++ {
				fmt.Fprintf(w, "b-%07d\n", j)
			}
			pw.CloseWithError(w.Flush())
		}()
		added, err := bulk.AddFromLines(ctx, lethe, campaign, pr)
		if err != nil || added != people {
			b.Fatalf("add: %d, %v", added, err)
		}
		addTime += time.Since(began)
		addPeak = max(addPeak, peak.Load())

		began = time.Now()
		for n := 1; ; n++ {
			res, err := bulk.SendBatch(ctx, lethe, app, dm, sender, campaign, bulk.Message{
				Subject: "Security incident", Text: "Dear -name-, we are writing to tell you about an incident.", Template: "breach_notice",
			}, n)
			if err != nil {
				b.Fatalf("batch %d: %v", n, err)
			}
			if res.Done {
				break
			}
		}
		sendTime += time.Since(began)
	}
	b.StopTimer()
	close(stop)
	sampling.Wait()

	duplicates, misses := 0, 0
	for j := 1; j <= people; j++ {
		switch c := fake.Count(fmt.Sprintf("b-%07d@example.com", j)); {
		case c == 0:
			misses++
		case c > 1:
			duplicates++
		}
	}
	c, err := bulk.Counts(ctx, lethe, fmt.Sprintf("bench-%d", b.N-1))
	if err != nil {
		b.Fatal(err)
	}
	if c != (bulk.CampaignCounts{Found: people, Sent: people}) {
		b.Errorf("counts %+v", c)
	}
	calls := fake.Calls()
	if calls > people/mail.MaxBulkRecipients || duplicates > 0 || misses > 0 {
		b.Errorf("%d API calls, %d duplicates, %d misses", calls, duplicates, misses)
	}
	perRun := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(perRun(addTime), "add-s")
	b.ReportMetric(perRun(sendTime), "send-s")
	b.ReportMetric(perRun(addTime+sendTime), "total-s")
	b.ReportMetric(float64(calls), "api-calls")
	b.ReportMetric(float64(duplicates), "duplicates")
	b.ReportMetric(float64(misses), "misses")
	b.ReportMetric(float64(addPeak)/(1<<20), "add-peak-heap-MB")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
}
