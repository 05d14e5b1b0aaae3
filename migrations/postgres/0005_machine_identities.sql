-- Connections (what the gateway fronts), machine identities (owners of one credential per
-- connection they reach) and the gateway listeners an operator has set through the API.

CREATE TABLE connections (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 3 AND 254),
    type           text NOT NULL CHECK (type IN ('database', 'application', 'custom')),
    subtype        text NOT NULL CHECK (length(subtype) BETWEEN 1 AND 64),
    -- The agent that serves it; a deleted agent leaves the connection unserved, not gone.
    agent_id       uuid REFERENCES agents (id) ON DELETE SET NULL,
    database_name  text CHECK (length(database_name) BETWEEN 1 AND 128),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX connections_agent_idx ON connections (agent_id);

-- `position` keeps the order the client gave.
CREATE TABLE connection_attributes (
    connection_id  uuid NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    attribute      text NOT NULL CHECK (length(attribute) BETWEEN 1 AND 128),
    position       integer NOT NULL,
    PRIMARY KEY (connection_id, attribute)
);
CREATE INDEX connection_attributes_attribute_idx ON connection_attributes (attribute);

CREATE TABLE machine_identities (
    id           uuid PRIMARY KEY REFERENCES owners (id) ON DELETE CASCADE,
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 3 AND 254),
    description  text NOT NULL,
    -- Given to every credential the identity is issued.
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE machine_identity_attributes (
    identity_id  uuid NOT NULL REFERENCES machine_identities (id) ON DELETE CASCADE,
    attribute    text NOT NULL CHECK (length(attribute) BETWEEN 1 AND 128),
    position     integer NOT NULL,
    PRIMARY KEY (identity_id, attribute)
);
CREATE INDEX machine_identity_attributes_attribute_idx ON machine_identity_attributes (attribute);

-- The connections an identity holds a credential for. The credential is the identity's secret
-- whose `slot` is the connection id in text. `position` is the connection's place in the
-- identity's `connection_names`; NULL when it is reached only through a shared attribute.
CREATE TABLE machine_identity_connections (
    identity_id    uuid NOT NULL REFERENCES machine_identities (id) ON DELETE CASCADE,
    connection_id  uuid NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    slot           text NOT NULL CHECK (slot = connection_id::text),
    position       integer,
    PRIMARY KEY (identity_id, connection_id),
    UNIQUE (identity_id, slot)
);
CREATE INDEX machine_identity_connections_connection_idx ON machine_identity_connections (connection_id);

-- Listeners set through the API; the others come from the server's configuration.
CREATE TABLE gateway_listeners (
    protocol    text PRIMARY KEY CHECK (protocol IN ('postgres', 'mysql', 'mssql', 'mongodb',
                                                     'ssh', 'rdp', 'tcp', 'httpproxy', 'api')),
    host        text NOT NULL CHECK (length(host) BETWEEN 1 AND 253),
    port        integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    tls         boolean NOT NULL,
    updated_at  timestamptz NOT NULL
);

INSERT INTO secret_kinds (name) VALUES ('machine_credential');
