// Package objectstore talks to S3 (AWS in production, MinIO in compose, an
// in-process S3 server in dev and tests) through the real aws-sdk-go-v2 client.
package objectstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Options say where S3 is. Empty credentials use the SDK's default chain
// (environment, shared config, instance role).
type Options struct {
	Endpoint        string // empty: AWS
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	UsePathStyle    bool
}

// New builds an S3 client.
func New(ctx context.Context, o Options) (*s3.Client, error) {
	loadOpts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(o.Region)}
	if o.AccessKeyID != "" {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3 config: %w", err)
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.UsePathStyle
	}), nil
}

// EnsureBucket creates bucket unless it exists already.
func EnsureBucket(ctx context.Context, c *s3.Client, bucket string) error {
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		return nil
	}
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// BatchSize is the most entries one DeleteObjects call takes (S3's own
// limit), and the page size of every listing here.
const BatchSize = 1000

// Marker is where a DeletePrefix call got to: every key under the prefix up
// to and including Key, in listing order, is gone with all its versions, so
// a call given the Marker lists only what comes after it. The zero Marker
// starts at the beginning of the prefix. It is plain data, for an activity's
// heartbeat.
//
// It holds no version id. DeletePrefix deletes what it lists, so a version
// id marker would name a version that no longer exists, and S3 servers
// disagree on what that means (gofakes3 fails the listing). A key whose
// versions run over a page boundary is listed again from its first
// remaining version instead: the ones already deleted are no longer listed.
type Marker struct {
	Key string
}

// DeletePrefixResult counts what a DeletePrefix call removed.
type DeletePrefixResult struct {
	// Deleted is the entries removed: objects, or on a versioned bucket
	// object versions and delete markers.
	Deleted int
	// Keys is the distinct keys among them. A key whose versions a resumed
	// call finished counts in both calls.
	Keys  int
	Calls int // S3 API calls made
}

// DeletePrefix deletes everything under prefix: on a versioned bucket
// (versioning enabled or suspended) every object version and every delete
// marker, otherwise every object. It asks for the bucket's versioning once,
// then lists a page of up to 1000 entries and deletes it in one DeleteObjects
// call, so n entries cost 2*ceil(n/1000)+1 calls (one more when the server
// says the last page was truncated). Any key the server fails to delete is an
// error (worth retrying).
//
// After each batch progress, when not nil, receives the Marker to resume
// from and what this call has deleted so far; a later call given that
// Marker resumes there (an activity heartbeats it, and records it). An
// error from progress stops the call with that error. A Marker that is
// not under prefix is ignored. Running it twice is harmless.
func DeletePrefix(ctx context.Context, c *s3.Client, bucket, prefix string, from Marker, progress func(Marker, DeletePrefixResult) error) (DeletePrefixResult, error) {
	return deletePrefix(ctx, c, bucket, prefix, from, progress)
}

