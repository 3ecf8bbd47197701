-- Users, their sessions, and the single-use refresh tokens that belong to a session.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- Stored as entered (trimmed); uniqueness and look-ups ignore case.
    email         text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254 AND email = btrim(email)),
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    display_name  text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 64),
    bio           text CHECK (bio IS NULL OR char_length(bio) <= 500),
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
-- Keyset pagination of GET /users walks (created_at, id).
CREATE INDEX users_created_at_id_idx ON users (created_at, id);

-- A session is one sign-in: the access tokens carry its id (`sid`) and the authorizer
-- checks it is still active, so revoking it cuts every token of that sign-in at once.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    revoked_reason text CHECK (revoked_reason IS NULL OR revoked_reason IN ('logout', 'refresh_reuse', 'password_change')),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

-- Only a SHA-256 of each refresh token is kept: a leaked table does not leak sessions.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
