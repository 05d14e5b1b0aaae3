-- Web console sessions: a browser signed in with an API key holds a random session token in a
-- cookie; only its SHA-256 digest is kept here. The session acts as its API key, and ends with
-- it (ON DELETE CASCADE; a revoked or expired key is refused on every request). The CSRF token
-- is an HMAC of the session token under the server key, so it needs no column.
CREATE TABLE console_sessions (
    token_hash    bytea       NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    api_key_id    uuid        NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_api_key_idx ON console_sessions (api_key_id);
CREATE INDEX console_sessions_last_seen_idx ON console_sessions (last_seen_at);
