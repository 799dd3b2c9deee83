package objectstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// strictS3 is a versioned bucket that pages ListObjectVersions the way AWS
// documents it, unlike gofakes3 (what the other tests run against): a key
// marker alone resumes after that key's last version, a version id marker
// must name a version that exists, and truncated pages carry
// NextKeyMarker/NextVersionIdMarker unless nextMarkers is false.
type strictS3 struct {
	entries     []strictEntry // by key, then newest first
	nextMarkers bool
	failKey     string // DeleteObjects reports this key as not deleted
	calls       int
}

type strictEntry struct {
	key, version string
	marker       bool
	at           time.Time
}

func (f *strictS3) put(key string, versions int, marker bool) {
	for v := range versions {
		f.entries = append(f.entries, strictEntry{key: key, version: fmt.Sprintf("v%04d", v), at: time.Unix(int64(v), 0)})
	}
	if marker {
		f.entries = append(f.entries, strictEntry{key: key, version: "dm", marker: true, at: time.Unix(int64(versions), 0)})
	}
	slices.SortStableFunc(f.entries, func(a, b strictEntry) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return b.at.Compare(a.at)
	})
}

func (f *strictS3) GetBucketVersioning(ctx context.Context, _ *s3.GetBucketVersioningInput, _ ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error) {
	f.calls++
	return &s3.GetBucketVersioningOutput{Status: types.BucketVersioningStatusEnabled}, ctx.Err()
}

func (f *strictS3) ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return nil, errors.New("not for a versioned bucket")
}

func (f *strictS3) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, _ ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	f.calls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	start := 0
	if km := aws.ToString(in.KeyMarker); km != "" {
		if vm := aws.ToString(in.VersionIdMarker); vm != "" {
			i := slices.IndexFunc(f.entries, func(e strictEntry) bool { return e.key == km && e.version == vm })
			if i < 0 {
				return nil, errors.New("InvalidArgument: no such version id marker")
			}
			start = i + 1
		} else {
			start, _ = slices.BinarySearchFunc(f.entries, km, func(e strictEntry, k string) int {
				if e.key <= k {
					return -1
				}
				return 1
			})
		}
	}
	out := &s3.ListObjectVersionsOutput{}
	n := 0
	for i := start; i < len(f.entries); i++ {
		e := f.entries[i]
		if !strings.HasPrefix(e.key, aws.ToString(in.Prefix)) {
			continue
		}
		if n == int(aws.ToInt32(in.MaxKeys)) {
			out.IsTruncated = aws.Bool(true)
			break
		}
		n++
		latest := aws.Bool(i == 0 || f.entries[i-1].key != e.key)
		if e.marker {
			out.DeleteMarkers = append(out.DeleteMarkers, types.DeleteMarkerEntry{Key: aws.String(e.key), VersionId: aws.String(e.version), IsLatest: latest, LastModified: aws.Time(e.at)})
		} else {
			out.Versions = append(out.Versions, types.ObjectVersion{Key: aws.String(e.key), VersionId: aws.String(e.version), IsLatest: latest, LastModified: aws.Time(e.at)})
		}
		if f.nextMarkers {
			out.NextKeyMarker, out.NextVersionIdMarker = aws.String(e.key), aws.String(e.version)
		}
	}
	if !aws.ToBool(out.IsTruncated) {
		out.NextKeyMarker, out.NextVersionIdMarker = nil, nil
	}
	return out, nil
}

func (f *strictS3) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, _ ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	f.calls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := &s3.DeleteObjectsOutput{}
	for _, id := range in.Delete.Objects {
		if aws.ToString(id.Key) == f.failKey {
			out.Errors = append(out.Errors, types.Error{Key: id.Key, VersionId: id.VersionId, Code: aws.String("AccessDenied"), Message: aws.String("Access Denied")})
			continue
		}
		f.entries = slices.DeleteFunc(f.entries, func(e strictEntry) bool {
			return e.key == aws.ToString(id.Key) && e.version == aws.ToString(id.VersionId)
		})
	}
	return out, nil
}

// seedStrict stores 600 small keys, one key with 1500 versions and a delete
// marker, 400 more small keys, and a sibling prefix: 2501 entries to delete.
func seedStrict(nextMarkers bool) *strictS3 {
	f := &strictS3{nextMarkers: nextMarkers}
	for i := range 600 {
		f.put(fmt.Sprintf("users/7/a%04d", i), 1, false)
	}
	f.put("users/7/big", 1500, true)
	for i := range 400 {
		f.put(fmt.Sprintf("users/7/k%04d", i), 1, false)
	}
	f.put("users/70/keep", 2, true)
	return f
}

func TestStrictPagingDeletesEverythingAndResumes(t *testing.T) {
	for _, nextMarkers := range []bool{true, false} {
		t.Run(fmt.Sprintf("nextMarkers=%v", nextMarkers), func(t *testing.T) {
			f := seedStrict(nextMarkers)
			ctx, cancel := context.WithCancel(context.Background())
			var at Marker
			_, err := deletePrefix(ctx, f, "b", "users/7/", Marker{}, func(m Marker, r DeletePrefixResult) error {
				if n := r.Deleted; n != 1000 {
					t.Errorf("first batch: %d deleted", n)
				}
				at = m
				cancel()
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted call: %v", err)
			}
			// 600 small keys and 400 versions of big went: big is unfinished.
			if at.Key != "users/7/a0599" {
				t.Fatalf("marker after the first batch: %+v", at)
			}
			res, err := deletePrefix(context.Background(), f, "b", "users/7/", at, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Deleted != 1501 || res.Keys != 401 {
				t.Fatalf("resumed call: %+v, want 1501 entries of 401 keys", res)
			}
			if len(f.entries) != 3 || f.entries[0].key != "users/70/keep" {
				t.Fatalf("left: %+v", f.entries)
			}
		})
	}
}

func TestStrictPagingCounts(t *testing.T) {
	f := seedStrict(true)
	n, err := countPrefix(context.Background(), f, "b", "users/7/")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Count{Objects: 1000, Versions: 1500, DeleteMarkers: 1}); n != want {
		t.Fatalf("count %+v, want %+v", n, want)
	}
	// Without page markers a key is paged by key: fine until one key has
	// more versions than a page holds, which must fail, not miscount.
	f = seedStrict(false)
	if _, err := countPrefix(context.Background(), f, "b", "users/7/"); err == nil || !strings.Contains(err.Error(), "more versions than fit") {
		t.Fatalf("a 1500-version key without page markers: %v", err)
	}
	f = &strictS3{}
	for i := range 700 {
		f.put(fmt.Sprintf("users/7/a%04d", i), 1, false)
	}
	f.put("users/7/b", 600, true) // over the page boundary
	f.put("users/7/c", 999, false)
	for i := range 700 {
		f.put(fmt.Sprintf("users/7/d%04d", i), 2, false)
	}
	n, err = countPrefix(context.Background(), f, "b", "users/7/")
	if want := (Count{Objects: 1401, Versions: 600 + 998 + 700, DeleteMarkers: 1}); err != nil || n != want {
		t.Fatalf("paged by key: %+v (%v), want %+v", n, err, want)
	}
}

func TestDeleteErrorsFailTheCallWithoutNamingKeys(t *testing.T) {
	f := seedStrict(true)
	f.failKey = "users/7/big"
	res, err := deletePrefix(context.Background(), f, "b", "users/7/", Marker{}, nil)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") || strings.Contains(err.Error(), "users/7") {
		t.Fatalf("err %v", err)
	}
	if res.Deleted != 0 {
		t.Fatalf("a failed batch counted as deleted: %+v", res)
	}
}
