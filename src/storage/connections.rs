//! Connections, with their attributes, and the gateway listeners set through the API.
//!
//! A connection's changes reach the machine credentials issued for it in the same transaction:
//! deleting it ends every one of them, and an identity that reached it only through an
//! attribute it no longer carries loses its credential for it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use super::rows::corrupt;
use crate::domain::audit::Change;
use crate::domain::connections::{
    Connection, ConnectionSpec, ConnectionSummary, ConnectionType, Listener, NewConnection,
    Protocol,
};
use crate::domain::page::{Page, PageRequest};
use crate::error::Error;
use crate::secrets::server_key::Sealed;

#[async_trait]
pub trait ConnectionStore: Send + Sync + 'static {
    /// Creates the connection, served by the organization's agent its spec names (by id or
    /// name). `Invalid` naming `agent_id` when there is no such agent; `AlreadyExists` when
    /// the name is taken.
    async fn create_connection(
        &self,
        connection: &NewConnection,
        change: &Change,
    ) -> Result<Connection>;
    /// The organization's connections by name.
    /// A page of the organization's connections in name order.
    async fn list_connections(
        &self,
        org_id: Uuid,
        page: &PageRequest<String>,
    ) -> Result<Page<Connection, String>>;
    async fn find_connection(&self, org_id: Uuid, name: &str) -> Result<Option<Connection>>;
    /// Replaces what the connection is. Identities that reached it only through an attribute
    /// it no longer carries lose their credential for it. `None` when there is no such
    /// connection.
    async fn update_connection(
        &self,
        org_id: Uuid,
        name: &str,
        spec: &ConnectionSpec,
        at: DateTime<Utc>,
        change: &Change,
    ) -> Result<Option<Connection>>;
    /// Deletes the connection and ends every credential issued for it; `false` when there is
    /// no such connection.
    async fn delete_connection(
        &self,
        org_id: Uuid,
        name: &str,
        at: DateTime<Utc>,
        change: &Change,
    ) -> Result<bool>;

    /// The listeners set through the API, in place of the configured ones.
    async fn gateway_listener_overrides(&self) -> Result<Vec<(Protocol, Listener)>>;
    async fn set_gateway_listener(
        &self,
        protocol: Protocol,
        listener: &Listener,
        at: DateTime<Utc>,
        change: &Change,
    ) -> Result<()>;
    /// Returns the protocol to its configured listener.
    async fn reset_gateway_listener(&self, protocol: Protocol, change: &Change) -> Result<()>;
}

/// The organization's agent named by `$2` (an id, or NULL) or `$3` (a name), the id first
/// since a name may look like an id. Locked, so it cannot go before the connection is written.
pub const FIND_AGENT: &str = "
    SELECT id FROM agents WHERE org_id = $1 AND (id = $2 OR name = $3)
    ORDER BY (id = $2) DESC LIMIT 1";

pub const INSERT_CONNECTION: &str = "
    INSERT INTO connections (id, org_id, name, type, subtype, agent_id, database_name,
                             created_at, updated_at, sealed_secret, sealed_key_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)";

/// Replaces what the connection is; its sealed upstream secret only when a new one is given.
pub const UPDATE_CONNECTION: &str = "
    UPDATE connections SET type = $1, subtype = $2, agent_id = $3, database_name = $4,
                           updated_at = $5,
                           sealed_secret = COALESCE($7, sealed_secret),
                           sealed_key_id = COALESCE($8, sealed_key_id)
    WHERE id = $6
    RETURNING sealed_secret, sealed_key_id";

pub const INSERT_CONNECTION_ATTRIBUTE: &str =
    "INSERT INTO connection_attributes (connection_id, attribute, position) VALUES ($1, $2, $3)";

pub const DELETE_CONNECTION_ATTRIBUTES: &str =
    "DELETE FROM connection_attributes WHERE connection_id = $1";

/// Locks the connection (with the backend's row-lock suffix appended).
pub const LOCK_CONNECTION: &str = "
    SELECT id, created_at FROM connections WHERE org_id = $1 AND name = $2";

/// The identities holding a credential for the connection (row-lock suffix appended).
pub const CONNECTION_HOLDERS: &str = "
    SELECT identity_id FROM machine_identity_connections WHERE connection_id = $1
    ORDER BY identity_id";

/// The identities that reached the connection only through attributes it no longer shares
/// with them (row-lock suffix appended).
pub const STRANDED_HOLDERS: &str = "
    SELECT m.identity_id FROM machine_identity_connections m
    WHERE m.connection_id = $1 AND m.position IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM machine_identity_attributes ia
          JOIN connection_attributes ca ON ca.attribute = ia.attribute
          WHERE ia.identity_id = m.identity_id AND ca.connection_id = m.connection_id)
    ORDER BY m.identity_id";

