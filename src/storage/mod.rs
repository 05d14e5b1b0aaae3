//! Storage, split by aggregate (docs/ARCHITECTURE.md lists every module): organizations
//! (`orgs.rs`), API keys (`api_keys.rs`), agents (`agents.rs`) and the secrets they own
//! (`secrets.rs`), among others. Each aggregate module holds its trait
//! and its SQL, written once: `$n` placeholders and the bound types (Uuid, DateTime, bytes) work
//! on SQLite and Postgres alike, and each module's `impl_*!` macro implements its trait for both
//! backends (`sqlite.rs`, `postgres.rs`), which own connections, transactions and migrations.
//! Constraints (unique names, foreign keys, one current secret per owner) live in the database.
//! Ops Manager's aggregates: projects (`projects.rs`), programmatic key pairs
//! (`programmatic_keys.rs`) and project agent keys (`project_agent_keys.rs`).
//! Agentex's agent API keys are `agent_api_keys.rs`. Idempotency keys and their sealed
//! responses are `idempotency.rs`; the audit trail is `audit.rs`; web console sessions are
//! `console_sessions.rs`; the server keys of the sealed values are `server_keys.rs`, and
//! the sealed values themselves, for a rotation of the server key, `sealed.rs`; per-key
//! usage and verification outcomes are `usage.rs`.

mod agent_api_keys;
mod agents;
mod api_keys;
mod audit;
pub mod backup;
mod connections;
mod console_sessions;
pub mod hosts;
pub mod idempotency;
mod leaks;
mod machine_identities;
pub mod notify;
mod orgs;
pub mod pool;
mod postgres;
mod programmatic_keys;
mod project_agent_keys;
mod projects;
pub mod sealed;
mod secrets;
pub mod server_keys;
mod sqlite;
mod usage;

use std::sync::Arc;

use async_trait::async_trait;

use crate::StartupError;
use crate::error::Error;

pub use agent_api_keys::AgentApiKeyStore;
pub use agents::AgentStore;
pub use api_keys::ApiKeyStore;
pub use audit::AuditStore;
pub use connections::ConnectionStore;
pub use console_sessions::{ConsoleSession, ConsoleSessionStore};
pub use idempotency::IdempotencyStore;
pub use leaks::LeakStore;
pub use machine_identities::MachineIdentityStore;
pub use notify::ChangeFeed;
pub use orgs::OrgStore;
pub use postgres::PostgresStore;
pub use programmatic_keys::ProgrammaticKeyStore;
pub use project_agent_keys::ProjectAgentKeyStore;
pub use projects::ProjectStore;
pub use sealed::SealedStore;
pub use secrets::SecretStore;
pub use server_keys::ServerKeyStore;
pub use sqlite::SqliteStore;
pub use usage::UsageStore;

pub type Result<T> = std::result::Result<T, Error>;

/// Everything keygate keeps, behind one handle.
pub trait Store:
    Health
    + ChangeFeed
    + OrgStore
    + ApiKeyStore
    + AgentStore
    + SecretStore
    + ProjectStore
    + ProgrammaticKeyStore
    + ProjectAgentKeyStore
    + ConnectionStore
    + MachineIdentityStore
    + AgentApiKeyStore
    + IdempotencyStore
    + AuditStore
    + ConsoleSessionStore
    + ServerKeyStore
    + UsageStore
    + SealedStore
    + LeakStore
{
}

impl<
    T: Health
        + ChangeFeed
        + OrgStore
        + ApiKeyStore
        + AgentStore
        + SecretStore
        + ProjectStore
        + ProgrammaticKeyStore
        + ProjectAgentKeyStore
        + ConnectionStore
        + MachineIdentityStore
        + AgentApiKeyStore
        + IdempotencyStore
        + AuditStore
        + ConsoleSessionStore
        + ServerKeyStore
        + UsageStore
        + SealedStore
        + LeakStore,
> Store for T
{
}

#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;
    /// Connections of the pool: open, idle, and how long callers waited for one.
    fn pool_usage(&self) -> pool::PoolUsage;
}

