//! The request body every rotation endpoint shares, and the rotation it asks for.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::error::Error;
use crate::secrets::{PlainSecret, SecretKind, future_expiry};
use crate::storage::{NewSecret, Predecessor, SecretMeta, Store};

/// The longest grace period a rotated-away secret may keep working: 30 days.
const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret keeps working, in seconds (at most 30 days). 0 or absent: it
    /// stops now.
    pub grace_period_seconds: Option<u64>,
    /// When the new secret stops working (in the future); never when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

impl RotateRequest {
    /// Replaces `current` with a newly minted secret of `kind` for the same owner, in one
    /// transaction; returns the new secret, to be shown once, and its stored form.
    pub async fn rotate(
        self,
        store: &dyn Store,
        kind: SecretKind,
        current: &SecretMeta,
    ) -> Result<(PlainSecret, NewSecret), Error> {
        let grace = self.grace_period_seconds.unwrap_or(0);
        if grace > MAX_GRACE_SECONDS {
            let message = format!("it must be at most {MAX_GRACE_SECONDS}");
            return Err(Error::invalid("grace_period_seconds", message));
        }
        let expires_at = future_expiry(self.expires_at)?;
        let old = Predecessor::ending(current, Duration::seconds(grace as i64));
        let plain = PlainSecret::mint(kind);
        let new = NewSecret::from_plain(kind, &plain, expires_at);
        store.rotate_secret(&old, &new).await?;
        Ok((plain, new))
    }
}
