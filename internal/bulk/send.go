package bulk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lethe-privacy/lethe/internal/appdb"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/mail"
)

// BatchSize is the most targets one batch claims and sends in one call.
const BatchSize = mail.MaxBulkRecipients

// Greeting is what mail.NameTag ("-name-") in a notice becomes: the identity
// table holds no names, so everyone is greeted alike ("Dear customer").
const Greeting = "customer"

// markTimeout bounds recording outcomes after SendGrid answered, which runs
// even when the caller's context ends right after the call.
const markTimeout = 30 * time.Second

// Message is the notice, the same for everyone but for mail.NameTag.
type Message struct {
	// Subject is required; Text and/or HTML is the body.
	Subject, Text, HTML string
	// Template names the kind of notice, e.g. "breach_notice". It is
	// recorded (SendGrid custom_args), not rendered.
	Template string
}

// BatchResult is what one SendBatch did.
type BatchResult struct {
	// Claimed is the number of targets the batch held: newly claimed, or
	// claimed by an earlier attempt of the same batch number and not settled.
	Claimed int
	// Sent is the number of those handed to SendGrid (people sharing an
	// address count once each, their address gets one message).
	Sent int
	// NoEmail is the number of those without a usable address.
	NoEmail int
	// Done is true when no target of the campaign is left unclaimed: no
	// further batch number is needed.
	Done bool
}

// SendBatch sends msg to batch number batch (1, 2, …) of campaign's targets;
// see the package documentation for how batches make each person get it once.
//
// It claims up to BatchSize unclaimed targets in the order they were added
// (or, when batch already claimed targets, takes those of them not settled
// yet), looks up their addresses in the identity table m.Identity of the
// application database app in one query, sends one SendBulk call to everyone
// with a usable address and records the outcomes: sent, or no_email for those
// without one.
//
// If the call fails permanently (mail.IsPermanent) the targets are recorded
// as failed and the error is returned. If it fails otherwise (5xx, 429,
// network, cancelled context), the targets stay claimed, unsent, and the
// error is returned: calling SendBatch again with the same batch number
// sends to exactly them. Errors never contain addresses or user ids.
func SendBatch(ctx context.Context, lethe *pgxpool.Pool, app appdb.Querier, m *datamap.Map, sender mail.BulkSender, campaign string, msg Message, batch int) (BatchResult, error) {
	var res BatchResult
	switch {
	case campaign == "":
		return res, ErrNoCampaign
	case batch < 1:
		return res, fmt.Errorf("bulk: batch number %d, want 1 or more", batch)
	case m == nil || m.Identity == nil:
		return res, errors.New("bulk: the data map has no identity table")
	case sender == nil:
		return res, errors.New("bulk: no sender")
	case strings.TrimSpace(msg.Subject) == "":
		return res, fmt.Errorf("%w: no subject", mail.ErrInvalidMessage)
	case msg.Text == "" && msg.HTML == "":
		return res, fmt.Errorf("%w: no body", mail.ErrInvalidMessage)
	}

	ids, err := claim(ctx, lethe, campaign, batch)
	if err != nil {
		return res, err
	}
	res.Claimed = len(ids)
	if len(ids) > 0 {
		if err := send(ctx, lethe, app, m, sender, campaign, msg, batch, ids, &res); err != nil {
			return res, err
		}
	}
	if err := lethe.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM lethe.notice_targets WHERE campaign = $1 AND batch IS NULL)`,
		campaign).Scan(&res.Done); err != nil {
		return res, fmt.Errorf("bulk: batch %d: check for targets left: %w", batch, err)
	}
	return res, nil
}

// claimSQL gives batch $2 of campaign $1 its targets in one statement. When
// batch $2 has claimed rows before, it is a retry and takes back those not
// settled yet (possibly none) and nothing else; otherwise it claims up to $3
// unclaimed rows in seq order. Rows locked by a concurrent claim are skipped,
// and the final WHERE re-checks that no other batch holds a row, so two batch
// numbers never share a target. (That check is written so that no index
// matches it: the rows are found by primary key, whatever the statistics say.)
const claimSQL = `
WITH used AS (
    SELECT EXISTS (SELECT 1 FROM lethe.notice_targets WHERE campaign = $1 AND batch = $2) AS yes
), mine AS (
    SELECT user_id, seq FROM lethe.notice_targets
     WHERE campaign = $1 AND batch = $2 AND notified_at IS NULL
), fresh AS (
    SELECT user_id, seq FROM lethe.notice_targets
     WHERE campaign = $1 AND batch IS NULL AND NOT (SELECT yes FROM used)
     ORDER BY seq
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), pick AS (
    SELECT user_id, seq FROM mine
    UNION ALL
    SELECT user_id, seq FROM fresh
)
UPDATE lethe.notice_targets t
   SET batch = $2
  FROM pick
 WHERE t.campaign = $1 AND t.user_id = pick.user_id
   AND t.notified_at IS NULL AND coalesce(t.batch, $2) = $2
