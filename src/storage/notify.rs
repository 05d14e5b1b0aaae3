//! What the verification cache must forget: a generation that moves after every committed
//! write, on this instance or, through Postgres `LISTEN/NOTIFY`, on any instance sharing the
//! database.
//!
//! Every write transaction (`write_transaction!`) sends [`CHANNEL`] inside the transaction, so
//! Postgres delivers it only on commit, and bumps the local generation once committed. One
//! generation for every change keeps this correct without knowing which writes end a secret:
//! writes are rare beside verifications.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

/// The Postgres channel every committed write notifies.
pub const CHANNEL: &str = "keygate_changes";

/// A store's [`Changes`], for the verification cache.
pub trait ChangeFeed: Send + Sync + 'static {
    fn changes(&self) -> Arc<Changes>;
}

/// The cache generation, and whether changes are being heard at all.
#[derive(Debug)]
pub struct Changes {
    generation: AtomicU64,
    heard: AtomicBool,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes {
            generation: AtomicU64::new(0),
            heard: AtomicBool::new(true),
        }
    }
}

impl Changes {
    /// The current generation, or `None` while changes of other instances may go unheard (then
    /// nothing may be cached or served from the cache).
    pub fn generation(&self) -> Option<u64> {
        let generation = self.generation.load(Ordering::Acquire);
        self.heard.load(Ordering::Acquire).then_some(generation)
    }

    /// Everything cached so far may be stale.
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn deafened(&self) {
        self.heard.store(false, Ordering::Release);
        self.bump();
    }

    fn hearing(&self) {
        self.bump();
        self.heard.store(true, Ordering::Release);
    }
}

/// Listens on [`CHANNEL`] with a connection of its own (not one of the pool's) and bumps
/// `changes` on every notification. Returns once `LISTEN` is in place, so changes committed
/// after this returns are heard.
pub async fn follow(url: &str, changes: Arc<Changes>) -> Result<JoinHandle<()>, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => changes.bump(),
                // The connection was lost and is back, LISTEN included: what was sent between
                // went unheard, so everything cached before is forgotten.
                Ok(None) => {
                    tracing::warn!("lost the change listener's connection; cache cleared");
                    changes.hearing();
                }
                Err(err) => {
                    // Until the listener is back, the cache is bypassed rather than trusted.
                    tracing::warn!(error = %err, "change listener cannot reconnect; cache bypassed");
                    changes.deafened();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if listener.listen(CHANNEL).await.is_ok() {
                        changes.hearing();
                    }
                }
            }
        }
    }))
}
