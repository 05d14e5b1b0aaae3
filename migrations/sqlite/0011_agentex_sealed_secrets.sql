-- Agentex signing secrets move to sealed_secrets; the same schema as
-- migrations/postgres/0011. SQLite cannot drop columns a CHECK names, so agent_api_keys is
-- rebuilt and its rows copied (DROP TABLE fires no trigger: owners and secrets stay).
INSERT INTO sealed_secrets (secret_id, sealed_key_id, sealed)
    SELECT s.id, k.sealed_key_id, k.sealed_secret
    FROM agent_api_keys k JOIN secrets s ON s.owner_id = k.id
    WHERE k.sealed_secret IS NOT NULL;
CREATE TABLE agent_api_keys_v2 (
    id             BLOB PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id         BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    agent_id       BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    api_key_type   TEXT NOT NULL CHECK (api_key_type IN ('internal', 'external', 'github', 'slack')),
    created_at     TEXT NOT NULL,
    UNIQUE (agent_id, api_key_type, name)
) STRICT;
INSERT INTO agent_api_keys_v2 (id, org_id, agent_id, name, api_key_type, created_at)
    SELECT id, org_id, agent_id, name, api_key_type, created_at FROM agent_api_keys;
DROP TABLE agent_api_keys;
ALTER TABLE agent_api_keys_v2 RENAME TO agent_api_keys;
CREATE TRIGGER agent_api_keys_delete_owner AFTER DELETE ON agent_api_keys
BEGIN
    DELETE FROM owners WHERE id = OLD.id;
END;
