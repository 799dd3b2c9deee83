// Package s3calls counts S3 API calls by operation, for tests and benchmarks
// that hold code to a call budget.
package s3calls

import (
	"context"
	"maps"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// Counter counts the requests clients attached to it send, by operation
// ("ListObjectVersions", "DeleteObjects", …). A retried request counts each
// time it is sent. It is safe for concurrent use.
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// New gives an empty Counter.
func New() *Counter { return &Counter{n: map[string]int{}} }

// Client is a copy of base whose requests c counts.
func (c *Counter) Client(base *s3.Client) *s3.Client {
	return s3.New(base.Options(), c.Attach)
}

// Attach makes a client counted by c: an option for s3.New or
// s3.NewFromConfig.
func (c *Counter) Attach(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		// After the retry loop, so each attempt counts.
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("s3calls",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				c.mu.Lock()
				c.n[awsmiddleware.GetOperationName(ctx)]++
				c.mu.Unlock()
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
}

// Total is the requests counted since New or the last Reset.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, n := range c.n {
		t += n
	}
	return t
}

// Of is the requests counted for one operation.
func (c *Counter) Of(operation string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[operation]
}

// ByOperation is a copy of the counts, by operation.
func (c *Counter) ByOperation() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// Reset sets every count to zero.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.n)
}
