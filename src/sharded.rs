//! A bounded LRU map split into independently locked shards, so that
//! workers on different cores rarely wait for each other. Used by the answer
//! cache, the response cache and the rate limiter.
//!
//! Each map is bounded by a number of entries and, optionally, by a byte
//! budget (`cache.max_memory`): every value says what it weighs
//! ([`Weigh`]), each shard keeps the sum, and an insert that brings a shard
//! over its share of the budget evicts the least recently used entries.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

/// Number of shards (each holds about `capacity / SHARDS` entries); a power
/// of two (the shard is the top bits of a hash).
const SHARDS: usize = 16;
const _: () = assert!(SHARDS.is_power_of_two());

/// The memory an entry holds, in bytes: its key and value, what they own
/// on the heap, and the map's own bookkeeping. An estimate, as Unbound's
/// cache sizes are; it must not change while the entry is in the map.
pub(crate) trait Weigh<K> {
    /// The entry's bytes.
    fn weigh(&self, key: &K) -> usize;
}

/// The bytes of the LRU's bookkeeping per entry: its node's two list
/// pointers and the hash table's slot (a pointer and a control byte).
pub(crate) const LRU_NODE_OVERHEAD: usize = 3 * std::mem::size_of::<usize>() + 1;

/// A sharded, bounded LRU map.
pub(crate) struct ShardedLru<K: Hash + Eq, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    /// The same fast, randomly seeded hasher the shards use inside (foldhash).
    hasher: lru::DefaultHasher,
}

/// One shard: its entries and the bytes they weigh.
pub(crate) struct Shard<K: Hash + Eq, V> {
    entries: LruCache<K, V>,
    bytes: usize,
    /// This shard's share of the byte budget (`usize::MAX`: none).
    byte_budget: usize,
}

impl<K: Hash + Eq, V> ShardedLru<K, V> {
    /// A map holding at most `capacity` entries, rounded up to a multiple of the shard count.
    ///
    /// Nothing is allocated for the capacity up front: each shard starts empty
    /// and grows as entries arrive (`LruCache::new` would reserve the whole
    /// capacity at once, so a large cap would cost its memory at idle).
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_byte_budget(capacity, None)
    }

    /// A map bounded by `capacity` entries and, if given, by `max_bytes`
    /// (as the entries weigh themselves, [`Weigh`]; each shard gets an equal share).
    pub(crate) fn with_byte_budget(capacity: usize, max_bytes: Option<usize>) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let per_shard = NonZeroUsize::new(per_shard).expect("at least one entry per shard");
        let byte_budget = max_bytes.map_or(usize::MAX, |bytes| bytes / SHARDS);
        let empty_shard = || {
            let mut entries = LruCache::unbounded();
            entries.resize(per_shard); // bounded from here on; no reservation
            Mutex::new(Shard {
                entries,
                bytes: 0,
                byte_budget,
            })
        };
        Self {
            shards: (0..SHARDS).map(|_| empty_shard()).collect(),
            hasher: Default::default(),
        }
    }

    /// The locked shard that holds `key` (a poisoned lock is taken over: the
    /// map stays consistent, as every update is a single shard call).
    pub(crate) fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        // The top bits of the hash times a large odd constant (Fibonacci
        // hashing): foldhash's low bits alone left some shards without a
        // key for some process seeds (sequential integer keys, 1 seed in ~50).
        let mixed = self
            .hasher
            .hash_one(key)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = (mixed >> (u64::BITS - SHARDS.trailing_zeros())) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn locked_shards(&self) -> impl Iterator<Item = MutexGuard<'_, Shard<K, V>>> {
        self.shards.iter().map(|shard| {
            shard
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }

    /// Entries held now.
    pub(crate) fn len(&self) -> usize {
        self.locked_shards().map(|shard| shard.entries.len()).sum()
    }

    /// The bytes the entries weigh now.
    pub(crate) fn bytes(&self) -> usize {
        self.locked_shards().map(|shard| shard.bytes).sum()
    }
}

