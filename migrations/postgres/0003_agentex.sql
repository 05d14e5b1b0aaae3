-- Agentex agent API keys. Each key is an owner of one secret and belongs to a hoop agent; its
-- name is unique per agent and type. Bearer keys (internal, external) are kept as a digest
-- only. Signing secrets (github, slack) are also sealed under the server key, because an HMAC
-- can only be checked with the secret itself; their digest row keeps every secret unique.
CREATE TABLE agent_api_keys (
    id             uuid        PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id         uuid        NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    agent_id       uuid        NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name           text        NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    api_key_type   text        NOT NULL CHECK (api_key_type IN ('internal', 'external', 'github', 'slack')),
    created_at     timestamptz NOT NULL,
    sealed_secret  bytea,
    sealed_key_id  text,
    CONSTRAINT agent_api_keys_agent_type_name_key UNIQUE (agent_id, api_key_type, name),
    CONSTRAINT agent_api_keys_sealed_iff_signing CHECK (
        (sealed_secret IS NULL) = (sealed_key_id IS NULL)
        AND (api_key_type IN ('github', 'slack')) = (sealed_secret IS NOT NULL))
);

INSERT INTO secret_kinds (name) VALUES ('agentex_key'), ('agentex_signing_secret');

-- A key's owner row never outlives it: when an agent is deleted, its keys go by cascade, and
-- this takes their owner rows and secrets with them.
CREATE FUNCTION agent_api_keys_delete_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM owners WHERE id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER agent_api_keys_delete_owner AFTER DELETE ON agent_api_keys
    FOR EACH ROW EXECUTE FUNCTION agent_api_keys_delete_owner();
