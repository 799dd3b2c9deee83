-- The Data Rights Protocol (internal/drp, internal/api/drp.go).
-- drp_agents: the authorized agents the privacy team registered, each with
-- the Ed25519 verify key of the DRP directory and the origin its status
-- callbacks may go to. Only the SHA-256 of the pairwise bearer token issued
-- at setup is kept; a new setup replaces it.
CREATE TABLE lethe.drp_agents (
    id                   text PRIMARY KEY,
    name                 text NOT NULL DEFAULT '',
    verify_key           bytea NOT NULL CHECK (octet_length(verify_key) = 32),
    callback_url         text NOT NULL DEFAULT '',
    trust_verified_email boolean NOT NULL DEFAULT false,
    token_hash           bytea UNIQUE CHECK (octet_length(token_hash) = 32),
    token_issued_at      timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    revoked_at           timestamptz
);

-- drp_requests: which agent manages which of Lethe's requests, and what the
-- agent was last told (notified_state: "status/reason|expected_by"). No
-- personal data: the request's identity is in its workflow, sealed.
CREATE TABLE lethe.drp_requests (
    request_id       text NOT NULL,
    agent_id         text NOT NULL REFERENCES lethe.drp_agents (id),
    agent_request_id text NOT NULL DEFAULT '',
    exercise         text NOT NULL,
    status_callback  text NOT NULL DEFAULT '',
    received_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    notified_state   text NOT NULL DEFAULT '',
    notified_final   boolean NOT NULL DEFAULT false,
    notify_attempts  integer NOT NULL DEFAULT 0,
    next_notify_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, agent_id)
);
CREATE INDEX drp_requests_to_notify ON lethe.drp_requests (next_notify_at) WHERE NOT notified_final AND status_callback <> '';

-- drp_seen: the signed messages already taken, until they expire, so that
-- a replayed message is refused.
CREATE TABLE lethe.drp_seen (
    agent_id   text NOT NULL,
    digest     bytea NOT NULL CHECK (octet_length(digest) = 32),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (agent_id, digest)
);
CREATE INDEX drp_seen_expires ON lethe.drp_seen (expires_at);

---- create above / drop below ----
DROP TABLE lethe.drp_seen;
DROP TABLE lethe.drp_requests;
DROP TABLE lethe.drp_agents;
