//! The simulator: feeds a request stream to a policy and counts what the fast tier served.

use crate::policy::Policy;
use crate::trace::Request;
use std::collections::{HashMap, HashSet};

/// What a run measured, over the requests after warm-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Requests counted.
    pub requests: u64,
    /// Of which missed the fast tier.
    pub misses: u64,
    /// Misses for objects never seen before in the whole trace (no policy can avoid them).
    pub compulsory_misses: u64,
    /// Bytes requested.
    pub bytes: u64,
    /// Bytes missed.
    pub byte_misses: u64,
}

impl Metrics {
    /// Object miss ratio.
    pub fn miss_ratio(&self) -> f64 {
        ratio(self.misses, self.requests)
    }

    /// Byte miss ratio.
    pub fn byte_miss_ratio(&self) -> f64 {
        ratio(self.byte_misses, self.bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Runs `policy` over `reqs`; the first `warmup` requests train it but are not counted.
pub fn simulate(
    reqs: impl Iterator<Item = Request>,
    policy: &mut dyn Policy,
    warmup: u64,
) -> Metrics {
    let mut m = Metrics::default();
    let mut seen = HashSet::new();
    for (i, r) in reqs.enumerate() {
        let first = seen.insert(r.id);
        let hit = policy.access(&r);
        if (i as u64) < warmup {
            continue;
        }
        m.requests += 1;
        m.bytes += u64::from(r.size);
        if !hit {
            m.misses += 1;
            m.byte_misses += u64::from(r.size);
            if first {
                m.compulsory_misses += 1;
            }
        }
    }
    m
}

/// Fills in `next` (1-based index of the next request for the same id, -1 if none), as the
/// oracleGeneral format does, for traces made in memory.
pub fn annotate_next(reqs: &mut [Request]) {
    let mut last: HashMap<u64, usize> = HashMap::new();
    for i in (0..reqs.len()).rev() {
        reqs[i].next = last.get(&reqs[i].id).map_or(-1, |&j| j as i64 + 1);
        last.insert(reqs[i].id, i);
    }
}
