//! ARC (Megiddo & Modha, FAST'03) in bytes: two LRU lists (seen once, seen again), their ghost
//! lists, and an adaptive byte target for the first list.

use crate::policy::Policy;
use crate::trace::Request;
use std::collections::{BTreeMap, HashMap};

/// An LRU list of (id, size) with byte accounting.
#[derive(Default)]
struct List {
    by_id: HashMap<u64, (u64, u32)>,
    order: BTreeMap<u64, u64>,
    bytes: u64,
}

impl List {
    fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }
    fn push(&mut self, id: u64, size: u32, stamp: u64) {
        self.by_id.insert(id, (stamp, size));
        self.order.insert(stamp, id);
        self.bytes += u64::from(size);
    }
    fn remove(&mut self, id: u64) -> Option<u32> {
        let (stamp, size) = self.by_id.remove(&id)?;
        self.order.remove(&stamp);
        self.bytes -= u64::from(size);
        Some(size)
    }
    fn pop_lru(&mut self) -> Option<(u64, u32)> {
        let (_, id) = self.order.pop_first()?;
        let (_, size) = self.by_id.remove(&id)?;
        self.bytes -= u64::from(size);
        Some((id, size))
    }
}

/// Adaptive Replacement Cache over bytes.
pub struct ArcCache {
    cap: u64,
    p: u64,
    clock: u64,
    t1: List,
    t2: List,
    b1: List,
    b2: List,
}

impl ArcCache {
    /// An empty cache of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        ArcCache {
            cap,
            p: 0,
            clock: 0,
            t1: List::default(),
            t2: List::default(),
            b1: List::default(),
            b2: List::default(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Evicts from T1 or T2 into the matching ghost list until `need` bytes fit.
    fn replace(&mut self, need: u64, in_b2: bool) {
        while self.t1.bytes + self.t2.bytes + need > self.cap {
            let from_t1 = self.t1.bytes > 0
                && (self.t1.bytes > self.p
                    || (in_b2 && self.t1.bytes == self.p)
                    || self.t2.bytes == 0);
            let stamp = self.tick();
            if from_t1 {
                let Some((id, size)) = self.t1.pop_lru() else {
                    break;
                };
                self.b1.push(id, size, stamp);
            } else {
                let Some((id, size)) = self.t2.pop_lru() else {
                    break;
                };
                self.b2.push(id, size, stamp);
            }
        }
    }

    /// Keeps the ghost lists within the cache size each (and the whole directory within 2x).
    fn trim_ghosts(&mut self) {
        while self.t1.bytes + self.b1.bytes > self.cap && self.b1.pop_lru().is_some() {}
        while self.t1.bytes + self.t2.bytes + self.b1.bytes + self.b2.bytes > 2 * self.cap
            && self.b2.pop_lru().is_some()
        {}
    }
}

impl Policy for ArcCache {
    fn name(&self) -> &'static str {
        "arc"
    }

    fn access(&mut self, r: &Request) -> bool {
        let size = u64::from(r.size);
        if let Some(s) = self.t1.remove(r.id).or_else(|| self.t2.remove(r.id)) {
            let stamp = self.tick();
            self.t2.push(r.id, s, stamp);
            return true;
        }
        if size > self.cap {
            return false;
        }
        if self.b1.contains(r.id) {
            let delta = (self.b2.bytes / self.b1.bytes.max(1)).max(1) * size;
            self.p = (self.p + delta).min(self.cap);
            self.b1.remove(r.id);
            self.replace(size, false);
            let stamp = self.tick();
            self.t2.push(r.id, r.size, stamp);
        } else if self.b2.contains(r.id) {
            let delta = (self.b1.bytes / self.b2.bytes.max(1)).max(1) * size;
            self.p = self.p.saturating_sub(delta);
            self.b2.remove(r.id);
            self.replace(size, true);
            let stamp = self.tick();
            self.t2.push(r.id, r.size, stamp);
        } else {
            self.replace(size, false);
            let stamp = self.tick();
            self.t1.push(r.id, r.size, stamp);
        }
        self.trim_ghosts();
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.t1.contains(id) || self.t2.contains(id)
    }

    fn used(&self) -> u64 {
        self.t1.bytes + self.t2.bytes
    }

    fn capacity(&self) -> u64 {
        self.cap
    }
}
