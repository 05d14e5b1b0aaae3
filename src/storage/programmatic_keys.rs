//! Ops Manager programmatic API key pairs: each an owner of its private key, with its
//! organization and project roles, its access list, and the sealed HA1 values Digest
//! authentication checks; and the (nonce, count) pairs Digest has seen, so none is used twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use uuid::Uuid;

use super::Result;
use super::projects::object_id;
use super::rows::corrupt;
use crate::domain::audit::Change;
use crate::domain::ops_manager::{
    AccessEntry, DigestAccount, Grants, NewProgrammaticKey, ObjectId, OrgRole, ProgrammaticKey,
    ProjectRole, parse_network,
};
use crate::domain::secret::SecretMeta;
use crate::error::Error;

#[async_trait]
pub trait ProgrammaticKeyStore: Send + Sync + 'static {
    /// Creates the key pair, its secret and its roles in one transaction; `AlreadyExists` when
    /// its public key is taken.
    async fn create_programmatic_key(
        &self,
        key: &NewProgrammaticKey,
        change: &Change,
    ) -> Result<()>;
    /// The organization's key pairs, oldest first, with their roles and secret.
    async fn list_programmatic_keys(
        &self,
        org_id: Uuid,
    ) -> Result<Vec<(ProgrammaticKey, SecretMeta)>>;
    async fn find_programmatic_key(
        &self,
        org_id: Uuid,
        id: ObjectId,
    ) -> Result<Option<(ProgrammaticKey, SecretMeta)>>;
    /// Replaces the description and the organization roles, where given; `false` when the
    /// organization has no such key.
    async fn update_programmatic_key(
        &self,
        org_id: Uuid,
        id: ObjectId,
        desc: Option<&str>,
        org_roles: Option<&[OrgRole]>,
        change: &Change,
    ) -> Result<bool>;
    /// Replaces the key's roles on `project` (none: takes the key off the project); `false`
    /// when the organization has no such key or project.
    async fn set_project_roles(
        &self,
        org_id: Uuid,
        id: ObjectId,
        project: ObjectId,
        roles: &[ProjectRole],
        change: &Change,
    ) -> Result<bool>;
    /// Deletes the key pair: it stops working at once. `false` when there is no such key.
    async fn delete_programmatic_key(
        &self,
        org_id: Uuid,
        id: ObjectId,
        change: &Change,
    ) -> Result<bool>;
    /// The key's access list; `None` when the organization has no such key.
    async fn access_list(&self, org_id: Uuid, id: ObjectId) -> Result<Option<Vec<AccessEntry>>>;
    /// Adds the networks not yet on the key's access list, and returns the whole list; `None`
    /// when there is no such key.
    async fn add_access_entries(
        &self,
        org_id: Uuid,
        id: ObjectId,
        networks: &[IpNet],
        at: DateTime<Utc>,
        change: &Change,
    ) -> Result<Option<Vec<AccessEntry>>>;
    /// `false` when there is no such key or the network is not on its list.
    async fn remove_access_entry(
        &self,
        org_id: Uuid,
        id: ObjectId,
        network: IpNet,
        change: &Change,
    ) -> Result<bool>;
    /// The key pair a Digest user name (its public key) names, with what authentication checks.
    async fn find_digest_account(&self, public_key: &str) -> Result<Option<DigestAccount>>;
    /// Records a use of nonce count `nc` of the nonce with digest `nonce`, kept until
    /// `expires_at`, and forgets the uses of expired nonces; `false` when it was seen before.
    async fn record_nonce_use(
        &self,
        nonce: &[u8; 32],
        nc: u32,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

pub const INSERT_KEY: &str = "
    INSERT INTO programmatic_keys (id, org_id, object_id, public_key, description, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)";
pub const INSERT_ORG_ROLE: &str =
    "INSERT INTO programmatic_key_org_roles (key_id, role) VALUES ($1, $2)";
pub const DELETE_ORG_ROLES: &str = "DELETE FROM programmatic_key_org_roles WHERE key_id = $1";
pub const INSERT_PROJECT_ROLE: &str =
    "INSERT INTO programmatic_key_project_roles (key_id, project_id, role) VALUES ($1, $2, $3)";
pub const DELETE_PROJECT_ROLES: &str =
    "DELETE FROM programmatic_key_project_roles WHERE key_id = $1 AND project_id = $2";
pub const UPDATE_DESCRIPTION: &str = "UPDATE programmatic_keys SET description = $1 WHERE id = $2";
pub const FIND_OWNER: &str =
    "SELECT id FROM programmatic_keys WHERE object_id = $1 AND org_id = $2";
pub const INSERT_ACCESS_ENTRY: &str = "
    INSERT INTO programmatic_key_access_list (key_id, network, created_at) VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING";
pub const DELETE_ACCESS_ENTRY: &str =
    "DELETE FROM programmatic_key_access_list WHERE key_id = $1 AND network = $2";
pub const SELECT_ACCESS_LIST: &str = "
    SELECT network, created_at FROM programmatic_key_access_list WHERE key_id = $1
    ORDER BY created_at, network";
pub const FORGET_EXPIRED_NONCES: &str = "DELETE FROM digest_nonce_uses WHERE expires_at <= $1";
pub const INSERT_NONCE_USE: &str = "
    INSERT INTO digest_nonce_uses (nonce_digest, nc, expires_at) VALUES ($1, $2, $3)
    ON CONFLICT DO NOTHING";

const KEY_COLUMNS: &str = "k.id, k.org_id, k.object_id, k.public_key, k.description, k.created_at";

/// Key pairs with their current secret.
pub fn select_key(filter: &str) -> String {
    format!(
        "SELECT {KEY_COLUMNS}, {}
         FROM programmatic_keys k
         JOIN secrets s ON s.owner_id = k.id AND s.rotated_at IS NULL
         {filter}",
        super::rows::KEY_COLUMNS
    )
}

/// A key pair by its public key.
pub fn select_by_public_key() -> String {
    format!("SELECT {KEY_COLUMNS} FROM programmatic_keys k WHERE k.public_key = $1")
}

/// Organization roles of the organization's keys (`$1`), or of one key (also `$2`).
pub fn select_org_roles(one_key: bool) -> String {
    format!(
        "SELECT r.key_id, r.role FROM programmatic_key_org_roles r
         JOIN programmatic_keys k ON k.id = r.key_id
         WHERE k.org_id = $1 {}",
        if one_key { "AND k.id = $2" } else { "" }
    )
}

/// Project roles of the organization's keys (`$1`), or of one key (also `$2`).
pub fn select_project_roles(one_key: bool) -> String {
    format!(
        "SELECT r.key_id, r.project_id, r.role FROM programmatic_key_project_roles r
         JOIN programmatic_keys k ON k.id = r.key_id
         WHERE k.org_id = $1 {}",
        if one_key { "AND k.id = $2" } else { "" }
    )
}

#[derive(sqlx::FromRow)]
pub struct KeyColumns {
    pub id: Uuid,
    pub org_id: Uuid,
    pub object_id: String,
    pub public_key: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

/// A key without its roles yet: [`with_roles`] adds them.
impl TryFrom<KeyColumns> for ProgrammaticKey {
    type Error = Error;
    fn try_from(row: KeyColumns) -> Result<ProgrammaticKey> {
        Ok(ProgrammaticKey {
            id: row.id,
            org_id: row.org_id,
            object_id: object_id(&row.object_id)?,
            public_key: row.public_key,
            desc: row.description,
            roles: Grants::default(),
            created_at: row.created_at,
        })
    }
}

pub type KeyRow = super::rows::WithKey<KeyColumns>;
/// A key pair with its current secret.
pub type Listed = (ProgrammaticKey, SecretMeta);

#[derive(sqlx::FromRow)]
pub struct OrgRoleRow {
    pub key_id: Uuid,
    pub role: String,
}

impl TryFrom<OrgRoleRow> for (Uuid, OrgRole) {
    type Error = Error;
    fn try_from(row: OrgRoleRow) -> Result<(Uuid, OrgRole)> {
        let role = OrgRole::parse(&row.role).ok_or_else(|| corrupt("org role", &row.role))?;
        Ok((row.key_id, role))
    }
}

#[derive(sqlx::FromRow)]
pub struct ProjectRoleRow {
    pub key_id: Uuid,
    pub project_id: String,
    pub role: String,
}

impl TryFrom<ProjectRoleRow> for (Uuid, ObjectId, ProjectRole) {
    type Error = Error;
    fn try_from(row: ProjectRoleRow) -> Result<(Uuid, ObjectId, ProjectRole)> {
        let role =
            ProjectRole::parse(&row.role).ok_or_else(|| corrupt("project role", &row.role))?;
        Ok((row.key_id, object_id(&row.project_id)?, role))
    }
}

#[derive(sqlx::FromRow)]
pub struct AccessRow {
    pub network: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<AccessRow> for AccessEntry {
    type Error = Error;
    fn try_from(row: AccessRow) -> Result<AccessEntry> {
        Ok(AccessEntry {
            network: parse_network(&row.network)
                .ok_or_else(|| corrupt("access list entry", &row.network))?,
            created_at: row.created_at,
        })
    }
}

/// Organization roles by key.
pub type OrgRoles = Vec<(Uuid, OrgRole)>;
/// Project roles by key.
pub type ProjectRoles = Vec<(Uuid, ObjectId, ProjectRole)>;

/// Gives each key the roles read for it.
pub fn with_roles(
    keys: &mut [&mut ProgrammaticKey],
    org_roles: OrgRoles,
    project_roles: ProjectRoles,
) {
    for key in keys.iter_mut() {
        key.roles = Grants {
            org_roles: org_roles
                .iter()
                .filter(|(id, _)| *id == key.id)
                .map(|(_, role)| *role)
                .collect(),
            project_roles: project_roles
                .iter()
                .filter(|(id, _, _)| *id == key.id)
                .map(|(_, project, role)| (*project, *role))
                .collect(),
        };
    }
}

macro_rules! impl_programmatic_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::ProgrammaticKeyStore for $store {
            async fn create_programmatic_key(
                &self,
                new: &$crate::domain::ops_manager::NewProgrammaticKey,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                let key = &new.key;
                write_transaction!(self, cache_unaffected, |tx| {
                    insert_owner(tx, $crate::domain::secret::OwnerRef { org_id: key.org_id, id: key.id }).await?;
                    sqlx::query($crate::storage::programmatic_keys::INSERT_KEY)
                        .bind(key.id)
                        .bind(key.org_id)
                        .bind(key.object_id.to_string())
                        .bind(&key.public_key)
                        .bind(&key.desc)
                        .bind(key.created_at)
                        .execute(&mut **tx)
                        .await?;
                    insert_secret(tx, &new.secret, key.id, "").await?;
                    insert_org_roles(tx, key.id, &key.roles.org_roles).await?;
                    record_change(tx, change).await
                })
            }

            async fn list_programmatic_keys(
                &self,
                org_id: uuid::Uuid,
            ) -> $crate::storage::Result<
                Vec<($crate::domain::ops_manager::ProgrammaticKey, $crate::domain::secret::SecretMeta)>,
            > {
                use $crate::storage::programmatic_keys as sql;
                let query = sql::select_key("WHERE k.org_id = $1 ORDER BY k.created_at, k.object_id");
                let keys: $crate::storage::Result<Vec<sql::Listed>> =
                    $crate::storage::fetch_rows!(all, &mut *self.pool.acquire().await?, sql::KeyRow, query, org_id);
                let mut keys = keys?;
                let org_roles: $crate::storage::Result<sql::OrgRoles> = $crate::storage::fetch_rows!(all, &mut *self.pool.acquire().await?, sql::OrgRoleRow, sql::select_org_roles(false), org_id);
                let org_roles = org_roles?;
                let project_roles: $crate::storage::Result<sql::ProjectRoles> = $crate::storage::fetch_rows!(all, &mut *self.pool.acquire().await?, sql::ProjectRoleRow, sql::select_project_roles(false), org_id);
                let project_roles = project_roles?;
                let mut refs: Vec<_> = keys.iter_mut().map(|(key, _)| key).collect();
                sql::with_roles(&mut refs, org_roles, project_roles);
                Ok(keys)
            }

            async fn find_programmatic_key(
                &self,
                org_id: uuid::Uuid,
                id: $crate::domain::ops_manager::ObjectId,
            ) -> $crate::storage::Result<
                Option<($crate::domain::ops_manager::ProgrammaticKey, $crate::domain::secret::SecretMeta)>,
            > {
                use $crate::storage::programmatic_keys as sql;
                let query = sql::select_key("WHERE k.org_id = $1 AND k.object_id = $2");
                let found: $crate::storage::Result<Option<sql::Listed>> =
                    $crate::storage::fetch_rows!(optional, &mut *self.pool.acquire().await?, sql::KeyRow, query, org_id, id.to_string());
                let Some((mut key, secret)) = found? else {
                    return Ok(None);
                };
                read_roles(self, &mut key).await?;
                Ok(Some((key, secret)))
            }

            async fn update_programmatic_key(
                &self,
                org_id: uuid::Uuid,
                id: $crate::domain::ops_manager::ObjectId,
                desc: Option<&str>,
                org_roles: Option<&[$crate::domain::ops_manager::OrgRole]>,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                use $crate::storage::programmatic_keys as sql;
                write_transaction!(self, |tx| {
                    let Some(owner) = lock_programmatic_key(tx, org_id, id).await? else {
                        return Ok(false);
                    };
                    if let Some(desc) = desc {
                        sqlx::query(sql::UPDATE_DESCRIPTION).bind(desc).bind(owner).execute(&mut **tx).await?;
                    }
                    if let Some(roles) = org_roles {
                        sqlx::query(sql::DELETE_ORG_ROLES).bind(owner).execute(&mut **tx).await?;
                        insert_org_roles(tx, owner, roles).await?;
                    }
                    record_change(tx, change).await?;
                    Ok(true)
                })
            }

            async fn set_project_roles(
                &self,
                org_id: uuid::Uuid,
                id: $crate::domain::ops_manager::ObjectId,
                project: $crate::domain::ops_manager::ObjectId,
                roles: &[$crate::domain::ops_manager::ProjectRole],
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                use $crate::storage::programmatic_keys as sql;
                write_transaction!(self, |tx| {
                    // The project before the key: the order a project's deletion takes too.
                    if !lock_project(tx, org_id, project).await? {
                        return Ok(false);
                    }
                    let Some(owner) = lock_programmatic_key(tx, org_id, id).await? else {
                        return Ok(false);
                    };
                    sqlx::query(sql::DELETE_PROJECT_ROLES)
                        .bind(owner)
                        .bind(project.to_string())
                        .execute(&mut **tx)
                        .await?;
                    for role in roles {
                        sqlx::query(sql::INSERT_PROJECT_ROLE)
                            .bind(owner)
                            .bind(project.to_string())
                            .bind(role.as_str())
                            .execute(&mut **tx)
                            .await?;
                    }
                    record_change(tx, change).await?;
                    Ok(true)
                })
            }

            async fn delete_programmatic_key(
                &self,
                org_id: uuid::Uuid,
                id: $crate::domain::ops_manager::ObjectId,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                write_transaction!(self, |tx| {
                    let deleted = match find_programmatic_owner(tx, org_id, id).await? {
                        Some(owner) => delete_owner(tx, $crate::domain::secret::OwnerRef { org_id, id: owner }).await?,
                        None => false,
                    };
                    record_if_made(tx, change, deleted).await
                })
            }

            async fn access_list(
                &self,
                org_id: uuid::Uuid,
                id: $crate::domain::ops_manager::ObjectId,
            ) -> $crate::storage::Result<Option<Vec<$crate::domain::ops_manager::AccessEntry>>> {
                use $crate::storage::programmatic_keys as sql;
                let owner: Option<(uuid::Uuid,)> = sqlx::query_as(sql::FIND_OWNER)
                    .bind(id.to_string())
                    .bind(org_id)
                    .fetch_optional(&mut *self.pool.acquire().await?)
                    .await?;
                match owner {
                    Some((owner,)) => Ok(Some(read_access_list(self, owner).await?)),
                    None => Ok(None),
                }
            }

            async fn add_access_entries(
                &self,
                org_id: uuid::Uuid,
                id: $crate::domain::ops_manager::ObjectId,
                networks: &[ipnet::IpNet],
                at: chrono::DateTime<chrono::Utc>,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<Option<Vec<$crate::domain::ops_manager::AccessEntry>>> {
                use $crate::storage::programmatic_keys as sql;
                write_transaction!(self, |tx| {
                    let Some(owner) = lock_programmatic_key(tx, org_id, id).await? else {
                        return Ok(None);
                    };
                    for network in networks {
                        sqlx::query(sql::INSERT_ACCESS_ENTRY)
                            .bind(owner)
                            .bind(network.to_string())
                            .bind(at)
                            .execute(&mut **tx)
                            .await?;
                    }
                    record_change(tx, change).await?;
                    let list: $crate::storage::Result<Vec<$crate::domain::ops_manager::AccessEntry>> =
                        $crate::storage::fetch_rows!(
                            all,
                            &mut **tx,
                            sql::AccessRow,
                            sql::SELECT_ACCESS_LIST,
                            owner
                        );
                    Ok(Some(list?))
                })
            }

            async fn remove_access_entry(
                &self,
                org_id: uuid::Uuid,
                id: $crate::domain::ops_manager::ObjectId,
                network: ipnet::IpNet,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                use $crate::storage::programmatic_keys as sql;
                write_transaction!(self, |tx| {
                    let Some(owner) = lock_programmatic_key(tx, org_id, id).await? else {
                        return Ok(false);
                    };
                    let removed = sqlx::query(sql::DELETE_ACCESS_ENTRY)
                        .bind(owner)
                        .bind(network.to_string())
                        .execute(&mut **tx)
                        .await?;
                    record_if_made(tx, change, removed.rows_affected() > 0).await
                })
            }

            async fn find_digest_account(
                &self,
                public_key: &str,
            ) -> $crate::storage::Result<Option<$crate::domain::ops_manager::DigestAccount>> {
                use $crate::storage::programmatic_keys as sql;
                let found: $crate::storage::Result<Option<$crate::domain::ops_manager::ProgrammaticKey>> =
                    $crate::storage::fetch_rows!(optional, &mut *self.pool.acquire().await?, sql::KeyColumns, sql::select_by_public_key(), public_key);
                let Some(mut key) = found? else {
                    return Ok(None);
                };
                let credentials =
                    $crate::storage::SecretStore::live_sealed_secrets(self, key.id).await?;
                read_roles(self, &mut key).await?;
                let access_list = read_access_list(self, key.id).await?;
                Ok(Some($crate::domain::ops_manager::DigestAccount { key, credentials, access_list }))
            }

            async fn record_nonce_use(
                &self,
                nonce: &[u8; 32],
                nc: u32,
                expires_at: chrono::DateTime<chrono::Utc>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::storage::Result<bool> {
                use $crate::storage::programmatic_keys as sql;
                write_transaction!(self, |tx| {
                    sqlx::query(sql::FORGET_EXPIRED_NONCES).bind(now).execute(&mut **tx).await?;
                    let inserted = sqlx::query(sql::INSERT_NONCE_USE)
                        .bind(nonce.as_slice())
                        .bind(i64::from(nc))
                        .bind(expires_at)
                        .execute(&mut **tx)
                        .await?;
                    Ok(inserted.rows_affected() == 1)
                })
            }
        }

        async fn insert_org_roles(
            tx: &mut Tx,
            key_id: uuid::Uuid,
            roles: &[$crate::domain::ops_manager::OrgRole],
        ) -> $crate::storage::Result<()> {
            for role in roles {
                sqlx::query($crate::storage::programmatic_keys::INSERT_ORG_ROLE)
                    .bind(key_id)
                    .bind(role.as_str())
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// The owner id of the organization's key pair `id`.
        async fn find_programmatic_owner(
            tx: &mut Tx,
            org_id: uuid::Uuid,
            id: $crate::domain::ops_manager::ObjectId,
        ) -> $crate::storage::Result<Option<uuid::Uuid>> {
            let found: Option<(uuid::Uuid,)> =
                sqlx::query_as($crate::storage::programmatic_keys::FIND_OWNER)
                    .bind(id.to_string())
                    .bind(org_id)
                    .fetch_optional(&mut **tx)
                    .await?;
            Ok(found.map(|(owner,)| owner))
        }

        /// Locks the key pair's owner row; its owner id, or `None` when there is no such key.
        async fn lock_programmatic_key(
            tx: &mut Tx,
            org_id: uuid::Uuid,
            id: $crate::domain::ops_manager::ObjectId,
        ) -> $crate::storage::Result<Option<uuid::Uuid>> {
            let Some(owner) = find_programmatic_owner(tx, org_id, id).await? else {
                return Ok(None);
            };
            let locked = lock_owner(tx, $crate::domain::secret::OwnerRef { org_id, id: owner }).await?;
            Ok(locked.then_some(owner))
        }

        async fn read_roles(
            store: &$store,
            key: &mut $crate::domain::ops_manager::ProgrammaticKey,
        ) -> $crate::storage::Result<()> {
            use $crate::storage::programmatic_keys as sql;
            let org_roles: $crate::storage::Result<sql::OrgRoles> = $crate::storage::fetch_rows!(all, &mut *store.pool.acquire().await?, sql::OrgRoleRow, sql::select_org_roles(true), key.org_id, key.id);
                let org_roles = org_roles?;
            let project_roles: $crate::storage::Result<sql::ProjectRoles> = $crate::storage::fetch_rows!(all, &mut *store.pool.acquire().await?, sql::ProjectRoleRow, sql::select_project_roles(true), key.org_id, key.id);
                let project_roles = project_roles?;
            sql::with_roles(&mut [key], org_roles, project_roles);
            Ok(())
        }

        async fn read_access_list(
            store: &$store,
            owner: uuid::Uuid,
        ) -> $crate::storage::Result<Vec<$crate::domain::ops_manager::AccessEntry>> {
            use $crate::storage::programmatic_keys as sql;
            $crate::storage::fetch_rows!(all, &mut *store.pool.acquire().await?, sql::AccessRow, sql::SELECT_ACCESS_LIST, owner)
        }
    };
}

pub(super) use impl_programmatic_key_store;
