//! Ops Manager agent API keys: each an owner of its key, inside one project.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use super::projects::object_id;
use crate::domain::audit::Change;
use crate::domain::ops_manager::{NewProjectAgentKey, ObjectId, ProjectAgentKey};
use crate::domain::page::{Page, PageRequest};
use crate::domain::secret::{SecretMeta, SecretState};
use crate::error::Error;
use crate::secrets::SecretHash;

#[async_trait]
pub trait ProjectAgentKeyStore: Send + Sync + 'static {
    /// Creates the key and its secret in one transaction; `false` when the project is gone.
    async fn create_project_agent_key(
        &self,
        key: &NewProjectAgentKey,
        change: &Change,
    ) -> Result<bool>;
    /// A page of the project's agent keys, oldest first (in owner id order), each with its
    /// secret.
    async fn list_project_agent_keys(
        &self,
        project_id: ObjectId,
        page: &PageRequest<Uuid>,
    ) -> Result<Page<(ProjectAgentKey, SecretMeta), Uuid>>;
    /// One agent key of the project, with its current secret.
    async fn find_project_agent_key(
        &self,
        org_id: Uuid,
        project_id: ObjectId,
        id: ObjectId,
    ) -> Result<Option<(ProjectAgentKey, SecretMeta)>>;
    /// Deletes the key and its secret; `false` when the project has no such key.
    async fn delete_project_agent_key(
        &self,
        org_id: Uuid,
        project_id: ObjectId,
        id: ObjectId,
        change: &Change,
    ) -> Result<bool>;
    /// The agent key a presented secret (by digest) belongs to: the verification lookup.
    async fn find_project_agent_key_by_secret(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<(SecretState, ProjectAgentKey)>>;
}

