//! Storage: one [`Store`] trait with a SQLite and a Postgres implementation, chosen by URL scheme.
//! Both run the same SQL (see `sql.rs`); each has its own migrations folder with native types.
//! Constraints (unique names, foreign keys, one current key per owner) live in the database.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::StartupError;
use crate::agents::AgentMode;
use crate::error::Error;
use crate::orgs::Role;
use crate::secrets::{PlainSecret, SecretHash, SecretKind};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

pub type Result<T> = std::result::Result<T, Error>;

/// The current time as both databases keep it (Postgres stores microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Opens the database named by `url`, applying its migrations.
pub async fn connect(
    url: &str,
    max_connections: u32,
) -> std::result::Result<Arc<dyn Store>, StartupError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(url, max_connections)
            .await
            .map_err(|e| format!("cannot open Postgres: {e}"))?;
        Ok(Arc::new(store))
    } else if url.contains(":memory:") || url.contains("mode=memory") {
        // Each pooled connection would see its own empty database, and data would vanish with them.
        Err(
            "in-memory SQLite is not supported; give a file path (the default is in the data dir)"
                .into(),
        )
    } else if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url, max_connections)
            .await
            .map_err(|e| format!("cannot open SQLite: {e}"))?;
        Ok(Arc::new(store))
    } else {
        Err("the database URL must start with sqlite: or postgres://".into())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A secret about to be stored: its digest and hint, never its value.
#[derive(Clone, Debug)]
pub struct NewSecret {
    pub id: Uuid,
    pub kind: SecretKind,
    pub hash: SecretHash,
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewSecret {
    /// The stored form of a freshly minted (or operator-chosen) secret.
    pub fn from_plain(
        kind: SecretKind,
        plain: &PlainSecret,
        expires_at: Option<DateTime<Utc>>,
    ) -> NewSecret {
        NewSecret {
            id: Uuid::now_v7(),
            kind,
            hash: plain.hash(),
            hint: plain.hint(),
            created_at: now(),
            expires_at,
        }
    }
}

/// What may be shown of a stored secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMeta {
    pub id: Uuid,
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: Role,
    pub secret: NewSecret,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: Role,
    pub key: SecretMeta,
}

#[derive(Clone, Debug)]
pub struct NewAgent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub mode: AgentMode,
    pub secret: NewSecret,
}

/// An agent with its current key (the one not yet rotated away).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub mode: AgentMode,
    pub created_at: DateTime<Utc>,
    pub key: SecretMeta,
}

