//! Bounds failed attempts per client, so that neither `POST /verify` nor API-key authentication
//! can be used as an oracle for guessing secrets. A token bucket per client: each failure takes
//! a token, tokens come back at `per_minute / 60` per second, and an empty bucket answers 429.
//!
//! The module owns the buckets and their memory: at most a fixed number of clients are tracked,
//! in shards that each evict their least recently touched client in constant time.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::error::Error;

/// Clients tracked by [`FailureLimiter::new`]: some 10 to 20 megabytes at most, and far more
/// than the honest clients failing within the minutes it takes a bucket to refill.
const DEFAULT_CAPACITY: usize = 100_000;

/// Shards, so that concurrent requests from different clients rarely wait on one lock.
const MAX_SHARDS: usize = 16;

/// Below this many clients per shard, eviction within a shard would stray too far from the
/// least recently touched client overall, so small limiters use fewer shards.
const MIN_SHARD_CAPACITY: usize = 1024;

/// Marks the absence of a node in the recency list.
const NIL: usize = usize::MAX;

pub struct FailureLimiter {
    per_minute: f64,
    // Keyed per process so that nobody can choose addresses that all land in one shard.
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    refusals: AtomicU64,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl FailureLimiter {
    /// A limiter of `per_minute` failures per client, tracking up to 100,000 clients.
    pub fn new(per_minute: u32) -> FailureLimiter {
        FailureLimiter::with_capacity(per_minute, DEFAULT_CAPACITY)
    }

    /// A limiter of `per_minute` failures per client, tracking up to `capacity` clients (at
    /// least one); past that, the least recently touched client is forgotten.
    pub fn with_capacity(per_minute: u32, capacity: usize) -> FailureLimiter {
        let capacity = capacity.max(1);
        let count = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        // The remainder goes to the first shards, so the total is exactly `capacity`.
        let shards = (0..count)
            .map(|i| {
                Mutex::new(Shard::new(
                    capacity / count + usize::from(i < capacity % count),
                ))
            })
            .collect();
        FailureLimiter {
            per_minute: f64::from(per_minute.max(1)),
            hasher: RandomState::new(),
            shards,
            refusals: AtomicU64::new(0),
        }
    }

    /// Refuses a client whose failures have used up its budget.
    pub fn check(&self, client: &str) -> Result<(), Error> {
        self.check_at(client, Instant::now())
    }

    /// Counts one failed attempt against the client.
    pub fn failed(&self, client: &str) {
        self.failed_at(client, Instant::now());
    }

    /// How many requests were refused so far.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// How many clients are tracked now.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().expect("limiter lock").len())
            .sum()
    }

