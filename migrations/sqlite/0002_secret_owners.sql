-- Secret ownership by supertype; the same schema as migrations/postgres/0002. SQLite cannot add
-- foreign keys to a table, so agents, api_keys and secrets are rebuilt and their rows copied.
CREATE TABLE owners (
    id      BLOB PRIMARY KEY CHECK (length(id) = 16),
    org_id  BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE
) STRICT;
CREATE INDEX owners_org_idx ON owners (org_id);
INSERT INTO owners (id, org_id)
    SELECT id, org_id FROM agents UNION ALL SELECT id, org_id FROM api_keys;

CREATE TABLE secret_kinds (
    name TEXT PRIMARY KEY
) STRICT;
INSERT INTO secret_kinds (name) VALUES ('agent_key'), ('api_key');

CREATE TABLE agents_v2 (
    id          BLOB PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id      BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 3 AND 254),
    mode        TEXT NOT NULL CHECK (mode IN ('standard', 'embedded')),
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, name)
) STRICT;
INSERT INTO agents_v2 (id, org_id, name, mode, created_at)
    SELECT id, org_id, name, mode, created_at FROM agents;

CREATE TABLE api_keys_v2 (
    id          BLOB PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id      BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    role        TEXT NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
    created_at  TEXT NOT NULL
) STRICT;
INSERT INTO api_keys_v2 (id, org_id, name, role, created_at)
    SELECT id, org_id, name, role, created_at FROM api_keys;

CREATE TABLE secrets_v2 (
    id            BLOB PRIMARY KEY CHECK (length(id) = 16),
    kind          TEXT NOT NULL REFERENCES secret_kinds (name),
    hash          BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    hint          TEXT NOT NULL,
    owner_id      BLOB NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    slot          TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    rotated_at    TEXT,
    last_used_at  TEXT
) STRICT;
INSERT INTO secrets_v2 (id, kind, hash, hint, owner_id, slot, created_at, expires_at,
                        revoked_at, rotated_at, last_used_at)
    SELECT id, kind, hash, hint, COALESCE(agent_id, api_key_id), '', created_at, expires_at,
           revoked_at, rotated_at, last_used_at
    FROM secrets;

DROP TABLE secrets;
DROP TABLE agents;
DROP TABLE api_keys;
ALTER TABLE agents_v2 RENAME TO agents;
ALTER TABLE api_keys_v2 RENAME TO api_keys;
ALTER TABLE secrets_v2 RENAME TO secrets;
CREATE INDEX api_keys_org_idx ON api_keys (org_id);
CREATE INDEX secrets_owner_idx ON secrets (owner_id);
CREATE UNIQUE INDEX secrets_current_per_slot ON secrets (owner_id, slot) WHERE rotated_at IS NULL;
