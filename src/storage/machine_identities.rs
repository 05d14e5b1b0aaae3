//! Machine identities: each an owner of one secret per connection it reaches, in the slot
//! named by the connection's id; `machine_identity_connections` records which connections
//! those are, and a secret verifies only while its connection is recorded there.
//!
//! [`impl_machine_identity_store!`] also gives each backend the helpers the connections share:
//! `insert_attributes`, and `detach_credential`, which ends an identity's credential for a
//! connection.
//!
//! Locks are taken in one order — identity (owner row), then connections, then the rows of
//! `machine_identity_connections`, then secrets — so concurrent changes queue up; the rare
//! deadlock between two identities locking shared connections is retried.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
pub use super::connections::WithAttribute;
use super::connections::{SummaryColumns, group_attributes};
use super::rows::{KeyColumns, SecretColumns, corrupt};
use crate::domain::audit::Change;
use crate::domain::connections::ConnectionSummary;
use crate::domain::machine_identities::{
    CredentialHolder, CredentialIssuer, CredentialMeta, IdentityChanges, Issued, MachineIdentity,
    NewMachineIdentity,
};
use crate::domain::page::{Page, PageRequest};
use crate::domain::secret::SecretState;
use crate::secrets::SecretHash;

#[async_trait]
pub trait MachineIdentityStore: Send + Sync + 'static {
    /// Creates the identity and, from `issuer`, a credential for each connection it names or
    /// shares an attribute with, in one transaction. `Invalid` naming every unknown
    /// connection; `AlreadyExists` when the name is taken.
    async fn create_machine_identity(
        &self,
        identity: &NewMachineIdentity,
        issuer: &dyn CredentialIssuer,
        change: &Change,
    ) -> Result<Vec<Issued>>;
    /// The organization's identities by name, each with its credentials.
    /// A page of the organization's machine identities in name order, with their credentials.
    async fn list_machine_identities(
        &self,
        org_id: Uuid,
        page: &PageRequest<String>,
    ) -> Result<Page<MachineIdentity, String>>;
    async fn find_machine_identity(
        &self,
        org_id: Uuid,
        name: &str,
    ) -> Result<Option<MachineIdentity>>;
    /// Applies `changes` in one transaction: connections the identity no longer reaches lose
    /// their credential, those it newly reaches get one from `issuer`. Returns the identity
    /// as it then is and the credentials issued; `None` when there is no such identity.
    async fn update_machine_identity(
        &self,
        org_id: Uuid,
        name: &str,
        changes: &IdentityChanges,
        issuer: &dyn CredentialIssuer,
        change: &Change,
    ) -> Result<Option<(MachineIdentity, Vec<Issued>)>>;
    /// Deletes the identity and, by cascade, every credential it holds; `false` when there
    /// is no such identity.
    async fn delete_machine_identity(
        &self,
        org_id: Uuid,
        id: Uuid,
        change: &Change,
    ) -> Result<bool>;
    /// Whose a presented credential (by digest) is, and for which connection: the
    /// verification lookup.
    async fn find_machine_credential_by_secret(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<(SecretState, CredentialHolder)>>;
}

pub const INSERT_IDENTITY: &str = "
    INSERT INTO machine_identities (id, org_id, name, description, expires_at, created_at,
                                    updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $6)";

pub const INSERT_IDENTITY_ATTRIBUTE: &str = "
    INSERT INTO machine_identity_attributes (identity_id, attribute, position)
    VALUES ($1, $2, $3)";

pub const DELETE_IDENTITY_ATTRIBUTES: &str =
    "DELETE FROM machine_identity_attributes WHERE identity_id = $1";

pub const FIND_IDENTITY_ID: &str =
    "SELECT id FROM machine_identities WHERE org_id = $1 AND name = $2";

/// `NULL` leaves a field as it is.
pub const UPDATE_IDENTITY: &str = "
    UPDATE machine_identities
    SET description = COALESCE($1, description), expires_at = COALESCE($2, expires_at),
        updated_at = $3
    WHERE id = $4
    RETURNING expires_at";

/// A new expiry for every credential the identity holds: the current ones take it, those
/// rotated away keep their grace end when that comes first, so a grace period never outlives
/// its key and a new lifetime never lengthens one.
pub const EXPIRE_SECRETS: &str = "
    UPDATE secrets
    SET expires_at = CASE WHEN rotated_at IS NULL OR expires_at > $1 THEN $1 ELSE expires_at END
    WHERE owner_id = $2";