/// Opens the database named by `url`, applying its migrations.
pub async fn connect(
    url: &str,
    max_connections: u32,
) -> std::result::Result<Arc<dyn Store>, StartupError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let hosts = Arc::new(hosts::Hosts::parse(url)?);
        let store = match PostgresStore::connect(hosts.clone(), max_connections).await {
            Ok(store) => store,
            Err(err) => return Err(postgres::explain_connect_error(&hosts, err).await.into()),
        };
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
        Err(
            "KEYGATE_DATABASE_URL (--database-url) must start with sqlite: or postgres://, \
             e.g. postgres://keygate@db.internal:5432/keygate"
                .into(),
        )
    }
}

/// How often a transaction that collided with a concurrent one (deadlock, serialization
/// failure, locked database) is run in all before the request is answered 503.
const TRANSACTION_ATTEMPTS: u32 = 4;

/// Whether a failed attempt should be run again: a collision, before the last attempt, after
/// a short pause that grows with each attempt.
pub(crate) async fn should_retry(err: &Error, attempt: u32) -> bool {
    if !err.is_transient() || attempt >= TRANSACTION_ATTEMPTS {
        return false;
    }
    tracing::debug!(
        attempt,
        "transaction collided with a concurrent one; retrying"
    );
    tokio::time::sleep(std::time::Duration::from_millis(5 * 3u64.pow(attempt - 1))).await;
    true
}

/// Runs `$body`, an expression of type `Result<T>` that may use the open transaction as
/// `$tx`, in a write transaction of `$store` (which has `async fn begin(&self) -> Result<Tx>`),
/// committing on success; runs it again when it collided with a concurrent transaction. An
/// early `return` from the body rolls back. A committed transaction outdates the verification
/// cache here and, through `announce_change` inside the transaction, on every other instance.
/// When the request running it awaits an idempotent answer built from this result, the answer is
/// written, sealed, in the same transaction.
macro_rules! write_transaction {
    ($store:expr, |$tx:ident| $body:expr) => {
        write_transaction!(@run $store, true, |$tx| $body)
    };
    // Writes that cannot make any cached answer wrong leave every instance's verification cache
    // as it is: recording refused credentials, idempotency claims, policy changes, and
    // creations — a new secret has a digest nothing cached has, and misses are never cached.
    // Outdating every instance's cache on each creation would make steady provisioning cost
    // the whole fleet its cache, and on Postgres a NOTIFY serializes the commits that send it.
    ($store:expr, cache_unaffected, |$tx:ident| $body:expr) => {
        write_transaction!(@run $store, false, |$tx| $body)
    };
    (@run $store:expr, $changes_secrets:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 1;
        loop {
            let result: $crate::storage::Result<_> = async {
                let mut transaction = $store.begin().await?;
                let $tx = &mut transaction;
                let body: $crate::storage::Result<_> = $body;
                let done = body?;
                // An idempotent request's answer is kept with its change, or not at all.
                let answer = $crate::storage::idempotency::answer_to_write(&done)?;
                if let Some((slot, sealed)) = &answer {
                    let claim = slot.claim();
                    let completed = sqlx::query($crate::storage::idempotency::COMPLETE)
                        .bind(claim.principal_id)
                        .bind(&claim.key)
                        .bind(claim.claim_id)
                        .bind(sealed.bytes.as_slice())
                        .bind(&sealed.key_id)
                        .execute(&mut *transaction)
                        .await?;
                    if completed.rows_affected() != 1 {
                        // The claim lapsed and a retry took the key over: it makes the change.
                        return Err($crate::error::Error::IdempotencyKeyInUse);
                    }
                }
                if $changes_secrets {
                    $store.announce_change(&mut transaction).await?;
                }
                let committed = transaction.commit().await;
                if $changes_secrets {
                    // Even a failed commit may have committed.
                    $store.changes.bump();
                }
                committed?;
                if let Some((slot, _)) = &answer {
                    $crate::storage::idempotency::answer_written(slot);
                }
                Ok(done)
            }
            .await;
            match result {
                Err(err) if $crate::storage::should_retry(&err, attempt).await => attempt += 1,
                done => break done,
            }
        }
    }};
}

pub(crate) use write_transaction;

