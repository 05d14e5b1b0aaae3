-- Organizations own everything; deleting one removes all it owns.
CREATE TABLE orgs (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL CONSTRAINT orgs_name_key UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    created_at  timestamptz NOT NULL
);

-- Bearer credentials of keygate's own API.
CREATE TABLE api_keys (
    id          uuid        PRIMARY KEY,
    org_id      uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    role        text        NOT NULL CHECK (role IN ('admin', 'member', 'auditor')),
    created_at  timestamptz NOT NULL
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id);

-- hoop agents; the name is unique within an organization.
CREATE TABLE agents (
    id          uuid        PRIMARY KEY,
    org_id      uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        text        NOT NULL CHECK (length(name) BETWEEN 3 AND 254),
    mode        text        NOT NULL CHECK (mode IN ('standard', 'embedded')),
    created_at  timestamptz NOT NULL,
    CONSTRAINT agents_org_name_key UNIQUE (org_id, name)
);

-- Every minted secret, of every kind: only its SHA-256 digest and a display hint.
-- Exactly one owner column is set; rotation leaves the predecessor with rotated_at set.
CREATE TABLE secrets (
    id            uuid        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('agent_key', 'api_key')),
    hash          bytea       NOT NULL CONSTRAINT secrets_hash_key UNIQUE CHECK (length(hash) = 32),
    hint          text        NOT NULL,
    agent_id      uuid        REFERENCES agents (id) ON DELETE CASCADE,
    api_key_id    uuid        REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    rotated_at    timestamptz,
    last_used_at  timestamptz,
    CONSTRAINT secrets_one_owner CHECK (num_nonnulls(agent_id, api_key_id) = 1),
    CONSTRAINT secrets_owner_matches_kind CHECK (
        (kind = 'agent_key') = (agent_id IS NOT NULL) AND (kind = 'api_key') = (api_key_id IS NOT NULL))
);
CREATE INDEX secrets_agent_idx ON secrets (agent_id);
CREATE INDEX secrets_api_key_idx ON secrets (api_key_id);
-- At most one current (not rotated-away) secret per owner.
CREATE UNIQUE INDEX secrets_current_agent_key ON secrets (agent_id) WHERE rotated_at IS NULL;
CREATE UNIQUE INDEX secrets_current_api_key ON secrets (api_key_id) WHERE rotated_at IS NULL;
