package objectstore_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/s3local"
)

func newClient(t *testing.T) *s3.Client {
	t.Helper()
	srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c, err := objectstore.New(context.Background(), objectstore.Options{
		Endpoint: srv.URL, Region: s3local.Region, AccessKeyID: s3local.AccessKeyID,
		SecretAccessKey: s3local.SecretAccessKey, UsePathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func put(t *testing.T, c *s3.Client, bucket, key string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatal(err)
	}
}

func TestDeletePrefixBatchesAndResumes(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	if err := objectstore.EnsureBucket(ctx, c, "app-data"); err != nil {
		t.Fatal(err)
	}
	if err := objectstore.EnsureBucket(ctx, c, "app-data"); err != nil {
		t.Fatalf("second EnsureBucket: %v", err)
	}
	for i := 0; i < 2500; i++ {
		put(t, c, "app-data", fmt.Sprintf("projects/7/%05d", i))
	}
	put(t, c, "app-data", "projects/70/keep")
	put(t, c, "app-data", "projects/8/keep")

	var last string
	res, err := objectstore.DeletePrefix(ctx, c, "app-data", "projects/7/", "", func(k string, _ int) { last = k })
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 2500 || res.Calls > 2*3+1 {
		t.Fatalf("deleted %d objects in %d calls; want 2500 in at most 7", res.Deleted, res.Calls)
	}
	if last != "projects/7/02499" {
		t.Fatalf("last key %q", last)
	}
	for prefix, want := range map[string]int{"projects/7/": 0, "projects/70/": 1, "projects/8/": 1} {
		if n, err := objectstore.CountPrefix(ctx, c, "app-data", prefix); err != nil || n != want {
			t.Fatalf("%s: %d objects left (%v), want %d", prefix, n, err, want)
		}
	}
	// A retry after everything is gone does nothing and fails nothing.
	if res, err := objectstore.DeletePrefix(ctx, c, "app-data", "projects/7/", last, nil); err != nil || res.Deleted != 0 {
		t.Fatalf("repeat: %+v %v", res, err)
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
		} else if n, err := objectstore.CountPrefix(ctx, c, "kept", "a/"); err != nil || n != 1 {
			t.Fatalf("after restart: %d objects (%v)", n, err)
		}
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