pub const DELETE_CONNECTION: &str = "DELETE FROM connections WHERE id = $1";

/// A page of the organization's connections: `$1` the organization, after name `$2`, `$3` of them.
pub const PAGE: &str = "WHERE c.org_id = $1 AND c.name IN (
    SELECT name FROM connections WHERE org_id = $1 AND name > $2 ORDER BY name LIMIT $3)";

/// A connection and its attributes, one row per attribute.
pub fn select_connections(filter: &str) -> String {
    format!(
        "SELECT c.id, c.org_id, c.name, c.type, c.subtype, c.agent_id, c.database_name,
                c.created_at, c.updated_at, c.sealed_secret, c.sealed_key_id, a.attribute
         FROM connections c
         LEFT JOIN connection_attributes a ON a.connection_id = c.id
         {filter}
         ORDER BY c.name, a.position"
    )
}

/// Selects [`SummaryColumns`] from a connections table aliased `c`.
pub const SUMMARY_COLUMNS: &str = "c.id AS connection_id, c.name AS connection_name,
    c.type AS connection_type, c.subtype AS connection_subtype, c.database_name";

pub const SELECT_LISTENERS: &str =
    "SELECT protocol, host, port, tls FROM gateway_listeners ORDER BY protocol";

pub const UPSERT_LISTENER: &str = "
    INSERT INTO gateway_listeners (protocol, host, port, tls, updated_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (protocol) DO UPDATE
    SET host = excluded.host, port = excluded.port, tls = excluded.tls,
        updated_at = excluded.updated_at";

pub const DELETE_LISTENER: &str = "DELETE FROM gateway_listeners WHERE protocol = $1";

#[derive(sqlx::FromRow)]
pub struct ConnectionColumns {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    #[sqlx(rename = "type")]
    pub connection_type: String,
    pub subtype: String,
    pub agent_id: Option<Uuid>,
    pub database_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub secret: SealedColumns,
}

/// A sealed value's columns, both present or both absent.
#[derive(sqlx::FromRow)]
pub struct SealedColumns {
    pub sealed_secret: Option<Vec<u8>>,
    pub sealed_key_id: Option<String>,
}

impl SealedColumns {
    pub fn sealed(self) -> Option<Sealed> {
        Some(Sealed {
            bytes: self.sealed_secret?,
            key_id: self.sealed_key_id?,
        })
    }
}

/// A row of an owner of attributes, beside one of its attributes (`None` when it has none).
#[derive(sqlx::FromRow)]
pub struct WithAttribute<O> {
    #[sqlx(flatten)]
    pub owner: O,
    pub attribute: Option<String>,
}

/// Folds rows ordered so that each owner's are adjacent into each owner with its attributes.
pub fn group_attributes<O>(
    rows: Vec<WithAttribute<O>>,
    same: impl Fn(&O, &O) -> bool,
) -> Vec<(O, Vec<String>)> {
    let mut grouped: Vec<(O, Vec<String>)> = Vec::new();
    for row in rows {
        match grouped.last_mut() {
            Some((owner, attributes)) if same(owner, &row.owner) => {
                attributes.extend(row.attribute);
            }
            _ => grouped.push((row.owner, row.attribute.into_iter().collect())),
        }
    }
    grouped
}

pub fn parse_type(value: &str) -> Result<ConnectionType> {
    ConnectionType::parse(value).map_err(|_| corrupt("connection type", value))
}

/// Connections from their rows, one per attribute.
pub fn connections(rows: Vec<WithAttribute<ConnectionColumns>>) -> Result<Vec<Connection>> {
    group_attributes(rows, |a, b| a.id == b.id)
        .into_iter()
        .map(|(row, attributes)| {
            Ok(Connection {
                id: row.id,
                org_id: row.org_id,
                connection_type: parse_type(&row.connection_type)?,
                name: row.name,
                subtype: row.subtype,
                agent_id: row.agent_id,
                attributes,
                database_name: row.database_name,
                secret: row.secret.sealed(),
                created_at: row.created_at,
                updated_at: row.updated_at,
            })
        })
        .collect()
}

/// A connection as a credential is built from it.
#[derive(sqlx::FromRow)]
pub struct SummaryColumns {
    pub connection_id: Uuid,
    pub connection_name: String,
    pub connection_type: String,
    pub connection_subtype: String,
    pub database_name: Option<String>,
}

impl TryFrom<SummaryColumns> for ConnectionSummary {
    type Error = Error;
    fn try_from(row: SummaryColumns) -> Result<ConnectionSummary> {
        Ok(ConnectionSummary {
            id: row.connection_id,
            connection_type: parse_type(&row.connection_type)?,
            name: row.connection_name,
            subtype: row.connection_subtype,
            database_name: row.database_name,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct ListenerRow {
    pub protocol: String,
    pub host: String,
    pub port: i32,
    pub tls: bool,
}

impl TryFrom<ListenerRow> for (Protocol, Listener) {
    type Error = Error;
    fn try_from(row: ListenerRow) -> Result<(Protocol, Listener)> {
        let protocol = row
            .protocol
            .parse()
            .map_err(|_| corrupt("gateway protocol", &row.protocol))?;
        let port = u16::try_from(row.port).map_err(|_| corrupt("port", &row.port.to_string()))?;
        Ok((
            protocol,
            Listener {
                host: row.host,
                port,
                tls: row.tls,
            },
        ))
    }
}

macro_rules! impl_connection_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::ConnectionStore for $store {
            async fn create_connection(
                &self,
                connection: &$crate::domain::connections::NewConnection,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<$crate::domain::connections::Connection> {
                use $crate::storage::connections as sql;
                let spec = &connection.spec;
                write_transaction!(self, |tx| {
                    let agent_id = find_serving_agent(tx, connection.org_id, &spec.agent).await?;
                    sqlx::query(sql::INSERT_CONNECTION)
                        .bind(connection.id)
                        .bind(connection.org_id)
                        .bind(&connection.name)
                        .bind(spec.connection_type.as_str())
                        .bind(&spec.subtype)
                        .bind(agent_id)
                        .bind(&spec.database_name)
                        .bind(connection.created_at)
                        .bind(spec.secret.as_ref().map(|sealed| &sealed.bytes))
                        .bind(spec.secret.as_ref().map(|sealed| &sealed.key_id))
                        .execute(&mut **tx)
                        .await?;
                    insert_attributes(
                        tx,
                        sql::INSERT_CONNECTION_ATTRIBUTE,
                        connection.id,
                        &spec.attributes,
                    )
                    .await?;
                    record_change(tx, change).await?;
                    Ok($crate::domain::connections::Connection {
                        id: connection.id,
                        org_id: connection.org_id,
                        name: connection.name.clone(),
                        connection_type: spec.connection_type,
                        subtype: spec.subtype.clone(),
                        agent_id: Some(agent_id),
                        attributes: spec.attributes.clone(),
                        database_name: spec.database_name.clone(),
                        secret: spec.secret.clone(),
                        created_at: connection.created_at,
                        updated_at: connection.created_at,
                    })
                })
            }

            async fn list_connections(
                &self,
                org_id: uuid::Uuid,
                page: &$crate::domain::page::PageRequest<String>,
            ) -> $crate::storage::Result<
                $crate::domain::page::Page<$crate::domain::connections::Connection, String>,
            > {
                use $crate::storage::connections as sql;
                let rows: Vec<sql::WithAttribute<sql::ConnectionColumns>> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql::select_connections(sql::PAGE)))
                        .bind(org_id)
                        .bind(page.after_or_start())
                        .bind(page.fetch())
                        .fetch_all(&mut *self.pool.acquire().await?)
                        .await?;
                Ok(page.page(sql::connections(rows)?, |connection| {
                    connection.name.clone()
                }))
            }

            async fn find_connection(
                &self,
                org_id: uuid::Uuid,
                name: &str,
            ) -> $crate::storage::Result<Option<$crate::domain::connections::Connection>> {
                use $crate::storage::connections as sql;
                let filter = "WHERE c.org_id = $1 AND c.name = $2";
                let rows: Vec<sql::WithAttribute<sql::ConnectionColumns>> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql::select_connections(filter)))
                        .bind(org_id)
                        .bind(name)
                        .fetch_all(&mut *self.pool.acquire().await?)
                        .await?;
                Ok(sql::connections(rows)?.pop())
            }

            async fn update_connection(
                &self,
                org_id: uuid::Uuid,
                name: &str,
                spec: &$crate::domain::connections::ConnectionSpec,
                at: chrono::DateTime<chrono::Utc>,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<Option<$crate::domain::connections::Connection>> {
                use $crate::storage::connections as sql;
                write_transaction!(self, |tx| {
                    let Some((id, created_at)) = lock_connection(tx, org_id, name).await? else {
                        return Ok(None);
                    };
                    let agent_id = find_serving_agent(tx, org_id, &spec.agent).await?;
                    let secret: sql::SealedColumns = sqlx::query_as(sql::UPDATE_CONNECTION)
                        .bind(spec.connection_type.as_str())
                        .bind(&spec.subtype)
                        .bind(agent_id)
                        .bind(&spec.database_name)
                        .bind(at)
                        .bind(id)
                        .bind(spec.secret.as_ref().map(|sealed| &sealed.bytes))
                        .bind(spec.secret.as_ref().map(|sealed| &sealed.key_id))
                        .fetch_one(&mut **tx)
                        .await?;
                    sqlx::query(sql::DELETE_CONNECTION_ATTRIBUTES)
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                    insert_attributes(tx, sql::INSERT_CONNECTION_ATTRIBUTE, id, &spec.attributes)
                        .await?;
                    let sql = format!("{}{ROW_LOCK}", sql::STRANDED_HOLDERS);
                    let stranded: Vec<(uuid::Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_all(&mut **tx)
                        .await?;
                    for (identity_id,) in stranded {
                        detach_credential(tx, identity_id, id, at).await?;
                    }
                    record_change(tx, change).await?;
                    Ok(Some($crate::domain::connections::Connection {
                        id,
                        org_id,
                        name: name.to_owned(),
                        connection_type: spec.connection_type,
                        subtype: spec.subtype.clone(),
                        agent_id: Some(agent_id),
                        attributes: spec.attributes.clone(),
                        database_name: spec.database_name.clone(),
                        secret: secret.sealed(),
                        created_at,
                        updated_at: at,
                    }))
                })
            }

            async fn delete_connection(
                &self,
                org_id: uuid::Uuid,
                name: &str,
                at: chrono::DateTime<chrono::Utc>,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                use $crate::storage::connections as sql;
                write_transaction!(self, |tx| {
                    let Some((id, _)) = lock_connection(tx, org_id, name).await? else {
                        return Ok(false);
                    };
                    // A rotation finishing meanwhile may leave a successor unended; it never
                    // verifies, since a secret does only while its connection is held.
                    let sql = format!("{}{ROW_LOCK}", sql::CONNECTION_HOLDERS);
                    let holders: Vec<(uuid::Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_all(&mut **tx)
                        .await?;
                    for (identity_id,) in holders {
                        detach_credential(tx, identity_id, id, at).await?;
                    }
                    sqlx::query(sql::DELETE_CONNECTION)
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                    record_change(tx, change).await?;
                    Ok(true)
                })
            }

            async fn gateway_listener_overrides(
                &self,
            ) -> $crate::storage::Result<
                Vec<(
                    $crate::domain::connections::Protocol,
                    $crate::domain::connections::Listener,
                )>,
            > {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::connections::ListenerRow,
                    $crate::storage::connections::SELECT_LISTENERS
                )
            }

            async fn set_gateway_listener(
                &self,
                protocol: $crate::domain::connections::Protocol,
                listener: &$crate::domain::connections::Listener,
                at: chrono::DateTime<chrono::Utc>,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                write_transaction!(self, |tx| {
                    sqlx::query($crate::storage::connections::UPSERT_LISTENER)
                        .bind(protocol.as_str())
                        .bind(&listener.host)
                        .bind(i32::from(listener.port))
                        .bind(listener.tls)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    record_change(tx, change).await
                })
            }

            async fn reset_gateway_listener(
                &self,
                protocol: $crate::domain::connections::Protocol,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                write_transaction!(self, |tx| {
                    sqlx::query($crate::storage::connections::DELETE_LISTENER)
                        .bind(protocol.as_str())
                        .execute(&mut **tx)
                        .await?;
                    record_change(tx, change).await
                })
            }
        }

        /// The id of the organization's agent named by `agent` (an id or a name), locked.
        async fn find_serving_agent(
            tx: &mut Tx,
            org_id: uuid::Uuid,
            agent: &str,
        ) -> $crate::storage::Result<uuid::Uuid> {
            let sql = format!("{}{ROW_LOCK}", $crate::storage::connections::FIND_AGENT);
            let found: Option<(uuid::Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(org_id)
                .bind(uuid::Uuid::parse_str(agent).ok())
                .bind(agent)
                .fetch_optional(&mut **tx)
                .await?;
            found
                .map(|(id,)| id)
                .ok_or_else(|| $crate::error::Error::invalid("agent_id", "there is no such agent"))
        }

        /// Locks the organization's connection named `name`: its id and creation time.
        async fn lock_connection(
            tx: &mut Tx,
            org_id: uuid::Uuid,
            name: &str,
        ) -> $crate::storage::Result<Option<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>> {
            let sql = format!(
                "{}{ROW_LOCK}",
                $crate::storage::connections::LOCK_CONNECTION
            );
            Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(org_id)
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?)
        }
    };
}

pub(super) use impl_connection_store;
