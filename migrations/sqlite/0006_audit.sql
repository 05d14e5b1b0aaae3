-- The audit trail: every change, written in the transaction that makes it, and every refused
-- credential. Never a secret. Rows outlive what they describe (no foreign keys) and are
-- purged by age only.
CREATE TABLE audit_events (
    id             BLOB PRIMARY KEY CHECK (length(id) = 16),
    at             TEXT NOT NULL,
    org_id         BLOB,
    actor_kind     TEXT CHECK (actor_kind IN ('api_key', 'key_pair', 'host')),
    actor          TEXT,
    action         TEXT NOT NULL,
    resource_kind  TEXT,
    resource_id    TEXT,
    client         TEXT,
    request_id     TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'refused'))
) STRICT;
-- Pages walk (at, id); retention deletes by at.
CREATE INDEX audit_events_org_at_idx ON audit_events (org_id, at, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);
