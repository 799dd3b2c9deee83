-- Lethe's own tables live in their own schema, apart from the application's.
CREATE SCHEMA IF NOT EXISTS lethe;

-- One row per privacy request: a projection of its workflow, kept after the
-- workflow's history is gone (duplicate detection, limits, record keeping).
-- No plaintext personal data: the person is known by a keyed-hash subject reference.
CREATE TABLE lethe.requests (
    id            text PRIMARY KEY,
    type          text NOT NULL,
    subject_ref   text NOT NULL,
    jurisdiction  text NOT NULL,
    status        text NOT NULL,
    workflow_id   text NOT NULL UNIQUE,
    received_at   timestamptz NOT NULL,
    due_at        timestamptz,
    closed_at     timestamptz,
    outcome       jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX requests_subject_type ON lethe.requests (subject_ref, type, received_at);

-- Every mail Lethe sends, by idempotency key: a retried activity never sends twice.
CREATE TABLE lethe.mail_sent (
    idempotency_key text PRIMARY KEY,
    template        text NOT NULL,
    request_id      text,
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----
DROP SCHEMA lethe CASCADE;
