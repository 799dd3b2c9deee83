package objectstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/testenv/s3calls"
)

func newClient(tb testing.TB) *s3.Client {
	tb.Helper()
	srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = srv.Close() })
	c, err := objectstore.New(context.Background(), objectstore.Options{
		Endpoint: srv.URL, Region: s3local.Region, AccessKeyID: s3local.AccessKeyID,
		SecretAccessKey: s3local.SecretAccessKey, UsePathStyle: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	// Connections the client dialled and never used hold the server's
	// shutdown up for 5 s; close them first.
	tb.Cleanup(func() {
		if h, ok := c.Options().HTTPClient.(interface{ CloseIdleConnections() }); ok {
			h.CloseIdleConnections()
		}
	})
	return c
}

// newBucket creates bucket, with versioning enabled when versioned.
func newBucket(tb testing.TB, c *s3.Client, bucket string, versioned bool) {
	tb.Helper()
	ctx := context.Background()
	if err := objectstore.EnsureBucket(ctx, c, bucket); err != nil {
		tb.Fatal(err)
	}
	if versioned {
		if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
			tb.Fatal(err)
		}
	}
}

func putObject(c *s3.Client, bucket, key string) error {
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader([]byte("x"))})
	return err
}

func deleteObject(c *s3.Client, bucket, key string) error {
	_, err := c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return err
}

func put(tb testing.TB, c *s3.Client, bucket, key string) {
	tb.Helper()
	if err := putObject(c, bucket, key); err != nil {
		tb.Fatal(err)
	}
}

func del(tb testing.TB, c *s3.Client, bucket, key string) {
	tb.Helper()
	if err := deleteObject(c, bucket, key); err != nil {
		tb.Fatal(err)
	}
}

// seed runs each(i) for i in [0, n) on 16 goroutines and fails tb on the
// first error.
func seed(tb testing.TB, n int, each func(i int) error) {
	tb.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := each(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}

func count(t *testing.T, c *s3.Client, bucket, prefix string) objectstore.Count {
	t.Helper()
	n, err := objectstore.CountPrefix(context.Background(), c, bucket, prefix)
	if err != nil {
		t.Fatalf("count %s: %v", prefix, err)
	}
	return n
}

// The in-process server really keeps versions: the versioned tests below
// mean something only if it does.
func TestS3LocalKeepsVersionsAndDeleteMarkers(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	newBucket(t, c, "ver", true)
	put(t, c, "ver", "k")
	put(t, c, "ver", "k")
	del(t, c, "ver", "k")
	vers, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("ver")})
	if err != nil || vers.Status != types.BucketVersioningStatusEnabled {
		t.Fatalf("versioning %q (%v)", vers.Status, err)
	}
	out, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("ver")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Versions) != 2 || len(out.DeleteMarkers) != 1 || !aws.ToBool(out.DeleteMarkers[0].IsLatest) {
		t.Fatalf("%d versions, %d delete markers", len(out.Versions), len(out.DeleteMarkers))
	}
	if out.Versions[0].VersionId == nil || aws.ToString(out.Versions[0].VersionId) == aws.ToString(out.Versions[1].VersionId) {
		t.Fatal("versions have no distinct ids")
	}
	if cur, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("ver")}); err != nil || len(cur.Contents) != 0 {
		t.Fatalf("a deleted key is still listed: %v", err)
	}
	if n := count(t, c, "ver", ""); n != (objectstore.Count{Versions: 2, DeleteMarkers: 1}) {
		t.Fatalf("count %+v", n)
	}
}

// seedVersioned stores under prefix 2500 keys; every 10th has three
// versions and every 25th is deleted (a delete marker on top): 3100 entries.
func seedVersioned(tb testing.TB, c *s3.Client, bucket, prefix string) {
	tb.Helper()
	seed(tb, 2500, func(i int) error {
		key := fmt.Sprintf("%s%05d", prefix, i)
		puts := 1
		if i%10 == 0 {
			puts = 3
		}
		for range puts {
			if err := putObject(c, bucket, key); err != nil {
				return err
			}
		}
		if i%25 == 0 {
			return deleteObject(c, bucket, key)
		}
		return nil
	})
}

