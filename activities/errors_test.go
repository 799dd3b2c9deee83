package activities

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/temporal"
)

// PostgreSQL quotes the value it refused; what an activity returns goes
// into the workflow's history, so the quote must not.
func TestDatabaseErrorsReachHistoryWithoutTheValueTheyQuote(t *testing.T) {
	const userID = "c0ffee-not-a-uuid-4711"
	for code, retryable := range map[string]bool{"22P02": false, "23505": false, "40001": true, "08006": true} {
		pg := &pgconn.PgError{Code: code, Message: fmt.Sprintf(`invalid input syntax for type uuid: "%s"`, userID)}
		err := classifyDB(fmt.Errorf("read the processor ids in shop.customers: %w", pg))
		if strings.Contains(err.Error(), userID) {
			t.Errorf("%s: %q carries the value", code, err)
		}
		if !strings.Contains(err.Error(), "read the processor ids in shop.customers") || !strings.Contains(err.Error(), code) {
			t.Errorf("%s: %q lost its context or code", code, err)
		}
		var app *temporal.ApplicationError
		if !errors.As(err, &app) || app.NonRetryable() == retryable {
			t.Errorf("%s: %v, want retryable %v", code, err, retryable)
		}
	}
}
