//! The connection pool, timed: every query and transaction takes its connection through
//! [`Pool::acquire`], which counts the callers that had to wait for one and how long each
//! waited. sqlx's pool keeps no such record, and a saturated pool is the first thing to look
//! for when the database is healthy and keygate is slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use sqlx::pool::PoolConnection;
use sqlx::{Database, SqlSafeStr, Transaction};

use super::Result;

pub struct Pool<DB: Database> {
    inner: sqlx::Pool<DB>,
    waits: Arc<PoolWaits>,
}

/// How the pool's callers fared: shared with the metrics, which read it when scraped.
#[derive(Debug)]
pub struct PoolWaits {
    /// Callers that found no idle connection and waited for one.
    pub waited: AtomicU64,
    /// Callers waiting right now.
    pub waiting: AtomicU64,
    /// Time to get a connection, idle or not, in seconds.
    pub acquire_seconds: Histogram,
}

impl Default for PoolWaits {
    fn default() -> PoolWaits {
        PoolWaits {
            waited: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            // From 10 µs (an idle connection) to about 10 s (past the acquire timeout).
            acquire_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 12)),
        }
    }
}

/// What the pool says of itself when scraped.
#[derive(Clone, Debug, Default)]
pub struct PoolUsage {
    pub open: u64,
    pub idle: u64,
    pub waits: Arc<PoolWaits>,
}

impl<DB: Database> Pool<DB> {
    pub fn new(inner: sqlx::Pool<DB>) -> Pool<DB> {
        Pool {
            inner,
            waits: Arc::default(),
        }
    }

    pub async fn acquire(&self) -> Result<PoolConnection<DB>> {
        let started = Instant::now();
        let connection = match self.inner.try_acquire() {
            Some(idle) => idle,
            None => {
                self.waits.waited.fetch_add(1, Relaxed);
                self.waits.waiting.fetch_add(1, Relaxed);
                let waited = self.inner.acquire().await;
                self.waits.waiting.fetch_sub(1, Relaxed);
                waited?
            }
        };
        self.waits
            .acquire_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(connection)
    }

    /// A transaction on a timed connection, opened with `statement` (or the database's plain
    /// `BEGIN`). sqlx's own `Pool::begin` is this same acquire followed by `Transaction::begin`.
    pub async fn begin(&self, statement: Option<&'static str>) -> Result<Transaction<'static, DB>> {
        let connection = self.acquire().await?;
        Ok(Transaction::begin(connection, statement.map(SqlSafeStr::into_sql_str)).await?)
    }

    pub fn usage(&self) -> PoolUsage {
        PoolUsage {
            open: u64::from(self.inner.size()),
            idle: self.inner.num_idle() as u64,
            waits: self.waits.clone(),
        }
    }
}
