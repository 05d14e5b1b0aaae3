//! The secrets every owner holds: rotation and revocation, whatever the owner's kind.
//!
//! [`impl_secret_store!`] also gives each backend the helpers the other aggregates share:
//! `insert_owner`, `insert_secret`, `lock_owner` (the first statement of every lifecycle
//! transaction), `revoke_owner_secrets` and `delete_owner`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Result;
use crate::domain::audit::Change;
use crate::domain::secret::{Rotation, SealedSecret};
use crate::secrets::server_key::Sealed;

#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Replaces the owner's current secret as `rotation` says, in one transaction that locks
    /// the owner first; returns the successor's expiry. `NotFound` when the owner is not in the
    /// organization; `Conflict` when its secret is revoked or another rotation won.
    async fn rotate_secret(
        &self,
        rotation: &Rotation,
        change: &Change,
    ) -> Result<Option<DateTime<Utc>>>;

    /// The owner's secrets kept sealed that have not ended: the current one first, then one
    /// rotated away whose grace period has not passed. Revoked ones are left out; an expired
    /// current one is not, so that the caller can say why it failed.
    async fn live_sealed_secrets(&self, owner_id: Uuid) -> Result<Vec<SealedSecret>>;
}

/// `$1`'s sealed secrets that have not ended by `$2`, the current one first.
pub fn select_live_sealed() -> String {
    format!(
        "SELECT {}, x.sealed_key_id, x.sealed
         FROM secrets s
         JOIN sealed_secrets x ON x.secret_id = s.id
         WHERE s.owner_id = $1 AND s.revoked_at IS NULL
           AND (s.rotated_at IS NULL OR s.expires_at > $2)
         ORDER BY s.rotated_at IS NOT NULL, s.created_at DESC",
        super::rows::SECRET_COLUMNS
    )
}

#[derive(sqlx::FromRow)]
pub struct SealedRow {
    #[sqlx(flatten)]
    pub secret: super::rows::SecretColumns,
    pub sealed_key_id: String,
    pub sealed: Vec<u8>,
}

impl TryFrom<SealedRow> for SealedSecret {
    type Error = crate::error::Error;
    fn try_from(row: SealedRow) -> Result<SealedSecret> {
        Ok(SealedSecret {
            secret: row.secret.try_into()?,
            sealed: Sealed {
                key_id: row.sealed_key_id,
                bytes: row.sealed,
            },
        })
    }
}

pub const INSERT_OWNER: &str = "INSERT INTO owners (id, org_id) VALUES ($1, $2)";

