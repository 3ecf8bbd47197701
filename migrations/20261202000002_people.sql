-- People: who may see a library, follows, activities and the per-reader feed they are
-- fanned out into, and a topic on the outbox so activities travel like orders.

ALTER TABLE users ADD COLUMN library_visibility text NOT NULL DEFAULT 'private'
    CHECK (library_visibility IN ('private', 'followers', 'public'));

CREATE TABLE follows (
    follower_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CONSTRAINT follows_not_yourself CHECK (follower_id <> followee_id)
);
-- Followers of a user (and the fan-out), newest follow first; whom a user follows.
CREATE INDEX follows_followee_idx ON follows (followee_id, created_at DESC, follower_id DESC);
CREATE INDEX follows_follower_idx ON follows (follower_id, created_at DESC, followee_id DESC);

-- What happened, once; the feed rows point here. An actor's deletion takes their
-- activities (and so every feed row of them) with it.
CREATE TABLE activities (
    id         uuid PRIMARY KEY,
    actor_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       text NOT NULL
               CHECK (type IN ('shelved', 'started_reading', 'finished_reading', 'rated', 'followed')),
    book_id    uuid REFERENCES books (id) ON DELETE CASCADE,
    subject_id uuid REFERENCES users (id) ON DELETE CASCADE,
    status     text,
    rating     smallint CHECK (rating BETWEEN 1 AND 5),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT activities_shape CHECK (
        (type = 'followed') = (subject_id IS NOT NULL)
        AND (type = 'followed') = (book_id IS NULL)
        AND (type = 'rated') = (rating IS NOT NULL)
        AND (type = 'shelved') = (status IS NOT NULL)
    )
);
CREATE INDEX activities_actor_idx ON activities (actor_id);
CREATE INDEX activities_book_idx ON activities (book_id) WHERE book_id IS NOT NULL;
CREATE INDEX activities_subject_idx ON activities (subject_id) WHERE subject_id IS NOT NULL;

-- Fan-out on write: one row per (reader, activity). The primary key is what makes a
-- redelivered message add nothing; the actor is copied so unfollowing deletes by index.
CREATE TABLE feed_items (
    reader_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    activity_id uuid NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    actor_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (reader_id, activity_id)
);
-- GET /feed: one reader's rows, newest first.
CREATE INDEX feed_items_reader_idx ON feed_items (reader_id, created_at DESC, activity_id DESC);
CREATE INDEX feed_items_reader_actor_idx ON feed_items (reader_id, actor_id);
CREATE INDEX feed_items_activity_idx ON feed_items (activity_id);

-- The outbox carries two topics now: orders (to the orders queue) and activities (to the
-- feed queue). Each row names the one thing it announces.
ALTER TABLE outbox ADD COLUMN topic text NOT NULL DEFAULT 'orders' CHECK (topic IN ('orders', 'activities'));
ALTER TABLE outbox ALTER COLUMN order_id DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN activity_id uuid REFERENCES activities (id) ON DELETE CASCADE;
ALTER TABLE outbox ADD CONSTRAINT outbox_names_its_subject CHECK (
    (topic = 'orders') = (order_id IS NOT NULL) AND (topic = 'activities') = (activity_id IS NOT NULL)
);
DROP INDEX outbox_unsent_idx;
CREATE INDEX outbox_unsent_idx ON outbox (topic, id) WHERE sent_at IS NULL;
CREATE INDEX outbox_activity_id_idx ON outbox (activity_id) WHERE activity_id IS NOT NULL;
