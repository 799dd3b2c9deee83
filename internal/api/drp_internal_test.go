package api

import "testing"

func TestDRPStatesCompareStatusReasonAndExpectedByToTheMinute(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"in_progress/|2027-01-01T10:00:00Z", "in_progress/|2027-01-01T10:00:00Z", true},
		{"in_progress/|2027-01-01T10:00:00Z", "in_progress/|2027-01-01T10:00:01Z", true},  // API and workflow a moment apart
		{"in_progress/|2027-01-01T10:00:00Z", "in_progress/|2027-01-11T10:00:00Z", false}, // extended
		{"in_progress/|2027-01-01T10:00:00Z", "in_progress/need_user_verification|2027-01-01T10:00:00Z", false},
		{"fulfilled/|", "fulfilled/|", true},
		{"in_progress/|2027-01-01T10:00:00Z", "", false},
	} {
		if got := drpSameState(c.a, c.b); got != c.same {
			t.Errorf("%q vs %q: %v", c.a, c.b, got)
		}
	}
}