func TestDeletePrefixRemovesEveryVersionAndDeleteMarker(t *testing.T) {
	ctx := context.Background()
	base := newClient(t)
	newBucket(t, base, "app-data", true)
	seedVersioned(t, base, "app-data", "users/1/")
	put(t, base, "app-data", "users/10/a") // a sibling whose prefix starts the same
	put(t, base, "app-data", "users/10/a")
	del(t, base, "app-data", "users/10/a")
	put(t, base, "app-data", "users/1") // the prefix without its slash
	put(t, base, "app-data", "users/2/x")

	const entries = 3100
	if n := count(t, base, "app-data", "users/1/"); n != (objectstore.Count{Objects: 2400, Versions: 600, DeleteMarkers: 100}) || n.Total() != entries {
		t.Fatalf("before: %+v", n)
	}

	calls := s3calls.New()
	c := calls.Client(base)
	var markers []objectstore.Marker
	var last int
	res, err := objectstore.DeletePrefix(ctx, c, "app-data", "users/1/", objectstore.Marker{}, func(m objectstore.Marker, r objectstore.DeletePrefixResult) error {
		markers = append(markers, m)
		last = r.Deleted
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != entries || res.Keys != 2500 || last != entries {
		t.Fatalf("deleted %+v, progress ended at %d; want %d entries of 2500 keys", res, last, entries)
	}
	budget := 2*((entries+999)/1000) + 3
	if calls.Total() > budget || res.Calls != calls.Total() {
		t.Fatalf("%d S3 calls (%v), result says %d; budget %d", calls.Total(), calls.ByOperation(), res.Calls, budget)
	}
	if calls.Of("GetBucketVersioning") != 1 || calls.Of("DeleteObjects") != 4 || calls.Of("ListObjectsV2") != 0 {
		t.Fatalf("calls %v", calls.ByOperation())
	}
	for i := 1; i < len(markers); i++ {
		if markers[i].Key < markers[i-1].Key || !strings.HasPrefix(markers[i].Key, "users/1/") {
			t.Fatalf("markers %+v", markers)
		}
	}

	if n := count(t, base, "app-data", "users/1/"); n.Total() != 0 {
		t.Fatalf("after: %+v left", n)
	}
	if n := count(t, base, "app-data", "users/10/"); n != (objectstore.Count{Versions: 2, DeleteMarkers: 1}) {
		t.Fatalf("sibling users/10/: %+v", n)
	}
	if n := count(t, base, "app-data", "users/2/"); n.Objects != 1 {
		t.Fatalf("users/2/: %+v", n)
	}
	if _, err := base.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("app-data"), Key: aws.String("users/1")}); err != nil {
		t.Fatalf("the key users/1 went: %v", err)
	}

	// A retry after everything is gone does nothing and fails nothing.
	for _, from := range []objectstore.Marker{markers[len(markers)-1], {}} {
		if res, err := objectstore.DeletePrefix(ctx, c, "app-data", "users/1/", from, nil); err != nil || res.Deleted != 0 {
			t.Fatalf("repeat from %+v: %+v %v", from, res, err)
		}
	}
}

