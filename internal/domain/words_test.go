package domain_test

import (
	"testing"
	"time"

	"github.com/lethe-privacy/lethe/internal/domain"
)

func TestFormatDateIsTheUTCDayInWords(t *testing.T) {
	est := time.FixedZone("EST", -5*60*60)
	for at, want := range map[time.Time]string{
		time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC):      "2 January 2027",
		time.Date(2027, 12, 31, 23, 59, 59, 0, time.UTC): "31 December 2027",
		time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC):    "29 February 2028",
		time.Date(2027, 1, 1, 23, 0, 0, 0, est):          "2 January 2027", // 04:00 UTC the next day
		time.Date(2027, 1, 1, 18, 59, 0, 0, est):         "1 January 2027",
	} {
		if got, err := domain.FormatDate(at); err != nil || got != want {
			t.Errorf("FormatDate(%s) = %q, %v; want %q", at, got, err, want)
		}
	}
	if got, err := domain.FormatDate(time.Time{}); err == nil || err.Error() != "date is not set" {
		t.Errorf("FormatDate(zero) = %q, %v; want the error date is not set", got, err)
	}
}