/// How a rotated-away secret ends: at once (revoked) or at the end of a grace period (expires).
#[derive(Clone, Debug)]
pub struct Predecessor {
    pub secret_id: Uuid,
    pub rotated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Predecessor {
    /// The current secret, ending now (no grace) or when the grace period ends, whichever of
    /// that and its own expiry comes first.
    pub fn ending(current: &SecretMeta, grace: chrono::Duration) -> Predecessor {
        let now = now();
        let (expires_at, revoked_at) = if grace.is_zero() {
            (current.expires_at, Some(current.revoked_at.unwrap_or(now)))
        } else {
            let grace_end = now + grace;
            (
                Some(current.expires_at.map_or(grace_end, |at| at.min(grace_end))),
                current.revoked_at,
            )
        };
        Predecessor {
            secret_id: current.id,
            rotated_at: now,
            expires_at,
            revoked_at,
        }
    }
}

/// A stored secret found by its digest, with whose it is: the answer to "is this valid?".
#[derive(Clone, Debug)]
pub struct SecretRecord {
    pub id: Uuid,
    pub kind: SecretKind,
    pub hash: SecretHash,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub owner: SecretOwner,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretOwner {
    Agent {
        org_id: Uuid,
        id: Uuid,
        name: String,
        mode: AgentMode,
    },
    ApiKey {
        org_id: Uuid,
        id: Uuid,
        name: String,
        role: Role,
    },
}

impl SecretOwner {
    pub fn org_id(&self) -> Uuid {
        match self {
            SecretOwner::Agent { org_id, .. } | SecretOwner::ApiKey { org_id, .. } => *org_id,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;

    async fn count_orgs(&self) -> Result<i64>;
    /// Creates an organization and its first admin API key in one transaction.
    async fn create_org(&self, org: &Org, admin: &NewApiKey) -> Result<()>;
    async fn list_orgs(&self) -> Result<Vec<Org>>;
    async fn find_org_by_name(&self, name: &str) -> Result<Option<Org>>;

    async fn create_api_key(&self, key: &NewApiKey) -> Result<()>;
    async fn list_api_keys(&self, org_id: Uuid) -> Result<Vec<ApiKeyRecord>>;
    async fn find_api_key(&self, org_id: Uuid, id: Uuid) -> Result<Option<ApiKeyRecord>>;
    /// Revokes the key if it belongs to `org_id`; `false` when there is no such key.
    async fn revoke_api_key(&self, org_id: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<bool>;

    async fn create_agent(&self, agent: &NewAgent) -> Result<()>;
    async fn list_agents(&self, org_id: Uuid) -> Result<Vec<AgentRecord>>;
    async fn find_agent_by_id(&self, org_id: Uuid, id: Uuid) -> Result<Option<AgentRecord>>;
    async fn find_agent_by_name(&self, org_id: Uuid, name: &str) -> Result<Option<AgentRecord>>;
    /// Deletes the agent and, by cascade, all its keys; `false` when there is no such agent.
    async fn delete_agent(&self, org_id: Uuid, id: Uuid) -> Result<bool>;
    /// Ends the current secret as `old` says and stores `new` for the same owner, in one
    /// transaction. `Conflict` when `old` is no longer current (a concurrent rotation won).
    async fn rotate_secret(&self, old: &Predecessor, new: &NewSecret) -> Result<()>;

    /// The one lookup behind every verification: a stored secret by its digest.
    async fn find_secret(&self, hash: &SecretHash) -> Result<Option<SecretRecord>>;
    /// Writes `last_used_at` for a batch of secrets in one transaction.
    async fn record_usage(&self, uses: &[(Uuid, DateTime<Utc>)]) -> Result<()>;
}

/// Row shapes shared by both backends; `FromRow` derives work for any database.
mod rows {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;

    fn corrupt(what: &str, value: &str) -> Error {
        Error::internal(format!("unexpected {what} in the database: {value:?}"))
    }

    fn parse_mode(value: &str) -> Result<AgentMode> {
        AgentMode::parse(Some(value)).map_err(|_| corrupt("agent mode", value))
    }

    fn parse_role(value: &str) -> Result<Role> {
        value.parse().map_err(|_| corrupt("role", value))
    }

    #[derive(sqlx::FromRow)]
    pub struct OrgRow {
        pub id: Uuid,
        pub name: String,
        pub created_at: DateTime<Utc>,
    }

    impl From<OrgRow> for Org {
        fn from(row: OrgRow) -> Org {
            Org {
                id: row.id,
                name: row.name,
                created_at: row.created_at,
            }
        }
    }

    #[derive(sqlx::FromRow)]
    pub struct KeyColumns {
        pub key_id: Uuid,
        pub key_hint: String,
        pub key_created_at: DateTime<Utc>,
        pub key_expires_at: Option<DateTime<Utc>>,
        pub key_revoked_at: Option<DateTime<Utc>>,
        pub key_last_used_at: Option<DateTime<Utc>>,
    }

    impl From<KeyColumns> for SecretMeta {
        fn from(row: KeyColumns) -> SecretMeta {
            SecretMeta {
                id: row.key_id,
                hint: row.key_hint,
                created_at: row.key_created_at,
                expires_at: row.key_expires_at,
                revoked_at: row.key_revoked_at,
                last_used_at: row.key_last_used_at,
            }
        }
    }

    #[derive(sqlx::FromRow)]
    pub struct ApiKeyRow {
        pub id: Uuid,
        pub org_id: Uuid,
        pub name: String,
        pub role: String,
        #[sqlx(flatten)]
        pub key: KeyColumns,
    }

    impl TryFrom<ApiKeyRow> for ApiKeyRecord {
        type Error = Error;
        fn try_from(row: ApiKeyRow) -> Result<ApiKeyRecord> {
            Ok(ApiKeyRecord {
                id: row.id,
                org_id: row.org_id,
                name: row.name,
                role: parse_role(&row.role)?,
                key: row.key.into(),
            })
        }
    }

    #[derive(sqlx::FromRow)]
    pub struct AgentRow {
        pub id: Uuid,
        pub org_id: Uuid,
        pub name: String,
        pub mode: String,
        pub created_at: DateTime<Utc>,
        #[sqlx(flatten)]
        pub key: KeyColumns,
    }

    impl TryFrom<AgentRow> for AgentRecord {
        type Error = Error;
        fn try_from(row: AgentRow) -> Result<AgentRecord> {
            Ok(AgentRecord {
                id: row.id,
                org_id: row.org_id,
                name: row.name,
                mode: parse_mode(&row.mode)?,
                created_at: row.created_at,
                key: row.key.into(),
            })
        }
    }

    /// A secret joined with every owner table; exactly one owner's columns are set.
    #[derive(sqlx::FromRow)]
    pub struct SecretRow {
        pub id: Uuid,
        pub kind: String,
        pub hash: Vec<u8>,
        pub expires_at: Option<DateTime<Utc>>,
        pub revoked_at: Option<DateTime<Utc>>,
        pub owner_id: Uuid,
        pub owner_org_id: Uuid,
        pub owner_name: String,
        pub agent_mode: Option<String>,
        pub api_key_role: Option<String>,
    }

    impl TryFrom<SecretRow> for SecretRecord {
        type Error = Error;
        fn try_from(row: SecretRow) -> Result<SecretRecord> {
            let kind =
                SecretKind::from_db(&row.kind).ok_or_else(|| corrupt("secret kind", &row.kind))?;
            let (org_id, id, name) = (row.owner_org_id, row.owner_id, row.owner_name);
            let owner = match kind {
                SecretKind::AgentKey => SecretOwner::Agent {
                    org_id,
                    id,
                    name,
                    mode: parse_mode(row.agent_mode.as_deref().unwrap_or_default())?,
                },
                SecretKind::ApiKey => SecretOwner::ApiKey {
                    org_id,
                    id,
                    name,
                    role: parse_role(row.api_key_role.as_deref().unwrap_or_default())?,
                },
            };
            Ok(SecretRecord {
                id: row.id,
                kind,
                hash: SecretHash::from_bytes(&row.hash)
                    .ok_or_else(|| corrupt("hash length", "?"))?,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
                owner,
            })
        }
    }
}
