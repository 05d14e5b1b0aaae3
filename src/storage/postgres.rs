//! Production storage: PostgreSQL with native types, migrations from `migrations/postgres`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::agent_api_keys::impl_agent_api_key_store;
use super::agents::impl_agent_store;
use super::api_keys::impl_api_key_store;
use super::audit::impl_audit_store;
use super::connections::impl_connection_store;
use super::console_sessions::impl_console_session_store;
use super::hosts::Hosts;
use super::idempotency::impl_idempotency_store;
use super::leaks::impl_leak_store;
use super::machine_identities::impl_machine_identity_store;
use super::notify::{self, ChangeFeed, Changes, Liveness};
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

type Tx = Transaction<'static, Postgres>;

/// Lifecycle transactions lock the rows they change before reading them.
const ROW_LOCK: &str = " FOR UPDATE";

/// Audit events are stamped one transaction at a time, under a lock held until commit, by the
/// database's clock: their (time, id) order is their commit order on every instance, so a page
/// cursor is never passed by an event committed later.
const AUDIT_CLOCK: Option<&str> = Some(
    "SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(7152936640718741504)) AS ordered",
);

/// How long opening the database may take, a refused connection retried meanwhile (Postgres
/// may be starting beside keygate).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why Postgres at `hosts` could not be opened (`err`, from [`PostgresStore::connect`]), in words
/// for the person starting keygate: where it was looked for and what happened there. The pool
/// reports a refused connection only as a timeout, so one direct attempt tells the two apart;
/// a server's error is its message alone, without the Postgres source line sqlx appends.
pub async fn explain_connect_error(hosts: &Hosts, err: sqlx::Error) -> String {
    let options = hosts.first();
    let at = hosts.describe();
    let timed_out = || {
        format!(
            "cannot reach Postgres at {at}: timed out after {} s",
            CONNECT_TIMEOUT.as_secs()
        )
    };
    let err = match err {
        sqlx::Error::PoolTimedOut => {
            match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
                Ok(Err(err)) => err,
                Ok(Ok(_)) | Err(_) => return timed_out(),
            }
        }
        err => err,
    };
    match &err {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                format!("cannot reach Postgres at {at}: connection refused")
            }
            std::io::ErrorKind::TimedOut => timed_out(),
            _ => format!("cannot reach Postgres at {at}: {io}"),
        },
        sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => format!(
            "Postgres at {at} has no database {:?}: create it (createdb), or name an existing \
             one in KEYGATE_DATABASE_URL (--database-url)",
            options.get_database().unwrap_or_default()
        ),
        sqlx::Error::Database(db) => format!("Postgres at {at} refused: {}", db.message()),
        other => format!("cannot open Postgres at {at}: {other}"),
    }
}

pub struct PostgresStore {
    pool: Pool<Postgres>,
    hosts: Arc<Hosts>,
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
    /// Opens a pool on `hosts` (on the first server that matches their target, when the URL
    /// named a choice) and starts the change listener, which moves the pool to whichever
    /// server it finds after losing one.
    pub async fn connect(
        hosts: Arc<Hosts>,
        max_connections: u32,
    ) -> std::result::Result<PostgresStore, sqlx::Error> {
        let start = if hosts.choose() {
            hosts.locate().await?
        } else {
            hosts.first().clone()
        };
        let pool = hosts
            .pool_options()
            .max_connections(max_connections.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            // A ping before every query doubled the round trips; a dead connection fails its
            // query instead, and the pool replaces it.
            .test_before_acquire(false)
            .connect_with(start)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let changes = Arc::new(Changes::default());
        let listener = notify::follow(
            hosts.clone(),
            pool.clone(),
            changes.clone(),
            Liveness::default(),
        )
        .await?;
        Ok(PostgresStore {
            pool: Pool::new(pool),
            hosts,
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
        self.pool.begin(None).await
    }

    /// Each part of the batch in one statement, whatever its size, and the three in one
    /// transaction. Rows go in key order, so that concurrent flushes lock them in the same
    /// order and never deadlock.
    async fn write_usage(&self, batch: &UsageBatch) -> Result<()> {
        let mut last_used = batch.last_used.clone();
        last_used.sort_unstable();
        let (ids, times): (Vec<Uuid>, Vec<DateTime<Utc>>) = last_used.into_iter().unzip();
        let mut hourly: Vec<_> = batch
            .hourly
            .iter()
            .map(|hour| (hour.secret_id, hour.hour, usage::stored_count(hour.uses)))
            .collect();
        hourly.sort_unstable();
        let outcomes = usage::outcome_rows(batch);
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE secrets SET last_used_at = u.at
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u(id, at)
             WHERE secrets.id = u.id AND (secrets.last_used_at IS NULL OR secrets.last_used_at < u.at)",
        )
        .bind(ids)
        .bind(times)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO secret_usage (secret_id, hour, uses)
             SELECT u.id, u.hour, u.uses
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::bigint[]) AS u(id, hour, uses)
             WHERE EXISTS (SELECT 1 FROM secrets s WHERE s.id = u.id)
             ON CONFLICT (secret_id, hour) DO UPDATE SET uses = secret_usage.uses + excluded.uses",
        )
        .bind(hourly.iter().map(|row| row.0).collect::<Vec<_>>())
        .bind(hourly.iter().map(|row| row.1).collect::<Vec<_>>())
        .bind(hourly.iter().map(|row| row.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO verification_outcomes (org_id, span, bucket, kind, outcome, verifications)
             SELECT u.org_id, u.span, u.bucket, u.kind, u.outcome, u.verifications
             FROM UNNEST($1::uuid[], $2::integer[], $3::timestamptz[], $4::text[], $5::text[],
                         $6::bigint[]) AS u(org_id, span, bucket, kind, outcome, verifications)
             WHERE EXISTS (SELECT 1 FROM orgs o WHERE o.id = u.org_id)
             ON CONFLICT (org_id, span, bucket, kind, outcome) DO UPDATE
             SET verifications = verification_outcomes.verifications + excluded.verifications",
        )
        .bind(outcomes.iter().map(|row| row.org_id).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|row| row.span).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|row| row.bucket).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|row| row.kind).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|row| row.outcome).collect::<Vec<_>>())
        .bind(outcomes.iter().map(|row| row.count).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Health for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    /// The database answers, and its session is still the kind the URL's target asks for (a
    /// connection opened before a failover may lead to a server that no longer takes writes).
    async fn ping(&self) -> Result<()> {
        let mut connection = self.pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *connection).await?;
        if !self.hosts.matches(&mut connection).await? {
            return Err(crate::error::Error::Unavailable);
        }
        Ok(())
    }

    fn pool_usage(&self) -> PoolUsage {
        self.pool.usage()
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
impl_usage_store!(PostgresStore);
impl_sealed_store!(PostgresStore);
impl_leak_store!(PostgresStore);
