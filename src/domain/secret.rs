//! Secrets as keygate keeps them: a digest, a display hint and a lifecycle, never the value.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::Uuid;

use crate::error::Error;
use crate::secrets::server_key::Sealed;
use crate::secrets::{PlainSecret, SecretHash, SecretKind};

/// The current time as both databases keep it (Postgres stores microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Refuses a requested expiry that is already past.
pub fn future_expiry(expires_at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, Error> {
    future_expiry_in("expires_at", expires_at)
}

/// [`future_expiry`] for a family that names the field its own way (Ops Manager: `expiresAt`).
pub fn future_expiry_in(
    field: &'static str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, Error> {
    match expires_at {
        Some(at) if at <= now() => Err(Error::invalid(field, "it must be in the future")),
        other => Ok(other),
    }
}

/// A secret about to be stored: its digest and hint, never its value.
#[derive(Clone, Debug)]
pub struct NewSecret {
    pub id: Uuid,
    pub kind: SecretKind,
    pub hash: SecretHash,
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// What checking it needs beyond a digest, sealed under the server key: a key pair's
    /// Digest HA1 values. Stored beside this secret and gone with it.
    pub sealed: Option<Sealed>,
}

impl NewSecret {
    /// The stored form of a freshly minted (or operator-chosen) secret.
    pub fn from_plain(
        kind: SecretKind,
        plain: &PlainSecret,
        expires_at: Option<DateTime<Utc>>,
    ) -> NewSecret {
        NewSecret {
            id: Uuid::now_v7(),
            kind,
            hash: plain.hash(),
            hint: plain.hint(),
            created_at: now(),
            expires_at,
            sealed: None,
        }
    }
}

/// What may be shown of a stored secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMeta {
    pub id: Uuid,
    pub hint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A stored secret found by its digest: what verification checks.
#[derive(Clone, Debug)]
pub struct SecretState {
    pub id: Uuid,
    pub kind: SecretKind,
    pub hash: SecretHash,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A secret that may still work with the material checking it needs, sealed under the server
/// key: a key pair's HA1 values, a webhook signing secret.
#[derive(Clone, Debug)]
pub struct SealedSecret {
    pub secret: SecretState,
    pub sealed: Sealed,
}

/// Where a secret stands at a moment of its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Active,
    Revoked,
    Expired,
}

impl SecretState {
    /// Revocation is told before expiry: it is the stronger, deliberate end.
    pub fn standing(&self, at: DateTime<Utc>) -> Standing {
        if self.revoked_at.is_some_and(|revoked| revoked <= at) {
            Standing::Revoked
        } else if self.expires_at.is_some_and(|expires| expires <= at) {
            Standing::Expired
        } else {
            Standing::Active
        }
    }
}

/// Which secret owner a lifecycle operation acts on: the owner row is what it locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    pub org_id: Uuid,
    pub id: Uuid,
}

/// A rotation asked for: the owner's current secret (as the caller saw it) is replaced by
/// `successor`; the old one keeps working for `grace`, never past its own expiry.
#[derive(Clone, Debug)]
pub struct Rotation {
    pub owner: OwnerRef,
    /// Which of the owner's credentials: `''` for owners that hold one.
    pub slot: String,
    /// The secret the caller saw as current; another one being current means a concurrent
    /// rotation won.
    pub current: Uuid,
    pub grace: Duration,
    /// `expires_at: None` means the successor inherits the current secret's expiry.
    pub successor: NewSecret,
    /// The latest expiry the organization's policy allows the successor; none without one.
    pub latest_expiry: Option<DateTime<Utc>>,
}

impl Rotation {
    /// The end the current secret gets: (expires_at, revoked_at) to write, from the values
    /// read under the owner's lock.
    pub fn predecessor_end(
        &self,
        current_expires_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        if self.grace.is_zero() {
            (current_expires_at, Some(at))
        } else {
            let grace_end = at + self.grace;
            (
                Some(current_expires_at.map_or(grace_end, |expires| expires.min(grace_end))),
                None,
            )
        }
    }

    /// The successor's expiry: the one asked for, else the current secret's, which must not
    /// have passed already.
    pub fn successor_expiry(
        &self,
        current_expires_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let expiry = match (self.successor.expires_at, current_expires_at) {
            (Some(asked), _) => Some(asked),
            (None, Some(inherited)) if inherited <= at => {
                return Err(Error::invalid(
                    "expires_at",
                    "the key has expired; give the new key an expiry in the future",
                ));
            }
            (None, inherited) => inherited,
        };
        // An inherited expiry (or none) never outlives what the policy allows.
        Ok(match (expiry, self.latest_expiry) {
            (Some(expiry), Some(latest)) => Some(expiry.min(latest)),
            (expiry, latest) => expiry.or(latest),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(grace_secs: i64, asked: Option<DateTime<Utc>>) -> Rotation {
        let plain = PlainSecret::mint(SecretKind::AgentKey);
        Rotation {
            owner: OwnerRef {
                org_id: Uuid::nil(),
                id: Uuid::nil(),
            },
            slot: String::new(),
            current: Uuid::nil(),
            grace: Duration::seconds(grace_secs),
            successor: NewSecret::from_plain(SecretKind::AgentKey, &plain, asked),
            latest_expiry: None,
        }
    }

    #[test]
    fn the_successor_inherits_the_expiry_unless_a_new_one_is_given() {
        let at = now();
        let old_expiry = Some(at + Duration::hours(1));
        assert_eq!(
            rotation(0, None).successor_expiry(old_expiry, at).unwrap(),
            old_expiry
        );
        let asked = Some(at + Duration::days(2));
        assert_eq!(
            rotation(0, asked).successor_expiry(old_expiry, at).unwrap(),
            asked
        );
        assert_eq!(rotation(0, None).successor_expiry(None, at).unwrap(), None);
        assert!(rotation(0, None).successor_expiry(Some(at), at).is_err());
    }

    #[test]
    fn a_policy_caps_an_inherited_expiry_and_gives_one_to_a_key_without() {
        let at = now();
        let latest = Some(at + Duration::days(1));
        let capped = Rotation {
            latest_expiry: latest,
            ..rotation(0, None)
        };
        assert_eq!(capped.successor_expiry(None, at).unwrap(), latest);
        assert_eq!(
            capped
                .successor_expiry(Some(at + Duration::days(9)), at)
                .unwrap(),
            latest
        );
        let sooner = Some(at + Duration::hours(1));
        assert_eq!(capped.successor_expiry(sooner, at).unwrap(), sooner);
    }

    #[test]
    fn a_grace_period_never_outlives_the_old_expiry() {
        let at = now();
        let soon = Some(at + Duration::minutes(5));
        assert_eq!(rotation(3600, None).predecessor_end(soon, at), (soon, None));
        let grace_end = Some(at + Duration::seconds(60));
        assert_eq!(
            rotation(60, None).predecessor_end(None, at),
            (grace_end, None)
        );
        assert_eq!(
            rotation(0, None).predecessor_end(soon, at),
            (soon, Some(at))
        );
    }
}
