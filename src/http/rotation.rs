//! The request body every rotation endpoint shares, and the rotation it asks for.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::idempotency::Answer;
use crate::domain::audit::Change;
use crate::domain::secret::{NewSecret, OwnerRef, Rotation, future_expiry, now};
use crate::error::Error;
use crate::secrets::{PlainSecret, SecretKind};

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
pub struct Rotated<'a> {
    pub plain: &'a PlainSecret,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl RotateRequest {
    /// Replaces the owner's current secret as `rotating` says with a newly minted one, in one
    /// transaction that locks the owner first and records `change`; answers `status` with
    /// `shown`'s body (an idempotent request's answer is stored by that transaction).
    pub async fn rotate<R: Serialize>(
        self,
        state: &AppState,
        rotating: Rotating,
        change: &Change,
        status: StatusCode,
        shown: impl Fn(&Rotated) -> Result<R, Error> + Send + Sync + 'static,
    ) -> Result<Response, Error> {
        let kind = rotating.kind;
        let stored =
            |plain: &PlainSecret, expires_at| NewSecret::from_plain(kind, plain, expires_at);
        self.rotate_to(state, rotating, change, stored, status, shown)
            .await
    }

    /// [`Self::rotate`] for a kind whose stored form is more than a digest: `stored` makes it
    /// from the newly minted secret and the expiry asked for.
    pub async fn rotate_to<R: Serialize>(
        self,
        state: &AppState,
        rotating: Rotating,
        change: &Change,
        stored: impl FnOnce(&PlainSecret, Option<DateTime<Utc>>) -> NewSecret,
        status: StatusCode,
        shown: impl Fn(&Rotated) -> Result<R, Error> + Send + Sync + 'static,
    ) -> Result<Response, Error> {
        let Rotating {
            kind,
            owner,
            slot,
            current,
        } = rotating;
        let grace = self.grace_period_seconds.unwrap_or(0);
        if grace > MAX_GRACE_SECONDS {
            let message = format!("it must be at most {MAX_GRACE_SECONDS}");
            return Err(Error::invalid("grace_period_seconds", message));
        }
        let policy = state.store.org_policy(owner.org_id).await?;
        let at = now();
        let asked = match future_expiry(self.expires_at)? {
            Some(asked) => policy.new_expiry(kind, "expires_at", Some(asked), at)?,
            None => None,
        };
        let plain = Arc::new(PlainSecret::mint(kind));
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
        // The successor's expiry is settled by the transaction (the old one's may carry over).
        let answer = Answer::json(state, status, move |expires_at: &Option<DateTime<Utc>>| {
            shown(&Rotated {
                plain: &plain,
                created_at,
                expires_at: *expires_at,
            })
        });
        let expires_at = state.store.rotate_secret(&rotation, change).await?;
        answer.respond(&expires_at)
    }
}

/// Which secret a rotation replaces: `current`, of `kind`, in `slot` of `owner` (`""` for
/// owners that hold one secret).
pub struct Rotating {
    pub kind: SecretKind,
    pub owner: OwnerRef,
    pub slot: String,
    pub current: Uuid,
}

impl Rotating {
    /// The current secret of an owner that holds one.
    pub fn only(kind: SecretKind, owner: OwnerRef, current: Uuid) -> Rotating {
        Rotating {
            kind,
            owner,
            slot: String::new(),
            current,
        }
    }
}
