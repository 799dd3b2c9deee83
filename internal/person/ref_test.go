package person_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/person"
)

func TestRefIsStableKeyedAndOpaque(t *testing.T) {
	h1, _ := person.NewHasher(bytes.Repeat([]byte{1}, 32))
	h2, _ := person.NewHasher(bytes.Repeat([]byte{2}, 32))
	a := h1.Email("Ada@Example.com ")
	if a != h1.Email("ada@example.com") {
		t.Fatal("case and space must not change the reference")
	}
	if a == h2.Email("ada@example.com") {
		t.Fatal("another key must give another reference")
	}
	if h1.UserID("42") == h1.Email("42") {
		t.Fatal("an email and a user id with the same text must differ")
	}
	if strings.Contains(string(a), "ada") || !strings.HasPrefix(string(a), "sr_") || len(a) != 35 {
		t.Fatalf("unexpected reference %q", a)
	}
	if _, err := person.NewHasher([]byte("short")); err == nil {
		t.Fatal("short keys must be refused")
	}
}
