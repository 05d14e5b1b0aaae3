-- The upstream credentials a client gives with a connection (hoop's `secret` map), sealed
-- under the server key with the key's id beside them; both or neither.
ALTER TABLE connections ADD COLUMN sealed_secret BLOB;
ALTER TABLE connections ADD COLUMN sealed_key_id TEXT
    CHECK ((sealed_key_id IS NULL) = (sealed_secret IS NULL));
