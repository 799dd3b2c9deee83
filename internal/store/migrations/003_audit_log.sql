-- The audit trail: what happened to each privacy request, when and on whose
-- initiative. It is append-only and tamper-evident: every row carries a
-- SHA-256 hash over its contents and the previous row's hash, so altering or
-- deleting a row breaks the chain at that point (internal/audit, Verify).
-- No personal data: people are subject references ("sr_..."), requests are
-- request ids ("req_..."), and detail holds no email addresses or free text.
CREATE TABLE lethe.audit_log (
    seq             bigserial PRIMARY KEY,
    at              timestamptz NOT NULL,
    request_id      text,
    subject_ref     text,
    actor           text NOT NULL,
    action          text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Set by callers that may retry (Temporal activities): one row per key.
    idempotency_key text UNIQUE,
    prev_hash       bytea NOT NULL,
    hash            bytea NOT NULL,
    CONSTRAINT audit_log_hash_sizes CHECK (octet_length(prev_hash) = 32 AND octet_length(hash) = 32)
);
-- A request's trail, in order, for the API.
CREATE INDEX audit_log_request ON lethe.audit_log (request_id, seq);

---- create above / drop below ----
DROP TABLE lethe.audit_log;