func TestDeletePrefixResumesFromItsMarker(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	newBucket(t, c, "app-data", true)
	// 600 keys, one key with 1500 versions over three pages, 400 keys.
	seed(t, 600, func(i int) error { return putObject(c, "app-data", fmt.Sprintf("users/7/a%04d", i)) })
	for range 1500 {
		put(t, c, "app-data", "users/7/big")
	}
	seed(t, 400, func(i int) error { return putObject(c, "app-data", fmt.Sprintf("users/7/k%04d", i)) })
	put(t, c, "app-data", "users/70/keep")
	put(t, c, "app-data", "users/70/keep")

	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	var at objectstore.Marker
	first, err := objectstore.DeletePrefix(stop, c, "app-data", "users/7/", objectstore.Marker{}, func(m objectstore.Marker, _ objectstore.DeletePrefixResult) error {
		at = m
		cancel() // the activity dies after its first batch
		return nil
	})
	if !errors.Is(err, context.Canceled) || first.Deleted != 1000 {
		t.Fatalf("first attempt: %+v %v", first, err)
	}
	if at.Key != "users/7/a0599" {
		t.Fatalf("marker %+v: want the last key finished, not the one the page cut", at)
	}
	// (Counting users/7/big, 1100 versions, needs page markers gofakes3 lacks.)
	if a, k := count(t, c, "app-data", "users/7/a"), count(t, c, "app-data", "users/7/k"); a.Total() != 0 || k.Objects != 400 {
		t.Fatalf("after the first attempt: a* %+v, k* %+v", a, k)
	}
	rest, err := objectstore.DeletePrefix(ctx, c, "app-data", "users/7/", at, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Deleted+rest.Deleted != 2500 {
		t.Fatalf("deleted %d then %d, want 2500 in all", first.Deleted, rest.Deleted)
	}
	if n := count(t, c, "app-data", "users/7/"); n.Total() != 0 {
		t.Fatalf("left: %+v", n)
	}
	if n := count(t, c, "app-data", "users/70/"); n != (objectstore.Count{Objects: 1, Versions: 1}) {
		t.Fatalf("sibling: %+v", n)
	}
	// A marker from another prefix (a changed data map) starts over rather
	// than skipping anything.
	put(t, c, "app-data", "users/7/again")
	if res, err := objectstore.DeletePrefix(ctx, c, "app-data", "users/7/", objectstore.Marker{Key: "users/8/zzz"}, nil); err != nil || res.Deleted != 1 {
		t.Fatalf("foreign marker: %+v %v", res, err)
	}
}

func TestDeletePrefixUnversioned(t *testing.T) {
	ctx := context.Background()
	base := newClient(t)
	newBucket(t, base, "app-data", false)
	if err := objectstore.EnsureBucket(ctx, base, "app-data"); err != nil {
		t.Fatalf("second EnsureBucket: %v", err)
	}
	seed(t, 2500, func(i int) error { return putObject(base, "app-data", fmt.Sprintf("projects/7/%05d", i)) })
	put(t, base, "app-data", "projects/70/keep")
	put(t, base, "app-data", "projects/8/keep")

	calls := s3calls.New()
	c := calls.Client(base)
	var last objectstore.Marker
	res, err := objectstore.DeletePrefix(ctx, c, "app-data", "projects/7/", objectstore.Marker{}, func(m objectstore.Marker, _ objectstore.DeletePrefixResult) error { last = m; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 2500 || res.Keys != 2500 || calls.Total() > 2*3+3 || calls.Of("ListObjectVersions") != 0 {
		t.Fatalf("deleted %+v in %v calls; want 2500 in at most 9", res, calls.ByOperation())
	}
	if last.Key != "projects/7/02499" {
		t.Fatalf("last marker %+v", last)
	}
	for prefix, want := range map[string]int{"projects/7/": 0, "projects/70/": 1, "projects/8/": 1} {
		if n := count(t, base, "app-data", prefix); n != (objectstore.Count{Objects: want}) {
			t.Fatalf("%s: %+v left, want %d", prefix, n, want)
		}
	}
	if res, err := objectstore.DeletePrefix(ctx, c, "app-data", "projects/7/", last, nil); err != nil || res.Deleted != 0 {
		t.Fatalf("repeat: %+v %v", res, err)
	}
}

func TestCountOlderThan(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for _, versioned := range []bool{true, false} {
		bucket := fmt.Sprintf("backups-%v", versioned)
		newBucket(t, c, bucket, versioned)
		t0 := time.Now().Truncate(time.Millisecond)
		put(t, c, bucket, "db/a")
		t1 := time.Now()
		put(t, c, bucket, "db/b")
		put(t, c, bucket, "dbx/old") // not under db/
		time.Sleep(20 * time.Millisecond)
		cut := time.Now()
		time.Sleep(20 * time.Millisecond)
		put(t, c, bucket, "db/a") // a new version (unversioned: replaces the old one)
		put(t, c, bucket, "db/c")
		del(t, c, bucket, "db/b") // a delete marker (unversioned: gone)

		n, oldest, err := objectstore.CountOlderThan(ctx, c, bucket, "db/", cut)
		if err != nil {
			t.Fatal(err)
		}
		want := 0 // unversioned: a and b as they were are gone
		if versioned {
			want = 2 // the first versions of a and b
		}
		if n != want {
			t.Fatalf("versioned=%v: %d objects at or before the cut, want %d", versioned, n, want)
		}
		if versioned && (oldest.Before(t0) || oldest.After(t1)) {
			t.Fatalf("oldest %v, want the first put, in [%v, %v]", oldest, t0, t1)
		}
		if !versioned && !oldest.IsZero() {
			t.Fatalf("oldest %v with nothing counted", oldest)
		}
		if n, _, err := objectstore.CountOlderThan(ctx, c, bucket, "db/", time.Now().Add(time.Minute)); err != nil || n != map[bool]int{true: 4, false: 2}[versioned] {
			t.Fatalf("versioned=%v: everything before now: %d (%v)", versioned, n, err)
		}
		if n, oldest, err := objectstore.CountOlderThan(ctx, c, bucket, "db/", t0.Add(-time.Second)); err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("nothing before t0: %d %v %v", n, oldest, err)
		}
	}
}

// failListings fails every listing request, as a broken network would.
type failListings struct{}

func (failListings) RoundTrip(r *http.Request) (*http.Response, error) {
	if q := r.URL.Query(); q.Has("versions") || q.Has("list-type") {
		return nil, errors.New("connection reset")
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestErrorsDoNotNameThePrefix(t *testing.T) {
	ctx := context.Background()
	base := newClient(t)
	newBucket(t, base, "ver", true)
	newBucket(t, base, "unv", false)
	c := s3.New(base.Options(), func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: failListings{}}
		o.RetryMaxAttempts = 1
	})
	for _, bucket := range []string{"ver", "unv"} {
		_, err := objectstore.DeletePrefix(ctx, c, bucket, "users/4242/", objectstore.Marker{}, nil)
		if err == nil || strings.Contains(err.Error(), "4242") || !strings.Contains(err.Error(), "connection reset") {
			t.Fatalf("%s: delete: %v", bucket, err)
		}
		_, err = objectstore.CountPrefix(ctx, c, bucket, "users/4242/")
		if err == nil || strings.Contains(err.Error(), "4242") {
			t.Fatalf("%s: count: %v", bucket, err)
		}
	}
}

func TestFileStoreKeepsObjectsAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/s3.db"
	for round := 0; round < 2; round++ {
		srv, err := s3local.StartFile("127.0.0.1:0", path)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := objectstore.New(ctx, objectstore.Options{Endpoint: srv.URL, Region: s3local.Region,
			AccessKeyID: s3local.AccessKeyID, SecretAccessKey: s3local.SecretAccessKey, UsePathStyle: true})
		if round == 0 {
			if err := objectstore.EnsureBucket(ctx, c, "kept"); err != nil {
				t.Fatal(err)
			}
			put(t, c, "kept", "a/b")
		} else if n, err := objectstore.CountPrefix(ctx, c, "kept", "a/"); err != nil || n != (objectstore.Count{Objects: 1}) {
			t.Fatalf("after restart: %+v (%v)", n, err)
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
