package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Period is a legal time span: calendar months ("1mo", GDPR's "one month"),
// days ("45d"), or business days ("10bd", Monday to Friday). One of the three.
type Period struct {
	Months       int `json:"months,omitempty"`
	Days         int `json:"days,omitempty"`
	BusinessDays int `json:"business_days,omitempty"`
}

// ParsePeriod reads "1mo", "45d", "10bd" or "0d".
func ParsePeriod(s string) (Period, error) {
	s = strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		set    func(*Period, int)
	}{
		{"mo", func(p *Period, n int) { p.Months = n }},
		{"bd", func(p *Period, n int) { p.BusinessDays = n }},
		{"d", func(p *Period, n int) { p.Days = n }},
	} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.Atoi(num)
			if err != nil || n < 0 || n > 10000 {
				return Period{}, fmt.Errorf("period %q: want a number of mo, d or bd, e.g. 1mo, 45d, 10bd", s)
			}
			var p Period
			u.set(&p, n)
			return p, nil
		}
	}
	return Period{}, fmt.Errorf("period %q: want a number of mo, d or bd, e.g. 1mo, 45d, 10bd", s)
}

// ParseCalendarPeriod reads a period of calendar months or days ("24mo",
// "730d") where a span is calendar time (a legal hold, inactivity): business
// days are refused.
func ParseCalendarPeriod(s string) (Period, error) {
	p, err := ParsePeriod(s)
	if err != nil {
		return Period{}, err
	}
	if p.BusinessDays != 0 {
		return Period{}, fmt.Errorf("period %q: give calendar months or days (e.g. 24mo, 730d), not business days", s)
	}
	return p, nil
}

// String is the period as ParsePeriod reads it.
func (p Period) String() string {
	switch {
	case p.Months != 0:
		return fmt.Sprintf("%dmo", p.Months)
	case p.BusinessDays != 0:
		return fmt.Sprintf("%dbd", p.BusinessDays)
	default:
		return fmt.Sprintf("%dd", p.Days)
	}
}

// IsZero says whether the period is empty.
func (p Period) IsZero() bool { return p.Months == 0 && p.Days == 0 && p.BusinessDays == 0 }

// After is the moment the period ends when it starts at t.
func (p Period) After(t time.Time) time.Time {
	t = AddCalendarMonths(t, p.Months)
	t = t.AddDate(0, 0, p.Days)
	return AddBusinessDays(t, p.BusinessDays)
}

// Before is the moment the period starts when it ends at t: months back,
// then days back, with business days counted as calendar days, so that a
// window or a retention ending at t is never shorter than p's business days.
// (Calendar months do not invert: 31 March - 1mo = 28 February.)
func (p Period) Before(t time.Time) time.Time {
	return AddCalendarMonths(t, -p.Months).AddDate(0, 0, -p.Days-p.BusinessDays)
}

// Plus adds two periods of the same unit (extensions); mixed units add in
// the order months, days, business days when applied with After.
func (p Period) Plus(q Period) Period {
	return Period{Months: p.Months + q.Months, Days: p.Days + q.Days, BusinessDays: p.BusinessDays + q.BusinessDays}
}

// Within says whether p is no longer than max, compared from start.
func (p Period) Within(max Period, start time.Time) bool {
	return !p.After(start).After(max.After(start))
}

// AddCalendarMonths is the same date n months later; where that date does
// not exist, the last day of that month (31 January + 1 month = 28 or 29 February).
func AddCalendarMonths(t time.Time, n int) time.Time {
	if n == 0 {
		return t
	}
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	if d > last {
		d = last
	}
	return first.AddDate(0, 0, d-1)
}

// AddBusinessDays moves n working days (Monday to Friday) forward from t.
func AddBusinessDays(t time.Time, n int) time.Time {
	for n > 0 {
		t = t.AddDate(0, 0, 1)
		if wd := t.Weekday(); wd != time.Saturday && wd != time.Sunday {
			n--
		}
	}
	return t
}
