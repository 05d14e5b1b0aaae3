//! The verification cache: what a lookup by digest found, kept in memory so that a hot
//! secret's next check touches no database.
//!
//! Bounded (a fixed number of entries per shard), sharded (a hit takes one shard's read lock,
//! never a global one), and as fresh as the database: every shard belongs to one generation of
//! [`Changes`], and anything cached under an older generation is never served. A lookup reads
//! the generation *before* it reads the database and inserts under that generation, so a
//! lookup that raced a change cannot bring the old answer back. Misses are not cached, so a key
//! created a moment ago is found. Expiry is not cached: the caller compares it at read time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::domain::secret::SecretState;
use crate::secrets::{SecretHash, SecretKind};
use crate::storage::notify::Changes;
use crate::verify::Owner;

/// Enough shards that two cores' worth of requests rarely meet on one lock.
const SHARDS: usize = 64;

/// The lookup a digest answers: the kind selects the owner table.
pub type Key = (Option<SecretKind>, SecretHash);

struct Shard {
    generation: u64,
    entries: HashMap<Key, (SecretState, Owner)>,
}

pub struct VerifyCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    changes: Arc<Changes>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What the cache has done so far, and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
    /// Entries of the current generation.
    pub entries: u64,
}

impl VerifyCache {
    /// A cache of at most about `capacity` entries; 0 turns caching off.
    pub fn new(capacity: usize, changes: Arc<Changes>) -> VerifyCache {
        let shards = (0..SHARDS)
            .map(|_| {
                RwLock::new(Shard {
                    generation: 0,
                    entries: HashMap::new(),
                })
            })
            .collect();
        VerifyCache {
            shards,
            per_shard: capacity.div_ceil(SHARDS),
            changes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn counts(&self) -> CacheCounts {
        let generation = self.changes.generation();
        let entries = self
            .shards
            .iter()
            .map(|shard| shard.read().expect("cache shard"))
            .filter(|shard| Some(shard.generation) == generation)
            .map(|shard| shard.entries.len() as u64)
            .sum();
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
        }
    }

    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// The generation a lookup about to read the database must insert under; `None` when
    /// nothing may be cached now.
    pub fn generation(&self) -> Option<u64> {
        self.changes.generation().filter(|_| self.per_shard > 0)
    }

    pub fn get(&self, key: &Key) -> Option<(SecretState, Owner)> {
        let found = self.lookup(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn lookup(&self, key: &Key) -> Option<(SecretState, Owner)> {
        let generation = self.generation()?;
        let shard = self.shard(key).read().expect("cache shard");
        if shard.generation != generation {
            return None;
        }
        shard.entries.get(key).cloned()
    }

    /// Keeps what a lookup begun at `generation` found, unless something changed since.
    pub fn insert(&self, key: Key, generation: u64, found: (SecretState, Owner)) {
        let mut shard = self.shard(&key).write().expect("cache shard");
        if self.changes.generation() != Some(generation) {
            return;
        }
        if shard.generation != generation {
            shard.entries.clear();
            shard.generation = generation;
        }
        if shard.entries.len() >= self.per_shard && !shard.entries.contains_key(&key) {
            // Any entry will do: a full shard's table is dense, so the first is found at once.
            if let Some(evicted) = shard.entries.keys().next().cloned() {
                shard.entries.remove(&evicted);
            }
        }
        shard.entries.insert(key, found);
    }

    fn shard(&self, key: &Key) -> &RwLock<Shard> {
        // The digest is uniformly distributed already.
        let bytes = key.1.as_bytes();
        &self.shards[usize::from(bytes[0]) % SHARDS]
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::org::{ApiKey, Role};
    use crate::secrets::PlainSecret;

    fn entry(value: &str) -> (Key, (SecretState, Owner)) {
        let plain = PlainSecret::from_operator(value.to_owned());
        let state = SecretState {
            id: Uuid::new_v4(),
            kind: SecretKind::ApiKey,
            hash: plain.hash(),
            expires_at: None,
            revoked_at: None,
        };
        let owner = Owner::ApiKey(ApiKey {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            name: value.to_owned(),
            role: Role::Member,
        });
        ((None, plain.hash()), (state, owner))
    }

    #[test]
    fn a_change_hides_everything_cached_before() {
        let cache = VerifyCache::new(100, Arc::default());
        let (key, found) = entry("a");
        cache.insert(key.clone(), cache.generation().unwrap(), found);
        assert!(cache.get(&key).is_some());
        cache.changes.bump();
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn a_lookup_that_raced_a_change_is_not_kept() {
        let cache = VerifyCache::new(100, Arc::default());
        let (key, found) = entry("a");
        let started = cache.generation().unwrap();
        cache.changes.bump();
        cache.insert(key.clone(), started, found);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn the_capacity_bounds_every_shard() {
        let cache = VerifyCache::new(SHARDS, Arc::default());
        let generation = cache.generation().unwrap();
        for i in 0..10 * SHARDS {
            let (key, found) = entry(&i.to_string());
            cache.insert(key, generation, found);
        }
        for shard in &cache.shards {
            assert!(shard.read().unwrap().entries.len() <= 1);
        }
    }

    #[test]
    fn a_capacity_of_zero_caches_nothing() {
        let cache = VerifyCache::new(0, Arc::default());
        assert_eq!(cache.generation(), None);
    }
}
