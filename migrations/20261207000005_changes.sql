-- The change feed (GET /changes): one row per (user, resource) holding its latest change,
-- ordered by a per-user sequence.
--
-- Why it cannot skip: the sequence is taken by updating the user's row in change_heads,
-- whose row lock is held until the transaction ends. Two transactions of one user that
-- change anything therefore run one after the other, and a sequence number is only ever
-- visible once every smaller one of that user has committed (or been superseded). A
-- reader that has seen up to N never has a later commit land at or below N.
--
-- Why nothing changes behind its back: the rows are written by triggers on the four
-- tables, so cascades (an entry's reads and sessions, a deleted book's entries, a
-- confirmed order's shelving, an import) are recorded by the same code as the routes'
-- own writes. Derived values are recorded by the same triggers: a read closing, opening
-- or going re-sends its year's goal, a session's minutes re-send its read; a book's new
-- title or authors re-send every entry that embeds it, in bounded steps (book_fanouts).

CREATE TABLE change_heads (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The last sequence number given out.
    seq     bigint NOT NULL DEFAULT 0,
    -- Tombstones at or below this were removed after 30 days: an older cursor is a 410.
    horizon bigint NOT NULL DEFAULT 0
);
INSERT INTO change_heads (user_id) SELECT id FROM users;

CREATE FUNCTION bookshelf_new_change_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_heads (user_id) VALUES (NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER users_change_head AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION bookshelf_new_change_head();

CREATE TABLE changes (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type        text NOT NULL CHECK (type IN ('entry', 'read', 'session', 'goal')),
    -- The entry's book id, the read's or session's id, the goal's year.
    resource_id text NOT NULL,
    op          text NOT NULL CHECK (op IN ('upsert', 'delete')),
    seq         bigint NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (user_id, type, resource_id)
);
-- GET /changes walks this; it also keeps one sequence number to one change.
CREATE UNIQUE INDEX changes_user_seq_key ON changes (user_id, seq);
-- The scheduled cleanup: tombstones by age.
CREATE INDEX changes_tombstones_idx ON changes (at) WHERE op = 'delete';

-- Records that a resource of `uid` changed. The UPDATE of the head takes the per-user lock
-- (kept to the end of the transaction) and the next number; no head means the account is
-- being deleted in this very statement, and there is no one left to tell.
CREATE FUNCTION bookshelf_record_change(uid uuid, kind text, rid text, what text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    next bigint;
BEGIN
    UPDATE change_heads SET seq = seq + 1 WHERE user_id = uid RETURNING seq INTO next;
    IF next IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO changes (user_id, type, resource_id, op, seq, at)
    VALUES (uid, kind, rid, what, next, now())
    ON CONFLICT (user_id, type, resource_id)
        DO UPDATE SET op = EXCLUDED.op, seq = EXCLUDED.seq, at = EXCLUDED.at;
END $$;

CREATE FUNCTION bookshelf_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM bookshelf_record_change(OLD.user_id, 'entry', OLD.book_id::text, 'delete');
    ELSE
        PERFORM bookshelf_record_change(NEW.user_id, 'entry', NEW.book_id::text, 'upsert');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER library_entries_changed AFTER INSERT OR UPDATE OR DELETE ON library_entries
    FOR EACH ROW EXECUTE FUNCTION bookshelf_entry_changed();

-- A goal's `finished` counts the reads finished in its year: re-send it when one of them
-- closes, reopens (never: closed reads are immutable) or goes, if there is such a goal.
CREATE FUNCTION bookshelf_resend_goal(uid uuid, closed timestamptz) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    y integer := extract(year FROM closed AT TIME ZONE 'UTC')::integer;
BEGIN
    IF closed IS NOT NULL AND EXISTS (SELECT 1 FROM reading_goals WHERE user_id = uid AND year = y) THEN
        PERFORM bookshelf_record_change(uid, 'goal', y::text, 'upsert');
    END IF;
END $$;

CREATE FUNCTION bookshelf_read_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM bookshelf_record_change(OLD.user_id, 'read', OLD.id::text, 'delete');
        PERFORM bookshelf_resend_goal(OLD.user_id, coalesce(OLD.finished_at, OLD.abandoned_at));
    ELSE
        PERFORM bookshelf_record_change(NEW.user_id, 'read', NEW.id::text, 'upsert');
        IF TG_OP = 'INSERT'
           OR OLD.finished_at IS DISTINCT FROM NEW.finished_at
           OR OLD.abandoned_at IS DISTINCT FROM NEW.abandoned_at THEN
            PERFORM bookshelf_resend_goal(NEW.user_id, coalesce(NEW.finished_at, NEW.abandoned_at));
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reads_changed AFTER INSERT OR UPDATE OR DELETE ON reads
    FOR EACH ROW EXECUTE FUNCTION bookshelf_read_changed();

-- A read's `minutesRead` sums its ended sessions: re-send the read when one ends or goes
-- (unless the read itself is going, in the cascade that deletes it).
CREATE FUNCTION bookshelf_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    s reading_sessions;
BEGIN
    IF TG_OP = 'DELETE' THEN
        s := OLD;
        PERFORM bookshelf_record_change(s.user_id, 'session', s.id::text, 'delete');
    ELSE
        s := NEW;
        PERFORM bookshelf_record_change(s.user_id, 'session', s.id::text, 'upsert');
    END IF;
    IF (TG_OP <> 'INSERT' AND OLD.minutes IS NOT NULL) OR (TG_OP <> 'DELETE' AND NEW.minutes IS NOT NULL) THEN
        IF EXISTS (SELECT 1 FROM reads WHERE id = s.read_id) THEN
            PERFORM bookshelf_record_change(s.user_id, 'read', s.read_id::text, 'upsert');
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reading_sessions_changed AFTER INSERT OR UPDATE OR DELETE ON reading_sessions
    FOR EACH ROW EXECUTE FUNCTION bookshelf_session_changed();

CREATE FUNCTION bookshelf_goal_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM bookshelf_record_change(OLD.user_id, 'goal', OLD.year::text, 'delete');
    ELSE
        PERFORM bookshelf_record_change(NEW.user_id, 'goal', NEW.year::text, 'upsert');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER reading_goals_changed AFTER INSERT OR UPDATE OR DELETE ON reading_goals
    FOR EACH ROW EXECUTE FUNCTION bookshelf_goal_changed();

-- A book whose title or authors changed: every entry of it is re-sent, a step of readers
-- at a time (each its own transaction), after `after_user`. The row is the work left; the
-- request that changed the book drives it, and the outbox relay finishes what a crash
-- left.
CREATE TABLE book_fanouts (
    book_id    uuid PRIMARY KEY REFERENCES books (id) ON DELETE CASCADE,
    after_user uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION bookshelf_book_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO book_fanouts (book_id) VALUES (NEW.id)
    ON CONFLICT (book_id) DO UPDATE SET after_user = NULL, created_at = now();
    RETURN NULL;
END $$;
CREATE TRIGGER books_embedded_changed AFTER UPDATE OF title, authors ON books
    FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.authors IS DISTINCT FROM NEW.authors)
    EXECUTE FUNCTION bookshelf_book_changed();

-- The fan-out walks a book's readers in user order.
DROP INDEX library_entries_book_id_idx;
CREATE INDEX library_entries_book_user_idx ON library_entries (book_id, user_id);
