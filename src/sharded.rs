//! A bounded LRU map split into independently locked shards, so that
//! workers on different cores rarely wait for each other. Used by the answer
//! cache, the response cache and the rate limiter.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

/// Number of shards (each holds about `capacity / SHARDS` entries).
const SHARDS: usize = 16;

/// A sharded, bounded LRU map.
pub(crate) struct ShardedLru<K: Hash + Eq, V> {
    shards: Vec<Mutex<LruCache<K, V>>>,
    /// The same fast, randomly seeded hasher the shards use inside (foldhash).
    hasher: lru::DefaultHasher,
}

impl<K: Hash + Eq, V> ShardedLru<K, V> {
    /// A map holding at most `capacity` entries, rounded up to a multiple of the shard count.
    ///
    /// Nothing is allocated for the capacity up front: each shard starts empty
    /// and grows as entries arrive (`LruCache::new` would reserve the whole
    /// capacity at once, so a large cap would cost its memory at idle).
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let per_shard = NonZeroUsize::new(per_shard).expect("at least one entry per shard");
        let empty_shard = || {
            let mut shard = LruCache::unbounded();
            shard.resize(per_shard); // bounded from here on; no reservation
            Mutex::new(shard)
        };
        Self {
            shards: (0..SHARDS).map(|_| empty_shard()).collect(),
            hasher: Default::default(),
        }
    }

    /// The locked shard that holds `key` (a poisoned lock is taken over: the
    /// map stays consistent, as every update is a single LRU call).
    pub(crate) fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, LruCache<K, V>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Entries held now.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .len()
            })
            .sum()
    }
}

impl<K: Hash + Eq + Clone, V> ShardedLru<K, V> {
    /// Removes every entry `keep` says no to, one shard locked at a time;
    /// returns how many were removed.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let doomed: Vec<K> = shard
                .iter()
                .filter(|(key, value)| !keep(key, value))
                .map(|(key, _)| key.clone())
                .collect();
            for key in doomed {
                shard.pop(&key);
                removed += 1;
            }
        }
        removed
    }

    /// Calls `visit` for every entry, one shard locked at a time (the LRU
    /// order is not changed).
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&K, &V)) {
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (key, value) in shard.iter() {
                visit(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_capacity_and_finds_by_borrowed_key() {
        let map: ShardedLru<Box<[u8]>, u32> = ShardedLru::new(32);
        for index in 0..1000u32 {
            let key: Box<[u8]> = index.to_be_bytes().into();
            map.shard(&key[..]).put(key, index);
        }
        assert!(map.len() <= 32, "{}", map.len());
        assert!(map.len() >= 16, "each shard keeps up to its share");
        assert!(
            map.shards
                .iter()
                .all(|shard| shard.lock().unwrap().cap().get() == 2),
            "32 entries over 16 shards"
        );
        let key = 999u32.to_be_bytes();
        assert_eq!(map.shard(&key[..]).get(&key[..]), Some(&999));
    }
}
