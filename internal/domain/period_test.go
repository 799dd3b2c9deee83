package domain_test

import (
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
)

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestGDPRMonthIsTheSameDateNextMonthOrItsLastDay(t *testing.T) {
	month := domain.Period{Months: 1}
	for from, want := range map[string]string{
		"2027-01-31": "2027-02-28", // no 31 February: the month's last day
		"2028-01-31": "2028-02-29", // leap year
		"2027-01-15": "2027-02-15",
		"2027-03-31": "2027-04-30",
		"2027-12-31": "2028-01-31",
		"2027-02-28": "2027-03-28",
	} {
		if got := month.After(day(from)); !got.Equal(day(want)) {
			t.Errorf("%s + 1 month = %s, want %s", from, got.Format("2006-01-02"), want)
		}
	}
	if got := (domain.Period{Months: 3}).After(day("2027-01-31")); !got.Equal(day("2027-04-30")) {
		t.Errorf("31 Jan + 3 months = %s", got)
	}
}

func TestBusinessDaysSkipWeekends(t *testing.T) {
	// Friday 2027-01-01 + 10 business days = Friday 2027-01-15.
	if got := (domain.Period{BusinessDays: 10}).After(day("2027-01-01")); !got.Equal(day("2027-01-15")) {
		t.Errorf("got %s", got.Format("2006-01-02 Mon"))
	}
	// Saturday + 1 business day = Monday.
	if got := domain.AddBusinessDays(day("2027-01-02"), 1); !got.Equal(day("2027-01-04")) {
		t.Errorf("got %s", got.Format("2006-01-02 Mon"))
	}
}

func TestParsePeriod(t *testing.T) {
	for s, want := range map[string]domain.Period{"1mo": {Months: 1}, "45d": {Days: 45}, "10bd": {BusinessDays: 10}, "0d": {}} {
		got, err := domain.ParsePeriod(s)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", s, got, err)
		}
		if got.String() != s {
			t.Errorf("%s prints as %s", s, got)
		}
	}
	for _, bad := range []string{"", "month", "-1d", "1y", "d"} {
		if _, err := domain.ParsePeriod(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if !(domain.Period{Months: 2}).Within(domain.Period{Months: 2}, day("2027-01-31")) ||
		(domain.Period{Days: 46}).Within(domain.Period{Days: 45}, day("2027-01-31")) {
		t.Error("Within")
	}
}
