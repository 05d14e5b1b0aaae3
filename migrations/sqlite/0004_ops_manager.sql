-- Same schema as migrations/postgres/0004, in SQLite's types: uuids are 16-byte BLOBs and
-- timestamps RFC 3339 TEXT, as sqlx encodes them.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY CHECK (length(id) = 24 AND id NOT GLOB '*[^0-9a-f]*'),
    org_id      BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE programmatic_keys (
    id           BLOB PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id       BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    object_id    TEXT NOT NULL UNIQUE CHECK (length(object_id) = 24 AND object_id NOT GLOB '*[^0-9a-f]*'),
    public_key   TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL CHECK (length(description) BETWEEN 1 AND 250),
    ha1_key_id   TEXT NOT NULL,
    ha1_sealed   BLOB NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;
CREATE INDEX programmatic_keys_org_idx ON programmatic_keys (org_id);

CREATE TABLE programmatic_key_org_roles (
    key_id  BLOB NOT NULL REFERENCES programmatic_keys (id) ON DELETE CASCADE,
    role    TEXT NOT NULL CHECK (role IN ('ORG_OWNER', 'ORG_MEMBER', 'ORG_READ_ONLY')),
    PRIMARY KEY (key_id, role)
) STRICT;

CREATE TABLE programmatic_key_project_roles (
    key_id      BLOB NOT NULL REFERENCES programmatic_keys (id) ON DELETE CASCADE,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('GROUP_OWNER', 'GROUP_READ_ONLY')),
    PRIMARY KEY (key_id, project_id, role)
) STRICT;
CREATE INDEX programmatic_key_project_roles_project_idx ON programmatic_key_project_roles (project_id);

CREATE TABLE programmatic_key_access_list (
    key_id      BLOB NOT NULL REFERENCES programmatic_keys (id) ON DELETE CASCADE,
    network     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (key_id, network)
) STRICT;

CREATE TABLE digest_nonce_uses (
    nonce_digest  BLOB    NOT NULL CHECK (length(nonce_digest) = 32),
    nc            INTEGER NOT NULL,
    expires_at    TEXT    NOT NULL,
    PRIMARY KEY (nonce_digest, nc)
) STRICT;
CREATE INDEX digest_nonce_uses_expiry_idx ON digest_nonce_uses (expires_at);

CREATE TABLE project_agent_keys (
    id               BLOB PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id           BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    object_id        TEXT NOT NULL UNIQUE CHECK (length(object_id) = 24 AND object_id NOT GLOB '*[^0-9a-f]*'),
    project_id       TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    description      TEXT NOT NULL CHECK (length(description) <= 1000),
    created_by       TEXT NOT NULL CHECK (created_by IN ('USER', 'OLD_KEY', 'PUBLIC_API', 'PROVISIONING', 'ATLAS', 'SERVER_POOLS')),
    created_ip       TEXT NOT NULL,
    created_user_id  TEXT NOT NULL,
    created_at       TEXT NOT NULL
) STRICT;
CREATE INDEX project_agent_keys_project_idx ON project_agent_keys (project_id);

INSERT INTO secret_kinds (name) VALUES ('project_agent_key'), ('programmatic_key');
