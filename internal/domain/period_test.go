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

func TestAddCalendarMonths(t *testing.T) {
	for _, c := range []struct {
		from   string
		months int
		want   string
	}{
		{"2027-01-15", 0, "2027-01-15"},
		{"2027-01-31", 0, "2027-01-31"},
		// Month ends: the same date, or the month's last day where it does not exist.
		{"2027-01-31", 1, "2027-02-28"},
		{"2028-01-31", 1, "2028-02-29"}, // leap year
		{"2027-01-30", 1, "2027-02-28"},
		{"2027-01-28", 1, "2027-02-28"},
		{"2027-03-31", 1, "2027-04-30"}, // 31 into a 30-day month
		{"2027-05-31", 1, "2027-06-30"},
		{"2027-08-31", 1, "2027-09-30"},
		{"2027-10-31", 1, "2027-11-30"},
		{"2027-07-31", 1, "2027-08-31"}, // 31 into a 31-day month
		{"2027-04-30", 1, "2027-05-30"}, // from a 30-day month's end: not moved to the 31st
		{"2027-06-30", 1, "2027-07-30"},
		{"2027-02-28", 1, "2027-03-28"}, // from February's end: not moved to the 31st
		{"2028-02-29", 1, "2028-03-29"},
		{"2027-01-31", 2, "2027-03-31"}, // February in between does not shorten it
		{"2027-01-31", 3, "2027-04-30"},
		// The year changes.
		{"2027-12-15", 1, "2028-01-15"},
		{"2027-12-31", 1, "2028-01-31"},
		{"2027-11-30", 2, "2028-01-30"},
		{"2027-12-31", 2, "2028-02-29"},
		{"2027-01-31", 13, "2028-02-29"},
		// 29 February on leap and non-leap years.
		{"2028-02-29", 12, "2029-02-28"},
		{"2028-02-29", 48, "2032-02-29"},
		{"2027-02-28", 12, "2028-02-28"},
		{"2027-03-29", 11, "2028-02-29"},
		{"2026-03-29", 11, "2027-02-28"},
		{"2100-01-31", 1, "2100-02-28"}, // 2100 is not a leap year
		{"2000-01-31", 1, "2000-02-29"}, // 2000 is
		// Long holds: 1, 6 and 10 years.
		{"2027-01-31", 12, "2028-01-31"},
		{"2027-03-31", 72, "2033-03-31"},
		{"2024-02-29", 72, "2030-02-28"},
		{"2015-03-15", 120, "2025-03-15"},
		{"2020-02-29", 120, "2030-02-28"},
		{"2016-02-29", 120, "2026-02-28"},
		{"2027-10-31", 120, "2037-10-31"},
		// Backwards (retention cut-offs, request-limit windows).
		{"2027-03-31", -1, "2027-02-28"},
		{"2028-03-31", -1, "2028-02-29"},
		{"2028-01-15", -1, "2027-12-15"},
		{"2028-01-31", -2, "2027-11-30"},
		{"2030-02-28", -72, "2024-02-28"},
	} {
		if got := domain.AddCalendarMonths(day(c.from), c.months); !got.Equal(day(c.want)) {
			t.Errorf("%s %+d months = %s, want %s", c.from, c.months, got.Format("2006-01-02"), c.want)
		}
		if c.months >= 0 {
			if got := (domain.Period{Months: c.months}).After(day(c.from)); !got.Equal(day(c.want)) {
				t.Errorf("%dmo after %s = %s, want %s", c.months, c.from, got.Format("2006-01-02"), c.want)
			}
		}
	}
}

func TestAddCalendarMonthsKeepsTheTimeAndZone(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	from := time.Date(2027, 1, 31, 23, 30, 15, 7, zone)
	got := domain.AddCalendarMonths(from, 1)
	if want := time.Date(2027, 2, 28, 23, 30, 15, 7, zone); !got.Equal(want) || got.Location() != zone {
		t.Errorf("got %s, want %s", got, want)
	}
	// The date is the one in t's own zone: 31 January 23:30 at UTC+2 is 21:30 UTC the same day.
	if got := domain.AddCalendarMonths(from.UTC(), 1); !got.Equal(time.Date(2027, 2, 28, 21, 30, 15, 7, time.UTC)) {
		t.Errorf("in UTC: got %s", got)
	}
}

