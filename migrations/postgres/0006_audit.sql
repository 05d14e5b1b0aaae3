-- The audit trail: every change, written in the transaction that makes it, and every refused
-- credential. Never a secret. Rows outlive what they describe (no foreign keys) and are
-- purged by age only.
CREATE TABLE audit_events (
    id             uuid        PRIMARY KEY,
    at             timestamptz NOT NULL,
    org_id         uuid,
    actor_kind     text        CHECK (actor_kind IN ('api_key', 'key_pair', 'host')),
    actor          text,
    action         text        NOT NULL,
    resource_kind  text,
    resource_id    text,
    client         text,
    request_id     text,
    outcome        text        NOT NULL CHECK (outcome IN ('success', 'refused'))
);
-- Pages walk (at, id); retention deletes by at.
CREATE INDEX audit_events_org_at_idx ON audit_events (org_id, at, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);
