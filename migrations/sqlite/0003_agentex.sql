-- Agentex agent API keys; the same schema as migrations/postgres/0003.
CREATE TABLE agent_api_keys (
    id             BLOB PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id         BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    agent_id       BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    api_key_type   TEXT NOT NULL CHECK (api_key_type IN ('internal', 'external', 'github', 'slack')),
    created_at     TEXT NOT NULL,
    sealed_secret  BLOB,
    sealed_key_id  TEXT,
    UNIQUE (agent_id, api_key_type, name),
    CHECK ((sealed_secret IS NULL) = (sealed_key_id IS NULL)
           AND (api_key_type IN ('github', 'slack')) = (sealed_secret IS NOT NULL))
) STRICT;

INSERT INTO secret_kinds (name) VALUES ('agentex_key'), ('agentex_signing_secret');

-- A key's owner row never outlives it: when an agent is deleted, its keys go by cascade, and
-- this takes their owner rows and secrets with them.
CREATE TRIGGER agent_api_keys_delete_owner AFTER DELETE ON agent_api_keys
BEGIN
    DELETE FROM owners WHERE id = OLD.id;
END;
