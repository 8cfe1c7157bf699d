//! LHD, "Least Hit Density" (Beckmann, Chen and Cidon, NSDI'18): evict, among a random sample
//! of residents, the one with the lowest expected hits per byte per unit of time it will still
//! occupy, estimated online from per-class hit and eviction age distributions.
//!
//! Classes follow the paper: objects are grouped by the sum of their last two hit ages
//! (log-binned, 16 classes; objects never hit form their own class). Ages are coarsened so the
//! age range covers about eight times the tier's resident count in requests; the distributions
//! are decayed (EWMA 0.9) and the densities recomputed every 2^16 requests.

use crate::policy::Policy;
use crate::sampled::{Rng, Sampled};
use crate::trace::Request;
use std::collections::HashMap;

const CLASSES: usize = 16;
const MAX_AGE: usize = 4096;
const RECONFIGURE_EVERY: u64 = 1 << 16;
const DECAY: f64 = 0.9;
const SAMPLES: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Tag {
    last: u64,
    hit_age: u64,
    hit_age2: u64,
}

#[derive(Debug, Clone)]
struct Class {
    hits: Vec<f64>,
    evictions: Vec<f64>,
    density: Vec<f64>,
}

impl Class {
    fn new() -> Self {
        Class {
            hits: vec![0.0; MAX_AGE],
            evictions: vec![0.0; MAX_AGE],
            // before any statistics: younger is better (behaves like LRU)
            density: (0..MAX_AGE).map(|a| 1.0 / (a as f64 + 1.0)).collect(),
        }
    }
}

/// The LHD policy.
pub struct Lhd {
    store: Sampled,
    tags: HashMap<u64, Tag>,
    classes: Vec<Class>,
    now: u64,
    coarsen: u64,
    rng: Rng,
}

impl Lhd {
    /// An empty tier of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Self::with_seed(cap, 0)
    }

    /// An empty tier of `cap` bytes whose eviction samples come from `seed`; seed 0 is
    /// [`Lhd::new`]'s.
    pub fn with_seed(cap: u64, seed: u64) -> Self {
        Lhd {
            store: Sampled::new(cap),
            tags: HashMap::new(),
            classes: vec![Class::new(); CLASSES],
            now: 0,
            coarsen: 1,
            rng: Rng::new(0x004c_4844 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)), // "LHD"
        }
    }

    fn age(&self, t: &Tag) -> usize {
        (((self.now - t.last) / self.coarsen) as usize).min(MAX_AGE - 1)
    }

    fn class(t: &Tag) -> usize {
        let s = t.hit_age + t.hit_age2;
        if s == 0 {
            CLASSES - 1
        } else {
            ((64 - s.leading_zeros()) as usize / 2).min(CLASSES - 2)
        }
    }

    fn reconfigure(&mut self) {
        for c in &mut self.classes {
            let (mut hits, mut events, mut life) = (0.0, 0.0, 0.0);
            for a in (0..MAX_AGE).rev() {
                hits += c.hits[a];
                events += c.hits[a] + c.evictions[a];
                life += events;
                c.density[a] = if life > 0.0 { hits / life } else { 0.0 };
            }
            for a in 0..MAX_AGE {
                c.hits[a] *= DECAY;
                c.evictions[a] *= DECAY;
            }
        }
        // ages span about 8x the resident count
        self.coarsen = ((self.store.len() as u64 * 8) / MAX_AGE as u64).max(1);
    }

    fn evict_one(&mut self) -> bool {
        let mut victim: Option<(f64, u64)> = None;
        for _ in 0..SAMPLES {
            let Some((id, size)) = self.store.sample(&mut self.rng) else {
                return false;
            };
            let Some(t) = self.tags.get(&id) else {
                continue;
            };
            let d = self.classes[Self::class(t)].density[self.age(t)] / f64::from(size.max(1));
            if victim.is_none_or(|(v, _)| d < v) {
                victim = Some((d, id));
            }
        }
        let Some((_, id)) = victim else {
            return false;
        };
        if let Some(t) = self.tags.remove(&id) {
            let (c, a) = (Self::class(&t), self.age(&t));
            self.classes[c].evictions[a] += 1.0;
        }
        self.store.remove(id);
        true
    }
}

impl Policy for Lhd {
    fn name(&self) -> &'static str {
        "lhd"
    }

    fn access(&mut self, r: &Request) -> bool {
        self.now += 1;
        if self.now.is_multiple_of(RECONFIGURE_EVERY) {
            self.reconfigure();
        }
        if let Some(t) = self.tags.get(&r.id).copied() {
            let (c, a) = (Self::class(&t), self.age(&t));
            self.classes[c].hits[a] += 1.0;
            let raw_age = self.now - t.last;
            self.tags.insert(
                r.id,
                Tag {
                    last: self.now,
                    hit_age: raw_age / self.coarsen,
                    hit_age2: t.hit_age,
                },
            );
            return true;
        }
        if u64::from(r.size) > self.store.cap {
            return false;
        }
        while !self.store.fits(r.size) {
            if !self.evict_one() {
                break;
            }
        }
        self.store.insert(r.id, r.size);
        self.tags.insert(
            r.id,
            Tag {
                last: self.now,
                hit_age: 0,
                hit_age2: 0,
            },
        );
        false
    }

    fn contains(&self, id: u64) -> bool {
        self.store.contains(id)
    }

    fn used(&self) -> u64 {
        self.store.used
    }

    fn capacity(&self) -> u64 {
        self.store.cap
    }
}
