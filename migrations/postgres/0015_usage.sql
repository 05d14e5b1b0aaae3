-- Per-key usage and verification outcomes. Both are counted in memory by each instance and
-- added here by the flush that writes `last_used_at` (one transaction per flush, never a write
-- per verification): the flush adds its counts to the row of their bucket, so instances flushing
-- into the same bucket sum up.

-- Uses of each secret per hour (UTC hour starts): valid verifications, API authentications,
-- Digest authentications and webhook signatures checked. An owner's usage is the sum over its
-- secrets, so it survives rotation; the rows go with their secret. Purged after 30 days.
CREATE TABLE secret_usage (
    secret_id  uuid        NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    hour       timestamptz NOT NULL,
    uses       bigint      NOT NULL CHECK (uses > 0),
    PRIMARY KEY (secret_id, hour)
);
-- Retention deletes by hour, and the busiest keys of a window are summed from it.
CREATE INDEX secret_usage_hour_idx ON secret_usage (hour);

-- Answers of POST /verify by outcome and kind of secret (`unknown` when the presented text
-- named none), per minute (`span` 60, kept 2 hours) and per hour (`span` 3600, kept 30 days);
-- each flush adds its counts to both, so the hourly rows are rolled up as they are written.
-- `org_id` is the caller's: every verification is asked for the caller's organization and a
-- secret of another one is `not_found` there, so even that answer has an organization, and a
-- tenant sees exactly the verifications its own gateways asked for.
CREATE TABLE verification_outcomes (
    org_id         uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    span           integer     NOT NULL CHECK (span IN (60, 3600)),
    bucket         timestamptz NOT NULL,
    kind           text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    outcome        text        NOT NULL CHECK (outcome IN ('valid', 'malformed', 'not_found',
                                           'revoked', 'expired', 'name_mismatch',
                                           'connection_mismatch')),
    verifications  bigint      NOT NULL CHECK (verifications > 0),
    PRIMARY KEY (org_id, span, bucket, kind, outcome)
);
-- Every organization's buckets at once (the operator), and retention.
CREATE INDEX verification_outcomes_bucket_idx ON verification_outcomes (span, bucket);

-- The current, working secrets that expire, soonest first: the keys expiring soon.
CREATE INDEX secrets_expiring_idx ON secrets (expires_at)
    WHERE rotated_at IS NULL AND revoked_at IS NULL AND expires_at IS NOT NULL;
