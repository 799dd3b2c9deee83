// Package testenv stands up the real components every integration test needs:
// a Temporal server in-process (temporaltest), a fresh PostgreSQL database, an
// S3-protocol server on loopback used through the real aws-sdk-go-v2 client,
// and a local SendGrid v3 API that records each message. Fake processor APIs
// are in package processorfake.
//
// It links the Temporal server, so only a few test packages import it; unit
// tests of workflows use the SDK's testsuite instead.
package testenv

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/temporalclient"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
	"github.com/lethe-privacy/lethe/internal/testenv/sendgridfake"
	"github.com/lethe-privacy/lethe/internal/wiring"
	"github.com/lethe-privacy/lethe/workflows/contract"
)

// Stack is one test's set of real components.
type Stack struct {
	Config    config.Config // points at everything below
	Temporal  client.Client // encrypts payloads like production
	Raw       client.Client // no codec: sees what the server stores
	Server    *temporaltest.TestServer
	Lethe     *pgxpool.Pool // Lethe's database (migrated)
	App       *pgxpool.Pool // the demo application database (schema created, not seeded)
	S3        *s3.Client
	SendGrid  *sendgridfake.Server
	Log       *slog.Logger
	LogOutput *SyncBuffer // everything Log wrote, to search for personal data
}

// SendGridKey is the API key the SendGrid fake accepts.
const SendGridKey = "SG.test-key"

// New starts a stack for t; everything stops when t ends.
func New(t *testing.T) *Stack {
	t.Helper()
	ctx := context.Background()
	st := &Stack{LogOutput: &SyncBuffer{}}
	st.Log = slog.New(slog.NewJSONHandler(st.LogOutput, &slog.HandlerOptions{Level: slog.LevelDebug}))

	dbURL := pgtest.NewDatabase(t)
	var err error
	if st.Lethe, err = store.Open(ctx, dbURL, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Lethe.Close)
	st.App = st.Lethe
	if err := demo.CreateSchema(ctx, st.App); err != nil {
		t.Fatal(err)
	}

	s3srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3srv.Close() })

	st.SendGrid = sendgridfake.New(t, SendGridKey)

	payloadKey, _ := codec.GenerateKey()
	masterKey, _ := codec.GenerateKey()
	hashKey, _ := codec.GenerateKey()
	st.Config, err = config.FromMap(map[string]string{
		"LETHE_DATABASE_URL":         dbURL,
		"LETHE_S3_ENDPOINT":          s3srv.URL,
		"LETHE_S3_PATH_STYLE":        "true",
		"LETHE_S3_ACCESS_KEY_ID":     s3local.AccessKeyID,
		"LETHE_S3_SECRET_ACCESS_KEY": s3local.SecretAccessKey,
		"LETHE_SENDGRID_API_KEY":     SendGridKey,
		"LETHE_SENDGRID_BASE_URL":    st.SendGrid.URL(),
		"LETHE_PAYLOAD_KEYS":         codec.FormatKey(payloadKey),
		"LETHE_MASTER_KEYS":          codec.FormatKey(masterKey),
		"LETHE_SUBJECT_HASH_KEY":     base64.StdEncoding.EncodeToString(hashKey.Material),
		"LETHE_OUTBOX_DIR":           t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.S3, err = wiring.Objects(ctx, st.Config); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{st.Config.S3ExportBucket, demo.Bucket, demo.BackupBucket} {
		if err := objectstore.EnsureBucket(ctx, st.S3, b); err != nil {
			t.Fatal(err)
		}
	}

	topts, err := wiring.TemporalOptions(st.Config, st.Log)
	if err != nil {
		t.Fatal(err)
	}
	copts, err := temporalclient.ClientOptions(topts)
	if err != nil {
		t.Fatal(err)
	}
	copts.HostPort, copts.Namespace = "", "" // the test server fills in its own
	st.Server = temporaltest.NewServer(temporaltest.WithT(t))
	st.Temporal = st.Server.NewClientWithOptions(copts)
	st.Raw = st.Server.NewClientWithOptions(client.Options{})
	st.Config.TemporalNamespace = st.Server.GetDefaultNamespace()
	st.Config.TemporalAddress = st.Server.GetFrontendHostPort()
	if err := temporalclient.EnsureSearchAttributes(ctx, st.Temporal, st.Config.TemporalNamespace, contract.SearchAttributes()); err != nil {
		t.Fatal(err)
	}
	return st
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (loggers).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Eventually polls cond until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
