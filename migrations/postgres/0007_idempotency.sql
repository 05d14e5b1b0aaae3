-- Idempotency keys: the first request a caller sent with a key, and once it has finished its
-- response, sealed under the server key (it may hold a freshly minted secret), kept for the
-- replay window only. While the first request runs the row is claimed (claim_id, until
-- locked_until, after which a crashed server's claim may be taken over); the primary key
-- arbitrates concurrent retries, so exactly one of them runs.
CREATE TABLE idempotency_keys (
    principal_id     uuid        NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    idempotency_key  text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_digest   bytea       NOT NULL CHECK (length(request_digest) = 32),
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    claim_id         uuid,
    locked_until     timestamptz,
    sealed_response  bytea,
    sealed_key_id    text,
    PRIMARY KEY (principal_id, idempotency_key),
    CONSTRAINT idempotency_keys_claimed_xor_completed CHECK (
        (claim_id IS NULL) = (locked_until IS NULL)
        AND (sealed_response IS NULL) = (sealed_key_id IS NULL)
        AND (claim_id IS NULL) = (sealed_response IS NOT NULL))
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
