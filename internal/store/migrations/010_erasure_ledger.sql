-- The erasure ledger (P6): who was erased, so that no restore of the
-- application database brings them back. Backups cannot be edited; after a
-- restore, the restore-reconcile workflow walks the application's accounts,
-- looks each one up here by its keyed hash and erases every match again.
--
-- No plaintext personal data: a person is known only by user_ref, the keyed
-- hash of their user id (subject.Hasher.UserID), which nobody can reverse
-- without Lethe's hash key.
CREATE TABLE lethe.erasure_ledger (
    user_ref           text PRIMARY KEY,      -- subject.Hasher.UserID(user id)
    request_id         text NOT NULL,         -- the erasure request that first erased the person
    erased_at          timestamptz NOT NULL,  -- when it was recorded (before any row went)
    datamap_digest     text NOT NULL,         -- the data map's version the erasure followed
    backups_clear_at   timestamptz,           -- when every backup older than the erasure had rotated out
    reconciled_count   int NOT NULL DEFAULT 0, -- how many restore-reconcile runs found the person back and erased them again
    last_reconciled_at timestamptz            -- when the last of those runs started
);

-- The backup watch of a request marks its row by request id.
CREATE INDEX erasure_ledger_request ON lethe.erasure_ledger (request_id);

---- create above / drop below ----
DROP TABLE lethe.erasure_ledger;
