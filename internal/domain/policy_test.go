package domain_test

import (
	"testing"

	"github.com/lethe-privacy/lethe/internal/domain"
)

func TestDueAtIsTheLawsDeadlineOrTheCompanysEarlierPromise(t *testing.T) {
	for name, c := range map[string]struct {
		policy   domain.Policy
		received string
		want     string
	}{
		"GDPR month to a month end": {domain.Policy{Due: domain.Period{Months: 1}}, "2027-01-31", "2027-02-28"},
		"GDPR month, leap year":     {domain.Policy{Due: domain.Period{Months: 1}}, "2028-01-31", "2028-02-29"},
		"CCPA 45 days":              {domain.Policy{Due: domain.Period{Days: 45}}, "2027-01-01", "2027-02-15"},
		"company earlier":           {domain.Policy{Due: domain.Period{Months: 1}, CompanyDue: domain.Period{Days: 20}}, "2027-01-31", "2027-02-20"},
		"company later":             {domain.Policy{Due: domain.Period{Days: 45}, CompanyDue: domain.Period{Months: 2}}, "2027-01-01", "2027-02-15"},
		"company equal":             {domain.Policy{Due: domain.Period{Months: 1}, CompanyDue: domain.Period{Days: 31}}, "2027-01-01", "2027-02-01"},
		// 30 days is shorter than a month from 1 January, longer from 31 January.
		"company 30d, law earlier":   {domain.Policy{Due: domain.Period{Months: 1}, CompanyDue: domain.Period{Days: 30}}, "2027-01-31", "2027-02-28"},
		"company 30d, company first": {domain.Policy{Due: domain.Period{Months: 1}, CompanyDue: domain.Period{Days: 30}}, "2027-01-01", "2027-01-31"},
		"company business days":      {domain.Policy{Due: domain.Period{Days: 45}, CompanyDue: domain.Period{BusinessDays: 10}}, "2027-01-01", "2027-01-15"},
		"zero law period: company":   {domain.Policy{CompanyDue: domain.Period{BusinessDays: 10}}, "2027-01-01", "2027-01-15"},
		"zero law period: 30 days":   {domain.Policy{CompanyDue: domain.Period{Days: 30}}, "2027-01-01", "2027-01-31"},
		"nothing promised":           {domain.Policy{}, "2027-01-01", "2027-01-01"},
	} {
		if got := c.policy.DueAt(day(c.received)); !got.Equal(day(c.want)) {
			t.Errorf("%s: received %s, due %s, want %s", name, c.received, got.Format("2006-01-02"), c.want)
		}
	}
}

func TestJurisdictions(t *testing.T) {
	got := domain.Jurisdictions()
	want := []string{"gdpr", "ccpa", "default"}
	if len(got) != len(want) {
		t.Fatalf("Jurisdictions() = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Jurisdictions() = %q, want %q", got, want)
		}
	}
}
