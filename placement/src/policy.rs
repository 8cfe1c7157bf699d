//! Cache policies for the fast tier, all with byte capacities and the same admission rule:
//! an object larger than the whole capacity is never admitted (as in libCacheSim).

use crate::trace::Request;
use std::collections::{BTreeSet, HashMap};

/// A fast-tier policy fed one request at a time.
pub trait Policy {
    /// Short name used in reports.
    fn name(&self) -> &'static str;
    /// Serves `r`: true on a hit. On a miss the policy decides what to admit and evict.
    fn access(&mut self, r: &Request) -> bool;
    /// Whether `id` is held.
    fn contains(&self, id: u64) -> bool;
    /// Bytes currently held.
    fn used(&self) -> u64;
    /// Byte capacity.
    fn capacity(&self) -> u64;
    /// For a policy that keeps history per object: how many objects it tracks now and the
    /// heap bytes of all its bookkeeping (history, indexes, training data, model). `None` for
    /// the baselines, whose bookkeeping is their cache index.
    fn footprint(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Objects held with a priority key, evicting the lowest (or highest) key first: the store
/// shared by LRU (key = last use), FIFO (key = arrival) and Belady (key = next use).
struct Keyed {
    cap: u64,
    used: u64,
    /// id -> (key, size)
    objs: HashMap<u64, (u64, u32)>,
    order: BTreeSet<(u64, u64)>,
    /// Evict the highest key instead of the lowest.
    evict_high: bool,
}

impl Keyed {
    fn new(cap: u64, evict_high: bool) -> Self {
        Keyed {
            cap,
            used: 0,
            objs: HashMap::new(),
            order: BTreeSet::new(),
            evict_high,
        }
    }

    /// Gives a held object a new key; false if it is not held.
    fn rekey(&mut self, id: u64, key: u64) -> bool {
        let Some((k, _)) = self.objs.get_mut(&id) else {
            return false;
        };
        self.order.remove(&(*k, id));
        *k = key;
        self.order.insert((key, id));
        true
    }

    /// The key the next eviction would take, if anything is held.
    fn next_victim_key(&self) -> Option<u64> {
        let e = if self.evict_high {
            self.order.last()
        } else {
            self.order.first()
        };
        e.map(|&(k, _)| k)
    }

    /// Admits an object, evicting until it fits; objects larger than the capacity are not
    /// admitted.
    fn admit(&mut self, id: u64, size: u32, key: u64) {
        let size64 = u64::from(size);
        if size64 > self.cap {
            return;
        }
        while self.used + size64 > self.cap && self.evict_one() {}
        self.objs.insert(id, (key, size));
        self.order.insert((key, id));
        self.used += size64;
    }

    /// Changes the capacity, evicting in key order until the objects fit.
    fn set_capacity(&mut self, cap: u64) {
        self.cap = cap;
        while self.used > self.cap && self.evict_one() {}
    }

    /// Evicts the object with the lowest (or highest) key; false if none is held.
    fn evict_one(&mut self) -> bool {
        let victim = if self.evict_high {
            self.order.pop_last()
        } else {
            self.order.pop_first()
        };
        let Some((_, v)) = victim else { return false };
        if let Some((_, s)) = self.objs.remove(&v) {
            self.used -= u64::from(s);
        }
        true
    }

    fn full_for(&self, size: u32) -> bool {
        self.used + u64::from(size) > self.cap
    }
}

/// Least recently used.
pub struct Lru {
    store: Keyed,
    clock: u64,
}

impl Lru {
    /// An empty LRU of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Lru {
            store: Keyed::new(cap, false),
            clock: 0,
        }
    }

    /// Changes the capacity, evicting the least recently used until the rest fit.
    pub fn set_capacity(&mut self, cap: u64) {
        self.store.set_capacity(cap);
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.store.objs.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.store.objs.is_empty()
    }
}

/// First in, first out.
pub struct Fifo {
    store: Keyed,
    clock: u64,
}

impl Fifo {
    /// An empty FIFO of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Fifo {
            store: Keyed::new(cap, false),
            clock: 0,
        }
    }
}

/// Belady's offline optimum: evicts the object whose next request is furthest away (never
/// requested again counts as infinitely far). Exact for unit sizes; with variable sizes it is
/// the classic furthest-next-use heuristic, a strong baseline but not the size-aware optimum.
pub struct Belady {
    store: Keyed,
    bypass: bool,
}

impl Belady {
    /// An empty cache of `cap` bytes. With `bypass`, an object is not admitted when it is
    /// needed no sooner than everything it would displace (the true optimum for unit sizes,
    /// MIN); without, every miss is admitted, as libCacheSim's `Belady` does.
    pub fn new(cap: u64, bypass: bool) -> Self {
        Belady {
            store: Keyed::new(cap, true),
            bypass,
        }
    }
}

fn next_key(r: &Request) -> u64 {
    if r.next < 0 {
        u64::MAX
    } else {
        r.next as u64
    }
}

/// The accessors every [`Keyed`]-backed policy shares.
macro_rules! keyed_accessors {
    () => {
        fn contains(&self, id: u64) -> bool {
            self.store.objs.contains_key(&id)
        }

        fn used(&self) -> u64 {
            self.store.used
        }

        fn capacity(&self) -> u64 {
            self.store.cap
        }
    };
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }

    fn access(&mut self, r: &Request) -> bool {
        self.clock += 1;
        if self.store.rekey(r.id, self.clock) {
            return true;
        }
        self.store.admit(r.id, r.size, self.clock);
        false
    }

    keyed_accessors!();
}

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn access(&mut self, r: &Request) -> bool {
        if self.store.objs.contains_key(&r.id) {
            return true;
        }
        self.clock += 1;
        self.store.admit(r.id, r.size, self.clock);
        false
    }

    keyed_accessors!();
}

impl Policy for Belady {
    fn name(&self) -> &'static str {
        "belady"
    }

    fn access(&mut self, r: &Request) -> bool {
        let next = next_key(r);
        if self.store.rekey(r.id, next) {
            return true;
        }
        // bypass: if the cache is full and nothing in it is needed later than this object, the
        // optimum does not admit it (a never-again object never enters a full cache)
        if self.bypass
            && self.store.full_for(r.size)
            && self.store.next_victim_key().is_some_and(|far| next >= far)
        {
            return false;
        }
        self.store.admit(r.id, r.size, next);
        false
    }

    keyed_accessors!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: u64) -> Request {
        Request {
            time: 0,
            id,
            size: 1,
            next: -1,
        }
    }

    #[test]
    fn a_smaller_lru_keeps_the_most_recently_used() {
        let mut l = Lru::new(10);
        for id in [1, 2, 3, 4, 5, 1] {
            l.access(&req(id));
        }
        l.set_capacity(3);
        assert_eq!((l.used(), l.len()), (3, 3));
        assert!(l.contains(1) && l.contains(5) && l.contains(4));
        l.set_capacity(0);
        assert!(l.is_empty());
    }
}
