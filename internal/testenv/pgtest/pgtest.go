// Package pgtest gives each test package a fresh PostgreSQL database.
//
// The server is LETHE_TEST_DATABASE_URL, or the local one on 127.0.0.1:5432
// (user postgres). Tests never skip when it is missing: they fail and say how
// to point them at one.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/store"
)

// DefaultServerURL is used when LETHE_TEST_DATABASE_URL is not set.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL is the server tests create their databases on.
func ServerURL() string {
	if u := os.Getenv("LETHE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultServerURL
}

// NewDatabase creates an empty database named after the test with a random
// suffix, drops it when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	url, drop, err := Create(context.Background(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return url
}

// NewPool is NewDatabase plus a pool on it, closed when the test ends.
func NewPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	url := NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, url
}

// Create makes a fresh database whose name starts with prefix; drop removes it.
// It is for TestMain and benchmarks; tests use NewDatabase.
func Create(ctx context.Context, prefix string) (url string, drop func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(ServerURL())
	if err != nil {
		return "", nil, fmt.Errorf("LETHE_TEST_DATABASE_URL does not parse: %w", err)
	}
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", nil, fmt.Errorf("tests need PostgreSQL and none answers at %s:%d (%v).\n"+
			"Start the local server (pg_ctlcluster 15 main start) or set LETHE_TEST_DATABASE_URL "+
			"to a server where this user may CREATE DATABASE, e.g. postgres://postgres@127.0.0.1:5432/postgres",
			cfg.Host, cfg.Port, err)
	}
	defer admin.Close(ctx)
	name := "lethe_test_" + sanitize(prefix) + "_" + randomSuffix()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create test database: %w", err)
	}
	u, err := neturl.Parse(ServerURL())
	if err != nil || u.Scheme == "" {
		return "", nil, fmt.Errorf("LETHE_TEST_DATABASE_URL: want a postgres:// URL")
	}
	u.Path = "/" + name
	var once sync.Once
	drop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				return
			}
			defer c.Close(ctx)
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		})
	}
	return u.String(), drop, nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 30 {
			break
		}
	}
	return b.String()
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewLethePool is NewPool with Lethe's own migrations applied: the database
// the tests of Lethe's stores and activities work on.
func NewLethePool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, _ := NewPool(t)
	if err := store.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}
