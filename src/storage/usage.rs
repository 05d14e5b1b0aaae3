//! Usage: the batches the verifier flushes (`last_used_at`, uses per secret and hour,
//! verification answers per minute and hour, in one transaction), the reads of them — a key's
//! usage, the answers over time, the busiest keys — the counts of secrets by kind and state and
//! the keys expiring soon, and the purge of counts past retention.
//!
//! `org_id: None` reads every organization's, for the operator; a tenant's reads name its own.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::Result;
use super::rows::corrupt;
use crate::domain::secret::OwnerRef;
use crate::domain::usage::{
    Cutoffs, EXPIRING_SOON_DAYS, ExpiringSecret, Granularity, OutcomeBucket, OwnerUses,
    SecretCount, Usage, UsageBatch, Window,
};
use crate::error::Error;
use crate::secrets::SecretKind;

#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Writes one flush in one transaction: `last_used_at` only ever moves forward, and counts
    /// are added to what is stored, so instances flushing in any order keep the latest use and
    /// the sum of their counts. Uses of secrets deleted since are skipped, and so are the
    /// answers of organizations deleted since.
    async fn record_usage(&self, batch: &UsageBatch) -> Result<()>;

    /// The owner's uses per hour over the hourly `window`, summed over all its secrets (a
    /// rotated key's predecessors too); every hour of the window, zero where there were none.
    async fn owner_usage(&self, owner: OwnerRef, window: &Window) -> Result<Usage>;

    /// `POST /verify`'s answers per bucket of `window` (per minute or per hour) and outcome,
    /// asked by `org_id` (or by every organization); only buckets and outcomes that had any,
    /// in (bucket, outcome) order.
    async fn verification_outcomes(
        &self,
        org_id: Option<Uuid>,
        window: &Window,
    ) -> Result<Vec<OutcomeBucket>>;

    /// The `limit` owners of `org_id` (or of every organization) whose secrets were used most in
    /// the hours of `window`, the most used first.
    async fn top_owners(
        &self,
        org_id: Option<Uuid>,
        window: &Window,
        limit: u32,
    ) -> Result<Vec<OwnerUses>>;

    /// How many secrets each organization (or `org_id`) has per kind, active, in grace and
    /// expiring within [`EXPIRING_SOON_DAYS`] as of `now`: one grouped scan. Kinds and
    /// organizations with no working secret are absent; the overall count of a kind is the sum
    /// over organizations.
    async fn secret_counts(
        &self,
        org_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SecretCount>>;

    /// Up to `limit` current, working secrets of `org_id` (or of every organization) that
    /// expire within [`EXPIRING_SOON_DAYS`] of `now`, the soonest first.
    async fn expiring_secrets(
        &self,
        org_id: Option<Uuid>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ExpiringSecret>>;

    /// Deletes the counts older than `cutoffs`: every per-minute and hourly answer count, and
    /// up to `batch` hourly uses of secrets; how many of those went.
    async fn purge_usage(&self, cutoffs: Cutoffs, batch: u32) -> Result<u64>;
}

/// Each answer count of `batch` in its minute and in its hour, summed per row, in key order:
/// the rows of verification outcomes one flush adds (a statement that upserts one row twice
/// fails on Postgres, and a fixed order keeps concurrent flushes from deadlocking).
pub fn outcome_rows(batch: &UsageBatch) -> Vec<OutcomeRow> {
    let mut rows = std::collections::BTreeMap::new();
    for count in &batch.outcomes {
        for granularity in [Granularity::Minute, Granularity::Hour] {
            let key = (
                count.org_id,
                granularity.seconds(),
                granularity.start_of(count.minute),
                count.kind,
                count.outcome,
            );
            *rows.entry(key).or_insert(0) += count.count;
        }
    }
    rows.into_iter()
        .map(
            |((org_id, span, bucket, kind, outcome), count)| OutcomeRow {
                org_id,
                span: span as i32,
                bucket,
                kind,
                outcome,
                count: stored_count(count),
            },
        )
        .collect()
}

/// One row of `verification_outcomes` to add.
pub struct OutcomeRow {
    pub org_id: Uuid,
    pub span: i32,
    pub bucket: DateTime<Utc>,
    pub kind: &'static str,
    pub outcome: &'static str,
    pub count: i64,
}

/// A count as the database keeps it (a signed 64-bit integer).
pub fn stored_count(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn read_count(count: i64) -> Result<u64> {
    u64::try_from(count).map_err(|_| corrupt("count", &count.to_string()))
}

fn read_kind(kind: &str) -> Result<SecretKind> {
    SecretKind::from_db(kind).ok_or_else(|| corrupt("secret kind", kind))
}

/// `last_used_at`, only ever forward; one secret per statement (SQLite's form).
pub const UPDATE_LAST_USED: &str = "UPDATE secrets SET last_used_at = $1
    WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)";

/// Adds uses to a secret's hour, if the secret still exists (SQLite's form).
pub const ADD_SECRET_HOUR: &str = "
    INSERT INTO secret_usage (secret_id, hour, uses)
    SELECT id, $2, $3 FROM secrets WHERE id = $1
    ON CONFLICT (secret_id, hour) DO UPDATE SET uses = secret_usage.uses + excluded.uses";

/// Adds answers to an organization's bucket, if the organization still exists (SQLite's form).
pub const ADD_OUTCOMES: &str = "
    INSERT INTO verification_outcomes (org_id, span, bucket, kind, outcome, verifications)
    SELECT id, $2, $3, $4, $5, $6 FROM orgs WHERE id = $1
    ON CONFLICT (org_id, span, bucket, kind, outcome)
    DO UPDATE SET verifications = verification_outcomes.verifications + excluded.verifications";

/// Every owner table, joined on the owner `o` for its name.
const OWNER_NAMES: &str = "
    LEFT JOIN agents ag ON ag.id = o.id
    LEFT JOIN api_keys ak ON ak.id = o.id
    LEFT JOIN machine_identities mi ON mi.id = o.id
    LEFT JOIN agent_api_keys ax ON ax.id = o.id
    LEFT JOIN programmatic_keys pk ON pk.id = o.id
    LEFT JOIN project_agent_keys pa ON pa.id = o.id";

/// The name of the owner `o`, from [`OWNER_NAMES`]; Ops Manager's keys have descriptions.
const OWNER_NAME: &str =
    "COALESCE(ag.name, ak.name, mi.name, ax.name, pk.description, pa.description, '')";

pub const SELECT_OWNER_USAGE: &str = "
    SELECT u.hour AS start, CAST(SUM(u.uses) AS BIGINT) AS count
    FROM secret_usage u
    JOIN secrets s ON s.id = u.secret_id
    JOIN owners o ON o.id = s.owner_id
    WHERE s.owner_id = $1 AND o.org_id = $2 AND u.hour >= $3 AND u.hour < $4
    GROUP BY u.hour";

pub const SELECT_OUTCOMES: &str = "
    SELECT bucket AS start, outcome, CAST(SUM(verifications) AS BIGINT) AS count
    FROM verification_outcomes
    WHERE span = $1 AND bucket >= $2 AND bucket < $3 AND ($4 IS NULL OR org_id = $4)
    GROUP BY bucket, outcome
    ORDER BY bucket, outcome";

/// Summed per owner first, named after the cut.
pub fn select_top_owners() -> String {
    format!(
        "SELECT t.owner_id, o.org_id, t.kind, {OWNER_NAME} AS name, t.uses
         FROM (SELECT s.owner_id, s.kind, CAST(SUM(u.uses) AS BIGINT) AS uses
               FROM secret_usage u
               JOIN secrets s ON s.id = u.secret_id
               JOIN owners w ON w.id = s.owner_id
               WHERE u.hour >= $1 AND u.hour < $2 AND ($3 IS NULL OR w.org_id = $3)
               GROUP BY s.owner_id, s.kind
               ORDER BY uses DESC, s.owner_id
               LIMIT $4) t
         JOIN owners o ON o.id = t.owner_id
         {OWNER_NAMES}
         ORDER BY t.uses DESC, t.owner_id"
    )
}

/// `$1` now, `$2` the end of "soon", `$3` the organization or `NULL`. A secret counts as in
/// grace when rotated away but not yet expired; revoked and expired ones count nowhere.
pub const SELECT_SECRET_COUNTS: &str = "
    SELECT o.org_id, s.kind,
      CAST(SUM(CASE WHEN s.rotated_at IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS active,
      CAST(SUM(CASE WHEN s.rotated_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS in_grace,
      CAST(SUM(CASE WHEN s.rotated_at IS NULL AND s.expires_at <= $2 THEN 1 ELSE 0 END)
           AS BIGINT) AS expiring_soon
    FROM secrets s
    JOIN owners o ON o.id = s.owner_id
    WHERE s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $1)
      AND ($3 IS NULL OR o.org_id = $3)
    GROUP BY o.org_id, s.kind
    ORDER BY o.org_id, s.kind";

pub fn select_expiring() -> String {
    format!(
        "SELECT s.id AS secret_id, s.owner_id, o.org_id, s.kind, {OWNER_NAME} AS name,
                s.expires_at
         FROM secrets s
         JOIN owners o ON o.id = s.owner_id
         {OWNER_NAMES}
         WHERE s.rotated_at IS NULL AND s.revoked_at IS NULL
           AND s.expires_at > $1 AND s.expires_at <= $2 AND ($3 IS NULL OR o.org_id = $3)
         ORDER BY s.expires_at, s.id
         LIMIT $4"
    )
}

pub const PURGE_OUTCOMES: &str = "DELETE FROM verification_outcomes
    WHERE (span = 60 AND bucket < $1) OR (span = 3600 AND bucket < $2)";

pub const PURGE_SECRET_HOURS: &str = "DELETE FROM secret_usage WHERE (secret_id, hour) IN
    (SELECT secret_id, hour FROM secret_usage WHERE hour < $1 LIMIT $2)";

/// The end of "expiring soon" as of `now`.
pub fn soon_after(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::days(EXPIRING_SOON_DAYS)
}

#[derive(sqlx::FromRow)]
pub struct BucketRow {
    pub start: DateTime<Utc>,
    pub count: i64,
}

impl TryFrom<BucketRow> for (DateTime<Utc>, u64) {
    type Error = Error;
    fn try_from(row: BucketRow) -> Result<(DateTime<Utc>, u64)> {
        Ok((row.start, read_count(row.count)?))
    }
}

#[derive(sqlx::FromRow)]
pub struct OutcomeBucketRow {
    pub start: DateTime<Utc>,
    pub outcome: String,
    pub count: i64,
}

impl TryFrom<OutcomeBucketRow> for OutcomeBucket {
    type Error = Error;
    fn try_from(row: OutcomeBucketRow) -> Result<OutcomeBucket> {
        Ok(OutcomeBucket {
            start: row.start,
            outcome: row.outcome,
            count: read_count(row.count)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct OwnerUsesRow {
    pub owner_id: Uuid,
    pub org_id: Uuid,
    pub kind: String,
    pub name: String,
    pub uses: i64,
}

impl TryFrom<OwnerUsesRow> for OwnerUses {
    type Error = Error;
    fn try_from(row: OwnerUsesRow) -> Result<OwnerUses> {
        Ok(OwnerUses {
            owner_id: row.owner_id,
            org_id: row.org_id,
            kind: read_kind(&row.kind)?,
            name: row.name,
            uses: read_count(row.uses)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct SecretCountRow {
    pub org_id: Uuid,
    pub kind: String,
    pub active: i64,
    pub in_grace: i64,
    pub expiring_soon: i64,
}

impl TryFrom<SecretCountRow> for SecretCount {
    type Error = Error;
    fn try_from(row: SecretCountRow) -> Result<SecretCount> {
        Ok(SecretCount {
            org_id: row.org_id,
            kind: read_kind(&row.kind)?,
            active: read_count(row.active)?,
            in_grace: read_count(row.in_grace)?,
            expiring_soon: read_count(row.expiring_soon)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct ExpiringRow {
    pub secret_id: Uuid,
    pub owner_id: Uuid,
    pub org_id: Uuid,
    pub kind: String,
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

impl TryFrom<ExpiringRow> for ExpiringSecret {
    type Error = Error;
    fn try_from(row: ExpiringRow) -> Result<ExpiringSecret> {
        Ok(ExpiringSecret {
            secret_id: row.secret_id,
            owner_id: row.owner_id,
            org_id: row.org_id,
            kind: read_kind(&row.kind)?,
            name: row.name,
            expires_at: row.expires_at,
        })
    }
}

/// Implements [`UsageStore`] for a backend whose `write_usage(&UsageBatch)` writes a flush in
/// its own way (one statement per row on SQLite, arrays on Postgres).
macro_rules! impl_usage_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::UsageStore for $store {
            async fn record_usage(
                &self,
                batch: &$crate::domain::usage::UsageBatch,
            ) -> $crate::storage::Result<()> {
                if batch.is_empty() {
                    return Ok(());
                }
                self.write_usage(batch).await
            }

            async fn owner_usage(
                &self,
                owner: $crate::domain::secret::OwnerRef,
                window: &$crate::domain::usage::Window,
            ) -> $crate::storage::Result<$crate::domain::usage::Usage> {
                let counts: $crate::storage::Result<Vec<(chrono::DateTime<chrono::Utc>, u64)>> =
                    $crate::storage::fetch_rows!(
                        all,
                        &mut *self.pool.acquire().await?,
                        $crate::storage::usage::BucketRow,
                        $crate::storage::usage::SELECT_OWNER_USAGE,
                        owner.id,
                        owner.org_id,
                        window.start,
                        window.end(),
                    );
                let counts = counts?;
                Ok($crate::domain::usage::Usage::of(*window, &counts))
            }

            async fn verification_outcomes(
                &self,
                org_id: Option<uuid::Uuid>,
                window: &$crate::domain::usage::Window,
            ) -> $crate::storage::Result<Vec<$crate::domain::usage::OutcomeBucket>> {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::usage::OutcomeBucketRow,
                    $crate::storage::usage::SELECT_OUTCOMES,
                    window.granularity.seconds() as i32,
                    window.start,
                    window.end(),
                    org_id,
                )
            }

            async fn top_owners(
                &self,
                org_id: Option<uuid::Uuid>,
                window: &$crate::domain::usage::Window,
                limit: u32,
            ) -> $crate::storage::Result<Vec<$crate::domain::usage::OwnerUses>> {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::usage::OwnerUsesRow,
                    $crate::storage::usage::select_top_owners(),
                    window.start,
                    window.end(),
                    org_id,
                    i64::from(limit),
                )
            }

            async fn secret_counts(
                &self,
                org_id: Option<uuid::Uuid>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::storage::Result<Vec<$crate::domain::usage::SecretCount>> {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::usage::SecretCountRow,
                    $crate::storage::usage::SELECT_SECRET_COUNTS,
                    now,
                    $crate::storage::usage::soon_after(now),
                    org_id,
                )
            }

            async fn expiring_secrets(
                &self,
                org_id: Option<uuid::Uuid>,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> $crate::storage::Result<Vec<$crate::domain::usage::ExpiringSecret>> {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::usage::ExpiringRow,
                    $crate::storage::usage::select_expiring(),
                    now,
                    $crate::storage::usage::soon_after(now),
                    org_id,
                    i64::from(limit),
                )
            }

            async fn purge_usage(
                &self,
                cutoffs: $crate::domain::usage::Cutoffs,
                batch: u32,
            ) -> $crate::storage::Result<u64> {
                sqlx::query($crate::storage::usage::PURGE_OUTCOMES)
                    .bind(cutoffs.minutes)
                    .bind(cutoffs.hours)
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                let done = sqlx::query($crate::storage::usage::PURGE_SECRET_HOURS)
                    .bind(cutoffs.hours)
                    .bind(i64::from(batch))
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(super) use impl_usage_store;
