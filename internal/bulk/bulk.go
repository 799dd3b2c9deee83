// Package bulk sends one notice to many people, each exactly once: breach
// notices (P11) and policy-change notices (P16), to up to millions of people.
//
// A campaign (an incident id or a policy-notice id) first collects its
// targets, the user ids of the people to notify, in lethe.notice_targets:
// AddFromQuery runs a selector query the company wrote on the application
// database, AddFromLines reads a list of user ids (an S3 object's body). Both
// stream, so a million ids are never in memory at once, and both may be run
// again: the table's primary key (campaign, user_id) adds each person once.
//
// SendBatch then sends batch after batch (numbered 1, 2, … by the caller,
// usually a Temporal workflow running one activity per batch) until its
// result says Done. Each batch claims up to mail.MaxBulkRecipients unclaimed
// targets, looks their email addresses up in the application's identity
// table, sends one SendBulk call for all of them and records each target's
// outcome. Counts reports progress; Purge deletes the user ids once the
// campaign's record need not be kept any more.
//
// # Exactly once
//
// A target row goes through three states: unclaimed (batch null), claimed by
// one batch number (batch set, notified_at null) and settled (notified_at and
// outcome set). The claim is a single UPDATE that takes unclaimed rows only,
// so no two batch numbers ever hold the same person, and a batch sends only
// the rows it claimed and has not settled. A retry of batch n takes exactly
// the rows batch n claimed before and left unsettled; once batch n settled
// its rows, running it again sends nothing.
//
// SendGrid takes or refuses a bulk call as a whole. When it refuses with a
// retryable error (5xx, 429, network), nobody in the batch was accepted: the
// rows stay claimed and the retry sends them. When it refuses permanently
// (4xx), the rows are settled as failed and never sent.
//
// One window remains: SendGrid accepted the call, but the outcome was not
// recorded, because the process died or the database was unreachable between
// the 202 and the UPDATE that settles the rows, or because the 202 was lost
// on the way back (a timeout after SendGrid accepted). The retry of that batch
// number then sends the same rows again, so at most that one batch of at most
// 1000 people can get the notice twice. It is the only case: everybody else is
// either settled, or claimed by a batch whose call was refused, or not
// claimed at all. A batch number must also not run twice at the same moment
// (Temporal runs one attempt of an activity at a time, provided its
// start-to-close timeout exceeds the HTTP timeout). When the outcome could not
// be recorded after SendGrid accepted, SendBatch's error wraps
// mail.ErrSentNotRecorded, so a caller that prefers a missed record to a
// repeated notice can treat it as success.
//
// Errors never contain email addresses or user ids: lines and rows are named
// by number.
package bulk

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Outcomes recorded in lethe.notice_targets.outcome.
const (
	// OutcomeSent: SendGrid accepted the notice for the person's address.
	OutcomeSent = "sent"
	// OutcomeNoEmail: the application has no usable address for the person
	// (no row, a null or empty address, or one SendGrid would refuse).
	OutcomeNoEmail = "no_email"
	// OutcomeFailed: SendGrid refused the batch permanently.
	OutcomeFailed = "failed"
)

// ErrNoCampaign is returned for an empty campaign id.
var ErrNoCampaign = errors.New("bulk: no campaign")

// CampaignCounts is a campaign's progress. (The type cannot share the name of
// the function Counts that returns it.)
type CampaignCounts struct {
	// Found is the number of targets added.
	Found int
	// Sent, NoEmail and Failed are the targets settled with that outcome.
	Sent, NoEmail, Failed int
	// Pending are the targets not settled yet, claimed by a batch or not.
	Pending int
}

// Counts returns campaign's progress.
func Counts(ctx context.Context, lethe *pgxpool.Pool, campaign string) (CampaignCounts, error) {
	var c CampaignCounts
	if campaign == "" {
		return c, ErrNoCampaign
	}
	err := lethe.QueryRow(ctx, `
		SELECT count(*),
		       count(*) FILTER (WHERE outcome = 'sent'),
		       count(*) FILTER (WHERE outcome = 'no_email'),
		       count(*) FILTER (WHERE outcome = 'failed'),
		       count(*) FILTER (WHERE notified_at IS NULL)
		  FROM lethe.notice_targets
		 WHERE campaign = $1`, campaign).Scan(&c.Found, &c.Sent, &c.NoEmail, &c.Failed, &c.Pending)
	if err != nil {
		return CampaignCounts{}, fmt.Errorf("bulk: count targets: %w", err)
	}
	return c, nil
}

// Purge deletes campaign's targets, that is the user ids of everyone it was
// meant for. Call it once the campaign is done and its record has been kept as
// long as needed (take Counts first if they are to be kept); targets still
// pending are dropped and will not be notified.
func Purge(ctx context.Context, lethe *pgxpool.Pool, campaign string) error {
	if campaign == "" {
		return ErrNoCampaign
	}
	if _, err := lethe.Exec(ctx, `DELETE FROM lethe.notice_targets WHERE campaign = $1`, campaign); err != nil {
		return fmt.Errorf("bulk: purge targets: %w", err)
	}
	return nil
}