/// Runs `$sql` with the binds on `$executor` and converts each row of type `$row` with
/// `TryInto`: `fetch_rows!(optional, …)` gives `Result<Option<T>>`, `fetch_rows!(all, …)`
/// gives `Result<Vec<T>>`.
macro_rules! fetch_rows {
    (optional, $executor:expr, $row:ty, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let row: Option<$row> = sqlx::query_as(sqlx::AssertSqlSafe($sql))
            $(.bind($bind))*
            .fetch_optional($executor)
            .await?;
        row.map(TryInto::try_into).transpose()
    }};
    (all, $executor:expr, $row:ty, $sql:expr $(, $bind:expr)* $(,)?) => {{
        let rows: Vec<$row> = sqlx::query_as(sqlx::AssertSqlSafe($sql))
            $(.bind($bind))*
            .fetch_all($executor)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }};
}

pub(crate) use fetch_rows;

/// Row shapes shared by the aggregates; `FromRow` derives work for any database.
pub(crate) mod rows {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use crate::domain::secret::{SecretMeta, SecretState};
    use crate::error::Error;
    use crate::secrets::{SecretHash, SecretKind};

    pub fn corrupt(what: &str, value: &str) -> Error {
        Error::internal(format!("unexpected {what} in the database: {value:?}"))
    }

    /// The current secret's columns, prefixed `key_` beside its owner's.
    #[derive(sqlx::FromRow)]
    pub struct KeyColumns {
        pub key_id: Uuid,
        pub key_hint: String,
        pub key_created_at: DateTime<Utc>,
        pub key_expires_at: Option<DateTime<Utc>>,
        pub key_revoked_at: Option<DateTime<Utc>>,
        pub key_last_used_at: Option<DateTime<Utc>>,
    }

    /// Selects [`KeyColumns`] from a secrets table aliased `s`.
    pub const KEY_COLUMNS: &str =
        "s.id AS key_id, s.hint AS key_hint, s.created_at AS key_created_at,
           s.expires_at AS key_expires_at, s.revoked_at AS key_revoked_at,
           s.last_used_at AS key_last_used_at";

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

    /// A secret found by its digest, prefixed `secret_` beside its owner's columns.
    #[derive(sqlx::FromRow)]
    pub struct SecretColumns {
        pub secret_id: Uuid,
        pub secret_kind: String,
        pub secret_hash: Vec<u8>,
        pub secret_expires_at: Option<DateTime<Utc>>,
        pub secret_revoked_at: Option<DateTime<Utc>>,
    }

    /// An owner's columns beside those of its current secret.
    #[derive(sqlx::FromRow)]
    pub struct WithKey<O> {
        #[sqlx(flatten)]
        pub owner: O,
        #[sqlx(flatten)]
        pub key: KeyColumns,
    }

    impl<O, T: TryFrom<O, Error = Error>> TryFrom<WithKey<O>> for (T, SecretMeta) {
        type Error = Error;
        fn try_from(row: WithKey<O>) -> Result<(T, SecretMeta), Error> {
            Ok((row.owner.try_into()?, row.key.into()))
        }
    }

    /// An owner's columns beside those of the secret it was found by.
    #[derive(sqlx::FromRow)]
    pub struct BySecret<O> {
        #[sqlx(flatten)]
        pub owner: O,
        #[sqlx(flatten)]
        pub secret: SecretColumns,
    }

    impl<O, T: TryFrom<O, Error = Error>> TryFrom<BySecret<O>> for (SecretState, T) {
        type Error = Error;
        fn try_from(row: BySecret<O>) -> Result<(SecretState, T), Error> {
            Ok((row.secret.try_into()?, row.owner.try_into()?))
        }
    }

    /// Selects [`SecretColumns`] from a secrets table aliased `s`.
    pub const SECRET_COLUMNS: &str =
        "s.id AS secret_id, s.kind AS secret_kind, s.hash AS secret_hash,
           s.expires_at AS secret_expires_at, s.revoked_at AS secret_revoked_at";

    impl TryFrom<SecretColumns> for SecretState {
        type Error = Error;
        fn try_from(row: SecretColumns) -> Result<SecretState, Error> {
            Ok(SecretState {
                id: row.secret_id,
                kind: SecretKind::from_db(&row.secret_kind)
                    .ok_or_else(|| corrupt("secret kind", &row.secret_kind))?,
                hash: SecretHash::from_bytes(&row.secret_hash)
                    .ok_or_else(|| corrupt("hash length", "?"))?,
                expires_at: row.secret_expires_at,
                revoked_at: row.secret_revoked_at,
            })
        }
    }
}
