-- The demo application database: what a small SaaS company modelled on the
-- policies in shared/seeds keeps about its users. Lethe works on it in dev and tests.
CREATE SCHEMA IF NOT EXISTS demo;

CREATE TABLE IF NOT EXISTS demo.accounts (
    id             text PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    status         text NOT NULL DEFAULT 'active',
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_active_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE demo.accounts ADD COLUMN IF NOT EXISTS closed_at timestamptz;
-- Never disclosed, not even to the person (accounts.exclude in the data map).
ALTER TABLE demo.accounts ADD COLUMN IF NOT EXISTS password_hash text;
-- The person's customer id at Stripe, once they bought something (the data
-- map's processors.ids): Stripe is asked to erase that customer.
ALTER TABLE demo.accounts ADD COLUMN IF NOT EXISTS stripe_customer_id text;
CREATE INDEX IF NOT EXISTS accounts_last_active ON demo.accounts (last_active_at, id);

CREATE TABLE IF NOT EXISTS demo.profiles (
    account_id   text PRIMARY KEY REFERENCES demo.accounts (id),
    display_name text NOT NULL,
    bio          text,
    country      text
);

CREATE TABLE IF NOT EXISTS demo.projects (
    id         bigserial PRIMARY KEY,
    account_id text NOT NULL REFERENCES demo.accounts (id),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS demo.project_files (
    id         bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES demo.projects (id),
    account_id text NOT NULL REFERENCES demo.accounts (id),
    s3_key     text NOT NULL,
    size_bytes bigint NOT NULL
);

-- Tax law keeps purchase records for 10 years: a legal hold in the data map.
CREATE TABLE IF NOT EXISTS demo.purchases (
    id           bigserial PRIMARY KEY,
    account_id   text NOT NULL REFERENCES demo.accounts (id),
    amount_cents bigint NOT NULL,
    currency     text NOT NULL,
    purchased_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS demo.support_tickets (
    id         bigserial PRIMARY KEY,
    account_id text NOT NULL REFERENCES demo.accounts (id),
    subject    text NOT NULL,
    body       text NOT NULL,
    status     text NOT NULL DEFAULT 'open',
    closed_at  timestamptz
);

-- ID documents sent for age-verification appeals (deleted 60 days after the ticket closes).
CREATE TABLE IF NOT EXISTS demo.id_documents (
    id          bigserial PRIMARY KEY,
    account_id  text NOT NULL REFERENCES demo.accounts (id),
    ticket_id   bigint REFERENCES demo.support_tickets (id),
    s3_key      text NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS demo.marketing_consents (
    account_id text NOT NULL REFERENCES demo.accounts (id),
    purpose    text NOT NULL,
    granted    boolean NOT NULL,
    source     text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, purpose)
);

CREATE TABLE IF NOT EXISTS demo.activity_events (
    id         bigserial PRIMARY KEY,
    account_id text NOT NULL REFERENCES demo.accounts (id),
    kind       text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);

-- Comments on a project: no account column, reached through the project
-- (via in the data map).
CREATE TABLE IF NOT EXISTS demo.project_comments (
    id         bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES demo.projects (id),
    body       text NOT NULL
);

-- Public reviews: erasure keeps the review but anonymizes its author and
-- unlinks it from the account (anonymize in the data map).
CREATE TABLE IF NOT EXISTS demo.reviews (
    id           bigserial PRIMARY KEY,
    account_id   text REFERENCES demo.accounts (id),
    author_name  text NOT NULL,
    author_email text,
    rating       int NOT NULL,
    body         text NOT NULL
);