/// A connection of the organization by name (row-lock suffix appended).
pub fn select_named_connection() -> String {
    format!(
        "SELECT {} FROM connections c WHERE c.org_id = $1 AND c.name = $2",
        super::connections::SUMMARY_COLUMNS
    )
}

/// The organization's connections sharing an attribute with identity `$2` (row-lock suffix
/// appended).
pub fn select_connections_reached_by_attribute() -> String {
    format!(
        "SELECT {} FROM connections c
         WHERE c.org_id = $1 AND EXISTS (
             SELECT 1 FROM connection_attributes ca
             JOIN machine_identity_attributes ia ON ia.attribute = ca.attribute
             WHERE ca.connection_id = c.id AND ia.identity_id = $2)
         ORDER BY c.name",
        super::connections::SUMMARY_COLUMNS
    )
}

/// The connections the identity holds credentials for, with their places.
pub const HELD_CONNECTIONS: &str = "
    SELECT connection_id, position FROM machine_identity_connections WHERE identity_id = $1
    ORDER BY connection_id";

/// The connections the identity names, in the order given.
pub const NAMED_CONNECTIONS: &str = "
    SELECT c.name FROM machine_identity_connections m
    JOIN connections c ON c.id = m.connection_id
    WHERE m.identity_id = $1 AND m.position IS NOT NULL
    ORDER BY m.position";

pub const INSERT_HELD_CONNECTION: &str = "
    INSERT INTO machine_identity_connections (identity_id, connection_id, slot, position)
    VALUES ($1, $2, $3, $4)";

pub const UPDATE_HELD_POSITION: &str = "
    UPDATE machine_identity_connections SET position = $1
    WHERE identity_id = $2 AND connection_id = $3";

pub const DELETE_HELD_CONNECTION: &str =
    "DELETE FROM machine_identity_connections WHERE identity_id = $1 AND connection_id = $2";

/// Ends every secret of an owner's slot: the current one stops being current (so the slot
/// can hold a new one) and all are revoked; the first end stands.
pub const END_SLOT: &str = "
    UPDATE secrets SET revoked_at = COALESCE(revoked_at, $1), rotated_at = COALESCE(rotated_at, $1)
    WHERE owner_id = $2 AND slot = $3";

/// A page of the organization's identities: `$1` the organization, after name `$2`, `$3` of them.
pub const PAGE: &str = "WHERE i.org_id = $1 AND i.name IN (
    SELECT name FROM machine_identities WHERE org_id = $1 AND name > $2 ORDER BY name LIMIT $3)";

/// Identities and their attributes, one row per attribute.
pub fn select_identities(filter: &str) -> String {
    format!(
        "SELECT i.id, i.org_id, i.name, i.description, i.expires_at, i.created_at, i.updated_at,
                a.attribute
         FROM machine_identities i
         LEFT JOIN machine_identity_attributes a ON a.identity_id = i.id
         {filter}
         ORDER BY i.name, a.position"
    )
}

/// Identities' credentials with their connections and current secrets: named connections
/// first, in the order given, then those reached through attributes by name.
pub fn select_credentials(filter: &str) -> String {
    format!(
        "SELECT m.identity_id, m.position, {}, {}
         FROM machine_identities i
         JOIN machine_identity_connections m ON m.identity_id = i.id
         JOIN connections c ON c.id = m.connection_id
         JOIN secrets s ON s.owner_id = m.identity_id AND s.slot = m.slot AND s.rotated_at IS NULL
         {filter}
         ORDER BY m.identity_id, m.position IS NULL, m.position, c.name",
        super::connections::SUMMARY_COLUMNS,
        super::rows::KEY_COLUMNS
    )
}

/// A credential by one of its secrets, current or in its grace period, while its connection
/// is still the identity's; one row per attribute of the identity.
pub fn select_holder_by_secret() -> String {
    format!(
        "SELECT i.id AS identity_id, i.org_id, i.name AS identity_name, {}, {}, a.attribute
         FROM secrets s
         JOIN machine_identity_connections m ON m.identity_id = s.owner_id AND m.slot = s.slot
         JOIN machine_identities i ON i.id = m.identity_id
         JOIN connections c ON c.id = m.connection_id
         LEFT JOIN machine_identity_attributes a ON a.identity_id = i.id
         WHERE s.hash = $1
         ORDER BY a.position",
        super::connections::SUMMARY_COLUMNS,
        super::rows::SECRET_COLUMNS
    )
}

