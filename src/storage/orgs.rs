//! Organizations: the tenants everything else belongs to.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use super::rows::corrupt;
use crate::domain::audit::Change;
use crate::domain::leak::LeakResponse;
use crate::domain::org::{NewApiKey, Org};
use crate::domain::page::{Page, PageRequest};
use crate::domain::policy::OrgPolicy;
use crate::secrets::SecretKind;

#[async_trait]
pub trait OrgStore: Send + Sync + 'static {
    async fn count_orgs(&self) -> Result<i64>;
    /// Creates an organization and its first admin API key in one transaction.
    async fn create_org(&self, org: &Org, admin: &NewApiKey, change: &Change) -> Result<()>;
    /// A page of every organization in name order.
    async fn list_orgs(&self, page: &PageRequest<String>) -> Result<Page<Org, String>>;
    async fn find_org(&self, id: Uuid) -> Result<Option<Org>>;
    async fn find_org_by_name(&self, name: &str) -> Result<Option<Org>>;
    /// The organization's policy; the empty policy when it has set none.
    async fn org_policy(&self, org_id: Uuid) -> Result<OrgPolicy>;
    /// Replaces the organization's policy, under its row lock; `false` when it is gone.
    async fn set_org_policy(
        &self,
        org_id: Uuid,
        policy: &OrgPolicy,
        change: &Change,
    ) -> Result<bool>;
}

pub const SELECT_POLICY: &str =
    "SELECT kind, max_lifetime_seconds FROM org_secret_policies WHERE org_id = $1";
pub const DELETE_POLICY: &str = "DELETE FROM org_secret_policies WHERE org_id = $1";
pub const INSERT_POLICY: &str =
    "INSERT INTO org_secret_policies (org_id, kind, max_lifetime_seconds) VALUES ($1, $2, $3)";

pub const SET_LEAK_RESPONSE: &str = "UPDATE orgs SET leak_response = $2 WHERE id = $1";

/// A policy from its rows: (kind, lifetime in seconds), and the organization's leak response
/// (none for an organization that is gone: the default).
pub fn policy(rows: Vec<(String, i64)>, leak_response: Option<String>) -> Result<OrgPolicy> {
    let mut policy = OrgPolicy::default();
    if let Some(response) = leak_response {
        policy.leak_response =
            LeakResponse::from_db(&response).ok_or_else(|| corrupt("leak response", &response))?;
    }
    for (kind, seconds) in rows {
        let parsed = SecretKind::from_db(&kind).ok_or_else(|| corrupt("secret kind", &kind))?;
        let seconds =
            u64::try_from(seconds).map_err(|_| corrupt("lifetime", &seconds.to_string()))?;
        policy.max_lifetime_seconds.insert(parsed, seconds);
    }
    Ok(policy)
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
                    .fetch_one(&mut *self.pool.acquire().await?)
                    .await?)
            }

            async fn create_org(
                &self,
                org: &$crate::domain::org::Org,
                admin: &$crate::domain::org::NewApiKey,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                write_transaction!(self, cache_unaffected, |tx| {
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
                    &mut *self.pool.acquire().await?,
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
                    &mut *self.pool.acquire().await?,
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
                    &mut *self.pool.acquire().await?,
                    $crate::storage::orgs::OrgRow,
                    sql,
                    name
                )
            }

            async fn org_policy(
                &self,
                org_id: uuid::Uuid,
            ) -> $crate::storage::Result<$crate::domain::policy::OrgPolicy> {
                let mut connection = self.pool.acquire().await?;
                let rows: Vec<(String, i64)> =
                    sqlx::query_as($crate::storage::orgs::SELECT_POLICY)
                        .bind(org_id)
                        .fetch_all(&mut *connection)
                        .await?;
                let leak_response: Option<String> =
                    sqlx::query_scalar($crate::storage::leaks::LEAK_RESPONSE)
                        .bind(org_id)
                        .fetch_optional(&mut *connection)
                        .await?;
                $crate::storage::orgs::policy(rows, leak_response)
            }

            async fn set_org_policy(
                &self,
                org_id: uuid::Uuid,
                policy: &$crate::domain::policy::OrgPolicy,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                // Existing secrets keep their expiry: a policy bounds what is issued next.
                write_transaction!(self, cache_unaffected, |tx| {
                    if !lock_org(tx, org_id).await? {
                        return Ok(false);
                    }
                    sqlx::query($crate::storage::orgs::DELETE_POLICY)
                        .bind(org_id)
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query($crate::storage::orgs::SET_LEAK_RESPONSE)
                        .bind(org_id)
                        .bind(policy.leak_response.as_str())
                        .execute(&mut **tx)
                        .await?;
                    for (kind, seconds) in &policy.max_lifetime_seconds {
                        sqlx::query($crate::storage::orgs::INSERT_POLICY)
                            .bind(org_id)
                            .bind(kind.as_str())
                            .bind(*seconds as i64)
                            .execute(&mut **tx)
                            .await?;
                    }
                    record_change(tx, change).await?;
                    Ok(true)
                })
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
