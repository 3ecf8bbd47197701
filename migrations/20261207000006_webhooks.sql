-- Webhooks: a reader's subscriptions, the events owed to them, and every delivery attempt.
--
-- Events are written where the change is: bookshelf_record_change (the change feed's one
-- writer) adds one per subscribed webhook in the same transaction, and an order's status
-- change adds `order.updated`. The dispatcher (in the VPC) signs and queues what is due;
-- the sender (outside it) posts; the recorder writes the attempt here and, on failure,
-- when the event is due again. Retrying is a time in a row, not a chain of queue delays.

CREATE TABLE webhooks (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url             text NOT NULL,
    events          text[] NOT NULL,
    -- AES-256-GCM under the webhook key (never the secret itself): nonce || ciphertext.
    secret_sealed   bytea NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    disabled_reason text,
    -- Consecutive failed attempts; 20 turn the webhook off, a success resets it.
    failures        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_user_idx ON webhooks (user_id, created_at, id);

CREATE TABLE webhook_events (
    id          uuid PRIMARY KEY,
    webhook_id  uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    type        text NOT NULL,
    -- What it is about: a change (kind, resource, op) or an order; ping names nothing.
    change_type text,
    resource_id text,
    order_id    uuid,
    -- The body, fixed at the first attempt so every retry sends the same bytes' content.
    payload     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- pending: due at due_at; sent: with the sender; done: delivered or given up.
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'done')),
    due_at      timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0
);
CREATE INDEX webhook_events_due_idx ON webhook_events (due_at) WHERE state = 'pending';
-- A message lost between dispatcher and recorder: found again after a while.
CREATE INDEX webhook_events_sent_idx ON webhook_events (due_at) WHERE state = 'sent';
CREATE INDEX webhook_events_webhook_idx ON webhook_events (webhook_id);

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    type            text NOT NULL,
    attempt         integer NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    response_status integer,
    error           text,
    duration_ms     integer NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    -- One row per attempt whatever the redeliveries of its result message.
    UNIQUE (event_id, attempt)
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, at DESC, id DESC);

-- The change feed's writer, now also the webhooks' source.
CREATE OR REPLACE FUNCTION bookshelf_record_change(uid uuid, kind text, rid text, what text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    next bigint;
    event text := kind || CASE what WHEN 'upsert' THEN '.upserted' ELSE '.deleted' END;
BEGIN
    UPDATE change_heads SET seq = seq + 1 WHERE user_id = uid RETURNING seq INTO next;
    IF next IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO changes (user_id, type, resource_id, op, seq, at)
    VALUES (uid, kind, rid, what, next, now())
    ON CONFLICT (user_id, type, resource_id)
        DO UPDATE SET op = EXCLUDED.op, seq = EXCLUDED.seq, at = EXCLUDED.at;
    INSERT INTO webhook_events (id, webhook_id, type, change_type, resource_id)
    SELECT gen_random_uuid(), w.id, event, kind, rid FROM webhooks w
    WHERE w.user_id = uid AND w.active AND (event = ANY (w.events) OR '*' = ANY (w.events));
END $$;

CREATE FUNCTION bookshelf_order_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id IS NOT NULL THEN
        INSERT INTO webhook_events (id, webhook_id, type, order_id)
        SELECT gen_random_uuid(), w.id, 'order.updated', NEW.id FROM webhooks w
        WHERE w.user_id = NEW.user_id AND w.active
          AND ('order.updated' = ANY (w.events) OR '*' = ANY (w.events));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_status_changed AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION bookshelf_order_changed();
