package activities_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/codec"
	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/demo"
	"github.com/lethe-privacy/lethe/internal/objectstore"
	"github.com/lethe-privacy/lethe/internal/person"
	"github.com/lethe-privacy/lethe/internal/s3local"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

// demoApp is the demo application, seeded, on a fresh database (which also
// holds Lethe's schema) and an in-process S3, with a keyring and a subject
// hasher: what the activities' tests run on. Its map names no processors.
type demoApp struct {
	pool    *pgxpool.Pool
	objects *s3.Client
	m       *datamap.Map
	keys    *person.Keyring
	hasher  *person.Hasher
	log     *slog.Logger
}

func newDemoApp(t *testing.T, accounts int) demoApp {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewLethePool(t)
	if err := demo.CreateSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	srv, err := s3local.StartMemory("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	objects, _ := objectstore.New(ctx, objectstore.Options{Endpoint: srv.URL, Region: s3local.Region, AccessKeyID: s3local.AccessKeyID, SecretAccessKey: s3local.SecretAccessKey, UsePathStyle: true})
	if err := objectstore.EnsureBucket(ctx, objects, demo.Bucket); err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, pool, objects, demo.SeedOptions{Accounts: accounts}); err != nil {
		t.Fatal(err)
	}
	m, err := demo.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	m.Processors = nil
	master, _ := codec.GenerateKey()
	keys, _ := person.NewKeyring(pool, []config.Key{master})
	hashKey, _ := codec.GenerateKey()
	hasher, _ := person.NewHasher(hashKey.Material)
	return demoApp{pool: pool, objects: objects, m: m, keys: keys, hasher: hasher, log: slog.New(slog.DiscardHandler)}
}
