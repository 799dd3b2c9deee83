-- Runs once, when the postgresql service starts on an empty volume
-- (docker-compose.yml mounts it into /docker-entrypoint-initdb.d), as the
-- POSTGRES_USER superuser connected to its own database "lethe".
--
--   lethe                Lethe's own database (requests, audit trail, keys);
--                        created by the image from POSTGRES_USER, migrated by
--                        the `migrate` service.
--   app                  stands in for the company's application database, the
--                        one the data map covers (LETHE_APP_DATABASE_URL).
--   temporal,            Temporal's persistence and visibility stores; the
--   temporal_visibility  temporal service creates their schema (and would
--                        create the databases too; an existing one is fine).

CREATE DATABASE app;
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;

-- The demo application's tables, so that the demo data map mounted for the
-- worker matches the app database. Drop these two lines (and the demo schema
-- mount) when LETHE_APP_DATABASE_URL points at your real application database.
\connect app
\i /lethe/demo-schema.sql
