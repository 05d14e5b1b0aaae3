//! Bounds failed attempts per client, so that neither `POST /verify` nor API-key authentication
//! can be used as an oracle for guessing secrets. A token bucket per client: each failure takes
//! a token, tokens come back at `per_minute / 60` per second, and an empty bucket answers 429.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::Error;

/// Above this many tracked clients, buckets that have refilled completely are forgotten.
const MAX_TRACKED: usize = 10_000;

pub struct FailureLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl FailureLimiter {
    pub fn new(per_minute: u32) -> FailureLimiter {
        FailureLimiter {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Refuses a client whose failures have used up its budget.
    pub fn check(&self, client: &str) -> Result<(), Error> {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        let Some(bucket) = buckets.get_mut(client) else {
            return Ok(());
        };
        self.refill(bucket);
        if bucket.tokens >= 1.0 {
            return Ok(());
        }
        let seconds_to_one_token = (1.0 - bucket.tokens) * 60.0 / self.per_minute;
        Err(Error::RateLimited {
            retry_after_secs: seconds_to_one_token.ceil().max(1.0) as u64,
        })
    }

    /// Counts one failed attempt against the client.
    pub fn failed(&self, client: &str) {
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() >= MAX_TRACKED {
            let now = Instant::now();
            buckets.retain(|_, b| b.tokens + self.refilled(b, now) < self.per_minute);
        }
        let bucket = buckets.entry(client.to_owned()).or_insert_with(|| Bucket {
            tokens: self.per_minute,
            updated: Instant::now(),
        });
        self.refill(bucket);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        now.duration_since(bucket.updated).as_secs_f64() * self.per_minute / 60.0
    }

    fn refill(&self, bucket: &mut Bucket) {
        let now = Instant::now();
        bucket.tokens = (bucket.tokens + self.refilled(bucket, now)).min(self.per_minute);
        bucket.updated = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
