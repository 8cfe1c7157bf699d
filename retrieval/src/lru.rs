//! A least-recently-used map of byte buffers bounded by their total length, not their count:
//! the block cache of a [`Dataset`](crate::dataset::Dataset) holds blocks from a few bytes
//! (directory nodes) to 4 MiB (leaves), so a count would bound nothing.
//!
//! Pure and synchronous; [`MemoryCache`](crate::cache::MemoryCache) shares one behind a lock.
//! Every operation is O(log n): the map finds an entry, and a `BTreeMap` from a use counter to
//! the key orders entries from least to most recently used.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Counters of a byte-bounded cache, for tests and progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The byte limit.
    pub limit: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// The most bytes ever held at once (never above `limit`).
    pub peak_bytes: u64,
    /// Entries held now.
    pub entries: usize,
    /// Lookups that found their key.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Values stored.
    pub inserts: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Values not stored because they alone are longer than the limit.
    pub refused: u64,
}

/// A map from `K` to byte buffers holding at most `limit` bytes in total; inserting past the
/// limit drops the least recently used entries first. A value longer than the limit is not
/// stored at all.
#[derive(Debug)]
pub struct ByteLru<K> {
    /// Value and its last use, per key.
    map: HashMap<K, (Bytes, u64)>,
    /// Key per last use, least recent first.
    order: BTreeMap<u64, K>,
    /// The next use counter.
    tick: u64,
    stats: CacheStats,
}

impl<K: Hash + Eq + Clone> ByteLru<K> {
    /// An empty cache holding at most `limit` bytes.
    pub fn new(limit: u64) -> Self {
        ByteLru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            stats: CacheStats {
                limit,
                ..CacheStats::default()
            },
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The value under `key`, now the most recently used; counts a hit or a miss.
    pub fn get(&mut self, key: &K) -> Option<Bytes> {
        let tick = self.next_tick();
        let Some((value, last)) = self.map.get_mut(key) else {
            self.stats.misses += 1;
            return None;
        };
        let old = std::mem::replace(last, tick);
        let value = value.clone();
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(tick, k);
        }
        self.stats.hits += 1;
        Some(value)
    }

