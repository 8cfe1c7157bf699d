//! What ranks the shards a node may promote: the placement engine (the default), or plain
//! least-recently-used (`[placement] policy = "lru"`, the baseline `cairn bench tier`
//! compares against). Both hold at most the fast peers' room.

use cairn_placement::engine::{Engine, Training};
use cairn_placement::policy::{Lru, Policy};
use cairn_placement::trace::Request;
use serde::{Deserialize, Serialize};

/// The ranking policy of a node's fast tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierPolicy {
    /// The learned placement engine (`cairn_placement::engine`).
    #[default]
    Engine,
    /// Least recently used: what was read last stays.
    Lru,
}

/// A ranking policy with its state.
pub(crate) enum Ranker {
    Engine(Box<Engine>),
    Lru(Lru),
}

impl Ranker {
    /// A ranker of `cap` bytes; the engine's first model after `train_after` labels.
    pub(crate) fn new(policy: TierPolicy, cap: u64, train_after: usize) -> Self {
        match policy {
            TierPolicy::Engine => Ranker::Engine(Box::new(Engine::with_training(
                cap,
                0,
                Training {
                    first: train_after,
                    every: train_after.saturating_mul(2),
                },
            ))),
            TierPolicy::Lru => Ranker::Lru(Lru::new(cap)),
        }
    }

    fn policy(&mut self) -> &mut dyn Policy {
        match self {
            Ranker::Engine(e) => e.as_mut(),
            Ranker::Lru(l) => l,
        }
    }

    /// Feeds one read.
    pub(crate) fn access(&mut self, r: &Request) {
        self.policy().access(r);
    }

    /// Whether the shard is kept.
    pub(crate) fn contains(&self, id: u64) -> bool {
        match self {
            Ranker::Engine(e) => e.contains(id),
            Ranker::Lru(l) => l.contains(id),
        }
    }

    /// Bytes it may keep.
    pub(crate) fn capacity(&self) -> u64 {
        match self {
            Ranker::Engine(e) => e.capacity(),
            Ranker::Lru(l) => l.capacity(),
        }
    }

    /// Changes the capacity (evicting at once).
    pub(crate) fn set_capacity(&mut self, cap: u64) {
        match self {
            Ranker::Engine(e) => e.set_capacity(cap),
            Ranker::Lru(l) => l.set_capacity(cap),
        }
    }

    /// The trained model's probability of no reuse (the engine only).
    pub(crate) fn no_reuse_odds(&self, id: u64) -> Option<f32> {
        match self {
            Ranker::Engine(e) => e.no_reuse_odds(id),
            Ranker::Lru(_) => None,
        }
    }

    /// Models trained (0 for LRU).
    pub(crate) fn trainings(&self) -> u64 {
        match self {
            Ranker::Engine(e) => e.trainings,
            Ranker::Lru(_) => 0,
        }
    }

    /// Shards whose history it keeps.
    pub(crate) fn tracked(&self) -> usize {
        match self {
            Ranker::Engine(e) => e.tracked(),
            Ranker::Lru(l) => l.len(),
        }
    }

    /// Registers a reader's plan (the engine ranks its blocks by their true next read; LRU
    /// ignores it).
    pub(crate) fn register_plan(&mut self, order: Vec<u64>) {
        if let Ranker::Engine(e) = self {
            e.register_plan(order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: u64) -> Request {
        Request {
            time: 0,
            id,
            size: 10,
            next: -1,
        }
    }

    #[test]
    fn both_rankers_hold_their_capacity() {
        for p in [TierPolicy::Engine, TierPolicy::Lru] {
            let mut r = Ranker::new(p, 100, 8);
            for id in 0..20 {
                r.access(&req(id));
            }
            assert_eq!(r.capacity(), 100);
            assert_eq!((0..20).filter(|i| r.contains(*i)).count(), 10, "{p:?}");
            r.set_capacity(30);
            assert_eq!((0..20).filter(|i| r.contains(*i)).count(), 3, "{p:?}");
            // the most recent stay (no model yet: the engine is LRU too)
            assert!((17..20).all(|i| r.contains(i)), "{p:?}");
            assert_eq!(r.trainings(), 0);
        }
    }
}
