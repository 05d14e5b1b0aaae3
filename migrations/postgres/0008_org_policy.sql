-- Organization policy: the longest lifetime an organization allows for each kind of secret.
-- A kind without a row is unbounded.
CREATE TABLE org_secret_policies (
    org_id                 uuid   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    kind                   text   NOT NULL REFERENCES secret_kinds (name),
    max_lifetime_seconds   bigint NOT NULL CHECK (max_lifetime_seconds > 0),
    PRIMARY KEY (org_id, kind)
);
