-- ?author= and ?tag= read these: one row per (value, book), in (value, created_at, id)
-- order, so a list is one index range that stops at the page whether the value names one
-- book or 75,000. The GIN indexes they replace left the planner to guess how many books a
-- value has, and a value missing from the column's statistics was guessed common: over
-- 1,000,000 books a tag of one book walked them all (622 ms).
CREATE TABLE book_authors (
    author_ci  text NOT NULL,
    created_at timestamptz NOT NULL,
    book_id    uuid NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    PRIMARY KEY (author_ci, created_at, book_id)
);
CREATE INDEX book_authors_book_idx ON book_authors (book_id);

CREATE TABLE book_tags (
    tag        text NOT NULL,
    created_at timestamptz NOT NULL,
    book_id    uuid NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, created_at, book_id)
);
CREATE INDEX book_tags_book_idx ON book_tags (book_id);

INSERT INTO book_authors (author_ci, created_at, book_id)
SELECT DISTINCT a, b.created_at, b.id FROM books b, unnest(b.authors_ci) AS a;
INSERT INTO book_tags (tag, created_at, book_id)
SELECT DISTINCT t, b.created_at, b.id FROM books b, unnest(b.tags) AS t;

-- Written by the catalog's own statements: a statement's new books at once (a seed or an
-- import adds a thousand in one), a book's changed authors or tags row by row.
CREATE FUNCTION bookshelf_book_filters_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO book_authors (author_ci, created_at, book_id)
    SELECT DISTINCT a, n.created_at, n.id FROM added n, unnest(n.authors_ci) AS a;
    INSERT INTO book_tags (tag, created_at, book_id)
    SELECT DISTINCT t, n.created_at, n.id FROM added n, unnest(n.tags) AS t;
    RETURN NULL;
END $$;
CREATE TRIGGER books_filters_added AFTER INSERT ON books
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION bookshelf_book_filters_added();

CREATE FUNCTION bookshelf_book_filters_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.authors_ci IS DISTINCT FROM OLD.authors_ci THEN
        DELETE FROM book_authors WHERE book_id = NEW.id;
        INSERT INTO book_authors (author_ci, created_at, book_id)
        SELECT DISTINCT a, NEW.created_at, NEW.id FROM unnest(NEW.authors_ci) AS a;
    END IF;
    IF NEW.tags IS DISTINCT FROM OLD.tags THEN
        DELETE FROM book_tags WHERE book_id = NEW.id;
        INSERT INTO book_tags (tag, created_at, book_id)
        SELECT DISTINCT t, NEW.created_at, NEW.id FROM unnest(NEW.tags) AS t;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER books_filters_changed AFTER UPDATE OF authors, tags ON books
    FOR EACH ROW EXECUTE FUNCTION bookshelf_book_filters_changed();

DROP INDEX books_authors_ci_idx;
DROP INDEX books_tags_idx;