func TestAddBusinessDays(t *testing.T) {
	for _, c := range []struct {
		from string // its weekday in the comment
		n    int
		want string
	}{
		{"2027-01-01", 0, "2027-01-01"},  // Fri: nothing to add
		{"2027-01-02", 0, "2027-01-02"},  // Sat: not moved to Monday
		{"2027-01-01", 1, "2027-01-04"},  // Fri + 1 = Mon
		{"2027-01-02", 1, "2027-01-04"},  // Sat + 1 = Mon
		{"2027-01-03", 1, "2027-01-04"},  // Sun + 1 = Mon
		{"2027-01-04", 1, "2027-01-05"},  // Mon + 1 = Tue
		{"2027-01-07", 1, "2027-01-08"},  // Thu + 1 = Fri
		{"2027-01-07", 2, "2027-01-11"},  // Thu + 2 = Mon
		{"2027-01-01", 5, "2027-01-08"},  // Fri + 5 = Fri
		{"2027-01-02", 5, "2027-01-08"},  // Sat + 5 = Fri
		{"2027-01-03", 5, "2027-01-08"},  // Sun + 5 = Fri
		{"2027-01-04", 5, "2027-01-11"},  // Mon + 5 = Mon
		{"2027-01-01", 10, "2027-01-15"}, // Fri + 10 spans two weekends = Fri
		{"2027-01-04", 10, "2027-01-18"}, // Mon + 10 = Mon, two weekends
		{"2027-01-06", 10, "2027-01-20"}, // Wed + 10 = Wed, two weekends
		{"2027-01-02", 10, "2027-01-15"}, // Sat + 10 = Fri
		{"2027-01-03", 10, "2027-01-15"}, // Sun + 10 = Fri
		{"2027-01-01", 11, "2027-01-18"}, // Fri + 11 = Mon, three weekends
		{"2027-12-30", 2, "2028-01-03"},  // Thu + 2 = Mon, across the year
		{"2028-02-25", 3, "2028-03-01"},  // Fri + 3 = Wed, across 29 February
		{"2027-01-01", -3, "2027-01-01"}, // a negative count does not move
	} {
		if got := domain.AddBusinessDays(day(c.from), c.n); !got.Equal(day(c.want)) {
			t.Errorf("%s %s + %d business days = %s %s, want %s", c.from, day(c.from).Weekday(), c.n, got.Format("2006-01-02"), got.Weekday(), c.want)
		}
		if c.n >= 0 {
			if got := (domain.Period{BusinessDays: c.n}).After(day(c.from)); !got.Equal(day(c.want)) {
				t.Errorf("%dbd after %s = %s, want %s", c.n, c.from, got.Format("2006-01-02"), c.want)
			}
		}
	}
	at := time.Date(2027, 1, 1, 17, 45, 0, 0, time.UTC) // Friday evening
	if got := domain.AddBusinessDays(at, 1); !got.Equal(time.Date(2027, 1, 4, 17, 45, 0, 0, time.UTC)) {
		t.Errorf("the time of day moved: %s", got)
	}
}

