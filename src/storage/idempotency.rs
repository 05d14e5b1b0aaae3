//! Idempotency keys: which caller sent which key with which request, the claim of the request
//! still running under it, and once it has finished, its response sealed under the server key.
//! The primary key (caller, key) arbitrates concurrent retries; expired rows count as absent
//! and are purged in the background.
//!
//! The response is written by the very transaction that makes the request's change (see
//! [`AnswerSlot`]): whatever ends the request after its commit — a dropped connection, a
//! timeout, a failing read afterwards, a crash — the change and its answer are kept together,
//! so a retry gets the secret that was minted, never a second change or a 409.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use crate::secrets::server_key::Sealed;

/// A request's claim of a caller's idempotency key.
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    pub principal_id: Uuid,
    pub key: String,
    /// SHA-256 of the request (method, path, body): a retry must be the same request.
    pub request_digest: [u8; 32],
    /// Identifies this claim, so that only its holder completes or releases it.
    pub claim_id: Uuid,
    pub now: DateTime<Utc>,
    /// End of the replay window.
    pub expires_at: DateTime<Utc>,
    /// When the claim is presumed abandoned (the server died) and may be taken over.
    pub locked_until: DateTime<Utc>,
}

impl IdempotencyClaim {
    /// What the claim's answer is sealed with, binding it to the claim's row.
    pub fn associated_data(&self) -> Vec<u8> {
        associated_data(self.principal_id, &self.request_digest, &self.key)
    }
}

/// Binds a sealed answer to its row: it opens only for the same caller, key and request.
pub fn associated_data(principal_id: Uuid, request_digest: &[u8], key: &str) -> Vec<u8> {
    let mut associated = b"idempotency-key\0".to_vec();
    associated.extend_from_slice(principal_id.as_bytes());
    associated.extend_from_slice(request_digest);
    associated.extend_from_slice(key.as_bytes());
    associated
}

/// What a claim found.
#[derive(Debug)]
pub enum ClaimOutcome {
    /// The key was free (new, expired, or abandoned): the request runs.
    Claimed,
    /// The key was used with another request.
    Mismatch,
    /// The first request with the key is still running.
    InProgress,
    /// The first request finished: its sealed response.
    Completed(Sealed),
}

/// Seals the answer of a request from what its write transaction returned (`None` when the
/// transaction is not the one that makes the request's change).
pub type AnswerBuilder = Box<dyn Fn(&dyn Any) -> Option<Result<Sealed>> + Send + Sync>;

/// Where an idempotent request's answer meets the write transaction that makes its change.
/// The request puts an [`AnswerBuilder`] here while its change runs; `write_transaction!`
/// calls it with the transaction's result before committing, and writes the sealed answer
/// into the claim's row in the same transaction.
pub struct AnswerSlot {
    claim: IdempotencyClaim,
    builder: Mutex<Option<AnswerBuilder>>,
    stored: AtomicBool,
}

tokio::task_local! {
    static SLOT: Arc<AnswerSlot>;
}

impl AnswerSlot {
    pub fn new(claim: IdempotencyClaim) -> Arc<AnswerSlot> {
        Arc::new(AnswerSlot {
            claim,
            builder: Mutex::new(None),
            stored: AtomicBool::new(false),
        })
    }

    /// Runs `request` with this slot, for the write transactions it makes.
    pub async fn serve<F: Future>(self: Arc<Self>, request: F) -> F::Output {
        SLOT.scope(self, request).await
    }

    /// The slot of the request running in this task, if it carries an idempotency key.
    pub fn current() -> Option<Arc<AnswerSlot>> {
        SLOT.try_with(Arc::clone).ok()
    }

    pub fn claim(&self) -> &IdempotencyClaim {
        &self.claim
    }

    /// Builds the answer with `builder` in the write transactions that run from now on.
    pub fn expect_answer(&self, builder: AnswerBuilder) {
        *self.builder.lock().expect("answer slot lock") = Some(builder);
    }

    /// Whether a committed transaction holds the answer.
    pub fn stored(&self) -> bool {
        self.stored.load(Ordering::Acquire)
    }
}

/// For `write_transaction!`, before it commits: the claim and sealed answer the transaction must
/// write, when the request in this task awaits its answer and `done` is what it was built from.
pub fn answer_to_write<T: Any>(done: &T) -> Result<Option<(Arc<AnswerSlot>, Sealed)>> {
    let Some(slot) = AnswerSlot::current() else {
        return Ok(None);
    };
    if slot.stored() {
        return Ok(None);
    }
    let sealed = match slot.builder.lock().expect("answer slot lock").as_ref() {
        Some(builder) => builder(done),
        None => None,
    };
    sealed
        .transpose()
        .map(|sealed| sealed.map(|sealed| (slot, sealed)))
}

/// For `write_transaction!`, once the transaction that wrote the answer has committed.
pub fn answer_written(slot: &AnswerSlot) {
    slot.stored.store(true, Ordering::Release);
    *slot.builder.lock().expect("answer slot lock") = None;
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims the key for a request, or says why it cannot run, in one transaction.
    async fn claim_idempotency_key(&self, claim: &IdempotencyClaim) -> Result<ClaimOutcome>;
    /// Forgets the claim `claim_id`, so that a retry runs again.
    async fn release_idempotency_key(
        &self,
        principal_id: Uuid,
        key: &str,
        claim_id: Uuid,
    ) -> Result<()>;
    /// Deletes the keys whose replay window has ended by `now`; returns how many.
    async fn purge_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64>;
}

