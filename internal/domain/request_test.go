package domain_test

import (
	"slices"
	"testing"

	"github.com/lethe-privacy/lethe/internal/domain"
)

func TestClosedForEveryStatus(t *testing.T) {
	for status, closed := range map[string]bool{
		domain.StatusReceived:             false,
		domain.StatusAwaitingVerification: false,
		domain.StatusVerified:             false,
		domain.StatusAwaitingApproval:     false,
		domain.StatusInProgress:           false,
		domain.StatusCompleted:            true,
		domain.StatusDenied:               true,
		domain.StatusExpired:              true,
		domain.StatusCancelled:            true,
		domain.StatusFailed:               true,
		domain.StatusAbandoned:            true,
		"":                                false,
		"COMPLETED":                       false,
		"closed":                          false,
	} {
		if got := domain.Closed(status); got != closed {
			t.Errorf("Closed(%q) = %v, want %v", status, got, closed)
		}
	}
}

func TestStatusesAndTypesAreTheStoredWords(t *testing.T) {
	// These words are stored in lethe.requests and in workflow histories:
	// renaming one breaks every request already recorded.
	for got, want := range map[string]string{
		domain.StatusReceived: "received", domain.StatusAwaitingVerification: "awaiting_verification",
		domain.StatusVerified: "verified", domain.StatusAwaitingApproval: "awaiting_approval",
		domain.StatusInProgress: "in_progress", domain.StatusCompleted: "completed", domain.StatusDenied: "denied",
		domain.StatusExpired: "expired", domain.StatusCancelled: "cancelled", domain.StatusFailed: "failed",
		domain.StatusAbandoned: "abandoned",
		domain.TypeAccess:      "access", domain.TypePortability: "portability", domain.TypeErasure: "erasure",
		domain.TypeRectification: "rectification", domain.TypeConsent: "consent", domain.TypeDeactivation: "deactivation",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	if n := len(domain.RequestTypes()); n != 6 {
		t.Errorf("%d request types", n)
	}
	if domain.TypeBreach != "breach" || slices.Contains(domain.RequestTypes(), domain.TypeBreach) {
		t.Errorf("TypeBreach %q: the incidents' search attribute, not a privacy request", domain.TypeBreach)
	}
}

func TestUncountedStatusesAreClosedButNotDone(t *testing.T) {
	got := domain.UncountedStatuses()
	want := []string{"denied", "expired", "cancelled", "abandoned"}
	if !slices.Equal(got, want) {
		t.Errorf("UncountedStatuses() = %q, want %q", got, want)
	}
	for _, s := range got {
		if !domain.Closed(s) {
			t.Errorf("%q is uncounted but not closed", s)
		}
	}
}