pub const INSERT_SECRET: &str = "
    INSERT INTO secrets (id, kind, hash, hint, owner_id, slot, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub const INSERT_SEALED: &str =
    "INSERT INTO sealed_secrets (secret_id, sealed_key_id, sealed) VALUES ($1, $2, $3)";

/// Locks the owner row (with the backend's row-lock suffix appended).
pub const LOCK_OWNER: &str = "SELECT id FROM owners WHERE id = $1 AND org_id = $2";

pub const CURRENT_SECRET: &str = "
    SELECT id, expires_at, revoked_at FROM secrets
    WHERE owner_id = $1 AND slot = $2 AND rotated_at IS NULL";

/// Ends the current secret. `revoked_at` keeps an earlier revocation: a rotation never undoes one.
pub const END_SECRET: &str = "
    UPDATE secrets SET rotated_at = $1, expires_at = $2, revoked_at = COALESCE(revoked_at, $3)
    WHERE id = $4";

/// Revokes every secret of an owner, grace-period predecessors included; the first revocation
/// time stands.
pub const REVOKE_OWNER_SECRETS: &str =
    "UPDATE secrets SET revoked_at = COALESCE(revoked_at, $1) WHERE owner_id = $2";

/// Deletes the owner; its kind's row and all its secrets go with it by cascade.
pub const DELETE_OWNER: &str = "DELETE FROM owners WHERE id = $1 AND org_id = $2";

macro_rules! impl_secret_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::SecretStore for $store {
            async fn rotate_secret(
                &self,
                rotation: &$crate::domain::secret::Rotation,
                change: &$crate::domain::audit::Change,
            ) -> $crate::storage::Result<Option<chrono::DateTime<chrono::Utc>>> {
                use $crate::error::Error;
                write_transaction!(self, |tx| {
                    if !lock_owner(tx, rotation.owner).await? {
                        return Err(Error::NotFound("owner"));
                    }
                    let current: Option<(
                        uuid::Uuid,
                        Option<chrono::DateTime<chrono::Utc>>,
                        Option<chrono::DateTime<chrono::Utc>>,
                    )> = sqlx::query_as($crate::storage::secrets::CURRENT_SECRET)
                        .bind(rotation.owner.id)
                        .bind(&rotation.slot)
                        .fetch_optional(&mut **tx)
                        .await?;
                    let Some((current_id, expires_at, revoked_at)) = current else {
                        return Err(Error::NotFound("owner"));
                    };
                    if revoked_at.is_some() {
                        return Err(Error::Conflict("the key is revoked and cannot be rotated"));
                    }
                    if current_id != rotation.current {
                        return Err(Error::Conflict(
                            "a concurrent rotation replaced this key first",
                        ));
                    }
                    let at = $crate::domain::secret::now();
                    let successor_expiry = rotation.successor_expiry(expires_at, at)?;
                    let (old_expiry, old_revoked) = rotation.predecessor_end(expires_at, at);
                    sqlx::query($crate::storage::secrets::END_SECRET)
                        .bind(at)
                        .bind(old_expiry)
                        .bind(old_revoked)
                        .bind(current_id)
                        .execute(&mut **tx)
                        .await?;
                    let mut successor = rotation.successor.clone();
                    successor.expires_at = successor_expiry;
                    insert_secret(tx, &successor, rotation.owner.id, &rotation.slot).await?;
                    record_change(tx, change).await?;
                    Ok(successor_expiry)
                })
            }

            async fn live_sealed_secrets(
                &self,
                owner_id: uuid::Uuid,
            ) -> $crate::storage::Result<Vec<$crate::domain::secret::SealedSecret>> {
                $crate::storage::fetch_rows!(
                    all,
                    &mut *self.pool.acquire().await?,
                    $crate::storage::secrets::SealedRow,
                    $crate::storage::secrets::select_live_sealed(),
                    owner_id,
                    $crate::domain::secret::now()
                )
            }
        }

        async fn insert_owner(
            tx: &mut Tx,
            owner: $crate::domain::secret::OwnerRef,
        ) -> $crate::storage::Result<()> {
            sqlx::query($crate::storage::secrets::INSERT_OWNER)
                .bind(owner.id)
                .bind(owner.org_id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        async fn insert_secret(
            tx: &mut Tx,
            secret: &$crate::domain::secret::NewSecret,
            owner_id: uuid::Uuid,
            slot: &str,
        ) -> $crate::storage::Result<()> {
            sqlx::query($crate::storage::secrets::INSERT_SECRET)
                .bind(secret.id)
                .bind(secret.kind.as_str())
                .bind(secret.hash.as_bytes())
                .bind(&secret.hint)
                .bind(owner_id)
                .bind(slot)
                .bind(secret.created_at)
                .bind(secret.expires_at)
                .execute(&mut **tx)
                .await?;
            if let Some(sealed) = &secret.sealed {
                sqlx::query($crate::storage::secrets::INSERT_SEALED)
                    .bind(secret.id)
                    .bind(&sealed.key_id)
                    .bind(sealed.bytes.as_slice())
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Locks the owner row for the rest of the transaction; `false` when the organization
        /// has no such owner. Every lifecycle operation starts here, so concurrent ones on one
        /// owner queue up instead of deadlocking.
        async fn lock_owner(
            tx: &mut Tx,
            owner: $crate::domain::secret::OwnerRef,
        ) -> $crate::storage::Result<bool> {
            let sql = format!("{}{ROW_LOCK}", $crate::storage::secrets::LOCK_OWNER);
            let found: Option<(uuid::Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(owner.id)
                .bind(owner.org_id)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(found.is_some())
        }

        async fn revoke_owner_secrets(
            tx: &mut Tx,
            owner: $crate::domain::secret::OwnerRef,
            at: chrono::DateTime<chrono::Utc>,
        ) -> $crate::storage::Result<()> {
            sqlx::query($crate::storage::secrets::REVOKE_OWNER_SECRETS)
                .bind(at)
                .bind(owner.id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Locks and deletes the owner; `false` when the organization has no such owner.
        async fn delete_owner(
            tx: &mut Tx,
            owner: $crate::domain::secret::OwnerRef,
        ) -> $crate::storage::Result<bool> {
            if !lock_owner(tx, owner).await? {
                return Ok(false);
            }
            sqlx::query($crate::storage::secrets::DELETE_OWNER)
                .bind(owner.id)
                .bind(owner.org_id)
                .execute(&mut **tx)
                .await?;
            Ok(true)
        }
    };
}

pub(super) use impl_secret_store;