// api is the part of *s3.Client this package uses (tests put a server with
// other paging habits behind it).
type api interface {
	GetBucketVersioning(context.Context, *s3.GetBucketVersioningInput, ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	ListObjectVersions(context.Context, *s3.ListObjectVersionsInput, ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
	DeleteObjects(context.Context, *s3.DeleteObjectsInput, ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
}

// deletePrefix is DeletePrefix on any api.
func deletePrefix(ctx context.Context, c api, bucket, prefix string, from Marker, progress func(Marker, DeletePrefixResult) error) (DeletePrefixResult, error) {
	var res DeletePrefixResult
	versioned, err := isVersioned(ctx, c, bucket)
	res.Calls++
	if err != nil {
		return res, err
	}
	list := listCurrent
	if versioned {
		list = listVersions
	}
	at := from
	if !strings.HasPrefix(at.Key, prefix) {
		at = Marker{}
	}
	var lastKey, lastFirst string // the previous batch's greatest key and first entry
	for {
		b, err := list(ctx, c, bucket, prefix, at)
		res.Calls++
		if err != nil {
			return res, err
		}
		if len(b.ids) == 0 {
			return res, nil
		}
		// Each page starts after what was deleted; the same first entry
		// again means the server kept what it said it deleted.
		first := aws.ToString(b.ids[0].Key) + "\x00" + aws.ToString(b.ids[0].VersionId)
		if first == lastFirst {
			return res, fmt.Errorf("delete objects in %s: entries reported deleted are still listed", bucket)
		}
		lastFirst = first
		err = deleteBatch(ctx, c, bucket, b.ids)
		res.Calls++
		if err != nil {
			return res, err
		}
		res.Deleted += len(b.ids)
		res.Keys += len(b.keys)
		if b.keys[0] == lastKey {
			res.Keys-- // its first versions were in the previous batch
		}
		lastKey = b.keys[len(b.keys)-1]
		at = b.next
		if progress != nil {
			if err := progress(at, res); err != nil {
				return res, err
			}
		}
		if !b.more {
			return res, nil
		}
	}
}

// batch is one page of a listing, ready for DeleteObjects.
type batch struct {
	ids  []types.ObjectIdentifier
	keys []string // the distinct keys of ids, ascending
	next Marker   // where the listing resumes once ids are deleted
	more bool     // the server has more after this page
}

// listCurrent lists the objects after the marker (an unversioned bucket).
func listCurrent(ctx context.Context, c api, bucket, prefix string, after Marker) (batch, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(BatchSize)}
	if after.Key != "" {
		in.StartAfter = aws.String(after.Key)
	}
	page, err := c.ListObjectsV2(ctx, in)
	if err != nil {
		return batch{}, fmt.Errorf("list %s: %w", bucket, redact(err))
	}
	b := batch{next: after, more: aws.ToBool(page.IsTruncated)}
	for _, o := range page.Contents {
		b.ids = append(b.ids, types.ObjectIdentifier{Key: o.Key})
		b.keys = append(b.keys, aws.ToString(o.Key))
	}
	if n := len(b.keys); n > 0 {
		b.next = Marker{Key: b.keys[n-1]}
	}
	return b, nil
}

// listVersions lists the object versions and delete markers of the keys
// after the marker (a versioned bucket).
func listVersions(ctx context.Context, c api, bucket, prefix string, after Marker) (batch, error) {
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(BatchSize)}
	if after.Key != "" {
		in.KeyMarker = aws.String(after.Key)
	}
	page, err := c.ListObjectVersions(ctx, in)
	if err != nil {
		return batch{}, fmt.Errorf("list versions in %s: %w", bucket, redact(err))
	}
	b := batch{next: after, more: aws.ToBool(page.IsTruncated)}
	seen := map[string]bool{}
	add := func(key, version *string) {
		b.ids = append(b.ids, types.ObjectIdentifier{Key: key, VersionId: version})
		if k := aws.ToString(key); !seen[k] {
			seen[k] = true
			b.keys = append(b.keys, k)
		}
	}
	for _, v := range page.Versions {
		add(v.Key, v.VersionId)
	}
	for _, m := range page.DeleteMarkers {
		add(m.Key, m.VersionId)
	}
	slices.Sort(b.keys)
	// A truncated page's greatest key may have versions on the next page,
	// so only the keys before it are finished.
	switch n := len(b.keys); {
	case n > 0 && !b.more:
		b.next = Marker{Key: b.keys[n-1]}
	case n > 1:
		b.next = Marker{Key: b.keys[n-2]}
	}
	return b, nil
}

// deleteBatch deletes up to BatchSize entries in one call; any entry the
// server reports it could not delete makes it fail.
func deleteBatch(ctx context.Context, c api, bucket string, ids []types.ObjectIdentifier) error {
	out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(bucket),
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("delete objects in %s: %w", bucket, redact(err))
	}
	if len(out.Errors) > 0 {
		// The code only: the key and message name the person.
		return fmt.Errorf("delete objects in %s: %d of %d failed, first: %s", bucket, len(out.Errors), len(ids), aws.ToString(out.Errors[0].Code))
	}
	return nil
}

// isVersioned says whether bucket keeps object versions: versioning is
// enabled, or suspended (versions made while it was enabled stay).
func isVersioned(ctx context.Context, c api, bucket string) (bool, error) {
	out, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(bucket)})
	if err != nil {
		return false, fmt.Errorf("versioning of %s: %w", bucket, redact(err))
	}
	return out.Status == types.BucketVersioningStatusEnabled || out.Status == types.BucketVersioningStatusSuspended, nil
}

// redact drops the query from the URL of a request that could not be sent:
// a listing's query holds its prefix, and a prefix names a person.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if i := strings.IndexByte(ue.URL, '?'); i >= 0 {
			ue.URL = ue.URL[:i]
		}
	}
	return err
}
