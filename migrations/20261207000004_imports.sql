-- Imports: a CSV file from another tracker, applied row by row in the background.
--
-- The counters live on the import row and change in the same transaction as the row they
-- count, so `rows = imported + skipped + failed` holds at every moment, and `rows` is also
-- where a resumed worker starts: row n is applied exactly when `rows >= n`.

CREATE TABLE imports (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename          text CHECK (char_length(filename) BETWEEN 1 AND 255),
    status            text NOT NULL DEFAULT 'awaiting_upload'
                      CHECK (status IN ('awaiting_upload', 'queued', 'running', 'completed', 'failed')),
    format            text CHECK (format IN ('goodreads', 'storygraph', 'bookshelf')),
    rows              integer NOT NULL DEFAULT 0,
    imported          integer NOT NULL DEFAULT 0,
    skipped           integer NOT NULL DEFAULT 0,
    failed            integer NOT NULL DEFAULT 0,
    books_matched     integer NOT NULL DEFAULT 0,
    books_created     integer NOT NULL DEFAULT 0,
    error             text,
    upload_expires_at timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    CONSTRAINT imports_counts_add_up CHECK (rows = imported + skipped + failed)
);
-- GET /imports: the caller's, newest first.
CREATE INDEX imports_user_created_idx ON imports (user_id, created_at DESC, id DESC);
-- The cleanup's "never uploaded" sweep.
CREATE INDEX imports_awaiting_idx ON imports (upload_expires_at) WHERE status = 'awaiting_upload';

CREATE TABLE import_rows (
    import_id uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row       integer NOT NULL CHECK (row >= 1),
    title     text,
    authors   text[] NOT NULL DEFAULT '{}',
    isbn      text,
    outcome   text NOT NULL CHECK (outcome IN ('imported', 'skipped', 'failed')),
    book_id   uuid,
    reason    text,
    PRIMARY KEY (import_id, row)
);
CREATE INDEX import_rows_outcome_idx ON import_rows (import_id, outcome, row);

-- How an import recognises a book it has no ISBN for: title and first author, ignoring
-- case, surrounding spaces and repeated spaces. IMMUTABLE so it can be indexed.
CREATE FUNCTION bookshelf_match_key(title text, authors text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(btrim(regexp_replace(title, '\s+', ' ', 'g'))) || E'\x1f'
              || lower(btrim(regexp_replace(coalesce(authors[1], ''), '\s+', ' ', 'g'))) $$;
CREATE INDEX books_match_key_idx ON books (bookshelf_match_key(title, authors));
