-- Secrets reported leaked by GitHub secret scanning: one row per secret, whatever the number of
-- alerts naming it, so that a repeated alert changes nothing. Where it was found (`url`, `source`,
-- as GitHub sent them) and what keygate did: `rotated` (the leaked secret revoked and a successor
-- nobody has seen made current, so that the owner's next step is a rotation), `revoked`, or
-- `notified` (the organization keeps a human in the loop). The rows go with their secret; the
-- audit trail keeps `secret.leaked`.
CREATE TABLE leaked_secrets (
    secret_id    uuid        PRIMARY KEY REFERENCES secrets (id) ON DELETE CASCADE,
    org_id       uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    kind         text        NOT NULL REFERENCES secret_kinds (name),
    hint         text        NOT NULL,
    url          text        CHECK (length(url) <= 2048),
    source       text        CHECK (length(source) <= 64),
    action       text        NOT NULL CHECK (action IN ('rotated', 'revoked', 'notified')),
    reported_at  timestamptz NOT NULL
);
-- The console shows an organization's latest.
CREATE INDEX leaked_secrets_org_idx ON leaked_secrets (org_id, reported_at);

-- GitHub, acting through its signed alerts, is an actor of the audit trail.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_actor_kind_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_actor_kind_check
    CHECK (actor_kind IN ('api_key', 'key_pair', 'host', 'github'));
