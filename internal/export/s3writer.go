package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// PartSize is the size of the S3Writer's parts, S3's minimum for every part
// but the last, up to a 9.8 GiB object (larger ones use larger parts, see
// S3Writer). The writer holds one part in memory at a time.
const PartSize = 5 << 20

// maxParts is S3's limit on the parts of one multipart upload.
const maxParts = 10000

// partsPerStep is how many parts an S3Writer uploads at one size before it
// doubles the size, so that a bundle larger than 10,000 × 5 MiB still fits
// the 10,000-part limit: up to about 9.8 GiB a part is 5 MiB, up to 29 GiB
// 10 MiB, and so on (about 300 GiB in all, with 80 MiB parts at the end).
const partsPerStep = 2000

// ErrTooLarge is returned by S3Writer.Write when the object would exceed what
// 10,000 parts hold.
var ErrTooLarge = errors.New("export: the object would exceed S3's 10,000 parts")

// S3Writer writes one S3 object as a multipart upload: Write fills a part
// buffer and uploads it when full, Close uploads the last part and
// completes the object, Abort (or any error) aborts the upload, so no
// incomplete object is ever visible. Memory stays at one part whatever the
// size written.
//
// The object is encrypted at rest with SSE-S3 (AES256) and checksummed
// (CRC32) part by part. An S3Writer is not safe for concurrent use; it uses
// the context given to NewS3Writer for every call.
type S3Writer struct {
	ctx      context.Context
	client   *s3.Client
	bucket   string
	key      string
	uploadID string

	buf     []byte
	parts   []types.CompletedPart
	written int64
	err     error // sticky: the first failure
	done    bool  // completed or aborted
}

// NewS3Writer starts a multipart upload of bucket/key, with server-side
// encryption (AES256) and content type application/zip.
func NewS3Writer(ctx context.Context, client *s3.Client, bucket, key string) (*S3Writer, error) {
	if client == nil || bucket == "" || key == "" {
		return nil, errors.New("export: an S3 client, a bucket and a key are required")
	}
	out, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:               aws.String(bucket),
		Key:                  aws.String(key),
		ContentType:          aws.String("application/zip"),
		ServerSideEncryption: types.ServerSideEncryptionAes256,
		ChecksumAlgorithm:    types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return nil, s3Error("start the upload of the bundle to bucket "+bucket, err)
	}
	return &S3Writer{
		ctx: ctx, client: client, bucket: bucket, key: key,
		uploadID: aws.ToString(out.UploadId),
		buf:      make([]byte, 0, PartSize),
	}, nil
}

// partSize is the size of part n (1-based).
func partSize(n int) int {
	return PartSize << min((n-1)/partsPerStep, 4)
}

// Write buffers p, uploading each part as it fills. After an error every
// call fails and Close aborts the upload.
func (w *S3Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("export: write to a closed S3Writer")
	}
	n := 0
	for len(p) > 0 {
		size := partSize(len(w.parts) + 1)
		if len(w.buf) == size {
			// More is coming: the full buffer is not the last part.
			if len(w.parts)+1 == maxParts {
				w.err = ErrTooLarge
				break
			}
			if w.flush() != nil {
				break
			}
			continue
		}
		if cap(w.buf) < size {
			w.buf = append(make([]byte, 0, size), w.buf...)
		}
		k := min(len(p), size-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		n += k
	}
	w.written += int64(n)
	return n, w.err
}

// flush uploads the buffer as the next part and empties it.
func (w *S3Writer) flush() error {
	num := int32(len(w.parts) + 1)
	out, err := w.client.UploadPart(w.ctx, &s3.UploadPartInput{
		Bucket:            aws.String(w.bucket),
		Key:               aws.String(w.key),
		UploadId:          aws.String(w.uploadID),
		PartNumber:        aws.Int32(num),
		Body:              bytes.NewReader(w.buf),
		ContentLength:     aws.Int64(int64(len(w.buf))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		w.err = s3Error(fmt.Sprintf("upload part %d of the bundle", num), err)
		return w.err
	}
	w.parts = append(w.parts, types.CompletedPart{
		PartNumber:    aws.Int32(num),
		ETag:          out.ETag,
		ChecksumCRC32: out.ChecksumCRC32,
	})
	w.buf = w.buf[:0]
	return nil
}

// Written is how many bytes Write accepted.
func (w *S3Writer) Written() int64 { return w.written }

// Close uploads the last part and completes the object. If anything failed
// before, or completing fails, it aborts the upload and returns the error.
func (w *S3Writer) Close() error {
	if w.done {
		return w.err
	}
	if w.err == nil && len(w.parts) == 0 && len(w.buf) == 0 {
		return w.closeEmpty()
	}
	if w.err == nil && len(w.buf) > 0 {
		_ = w.flush() // the last part, which may be smaller than 5 MiB
	}
	if w.err == nil {
		_, err := w.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(w.bucket),
			Key:             aws.String(w.key),
			UploadId:        aws.String(w.uploadID),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
		})
		if err != nil {
			w.err = s3Error("complete the upload of the bundle", err)
		}
	}
	if w.err != nil {
		_ = w.abort()
		return w.err
	}
	w.done = true
	w.buf = nil
	return nil
}

// closeEmpty writes an empty object, which a multipart upload cannot make
// everywhere (a part needs a body), and drops the upload.
func (w *S3Writer) closeEmpty() error {
	_, err := w.client.PutObject(w.ctx, &s3.PutObjectInput{
		Bucket:               aws.String(w.bucket),
		Key:                  aws.String(w.key),
		Body:                 bytes.NewReader(nil),
		ContentType:          aws.String("application/zip"),
		ServerSideEncryption: types.ServerSideEncryptionAes256,
	})
	if err != nil {
		w.err = s3Error("write the empty bundle", err)
	}
	if abortErr := w.abort(); w.err == nil && abortErr != nil {
		w.err = abortErr
	}
	return w.err
}

// Abort abandons the upload: S3 discards the parts sent and no object is
// created. It is safe to call after Close (it then does nothing) and more
// than once. Later writes fail.
func (w *S3Writer) Abort() error {
	if w.done {
		return nil
	}
	if w.err == nil {
		w.err = errors.New("export: upload aborted")
	}
	return w.abort()
}

func (w *S3Writer) abort() error {
	w.done = true
	w.buf = nil
	// Abort even when the writer's context is cancelled: the parts would
	// otherwise be kept (and billed) until a lifecycle rule removes them.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 30*time.Second)
	defer cancel()
	_, err := w.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(w.bucket),
		Key:      aws.String(w.key),
		UploadId: aws.String(w.uploadID),
	})
	if err != nil {
		return s3Error("abort the upload of the bundle", err)
	}
	return nil
}
