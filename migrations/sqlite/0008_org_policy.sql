-- Organization policy; the same schema as migrations/postgres/0008.
CREATE TABLE org_secret_policies (
    org_id                 BLOB    NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    kind                   TEXT    NOT NULL REFERENCES secret_kinds (name),
    max_lifetime_seconds   INTEGER NOT NULL CHECK (max_lifetime_seconds > 0),
    PRIMARY KEY (org_id, kind)
) STRICT;
