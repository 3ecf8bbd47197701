-- Orders, their lines, idempotency keys, and the transactional outbox that feeds SQS.

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    -- Kept when the account is deleted: the order stays, detached (API.md).
    user_id          uuid REFERENCES users (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'confirmed', 'rejected', 'cancelled')),
    total_cents      bigint NOT NULL CHECK (total_cents >= 0),
    rejection_reason text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL))
);
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at, id);
CREATE INDEX orders_created_idx ON orders (created_at, id);

-- Title and price are copied at creation; no foreign key to books, so a deleted book
-- leaves its orders intact.
CREATE TABLE order_items (
    order_id         uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line             smallint NOT NULL CHECK (line BETWEEN 0 AND 49),
    book_id          uuid NOT NULL,
    title            text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line),
    UNIQUE (order_id, book_id)
);

-- One row per (user, key): the primary key is what makes a retried POST /orders create
-- nothing, even when two retries race. The order row is inserted after the key in the
-- same transaction, hence the deferred foreign key.
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,
    order_id     uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Written with the order; the request path sends right after commit, and the relay
-- sends whatever is still unsent (queue outage, crash between commit and send).
CREATE TABLE outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id   uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    attempts   integer NOT NULL DEFAULT 0,
    last_error text
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_order_id_idx ON outbox (order_id);
