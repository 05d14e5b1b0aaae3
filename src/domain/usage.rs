//! Usage: how often each secret was used, per hour, and how `POST /verify` answered, per minute
//! and per hour. Verification counts in memory and writes in batches; this module holds what
//! those batches and the reads of them are, the windows they are read over, and how long they
//! are kept.

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::query_integer;
use crate::error::Error;
use crate::secrets::SecretKind;

/// How long hourly counts (per secret, and of verification outcomes) are kept.
pub const RETENTION_DAYS: i64 = 30;
/// How long per-minute counts of verification outcomes are kept: enough for the last hour's
/// chart, whatever minute it is drawn at.
pub const MINUTE_RETENTION_HOURS: i64 = 2;
/// A secret expiring within this many days is "expiring soon".
pub const EXPIRING_SOON_DAYS: i64 = 7;

/// The hours a key's usage is read over when the client does not say.
pub const DEFAULT_HOURS: u32 = 24;
/// The most hours a key's usage can be read over: all that is kept.
pub const MAX_HOURS: u32 = (RETENTION_DAYS * 24) as u32;

/// The width of a bucket of counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
}

impl Granularity {
    /// The bucket's width in seconds, as stored (`span`).
    pub const fn seconds(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3600,
        }
    }

    /// The start of the bucket that holds `at`.
    pub fn start_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.at(at.timestamp().div_euclid(self.seconds()))
    }

    /// The start of the bucket numbered `index` since the epoch.
    fn at(self, index: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(index * self.seconds(), 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Consecutive buckets of one granularity: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub granularity: Granularity,
    pub start: DateTime<Utc>,
    pub buckets: u32,
}

impl Window {
    /// The last `buckets` buckets, the one holding `now` (still filling) the last of them.
    pub fn last(granularity: Granularity, buckets: u32, now: DateTime<Utc>) -> Window {
        let before = granularity.seconds() * (i64::from(buckets) - 1);
        Window {
            granularity,
            start: granularity.start_of(now) - Duration::seconds(before),
            buckets,
        }
    }

    /// The hours a key's usage is read over: `?hours=` (1 to [`MAX_HOURS`], default
    /// [`DEFAULT_HOURS`]) up to and including the current hour.
    pub fn hours(hours: Option<String>, now: DateTime<Utc>) -> Result<Window, Error> {
        let hours = query_integer("hours", hours, DEFAULT_HOURS.into(), 1..=MAX_HOURS.into())?;
        Ok(Window::last(
            Granularity::Hour,
            u32::try_from(hours).unwrap_or(MAX_HOURS),
            now,
        ))
    }

    /// Where the window ends: the start of the bucket after its last.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::seconds(self.granularity.seconds() * i64::from(self.buckets))
    }

    /// The start of every bucket of the window, in order.
    pub fn starts(&self) -> impl Iterator<Item = DateTime<Utc>> + use<> {
        let (granularity, first) = (self.granularity, self.first());
        (0..i64::from(self.buckets)).map(move |offset| granularity.at(first + offset))
    }

    /// Which bucket of the window holds `at`, if any.
    pub fn index_of(&self, at: DateTime<Utc>) -> Option<usize> {
        let offset = at.timestamp().div_euclid(self.granularity.seconds()) - self.first();
        usize::try_from(offset)
            .ok()
            .filter(|&i| i < self.buckets as usize)
    }

    /// The number of the window's first bucket since the epoch.
    fn first(&self) -> i64 {
        self.start
            .timestamp()
            .div_euclid(self.granularity.seconds())
    }

    /// Every bucket of the window in order, with its count in `counts` (bucket start, count),
    /// zero where it has none, so that a chart has a point for each.
    pub fn fill(&self, counts: &[(DateTime<Utc>, u64)]) -> Vec<(DateTime<Utc>, u64)> {
        let mut filled: Vec<(DateTime<Utc>, u64)> = self.starts().map(|start| (start, 0)).collect();
        for (start, count) in counts {
            if let Some(i) = self.index_of(*start) {
                filled[i].1 += count;
            }
        }
        filled
    }
}

/// A key's uses over a window, one count per hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub window: Window,
    pub total: u64,
    /// (hour start, uses), every hour of the window.
    pub hours: Vec<(DateTime<Utc>, u64)>,
}

impl Usage {
    /// The usage of `window` from the hours that have counts.
    pub fn of(window: Window, counts: &[(DateTime<Utc>, u64)]) -> Usage {
        let hours = window.fill(counts);
        Usage {
            window,
            total: hours.iter().map(|(_, uses)| uses).sum(),
            hours,
        }
    }
}

