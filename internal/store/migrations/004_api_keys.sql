-- API keys for the HTTP API. A client presents "lethe_<id>_<secret>"; only the
-- SHA-256 of the 256-bit random secret is kept, so a copy of this table (or a
-- backup) cannot be used to call the API. Revoking sets revoked_at and keeps
-- the row, so the id is never reused and the audit trail stays.
CREATE TABLE lethe.api_keys (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('backend', 'operator')),
    secret_hash   bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

---- create above / drop below ----
DROP TABLE lethe.api_keys;
