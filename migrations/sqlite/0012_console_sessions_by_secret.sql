-- A console session is bound to the API key secret it signed in with; the same schema as
-- migrations/postgres/0012, which says why. Sessions begun before this change end here.
DROP TABLE console_sessions;
CREATE TABLE console_sessions (
    token_hash    BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    secret_id     BLOB NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
) STRICT;
CREATE INDEX console_sessions_secret_idx ON console_sessions (secret_id);
CREATE INDEX console_sessions_last_seen_idx ON console_sessions (last_seen_at);
