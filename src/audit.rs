//! The audit trail's background work: writing refused credentials in batches, off the request
//! path and within a bound, and purging events past retention.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::domain::audit::Refusal;
use crate::storage::Store;

/// Refusals waiting to be written; past this, new ones are dropped (and counted in the log),
/// so that a flood of bad credentials can neither hold memory nor the database.
const PENDING_REFUSALS: usize = 1024;
/// Refusals written per transaction.
const REFUSAL_BATCH: usize = 256;
/// Events deleted per statement while purging, so that no purge holds a long lock.
const PURGE_BATCH: u32 = 1000;
/// How often events past retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Hands refused credentials to a background writer; never waits.
#[derive(Clone)]
pub struct RefusalRecorder {
    pending: mpsc::Sender<Refusal>,
    /// Refusals dropped since the writer last reported them: one log line per batch, not one
    /// per refusal, however hard the flood.
    dropped: Arc<AtomicU64>,
    counts: Arc<RefusalCounts>,
    writer: Arc<Writer>,
}

/// Refused credentials queued, written and dropped since the start, for the metrics.
#[derive(Debug, Default)]
pub struct RefusalCounts {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    pub dropped: AtomicU64,
}

/// The background writer, and how to stop it once it has written what is queued.
struct Writer {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl RefusalRecorder {
    /// Starts the writer on `store`; it runs until [`RefusalRecorder::finish`].
    pub fn spawn(store: Arc<dyn Store>) -> RefusalRecorder {
        let (pending, mut received) = mpsc::channel(PENDING_REFUSALS);
        let (stop, mut stopped) = watch::channel(false);
        let dropped = Arc::new(AtomicU64::new(0));
        let reported = dropped.clone();
        let counts = Arc::new(RefusalCounts::default());
        let written = counts.clone();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(REFUSAL_BATCH);
            loop {
                tokio::select! {
                    received_count = received.recv_many(&mut batch, REFUSAL_BATCH) => {
                        if received_count == 0 {
                            return;
                        }
                        write(store.as_ref(), &mut batch, &reported, &written).await;
                    }
                    // The only value ever sent is `true`: stop.
                    _ = stopped.changed() => break,
                }
            }
            // Stopping: take no more, and write what is queued.
            received.close();
            while received.recv_many(&mut batch, REFUSAL_BATCH).await > 0 {
                write(store.as_ref(), &mut batch, &reported, &written).await;
            }
        });
        RefusalRecorder {
            pending,
            dropped,
            counts,
            writer: Arc::new(Writer {
                stop,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// Queues `refusal` for the audit trail, or drops it when the queue is full.
    pub fn record(&self, refusal: Refusal) {
        if self.pending.try_send(refusal).is_ok() {
            self.counts.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What was queued, written and dropped so far.
    pub fn counts(&self) -> &RefusalCounts {
        &self.counts
    }

    /// Writes every queued refusal and stops the writer; at shutdown, after the last request.
    pub async fn finish(&self) {
        let _ = self.writer.stop.send(true);
        let task = self.writer.task.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Writes `batch` in one transaction and empties it; reports refusals dropped meanwhile.
async fn write(
    store: &dyn Store,
    batch: &mut Vec<Refusal>,
    dropped: &AtomicU64,
    counts: &RefusalCounts,
) {
    match store.record_refusals(batch).await {
        Ok(()) => {
            counts
                .written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        Err(err) => {
            tracing::warn!(error = %err, count = batch.len(), "refused credentials not recorded in the audit trail")
        }
    }
    batch.clear();
    let count = dropped.swap(0, Ordering::Relaxed);
    if count > 0 {
        tracing::warn!(
            count,
            "audit trail queue was full; refused credentials not recorded"
        );
    }
}

/// Deletes events older than `retention_days`, now and then every hour, in batches.
pub fn spawn_purger(store: Arc<dyn Store>, retention_days: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            every.tick().await;
            purge(store.as_ref(), retention_days).await;
        }
    })
}

/// Deletes every event older than `retention_days`, one batch at a time.
pub async fn purge(store: &dyn Store, retention_days: u32) {
    let before = Utc::now() - chrono::Duration::days(i64::from(retention_days));
    loop {
        match store.purge_audit_events(before, PURGE_BATCH).await {
            Ok(deleted) if deleted < u64::from(PURGE_BATCH) => break,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "audit trail purge failed; retrying later");
                break;
            }
        }
    }
}