pub const INSERT_CLAIM: &str = "
    INSERT INTO idempotency_keys
        (principal_id, idempotency_key, request_digest, created_at, expires_at, claim_id, locked_until)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (principal_id, idempotency_key) DO NOTHING";
/// Selects the key's row; the backend's row-lock suffix is appended.
pub const SELECT_KEY: &str = "
    SELECT request_digest, expires_at, locked_until, sealed_response, sealed_key_id
    FROM idempotency_keys WHERE principal_id = $1 AND idempotency_key = $2";
pub const TAKE_OVER: &str = "
    UPDATE idempotency_keys
    SET request_digest = $3, created_at = $4, expires_at = $5, claim_id = $6, locked_until = $7,
        sealed_response = NULL, sealed_key_id = NULL
    WHERE principal_id = $1 AND idempotency_key = $2";
pub const COMPLETE: &str = "
    UPDATE idempotency_keys
    SET sealed_response = $4, sealed_key_id = $5, claim_id = NULL, locked_until = NULL
    WHERE principal_id = $1 AND idempotency_key = $2 AND claim_id = $3";
pub const RELEASE: &str = "
    DELETE FROM idempotency_keys
    WHERE principal_id = $1 AND idempotency_key = $2 AND claim_id = $3";
pub const PURGE: &str = "DELETE FROM idempotency_keys WHERE expires_at <= $1";

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    pub request_digest: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
    pub sealed_response: Option<Vec<u8>>,
    pub sealed_key_id: Option<String>,
}

impl KeyRow {
    /// What a claim made at `claim.now` finds in this row, which it may take over when `None`.
    pub fn outcome(self, claim: &IdempotencyClaim) -> Option<ClaimOutcome> {
        let abandoned = self.locked_until.is_some_and(|until| until <= claim.now);
        if self.expires_at <= claim.now || abandoned {
            return None;
        }
        if self.request_digest != claim.request_digest {
            return Some(ClaimOutcome::Mismatch);
        }
        Some(match (self.sealed_response, self.sealed_key_id) {
            (Some(bytes), Some(key_id)) => ClaimOutcome::Completed(Sealed { key_id, bytes }),
            _ => ClaimOutcome::InProgress,
        })
    }
}

/// `$sql` ([`INSERT_CLAIM`] or [`TAKE_OVER`]) bound to the claim's columns, in their order.
macro_rules! bind_claim {
    ($sql:expr, $claim:expr) => {
        sqlx::query($sql)
            .bind($claim.principal_id)
            .bind(&$claim.key)
            .bind($claim.request_digest.as_slice())
            .bind($claim.now)
            .bind($claim.expires_at)
            .bind($claim.claim_id)
            .bind($claim.locked_until)
    };
}

pub(crate) use bind_claim;

macro_rules! impl_idempotency_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::IdempotencyStore for $store {
            async fn claim_idempotency_key(
                &self,
                claim: &$crate::storage::idempotency::IdempotencyClaim,
            ) -> $crate::storage::Result<$crate::storage::idempotency::ClaimOutcome> {
                use $crate::storage::idempotency as sql;
                write_transaction!(self, cache_unaffected, |tx| {
                    // No early return in here: it would roll the transaction back.
                    let inserted =
                        $crate::storage::idempotency::bind_claim!(sql::INSERT_CLAIM, claim)
                            .execute(&mut **tx)
                            .await?;
                    if inserted.rows_affected() == 1 {
                        Ok(sql::ClaimOutcome::Claimed)
                    } else {
                        let select = format!("{}{ROW_LOCK}", sql::SELECT_KEY);
                        let row: Option<sql::KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(select))
                            .bind(claim.principal_id)
                            .bind(&claim.key)
                            .fetch_optional(&mut **tx)
                            .await?;
                        match row.map(|row| row.outcome(claim)) {
                            Some(Some(outcome)) => Ok(outcome),
                            // Expired or abandoned: take it over.
                            Some(None) => retake(tx, sql::TAKE_OVER, claim).await,
                            // Released since the insert saw it: claim it afresh.
                            None => retake(tx, sql::INSERT_CLAIM, claim).await,
                        }
                    }
                })
            }

            async fn release_idempotency_key(
                &self,
                principal_id: uuid::Uuid,
                key: &str,
                claim_id: uuid::Uuid,
            ) -> $crate::storage::Result<()> {
                sqlx::query($crate::storage::idempotency::RELEASE)
                    .bind(principal_id)
                    .bind(key)
                    .bind(claim_id)
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(())
            }

            async fn purge_idempotency_keys(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::storage::Result<u64> {
                let done = sqlx::query($crate::storage::idempotency::PURGE)
                    .bind(now)
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        /// Claims a key found free; `InProgress` when a concurrent retry claimed it in between.
        async fn retake(
            tx: &mut Tx,
            sql: &'static str,
            claim: &$crate::storage::idempotency::IdempotencyClaim,
        ) -> $crate::storage::Result<$crate::storage::idempotency::ClaimOutcome> {
            let taken = $crate::storage::idempotency::bind_claim!(sql, claim)
                .execute(&mut **tx)
                .await?;
            Ok(if taken.rows_affected() == 1 {
                $crate::storage::idempotency::ClaimOutcome::Claimed
            } else {
                $crate::storage::idempotency::ClaimOutcome::InProgress
            })
        }
    };
}

pub(super) use impl_idempotency_store;
