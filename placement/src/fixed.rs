//! Placements that never move an object once placed: static hash (no access history) and
//! static top-frequency (chosen once from a warm-up).

use crate::policy::Policy;
use crate::trace::Request;
use std::collections::HashMap;

/// Static hash placement: an object lives on the fast tier iff its id hashes below the
/// capacity's share of the key space and it still fits; nothing ever moves. The baseline of
/// placement without any access history.
pub struct StaticHash {
    cap: u64,
    used: u64,
    share: f64,
    objs: HashMap<u64, u32>,
}

impl StaticHash {
    /// A fast tier of `cap` bytes that admits the `share` (0..=1) of ids hashing lowest.
    pub fn new(cap: u64, share: f64) -> Self {
        StaticHash {
            cap,
            used: 0,
            share: share.clamp(0.0, 1.0),
            objs: HashMap::new(),
        }
    }
}

fn mix(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

impl Policy for StaticHash {
    fn name(&self) -> &'static str {
        "static-hash"
    }

    fn access(&mut self, r: &Request) -> bool {
        if self.objs.contains_key(&r.id) {
            return true;
        }
        let size = u64::from(r.size);
        let chosen = (mix(r.id) as f64) < self.share * u64::MAX as f64;
        if chosen && self.used + size <= self.cap {
            self.objs.insert(r.id, r.size);
            self.used += size;
        }
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.objs.contains_key(&id)
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn capacity(&self) -> u64 {
        self.cap
    }
}

/// Static top-frequency placement: counts requests during the first `train` requests (serving
/// nothing from the fast tier meanwhile), then pins the most requested objects that fit and
/// never changes. The best static placement history can give, without look-ahead.
pub struct StaticTop {
    cap: u64,
    used: u64,
    train: u64,
    seen: u64,
    counts: HashMap<u64, (u64, u32)>,
    pinned: HashMap<u64, u32>,
}

impl StaticTop {
    /// A fast tier of `cap` bytes chosen after `train` requests.
    pub fn new(cap: u64, train: u64) -> Self {
        StaticTop {
            cap,
            used: 0,
            train,
            seen: 0,
            counts: HashMap::new(),
            pinned: HashMap::new(),
        }
    }

    fn choose(&mut self) {
        let mut all: Vec<(u64, u64, u32)> =
            self.counts.drain().map(|(id, (n, s))| (id, n, s)).collect();
        // most requested first; ties by smaller size, then id, so the choice is deterministic
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
        for (id, _, size) in all {
            if self.used + u64::from(size) <= self.cap {
                self.used += u64::from(size);
                self.pinned.insert(id, size);
            }
        }
    }
}

impl Policy for StaticTop {
    fn name(&self) -> &'static str {
        "static-top"
    }

    fn access(&mut self, r: &Request) -> bool {
        self.seen += 1;
        if self.seen <= self.train {
            let e = self.counts.entry(r.id).or_insert((0, r.size));
            e.0 += 1;
            if self.seen == self.train {
                self.choose();
            }
            return false;
        }
        if self.seen == 1 && self.train == 0 {
            self.choose();
        }
        self.pinned.contains_key(&r.id)
    }

    fn contains(&self, id: u64) -> bool {
        self.pinned.contains_key(&id)
    }

    fn used(&self) -> u64 {
        self.used
    }

    fn capacity(&self) -> u64 {
        self.cap
    }
}
