package export

import (
	"context"
	"errors"
	"net"

	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lethe-privacy/lethe/internal/processors"
)

// redacted is an error whose message was written here, without the
// wrapped error's text (which can carry object keys, and so user ids, or
// values PostgreSQL quotes back); errors.Is and errors.As still see it.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// s3Error describes a failed S3 call by what was being done and the error's
// code only: an S3 SDK error's text holds the request URL, so the key.
func s3Error(what string, err error) error {
	return &redacted{msg: "export: " + what + ": " + describe(err), err: err}
}

// dbError describes a failed query by what was being done and the
// PostgreSQL error code only: a message such as `invalid input syntax for
// type bigint: "…"` quotes the user id.
func dbError(what string, err error) error {
	return &redacted{msg: "export: " + what + ": " + describe(err), err: err}
}

// describe names err's kind without its text.
func describe(err error) string {
	var api smithy.APIError
	var pg *pgconn.PgError
	var nerr net.Error
	var proc *processors.Error
	switch {
	case errors.As(err, &proc):
		return proc.Error() // free of personal data by design
	case errors.Is(err, ErrTooLarge):
		return ErrTooLarge.Error()
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.As(err, &api):
		return "S3 error " + api.ErrorCode()
	case errors.As(err, &pg):
		return "PostgreSQL error " + pg.Code
	case errors.As(err, &nerr):
		if nerr.Timeout() {
			return "network timeout"
		}
		return "network error"
	case pgconn.Timeout(err):
		return "database timeout"
	}
	var plain *redacted
	if errors.As(err, &plain) {
		return plain.msg
	}
	return "failed (details withheld: they may name the person)"
}
