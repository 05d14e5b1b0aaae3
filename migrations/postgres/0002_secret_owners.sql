-- Secret ownership by supertype. Every owner of secrets (an agent, an API key, and each later
-- family's owner) has a row in `owners`, which `secrets` references; the owner kind's own table
-- shares the id. A new owner kind adds its own table and migration; `secrets` never changes.
-- Lifecycle operations lock the owner row first (organization row before it where both are
-- needed), so rotate, revoke and delete of one owner run one after the other.
CREATE TABLE owners (
    id      uuid PRIMARY KEY,
    org_id  uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE
);
CREATE INDEX owners_org_idx ON owners (org_id);
INSERT INTO owners (id, org_id)
    SELECT id, org_id FROM agents UNION ALL SELECT id, org_id FROM api_keys;
ALTER TABLE agents
    ADD CONSTRAINT agents_owner_fkey FOREIGN KEY (id) REFERENCES owners (id) ON DELETE CASCADE;
ALTER TABLE api_keys
    ADD CONSTRAINT api_keys_owner_fkey FOREIGN KEY (id) REFERENCES owners (id) ON DELETE CASCADE;

-- Secret kinds are rows, so that a new kind is an INSERT in its family's migration.
CREATE TABLE secret_kinds (
    name text PRIMARY KEY
);
INSERT INTO secret_kinds (name) VALUES ('agent_key'), ('api_key');

-- `slot` says which of its owner's credentials a secret is: '' for owners that hold one, an id
-- for owners that hold one per something (a machine identity, one per connection).
ALTER TABLE secrets
    ADD COLUMN owner_id uuid,
    ADD COLUMN slot text NOT NULL DEFAULT '';
UPDATE secrets SET owner_id = COALESCE(agent_id, api_key_id);
ALTER TABLE secrets
    ALTER COLUMN owner_id SET NOT NULL,
    ADD CONSTRAINT secrets_owner_fkey FOREIGN KEY (owner_id) REFERENCES owners (id) ON DELETE CASCADE,
    DROP CONSTRAINT secrets_one_owner,
    DROP CONSTRAINT secrets_owner_matches_kind,
    DROP CONSTRAINT secrets_kind_check,
    ADD CONSTRAINT secrets_kind_fkey FOREIGN KEY (kind) REFERENCES secret_kinds (name),
    DROP COLUMN agent_id,
    DROP COLUMN api_key_id;
CREATE INDEX secrets_owner_idx ON secrets (owner_id);
-- At most one current (not rotated-away) secret per owner and slot.
CREATE UNIQUE INDEX secrets_current_per_slot ON secrets (owner_id, slot) WHERE rotated_at IS NULL;
