-- Who a bulk notice goes to: one row per person (user id) and campaign, where
-- a campaign is an incident id (breach notice, P11) or a policy-notice id
-- (policy-change notice, P16). The primary key adds everyone once; a batch
-- claims its rows (batch) before sending and records the outcome after, which
-- is what sends each person the notice once (see internal/bulk).
--
-- User ids are personal data: they are kept only while the campaign needs
-- them (sending, then as long as its record must be kept) and deleted with
-- bulk.Purge. No email address is ever stored here; it is looked up in the
-- application's database at send time.
CREATE TABLE lethe.notice_targets (
    campaign    text NOT NULL,
    seq         bigserial,           -- order of adding, the order of sending
    user_id     text NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    batch       int,                 -- the batch that claimed the row, null until claimed
    notified_at timestamptz,         -- when the outcome was recorded, null while pending
    outcome     text CHECK (outcome IN ('sent', 'no_email', 'failed')),
    PRIMARY KEY (campaign, user_id)
);

-- Batches take unclaimed targets in seq order. Only unclaimed rows are
-- indexed, so the millionth pick costs what the first did.
CREATE INDEX notice_targets_campaign_seq ON lethe.notice_targets (campaign, seq) WHERE batch IS NULL;
-- A retried batch finds the rows it claimed.
CREATE INDEX notice_targets_campaign_batch ON lethe.notice_targets (campaign, batch) WHERE batch IS NOT NULL;

---- create above / drop below ----
DROP TABLE lethe.notice_targets;
