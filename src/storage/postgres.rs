//! Production storage: PostgreSQL with native types, migrations from `migrations/postgres`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::agent_api_keys::impl_agent_api_key_store;
use super::agents::impl_agent_store;
use super::api_keys::impl_api_key_store;
use super::audit::impl_audit_store;
use super::connections::impl_connection_store;
use super::console_sessions::impl_console_session_store;
use super::idempotency::impl_idempotency_store;
use super::machine_identities::impl_machine_identity_store;
use super::notify::{self, ChangeFeed, Changes, Liveness};
use super::orgs::impl_org_store;
use super::programmatic_keys::impl_programmatic_key_store;
use super::project_agent_keys::impl_project_agent_key_store;
use super::projects::impl_project_store;
use super::secrets::impl_secret_store;
use super::server_keys::impl_server_key_store;
use super::{Health, Result, write_transaction};

type Tx = Transaction<'static, Postgres>;

/// Lifecycle transactions lock the rows they change before reading them.
const ROW_LOCK: &str = " FOR UPDATE";

/// Audit events are stamped one transaction at a time, under a lock held until commit, by the
/// database's clock: their (time, id) order is their commit order on every instance, so a page
/// cursor is never passed by an event committed later.
const AUDIT_CLOCK: Option<&str> = Some(
    "SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(7152936640718741504)) AS ordered",
);

pub struct PostgresStore {
    pool: PgPool,
    /// Bumped by this instance's commits and by the listener hearing any instance's.
    changes: Arc<Changes>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    pub async fn connect(
        url: &str,
        max_connections: u32,
    ) -> std::result::Result<PostgresStore, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            // A ping before every query doubled the round trips; a dead connection fails its
            // query instead, and the pool replaces it.
            .test_before_acquire(false)
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let changes = Arc::new(Changes::default());
        let listener =
            notify::follow(url, pool.clone(), changes.clone(), Liveness::default()).await?;
        Ok(PostgresStore {
            pool,
            changes,
            listener,
        })
    }

    /// Tells every instance's listener, on commit only, that something changed.
    async fn announce_change(&self, tx: &mut Tx) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(notify::CHANNEL)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// The whole batch in one statement: one round trip however many secrets were used.
    async fn write_usage(&self, uses: &[(Uuid, DateTime<Utc>)]) -> Result<()> {
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = uses.iter().copied().unzip();
        sqlx::query(
            "UPDATE secrets SET last_used_at = u.at
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, at)
             WHERE secrets.id = u.id AND (secrets.last_used_at IS NULL OR secrets.last_used_at < u.at)",
        )
        .bind(ids)
        .bind(times)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Health for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl ChangeFeed for PostgresStore {
    fn changes(&self) -> Arc<Changes> {
        self.changes.clone()
    }
}

impl_secret_store!(PostgresStore);
impl_org_store!(PostgresStore);
impl_api_key_store!(PostgresStore);
impl_agent_store!(PostgresStore);
impl_project_store!(PostgresStore);
impl_programmatic_key_store!(PostgresStore);
impl_project_agent_key_store!(PostgresStore);
impl_connection_store!(PostgresStore);
impl_machine_identity_store!(PostgresStore);
impl_agent_api_key_store!(PostgresStore);
impl_idempotency_store!(PostgresStore);
impl_audit_store!(PostgresStore);
impl_console_session_store!(PostgresStore);
impl_server_key_store!(PostgresStore);
