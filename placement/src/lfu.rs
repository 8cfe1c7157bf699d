//! LFU with exponential decay, in bytes.

use crate::policy::Policy;
use crate::trace::Request;
use std::collections::HashMap;

/// LFU with exponential decay: each object's count halves every `half_life` requests, so old
/// popularity fades. Evicts the smallest decayed count. Decay is applied lazily: with a common
/// decay rate the order of two objects is the order of `log2(count) + last_access / half_life`.
pub struct LfuDecay {
    cap: u64,
    used: u64,
    half_life: f64,
    clock: u64,
    /// id -> (size, log2 of the count at the last access, time of the last access)
    objs: HashMap<u64, (u32, f64, u64)>,
    order: std::collections::BTreeSet<(u64, u64)>,
}

/// Default half-life in requests.
pub const LFU_HALF_LIFE: f64 = 100_000.0;

/// Orders finite f64 keys as unsigned integers.
fn key_bits(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

impl LfuDecay {
    /// An empty cache of `cap` bytes with the given half-life in requests.
    pub fn new(cap: u64, half_life: f64) -> Self {
        LfuDecay {
            cap,
            used: 0,
            half_life: half_life.max(1.0),
            clock: 0,
            objs: HashMap::new(),
            order: std::collections::BTreeSet::new(),
        }
    }

    fn key(&self, log_count: f64, at: u64, id: u64) -> (u64, u64) {
        (key_bits(log_count + at as f64 / self.half_life), id)
    }
}

impl Policy for LfuDecay {
    fn name(&self) -> &'static str {
        "lfu"
    }

    fn access(&mut self, r: &Request) -> bool {
        self.clock += 1;
        if let Some(&(size, log_count, at)) = self.objs.get(&r.id) {
            self.order.remove(&self.key(log_count, at, r.id));
            let elapsed = (self.clock - at) as f64 / self.half_life;
            let new_log = ((log_count - elapsed).exp2() + 1.0).log2();
            self.order.insert(self.key(new_log, self.clock, r.id));
            self.objs.insert(r.id, (size, new_log, self.clock));
            return true;
        }
        let size = u64::from(r.size);
        if size > self.cap {
            return false;
        }
        while self.used + size > self.cap {
            let Some((_, victim)) = self.order.pop_first() else {
                break;
            };
            if let Some((s, _, _)) = self.objs.remove(&victim) {
                self.used -= u64::from(s);
            }
        }
        self.order.insert(self.key(0.0, self.clock, r.id));
        self.objs.insert(r.id, (r.size, 0.0, self.clock));
        self.used += size;
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
