//! The audit trail: changes, recorded by `record_change` inside the transaction of the store
//! method that makes them; refused credentials, written in batches; the paged listing; and the
//! purge of events past retention.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use crate::domain::audit::{AuditEvent, AuditQuery, Refusal};
use crate::domain::page::Page;

#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Records refused credentials, in one transaction.
    async fn record_refusals(&self, refusals: &[Refusal]) -> Result<()>;
    /// The events `query` selects, in (time, id) order, at most `query.limit`.
    async fn list_audit_events(
        &self,
        query: &AuditQuery,
    ) -> Result<Page<AuditEvent, (DateTime<Utc>, Uuid)>>;
    /// The latest `limit` refused credentials, the newest first. They belong to no
    /// organization: the operator's to see.
    async fn latest_refusals(&self, limit: u32) -> Result<Vec<AuditEvent>>;
    /// Deletes up to `batch` events older than `before`; how many went.
    async fn purge_audit_events(&self, before: DateTime<Utc>, batch: u32) -> Result<u64>;
}

pub const INSERT_EVENT: &str = "INSERT INTO audit_events
    (id, at, org_id, actor_kind, actor, action, resource_kind, resource_id, client, request_id, outcome)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Every filter is optional: a `NULL` bind leaves it out.
pub const SELECT_EVENTS: &str = "
    SELECT id, at, org_id, actor_kind, actor, action, resource_kind, resource_id, client,
           request_id, outcome
    FROM audit_events
    WHERE (org_id = $1 OR ($2 AND org_id IS NULL))
      AND ($3 IS NULL OR resource_kind = $3)
      AND ($4 IS NULL OR resource_id = $4)
      AND ($5 IS NULL OR actor = $5)
      AND ($6 IS NULL OR action = $6)
      AND ($7 IS NULL OR at >= $7)
      AND ($8 IS NULL OR at < $8)
      AND ($9 IS NULL OR at > $9 OR (at = $9 AND id > $10))
    ORDER BY at, id
    LIMIT $11";

pub const SELECT_LATEST_REFUSALS: &str = "
    SELECT id, at, org_id, actor_kind, actor, action, resource_kind, resource_id, client,
           request_id, outcome
    FROM audit_events
    WHERE org_id IS NULL AND action = $1
    ORDER BY at DESC, id DESC
    LIMIT $2";

pub const PURGE_EVENTS: &str = "DELETE FROM audit_events WHERE id IN
    (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)";

#[derive(sqlx::FromRow)]
pub struct AuditEventRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub org_id: Option<Uuid>,
    pub actor_kind: Option<String>,
    pub actor: Option<String>,
    pub action: String,
    pub resource_kind: Option<String>,
    pub resource_id: Option<String>,
    pub client: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
}

impl TryFrom<AuditEventRow> for AuditEvent {
    type Error = crate::error::Error;
    fn try_from(row: AuditEventRow) -> Result<AuditEvent> {
        Ok(AuditEvent {
            id: row.id,
            at: row.at,
            org_id: row.org_id,
            actor_kind: row.actor_kind,
            actor: row.actor,
            action: row.action,
            resource_kind: row.resource_kind,
            resource_id: row.resource_id,
            client: row.client,
            request_id: row.request_id,
            outcome: row.outcome,
        })
    }
}

macro_rules! impl_audit_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::AuditStore for $store {
            async fn record_refusals(
                &self,
                refusals: &[$crate::domain::audit::Refusal],
            ) -> $crate::storage::Result<()> {
                write_transaction!(self, cache_unaffected, |tx| {
                    let at = audit_clock(tx).await?;
                    for refusal in refusals {
                        sqlx::query($crate::storage::audit::INSERT_EVENT)
                            .bind(uuid::Uuid::now_v7())
                            .bind(at)
                            .bind(None::<uuid::Uuid>)
                            .bind(None::<String>)
                            .bind(None::<String>)
                            .bind($crate::domain::audit::AUTHENTICATION_REFUSED)
                            .bind(None::<String>)
                            .bind(None::<String>)
                            .bind(refusal.client.as_deref())
                            .bind(refusal.request_id.as_deref())
                            .bind("refused")
                            .execute(&mut **tx)
                            .await?;
                    }
                    Ok(())
                })
            }

            async fn list_audit_events(
                &self,
                query: &$crate::domain::audit::AuditQuery,
            ) -> $crate::storage::Result<
                $crate::domain::page::Page<
                    $crate::domain::audit::AuditEvent,
                    (chrono::DateTime<chrono::Utc>, uuid::Uuid),
                >,
            > {
                let (after_at, after_id) = query.page.after.unzip();
                let events: $crate::storage::Result<Vec<$crate::domain::audit::AuditEvent>> =
                    $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::audit::AuditEventRow,
                    $crate::storage::audit::SELECT_EVENTS,
                    query.org_id,
                    query.include_unscoped,
                    query.resource_kind.as_deref(),
                    query.resource_id.as_deref(),
                    query.actor.as_deref(),
                    query.action.as_deref(),
                    query.since,
                    query.until,
                    after_at,
                    after_id,
                    query.page.fetch(),
                );
                Ok(query.page.page(events?, |event| (event.at, event.id)))
            }

            async fn latest_refusals(
                &self,
                limit: u32,
            ) -> $crate::storage::Result<Vec<$crate::domain::audit::AuditEvent>> {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::audit::AuditEventRow,
                    $crate::storage::audit::SELECT_LATEST_REFUSALS,
                    $crate::domain::audit::AUTHENTICATION_REFUSED,
                    i64::from(limit),
                )
            }

            async fn purge_audit_events(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                batch: u32,
            ) -> $crate::storage::Result<u64> {
                let done = sqlx::query($crate::storage::audit::PURGE_EVENTS)
                    .bind(before)
                    .bind(i64::from(batch))
                    .execute(&mut *self.pool.acquire().await?)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        /// Records `change` in the transaction that makes it, so that it is kept exactly when
        /// the change is.
        async fn record_change(
            tx: &mut Tx,
            change: &$crate::domain::audit::Change,
        ) -> $crate::storage::Result<()> {
            let (actor_kind, actor) = change.context.actor.parts();
            let at = audit_clock(tx).await?;
            sqlx::query($crate::storage::audit::INSERT_EVENT)
                .bind(uuid::Uuid::now_v7())
                .bind(at)
                .bind(change.context.org_id)
                .bind(actor_kind)
                .bind(actor)
                .bind(change.action)
                .bind(change.resource_kind)
                .bind(&change.resource_id)
                .bind(change.context.client.map(|ip| ip.to_string()))
                .bind(change.context.request_id.as_deref())
                .bind("success")
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// The time that stamps the transaction's audit events, read as its last step (after
        /// the backend's `AUDIT_CLOCK` ordering, if any), so stamps follow commit order.
        async fn audit_clock(
            tx: &mut Tx,
        ) -> $crate::storage::Result<chrono::DateTime<chrono::Utc>> {
            Ok(match AUDIT_CLOCK {
                Some(sql) => sqlx::query_scalar(sql).fetch_one(&mut **tx).await?,
                None => chrono::Utc::now(),
            })
        }

        /// Records `change` when it was `made`, and answers `made`: for operations that may
        /// find nothing to change.
        async fn record_if_made(
            tx: &mut Tx,
            change: &$crate::domain::audit::Change,
            made: bool,
        ) -> $crate::storage::Result<bool> {
            if made {
                record_change(tx, change).await?;
            }
            Ok(made)
        }
    };
}

pub(super) use impl_audit_store;
