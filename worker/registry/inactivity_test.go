package registry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/config"
	"github.com/lethe-privacy/lethe/worker/registry"
)

// Business days said nothing about inactivity and were silently read as
// zero (every account inactive at once): the worker refuses them.
func TestInactivityIsCalendarTime(t *testing.T) {
	ok := config.Config{InactiveAfter: "24mo", ClosedAccountKeep: "30d", InactiveWarnBefore: 30 * 24 * time.Hour}
	p, err := registry.InactivityPolicy(ok)
	if err != nil || p.InactiveAfter.Months != 24 || p.ClosedKeep.Days != 30 {
		t.Fatalf("24mo / 30d: %+v, %v", p, err)
	}
	for _, c := range []config.Config{
		{InactiveAfter: "10bd", ClosedAccountKeep: "30d"},
		{InactiveAfter: "24mo", ClosedAccountKeep: "5bd"},
	} {
		_, err := registry.InactivityPolicy(c)
		if err == nil || !strings.Contains(err.Error(), "not business days") {
			t.Errorf("%+v: %v, want business days refused", c, err)
		}
	}
	if _, err := registry.InactivityPolicy(config.Config{InactiveAfter: "0d", ClosedAccountKeep: "30d"}); err == nil || !strings.Contains(err.Error(), "longer than zero") {
		t.Errorf("LETHE_INACTIVE_AFTER=0d: %v, want it refused (every account would be inactive at once)", err)
	}
	if _, err := registry.InactivityPolicy(config.Config{InactiveAfter: "24mo", ClosedAccountKeep: "0d"}); err != nil {
		t.Errorf("LETHE_CLOSED_ACCOUNT_KEEP=0d (never by the sweep): %v", err)
	}
}
