// Package s3local serves the S3 protocol on a loopback port, in-process, so
// that dev and tests use the real aws-sdk-go-v2 client exactly as production
// does. Tests use gofakes3's in-memory backend; dev keeps buckets, object
// versions and delete markers in a BoltDB file of its own format (gofakes3's
// BoltDB backend keeps no versions), so versioned buckets work there too
// and a restart loses nothing.
package s3local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Credentials the local server accepts (it checks none; clients need some).
const (
	AccessKeyID     = "lethe-local"
	SecretAccessKey = "lethe-local-secret"
	Region          = "us-east-1"
)

// Server is a running S3-protocol server.
type Server struct {
	URL   string
	http  *http.Server
	close func() error
}

// StartMemory serves an in-memory, versioning-capable store on addr
// ("127.0.0.1:0" for a random port).
func StartMemory(addr string) (*Server, error) {
	return start(addr, s3mem.New(), func() error { return nil })
}

// StartFile serves a versioning-capable store kept in the BoltDB file at
// path (created when missing): every bucket, object version and delete
// marker, with its version id and time, survives a restart. Every change is
// on disk before it is answered. Files written by gofakes3's own BoltDB
// backend (dev stacks before versioning) are read by ImportBoltFile.
func StartFile(addr, path string) (*Server, error) {
	fs, err := openFileStore(path)
	if err != nil {
		return nil, err
	}
	return start(addr, fs, fs.Close)
}

func start(addr string, backend gofakes3.Backend, closeBackend func() error) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = closeBackend()
		return nil, fmt.Errorf("s3 listen %s: %w", addr, err)
	}
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false), gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &Server{URL: "http://" + ln.Addr().String(), http: srv, close: closeBackend}, nil
}

// Close stops the server and releases its store.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, s.close())
}
