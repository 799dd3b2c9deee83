-- When a closed request's personal data was purged under Lethe's own retention.
ALTER TABLE lethe.requests ADD COLUMN purged_at timestamptz;
CREATE INDEX requests_closed_unpurged ON lethe.requests (closed_at) WHERE purged_at IS NULL AND closed_at IS NOT NULL;

---- create above / drop below ----
DROP INDEX lethe.requests_closed_unpurged;
ALTER TABLE lethe.requests DROP COLUMN purged_at;