#[derive(sqlx::FromRow)]
pub struct IdentityColumns {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub struct CredentialRow {
    pub identity_id: Uuid,
    pub position: Option<i32>,
    #[sqlx(flatten)]
    pub connection: SummaryColumns,
    #[sqlx(flatten)]
    pub key: KeyColumns,
}

#[derive(sqlx::FromRow)]
pub struct HolderColumns {
    pub identity_id: Uuid,
    pub org_id: Uuid,
    pub identity_name: String,
    #[sqlx(flatten)]
    pub connection: SummaryColumns,
    #[sqlx(flatten)]
    pub secret: SecretColumns,
}

/// A list position as the database keeps it; lists are bounded far below `i32::MAX`.
pub fn db_position(index: usize) -> i32 {
    i32::try_from(index).expect("list positions are bounded")
}

pub fn list_position(position: i32) -> Result<usize> {
    usize::try_from(position).map_err(|_| corrupt("list position", &position.to_string()))
}

/// Identities from their rows (one per attribute) and their credentials' rows.
pub fn identities(
    rows: Vec<WithAttribute<IdentityColumns>>,
    credentials: Vec<CredentialRow>,
) -> Result<Vec<MachineIdentity>> {
    let mut held: HashMap<Uuid, Vec<CredentialMeta>> = HashMap::new();
    for row in credentials {
        held.entry(row.identity_id)
            .or_default()
            .push(CredentialMeta {
                position: row.position.map(list_position).transpose()?,
                connection: row.connection.try_into()?,
                secret: row.key.into(),
            });
    }
    Ok(group_attributes(rows, |a, b| a.id == b.id)
        .into_iter()
        .map(|(row, attributes)| MachineIdentity {
            credentials: held.remove(&row.id).unwrap_or_default(),
            id: row.id,
            org_id: row.org_id,
            name: row.name,
            description: row.description,
            attributes,
            expires_at: row.expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect())
}

/// The holder of a credential from its rows, one per attribute of the identity.
pub fn holder(
    rows: Vec<WithAttribute<HolderColumns>>,
) -> Result<Option<(SecretState, CredentialHolder)>> {
    let Some((row, attributes)) = group_attributes(rows, |_, _| true).pop() else {
        return Ok(None);
    };
    let connection: ConnectionSummary = row.connection.try_into()?;
    Ok(Some((
        row.secret.try_into()?,
        CredentialHolder {
            identity_id: row.identity_id,
            org_id: row.org_id,
            identity_name: row.identity_name,
            attributes,
            connection,
        },
    )))
}

macro_rules! impl_machine_identity_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::MachineIdentityStore for $store {
            async fn create_machine_identity(
                &self,
                identity: &$crate::domain::machine_identities::NewMachineIdentity,
                issuer: &dyn $crate::domain::machine_identities::CredentialIssuer,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<Vec<$crate::domain::machine_identities::Issued>> {
                use $crate::storage::machine_identities as sql;
                let owner = $crate::domain::secret::OwnerRef {
                    org_id: identity.org_id,
                    id: identity.id,
                };
                write_transaction!(self, cache_unaffected, |tx| {
                    insert_owner(tx, owner).await?;
                    sqlx::query(sql::INSERT_IDENTITY)
                        .bind(identity.id)
                        .bind(identity.org_id)
                        .bind(&identity.name)
                        .bind(&identity.description)
                        .bind(identity.expires_at)
                        .bind(identity.created_at)
                        .execute(&mut **tx)
                        .await?;
                    insert_attributes(
                        tx,
                        sql::INSERT_IDENTITY_ATTRIBUTE,
                        identity.id,
                        &identity.attributes,
                    )
                    .await?;
                    let targets =
                        resolve_targets(tx, owner, &identity.connection_names).await?;
                    let mut issued = Vec::with_capacity(targets.len());
                    for (connection, position) in targets {
                        issued.push(
                            attach_credential(
                                tx,
                                identity.id,
                                connection,
                                position,
                                issuer,
                                identity.expires_at,
                                identity.created_at,
                            )
                            .await?,
                        );
                    }
                    record_change(tx, change).await?;
                    Ok(issued)
                })
            }

            async fn list_machine_identities(
                &self,
                org_id: uuid::Uuid,
                page: &$crate::domain::page::PageRequest<String>,
            ) -> $crate::storage::Result<
                $crate::domain::page::Page<
                    $crate::domain::machine_identities::MachineIdentity,
                    String,
                >,
            > {
                use $crate::storage::machine_identities as sql;
                let after = page.after_or_start();
                let rows: Vec<sql::WithAttribute<sql::IdentityColumns>> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql::select_identities(sql::PAGE)))
                        .bind(org_id)
                        .bind(&after)
                        .bind(page.fetch())
                        .fetch_all(&mut *self.pool.acquire().await?)
                        .await?;
                // The credentials of the names read, by range: an identity created in between
                // has credentials but no row, and is left for the page that shows it.
                // Rows come in the database's name order: the last is the page's last name.
                let last = rows.last().map(|row| row.owner.name.clone());
                let credentials = match last {
                    Some(last) => sqlx::query_as(sqlx::AssertSqlSafe(sql::select_credentials(
                        "WHERE i.org_id = $1 AND i.name > $2 AND i.name <= $3",
                    )))
                    .bind(org_id)
                    .bind(&after)
                    .bind(last)
                    .fetch_all(&mut *self.pool.acquire().await?)
                    .await?,
                    None => Vec::new(),
                };
                Ok(page.page(sql::identities(rows, credentials)?, |identity| {
                    identity.name.clone()
                }))
            }

            async fn find_machine_identity(
                &self,
                org_id: uuid::Uuid,
                name: &str,
            ) -> $crate::storage::Result<Option<$crate::domain::machine_identities::MachineIdentity>>
            {
                use $crate::storage::machine_identities as sql;
                let filter = "WHERE i.org_id = $1 AND i.name = $2";
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql::select_identities(filter)))
                    .bind(org_id)
                    .bind(name)
                    .fetch_all(&mut *self.pool.acquire().await?)
                    .await?;
                let credentials =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql::select_credentials(filter)))
                        .bind(org_id)
                        .bind(name)
                        .fetch_all(&mut *self.pool.acquire().await?)
                        .await?;
                Ok(sql::identities(rows, credentials)?.pop())
            }

            async fn update_machine_identity(
                &self,
                org_id: uuid::Uuid,
                name: &str,
                changes: &$crate::domain::machine_identities::IdentityChanges,
                issuer: &dyn $crate::domain::machine_identities::CredentialIssuer,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::machine_identities::MachineIdentity,
                    Vec<$crate::domain::machine_identities::Issued>,
                )>,
            > {
                use $crate::storage::machine_identities as sql;
                let issued = write_transaction!(self, |tx| {
                    let found: Option<(uuid::Uuid,)> = sqlx::query_as(sql::FIND_IDENTITY_ID)
                        .bind(org_id)
                        .bind(name)
                        .fetch_optional(&mut **tx)
                        .await?;
                    let Some((id,)) = found else {
                        return Ok(None);
                    };
                    let owner = $crate::domain::secret::OwnerRef { org_id, id };
                    if !lock_owner(tx, owner).await? {
                        return Ok(None);
                    }
                    let at = $crate::domain::secret::now();
                    let (expires_at,): (Option<chrono::DateTime<chrono::Utc>>,) =
                        sqlx::query_as(sql::UPDATE_IDENTITY)
                            .bind(&changes.description)
                            .bind(changes.expires_at)
                            .bind(at)
                            .bind(id)
                            .fetch_one(&mut **tx)
                            .await?;
                    if let Some(expiry) = changes.expires_at {
                        sqlx::query(sql::EXPIRE_SECRETS)
                            .bind(expiry)
                            .bind(id)
                            .execute(&mut **tx)
                            .await?;
                    }
                    if let Some(attributes) = &changes.attributes {
                        sqlx::query(sql::DELETE_IDENTITY_ATTRIBUTES)
                            .bind(id)
                            .execute(&mut **tx)
                            .await?;
                        insert_attributes(tx, sql::INSERT_IDENTITY_ATTRIBUTE, id, attributes)
                            .await?;
                    }
                    let targets = match &changes.connection_names {
                        Some(names) => resolve_targets(tx, owner, names).await?,
                        None => {
                            let names: Vec<(String,)> = sqlx::query_as(sql::NAMED_CONNECTIONS)
                                .bind(id)
                                .fetch_all(&mut **tx)
                                .await?;
                            let names: Vec<String> =
                                names.into_iter().map(|(name,)| name).collect();
                            // A named connection deleted since it was read is simply gone.
                            resolve_known_targets(tx, owner, &names).await?
                        }
                    };
                    // Read once the targets are locked: their rows here can no longer change.
                    let held: Vec<(uuid::Uuid, Option<i32>)> = sqlx::query_as(sql::HELD_CONNECTIONS)
                        .bind(id)
                        .fetch_all(&mut **tx)
                        .await?;
                    let held = held
                        .into_iter()
                        .map(|(id, position)| Ok((id, position.map(sql::list_position).transpose()?)))
                        .collect::<$crate::storage::Result<Vec<_>>>()?;
                    let plan = $crate::domain::machine_identities::Reconciliation::of(&held, targets);
                    for connection_id in plan.dropped {
                        detach_credential(tx, id, connection_id, at).await?;
                    }
                    for (connection_id, position) in plan.moved {
                        sqlx::query(sql::UPDATE_HELD_POSITION)
                            .bind(position.map(sql::db_position))
                            .bind(id)
                            .bind(connection_id)
                            .execute(&mut **tx)
                            .await?;
                    }
                    let mut issued = Vec::with_capacity(plan.added.len());
                    if !plan.added.is_empty() {
                        let expiry =
                            $crate::domain::machine_identities::issuable_expiry(expires_at, at)?;
                        for (connection, position) in plan.added {
                            issued.push(
                                attach_credential(tx, id, connection, position, issuer, expiry, at)
                                    .await?,
                            );
                        }
                    }
                    record_change(tx, change).await?;
                    Ok(Some(issued))
                })?;
                let Some(issued) = issued else {
                    return Ok(None);
                };
                Ok(self
                    .find_machine_identity(org_id, name)
                    .await?
                    .map(|identity| (identity, issued)))
            }

            async fn delete_machine_identity(
                &self,
                org_id: uuid::Uuid,
                id: uuid::Uuid,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                let owner = $crate::domain::secret::OwnerRef { org_id, id };
                write_transaction!(self, |tx| {
                    let deleted = delete_owner(tx, owner).await?;
                    record_if_made(tx, change, deleted).await
                })
            }

            async fn find_machine_credential_by_secret(
                &self,
                hash: &$crate::secrets::SecretHash,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::secret::SecretState,
                    $crate::domain::machine_identities::CredentialHolder,
                )>,
            > {
                use $crate::storage::machine_identities as sql;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql::select_holder_by_secret()))
                    .bind(hash.as_bytes())
                    .fetch_all(&mut *self.pool.acquire().await?)
                    .await?;
                sql::holder(rows)
            }
        }

        /// Writes an owner's attributes, in the order given, with `sql` (owner, attribute,
        /// position).
        async fn insert_attributes(
            tx: &mut Tx,
            sql: &'static str,
            owner_id: uuid::Uuid,
            attributes: &[String],
        ) -> $crate::storage::Result<()> {
            for (position, attribute) in attributes.iter().enumerate() {
                sqlx::query(sql)
                    .bind(owner_id)
                    .bind(attribute)
                    .bind($crate::storage::machine_identities::db_position(position))
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Locks and returns the connections the identity should hold credentials for: those
        /// `names` names (each with its place), then those sharing one of the identity's
        /// attributes as written in this transaction. `Invalid` naming every unknown name.
        async fn resolve_targets(
            tx: &mut Tx,
            owner: $crate::domain::secret::OwnerRef,
            names: &[String],
        ) -> $crate::storage::Result<
            Vec<($crate::domain::connections::ConnectionSummary, Option<usize>)>,
        > {
            let (targets, missing) = resolve_connections(tx, owner, names).await?;
            if missing.is_empty() {
                Ok(targets)
            } else {
                let missing: Vec<(usize, &str)> = missing
                    .iter()
                    .map(|&index| (index, names[index].as_str()))
                    .collect();
                Err($crate::domain::machine_identities::unknown_connections(&missing))
            }
        }

        /// [`resolve_targets`] for names read from the database, leaving out those deleted
        /// since.
        async fn resolve_known_targets(
            tx: &mut Tx,
            owner: $crate::domain::secret::OwnerRef,
            names: &[String],
        ) -> $crate::storage::Result<
            Vec<($crate::domain::connections::ConnectionSummary, Option<usize>)>,
        > {
            Ok(resolve_connections(tx, owner, names).await?.0)
        }

        /// The targets found, and the places of the names that name no connection.
        async fn resolve_connections(
            tx: &mut Tx,
            owner: $crate::domain::secret::OwnerRef,
            names: &[String],
        ) -> $crate::storage::Result<(
            Vec<($crate::domain::connections::ConnectionSummary, Option<usize>)>,
            Vec<usize>,
        )> {
            use $crate::storage::machine_identities as sql;
            // In name order, so that transactions naming the same connections lock them alike.
            let mut by_name: Vec<usize> = (0..names.len()).collect();
            by_name.sort_by(|a, b| names[*a].cmp(&names[*b]));
            let named_sql = format!("{}{ROW_LOCK}", sql::select_named_connection());
            let mut named = vec![None; names.len()];
            let mut missing = Vec::new();
            for index in by_name {
                let found: Option<$crate::domain::connections::ConnectionSummary> =
                    $crate::storage::fetch_rows!(
                        optional,
                        &mut **tx,
                        $crate::storage::connections::SummaryColumns,
                        named_sql.clone(),
                        owner.org_id,
                        &names[index]
                    )?;
                match found {
                    Some(connection) => named[index] = Some(connection),
                    None => missing.push(index),
                }
            }
            missing.sort();
            let attribute_sql =
                format!("{}{ROW_LOCK}", sql::select_connections_reached_by_attribute());
            let reached: $crate::storage::Result<Vec<$crate::domain::connections::ConnectionSummary>> =
                $crate::storage::fetch_rows!(
                    all,
                    &mut **tx,
                    $crate::storage::connections::SummaryColumns,
                    attribute_sql,
                    owner.org_id,
                    owner.id
                );
            let mut targets: Vec<_> = named
                .into_iter()
                .enumerate()
                .filter_map(|(index, connection)| connection.map(|c| (c, Some(index))))
                .collect();
            for connection in reached? {
                if !targets.iter().any(|(target, _)| target.id == connection.id) {
                    targets.push((connection, None));
                }
            }
            Ok((targets, missing))
        }

        /// Records that the identity reaches `connection` and issues its credential there;
        /// a secret left in the slot (its earlier holding ended by the connection's side while
        /// a rotation was finishing) is ended first.
        async fn attach_credential(
            tx: &mut Tx,
            identity_id: uuid::Uuid,
            connection: $crate::domain::connections::ConnectionSummary,
            position: Option<usize>,
            issuer: &dyn $crate::domain::machine_identities::CredentialIssuer,
            expires_at: Option<chrono::DateTime<chrono::Utc>>,
            at: chrono::DateTime<chrono::Utc>,
        ) -> $crate::storage::Result<$crate::domain::machine_identities::Issued> {
            use $crate::storage::machine_identities as sql;
            let slot = $crate::domain::machine_identities::credential_slot(connection.id);
            end_slot(tx, identity_id, &slot, at).await?;
            sqlx::query(sql::INSERT_HELD_CONNECTION)
                .bind(identity_id)
                .bind(connection.id)
                .bind(&slot)
                .bind(position.map(sql::db_position))
                .execute(&mut **tx)
                .await?;
            let secret = issuer.issue(expires_at);
            insert_secret(tx, &secret, identity_id, &slot).await?;
            Ok($crate::domain::machine_identities::Issued {
                connection,
                secret_id: secret.id,
                expires_at: secret.expires_at,
            })
        }

        /// Ends the identity's credential for the connection, grace-period predecessors
        /// included, and forgets that it reaches the connection.
        async fn detach_credential(
            tx: &mut Tx,
            identity_id: uuid::Uuid,
            connection_id: uuid::Uuid,
            at: chrono::DateTime<chrono::Utc>,
        ) -> $crate::storage::Result<()> {
            let slot = $crate::domain::machine_identities::credential_slot(connection_id);
            end_slot(tx, identity_id, &slot, at).await?;
            sqlx::query($crate::storage::machine_identities::DELETE_HELD_CONNECTION)
                .bind(identity_id)
                .bind(connection_id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        async fn end_slot(
            tx: &mut Tx,
            owner_id: uuid::Uuid,
            slot: &str,
            at: chrono::DateTime<chrono::Utc>,
        ) -> $crate::storage::Result<()> {
            sqlx::query($crate::storage::machine_identities::END_SLOT)
                .bind(at)
                .bind(owner_id)
                .bind(slot)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    };
}

pub(super) use impl_machine_identity_store;