    /// Whether `key` is held (not a use: the order and counters do not change).
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Stores `value` under `key` as the most recently used entry, first dropping the least
    /// recently used entries until it fits. Returns `false`, storing nothing (and dropping an
    /// older value under `key`), when `value` alone is longer than the limit.
    pub fn insert(&mut self, key: K, value: Bytes) -> bool {
        self.remove(&key);
        let len = value.len() as u64;
        if len > self.stats.limit {
            self.stats.refused += 1;
            return false;
        }
        while self.stats.bytes + len > self.stats.limit {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            if let Some((v, _)) = self.map.remove(&k) {
                self.stats.bytes -= v.len() as u64;
                self.stats.evictions += 1;
            }
        }
        let tick = self.next_tick();
        self.order.insert(tick, key.clone());
        self.map.insert(key, (value, tick));
        self.stats.bytes += len;
        self.stats.inserts += 1;
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.stats.bytes);
        true
    }

    /// Removes and returns the value under `key`.
    pub fn remove(&mut self, key: &K) -> Option<Bytes> {
        let (value, tick) = self.map.remove(key)?;
        self.order.remove(&tick);
        self.stats.bytes -= value.len() as u64;
        Some(value)
    }

    /// Drops every entry (the counters stay).
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.stats.bytes = 0;
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.stats.bytes
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The counters, with `entries` and `bytes` as they are now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.map.len(),
            ..self.stats
        }
    }

    /// Keys from least to most recently used.
    pub fn keys_lru_first(&self) -> impl Iterator<Item = &K> {
        self.order.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn val(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    /// One operation on a cache of `u8` keys; `Put` stores a value of that many bytes.
    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, usize),
        Get(u8),
        Del(u8),
    }

    /// Each case: limit, operations, the keys left (least recent first), bytes left.
    #[test]
    fn table() {
        use Op::*;
        let cases: Vec<(u64, Vec<Op>, Vec<u8>, u64)> = vec![
            // fills exactly to the limit: nothing is evicted
            (10, vec![Put(1, 4), Put(2, 6)], vec![1, 2], 10),
            // one byte over: the least recently used goes
            (10, vec![Put(1, 4), Put(2, 6), Put(3, 1)], vec![2, 3], 7),
            // a use makes an entry the most recent: the other one goes instead
            (
                10,
                vec![Put(1, 4), Put(2, 6), Get(1), Put(3, 1)],
                vec![1, 3],
                5,
            ),
            // a value as long as the limit evicts everything else
            (10, vec![Put(1, 4), Put(2, 6), Put(3, 10)], vec![3], 10),
            // a value longer than the limit is refused and evicts nothing
            (10, vec![Put(1, 4), Put(3, 11)], vec![1], 4),
            // replacing a value refunds the old length first
            (10, vec![Put(1, 4), Put(2, 6), Put(2, 5)], vec![1, 2], 9),
            // replacing with a value too long drops the old one
            (10, vec![Put(1, 4), Put(1, 11)], vec![], 0),
            // a limit of 0 holds only empty values
            (0, vec![Put(1, 1), Put(2, 0)], vec![2], 0),
            // empty values cost nothing but are evicted in LRU order like any other
            (4, vec![Put(1, 0), Put(2, 4), Put(3, 1)], vec![3], 1),
            // removal frees its bytes
            (
                10,
                vec![Put(1, 4), Put(2, 6), Del(1), Put(3, 4)],
                vec![2, 3],
                10,
            ),
        ];
        for (i, (limit, ops, keys, bytes)) in cases.into_iter().enumerate() {
            let mut c = ByteLru::new(limit);
            for op in ops {
                match op {
                    Put(k, n) => {
                        let stored = c.insert(k, val(n));
                        assert_eq!(stored, n as u64 <= limit, "case {i}");
                    }
                    Get(k) => {
                        c.get(&k);
                    }
                    Del(k) => {
                        c.remove(&k);
                    }
                }
            }
            let got: Vec<u8> = c.keys_lru_first().copied().collect();
            assert_eq!(got, keys, "case {i}");
            assert_eq!(c.bytes(), bytes, "case {i}");
            assert!(c.stats().peak_bytes <= limit, "case {i}");
        }
    }

    #[test]
    fn counters() {
        let mut c = ByteLru::new(8);
        c.insert("a", val(5));
        c.insert("b", val(5));
        assert!(c.get(&"a").is_none());
        assert_eq!(c.get(&"b").map(|b| b.len()), Some(5));
        c.insert("c", val(9));
        let s = c.stats();
        assert_eq!(
            (s.hits, s.misses, s.inserts, s.evictions, s.refused),
            (1, 1, 2, 1, 1)
        );
        assert_eq!((s.entries, s.bytes, s.peak_bytes, s.limit), (1, 5, 5, 8));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..8, 0usize..40).prop_map(|(k, n)| Op::Put(k, n)),
            2 => (0u8..8).prop_map(Op::Get),
            1 => (0u8..8).prop_map(Op::Del),
        ]
    }

    proptest! {
        /// Against a model (a list, least recent first): the same keys in the same order, the
        /// same values, and never more bytes than the limit.
        #[test]
        fn agrees_with_a_list_model(limit in 0u64..64, ops in proptest::collection::vec(op(), 0..200)) {
            let mut c = ByteLru::new(limit);
            let mut model: Vec<(u8, Bytes)> = Vec::new();
            let mut counter = 0u8;
            for op in ops {
                match op {
                    Op::Put(k, n) => {
                        counter = counter.wrapping_add(1);
                        let v = Bytes::from(vec![counter; n]);
                        model.retain(|e| e.0 != k);
                        if n as u64 <= limit {
                            while model.iter().map(|e| e.1.len() as u64).sum::<u64>() + n as u64 > limit {
                                model.remove(0);
                            }
                            model.push((k, v.clone()));
                        }
                        prop_assert_eq!(c.insert(k, v), n as u64 <= limit);
                    }
                    Op::Get(k) => {
                        let want = model.iter().position(|e| e.0 == k).map(|i| model.remove(i));
                        let got = c.get(&k);
                        prop_assert_eq!(got.clone(), want.as_ref().map(|e| e.1.clone()));
                        if let Some(e) = want {
                            model.push(e);
                        }
                    }
                    Op::Del(k) => {
                        let want = model.iter().position(|e| e.0 == k).map(|i| model.remove(i));
                        prop_assert_eq!(c.remove(&k), want.map(|e| e.1));
                    }
                }
                let keys: Vec<u8> = c.keys_lru_first().copied().collect();
                let mkeys: Vec<u8> = model.iter().map(|e| e.0).collect();
                prop_assert_eq!(keys, mkeys);
                let mbytes: u64 = model.iter().map(|e| e.1.len() as u64).sum();
                prop_assert_eq!(c.bytes(), mbytes);
                prop_assert!(c.bytes() <= limit);
                prop_assert!(c.stats().peak_bytes <= limit);
                prop_assert_eq!(c.len(), model.len());
            }
        }
    }
}
