-- Connections, machine identities and gateway listeners; the same schema as
-- migrations/postgres/0005, in SQLite's types.

CREATE TABLE connections (
    id             BLOB PRIMARY KEY CHECK (length(id) = 16),
    org_id         BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 3 AND 254),
    type           TEXT NOT NULL CHECK (type IN ('database', 'application', 'custom')),
    subtype        TEXT NOT NULL CHECK (length(subtype) BETWEEN 1 AND 64),
    agent_id       BLOB REFERENCES agents (id) ON DELETE SET NULL,
    database_name  TEXT CHECK (length(database_name) BETWEEN 1 AND 128),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (org_id, name)
) STRICT;
CREATE INDEX connections_agent_idx ON connections (agent_id);

CREATE TABLE connection_attributes (
    connection_id  BLOB NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    attribute      TEXT NOT NULL CHECK (length(attribute) BETWEEN 1 AND 128),
    position       INTEGER NOT NULL,
    PRIMARY KEY (connection_id, attribute)
) STRICT;
CREATE INDEX connection_attributes_attribute_idx ON connection_attributes (attribute);

CREATE TABLE machine_identities (
    id           BLOB PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id       BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 3 AND 254),
    description  TEXT NOT NULL,
    expires_at   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE machine_identity_attributes (
    identity_id  BLOB NOT NULL REFERENCES machine_identities (id) ON DELETE CASCADE,
    attribute    TEXT NOT NULL CHECK (length(attribute) BETWEEN 1 AND 128),
    position     INTEGER NOT NULL,
    PRIMARY KEY (identity_id, attribute)
) STRICT;
CREATE INDEX machine_identity_attributes_attribute_idx ON machine_identity_attributes (attribute);

-- `slot` is the connection id as Postgres writes a uuid in text: lowercase, hyphenated.
CREATE TABLE machine_identity_connections (
    identity_id    BLOB NOT NULL REFERENCES machine_identities (id) ON DELETE CASCADE,
    connection_id  BLOB NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    slot           TEXT NOT NULL CHECK (slot = lower(
                       substr(hex(connection_id), 1, 8) || '-' || substr(hex(connection_id), 9, 4) || '-' ||
                       substr(hex(connection_id), 13, 4) || '-' || substr(hex(connection_id), 17, 4) || '-' ||
                       substr(hex(connection_id), 21, 12))),
    position       INTEGER,
    PRIMARY KEY (identity_id, connection_id),
    UNIQUE (identity_id, slot)
) STRICT;
CREATE INDEX machine_identity_connections_connection_idx ON machine_identity_connections (connection_id);

CREATE TABLE gateway_listeners (
    protocol    TEXT PRIMARY KEY CHECK (protocol IN ('postgres', 'mysql', 'mssql', 'mongodb',
                                                     'ssh', 'rdp', 'tcp', 'httpproxy', 'api')),
    host        TEXT NOT NULL CHECK (length(host) BETWEEN 1 AND 253),
    port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    tls         INTEGER NOT NULL CHECK (tls IN (0, 1)),
    updated_at  TEXT NOT NULL
) STRICT;

INSERT INTO secret_kinds (name) VALUES ('machine_credential');
