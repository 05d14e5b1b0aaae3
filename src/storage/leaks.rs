//! Secrets reported leaked: each report acted on in one transaction that locks the
//! organization and then the secret's owner (the order every lifecycle operation takes), and
//! the organization's latest reports for the console.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use crate::domain::leak::{Leak, LeakAction, LeakOutcome, LeakedSecret};

#[async_trait]
pub trait LeakStore: Send + Sync + 'static {
    /// Acts on a reported secret: a working one of any organization stops working, or is
    /// only recorded, as its organization's policy says (see [`LeakAction`]); its report is
    /// kept and `secret.leaked` recorded. A secret reported before, or already ended, is left
    /// as it is.
    async fn report_leak(&self, leak: &Leak) -> Result<LeakOutcome>;
    /// The organization's latest `limit` reports, the newest first.
    async fn latest_leaks(&self, org_id: Uuid, limit: u32) -> Result<Vec<LeakedSecret>>;
}

/// Whose a secret is, by digest: read before the locks (neither ever changes).
pub const LEAKED_OWNER: &str = "
    SELECT s.owner_id, o.org_id FROM secrets s JOIN owners o ON o.id = s.owner_id
    WHERE s.hash = $1";

/// The secret's state, read under its owner's lock.
pub const LEAKED_STATE: &str = "
    SELECT id, kind, hint, slot, rotated_at, expires_at, revoked_at FROM secrets WHERE hash = $1";

pub const INSERT_LEAK: &str = "
    INSERT INTO leaked_secrets (secret_id, org_id, kind, hint, url, source, action, reported_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (secret_id) DO NOTHING";

/// The organization's leak policy (read under its lock).
pub const LEAK_RESPONSE: &str = "SELECT leak_response FROM orgs WHERE id = $1";

/// Revokes one secret; the first revocation time stands.
pub const REVOKE_SECRET: &str =
    "UPDATE secrets SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2";

pub const SELECT_LATEST: &str = "
    SELECT secret_id, kind, hint, url, source, action, reported_at FROM leaked_secrets
    WHERE org_id = $1 ORDER BY reported_at DESC, secret_id DESC LIMIT $2";

#[derive(sqlx::FromRow)]
pub struct LeakedState {
    pub id: Uuid,
    pub kind: String,
    pub hint: String,
    pub slot: String,
    pub rotated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub struct LeakedRow {
    pub secret_id: Uuid,
    pub kind: String,
    pub hint: String,
    pub url: Option<String>,
    pub source: Option<String>,
    pub action: String,
    pub reported_at: DateTime<Utc>,
}

impl TryFrom<LeakedRow> for LeakedSecret {
    type Error = crate::error::Error;
    fn try_from(row: LeakedRow) -> Result<LeakedSecret> {
        Ok(LeakedSecret {
            action: LeakAction::from_db(&row.action)
                .ok_or_else(|| super::rows::corrupt("leak action", &row.action))?,
            secret_id: row.secret_id,
            kind: row.kind,
            hint: row.hint,
            url: row.url,
            source: row.source,
            reported_at: row.reported_at,
        })
    }
}

macro_rules! impl_leak_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::LeakStore for $store {
            async fn report_leak(
                &self,
                leak: &$crate::domain::leak::Leak,
            ) -> $crate::storage::Result<$crate::domain::leak::LeakOutcome> {
                use $crate::domain::leak::{LeakAction, LeakOutcome, LeakResponse};
                use $crate::domain::secret::{OwnerRef, SecretState, Standing};
                use $crate::storage::leaks;
                write_transaction!(self, |tx| {
                    let owner: Option<(uuid::Uuid, uuid::Uuid)> =
                        sqlx::query_as(leaks::LEAKED_OWNER)
                            .bind(leak.hash.as_bytes())
                            .fetch_optional(&mut **tx)
                            .await?;
                    let Some((id, org_id)) = owner else {
                        return Ok(LeakOutcome::Unknown);
                    };
                    let owner = OwnerRef { org_id, id };
                    if !lock_org(tx, org_id).await? || !lock_owner(tx, owner).await? {
                        return Ok(LeakOutcome::Unknown);
                    }
                    let state: Option<leaks::LeakedState> = sqlx::query_as(leaks::LEAKED_STATE)
                        .bind(leak.hash.as_bytes())
                        .fetch_optional(&mut **tx)
                        .await?;
                    let Some(state) = state else {
                        return Ok(LeakOutcome::Unknown);
                    };
                    let kind =
                        $crate::secrets::SecretKind::from_db(&state.kind).ok_or_else(|| {
                            $crate::storage::rows::corrupt("secret kind", &state.kind)
                        })?;
                    let at = $crate::domain::secret::now();
                    let standing = SecretState {
                        id: state.id,
                        kind,
                        hash: leak.hash.clone(),
                        expires_at: state.expires_at,
                        revoked_at: state.revoked_at,
                    }
                    .standing(at);
                    if standing != Standing::Active {
                        return Ok(LeakOutcome::Ended);
                    }
                    let response: String = sqlx::query_scalar(leaks::LEAK_RESPONSE)
                        .bind(org_id)
                        .fetch_one(&mut **tx)
                        .await?;
                    let response = LeakResponse::from_db(&response).ok_or_else(|| {
                        $crate::storage::rows::corrupt("leak response", &response)
                    })?;
                    let action = LeakAction::for_leak(response, kind, state.rotated_at.is_none());
                    let reported = sqlx::query(leaks::INSERT_LEAK)
                        .bind(state.id)
                        .bind(org_id)
                        .bind(kind.as_str())
                        .bind(&state.hint)
                        .bind(leak.url.as_deref())
                        .bind(leak.source.as_deref())
                        .bind(action.as_str())
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    if reported.rows_affected() == 0 {
                        return Ok(LeakOutcome::AlreadyReported);
                    }
                    if action == LeakAction::Rotated {
                        sqlx::query($crate::storage::secrets::END_SECRET)
                            .bind(at)
                            .bind(state.expires_at)
                            .bind(at)
                            .bind(state.id)
                            .execute(&mut **tx)
                            .await?;
                        let mut successor = leak.successor.clone();
                        successor.expires_at = state.expires_at;
                        insert_secret(tx, &successor, id, &state.slot).await?;
                    } else if action == LeakAction::Revoked {
                        sqlx::query(leaks::REVOKE_SECRET)
                            .bind(at)
                            .bind(state.id)
                            .execute(&mut **tx)
                            .await?;
                    }
                    let change = leak.change(org_id, state.id);
                    record_change(tx, &change).await?;
                    Ok(LeakOutcome::Acted {
                        kind,
                        action,
                        change,
                    })
                })
            }

            async fn latest_leaks(
                &self,
                org_id: uuid::Uuid,
                limit: u32,
            ) -> $crate::storage::Result<Vec<$crate::domain::leak::LeakedSecret>> {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::leaks::LeakedRow,
                    $crate::storage::leaks::SELECT_LATEST,
                    org_id,
                    i64::from(limit),
                )
            }
        }
    };
}

pub(super) use impl_leak_store;
