package domain

import (
	"errors"
	"time"
)

// DateLayout is how Lethe writes a day to a person: "2 January 2027".
const DateLayout = "2 January 2006"

// FormatDate is t's day in the person's words, "2 January 2027", counted in
// UTC like every deadline. A zero time is an error, so that an unset date
// never reaches anyone as "1 January 0001".
func FormatDate(t time.Time) (string, error) {
	if t.IsZero() {
		return "", errors.New("date is not set")
	}
	return t.UTC().Format(DateLayout), nil
}
