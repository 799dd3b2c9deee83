package activities

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/sdk/temporal"
)

// classifyDB makes a database error non-retryable when running again cannot
// help (a missing table, a constraint, bad SQL); connection trouble, deadlocks
// and serialization failures stay retryable.
func classifyDB(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "53", "57": // connection, transaction rollback, resources, operator intervention
			return err
		case "23", "42", "22": // integrity, syntax/undefined objects, data
			return temporal.NewNonRetryableApplicationError(err.Error(), "DatabaseError", nil)
		}
	}
	return err
}
