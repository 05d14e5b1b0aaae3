//! Organizations: the tenants everything else belongs to.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use crate::domain::audit::Change;
use crate::domain::org::{NewApiKey, Org};
use crate::domain::page::{Page, PageRequest};

#[async_trait]
pub trait OrgStore: Send + Sync + 'static {
    async fn count_orgs(&self) -> Result<i64>;
    /// Creates an organization and its first admin API key in one transaction.
    async fn create_org(&self, org: &Org, admin: &NewApiKey, change: &Change) -> Result<()>;
    /// A page of every organization in name order.
    async fn list_orgs(&self, page: &PageRequest<String>) -> Result<Page<Org, String>>;
    async fn find_org(&self, id: Uuid) -> Result<Option<Org>>;
    async fn find_org_by_name(&self, name: &str) -> Result<Option<Org>>;
}

pub const INSERT_ORG: &str = "INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)";
pub const SELECT_ORG: &str = "SELECT id, name, created_at FROM orgs";
/// Locks the organization row (with the backend's row-lock suffix appended); taken before any
/// owner lock by operations that need both.
pub const LOCK_ORG: &str = "SELECT id FROM orgs WHERE id = $1";

#[derive(sqlx::FromRow)]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<OrgRow> for Org {
    type Error = crate::error::Error;
    fn try_from(row: OrgRow) -> Result<Org> {
        Ok(Org {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
        })
    }
}

macro_rules! impl_org_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::OrgStore for $store {
            async fn count_orgs(&self) -> $crate::storage::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn create_org(
                &self,
                org: &$crate::domain::org::Org,
                admin: &$crate::domain::org::NewApiKey,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                write_transaction!(self, |tx| {
                    sqlx::query($crate::storage::orgs::INSERT_ORG)
                        .bind(org.id)
                        .bind(&org.name)
                        .bind(org.created_at)
                        .execute(&mut **tx)
                        .await?;
                    insert_api_key(tx, admin).await?;
                    record_change(tx, change).await
                })
            }

            async fn list_orgs(
                &self,
                page: &$crate::domain::page::PageRequest<String>,
            ) -> $crate::storage::Result<
                $crate::domain::page::Page<$crate::domain::org::Org, String>,
            > {
                let sql = format!(
                    "{} WHERE name > $1 ORDER BY name LIMIT $2",
                    $crate::storage::orgs::SELECT_ORG
                );
                let rows: $crate::storage::Result<Vec<$crate::domain::org::Org>> = $crate::storage::fetch_rows!(
                    all,
                    &self.pool,
                    $crate::storage::orgs::OrgRow,
                    sql,
                    page.after_or_start(),
                    page.fetch()
                );
                Ok(page.page(rows?, |org| org.name.clone()))
            }

            async fn find_org(
                &self,
                id: uuid::Uuid,
            ) -> $crate::storage::Result<Option<$crate::domain::org::Org>> {
                let sql = format!("{} WHERE id = $1", $crate::storage::orgs::SELECT_ORG);
                $crate::storage::fetch_rows!(
                    optional,
                    &self.pool,
                    $crate::storage::orgs::OrgRow,
                    sql,
                    id
                )
            }

            async fn find_org_by_name(
                &self,
                name: &str,
            ) -> $crate::storage::Result<Option<$crate::domain::org::Org>> {
                let sql = format!("{} WHERE name = $1", $crate::storage::orgs::SELECT_ORG);
                $crate::storage::fetch_rows!(
                    optional,
                    &self.pool,
                    $crate::storage::orgs::OrgRow,
                    sql,
                    name
                )
            }
        }

        /// Locks the organization row for the rest of the transaction.
        async fn lock_org(tx: &mut Tx, org_id: uuid::Uuid) -> $crate::storage::Result<bool> {
            let sql = format!("{}{ROW_LOCK}", $crate::storage::orgs::LOCK_ORG);
            let found: Option<(uuid::Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(org_id)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(found.is_some())
        }
    };
}

pub(super) use impl_org_store;
