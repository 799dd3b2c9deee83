package appdb_test

import (
	"context"
	"testing"

	"github.com/lethe-privacy/lethe/internal/appdb"
)

// An account erased before holds a placeholder instead of an email. When
// the same user id is erased again, that placeholder is not the person's
// email: an erasure looking for it would find it "left" in the very row it
// anonymized, and fail.
func TestIdentifiersLeaveOutAnEarlierErasuresPlaceholder(t *testing.T) {
	ctx := context.Background()
	s := newShop(t)
	ids, err := appdb.Identifiers(ctx, s.db, s.m, "u-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids["email"]; len(got) != 1 || got[0] != "u-1@example.com" {
		t.Fatalf("before the erasure: %v", got)
	}
	if _, err := s.db.Exec(ctx, `UPDATE shop.accounts SET email = $2 WHERE id = $1`, "u-1", "erased+sr_x"+appdb.ErasedEmailSuffix); err != nil {
		t.Fatal(err)
	}
	if ids, err = appdb.Identifiers(ctx, s.db, s.m, "u-1"); err != nil {
		t.Fatal(err)
	}
	if got, ok := ids["email"]; ok {
		t.Fatalf("the erased account's placeholder was read as the person's email: %v", got)
	}
}
