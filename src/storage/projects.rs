//! Ops Manager projects ("groups"): named per organization, holding agent API keys and the
//! project roles of programmatic keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use super::rows::corrupt;
use crate::domain::audit::Change;
use crate::domain::ops_manager::{ObjectId, Project};
use crate::error::Error;

#[async_trait]
pub trait ProjectStore: Send + Sync + 'static {
    /// `AlreadyExists` when the organization has a project of that name.
    async fn create_project(&self, project: &Project, change: &Change) -> Result<()>;
    /// The organization's projects by name.
    async fn list_projects(&self, org_id: Uuid) -> Result<Vec<Project>>;
    /// A project of any organization: whose it is decides between "not found" and "not yours".
    async fn find_project(&self, id: ObjectId) -> Result<Option<Project>>;
    /// Deletes the project with its agent keys and the project roles granted on it; `false`
    /// when the organization has no such project.
    async fn delete_project(&self, org_id: Uuid, id: ObjectId, change: &Change) -> Result<bool>;
}

pub const INSERT_PROJECT: &str =
    "INSERT INTO projects (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)";
pub const SELECT_PROJECT: &str = "SELECT id, org_id, name, created_at FROM projects";
/// Locks the project row (with the backend's row-lock suffix appended): what creating an agent
/// key or granting a role on it takes, so a concurrent deletion waits or wins cleanly.
pub const LOCK_PROJECT: &str = "SELECT id FROM projects WHERE id = $1 AND org_id = $2";
/// Agent keys are owners: their `owners` rows go first, taking their secrets with them.
pub const DELETE_PROJECT_AGENT_KEY_OWNERS: &str =
    "DELETE FROM owners WHERE id IN (SELECT id FROM project_agent_keys WHERE project_id = $1)";
pub const DELETE_PROJECT: &str = "DELETE FROM projects WHERE id = $1 AND org_id = $2";

#[derive(sqlx::FromRow)]
pub struct ProjectRow {
    pub id: String,
    pub org_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// An object id read back from the database.
pub fn object_id(value: &str) -> Result<ObjectId> {
    ObjectId::parse(value).ok_or_else(|| corrupt("object id", value))
}

impl TryFrom<ProjectRow> for Project {
    type Error = Error;
    fn try_from(row: ProjectRow) -> Result<Project> {
        Ok(Project {
            id: object_id(&row.id)?,
            org_id: row.org_id,
            name: row.name,
            created_at: row.created_at,
        })
    }
}

macro_rules! impl_project_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::ProjectStore for $store {
            async fn create_project(
                &self,
                project: &$crate::domain::ops_manager::Project,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                write_transaction!(self, cache_unaffected, |tx| {
                    sqlx::query($crate::storage::projects::INSERT_PROJECT)
                        .bind(project.id.to_string())
                        .bind(project.org_id)
                        .bind(&project.name)
                        .bind(project.created_at)
                        .execute(&mut **tx)
                        .await?;
                    record_change(tx, change).await
                })
            }

            async fn list_projects(
                &self,
                org_id: uuid::Uuid,
            ) -> $crate::storage::Result<Vec<$crate::domain::ops_manager::Project>> {
                let sql = format!(
                    "{} WHERE org_id = $1 ORDER BY name",
                    $crate::storage::projects::SELECT_PROJECT
                );
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::projects::ProjectRow,
                    sql,
                    org_id
                )
            }

            async fn find_project(
                &self,
                id: $crate::domain::ops_manager::ObjectId,
            ) -> $crate::storage::Result<Option<$crate::domain::ops_manager::Project>> {
                let sql = format!(
                    "{} WHERE id = $1",
                    $crate::storage::projects::SELECT_PROJECT
                );
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::projects::ProjectRow,
                    sql,
                    id.to_string()
                )
            }

            async fn delete_project(
                &self,
                org_id: uuid::Uuid,
                id: $crate::domain::ops_manager::ObjectId,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                write_transaction!(self, |tx| {
                    if !lock_project(tx, org_id, id).await? {
                        return Ok(false);
                    }
                    sqlx::query($crate::storage::projects::DELETE_PROJECT_AGENT_KEY_OWNERS)
                        .bind(id.to_string())
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query($crate::storage::projects::DELETE_PROJECT)
                        .bind(id.to_string())
                        .bind(org_id)
                        .execute(&mut **tx)
                        .await?;
                    record_change(tx, change).await?;
                    Ok(true)
                })
            }
        }

        /// Locks the project row for the rest of the transaction; `false` when the organization
        /// has no such project.
        async fn lock_project(
            tx: &mut Tx,
            org_id: uuid::Uuid,
            id: $crate::domain::ops_manager::ObjectId,
        ) -> $crate::storage::Result<bool> {
            let sql = format!("{}{ROW_LOCK}", $crate::storage::projects::LOCK_PROJECT);
            let found: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id.to_string())
                .bind(org_id)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(found.is_some())
        }
    };
}

pub(super) use impl_project_store;
