-- Sealed secret material per secret; the same schema as migrations/postgres/0010.
CREATE TABLE sealed_secrets (
    secret_id      BLOB PRIMARY KEY REFERENCES secrets (id) ON DELETE CASCADE,
    sealed_key_id  TEXT NOT NULL,
    sealed         BLOB NOT NULL
) STRICT;
INSERT INTO sealed_secrets (secret_id, sealed_key_id, sealed)
    SELECT s.id, k.ha1_key_id, k.ha1_sealed
    FROM programmatic_keys k JOIN secrets s ON s.owner_id = k.id;
ALTER TABLE programmatic_keys DROP COLUMN ha1_key_id;
ALTER TABLE programmatic_keys DROP COLUMN ha1_sealed;
