// Package objectstore talks to S3 (AWS in production, MinIO in compose, an
// in-process S3 server in dev and tests) through the real aws-sdk-go-v2 client.
package objectstore

import (
	"context"
	"errors"
	"fmt"

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

// BatchSize is the most keys one DeleteObjects call takes (S3's own limit).
const BatchSize = 1000

// DeletePrefixResult counts what a DeletePrefix call removed.
type DeletePrefixResult struct {
	Deleted int
	Calls   int // S3 API calls made, list and delete
}

// DeletePrefix deletes every object under prefix, listing a page of up to
// 1000 keys and deleting it in one DeleteObjects call, so n objects cost about
// 2*ceil(n/1000) calls. Keys are visited in order; after each batch progress
// receives the last key deleted, and a later call with startAfter set to it
// resumes there (an activity heartbeats it). Running it twice is harmless.
func DeletePrefix(ctx context.Context, c *s3.Client, bucket, prefix, startAfter string, progress func(lastKey string, deleted int)) (DeletePrefixResult, error) {
	var res DeletePrefixResult
	for {
		in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(BatchSize)}
		if startAfter != "" {
			in.StartAfter = aws.String(startAfter)
		}
		page, err := c.ListObjectsV2(ctx, in)
		res.Calls++
		if err != nil {
			return res, fmt.Errorf("list %s: %w", bucket, err)
		}
		if len(page.Contents) == 0 {
			return res, nil
		}
		ids := make([]types.ObjectIdentifier, 0, len(page.Contents))
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		res.Calls++
		if err != nil {
			return res, fmt.Errorf("delete objects in %s: %w", bucket, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return res, fmt.Errorf("delete objects in %s: %d failed, first: %s", bucket, len(out.Errors), aws.ToString(e.Code))
		}
		res.Deleted += len(ids)
		startAfter = aws.ToString(ids[len(ids)-1].Key)
		if progress != nil {
			progress(startAfter, res.Deleted)
		}
		if !aws.ToBool(page.IsTruncated) {
			return res, nil
		}
	}
}

// CountPrefix counts the objects under prefix (a verification pass).
func CountPrefix(ctx context.Context, c *s3.Client, bucket, prefix string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("list %s: %w", bucket, err)
		}
		n += len(page.Contents)
	}
	return n, nil
}
