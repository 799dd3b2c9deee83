package objectstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/testenv/s3calls"
)

// BenchmarkDeletePrefix10k deletes one person's 10,000 objects from a
// versioned bucket on the in-process S3 server, next to another person's
// prefix that starts the same. Seeding is outside the timer.
func BenchmarkDeletePrefix10k(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	base := newClient(b)
	newBucket(b, base, "app-data", true)
	if err := putObject(base, "app-data", "users/10/keep"); err != nil {
		b.Fatal(err)
	}
	calls := s3calls.New()
	c := calls.Client(base)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		seed(b, n, func(i int) error { return putObject(base, "app-data", fmt.Sprintf("users/1/%05d", i)) })
		b.StartTimer()
		res, err := objectstore.DeletePrefix(ctx, c, "app-data", "users/1/", objectstore.Marker{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if res.Deleted != n {
			b.Fatalf("deleted %d of %d", res.Deleted, n)
		}
	}
	b.StopTimer()
	if left, err := objectstore.CountPrefix(ctx, base, "app-data", "users/1/"); err != nil || left.Total() != 0 {
		b.Fatalf("left %+v (%v)", left, err)
	}
	if kept, err := objectstore.CountPrefix(ctx, base, "app-data", "users/10/"); err != nil || kept.Objects != 1 {
		b.Fatalf("sibling %+v (%v)", kept, err)
	}
	b.ReportMetric(float64(calls.Total())/float64(b.N), "s3calls/op")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "objects/s")
	b.Logf("calls by operation over %d runs: %v", b.N, calls.ByOperation())
}
