-- A second application, unlike the demo in every way Lethe could depend on:
-- a small online bookshop with bigint identity keys, uuid order numbers, a
-- newsletter table keyed by email address only, a NOT NULL UNIQUE email on
-- the customer row, no account status or last-activity column, and order
-- lines kept for tax law through a foreign-key chain. Tests (and `dev` on
-- one's own application) use it as an application nobody here wrote.
CREATE SCHEMA IF NOT EXISTS shop;

CREATE TABLE IF NOT EXISTS shop.customers (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email              text NOT NULL UNIQUE,
    full_name          text NOT NULL,
    phone              text,
    helpdesk_ref       text,
    joined             date NOT NULL DEFAULT current_date
);

CREATE TABLE IF NOT EXISTS shop.addresses (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers (id),
    line1       text NOT NULL,
    city        text NOT NULL,
    postcode    text NOT NULL
);

CREATE TABLE IF NOT EXISTS shop.orders (
    order_no    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id bigint NOT NULL REFERENCES shop.customers (id),
    placed_at   timestamptz NOT NULL,
    total       numeric(10, 2) NOT NULL
);

-- Order lines have no customer column: they are the lines of the person's orders,
-- and go with their order when its tax hold ends.
CREATE TABLE IF NOT EXISTS shop.order_lines (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_no uuid NOT NULL REFERENCES shop.orders (order_no) ON DELETE CASCADE,
    isbn     text NOT NULL,
    quantity integer NOT NULL,
    gift_note text
);

-- Sign-ups from the shop's footer: no account, only the address.
CREATE TABLE IF NOT EXISTS shop.newsletter_signups (
    address      text PRIMARY KEY,
    signed_up_at timestamptz NOT NULL DEFAULT now(),
    source       text NOT NULL DEFAULT 'footer'
);

CREATE TABLE IF NOT EXISTS shop.wishlists (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers (id),
    title       text NOT NULL
);

CREATE TABLE IF NOT EXISTS shop.wishlist_items (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wishlist_id bigint NOT NULL REFERENCES shop.wishlists (id),
    isbn        text NOT NULL,
    note        text
);

CREATE TABLE IF NOT EXISTS shop.book_reviews (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id   bigint REFERENCES shop.customers (id),
    reviewer_name text NOT NULL,
    isbn          text NOT NULL,
    body          text NOT NULL
);

CREATE TABLE IF NOT EXISTS shop.login_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers (id),
    ip          inet NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);

-- Books hold nothing about a person: the map ignores it with a reason.
CREATE TABLE IF NOT EXISTS shop.books (
    isbn  text PRIMARY KEY,
    title text NOT NULL
);
