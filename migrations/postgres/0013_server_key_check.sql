-- The server keys this database's sealed values are sealed under, each as its id and an
-- HMAC of a fixed label under it (never the key): a starting instance proves it holds the
-- key before serving, rather than failing every request that opens a sealed value. One row
-- per key id, so a rotation can list an older key beside the one that seals; at most one
-- is current, which also makes the first registration race-safe (insert if absent, then
-- read back).
CREATE TABLE server_key_checks (
    key_id       text        PRIMARY KEY,
    check_value  bytea       NOT NULL CHECK (length(check_value) = 32),
    is_current   boolean     NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE UNIQUE INDEX server_key_checks_current_idx ON server_key_checks (is_current)
    WHERE is_current;