    fn check_at(&self, client: &str, now: Instant) -> Result<(), Error> {
        let mut shard = self.shard(client).lock().expect("limiter lock");
        // Checking touches the client too: a refused client that keeps knocking must not be
        // forgotten, with a full bucket, behind a flood of new addresses.
        let Some(bucket) = shard.get(client) else {
            return Ok(());
        };
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            return Ok(());
        }
        let seconds_to_one_token = (1.0 - bucket.tokens) * 60.0 / self.per_minute;
        self.refusals.fetch_add(1, Ordering::Relaxed);
        Err(Error::RateLimited {
            retry_after_secs: seconds_to_one_token.ceil().max(1.0) as u64,
        })
    }

    fn failed_at(&self, client: &str, now: Instant) {
        let mut shard = self.shard(client).lock().expect("limiter lock");
        let full = Bucket {
            tokens: self.per_minute,
            updated: now,
        };
        let bucket = shard.get_or_insert(client, full);
        self.refill(bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    fn shard(&self, client: &str) -> &Mutex<Shard> {
        let hash = self.hasher.hash_one(client);
        // The shard count is at most 16, so the cast and the modulo lose nothing that matters.
        &self.shards[(hash % self.shards.len() as u64) as usize]
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let refilled = now.duration_since(bucket.updated).as_secs_f64() * self.per_minute / 60.0;
        bucket.tokens = (bucket.tokens + refilled).min(self.per_minute);
        bucket.updated = now;
    }
}

/// Buckets of up to `capacity` clients, in a slab of nodes linked from the most to the least
/// recently touched, so that both touching and evicting are constant time.
struct Shard {
    capacity: usize,
    slots: HashMap<Arc<str>, usize>,
    nodes: Vec<Node>,
    newest: usize,
    oldest: usize,
}

struct Node {
    // Shared with the map's key, so that each client's name is stored once.
    client: Arc<str>,
    bucket: Bucket,
    newer: usize,
    older: usize,
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            capacity,
            slots: HashMap::new(),
            nodes: Vec::new(),
            newest: NIL,
            oldest: NIL,
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The client's bucket, if tracked, now the most recently touched.
    fn get(&mut self, client: &str) -> Option<&mut Bucket> {
        let slot = *self.slots.get(client)?;
        self.touch(slot);
        Some(&mut self.nodes[slot].bucket)
    }

    /// The client's bucket, tracked from now with `fresh` if it was not, evicting the least
    /// recently touched client when the shard is full.
    fn get_or_insert(&mut self, client: &str, fresh: Bucket) -> &mut Bucket {
        if let Some(&slot) = self.slots.get(client) {
            self.touch(slot);
            return &mut self.nodes[slot].bucket;
        }
        let client: Arc<str> = Arc::from(client);
        let slot = if self.nodes.len() < self.capacity {
            self.nodes.push(Node {
                client: Arc::clone(&client),
                bucket: fresh,
                newer: NIL,
                older: NIL,
            });
            self.nodes.len() - 1
        } else {
            // The capacity is at least one, so a full shard has an oldest node to reuse.
            let slot = self.oldest;
            self.unlink(slot);
            self.slots.remove(&self.nodes[slot].client);
            self.nodes[slot].client = Arc::clone(&client);
            self.nodes[slot].bucket = fresh;
            slot
        };
        self.slots.insert(client, slot);
        self.link_newest(slot);
        &mut self.nodes[slot].bucket
    }

    fn touch(&mut self, slot: usize) {
        if self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
    }

    fn unlink(&mut self, slot: usize) {
        let Node { newer, older, .. } = self.nodes[slot];
        match newer {
            NIL => self.newest = older,
            newer => self.nodes[newer].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            older => self.nodes[older].newer = newer,
        }
    }

    fn link_newest(&mut self, slot: usize) {
        self.nodes[slot].newer = NIL;
        self.nodes[slot].older = self.newest;
        match self.newest {
            NIL => self.oldest = slot,
            newest => self.nodes[newest].newer = slot,
        }
        self.newest = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn address(i: u32) -> String {
        std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()
    }

    fn is_limited(limiter: &FailureLimiter, client: &str) -> bool {
        matches!(limiter.check(client), Err(Error::RateLimited { .. }))
    }

    #[test]
    fn refuses_after_the_budget_of_failures() {
        let limiter = FailureLimiter::new(3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
            limiter.failed("a");
        }
        let Err(Error::RateLimited { retry_after_secs }) = limiter.check("a") else {
            panic!("expected the fourth attempt to be refused")
        };
        assert!((1..=20).contains(&retry_after_secs));
        assert!(limiter.check("b").is_ok(), "other clients are not affected");
    }

    #[test]
    fn tokens_come_back_at_per_minute_over_sixty_per_second() {
        let limiter = FailureLimiter::new(60);
        let start = Instant::now();
        for _ in 0..60 {
            limiter.failed_at("a", start);
        }
        let Err(Error::RateLimited { retry_after_secs }) = limiter.check_at("a", start) else {
            panic!("expected an empty bucket to refuse")
        };
        assert_eq!(retry_after_secs, 1, "one token a second");
        let later = start + Duration::from_secs(1);
        assert!(limiter.check_at("a", later).is_ok());
        limiter.failed_at("a", later);
        assert!(
            limiter.check_at("a", later).is_err(),
            "one token came back, not more"
        );
    }

    #[test]
    fn a_failure_touches_only_one_client() {
        let limiter = FailureLimiter::new(3);
        assert_eq!(limiter.tracked(), 0, "checking alone tracks nobody");
        assert!(limiter.check("a").is_ok());
        assert_eq!(limiter.tracked(), 0);
        limiter.failed("a");
        limiter.failed("a");
        limiter.failed("b");
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn tracks_at_most_its_capacity() {
        let limiter = FailureLimiter::new(5);
        for i in 0..100_000 {
            limiter.failed(&address(i));
        }
        assert!(
            limiter.tracked() <= 100_000,
            "the default capacity is 100,000"
        );
        for i in 100_000..150_000 {
            limiter.failed(&address(i));
        }
        // Every shard has overflowed by now, so it is full rather than leaking or emptied.
        assert_eq!(limiter.tracked(), 100_000);
        let small = FailureLimiter::with_capacity(5, 1000);
        for i in 0..150_000 {
            small.failed(&address(i));
            assert!(small.tracked() <= 1000);
        }
    }

    #[test]
    fn the_least_recently_touched_client_is_evicted() {
        let limiter = FailureLimiter::with_capacity(1, 3);
        for client in ["a", "b", "c"] {
            limiter.failed(client);
        }
        limiter.failed("a");
        limiter.failed("d");
        assert!(!is_limited(&limiter, "b"), "b failed least recently");
        for client in ["a", "c", "d"] {
            assert!(is_limited(&limiter, client), "{client} is still tracked");
        }
        // Checking touches: c, refused and knocking again, outlives a, which went quiet.
        assert!(is_limited(&limiter, "c"));
        limiter.failed("e");
        assert!(!is_limited(&limiter, "a"));
        assert!(is_limited(&limiter, "c"));
    }

    #[test]
    fn a_client_that_keeps_failing_stays_limited_through_a_flood() {
        let capacity = 100_000;
        let limiter = FailureLimiter::with_capacity(3, capacity);
        let (failing, knocking) = ("198.51.100.7", "198.51.100.8");
        for _ in 0..3 {
            limiter.failed(failing);
            limiter.failed(knocking);
        }
        for i in 0..3 * capacity as u32 {
            limiter.failed(&address(i));
            if i % 1000 == 0 {
                limiter.failed(failing);
                assert!(is_limited(&limiter, failing));
                // Refused before it can fail, as in a request, this one only knocks.
                assert!(is_limited(&limiter, knocking));
            }
        }
        assert!(limiter.tracked() <= capacity);
    }

    #[test]
    fn an_evicted_client_starts_with_a_full_bucket() {
        let capacity = 100_000;
        let limiter = FailureLimiter::with_capacity(3, capacity);
        let quiet = "198.51.100.7";
        for _ in 0..3 {
            limiter.failed(quiet);
        }
        assert!(is_limited(&limiter, quiet));
        // Several times the capacity, so that every shard has been overrun.
        for i in 0..3 * capacity as u32 {
            limiter.failed(&address(i));
        }
        for _ in 0..3 {
            assert!(limiter.check(quiet).is_ok(), "a full bucket of 3");
            limiter.failed(quiet);
        }
        assert!(is_limited(&limiter, quiet));
    }
}
