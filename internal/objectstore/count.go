package objectstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Count is what is stored under a prefix.
type Count struct {
	Objects       int // current objects: what a plain listing shows
	Versions      int // older (noncurrent) object versions, on a versioned bucket
	DeleteMarkers int // delete markers, current or not, on a versioned bucket
}

// Total is every entry counted: what an erasure has to remove.
func (n Count) Total() int { return n.Objects + n.Versions + n.DeleteMarkers }

// CountPrefix counts what is stored under prefix (an erasure's verification
// pass): one walk of ListObjectVersions on a versioned bucket, of
// ListObjectsV2 otherwise.
func CountPrefix(ctx context.Context, c *s3.Client, bucket, prefix string) (Count, error) {
	return countPrefix(ctx, c, bucket, prefix)
}

func countPrefix(ctx context.Context, c api, bucket, prefix string) (Count, error) {
	var n Count
	err := walk(ctx, c, bucket, prefix, func(e entry) {
		switch {
		case e.deleteMarker:
			n.DeleteMarkers++
		case e.latest:
			n.Objects++
		default:
			n.Versions++
		}
	})
	return n, err
}

// CountOlderThan counts the objects under prefix last modified at or before
// before, every version of them on a versioned bucket (delete markers hold
// no data and are not counted), and gives the oldest LastModified among them
// (zero when there are none). The backup step waits on it: a backup made
// before an erasure still holds the person until it has gone.
func CountOlderThan(ctx context.Context, c *s3.Client, bucket, prefix string, before time.Time) (n int, oldest time.Time, err error) {
	err = walk(ctx, c, bucket, prefix, func(e entry) {
		if e.deleteMarker || e.lastModified.After(before) {
			return
		}
		n++
		if oldest.IsZero() || e.lastModified.Before(oldest) {
			oldest = e.lastModified
		}
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, oldest, nil
}

// entry is one object, object version or delete marker met by a walk.
type entry struct {
	key, versionID string
	lastModified   time.Time
	latest         bool // the current version (always, on an unversioned bucket)
	deleteMarker   bool
}

// walk visits everything stored under prefix once: every object version and
// delete marker on a versioned bucket, every object otherwise.
func walk(ctx context.Context, c api, bucket, prefix string, visit func(entry)) error {
	versioned, err := isVersioned(ctx, c, bucket)
	if err != nil {
		return err
	}
	if versioned {
		return walkVersions(ctx, c, bucket, prefix, visit)
	}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(BatchSize)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", bucket, redact(err))
		}
		for _, o := range page.Contents {
			visit(entry{key: aws.ToString(o.Key), lastModified: aws.ToTime(o.LastModified), latest: true})
		}
	}
	return nil
}

// walkVersions pages through ListObjectVersions with the NextKeyMarker and
// NextVersionIdMarker the server returns. A server that leaves them out
// (gofakes3) is paged by key marker instead, skipping by key and version id
// what a page lists again: S3 resumes after the marker's key, so the marker
// is the last key a page finished; a server that lists the marker's key
// again (gofakes3 does) is given the page's last key. Paged by key, a key
// with more versions than fit on a page cannot be passed, which is an error.
func walkVersions(ctx context.Context, c api, bucket, prefix string, visit func(entry)) error {
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(BatchSize)}
	seen := map[[2]string]bool{} // key paging: entries visited of keys a later page may list
	inclusive := false           // key paging: the server lists the marker's key again
	for {
		page, err := c.ListObjectVersions(ctx, in)
		if err != nil {
			return fmt.Errorf("list versions in %s: %w", bucket, redact(err))
		}
		var keys []string
		fresh := 0
		do := func(e entry) {
			keys = append(keys, e.key)
			id := [2]string{e.key, e.versionID}
			if seen[id] {
				return
			}
			seen[id] = true
			fresh++
			visit(e)
		}
		for _, v := range page.Versions {
			do(entry{key: aws.ToString(v.Key), versionID: aws.ToString(v.VersionId), lastModified: aws.ToTime(v.LastModified), latest: aws.ToBool(v.IsLatest)})
		}
		for _, m := range page.DeleteMarkers {
			do(entry{key: aws.ToString(m.Key), versionID: aws.ToString(m.VersionId), lastModified: aws.ToTime(m.LastModified), latest: aws.ToBool(m.IsLatest), deleteMarker: true})
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		if page.NextKeyMarker != nil {
			in.KeyMarker, in.VersionIdMarker = page.NextKeyMarker, page.NextVersionIdMarker
			clear(seen) // exact paging: nothing comes twice
			continue
		}
		if fresh == 0 {
			return fmt.Errorf("list versions in %s: the server gives no version marker, and a key has more versions than fit on a page", bucket)
		}
		slices.Sort(keys)
		keys = slices.Compact(keys)
		marker := aws.ToString(in.KeyMarker)
		if marker != "" && keys[0] == marker {
			inclusive = true
		}
		switch {
		case inclusive:
			marker = keys[len(keys)-1]
		case len(keys) > 1:
			marker = keys[len(keys)-2] // the last key may go on
		}
		for id := range seen {
			if id[0] < marker {
				delete(seen, id)
			}
		}
		in.KeyMarker, in.VersionIdMarker = nil, nil
		if marker != "" {
			in.KeyMarker = aws.String(marker)
		}
	}
}