impl<K: Hash + Eq, V: Weigh<K>> Shard<K, V> {
    /// The value of `key`, marked as most recently used.
    pub(crate) fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)
    }

    /// The value of `key` to change (not in weight), marked as most recently used.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get_mut(key)
    }

    /// The value of `key` to change (not in weight), its place in the LRU order kept.
    pub(crate) fn peek_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.peek_mut(key)
    }

    /// The value of `key`, inserted by `make` if missing (the LRU entry goes
    /// to make room, and the byte budget is kept as in [`Self::put`]).
    pub(crate) fn get_or_insert_mut(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V
    where
        K: Clone,
    {
        if !self.entries.contains(&key) {
            self.put(key.clone(), make());
        }
        self.entries
            .get_mut(&key)
            .expect("the entry just put is the most recent, never evicted")
    }

    /// Removes `key`'s entry.
    pub(crate) fn pop<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (key, value) = self.entries.pop_entry(key)?;
        self.bytes -= value.weigh(&key);
        Some(value)
    }

    /// Inserts or replaces `key`'s entry; then, while the shard is over its
    /// entry count or byte budget, the least recently used entries go
    /// (never the one just put). Returns how many other entries went.
    pub(crate) fn put(&mut self, key: K, value: V) -> usize {
        self.bytes += value.weigh(&key);
        let mut evicted = 0;
        if let Some((old_key, old_value)) = self.entries.push(key, value) {
            self.bytes -= old_value.weigh(&old_key);
            // `push` returns the replaced entry (same key) or the evicted one.
            evicted += usize::from(self.entries.peek(&old_key).is_none());
        }
        while self.bytes > self.byte_budget && self.entries.len() > 1 {
            let Some((old_key, old_value)) = self.entries.pop_lru() else {
                break;
            };
            self.bytes -= old_value.weigh(&old_key);
            evicted += 1;
        }
        evicted
    }
}

impl<K: Hash + Eq + Clone, V: Weigh<K>> ShardedLru<K, V> {
    /// Removes every entry `keep` says no to, one shard locked at a time;
    /// returns how many were removed.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let mut removed = 0;
        for mut shard in self.locked_shards() {
            let doomed: Vec<K> = shard
                .entries
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
        for shard in self.locked_shards() {
            for (key, value) in shard.entries.iter() {
                visit(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test value that weighs what it says.
    #[derive(Debug, PartialEq, Eq)]
    struct Weighs(usize);

    impl<K> Weigh<K> for Weighs {
        fn weigh(&self, _key: &K) -> usize {
            self.0
        }
    }

    #[test]
    fn stays_within_its_capacity_and_finds_by_borrowed_key() {
        let map: ShardedLru<Box<[u8]>, Weighs> = ShardedLru::new(32);
        for index in 0..1000u32 {
            let key: Box<[u8]> = index.to_be_bytes().into();
            map.shard(&key[..]).put(key, Weighs(index as usize));
        }
        assert!(map.len() <= 32, "{}", map.len());
        assert!(map.len() >= 16, "each shard keeps up to its share");
        assert!(
            map.shards
                .iter()
                .all(|shard| shard.lock().unwrap().entries.cap().get() == 2),
            "32 entries over 16 shards"
        );
        let key = 999u32.to_be_bytes();
        assert_eq!(map.shard(&key[..]).get(&key[..]), Some(&Weighs(999)));
    }

    #[test]
    fn the_byte_budget_evicts_the_least_recently_used_and_counts_exactly() {
        // 16 shards of 100 bytes each; entries of 30 bytes: 3 fit per shard.
        let map: ShardedLru<u32, Weighs> = ShardedLru::with_byte_budget(1_000_000, Some(1600));
        let mut evicted = 0;
        for key in 0..1000u32 {
            evicted += map.shard(&key).put(key, Weighs(30));
        }
        assert_eq!(map.len(), 16 * 3);
        assert_eq!(map.bytes(), 16 * 3 * 30);
        assert_eq!(evicted, 1000 - 16 * 3);
        // The most recent key of each shard is still there.
        assert_eq!(map.shard(&999u32).get(&999), Some(&Weighs(30)));
        // Replacing is not evicting, and the weight follows the new value.
        assert_eq!(map.shard(&999u32).put(999, Weighs(10)), 0);
        assert_eq!(map.bytes(), 16 * 3 * 30 - 20);
        // One entry heavier than the budget still goes in (alone).
        let evicted = map.shard(&999u32).put(999, Weighs(500));
        assert_eq!(evicted, 2);
        assert_eq!(map.shard(&999u32).get(&999), Some(&Weighs(500)));
        assert_eq!(map.shard(&999u32).pop(&999), Some(Weighs(500)));
        assert_eq!(map.len(), 15 * 3);
        assert_eq!(map.bytes(), 15 * 3 * 30);
        let odd = map.len() - map.len_even();
        assert_eq!(map.retain(|key, _| key % 2 == 0), odd);
        assert_eq!(map.bytes(), map.len() * 30);
    }

    impl ShardedLru<u32, Weighs> {
        fn len_even(&self) -> usize {
            let mut even = 0;
            self.for_each(|key, _| even += usize::from(key % 2 == 0));
            even
        }
    }
}