pub const INSERT_PROJECT_AGENT_KEY: &str = "
    INSERT INTO project_agent_keys (id, org_id, object_id, project_id, description, created_by,
                                    created_ip, created_user_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const COLUMNS: &str = "a.id, a.org_id, a.object_id, a.project_id, a.description, a.created_by,
                       a.created_ip, a.created_user_id, a.created_at";

/// Agent keys with their secret.
pub fn select_project_agent_key(filter: &str) -> String {
    format!(
        "SELECT {COLUMNS}, {}
         FROM project_agent_keys a
         JOIN secrets s ON s.owner_id = a.id AND s.rotated_at IS NULL
         {filter}",
        super::rows::KEY_COLUMNS
    )
}

/// An agent key by its secret.
pub fn select_project_agent_key_by_secret() -> String {
    format!(
        "SELECT {COLUMNS}, {}
         FROM secrets s
         JOIN project_agent_keys a ON a.id = s.owner_id
         WHERE s.hash = $1",
        super::rows::SECRET_COLUMNS
    )
}

pub const FIND_OWNER: &str =
    "SELECT id FROM project_agent_keys WHERE object_id = $1 AND project_id = $2 AND org_id = $3";

#[derive(sqlx::FromRow)]
pub struct ProjectAgentKeyColumns {
    pub id: Uuid,
    pub org_id: Uuid,
    pub object_id: String,
    pub project_id: String,
    pub description: String,
    pub created_by: String,
    pub created_ip: String,
    pub created_user_id: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<ProjectAgentKeyColumns> for ProjectAgentKey {
    type Error = Error;
    fn try_from(row: ProjectAgentKeyColumns) -> Result<ProjectAgentKey> {
        Ok(ProjectAgentKey {
            id: row.id,
            org_id: row.org_id,
            object_id: object_id(&row.object_id)?,
            project_id: object_id(&row.project_id)?,
            desc: row.description,
            created_by: row.created_by,
            created_ip: row.created_ip,
            created_user_id: row.created_user_id,
            created_at: row.created_at,
        })
    }
}

pub type ProjectAgentKeyRow = super::rows::WithKey<ProjectAgentKeyColumns>;
pub type ProjectAgentKeyBySecretRow = super::rows::BySecret<ProjectAgentKeyColumns>;

macro_rules! impl_project_agent_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::ProjectAgentKeyStore for $store {
            async fn create_project_agent_key(
                &self,
                new: &$crate::domain::ops_manager::NewProjectAgentKey,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                let key = &new.key;
                write_transaction!(self, cache_unaffected, |tx| {
                    if !lock_project(tx, key.org_id, key.project_id).await? {
                        return Ok(false);
                    }
                    let owner = $crate::domain::secret::OwnerRef {
                        org_id: key.org_id,
                        id: key.id,
                    };
                    insert_owner(tx, owner).await?;
                    sqlx::query($crate::storage::project_agent_keys::INSERT_PROJECT_AGENT_KEY)
                        .bind(key.id)
                        .bind(key.org_id)
                        .bind(key.object_id.to_string())
                        .bind(key.project_id.to_string())
                        .bind(&key.desc)
                        .bind(&key.created_by)
                        .bind(&key.created_ip)
                        .bind(&key.created_user_id)
                        .bind(key.created_at)
                        .execute(&mut **tx)
                        .await?;
                    insert_secret(tx, &new.secret, key.id, "").await?;
                    record_change(tx, change).await?;
                    Ok(true)
                })
            }

            async fn list_project_agent_keys(
                &self,
                project_id: $crate::domain::ops_manager::ObjectId,
                page: &$crate::domain::page::PageRequest<uuid::Uuid>,
            ) -> $crate::storage::Result<
                $crate::domain::page::Page<
                    (
                        $crate::domain::ops_manager::ProjectAgentKey,
                        $crate::domain::secret::SecretMeta,
                    ),
                    uuid::Uuid,
                >,
            > {
                let sql = $crate::storage::project_agent_keys::select_project_agent_key(
                    "WHERE a.project_id = $1 AND a.id > $2 ORDER BY a.id LIMIT $3",
                );
                let rows: $crate::storage::Result<
                    Vec<(
                        $crate::domain::ops_manager::ProjectAgentKey,
                        $crate::domain::secret::SecretMeta,
                    )>,
                > = $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::project_agent_keys::ProjectAgentKeyRow,
                    sql,
                    project_id.to_string(),
                    page.after_or_start(),
                    page.fetch()
                );
                Ok(page.page(rows?, |(key, _): &(_, _)| key.id))
            }

            async fn find_project_agent_key(
                &self,
                org_id: uuid::Uuid,
                project_id: $crate::domain::ops_manager::ObjectId,
                id: $crate::domain::ops_manager::ObjectId,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::ops_manager::ProjectAgentKey,
                    $crate::domain::secret::SecretMeta,
                )>,
            > {
                let sql = $crate::storage::project_agent_keys::select_project_agent_key(
                    "WHERE a.org_id = $1 AND a.project_id = $2 AND a.object_id = $3",
                );
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::project_agent_keys::ProjectAgentKeyRow,
                    sql,
                    org_id,
                    project_id.to_string(),
                    id.to_string()
                )
            }

            async fn delete_project_agent_key(
                &self,
                org_id: uuid::Uuid,
                project_id: $crate::domain::ops_manager::ObjectId,
                id: $crate::domain::ops_manager::ObjectId,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                write_transaction!(self, |tx| {
                    let found: Option<(uuid::Uuid,)> =
                        sqlx::query_as($crate::storage::project_agent_keys::FIND_OWNER)
                            .bind(id.to_string())
                            .bind(project_id.to_string())
                            .bind(org_id)
                            .fetch_optional(&mut **tx)
                            .await?;
                    let deleted = match found {
                        Some((owner_id,)) => {
                            let owner = $crate::domain::secret::OwnerRef {
                                org_id,
                                id: owner_id,
                            };
                            delete_owner(tx, owner).await?
                        }
                        None => false,
                    };
                    record_if_made(tx, change, deleted).await
                })
            }

            async fn find_project_agent_key_by_secret(
                &self,
                hash: &$crate::secrets::SecretHash,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::secret::SecretState,
                    $crate::domain::ops_manager::ProjectAgentKey,
                )>,
            > {
                let sql = $crate::storage::project_agent_keys::select_project_agent_key_by_secret();
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::project_agent_keys::ProjectAgentKeyBySecretRow,
                    sql,
                    hash.as_bytes()
                )
            }
        }
    };
}

pub(super) use impl_project_agent_key_store;
