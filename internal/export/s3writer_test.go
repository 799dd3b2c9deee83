package export_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lethe-privacy/lethe/internal/export"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/s3local"
)

func newS3(t *testing.T) *s3.Client {
	t.Helper()
	srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c := newClient(t, srv.URL)
	if err := objectstore.EnsureBucket(context.Background(), c, exportBucket); err != nil {
		t.Fatal(err)
	}
	return c
}

func uploadsLeft(t *testing.T, c *s3.Client) int {
	t.Helper()
	out, err := c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(exportBucket)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

func TestS3WriterUploadsPartsAndCompletes(t *testing.T) {
	ctx := context.Background()
	c := newS3(t)
	parts := &partLog{}
	c = s3.New(c.Options(), func(o *s3.Options) { o.HTTPClient = parts.client(o.HTTPClient) })
	// 2.5 parts, written in uneven pieces that straddle the part edges.
	want := make([]byte, 2*export.PartSize+export.PartSize/2)
	for i := range want {
		want[i] = byte(i*7 + i/4096)
	}
	w, err := export.NewS3Writer(ctx, c, exportBucket, "big.zip")
	if err != nil {
		t.Fatal(err)
	}
	for rest, step := want, 1; len(rest) > 0; step = step*3 + 1 {
		n := min(step, len(rest))
		if k, err := w.Write(rest[:n]); err != nil || k != n {
			t.Fatalf("write %d: %d, %v", n, k, err)
		}
		rest = rest[n:]
	}
	if w.Written() != int64(len(want)) {
		t.Errorf("Written() = %d", w.Written())
	}
	if uploadsLeft(t, c) != 1 {
		t.Error("no upload in progress while writing")
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(exportBucket), Key: aws.String("big.zip")}); err == nil {
		t.Error("the object is visible before Close")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := get(t, c, exportBucket, "big.zip"); !bytes.Equal(got, want) {
		t.Fatalf("object differs: %d bytes, want %d", len(got), len(want))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(exportBucket), Key: aws.String("big.zip")})
	if err != nil {
		t.Fatal(err)
	}
	if head.ServerSideEncryption != types.ServerSideEncryptionAes256 || aws.ToString(head.ContentType) != "application/zip" {
		t.Errorf("encryption %q, content type %q", head.ServerSideEncryption, aws.ToString(head.ContentType))
	}
	if want := []int64{export.PartSize, export.PartSize, export.PartSize / 2}; !slices.Equal(parts.sizes(), want) {
		t.Errorf("parts of %v bytes, want %v", parts.sizes(), want)
	}
	if uploadsLeft(t, c) != 0 {
		t.Error("upload left after Close")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("write after Close accepted")
	}
}

func TestS3WriterEmptyObject(t *testing.T) {
	ctx := context.Background()
	c := newS3(t)
	w, err := export.NewS3Writer(ctx, c, exportBucket, "empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, exportBucket, "empty"); len(got) != 0 {
		t.Errorf("%d bytes", len(got))
	}
}

func TestS3WriterAbortLeavesNothing(t *testing.T) {
	ctx := context.Background()
	c := newS3(t)
	w, err := export.NewS3Writer(ctx, c, exportBucket, "aborted.zip")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, export.PartSize+10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("write after Abort accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(exportBucket), Key: aws.String("aborted.zip")}); err == nil {
		t.Error("an aborted object exists")
	}
	if n := uploadsLeft(t, c); n != 0 {
		t.Errorf("%d uploads left", n)
	}
}

func TestS3WriterAbortsWhenAPartFails(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := newS3(t)
	w, err := export.NewS3Writer(ctx, c, exportBucket, "failed.zip")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = w.Write(make([]byte, export.PartSize+1))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("write with a cancelled context: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("write after a failure accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failure succeeded")
	}
	// The abort runs even though the writer's context is cancelled.
	if n := uploadsLeft(t, c); n != 0 {
		t.Errorf("%d uploads left", n)
	}
}

// partLog records the size of every part uploaded through its client.
type partLog struct {
	mu    sync.Mutex
	parts []int64
}

func (l *partLog) client(next s3.HTTPClient) s3.HTTPClient {
	return httpClientFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			l.mu.Lock()
			l.parts = append(l.parts, r.ContentLength)
			l.mu.Unlock()
		}
		return next.Do(r)
	})
}

func (l *partLog) sizes() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.parts)
}

type httpClientFunc func(*http.Request) (*http.Response, error)

func (f httpClientFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }
