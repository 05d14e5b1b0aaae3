//! The embedded default: a SQLite file in WAL mode, migrations from `migrations/sqlite`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Sqlite, Transaction};

use super::agent_api_keys::impl_agent_api_key_store;
use super::agents::impl_agent_store;
use super::api_keys::impl_api_key_store;
use super::audit::impl_audit_store;
use super::connections::impl_connection_store;
use super::console_sessions::impl_console_session_store;
use super::idempotency::impl_idempotency_store;
use super::leaks::impl_leak_store;
use super::machine_identities::impl_machine_identity_store;
use super::notify::{ChangeFeed, Changes};
use super::orgs::impl_org_store;
use super::pool::{Pool, PoolUsage};
use super::programmatic_keys::impl_programmatic_key_store;
use super::project_agent_keys::impl_project_agent_key_store;
use super::projects::impl_project_store;
use super::sealed::impl_sealed_store;
use super::secrets::impl_secret_store;
use super::server_keys::impl_server_key_store;
use super::usage::{self, impl_usage_store};
use super::{Health, Result, write_transaction};
use crate::domain::usage::UsageBatch;

type Tx = Transaction<'static, Sqlite>;

/// SQLite has no row locks: `BEGIN IMMEDIATE` holds the database's write lock for the whole
/// transaction, which orders every writer.
const ROW_LOCK: &str = "";

/// `BEGIN IMMEDIATE` already orders writers, so the local clock read inside a transaction
/// stamps audit events in commit order.
const AUDIT_CLOCK: Option<&str> = None;

pub struct SqliteStore {
    pool: Pool<Sqlite>,
    /// One instance per SQLite file: its own commits are all the changes there are.
    changes: Arc<Changes>,
}

impl SqliteStore {
    pub async fn connect(
        url: &str,
        max_connections: u32,
    ) -> std::result::Result<SqliteStore, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool: Pool::new(pool),
            changes: Arc::default(),
        })
    }

    /// `BEGIN IMMEDIATE` takes the write lock up front, so concurrent writers wait their turn
    /// (busy timeout) instead of failing when a read lock cannot be upgraded.
    async fn begin(&self) -> Result<Tx> {
        self.pool.begin(Some("BEGIN IMMEDIATE")).await
    }

    /// Nothing to tell other instances: there are none.
    async fn announce_change(&self, _: &mut Tx) -> Result<()> {
        Ok(())
    }

    /// One statement per row, in one transaction: SQLite is local, so there is no round trip
    /// to save. Not a `write_transaction!`: usage changes no verification answer, so it keeps
    /// the cache, and a failed flush is retried by the next one.
    async fn write_usage(&self, batch: &UsageBatch) -> Result<()> {
        let mut tx = self.begin().await?;
        for (id, at) in &batch.last_used {
            sqlx::query(usage::UPDATE_LAST_USED)
                .bind(*at)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        for hour in &batch.hourly {
            sqlx::query(usage::ADD_SECRET_HOUR)
                .bind(hour.secret_id)
                .bind(hour.hour)
                .bind(usage::stored_count(hour.uses))
                .execute(&mut *tx)
                .await?;
        }
        for row in usage::outcome_rows(batch) {
            sqlx::query(usage::ADD_OUTCOMES)
                .bind(row.org_id)
                .bind(row.span)
                .bind(row.bucket)
                .bind(row.kind)
                .bind(row.outcome)
                .bind(row.count)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Health for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.pool.acquire().await?)
            .await?;
        Ok(())
    }

    fn pool_usage(&self) -> PoolUsage {
        self.pool.usage()
    }
}

impl ChangeFeed for SqliteStore {
    fn changes(&self) -> Arc<Changes> {
        self.changes.clone()
    }
}

impl_secret_store!(SqliteStore);
impl_org_store!(SqliteStore);
impl_api_key_store!(SqliteStore);
impl_agent_store!(SqliteStore);
impl_project_store!(SqliteStore);
impl_programmatic_key_store!(SqliteStore);
impl_project_agent_key_store!(SqliteStore);
impl_connection_store!(SqliteStore);
impl_machine_identity_store!(SqliteStore);
impl_agent_api_key_store!(SqliteStore);
impl_idempotency_store!(SqliteStore);
impl_audit_store!(SqliteStore);
impl_console_session_store!(SqliteStore);
impl_server_key_store!(SqliteStore);
impl_usage_store!(SqliteStore);
impl_sealed_store!(SqliteStore);
impl_leak_store!(SqliteStore);
