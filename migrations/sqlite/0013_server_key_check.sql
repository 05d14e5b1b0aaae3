-- Server key check values; the same schema as migrations/postgres/0013.
CREATE TABLE server_key_checks (
    key_id       TEXT    PRIMARY KEY,
    check_value  BLOB    NOT NULL CHECK (length(check_value) = 32),
    is_current   INTEGER NOT NULL CHECK (is_current IN (0, 1)),
    created_at   TEXT    NOT NULL
) STRICT;
CREATE UNIQUE INDEX server_key_checks_current_idx ON server_key_checks (is_current)
    WHERE is_current = 1;