/// What one flush writes, in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// The latest use of each secret used since the last flush (`last_used_at`).
    pub last_used: Vec<(Uuid, DateTime<Utc>)>,
    /// Uses per secret and hour, added to what is stored.
    pub hourly: Vec<SecretHour>,
    /// Verification answers per minute, added to what is stored for their minute and hour.
    pub outcomes: Vec<OutcomeCount>,
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.last_used.is_empty() && self.hourly.is_empty() && self.outcomes.is_empty()
    }
}

/// Uses of one secret in one hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretHour {
    pub secret_id: Uuid,
    pub hour: DateTime<Utc>,
    pub uses: u64,
}

/// Verifications asked by one organization in one minute with one kind and outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeCount {
    /// The caller's organization: whose gateway asked.
    pub org_id: Uuid,
    pub minute: DateTime<Utc>,
    /// The kind of secret presented (`SecretKind::as_str`), `unknown` when it named none.
    pub kind: &'static str,
    /// The answer's code (`valid`, `not_found`, …).
    pub outcome: &'static str,
    pub count: u64,
}

/// Verifications answered with one outcome in one bucket, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeBucket {
    pub start: DateTime<Utc>,
    pub outcome: String,
    pub count: u64,
}

/// An owner of secrets (an agent, an API key, a machine identity, …) and its uses in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerUses {
    pub owner_id: Uuid,
    pub org_id: Uuid,
    /// The kind of its secrets, which says what kind of owner it is.
    pub kind: SecretKind,
    /// What people know it by: the agent's, API key's, identity's or Agentex key's name, or
    /// an Ops Manager key's description.
    pub name: String,
    pub uses: u64,
}

/// How many secrets of one kind one organization has, by state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretCount {
    pub org_id: Uuid,
    pub kind: SecretKind,
    /// Current secrets that work: neither revoked nor expired.
    pub active: u64,
    /// Secrets rotated away that still work until their grace period ends.
    pub in_grace: u64,
    /// Active secrets (counted there too) that expire within [`EXPIRING_SOON_DAYS`].
    pub expiring_soon: u64,
}

/// A current, working secret that expires soon, and whose it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiringSecret {
    pub secret_id: Uuid,
    pub owner_id: Uuid,
    pub org_id: Uuid,
    pub kind: SecretKind,
    /// As [`OwnerUses::name`].
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

/// Before when counts are deleted, as of some moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoffs {
    /// Per-minute counts older than this go.
    pub minutes: DateTime<Utc>,
    /// Hourly counts older than this go.
    pub hours: DateTime<Utc>,
}

impl Cutoffs {
    pub fn at(now: DateTime<Utc>) -> Cutoffs {
        Cutoffs {
            minutes: now - Duration::hours(MINUTE_RETENTION_HOURS),
            hours: now - Duration::days(RETENTION_DAYS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_ends_with_the_bucket_holding_now() {
        let window = Window::last(Granularity::Hour, 24, at("2026-12-04T10:42:07Z"));
        assert_eq!(window.start, at("2026-12-03T11:00:00Z"));
        assert_eq!(window.end(), at("2026-12-04T11:00:00Z"));
        let minutes = Window::last(Granularity::Minute, 60, at("2026-12-04T10:42:07Z"));
        assert_eq!(minutes.start, at("2026-12-04T09:43:00Z"));
        assert_eq!(minutes.end(), at("2026-12-04T10:43:00Z"));
    }

    #[test]
    fn every_bucket_is_filled_and_counts_outside_are_ignored() {
        let window = Window::last(Granularity::Hour, 3, at("2026-12-04T10:42:07Z"));
        let usage = Usage::of(
            window,
            &[
                (at("2026-12-04T09:00:00Z"), 5),
                (at("2026-12-04T10:00:00Z"), 2),
                (at("2026-12-04T07:00:00Z"), 100),
            ],
        );
        assert_eq!(
            usage.hours,
            vec![
                (at("2026-12-04T08:00:00Z"), 0),
                (at("2026-12-04T09:00:00Z"), 5),
                (at("2026-12-04T10:00:00Z"), 2),
            ]
        );
        assert_eq!(usage.total, 7);
    }

    #[test]
    fn hours_are_one_to_the_retention_and_default_to_a_day() {
        let now = at("2026-12-04T10:42:07Z");
        assert_eq!(Window::hours(None, now).unwrap().buckets, DEFAULT_HOURS);
        assert_eq!(Window::hours(Some("720".into()), now).unwrap().buckets, 720);
        for bad in ["0", "721", "-1", "1.5", "day", ""] {
            assert!(Window::hours(Some(bad.into()), now).is_err(), "{bad:?}");
        }
    }
}
