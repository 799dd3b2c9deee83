package s3local_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/s3local"
)

func startFile(t *testing.T, path string) (*s3local.Server, *s3.Client) {
	t.Helper()
	srv, err := s3local.StartFile("127.0.0.1:0", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := objectstore.New(context.Background(), objectstore.Options{Endpoint: srv.URL, Region: s3local.Region,
		AccessKeyID: s3local.AccessKeyID, SecretAccessKey: s3local.SecretAccessKey, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func versioned(t *testing.T, c *s3.Client, bucket string, status s3types.BucketVersioningStatus) {
	t.Helper()
	if _, err := c.PutBucketVersioning(context.Background(), &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: status}}); err != nil {
		t.Fatalf("PutBucketVersioning %s: %v", status, err)
	}
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) string {
	t.Helper()
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

func get(t *testing.T, c *s3.Client, bucket, key, version string) (string, error) {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := c.GetObject(context.Background(), in)
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

// entry is one line of ListObjectVersions: key, version id, marker or not, latest or not.
type entry struct {
	Key, Version   string
	Marker, Latest bool
	Modified       time.Time
}

// versions lists every version and delete marker under prefix, page by
// page with the markers the server returns, failing on a repeated entry.
func versions(t *testing.T, c *s3.Client, bucket, prefix string, pageSize int32) ([]entry, int) {
	t.Helper()
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
	if pageSize > 0 {
		in.MaxKeys = aws.Int32(pageSize)
	}
	var out []entry
	pages := 0
	for {
		page, err := c.ListObjectVersions(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		var got []entry
		for _, v := range page.Versions {
			got = append(got, entry{aws.ToString(v.Key), aws.ToString(v.VersionId), false, aws.ToBool(v.IsLatest), aws.ToTime(v.LastModified)})
		}
		for _, m := range page.DeleteMarkers {
			got = append(got, entry{aws.ToString(m.Key), aws.ToString(m.VersionId), true, aws.ToBool(m.IsLatest), aws.ToTime(m.LastModified)})
		}
		if pageSize > 0 && len(got) > int(pageSize) {
			t.Fatalf("a page of %d holds %d entries", pageSize, len(got))
		}
		for _, e := range got {
			for _, seen := range out {
				if seen.Key == e.Key && seen.Version == e.Version {
					t.Fatalf("%s %s listed twice", e.Key, e.Version)
				}
			}
		}
		out = append(out, got...)
		if !aws.ToBool(page.IsTruncated) {
			return out, pages
		}
		if page.NextKeyMarker == nil {
			t.Fatal("a truncated page without NextKeyMarker")
		}
		in.KeyMarker, in.VersionIdMarker = page.NextKeyMarker, page.NextVersionIdMarker
	}
}

func notFound(err error) bool {
	var nsk *s3types.NoSuchKey
	return errors.As(err, &nsk)
}

func TestFileStoreKeepsVersionsAsS3Does(t *testing.T) {
	ctx := context.Background()
	_, c := startFile(t, filepath.Join(t.TempDir(), "s3.db"))
	if err := objectstore.EnsureBucket(ctx, c, "uploads"); err != nil {
		t.Fatal(err)
	}
	versioned(t, c, "uploads", s3types.BucketVersioningStatusEnabled)
	got, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("uploads")})
	if err != nil || got.Status != s3types.BucketVersioningStatusEnabled {
		t.Fatalf("GetBucketVersioning: %v %v", got.Status, err)
	}

	v1 := put(t, c, "uploads", "avatars/7/me.png", "one")
	v2 := put(t, c, "uploads", "avatars/7/me.png", "two")
	put(t, c, "uploads", "avatars/8/me.png", "someone else")
	if v1 == "" || v2 == "" || v1 == v2 {
		t.Fatalf("version ids %q, %q", v1, v2)
	}
	del, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("uploads"), Key: aws.String("avatars/7/me.png")})
	if err != nil || !aws.ToBool(del.DeleteMarker) || aws.ToString(del.VersionId) == "" {
		t.Fatalf("delete: %+v %v", del, err)
	}
	marker := aws.ToString(del.VersionId)

	// The key is gone for a plain GET and a listing; its versions stay.
	if _, err := get(t, c, "uploads", "avatars/7/me.png", ""); !notFound(err) {
		t.Fatalf("GET after the delete marker: %v", err)
	}
	if body, err := get(t, c, "uploads", "avatars/7/me.png", v1); err != nil || body != "one" {
		t.Fatalf("GET version 1: %q %v", body, err)
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("uploads")})
	if err != nil || len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != "avatars/8/me.png" {
		t.Fatalf("ListObjectsV2: %+v %v", list, err)
	}
	es, _ := versions(t, c, "uploads", "avatars/7/", 0)
	want := []entry{{Key: "avatars/7/me.png", Version: marker, Marker: true, Latest: true},
		{Key: "avatars/7/me.png", Version: v2}, {Key: "avatars/7/me.png", Version: v1}}
	for i := range es {
		es[i].Modified = time.Time{}
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(b.Version, a.Version) })
	if !slices.Equal(es, want) {
		t.Fatalf("versions\n got %+v\nwant %+v", es, want)
	}

	// Deleting the delete marker brings the latest version back (gofakes3's
	// in-memory backend loses the object here).
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("uploads"), Key: aws.String("avatars/7/me.png"), VersionId: aws.String(marker)}); err != nil {
		t.Fatal(err)
	}
	if body, err := get(t, c, "uploads", "avatars/7/me.png", ""); err != nil || body != "two" {
		t.Fatalf("GET after removing the marker: %q %v", body, err)
	}
	// Deleting the latest version makes the one before it the latest.
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("uploads"), Key: aws.String("avatars/7/me.png"), VersionId: aws.String(v2)}); err != nil {
		t.Fatal(err)
	}
	if body, err := get(t, c, "uploads", "avatars/7/me.png", ""); err != nil || body != "one" {
		t.Fatalf("GET after removing the latest version: %q %v", body, err)
	}

	// Lethe's erasure of a prefix takes every version and marker.
	put(t, c, "uploads", "avatars/7/me.png", "three")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("uploads"), Key: aws.String("avatars/7/me.png")}); err != nil {
		t.Fatal(err)
	}
	res, err := objectstore.DeletePrefix(ctx, c, "uploads", "avatars/7/", objectstore.Marker{}, nil)
	if err != nil || res.Deleted != 3 {
		t.Fatalf("DeletePrefix: %+v %v, want 3 entries deleted", res, err)
	}
	if es, _ := versions(t, c, "uploads", "avatars/7/", 0); len(es) != 0 {
		t.Fatalf("left after the erasure: %+v", es)
	}
	if es, _ := versions(t, c, "uploads", "avatars/8/", 0); len(es) != 1 {
		t.Fatalf("someone else's object: %+v", es)
	}

	// Suspended: a write replaces the "null" version, versions made before stay.
	versioned(t, c, "uploads", s3types.BucketVersioningStatusSuspended)
	put(t, c, "uploads", "avatars/8/me.png", "null one")
	put(t, c, "uploads", "avatars/8/me.png", "null two")
	es, _ = versions(t, c, "uploads", "avatars/8/", 0)
	if len(es) != 2 || es[0].Version != "null" || !es[0].Latest {
		t.Fatalf("suspended: %+v", es)
	}
	if body, err := get(t, c, "uploads", "avatars/8/me.png", "null"); err != nil || body != "null two" {
		t.Fatalf("GET the null version: %q %v", body, err)
	}
}

