-- The keyed hash of each verification code mailed, so that a retried
-- activity can tell which code the person received. Never the code itself.
CREATE TABLE lethe.verification_codes (
    request_id text NOT NULL,
    seq        int  NOT NULL,
    code_hash  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, seq)
);

---- create above / drop below ----
DROP TABLE lethe.verification_codes;
