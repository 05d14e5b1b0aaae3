-- Agentex webhook signing secrets move to sealed_secrets, one row per secret, so that a signing
-- secret rotated with a grace period checks deliveries signed with either secret until the
-- grace ends.
INSERT INTO sealed_secrets (secret_id, sealed_key_id, sealed)
    SELECT s.id, k.sealed_key_id, k.sealed_secret
    FROM agent_api_keys k JOIN secrets s ON s.owner_id = k.id
    WHERE k.sealed_secret IS NOT NULL;
ALTER TABLE agent_api_keys
    DROP CONSTRAINT agent_api_keys_sealed_iff_signing,
    DROP COLUMN sealed_secret,
    DROP COLUMN sealed_key_id;
