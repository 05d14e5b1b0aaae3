//! The request body every rotation endpoint shares, and the rotation it asks for.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::audit::Change;
use crate::domain::secret::{NewSecret, OwnerRef, Rotation, future_expiry, now};
use crate::error::Error;
use crate::secrets::{PlainSecret, SecretKind};
use crate::storage::Store;

/// The longest grace period a rotated-away secret may keep working: 30 days.
const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret keeps working, in seconds (at most 30 days, and never past the
    /// old secret's own expiry). 0 or absent: it stops now.
    pub grace_period_seconds: Option<u64>,
    /// When the new secret stops working (in the future, and within the organization's
    /// policy). Absent: the old secret's expiry carries over (none if it had none), capped by
    /// the policy's longest lifetime for the kind.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A freshly rotated secret, to be shown once, and when it expires.
pub struct Rotated {
    pub plain: PlainSecret,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl RotateRequest {
    /// Replaces the owner's `current` secret with a newly minted one of `kind`, in one
    /// transaction that locks the owner first and records `change`.
    pub async fn rotate(
        self,
        store: &dyn Store,
        kind: SecretKind,
        owner: OwnerRef,
        current: Uuid,
        change: &Change,
    ) -> Result<Rotated, Error> {
        self.rotate_slot(store, kind, owner, String::new(), current, change)
            .await
    }

    /// [`Self::rotate`] for the secret in `slot` of an owner that holds one per slot.
    pub async fn rotate_slot(
        self,
        store: &dyn Store,
        kind: SecretKind,
        owner: OwnerRef,
        slot: String,
        current: Uuid,
        change: &Change,
    ) -> Result<Rotated, Error> {
        let stored =
            |plain: &PlainSecret, expires_at| NewSecret::from_plain(kind, plain, expires_at);
        self.rotate_to(store, kind, owner, slot, current, change, stored)
            .await
    }

    /// [`Self::rotate`] for a kind whose stored form is more than a digest: `stored` makes it
    /// from the newly minted secret and the expiry asked for.
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_to(
        self,
        store: &dyn Store,
        kind: SecretKind,
        owner: OwnerRef,
        slot: String,
        current: Uuid,
        change: &Change,
        stored: impl FnOnce(&PlainSecret, Option<DateTime<Utc>>) -> NewSecret,
    ) -> Result<Rotated, Error> {
        let grace = self.grace_period_seconds.unwrap_or(0);
        if grace > MAX_GRACE_SECONDS {
            let message = format!("it must be at most {MAX_GRACE_SECONDS}");
            return Err(Error::invalid("grace_period_seconds", message));
        }
        let policy = store.org_policy(owner.org_id).await?;
        let at = now();
        let asked = match future_expiry(self.expires_at)? {
            Some(asked) => policy.new_expiry(kind, "expires_at", Some(asked), at)?,
            None => None,
        };
        let plain = PlainSecret::mint(kind);
        let successor = stored(&plain, asked);
        let created_at = successor.created_at;
        let rotation = Rotation {
            owner,
            slot,
            current,
            grace: Duration::seconds(grace as i64),
            successor,
            latest_expiry: policy.latest_expiry(kind, at),
        };
        let expires_at = store.rotate_secret(&rotation, change).await?;
        Ok(Rotated {
            plain,
            created_at,
            expires_at,
        })
    }
}
