package activities

import (
	"errors"
	"strings"

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
		// PostgreSQL's message may quote a value ("invalid input syntax for
		// type uuid: \"…\"", a duplicate key's value): it never reaches a
		// workflow's history. The context around it and the code stay.
		msg := strings.ReplaceAll(err.Error(), pgErr.Error(), "PostgreSQL error "+pgErr.Code)
		switch pgErr.Code[:2] {
		case "23", "42", "22": // integrity, syntax/undefined objects, data
			return temporal.NewNonRetryableApplicationError(msg, "DatabaseError", nil)
		default: // connection, transaction rollback, resources, operator intervention, …
			return temporal.NewApplicationError(msg, "DatabaseError")
		}
	}
	return err
}