func TestParsePeriodAcceptsMonthsDaysAndBusinessDays(t *testing.T) {
	for s, want := range map[string]domain.Period{
		"1mo":      {Months: 1},
		"2mo":      {Months: 2},
		"120mo":    {Months: 120},
		"0mo":      {},
		"1d":       {Days: 1},
		"45d":      {Days: 45},
		"0d":       {},
		"10000d":   {Days: 10000},
		"1bd":      {BusinessDays: 1},
		"10bd":     {BusinessDays: 10},
		"0bd":      {},
		" 30d ":    {Days: 30},
		"\t1mo\n":  {Months: 1},
		"007d":     {Days: 7},
		"10000bd":  {BusinessDays: 10000},
		"10000mo":  {Months: 10000},
		"  15bd  ": {BusinessDays: 15},
	} {
		got, err := domain.ParsePeriod(s)
		if err != nil || got != want {
			t.Errorf("ParsePeriod(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
}

func TestParsePeriodRefuses(t *testing.T) {
	for in, shown := range map[string]string{
		"":        "",
		"   ":     "",
		"month":   "month",
		"1month":  "1month",
		"1y":      "1y",
		"1w":      "1w",
		"d":       "d",
		"mo":      "mo",
		"bd":      "bd",
		"-1d":     "-1d",
		"-1mo":    "-1mo",
		"10001d":  "10001d",
		"10001mo": "10001mo",
		"1.5mo":   "1.5mo",
		"1 mo":    "1 mo",
		"1MO":     "1MO",
		"1D":      "1D",
		"10b":     "10b",
		"1mod":    "1mod",
		"x10d":    "x10d",
		" 1y ":    "1y", // the message shows the trimmed text
		"45":      "45",
	} {
		_, err := domain.ParsePeriod(in)
		want := `period "` + shown + `": want a number of mo, d or bd, e.g. 1mo, 45d, 10bd`
		if err == nil || err.Error() != want {
			t.Errorf("ParsePeriod(%q): error %v, want %q", in, err, want)
		}
	}
}

func TestPeriodStringRoundTrip(t *testing.T) {
	for _, p := range []domain.Period{
		{}, {Months: 1}, {Months: 2}, {Months: 120}, {Days: 1}, {Days: 45}, {Days: 10000},
		{BusinessDays: 1}, {BusinessDays: 10},
	} {
		s := p.String()
		back, err := domain.ParsePeriod(s)
		if err != nil || back != p {
			t.Errorf("%+v prints as %q, which reads as %+v, %v", p, s, back, err)
		}
	}
	for p, want := range map[domain.Period]string{{}: "0d", {Months: 1}: "1mo", {Days: 45}: "45d", {BusinessDays: 10}: "10bd"} {
		if got := p.String(); got != want {
			t.Errorf("%+v prints as %q, want %q", p, got, want)
		}
	}
	for _, s := range []string{"1mo", "45d", "10bd", "0d", "120mo"} {
		if p, err := domain.ParsePeriod(s); err != nil || p.String() != s {
			t.Errorf("%q reads as %+v (%v), which prints as %q", s, p, err, p.String())
		}
	}
}

func TestPeriodIsZeroAndAfter(t *testing.T) {
	for p, zero := range map[domain.Period]bool{{}: true, {Months: 1}: false, {Days: 1}: false, {BusinessDays: 1}: false} {
		if p.IsZero() != zero {
			t.Errorf("%+v.IsZero() = %v", p, !zero)
		}
	}
	from := time.Date(2027, 1, 31, 9, 0, 0, 0, time.UTC) // a Sunday
	for _, c := range []struct {
		p    domain.Period
		want time.Time
	}{
		{domain.Period{}, from},
		{domain.Period{Days: 1}, time.Date(2027, 2, 1, 9, 0, 0, 0, time.UTC)},
		{domain.Period{Days: 45}, time.Date(2027, 3, 17, 9, 0, 0, 0, time.UTC)},
		{domain.Period{Days: 366}, time.Date(2028, 2, 1, 9, 0, 0, 0, time.UTC)}, // across 29 February 2028
		// Mixed units apply months, then days, then business days.
		{domain.Period{Months: 1, Days: 1}, time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)},                  // 28 Feb + 1 day
		{domain.Period{Months: 1, BusinessDays: 1}, time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)},          // Sun 28 Feb + 1bd = Mon
		{domain.Period{Days: 6, BusinessDays: 1}, time.Date(2027, 2, 8, 9, 0, 0, 0, time.UTC)},            // Sat 6 Feb + 1bd = Mon
		{domain.Period{Months: 1, Days: 1, BusinessDays: 1}, time.Date(2027, 3, 2, 9, 0, 0, 0, time.UTC)}, // Mon 1 Mar + 1bd
	} {
		if got := c.p.After(from); !got.Equal(c.want) {
			t.Errorf("%+v after %s = %s, want %s", c.p, from, got, c.want)
		}
	}
}

func TestPeriodPlus(t *testing.T) {
	for _, c := range []struct{ p, q, want domain.Period }{
		{domain.Period{Months: 1}, domain.Period{Months: 2}, domain.Period{Months: 3}}, // GDPR + its extension
		{domain.Period{Days: 45}, domain.Period{Days: 45}, domain.Period{Days: 90}},    // CCPA + its extension
		{domain.Period{BusinessDays: 10}, domain.Period{BusinessDays: 5}, domain.Period{BusinessDays: 15}},
		{domain.Period{}, domain.Period{Days: 30}, domain.Period{Days: 30}},
		{domain.Period{Months: 1}, domain.Period{}, domain.Period{Months: 1}},
		{domain.Period{Months: 1}, domain.Period{Days: 5}, domain.Period{Months: 1, Days: 5}},
		{domain.Period{Months: 1, Days: 2, BusinessDays: 3}, domain.Period{Months: 4, Days: 5, BusinessDays: 6}, domain.Period{Months: 5, Days: 7, BusinessDays: 9}},
	} {
		if got := c.p.Plus(c.q); got != c.want {
			t.Errorf("%+v plus %+v = %+v, want %+v", c.p, c.q, got, c.want)
		}
		if got := c.q.Plus(c.p); got != c.want {
			t.Errorf("%+v plus %+v = %+v, want %+v", c.q, c.p, got, c.want)
		}
	}
	// 1mo + 2mo from 31 January is 30 April, not 31 January + 1mo + 2mo (28 Feb → 28 Apr).
	total := domain.Period{Months: 1}.Plus(domain.Period{Months: 2})
	if got := total.After(day("2027-01-31")); !got.Equal(day("2027-04-30")) {
		t.Errorf("3mo after 31 January = %s", got.Format("2006-01-02"))
	}
}

func TestPeriodWithin(t *testing.T) {
	for _, c := range []struct {
		p, max domain.Period
		start  string
		within bool
	}{
		{domain.Period{Months: 2}, domain.Period{Months: 2}, "2027-01-31", true},
		{domain.Period{Months: 3}, domain.Period{Months: 2}, "2027-01-31", false},
		{domain.Period{Months: 1}, domain.Period{Months: 2}, "2027-01-31", true},
		{domain.Period{Days: 45}, domain.Period{Days: 45}, "2027-01-31", true},
		{domain.Period{Days: 46}, domain.Period{Days: 45}, "2027-01-31", false},
		{domain.Period{}, domain.Period{}, "2027-01-31", true},
		{domain.Period{}, domain.Period{Days: 1}, "2027-01-31", true},
		{domain.Period{Days: 1}, domain.Period{}, "2027-01-31", false},
		// Units compared by the dates they reach from start: 2 months from
		// 1 January is 59 days in 2027 and 60 in 2028.
		{domain.Period{Days: 59}, domain.Period{Months: 2}, "2027-01-01", true},
		{domain.Period{Days: 60}, domain.Period{Months: 2}, "2027-01-01", false},
		{domain.Period{Days: 60}, domain.Period{Months: 2}, "2028-01-01", true},
		{domain.Period{Days: 61}, domain.Period{Months: 2}, "2028-01-01", false},
		// 10 business days from a weekday are 14 calendar days; 11 are more.
		{domain.Period{BusinessDays: 10}, domain.Period{Days: 14}, "2027-01-01", true},
		{domain.Period{BusinessDays: 11}, domain.Period{Days: 14}, "2027-01-01", false},
		{domain.Period{BusinessDays: 10}, domain.Period{Days: 13}, "2027-01-02", true}, // from a Saturday
		{domain.Period{Days: 14}, domain.Period{BusinessDays: 10}, "2027-01-04", true},
		{domain.Period{Days: 15}, domain.Period{BusinessDays: 10}, "2027-01-04", false},
	} {
		if got := c.p.Within(c.max, day(c.start)); got != c.within {
			t.Errorf("%+v within %+v from %s = %v, want %v", c.p, c.max, c.start, got, c.within)
		}
	}
}

func TestPeriodBefore(t *testing.T) {
	for _, c := range []struct {
		p         domain.Period
		end, want string
	}{
		{domain.Period{}, "2027-03-31", "2027-03-31"},
		{domain.Period{Months: 1}, "2027-03-31", "2027-02-28"},
		{domain.Period{Months: 1}, "2028-03-31", "2028-02-29"},
		{domain.Period{Months: 1}, "2028-01-15", "2027-12-15"},
		{domain.Period{Months: 12}, "2029-02-28", "2028-02-28"},
		{domain.Period{Months: 72}, "2033-02-28", "2027-02-28"},
		{domain.Period{Months: 120}, "2030-02-28", "2020-02-28"},
		{domain.Period{Days: 30}, "2027-03-01", "2027-01-30"},
		{domain.Period{Days: 30}, "2028-03-01", "2028-01-31"},
		{domain.Period{Months: 1, Days: 1}, "2027-03-31", "2027-02-27"},
		// Business days count as calendar days backwards: never a shorter window.
		{domain.Period{BusinessDays: 10}, "2027-01-15", "2027-01-05"},
		{domain.Period{Months: 1, BusinessDays: 2}, "2027-03-31", "2027-02-26"},
	} {
		if got := c.p.Before(day(c.end)); !got.Equal(day(c.want)) {
			t.Errorf("%+v before %s = %s, want %s", c.p, c.end, got.Format("2006-01-02"), c.want)
		}
	}
	at := time.Date(2027, 3, 31, 18, 5, 0, 0, time.UTC)
	if got := (domain.Period{Months: 1}).Before(at); !got.Equal(time.Date(2027, 2, 28, 18, 5, 0, 0, time.UTC)) {
		t.Errorf("the time of day moved: %s", got)
	}
	// A window of days or business days reaches at least as far back as the
	// period reaches forward from its start. (Months do not invert: 31 March
	// - 1mo = 28 February, + 1mo = 28 March.)
	for _, p := range []domain.Period{{Days: 1}, {Days: 45}, {BusinessDays: 1}, {BusinessDays: 10}, {BusinessDays: 23}} {
		for _, end := range []string{"2027-01-01", "2027-03-31", "2028-02-29", "2027-06-14"} {
			if start := p.Before(day(end)); p.After(start).Before(day(end)) {
				t.Errorf("%+v before %s = %s, and %s after that is earlier than the end", p, end, start.Format("2006-01-02"), p)
			}
		}
	}
}