RETURNING t.user_id, t.seq`

// claim runs claimSQL and returns the batch's user ids in seq order.
func claim(ctx context.Context, lethe *pgxpool.Pool, campaign string, batch int) ([]string, error) {
	type claimed struct {
		userID string
		seq    int64
	}
	// QueryExecModeExec plans the statement for these very arguments each
	// time; a cached generic plan can hash the whole table instead.
	rows, err := lethe.Query(ctx, claimSQL, pgx.QueryExecModeExec, campaign, batch, BatchSize)
	if err != nil {
		return nil, fmt.Errorf("bulk: batch %d: claim targets: %w", batch, err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
		var c claimed
		err := r.Scan(&c.userID, &c.seq)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("bulk: batch %d: claim targets: %w", batch, err)
	}
	// RETURNING follows no order; send in the order people were added.
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.seq, b.seq) })
	ids := make([]string, len(got))
	for i, c := range got {
		ids[i] = c.userID
	}
	return ids, nil
}

// send looks up the targets' addresses, records those without one, sends one
// bulk call to the others and records its outcome in res and the table.
func send(ctx context.Context, lethe *pgxpool.Pool, app appdb.Querier, m *datamap.Map, sender mail.BulkSender,
	campaign string, msg Message, batch int, ids []string, res *BatchResult) error {
	emails, err := lookup(ctx, app, m, ids)
	if err != nil {
		return fmt.Errorf("bulk: batch %d: %w", batch, err)
	}

	subs := map[string]string{mail.NameTag: Greeting} // shared, read-only
	var (
		recipients []mail.Recipient
		sentIDs    []string // everyone whose address is among recipients
		noEmailIDs []string
		seen       = make(map[string]struct{}, len(ids))
	)
	for _, id := range ids {
		email, ok := emails[id]
		if !ok {
			noEmailIDs = append(noEmailIDs, id)
			continue
		}
		sentIDs = append(sentIDs, id)
		// Two accounts with one address: the address gets one message.
		k := strings.ToLower(email)
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		recipients = append(recipients, mail.Recipient{Email: email, Substitutions: subs})
	}
	clear(emails)

	if len(noEmailIDs) > 0 {
		n, err := settle(ctx, lethe, campaign, batch, noEmailIDs, OutcomeNoEmail)
		if err != nil {
			return fmt.Errorf("bulk: batch %d: record targets without address: %w", batch, err)
		}
		res.NoEmail = n
	}
	if len(recipients) == 0 {
		return nil
	}

	_, sendErr := sender.SendBulk(ctx, mail.Bulk{
		Recipients:     recipients,
		Subject:        msg.Subject,
		Text:           msg.Text,
		HTML:           msg.HTML,
		Template:       msg.Template,
		IdempotencyKey: "notice:" + campaign + ":" + strconv.Itoa(batch),
	})
	// SendGrid has answered: record what it said even if ctx ends now.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	if sendErr != nil {
		err := fmt.Errorf("bulk: batch %d: send: %w", batch, sendErr)
		if !mail.IsPermanent(sendErr) {
			return err // still claimed: a retry of this batch sends them
		}
		if _, serr := settle(mctx, lethe, campaign, batch, sentIDs, OutcomeFailed); serr != nil {
			return errors.Join(err, fmt.Errorf("bulk: batch %d: record failure: %w", batch, serr))
		}
		return err
	}
	n, err := settle(mctx, lethe, campaign, batch, sentIDs, OutcomeSent)
	if err != nil {
		return fmt.Errorf("bulk: batch %d: %w: %w", batch, mail.ErrSentNotRecorded, err)
	}
	res.Sent = n
	return nil
}

// lookup returns the usable address of each user id that has one, from the
// identity table, in one query.
func lookup(ctx context.Context, app appdb.Querier, m *datamap.Map, ids []string) (map[string]string, error) {
	found, err := appdb.IdentityEmails(ctx, app, m, ids)
	if err != nil {
		return nil, err
	}
	emails := make(map[string]string, len(ids))
	for _, u := range found {
		if u.Email == nil {
			continue
		}
		if e := strings.TrimSpace(*u.Email); usableAddress(e) {
			if _, ok := emails[u.UserID]; !ok {
				emails[u.UserID] = e
			}
		}
	}
	return emails, nil
}

// settle records outcome for the given targets of batch that are not settled
// yet and returns how many it recorded.
func settle(ctx context.Context, lethe *pgxpool.Pool, campaign string, batch int, ids []string, outcome string) (int, error) {
	tag, err := lethe.Exec(ctx, `
		UPDATE lethe.notice_targets
		   SET notified_at = now(), outcome = $4
		 WHERE campaign = $1 AND user_id = ANY($3) AND batch = $2 AND notified_at IS NULL`,
		campaign, batch, ids, outcome)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// usableAddress reports whether SendGrid would take s as a recipient: one
// '@' with something either side, a dot inside the domain, and no spaces,
// control characters or characters that separate addresses. An address it
// would refuse would fail the whole batch, so it counts as none.
func usableAddress(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || at == len(s)-1 {
		return false
	}
	if strings.ContainsAny(s, "<>,;\"") || strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}) {
		return false
	}
	domain := s[at+1:]
	dot := strings.IndexByte(domain, '.')
	return dot > 0 && strings.LastIndexByte(domain, '.') < len(domain)-1
}
