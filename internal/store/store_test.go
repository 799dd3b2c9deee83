package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/store"
	"github.com/lethe-privacy/lethe/internal/testenv/pgtest"
)

func TestOpenCreatesDatabaseAndMigratesTwice(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	for i := 0; i < 2; i++ { // a second start finds everything in place
		pool, err := store.Open(ctx, url, true)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'lethe' AND table_name = 'requests'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("lethe.requests missing after migrate")
		}
		pool.Close()
	}
}

func TestUnreachableServerSaysHowToFix(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/lethe?sslmode=disable&connect_timeout=2", true)
	if err == nil {
		t.Fatal("want an error for a server that does not answer")
	}
	if got := err.Error(); !strings.Contains(got, "LETHE_DATABASE_URL") || !strings.Contains(got, "127.0.0.1:1") {
		t.Fatalf("error should name the address and the variable: %s", got)
	}
}
