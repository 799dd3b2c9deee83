-- What each erasure step did, recorded as it happened: a step retried after
-- its work was committed (the worker died before Temporal heard back) finds
-- nothing left to erase, and its receipt must still say what went. Counts
-- and table names only, never personal data.
CREATE TABLE lethe.erasure_steps (
    request_id  text NOT NULL,
    step        text NOT NULL,              -- e.g. "tables"
    result      jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, step)
);

---- create above / drop below ----
DROP TABLE lethe.erasure_steps;
