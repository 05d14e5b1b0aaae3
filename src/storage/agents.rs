//! hoop agents: each an owner of its keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use super::rows::corrupt;
use crate::domain::agent::{Agent, AgentMode, NewAgent};
use crate::domain::audit::Change;
use crate::domain::page::{Page, PageRequest};
use crate::domain::secret::{SecretMeta, SecretState};
use crate::error::Error;
use crate::secrets::SecretHash;

#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Creates the agent and its first key in one transaction.
    async fn create_agent(&self, agent: &NewAgent, change: &Change) -> Result<()>;
    /// The organization's agents by name, each with its current key.
    /// A page of the organization's agents in name order.
    async fn list_agents(
        &self,
        org_id: Uuid,
        page: &PageRequest<String>,
    ) -> Result<Page<(Agent, SecretMeta), String>>;
    async fn find_agent_by_id(&self, org_id: Uuid, id: Uuid)
    -> Result<Option<(Agent, SecretMeta)>>;
    async fn find_agent_by_name(
        &self,
        org_id: Uuid,
        name: &str,
    ) -> Result<Option<(Agent, SecretMeta)>>;
    /// The agent a presented key (by digest) belongs to: the verification lookup.
    async fn find_agent_by_secret(&self, hash: &SecretHash)
    -> Result<Option<(SecretState, Agent)>>;
    /// Deletes the agent and, by cascade, all its keys; `false` when there is no such agent.
    async fn delete_agent(&self, org_id: Uuid, id: Uuid, change: &Change) -> Result<bool>;
}

pub const INSERT_AGENT: &str =
    "INSERT INTO agents (id, org_id, name, mode, created_at) VALUES ($1, $2, $3, $4, $5)";

const AGENT_COLUMNS: &str = "a.id, a.org_id, a.name, a.mode, a.created_at";

/// An agent with its current key.
pub fn select_agent(filter: &str) -> String {
    format!(
        "SELECT {AGENT_COLUMNS}, {}
         FROM agents a
         JOIN secrets s ON s.owner_id = a.id AND s.rotated_at IS NULL
         {filter}",
        super::rows::KEY_COLUMNS
    )
}

/// An agent by one of its keys, current or rotated away.
pub fn select_agent_by_secret() -> String {
    format!(
        "SELECT {AGENT_COLUMNS}, {}
         FROM secrets s
         JOIN agents a ON a.id = s.owner_id
         WHERE s.hash = $1",
        super::rows::SECRET_COLUMNS
    )
}

#[derive(sqlx::FromRow)]
pub struct AgentColumns {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub mode: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<AgentColumns> for Agent {
    type Error = Error;
    fn try_from(row: AgentColumns) -> Result<Agent> {
        Ok(Agent {
            id: row.id,
            org_id: row.org_id,
            mode: AgentMode::parse(Some(&row.mode))
                .map_err(|_| corrupt("agent mode", &row.mode))?,
            name: row.name,
            created_at: row.created_at,
        })
    }
}

/// An agent with its current secret.
pub type AgentRow = super::rows::WithKey<AgentColumns>;
/// An agent with the secret it was found by.
pub type AgentBySecretRow = super::rows::BySecret<AgentColumns>;

macro_rules! impl_agent_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::AgentStore for $store {
            async fn create_agent(
                &self,
                agent: &$crate::domain::agent::NewAgent,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                let owner = $crate::domain::secret::OwnerRef {
                    org_id: agent.org_id,
                    id: agent.id,
                };
                write_transaction!(self, cache_unaffected, |tx| {
                    insert_owner(tx, owner).await?;
                    sqlx::query($crate::storage::agents::INSERT_AGENT)
                        .bind(agent.id)
                        .bind(agent.org_id)
                        .bind(agent.name.as_str())
                        .bind(agent.mode.as_str())
                        .bind(agent.secret.created_at)
                        .execute(&mut **tx)
                        .await?;
                    insert_secret(tx, &agent.secret, agent.id, "").await?;
                    record_change(tx, change).await
                })
            }

            async fn list_agents(
                &self,
                org_id: uuid::Uuid,
                page: &$crate::domain::page::PageRequest<String>,
            ) -> $crate::storage::Result<
                $crate::domain::page::Page<
                    (
                        $crate::domain::agent::Agent,
                        $crate::domain::secret::SecretMeta,
                    ),
                    String,
                >,
            > {
                let sql = $crate::storage::agents::select_agent(
                    "WHERE a.org_id = $1 AND a.name > $2 ORDER BY a.name LIMIT $3",
                );
                let rows: $crate::storage::Result<
                    Vec<(
                        $crate::domain::agent::Agent,
                        $crate::domain::secret::SecretMeta,
                    )>,
                > = $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::agents::AgentRow,
                    sql,
                    org_id,
                    page.after_or_start(),
                    page.fetch()
                );
                Ok(page.page(rows?, |(agent, _): &(_, _)| agent.name.clone()))
            }

            async fn find_agent_by_id(
                &self,
                org_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::agent::Agent,
                    $crate::domain::secret::SecretMeta,
                )>,
            > {
                let sql =
                    $crate::storage::agents::select_agent("WHERE a.org_id = $1 AND a.id = $2");
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::agents::AgentRow,
                    sql,
                    org_id,
                    id
                )
            }

            async fn find_agent_by_name(
                &self,
                org_id: uuid::Uuid,
                name: &str,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::agent::Agent,
                    $crate::domain::secret::SecretMeta,
                )>,
            > {
                let sql =
                    $crate::storage::agents::select_agent("WHERE a.org_id = $1 AND a.name = $2");
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::agents::AgentRow,
                    sql,
                    org_id,
                    name
                )
            }

            async fn find_agent_by_secret(
                &self,
                hash: &$crate::secrets::SecretHash,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::secret::SecretState,
                    $crate::domain::agent::Agent,
                )>,
            > {
                let sql = $crate::storage::agents::select_agent_by_secret();
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::agents::AgentBySecretRow,
                    sql,
                    hash.as_bytes()
                )
            }

            async fn delete_agent(
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
        }
    };
}

pub(super) use impl_agent_store;
