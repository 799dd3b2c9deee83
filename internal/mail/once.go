package mail

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is the part of *pgxpool.Pool (or pgx.Conn, pgx.Tx) that Once uses.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrSentNotRecorded is returned (wrapped) by Once when the message went out
// but marking it sent failed. Retrying would send it again; callers that
// prefer no duplicate over a failed step treat it as success.
var ErrSentNotRecorded = errors.New("mail: sent but not recorded as sent")

// markTimeout bounds marking a message sent, which runs even when the
// caller's context ends right after the send.
const markTimeout = 10 * time.Second

// Once makes a Sender idempotent by Message.IdempotencyKey, using the
// lethe.mail_sent table, so a retried Temporal activity does not mail twice.
//
// Send claims the key (INSERT … ON CONFLICT DO NOTHING); when the row says it
// was already sent, Send returns nil without sending; otherwise it sends, then
// sets sent_at.
//
// One window remains: if the process dies (or the database is unreachable)
// between the provider accepting the message and sent_at being written, the
// next attempt sends it again, so a message goes out at most twice, never
// zero times after a success. The same holds when the provider accepted a
// message but the answer was lost (a timeout). Two attempts running at the
// same moment with the same key are not serialised either; Temporal runs one
// attempt of an activity at a time.
type Once struct {
	db   DB
	next Sender
	obs  SentObserver // hears of each message really sent; may be nil
}

// SentObserver hears of each message Once really sent, by its Template:
// not of one it found sent before (a retried activity), nor of a failure.
type SentObserver interface {
	MailSent(template string)
}

// Observed is o reporting every message it sends to obs; o itself is
// unchanged. A nil obs gives o.
func (o *Once) Observed(obs SentObserver) *Once {
	if obs == nil {
		return o
	}
	c := *o
	c.obs = obs
	return &c
}

var _ Sender = (*Once)(nil)

// NewOnce wraps next. db is usually the *pgxpool.Pool of Lethe's database.
func NewOnce(db DB, next Sender) *Once {
	return &Once{db: db, next: next}
}

// Send sends m through the wrapped Sender unless a message with its
// IdempotencyKey was sent before. An empty IdempotencyKey is an error.
func (o *Once) Send(ctx context.Context, m Message) error {
	if m.IdempotencyKey == "" {
		return fmt.Errorf("%w: no idempotency key", ErrInvalidMessage)
	}
	if err := m.Validate(); err != nil {
		return err
	}
	var requestID *string
	if m.RequestID != "" {
		requestID = &m.RequestID
	}
	if _, err := o.db.Exec(ctx,
		`INSERT INTO lethe.mail_sent (idempotency_key, template, request_id)
		 VALUES ($1, $2, $3)
		 ON CONFLICT (idempotency_key) DO NOTHING`,
		m.IdempotencyKey, m.Template, requestID); err != nil {
		return fmt.Errorf("mail: claim idempotency key: %w", err)
	}
	var sentAt *time.Time
	if err := o.db.QueryRow(ctx,
		`SELECT sent_at FROM lethe.mail_sent WHERE idempotency_key = $1`,
		m.IdempotencyKey).Scan(&sentAt); err != nil {
		return fmt.Errorf("mail: read idempotency key: %w", err)
	}
	if sentAt != nil {
		return nil
	}

	if err := o.next.Send(ctx, m); err != nil {
		return err
	}
	if o.obs != nil {
		o.obs.MailSent(m.Template)
	}

	// The message is out: record that even if ctx ended meanwhile.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	if _, err := o.db.Exec(mctx,
		`UPDATE lethe.mail_sent SET sent_at = now()
		 WHERE idempotency_key = $1 AND sent_at IS NULL`,
		m.IdempotencyKey); err != nil {
		return fmt.Errorf("%w: %w", ErrSentNotRecorded, err)
	}
	return nil
}

// Sent reports whether the message with key was sent (through Once).
func (o *Once) Sent(ctx context.Context, key string) (bool, error) {
	var sent bool
	err := o.db.QueryRow(ctx,
		`SELECT sent_at IS NOT NULL FROM lethe.mail_sent WHERE idempotency_key = $1`,
		key).Scan(&sent)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mail: read idempotency key: %w", err)
	}
	return sent, nil
}

// ForgetRequests deletes the idempotency keys of every mail sent about the
// requests ids, inside tx: Lethe's retention purges them with the requests'
// other records, in one transaction (store.Store.Purge).
func ForgetRequests(ctx context.Context, tx pgx.Tx, ids []string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM lethe.mail_sent WHERE request_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("mail: forget requests: %w", err)
	}
	return nil
}