// Listings page with exact markers: every version once, in pages no
// larger than asked, including a key whose versions span pages.
func TestFileStorePagesListingsWithMarkers(t *testing.T) {
	ctx := context.Background()
	_, c := startFile(t, filepath.Join(t.TempDir(), "s3.db"))
	if err := objectstore.EnsureBucket(ctx, c, "bkt"); err != nil {
		t.Fatal(err)
	}
	versioned(t, c, "bkt", s3types.BucketVersioningStatusEnabled)
	total := 0
	for k := range 5 {
		for v := range k + 1 {
			put(t, c, "bkt", fmt.Sprintf("p/%d", k), fmt.Sprint(v))
			total++
		}
	}
	put(t, c, "bkt", "q/outside", "x")
	for _, size := range []int32{1, 2, 4, 1000} {
		es, pages := versions(t, c, "bkt", "p/", size)
		if len(es) != total {
			t.Errorf("page size %d: %d entries, want %d", size, len(es), total)
		}
		if wantPages := (total + int(size) - 1) / int(size); pages != wantPages {
			t.Errorf("page size %d: %d pages, want %d", size, pages, wantPages)
		}
	}
	// ListObjectsV2 with a delimiter: common prefixes page too.
	var prefixes, keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("bkt"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range page.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if !slices.Equal(prefixes, []string{"p/", "q/"}) || len(keys) != 0 {
		t.Fatalf("delimited listing: prefixes %v, keys %v", prefixes, keys)
	}
	keys = nil
	p = s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("bkt"), Prefix: aws.String("p/"), MaxKeys: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if !slices.Equal(keys, []string{"p/0", "p/1", "p/2", "p/3", "p/4"}) {
		t.Fatalf("paged listing: %v", keys)
	}
}

// A restart keeps buckets, their versioning, every version and delete
// marker with its id and time.
func TestFileStoreKeepsEverythingAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s3.db")
	srv, c := startFile(t, path)
	if err := objectstore.EnsureBucket(ctx, c, "kept"); err != nil {
		t.Fatal(err)
	}
	versioned(t, c, "kept", s3types.BucketVersioningStatusEnabled)
	put(t, c, "kept", "a/b", "first")
	put(t, c, "kept", "a/b", "second")
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("kept"), Key: aws.String("a/b")}); err != nil {
		t.Fatal(err)
	}
	before, _ := versions(t, c, "kept", "", 0)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	srv, c = startFile(t, path)
	defer srv.Close()
	after, _ := versions(t, c, "kept", "", 0)
	if len(before) != 3 || !slices.EqualFunc(before, after, func(a, b entry) bool {
		return a == b || a.Modified.Equal(b.Modified) && a.Key == b.Key && a.Version == b.Version && a.Marker == b.Marker && a.Latest == b.Latest
	}) {
		t.Fatalf("after a restart\n got %+v\nwant %+v", after, before)
	}
	got, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("kept")})
	if err != nil || got.Status != s3types.BucketVersioningStatusEnabled {
		t.Fatalf("versioning after a restart: %v %v", got.Status, err)
	}
	put(t, c, "kept", "a/b", "third")
	if es, _ := versions(t, c, "kept", "", 0); len(es) != 4 {
		t.Fatalf("a write after the restart: %+v", es)
	}
}
