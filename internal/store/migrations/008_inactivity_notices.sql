-- The inactivity sweep's ledger: who was warned (for which last activity),
-- when they are due, and when they were erased. Keyed by subject reference:
-- no personal data. It is what makes the sweep warn and erase everyone once.
CREATE TABLE lethe.inactivity_notices (
    subject_ref text PRIMARY KEY,
    last_active timestamptz NOT NULL,
    warned_at   timestamptz NOT NULL,
    due_at      timestamptz NOT NULL,
    erased_at   timestamptz
);

---- create above / drop below ----
DROP TABLE lethe.inactivity_notices;
