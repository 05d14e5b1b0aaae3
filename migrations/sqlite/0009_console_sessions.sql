-- Web console sessions; the same schema as migrations/postgres/0009.
CREATE TABLE console_sessions (
    token_hash    BLOB NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    api_key_id    BLOB NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
) STRICT;
CREATE INDEX console_sessions_api_key_idx ON console_sessions (api_key_id);
CREATE INDEX console_sessions_last_seen_idx ON console_sessions (last_seen_at);
