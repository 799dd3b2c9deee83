package export_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/export"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// s3ServerEnv makes the test binary an S3 server (see TestMain): the
// benchmark runs S3 in a child process, so that the 1 GiB of objects the
// in-memory server holds is not counted as the export's memory.
const s3ServerEnv = "LETHE_EXPORT_BENCH_S3_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(s3ServerEnv) != "" {
		serveS3()
	}
	os.Exit(m.Run())
}

// serveS3 serves an in-memory S3 on a loopback port, prints its URL, and
// exits when its standard input closes (the parent is done or died).
func serveS3() {
	debug.SetGCPercent(25) // it holds gigabytes; keep its heap close to them
	srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(srv.URL)
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	os.Exit(0)
}

// startS3Process starts the S3 server child and returns its URL.
func startS3Process(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), s3ServerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("S3 server process: %v", err)
	}
	return strings.TrimSpace(url)
}

// s3ReaderAt reads an object with ranged GETs, so a large bundle can be
// opened as a ZIP without downloading it.
type s3ReaderAt struct {
	c           *s3.Client
	bucket, key string
}

func (r s3ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	out, err := r.c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(r.key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// vmHWM is the process's peak resident set (Linux), 0 if unknown.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkExportLarge exports one person with 1 GiB of files (256 objects
// of 4 MiB, random bytes as photos or archives are) and 100,000 rows into one
// bundle, and reports the throughput and the export's peak memory: the
// peak of HeapInuse during the export above its level before, and the
// process's peak resident set during the export. S3 runs in a child
// process so its in-memory objects are not counted. Run it with
//
//	go test ./internal/export -run '^$' -bench BenchmarkExportLarge -benchtime 1x
func BenchmarkExportLarge(b *testing.B) {
	const (
		files    = 256
		fileSize = 4 << 20
		rows     = 100_000
		goal     = 128 << 20
	)
	ctx := context.Background()
	pool, _ := pgtest.NewPool(b)
	if err := demo.CreateSchema(ctx, pool); err != nil {
		b.Fatal(err)
	}
	// The in-memory server completes an upload by copying and hashing the
	// whole object (1 GiB) again; time it apart from the streaming.
	var completing atomic.Int64
	client := newClient(b, startS3Process(b))
	client = s3.New(client.Options(), func(o *s3.Options) {
		next := o.HTTPClient
		o.HTTPClient = httpClientFunc(func(r *http.Request) (*http.Response, error) {
			start := time.Now()
			resp, err := next.Do(r)
			if q := r.URL.Query(); r.Method == http.MethodPost && q.Has("uploadId") {
				completing.Add(int64(time.Since(start)))
			}
			return resp, err
		})
	})
	for _, bucket := range []string{demo.Bucket, exportBucket} {
		if err := objectstore.EnsureBucket(ctx, client, bucket); err != nil {
			b.Fatal(err)
		}
	}
	if err := demo.Seed(ctx, pool, client, demo.SeedOptions{Accounts: 2, SkipObjectUpload: true}); err != nil {
		b.Fatal(err)
	}
	person := demo.Accounts(1)[0]
	if _, err := pool.Exec(ctx, `INSERT INTO demo.activity_events (account_id, kind, at)
		SELECT $1, 'page_view', now() - i * interval '1 minute' FROM generate_series(1, $2::int) i`, person.ID, rows); err != nil {
		b.Fatal(err)
	}
	seedStart := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range files {
		g.Go(func() error {
			body := make([]byte, fileSize)
			rng := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8)})
			_, _ = rng.Read(body)
			_, err := client.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(demo.Bucket),
				Key: aws.String(fmt.Sprintf("projects/%s/bench/photo-%03d.jpg", person.ID, i)), Body: bytes.NewReader(body)})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	dm, err := demo.DataMap()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d rows and %d × %d MiB files in %v", rows, files, fileSize>>20, time.Since(seedStart).Round(time.Millisecond))

	var peakHeap, baseHeap, peakRSS, bundleBytes int64
	var elapsed, completed time.Duration
	b.SetBytes(files * fileSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		key := fmt.Sprintf("exports/bench-%d.zip", i)
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := int64(ms.HeapInuse)
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
		var peak atomic.Int64
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			t := time.NewTicker(5 * time.Millisecond)
			defer t.Stop()
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if v := int64(ms.HeapInuse); v > peak.Load() {
					peak.Store(v)
				}
				select {
				case <-done:
					return
				case <-t.C:
				}
			}
		})
		completing.Store(0)
		start := time.Now()
		b.StartTimer()
		m, err := export.ExportSubject(ctx, export.Options{DB: pool, S3: client, Map: dm, UserID: person.ID, Bucket: exportBucket, Key: key})
		b.StopTimer()
		elapsed += time.Since(start)
		completed += time.Duration(completing.Load())
		close(done)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		peakHeap, baseHeap = max(peakHeap, peak.Load()-base), base
		peakRSS = max(peakRSS, vmHWM())

		if m.Counts.Files != files || m.Counts.FileBytes != files*fileSize || m.Counts.Rows < rows {
			b.Fatalf("counts %+v", m.Counts)
		}
		head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(exportBucket), Key: aws.String(key)})
		if err != nil {
			b.Fatal(err)
		}
		bundleBytes = aws.ToInt64(head.ContentLength)
		verifyLargeBundle(b, client, key, bundleBytes, files+len(dm.Tables)+1+2, rows)
		if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(exportBucket), Key: aws.String(key)}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(mib(peakHeap), "peak-heap-MiB")
	b.ReportMetric(mib(peakRSS), "peak-rss-MiB")
	b.ReportMetric(mib(bundleBytes), "bundle-MiB")
	b.ReportMetric(float64(b.N)*float64(bundleBytes)/1e6/elapsed.Seconds(), "bundle-MB/s")
	b.ReportMetric(float64(b.N)*float64(bundleBytes)/1e6/(elapsed-completed).Seconds(), "stream-MB/s")
	b.Logf("export: %v for a %.0f MiB bundle, of which %v for the server to complete the upload; heap in use %.1f MiB before, peak +%.1f MiB; peak RSS %.1f MiB (goal %d MiB)",
		(elapsed / time.Duration(b.N)).Round(time.Millisecond), mib(bundleBytes), (completed / time.Duration(b.N)).Round(time.Millisecond),
		mib(baseHeap), mib(peakHeap), mib(peakRSS), goal>>20)
	if peakHeap > goal {
		b.Errorf("the export's heap grew by %.1f MiB, over the %d MiB goal", mib(peakHeap), goal>>20)
	}
}

