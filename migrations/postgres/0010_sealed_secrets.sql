-- Secrets whose checking needs more than a digest keep that material sealed under the server
-- key (AES-256-GCM), one row per secret: a key pair's Digest HA1 values. Per secret rather than
-- per owner, so that a rotated key pair's old private key keeps working through its grace
-- period beside the new one. Moves the HA1 values off programmatic_keys.
CREATE TABLE sealed_secrets (
    secret_id      uuid  PRIMARY KEY REFERENCES secrets (id) ON DELETE CASCADE,
    sealed_key_id  text  NOT NULL,
    sealed         bytea NOT NULL
);
INSERT INTO sealed_secrets (secret_id, sealed_key_id, sealed)
    SELECT s.id, k.ha1_key_id, k.ha1_sealed
    FROM programmatic_keys k JOIN secrets s ON s.owner_id = k.id;
ALTER TABLE programmatic_keys DROP COLUMN ha1_key_id, DROP COLUMN ha1_sealed;
