-- A console session is bound to the API key secret it signed in with, not to the key: rotating
-- the key without grace (or the end of the grace period) must end the sessions the old secret
-- opened. Sessions begun before this change do not record their secret, so they end here and
-- their browsers sign in again. The same schema as migrations/sqlite/0012.
DROP TABLE console_sessions;
CREATE TABLE console_sessions (
    token_hash    bytea       NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    secret_id     uuid        NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_secret_idx ON console_sessions (secret_id);
CREATE INDEX console_sessions_last_seen_idx ON console_sessions (last_seen_at);