// verifyLargeBundle opens the bundle in S3 as a ZIP (ranged reads only)
// and checks its entries, its manifest and one file.
func verifyLargeBundle(b *testing.B, c *s3.Client, key string, size int64, entries, rows int) {
	b.Helper()
	zr, err := zip.NewReader(s3ReaderAt{c, exportBucket, key}, size)
	if err != nil {
		b.Fatalf("the bundle is not a ZIP: %v", err)
	}
	if len(zr.File) != entries {
		b.Fatalf("%d entries, want %d", len(zr.File), entries)
	}
	for _, f := range zr.File {
		switch {
		case f.Name == "manifest.json":
			rc, err := f.Open()
			if err != nil {
				b.Fatal(err)
			}
			var m export.Manifest
			err = json.NewDecoder(rc).Decode(&m)
			rc.Close()
			if err != nil || m.Counts.Rows < rows {
				b.Fatalf("manifest: %v, %+v", err, m.Counts)
			}
		case strings.HasSuffix(f.Name, "/photo-000.jpg"):
			if f.Method != zip.Store || f.UncompressedSize64 != 4<<20 {
				b.Fatalf("%s: method %d, %d bytes", f.Name, f.Method, f.UncompressedSize64)
			}
			rc, err := f.Open()
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc) // checks the CRC-32
			rc.Close()
			if err != nil || n != 4<<20 {
				b.Fatalf("%s: %d bytes, %v", f.Name, n, err)
			}
		}
	}
}
