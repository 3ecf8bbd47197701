-- Reading life: page counts, two more shelf statuses, reads, timed sessions and goals.
--
-- The rules that must hold whatever the concurrency are constraints here, not checks in
-- the application: one open read per user and book, one running session per user, and
-- a closed read that no statement can change.

ALTER TABLE books ADD COLUMN page_count integer CHECK (page_count BETWEEN 1 AND 100000);

ALTER TABLE library_entries DROP CONSTRAINT library_entries_status_check;
ALTER TABLE library_entries ADD CONSTRAINT library_entries_status_check
    CHECK (status IN ('want_to_read', 'reading', 'paused', 'read', 'did_not_finish'));

-- A read belongs to a library entry: deleting the entry (or the book, or the account)
-- deletes its reads, and a read cannot exist for a book that is not on the shelf.
CREATE TABLE reads (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    book_id      uuid NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    abandoned_at timestamptz,
    page         integer CHECK (page BETWEEN 0 AND 100000),
    percent      smallint CHECK (percent BETWEEN 0 AND 100),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reads_book_id_fkey FOREIGN KEY (user_id, book_id)
        REFERENCES library_entries (user_id, book_id) ON DELETE CASCADE,
    CONSTRAINT reads_closed_once CHECK (finished_at IS NULL OR abandoned_at IS NULL),
    CONSTRAINT reads_finished_after_start CHECK (finished_at >= started_at),
    CONSTRAINT reads_abandoned_after_start CHECK (abandoned_at >= started_at),
    -- The target of the sessions' (read, user) foreign key.
    CONSTRAINT reads_id_user_key UNIQUE (id, user_id)
);
CREATE UNIQUE INDEX reads_one_open_key ON reads (user_id, book_id)
    WHERE finished_at IS NULL AND abandoned_at IS NULL;
-- GET /library/{bookId}/reads and the export: a user's reads of a book, newest first.
CREATE INDEX reads_user_book_started_idx ON reads (user_id, book_id, started_at DESC, id DESC);
-- Stats: reads closed in a year.
CREATE INDEX reads_user_finished_idx ON reads (user_id, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX reads_user_abandoned_idx ON reads (user_id, abandoned_at) WHERE abandoned_at IS NOT NULL;

-- Closed reads are history: no UPDATE may change one (deleting it is still allowed).
CREATE FUNCTION bookshelf_closed_read_is_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'read % is closed and cannot change', OLD.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'reads_closed_immutable';
END $$;
CREATE TRIGGER reads_closed_immutable BEFORE UPDATE ON reads
    FOR EACH ROW WHEN (OLD.finished_at IS NOT NULL OR OLD.abandoned_at IS NOT NULL)
    EXECUTE FUNCTION bookshelf_closed_read_is_immutable();

-- A timed session of one read. The user is repeated so that "one running session per
-- user" is a unique index; the composite key keeps it equal to the read's user.
CREATE TABLE reading_sessions (
    id         uuid PRIMARY KEY,
    read_id    uuid NOT NULL,
    user_id    uuid NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    minutes    integer CHECK (minutes BETWEEN 0 AND 1440),
    CONSTRAINT reading_sessions_read_id_fkey FOREIGN KEY (read_id, user_id)
        REFERENCES reads (id, user_id) ON DELETE CASCADE,
    CONSTRAINT reading_sessions_ended_with_minutes CHECK ((ended_at IS NULL) = (minutes IS NULL)),
    CONSTRAINT reading_sessions_end_after_start CHECK (ended_at >= started_at)
);
CREATE UNIQUE INDEX reading_sessions_one_running_key ON reading_sessions (user_id) WHERE ended_at IS NULL;
CREATE INDEX reading_sessions_read_started_idx ON reading_sessions (read_id, started_at DESC, id DESC);
-- Stats: minutes of sessions ended in a year.
CREATE INDEX reading_sessions_user_ended_idx ON reading_sessions (user_id, ended_at) INCLUDE (minutes)
    WHERE ended_at IS NOT NULL;

CREATE TABLE reading_goals (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    year       integer NOT NULL CHECK (year BETWEEN 1900 AND 9999),
    books      integer NOT NULL CHECK (books BETWEEN 1 AND 1000),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, year)
);
