-- The catalog, its inventory ledger, and users' personal libraries.
--
-- Authors and tags are text arrays on the book row, not side tables: the contract has no
-- author or tag entities, a book is read and written as one unit (one row, one version
-- for its ETag), and GIN indexes answer "has this author/tag" directly.

-- Generated columns need IMMUTABLE expressions; array_to_string is only STABLE in general
-- (element output functions could be), but for text[] it is immutable in fact.
CREATE FUNCTION bookshelf_text_join(text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string($1, ' ') $$;

CREATE FUNCTION bookshelf_lower_all(text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(array_agg(lower(a) ORDER BY n), '{}') FROM unnest($1) WITH ORDINALITY AS t(a, n) $$;

CREATE TABLE books (
    id             uuid PRIMARY KEY,
    title          text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 300),
    authors        text[] NOT NULL CHECK (cardinality(authors) BETWEEN 1 AND 20),
    -- ISBN-13, digits only; the application converts ISBN-10 and checks the check digit.
    isbn           text CHECK (isbn ~ '^97[89][0-9]{10}$'),
    published_year integer CHECK (published_year >= -3000),
    description    text CHECK (char_length(description) <= 10000),
    tags           text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
    price_cents    bigint NOT NULL CHECK (price_cents >= 0),
    stock          integer NOT NULL CHECK (stock >= 0),
    -- Bumped by every change (including stock): the ETag, and optimistic concurrency.
    version        bigint NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    authors_ci     text[] GENERATED ALWAYS AS (bookshelf_lower_all(authors)) STORED,
    search         tsvector GENERATED ALWAYS AS (
                       setweight(to_tsvector('english', title), 'A')
                    || setweight(to_tsvector('english', bookshelf_text_join(authors)), 'B')
                    || setweight(to_tsvector('english', coalesce(description, '')), 'C')
                   ) STORED,
    CONSTRAINT books_isbn_key UNIQUE (isbn)
);
CREATE INDEX books_search_idx ON books USING gin (search);
CREATE INDEX books_authors_ci_idx ON books USING gin (authors_ci);
CREATE INDEX books_tags_idx ON books USING gin (tags);
CREATE INDEX books_created_at_id_idx ON books (created_at, id);

-- Every stock change, with who and why. No foreign key to books: the history of a
-- deleted book is kept.
CREATE TABLE inventory_ledger (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    book_id     uuid NOT NULL,
    delta       integer NOT NULL CHECK (delta <> 0),
    stock_after integer NOT NULL CHECK (stock_after >= 0),
    reason      text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 200),
    actor_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    order_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventory_ledger_book_id_idx ON inventory_ledger (book_id, id);

CREATE TABLE library_entries (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id    uuid NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    status     text NOT NULL CHECK (status IN ('want_to_read', 'reading', 'read')),
    rating     smallint CHECK (rating BETWEEN 1 AND 5),
    review     text CHECK (char_length(review) <= 5000),
    favorite   boolean NOT NULL DEFAULT false,
    added_at   timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, book_id)
);
-- GET /library walks a user's entries in the order they were added.
CREATE INDEX library_entries_user_added_idx ON library_entries (user_id, added_at, book_id);
CREATE INDEX library_entries_book_id_idx ON library_entries (book_id);
