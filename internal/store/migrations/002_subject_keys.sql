-- One data key per person, for crypto-shredding what Lethe itself keeps about
-- them for a while (request identities, export bundle metadata, notices).
-- The key is stored wrapped (AES-256-GCM) under a master key that never enters
-- the database; master_key_id says which one. Destroying a person's key sets
-- wrapped (and master_key_id) to NULL and records when: every copy of their
-- data sealed with it, backups included, becomes unreadable, while the
-- tombstone keeps the key from being created again.
CREATE TABLE lethe.subject_keys (
    subject_ref   text PRIMARY KEY,
    master_key_id text,
    wrapped       bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    destroyed_at  timestamptz,
    CONSTRAINT subject_keys_live_or_destroyed CHECK (
        (destroyed_at IS NULL AND wrapped IS NOT NULL AND master_key_id IS NOT NULL)
        OR (destroyed_at IS NOT NULL AND wrapped IS NULL AND master_key_id IS NULL)
    )
);
-- Re-wrapping after a master key rotation finds the live keys under old master keys.
CREATE INDEX subject_keys_master_key ON lethe.subject_keys (master_key_id) WHERE wrapped IS NOT NULL;

---- create above / drop below ----
DROP TABLE lethe.subject_keys;
