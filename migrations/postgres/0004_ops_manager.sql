-- Ops Manager: projects ("groups"), programmatic API key pairs and project agent API keys.
-- Public ids are 24 lowercase hex characters (ObjectId-style); each key pair and each agent
-- key is also an owner of secrets, so revocation, deletion and usage work as for every owner.
CREATE TABLE projects (
    id          text        PRIMARY KEY CHECK (id ~ '^[0-9a-f]{24}$'),
    org_id      uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created_at  timestamptz NOT NULL,
    CONSTRAINT projects_org_name_key UNIQUE (org_id, name)
);

-- The private key is a secret of kind 'programmatic_key'; Digest authentication needs
-- H(public:realm:private), kept only sealed under the server key and bound to the row.
CREATE TABLE programmatic_keys (
    id           uuid        PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id       uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    object_id    text        NOT NULL UNIQUE CHECK (object_id ~ '^[0-9a-f]{24}$'),
    public_key   text        NOT NULL UNIQUE,
    description  text        NOT NULL CHECK (length(description) BETWEEN 1 AND 250),
    ha1_key_id   text        NOT NULL,
    ha1_sealed   bytea       NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX programmatic_keys_org_idx ON programmatic_keys (org_id);

CREATE TABLE programmatic_key_org_roles (
    key_id  uuid NOT NULL REFERENCES programmatic_keys (id) ON DELETE CASCADE,
    role    text NOT NULL CHECK (role IN ('ORG_OWNER', 'ORG_MEMBER', 'ORG_READ_ONLY')),
    PRIMARY KEY (key_id, role)
);

CREATE TABLE programmatic_key_project_roles (
    key_id      uuid NOT NULL REFERENCES programmatic_keys (id) ON DELETE CASCADE,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('GROUP_OWNER', 'GROUP_READ_ONLY')),
    PRIMARY KEY (key_id, project_id, role)
);
CREATE INDEX programmatic_key_project_roles_project_idx ON programmatic_key_project_roles (project_id);

-- Networks a key may be used from; an empty list allows any address.
CREATE TABLE programmatic_key_access_list (
    key_id      uuid        NOT NULL REFERENCES programmatic_keys (id) ON DELETE CASCADE,
    network     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (key_id, network)
);

-- Digest nonces are stateless; each (nonce, nonce count) seen is kept until the nonce expires,
-- so a replay is refused by every instance sharing the database.
CREATE TABLE digest_nonce_uses (
    nonce_digest  bytea       NOT NULL CHECK (length(nonce_digest) = 32),
    nc            bigint      NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (nonce_digest, nc)
);
CREATE INDEX digest_nonce_uses_expiry_idx ON digest_nonce_uses (expires_at);

-- Agent API keys of a project; deleting the project deletes them (and their owner rows).
CREATE TABLE project_agent_keys (
    id               uuid        PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id           uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    object_id        text        NOT NULL UNIQUE CHECK (object_id ~ '^[0-9a-f]{24}$'),
    project_id       text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    description      text        NOT NULL CHECK (length(description) <= 1000),
    created_by       text        NOT NULL CHECK (created_by IN ('USER', 'OLD_KEY', 'PUBLIC_API', 'PROVISIONING', 'ATLAS', 'SERVER_POOLS')),
    created_ip       text        NOT NULL,
    created_user_id  text        NOT NULL,
    created_at       timestamptz NOT NULL
);
CREATE INDEX project_agent_keys_project_idx ON project_agent_keys (project_id);

INSERT INTO secret_kinds (name) VALUES ('project_agent_key'), ('programmatic_key');
