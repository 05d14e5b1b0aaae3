//! Agentex agent API keys: each an owner of one secret, belonging to a hoop agent, unique by
//! (agent, type, name) in the database. A signing secret's row also holds it sealed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use super::rows::corrupt;
use crate::domain::agentex::{AgentApiKey, AgentApiKeyType, NewAgentApiKey, Page};
use crate::domain::audit::Change;
use crate::domain::secret::{SecretMeta, SecretState};
use crate::error::Error;
use crate::secrets::{SecretHash, SecretKind};

#[async_trait]
pub trait AgentApiKeyStore: Send + Sync + 'static {
    /// Creates the key, its owner row and its secret in one transaction. `AlreadyExists` when
    /// the agent has a key of this type and name; `Invalid` (`api_key`) when the secret is
    /// already in use; `NotFound` when the agent is gone.
    async fn create_agent_api_key(&self, key: &NewAgentApiKey, change: &Change) -> Result<()>;
    /// A page of the agent's keys, oldest first, each with its secret's metadata.
    async fn list_agent_api_keys(
        &self,
        org_id: Uuid,
        agent_id: Uuid,
        page: Page,
    ) -> Result<Vec<(AgentApiKey, SecretMeta)>>;
    async fn find_agent_api_key(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> Result<Option<(AgentApiKey, SecretMeta)>>;
    async fn find_agent_api_key_by_name(
        &self,
        org_id: Uuid,
        agent_id: Uuid,
        api_key_type: AgentApiKeyType,
        name: &str,
    ) -> Result<Option<(AgentApiKey, SecretMeta)>>;
    /// The bearer key (internal or external) a presented secret belongs to, by digest: the
    /// verification lookup. A signing secret's digest never matches here.
    async fn find_agent_api_key_by_secret(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<(SecretState, AgentApiKey)>>;
    /// Deletes the key and its secret with `delete_owner`, which locks the owner row first;
    /// `false` when the organization has no such agent API key.
    async fn delete_agent_api_key(&self, org_id: Uuid, id: Uuid, change: &Change) -> Result<bool>;
}

pub const INSERT_AGENT_API_KEY: &str = "
    INSERT INTO agent_api_keys
        (id, org_id, agent_id, name, api_key_type, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)";

/// Whether `$1` is an agent API key of organization `$2`: deleting an owner by id must not
/// delete an agent or an API key named by a mistaken id.
pub const IS_AGENT_API_KEY: &str = "SELECT id FROM agent_api_keys WHERE id = $1 AND org_id = $2";

const AGENT_API_KEY_COLUMNS: &str = "k.id, k.org_id, k.agent_id, a.name AS agent_name, k.name,
    k.api_key_type, k.created_at";

/// Agent API keys with their secret.
pub fn select_agent_api_key(filter: &str) -> String {
    format!(
        "SELECT {AGENT_API_KEY_COLUMNS}, {}
         FROM agent_api_keys k
         JOIN agents a ON a.id = k.agent_id
         JOIN secrets s ON s.owner_id = k.id AND s.rotated_at IS NULL
         {filter}",
        super::rows::KEY_COLUMNS
    )
}

/// A bearer key by its secret's digest.
pub fn select_agent_api_key_by_secret() -> String {
    format!(
        "SELECT {AGENT_API_KEY_COLUMNS}, {}
         FROM secrets s
         JOIN agent_api_keys k ON k.id = s.owner_id
         JOIN agents a ON a.id = k.agent_id
         WHERE s.hash = $1 AND s.kind = '{}'",
        super::rows::SECRET_COLUMNS,
        SecretKind::AgentexKey.as_str()
    )
}

#[derive(sqlx::FromRow)]
pub struct AgentApiKeyColumns {
    pub id: Uuid,
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub agent_name: String,
    pub name: String,
    pub api_key_type: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<AgentApiKeyColumns> for AgentApiKey {
    type Error = Error;
    fn try_from(row: AgentApiKeyColumns) -> Result<AgentApiKey> {
        Ok(AgentApiKey {
            id: row.id,
            org_id: row.org_id,
            agent_id: row.agent_id,
            agent_name: row.agent_name,
            api_key_type: AgentApiKeyType::from_db(&row.api_key_type)
                .ok_or_else(|| corrupt("agent API key type", &row.api_key_type))?,
            name: row.name,
            created_at: row.created_at,
        })
    }
}

/// An agent API key with its secret.
pub type AgentApiKeyRow = super::rows::WithKey<AgentApiKeyColumns>;
/// An agent API key with the secret it was found by.
pub type AgentApiKeyBySecretRow = super::rows::BySecret<AgentApiKeyColumns>;

macro_rules! impl_agent_api_key_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::AgentApiKeyStore for $store {
            async fn create_agent_api_key(
                &self,
                key: &$crate::domain::agentex::NewAgentApiKey,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<()> {
                use $crate::error::Error;
                let owner = $crate::domain::secret::OwnerRef {
                    org_id: key.org_id,
                    id: key.id,
                };
                write_transaction!(self, cache_unaffected, |tx| {
                    insert_owner(tx, owner).await?;
                    sqlx::query($crate::storage::agent_api_keys::INSERT_AGENT_API_KEY)
                        .bind(key.id)
                        .bind(key.org_id)
                        .bind(key.agent_id)
                        .bind(&key.name)
                        .bind(key.api_key_type.as_str())
                        .bind(key.secret.created_at)
                        .execute(&mut **tx)
                        .await
                        .map_err(|err| match &err {
                            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                                Error::NotFound("agent")
                            }
                            _ => Error::from(err),
                        })?;
                    // A new owner's secret can collide only on its digest: the value is taken.
                    insert_secret(tx, &key.secret, key.id, "")
                        .await
                        .map_err(|err| match err {
                            Error::AlreadyExists => {
                                Error::invalid("api_key", "it is already in use")
                            }
                            err => err,
                        })?;
                    record_change(tx, change).await
                })
            }

            async fn list_agent_api_keys(
                &self,
                org_id: uuid::Uuid,
                agent_id: uuid::Uuid,
                page: $crate::domain::agentex::Page,
            ) -> $crate::storage::Result<
                Vec<(
                    $crate::domain::agentex::AgentApiKey,
                    $crate::domain::secret::SecretMeta,
                )>,
            > {
                let sql = $crate::storage::agent_api_keys::select_agent_api_key(
                    "WHERE k.org_id = $1 AND k.agent_id = $2
                     ORDER BY k.created_at, k.id LIMIT $3 OFFSET $4",
                );
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::agent_api_keys::AgentApiKeyRow,
                    sql,
                    org_id,
                    agent_id,
                    page.limit,
                    page.offset
                )
            }

            async fn find_agent_api_key(
                &self,
                org_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::agentex::AgentApiKey,
                    $crate::domain::secret::SecretMeta,
                )>,
            > {
                let sql = $crate::storage::agent_api_keys::select_agent_api_key(
                    "WHERE k.org_id = $1 AND k.id = $2",
                );
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::agent_api_keys::AgentApiKeyRow,
                    sql,
                    org_id,
                    id
                )
            }

            async fn find_agent_api_key_by_name(
                &self,
                org_id: uuid::Uuid,
                agent_id: uuid::Uuid,
                api_key_type: $crate::domain::agentex::AgentApiKeyType,
                name: &str,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::agentex::AgentApiKey,
                    $crate::domain::secret::SecretMeta,
                )>,
            > {
                let sql = $crate::storage::agent_api_keys::select_agent_api_key(
                    "WHERE k.org_id = $1 AND k.agent_id = $2 AND k.api_key_type = $3
                       AND k.name = $4",
                );
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::agent_api_keys::AgentApiKeyRow,
                    sql,
                    org_id,
                    agent_id,
                    api_key_type.as_str(),
                    name
                )
            }

            async fn find_agent_api_key_by_secret(
                &self,
                hash: &$crate::secrets::SecretHash,
            ) -> $crate::storage::Result<
                Option<(
                    $crate::domain::secret::SecretState,
                    $crate::domain::agentex::AgentApiKey,
                )>,
            > {
                let sql = $crate::storage::agent_api_keys::select_agent_api_key_by_secret();
                $crate::storage::fetch_rows!(
                    optional,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::agent_api_keys::AgentApiKeyBySecretRow,
                    sql,
                    hash.as_bytes()
                )
            }

            async fn delete_agent_api_key(
                &self,
                org_id: uuid::Uuid,
                id: uuid::Uuid,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<bool> {
                let owner = $crate::domain::secret::OwnerRef { org_id, id };
                write_transaction!(self, |tx| {
                    // An owner's kind never changes, so this read needs no lock; `delete_owner`
                    // takes the owner's lock before it writes.
                    let is_key: Option<(uuid::Uuid,)> =
                        sqlx::query_as($crate::storage::agent_api_keys::IS_AGENT_API_KEY)
                            .bind(id)
                            .bind(org_id)
                            .fetch_optional(&mut **tx)
                            .await?;
                    if is_key.is_none() {
                        return Ok(false);
                    }
                    let deleted = delete_owner(tx, owner).await?;
                    record_if_made(tx, change, deleted).await
                })
            }
        }
    };
}

pub(super) use impl_agent_api_key_store;
