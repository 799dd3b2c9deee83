-- A person whose key was destroyed (erased, or their records' retention
-- passed) may come back and exercise their rights again: their next request
-- gets a new key, a new generation for the same subject reference, while
-- every older generation stays a tombstone and what it sealed stays
-- unreadable. Sealed data names the generation it was sealed with; data
-- sealed before this migration has none and belongs to generation 1, which
-- is what every existing row becomes.
--
-- At most one generation of a person is live (not destroyed) at a time.
-- destroyed_by names the operation that destroyed a generation (a workflow's
-- activity, never personal data), so that the operation, when retried, does
-- not destroy the generation made after it.
ALTER TABLE lethe.subject_keys ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE lethe.subject_keys ALTER COLUMN generation DROP DEFAULT;
ALTER TABLE lethe.subject_keys ADD COLUMN destroyed_by text;
ALTER TABLE lethe.subject_keys ADD CONSTRAINT subject_keys_generation_positive CHECK (generation >= 1);
ALTER TABLE lethe.subject_keys DROP CONSTRAINT subject_keys_pkey;
ALTER TABLE lethe.subject_keys ADD CONSTRAINT subject_keys_pkey PRIMARY KEY (subject_ref, generation);
CREATE UNIQUE INDEX subject_keys_one_live ON lethe.subject_keys (subject_ref) WHERE destroyed_at IS NULL;

---- create above / drop below ----
-- Back to one row per person: the newest generation. Data sealed with a
-- generation after the first cannot be opened by the code of before.
DELETE FROM lethe.subject_keys s
WHERE s.generation < (SELECT max(n.generation) FROM lethe.subject_keys n WHERE n.subject_ref = s.subject_ref);
DROP INDEX lethe.subject_keys_one_live;
ALTER TABLE lethe.subject_keys DROP CONSTRAINT subject_keys_pkey;
ALTER TABLE lethe.subject_keys ADD CONSTRAINT subject_keys_pkey PRIMARY KEY (subject_ref);
ALTER TABLE lethe.subject_keys DROP CONSTRAINT subject_keys_generation_positive;
ALTER TABLE lethe.subject_keys DROP COLUMN destroyed_by;
ALTER TABLE lethe.subject_keys DROP COLUMN generation;
