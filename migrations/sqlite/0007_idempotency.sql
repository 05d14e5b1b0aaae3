-- Idempotency keys; the same schema as migrations/postgres/0007.
CREATE TABLE idempotency_keys (
    principal_id     BLOB NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    idempotency_key  TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_digest   BLOB NOT NULL CHECK (length(request_digest) = 32),
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    claim_id         BLOB,
    locked_until     TEXT,
    sealed_response  BLOB,
    sealed_key_id    TEXT,
    PRIMARY KEY (principal_id, idempotency_key),
    CHECK ((claim_id IS NULL) = (locked_until IS NULL)
           AND (sealed_response IS NULL) = (sealed_key_id IS NULL)
           AND (claim_id IS NULL) = (sealed_response IS NOT NULL))
) STRICT;
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
