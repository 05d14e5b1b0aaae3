//! Organization policy: the longest lifetime an organization allows each kind of secret. New
//! secrets without an expiry get the longest allowed; a requested expiry beyond it is refused;
//! a rotated secret never outlives it. Kinds the policy does not name are unbounded. It also
//! says what is done with the organization's secrets reported leaked.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::domain::leak::LeakResponse;
use crate::error::Error;
use crate::secrets::SecretKind;

/// The longest lifetime a policy may set: ten years.
pub const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrgPolicy {
    pub max_lifetime_seconds: BTreeMap<SecretKind, u64>,
    /// What is done with the organization's secrets reported leaked.
    pub leak_response: LeakResponse,
}

impl OrgPolicy {
    /// A policy from kind names (as `POST /verify` names them) and lifetimes in seconds.
    pub fn parse(lifetimes: BTreeMap<String, u64>) -> Result<OrgPolicy, Error> {
        let mut policy = OrgPolicy::default();
        for (name, seconds) in lifetimes {
            let kind = SecretKind::from_db(&name)
                .filter(|kind| takes_expiry(*kind))
                .ok_or_else(|| {
                    Error::invalid(
                        "max_lifetime_seconds",
                        format!(
                            "the kinds whose secrets expire are {}",
                            expiring_kinds().join(", ")
                        ),
                    )
                })?;
            if !(1..=MAX_LIFETIME_SECONDS).contains(&seconds) {
                return Err(Error::invalid(
                    "max_lifetime_seconds",
                    format!("each lifetime must be between 1 and {MAX_LIFETIME_SECONDS} seconds"),
                ));
            }
            policy.max_lifetime_seconds.insert(kind, seconds);
        }
        Ok(policy)
    }

    /// The latest expiry a secret of `kind` made at `now` may have.
    pub fn latest_expiry(&self, kind: SecretKind, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let seconds = *self.max_lifetime_seconds.get(&kind)?;
        Some(now + Duration::seconds(seconds as i64))
    }

    /// The expiry of a new secret of `kind`: the requested one (already known to be in the
    /// future), refused when it is later than the policy allows; without one, the latest the
    /// policy allows.
    pub fn new_expiry(
        &self,
        kind: SecretKind,
        field: &'static str,
        requested: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let latest = self.latest_expiry(kind, now);
        match (requested, latest) {
            (Some(asked), Some(latest)) if asked > latest => Err(Error::invalid(
                field,
                format!(
                    "the organization's policy allows {} keys at most {} seconds",
                    kind.as_str(),
                    self.max_lifetime_seconds[&kind]
                ),
            )),
            (Some(asked), _) => Ok(Some(asked)),
            (None, latest) => Ok(latest),
        }
    }
}

/// Whether secrets of `kind` can expire: every kind but Agentex's webhook signing secrets,
/// which the sender, not keygate, presents.
pub fn takes_expiry(kind: SecretKind) -> bool {
    kind != SecretKind::AgentexSigningSecret
}

/// The names of the kinds whose secrets expire, as `POST /verify` names them.
pub fn expiring_kinds() -> Vec<&'static str> {
    SecretKind::ALL
        .into_iter()
        .filter(|kind| takes_expiry(*kind))
        .map(SecretKind::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(seconds: u64) -> OrgPolicy {
        OrgPolicy::parse(BTreeMap::from([("agent_key".to_owned(), seconds)])).unwrap()
    }

    #[test]
    fn a_new_secret_gets_the_longest_allowed_life_unless_it_asks_for_less() {
        let now = Utc::now();
        let day = policy(86_400);
        let tomorrow = now + Duration::days(1);
        assert_eq!(
            day.new_expiry(SecretKind::AgentKey, "expires_at", None, now)
                .unwrap(),
            Some(tomorrow)
        );
        let soon = now + Duration::hours(1);
        assert_eq!(
            day.new_expiry(SecretKind::AgentKey, "expires_at", Some(soon), now)
                .unwrap(),
            Some(soon)
        );
        assert!(
            day.new_expiry(
                SecretKind::AgentKey,
                "expires_at",
                Some(tomorrow + Duration::seconds(1)),
                now
            )
            .is_err()
        );
        assert_eq!(
            day.new_expiry(SecretKind::ApiKey, "expires_at", None, now)
                .unwrap(),
            None
        );
    }

    #[test]
    fn unknown_kinds_kinds_that_never_expire_and_silly_lifetimes_are_refused() {
        for (name, seconds) in [
            ("agent_keys", 60),
            ("agentex_signing_secret", 60),
            ("agent_key", 0),
            ("agent_key", MAX_LIFETIME_SECONDS + 1),
        ] {
            let asked = BTreeMap::from([(name.to_owned(), seconds)]);
            assert!(OrgPolicy::parse(asked).is_err(), "{name} {seconds}");
        }
    }
}
