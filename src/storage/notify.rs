//! What the verification cache must forget: a generation that moves after every committed
//! write that could make a cached answer wrong, on this instance or, through Postgres
//! `LISTEN/NOTIFY`, on any instance sharing the database.
//!
//! Such a write transaction (`write_transaction!`) sends [`CHANNEL`] inside the transaction, so
//! Postgres delivers it only on commit, and bumps the local generation once committed. One
//! generation for every change keeps this correct without knowing which secrets a write ends:
//! those writes are rare beside verifications.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::hosts::Hosts;

/// The Postgres channel every committed write notifies.
pub const CHANNEL: &str = "keygate_changes";

/// A store's [`Changes`], for the verification cache.
pub trait ChangeFeed: Send + Sync + 'static {
    fn changes(&self) -> Arc<Changes>;
}

/// The cache generation, whether changes are being heard at all, and what ended generations
/// so far (for the metrics).
#[derive(Debug)]
pub struct Changes {
    generation: AtomicU64,
    heard: AtomicBool,
    local: AtomicU64,
    notified: AtomicU64,
    losses: AtomicU64,
    reconnects: AtomicU64,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes {
            generation: AtomicU64::new(0),
            heard: AtomicBool::new(true),
            local: AtomicU64::new(0),
            notified: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }
}

/// What [`Changes`] counted: generations ended by local writes and by other instances' (heard
/// through `NOTIFY`), connections of the listener lost and made again, and whether the cache
/// is bypassed now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeCounts {
    pub local: u64,
    pub notified: u64,
    pub losses: u64,
    pub reconnects: u64,
    pub bypassed: bool,
}

impl Changes {
    /// The current generation, or `None` while changes of other instances may go unheard (then
    /// nothing may be cached or served from the cache).
    pub fn generation(&self) -> Option<u64> {
        let generation = self.generation.load(Ordering::Acquire);
        self.heard.load(Ordering::Acquire).then_some(generation)
    }

    /// Everything cached so far may be stale: this instance committed a change.
    pub fn bump(&self) {
        self.local.fetch_add(1, Ordering::Relaxed);
        self.forget();
    }

    /// Another instance committed a change.
    fn notified(&self) {
        self.notified.fetch_add(1, Ordering::Relaxed);
        self.forget();
    }

    fn forget(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn counts(&self) -> ChangeCounts {
        ChangeCounts {
            local: self.local.load(Ordering::Relaxed),
            notified: self.notified.load(Ordering::Relaxed),
            losses: self.losses.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            bypassed: !self.heard.load(Ordering::Acquire),
        }
    }

    fn deafened(&self) {
        self.heard.store(false, Ordering::Release);
        self.losses.fetch_add(1, Ordering::Relaxed);
        self.forget();
    }

    fn hearing(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.forget();
        self.heard.store(true, Ordering::Release);
    }
}

/// How the listener tells a live connection from a dead one. A peer that vanished without a
/// reset leaves a socket that simply never reads again, so the listener asks for a heartbeat
/// of its own every `heartbeat` and, when nothing at all has arrived for `silence`, takes the
/// connection for dead: it bypasses the cache, connects afresh and then forgets everything
/// cached before.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    pub heartbeat: Duration,
    pub silence: Duration,
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness {
            heartbeat: Duration::from_secs(5),
            silence: Duration::from_secs(15),
        }
    }
}

/// Listens on [`CHANNEL`] with a connection of its own to `hosts` (not one of the pool's) and
/// bumps `changes` on every notification; `pool` sends the listener's heartbeats. Returns once
/// `LISTEN` is in place, so changes committed after this returns are heard.
///
/// When `hosts` offer a choice of servers, the listener is what follows a failover: it listens
/// on the first server that matches their target, and each time it connects it points `pool`'s
/// new connections to that server; each time it loses one, the pool stops handing out
/// connections opened before.
pub async fn follow(
    hosts: Arc<Hosts>,
    pool: PgPool,
    changes: Arc<Changes>,
    liveness: Liveness,
) -> Result<JoinHandle<()>, sqlx::Error> {
    // A channel only this listener hears.
    let heartbeat = format!("keygate_heartbeat_{}", Uuid::new_v4().simple());
    let mut listener = listen(&hosts, &pool, &heartbeat).await?;
    let beat = {
        let heartbeat = heartbeat.clone();
        let pool = pool.clone();
        async move {
            let mut every = tokio::time::interval(liveness.heartbeat);
            loop {
                every.tick().await;
                let sent = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(&heartbeat)
                    .execute(&pool)
                    .await;
                if let Err(err) = sent {
                    tracing::debug!(error = %err, "change listener heartbeat not sent");
                }
            }
        }
    };
    let hear = async move {
        loop {
            let lost = match tokio::time::timeout(liveness.silence, listener.try_recv()).await {
                Ok(Ok(Some(notification))) => {
                    if notification.channel() == CHANNEL {
                        changes.notified();
                    }
                    continue;
                }
                Ok(Ok(None)) => "the connection was lost".to_owned(),
                Ok(Err(err)) => format!("the connection failed: {err}"),
                Err(_) => "nothing arrived, not even its heartbeat".to_owned(),
            };
            // From the moment the connection is known lost until a new LISTEN is in place,
            // changes of other instances go unheard: the cache is bypassed, not trusted.
            changes.deafened();
            hosts.lost();
            tracing::warn!(reason = %lost, "change listener lost; cache bypassed while it reconnects");
            listener = reconnect(&hosts, &pool, &heartbeat, liveness.silence).await;
            // What was sent meanwhile went unheard: everything cached before is forgotten.
            changes.hearing();
            tracing::info!("change listener back; cache cleared and in use again");
        }
    };
    Ok(tokio::spawn(async move {
        tokio::join!(beat, hear);
    }))
}

/// A new connection listening on [`CHANNEL`] and on `heartbeat`, to the first of `hosts` that
/// matches their target when they offer a choice (and `pool` then opens its new connections
/// there too). It does not reconnect by itself: sqlx's own reconnect happens inside `try_recv`
/// before the loss is reported, which would leave the cache trusted for as long as the new
/// connection takes to open.
async fn listen(
    hosts: &Arc<Hosts>,
    pool: &PgPool,
    heartbeat: &str,
) -> Result<PgListener, sqlx::Error> {
    let at = if hosts.choose() {
        hosts.locate().await?
    } else {
        hosts.first().clone()
    };
    // As `PgListener::connect` makes it: a pool of one, without timeouts, for this connection.
    let own = hosts
        .pool_options()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(at.clone())
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    listener.ignore_pool_close_event(true);
    listener.eager_reconnect(false);
    listener.listen_all([CHANNEL, heartbeat]).await?;
    if hosts.choose() {
        pool.set_connect_options(at);
    }
    Ok(listener)
}

/// Connects and listens afresh, trying until it succeeds: each attempt may take up to
/// `patience`, and failed ones are spaced from 100 ms growing to 1 s (during a failover the
/// new primary is looked for at least every second).
async fn reconnect(
    hosts: &Arc<Hosts>,
    pool: &PgPool,
    heartbeat: &str,
    patience: Duration,
) -> PgListener {
    let mut pause = Duration::from_millis(100);
    loop {
        match tokio::time::timeout(patience, listen(hosts, pool, heartbeat)).await {
            Ok(Ok(listener)) => return listener,
            Ok(Err(err)) => tracing::warn!(error = %err, "change listener cannot reconnect yet"),
            Err(_) => tracing::warn!(?patience, "change listener's reconnect timed out"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
