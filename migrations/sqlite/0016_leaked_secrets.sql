-- Secrets reported leaked by GitHub secret scanning; the same schema as
-- migrations/postgres/0016. One row per secret, whatever the number of alerts naming it.
CREATE TABLE leaked_secrets (
    secret_id    BLOB PRIMARY KEY CHECK (length(secret_id) = 16)
                      REFERENCES secrets (id) ON DELETE CASCADE,
    org_id       BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL REFERENCES secret_kinds (name),
    hint         TEXT NOT NULL,
    url          TEXT CHECK (length(url) <= 2048),
    source       TEXT CHECK (length(source) <= 64),
    action       TEXT NOT NULL CHECK (action IN ('rotated', 'revoked', 'notified')),
    reported_at  TEXT NOT NULL
) STRICT;
CREATE INDEX leaked_secrets_org_idx ON leaked_secrets (org_id, reported_at);

-- GitHub, acting through its signed alerts, is an actor of the audit trail. SQLite cannot
-- change a CHECK in place: the table is rebuilt and its rows copied.
CREATE TABLE audit_events_v2 (
    id             BLOB PRIMARY KEY CHECK (length(id) = 16),
    at             TEXT NOT NULL,
    org_id         BLOB,
    actor_kind     TEXT CHECK (actor_kind IN ('api_key', 'key_pair', 'host', 'github')),
    actor          TEXT,
    action         TEXT NOT NULL,
    resource_kind  TEXT,
    resource_id    TEXT,
    client         TEXT,
    request_id     TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'refused'))
) STRICT;
INSERT INTO audit_events_v2 SELECT * FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_v2 RENAME TO audit_events;
CREATE INDEX audit_events_org_at_idx ON audit_events (org_id, at, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);
