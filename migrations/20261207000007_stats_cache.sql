-- GET /users/me/stats answered from a cache keyed by the user's change-feed head: every
-- input of a year's figures (reads, sessions, entries' ratings, the goal) records a change
-- and so moves the head, and a book's page count, which the figures also use, now re-sends
-- its entries like a new title does. An entry whose `seq` is the head's is exact.
CREATE TABLE stats_cache (
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    year    integer NOT NULL,
    -- The head the figures were computed at, in the same snapshot.
    seq     bigint NOT NULL,
    -- The response body, byte for byte.
    body    text NOT NULL,
    PRIMARY KEY (user_id, year)
);

DROP TRIGGER books_embedded_changed ON books;
CREATE TRIGGER books_embedded_changed AFTER UPDATE OF title, authors, page_count ON books
    FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.authors IS DISTINCT FROM NEW.authors
                       OR OLD.page_count IS DISTINCT FROM NEW.page_count)
    EXECUTE FUNCTION bookshelf_book_changed();
