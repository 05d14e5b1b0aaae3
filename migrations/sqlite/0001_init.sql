-- Same schema as migrations/postgres, in SQLite's types: uuids are 16-byte BLOBs and
-- timestamps RFC 3339 TEXT, as sqlx encodes them.
CREATE TABLE orgs (
    id          BLOB PRIMARY KEY CHECK (length(id) = 16),
    name        TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY CHECK (length(id) = 16),
    org_id      BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX api_keys_org_idx ON api_keys (org_id);

CREATE TABLE agents (
    id          BLOB PRIMARY KEY CHECK (length(id) = 16),
    org_id      BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 3 AND 254),
    mode        TEXT NOT NULL CHECK (mode IN ('standard', 'embedded')),
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE secrets (
    id            BLOB PRIMARY KEY CHECK (length(id) = 16),
    kind          TEXT NOT NULL CHECK (kind IN ('agent_key', 'api_key')),
    hash          BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    hint          TEXT NOT NULL,
    agent_id      BLOB REFERENCES agents (id) ON DELETE CASCADE,
    api_key_id    BLOB REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    rotated_at    TEXT,
    last_used_at  TEXT,
    CHECK ((agent_id IS NOT NULL) + (api_key_id IS NOT NULL) = 1),
    CHECK ((kind = 'agent_key') = (agent_id IS NOT NULL) AND (kind = 'api_key') = (api_key_id IS NOT NULL))
) STRICT;
CREATE INDEX secrets_agent_idx ON secrets (agent_id);
CREATE INDEX secrets_api_key_idx ON secrets (api_key_id);
CREATE UNIQUE INDEX secrets_current_agent_key ON secrets (agent_id) WHERE rotated_at IS NULL;
CREATE UNIQUE INDEX secrets_current_api_key ON secrets (api_key_id) WHERE rotated_at IS NULL;
