//! Usage counted in memory: every use of a secret (its latest use, for `last_used_at`, and how
//! many per hour) and every answer of a verification (per minute, organization, kind and
//! outcome). A flush writes what was counted in one transaction, so verification never waits on
//! a write; counts past retention are purged hourly beside it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::usage::{Cutoffs, Granularity, OutcomeCount, SecretHour, UsageBatch};
use crate::storage::Store;

/// Enough shards that two cores' worth of requests rarely meet on one lock.
const USAGE_SHARDS: usize = 16;
/// How often counts past retention are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Hourly uses deleted per statement while purging, so that no purge holds a long lock.
const PURGE_BATCH: u32 = 1000;

/// Uses per (secret, hour start): how many, and the latest.
type Uses = HashMap<(Uuid, DateTime<Utc>), (u64, DateTime<Utc>)>;
/// A minute's start, the caller's organization, the kind of secret and the outcome.
type AnswerKey = (DateTime<Utc>, Uuid, &'static str, &'static str);
/// Answers per [`AnswerKey`].
type Answers = HashMap<AnswerKey, u64>;

/// The counts since the last flush. Uses are sharded by secret and answers by thread, so that
/// concurrent verifications rarely wait on one another's lock (answers of one organization
/// would all meet on one shard if sharded by it).
pub struct UsageRecorder {
    uses: Box<[Mutex<Uses>]>,
    answers: Box<[Mutex<Answers>]>,
}

impl Default for UsageRecorder {
    fn default() -> UsageRecorder {
        UsageRecorder {
            uses: (0..USAGE_SHARDS).map(|_| Mutex::default()).collect(),
            answers: (0..USAGE_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl UsageRecorder {
    /// Counts a use of `secret_id` at `at`.
    pub fn record(&self, secret_id: Uuid, at: DateTime<Utc>) {
        self.add_use(secret_id, Granularity::Hour.start_of(at), 1, at);
    }

    /// Counts a verification asked by `org_id` at `at`, answered `outcome` for a secret of
    /// `kind`.
    pub fn answered(
        &self,
        org_id: Uuid,
        kind: &'static str,
        outcome: &'static str,
        at: DateTime<Utc>,
    ) {
        self.add_answers((Granularity::Minute.start_of(at), org_id, kind, outcome), 1);
    }

    fn add_use(&self, secret_id: Uuid, hour: DateTime<Utc>, uses: u64, last: DateTime<Utc>) {
        let mut shard = self.shard(secret_id).lock().expect("usage lock");
        let counted = shard.entry((secret_id, hour)).or_insert((0, last));
        counted.0 += uses;
        counted.1 = counted.1.max(last);
    }

    fn add_answers(&self, key: AnswerKey, count: u64) {
        *self.answers[thread_shard()]
            .lock()
            .expect("usage lock")
            .entry(key)
            .or_insert(0) += count;
    }

    /// Everything counted so far, taken out.
    fn take(&self) -> UsageBatch {
        let mut batch = UsageBatch::default();
        let mut last_used: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
        for shard in &self.uses {
            for ((secret_id, hour), (uses, last)) in
                std::mem::take(&mut *shard.lock().expect("usage lock"))
            {
                batch.hourly.push(SecretHour {
                    secret_id,
                    hour,
                    uses,
                });
                let latest = last_used.entry(secret_id).or_insert(last);
                *latest = (*latest).max(last);
            }
        }
        batch.last_used = last_used.into_iter().collect();
        let mut answers = Answers::new();
        for shard in &self.answers {
            for (key, count) in std::mem::take(&mut *shard.lock().expect("usage lock")) {
                *answers.entry(key).or_insert(0) += count;
            }
        }
        batch.outcomes = answers
            .into_iter()
            .map(|((minute, org_id, kind, outcome), count)| OutcomeCount {
                org_id,
                minute,
                kind,
                outcome,
                count,
            })
            .collect();
        batch
    }

    /// Puts a batch that could not be written back, for the next flush.
    fn restore(&self, batch: UsageBatch) {
        let last_used: HashMap<Uuid, DateTime<Utc>> = batch.last_used.into_iter().collect();
        for hour in batch.hourly {
            let last = last_used.get(&hour.secret_id).copied().unwrap_or(hour.hour);
            self.add_use(hour.secret_id, hour.hour, hour.uses, last);
        }
        for count in batch.outcomes {
            let key = (count.minute, count.org_id, count.kind, count.outcome);
            self.add_answers(key, count.count);
        }
    }

    /// Writes what has been counted; on failure the counts are kept for the next flush.
    pub async fn flush(&self, store: &dyn Store) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        if let Err(err) = store.record_usage(&batch).await {
            tracing::warn!(
                error = %err,
                secrets = batch.last_used.len(),
                "could not record secret usage; will retry"
            );
            self.restore(batch);
        }
    }

    fn shard(&self, secret_id: Uuid) -> &Mutex<Uses> {
        // A UUID's last byte is random in both v4 and v7.
        &self.uses[usize::from(secret_id.as_bytes()[15]) % USAGE_SHARDS]
    }
}

/// This thread's shard of answers: threads take shards in turn as they first count.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % USAGE_SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// Deletes the counts past retention as of now, one batch of hourly uses at a time.
pub async fn purge(store: &dyn Store) {
    let cutoffs = Cutoffs::at(Utc::now());
    loop {
        match store.purge_usage(cutoffs, PURGE_BATCH).await {
            Ok(deleted) if deleted < u64::from(PURGE_BATCH) => break,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "usage purge failed; retrying later");
                break;
            }
        }
    }
}
