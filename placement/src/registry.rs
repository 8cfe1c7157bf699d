//! Every policy of the simulator by its report name, and what a policy may know before a run.

use crate::arc::ArcCache;
use crate::engine::Engine;
use crate::fixed::{StaticHash, StaticTop};
use crate::lfu::{LfuDecay, LFU_HALF_LIFE};
use crate::lhd::Lhd;
use crate::policy::{Belady, Fifo, Lru, Policy};
use crate::sieve::{S3Fifo, Sieve};

/// What a policy may know before a run: the fast tier's bytes, the trace's working-set bytes
/// (static hash placement uses the ratio) and the warm-up length (static top-frequency
/// chooses from it). None of it looks ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Fast-tier capacity in bytes.
    pub cap: u64,
    /// Working-set bytes of the trace.
    pub wss: u64,
    /// Requests of warm-up.
    pub warmup: u64,
    /// Seed of the randomized policies' draws (`engine`, `lhd`); 0 is their default.
    pub seed: u64,
}

/// Builds a policy by report name.
pub fn by_name(name: &str, setup: Setup) -> Option<Box<dyn Policy>> {
    let Setup {
        cap,
        wss,
        warmup,
        seed,
    } = setup;
    Some(match name {
        "lru" => Box::new(Lru::new(cap)),
        "fifo" => Box::new(Fifo::new(cap)),
        "belady" => Box::new(Belady::new(cap, true)),
        "belady-admit-all" => Box::new(Belady::new(cap, false)),
        "sieve" => Box::new(Sieve::new(cap)),
        "arc" => Box::new(ArcCache::new(cap)),
        "s3fifo" => Box::new(S3Fifo::new(cap)),
        "lfu" => Box::new(LfuDecay::new(cap, LFU_HALF_LIFE)),
        "static-hash" => Box::new(StaticHash::new(cap, cap as f64 / wss.max(1) as f64)),
        "static-top" => Box::new(StaticTop::new(cap, warmup)),
        "lhd" => Box::new(Lhd::with_seed(cap, seed)),
        "engine" => Box::new(Engine::with_seed(cap, seed)),
        _ => return None,
    })
}

/// Every policy name [`by_name`] knows.
pub const POLICIES: [&str; 9] = [
    "static-hash",
    "lru",
    "fifo",
    "lfu",
    "sieve",
    "s3fifo",
    "lhd",
    "engine",
    "belady",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Belady, Fifo, Lru};
    use crate::sim::{annotate_next, simulate};
    use crate::trace::Request;
    use proptest::prelude::*;

    fn unit(ids: &[u64]) -> Vec<Request> {
        let mut v: Vec<Request> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Request {
                time: i as u32,
                id,
                size: 1,
                next: -1,
            })
            .collect();
        annotate_next(&mut v);
        v
    }

    #[test]
    fn hand_checked_small_trace() {
        // a b c a d b a, capacity 2 objects
        let t = unit(&[1, 2, 3, 1, 4, 2, 1]);
        // LRU: a m, b m, c m (evict a), a m (evict b), d m (evict c), b m (evict a), a m -> 0 hits
        assert_eq!(simulate(t.iter().copied(), &mut Lru::new(2), 0).misses, 7);
        // FIFO: same evictions here
        assert_eq!(simulate(t.iter().copied(), &mut Fifo::new(2), 0).misses, 7);
        // Belady: a m, b m, c m (evict c itself? no: c is new; evict b, next at 6 > a at 4),
        // a hit, d m (evict c, never again), b m (evict d), a hit -> 5 misses
        assert_eq!(
            simulate(t.iter().copied(), &mut Belady::new(2, false), 0).misses,
            5
        );
    }

    #[test]
    fn oversized_objects_are_not_admitted_and_capacity_holds() {
        let t: Vec<Request> = [(1, 5), (2, 50), (1, 5), (3, 6), (1, 5)]
            .iter()
            .map(|&(id, size)| Request {
                time: 0,
                id,
                size,
                next: -1,
            })
            .collect();
        for name in POLICIES {
            let mut p = by_name(
                name,
                Setup {
                    cap: 10,
                    wss: 100,
                    warmup: 2,
                    seed: 0,
                },
            )
            .unwrap();
            for r in &t {
                p.access(r);
                assert!(p.used() <= p.capacity(), "{name}");
            }
        }
    }

    proptest! {
        #[test]
        fn belady_never_misses_more_on_unit_sizes(ids in proptest::collection::vec(0u64..20, 1..300), cap in 1u64..10) {
            let t = unit(&ids);
            let opt = simulate(t.iter().copied(), &mut Belady::new(cap, true), 0).misses;
            for name in ["static-hash", "static-top", "lru", "fifo", "lfu", "arc", "sieve", "s3fifo", "lhd", "engine", "belady-admit-all"] {
                let mut p = by_name(name, Setup { cap, wss: 20, warmup: 50, seed: 0 }).unwrap();
                let m = simulate(t.iter().copied(), p.as_mut(), 0).misses;
                prop_assert!(opt <= m, "{name}: belady {opt} > {m}");
            }
        }
    }
}
