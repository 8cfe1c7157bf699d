//! The engine's tests: plans, seeds, node-sized training, capacity.

use super::*;
use crate::policy::{Belady, Lru};
use crate::sim::{annotate_next, simulate};

/// `epochs` passes over `n` unit-size shards, each pass in its own seeded shuffle: what a
/// training job reading a dataset epoch by epoch asks of the fast tier.
fn epoch_workload(n: u64, epochs: u64, seed: u64) -> Vec<Request> {
    let mut rng = Rng::new(seed);
    let mut v = Vec::new();
    for _ in 0..epochs {
        let mut order: Vec<u64> = (0..n).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        v.extend(order.into_iter().map(|id| Request {
            time: 0,
            id,
            size: 1,
            next: -1,
        }));
    }
    annotate_next(&mut v);
    v
}

#[test]
fn registered_epoch_plan_reaches_the_plan_aware_optimum() {
    let reqs = epoch_workload(5_000, 4, 7);
    let cap = 500; // 10 % of the dataset
    let opt = simulate(reqs.iter().copied(), &mut Belady::new(cap, true), 0);
    let lru = simulate(reqs.iter().copied(), &mut Lru::new(cap), 0);
    let mut e = Engine::new(cap);
    e.register_plan(reqs.iter().map(|r| r.id).collect());
    let got = simulate(reqs.iter().copied(), &mut e, 0);
    let hr = |m: &crate::sim::Metrics| 1.0 - m.miss_ratio();
    eprintln!(
        "epoch shuffle, 10 %: hit ratio belady {:.4}, engine with plan {:.4}, lru {:.4}",
        hr(&opt),
        hr(&got),
        hr(&lru)
    );
    assert!(
        hr(&got) >= 0.95 * hr(&opt),
        "{} < 0.95 x {}",
        hr(&got),
        hr(&opt)
    );
    assert!(hr(&got) > 2.0 * hr(&lru));
}

#[test]
fn a_seed_reproduces_its_run_and_seed_zero_is_the_default() {
    let reqs: Vec<Request> = (0..40_000u64)
        .map(|i| Request {
            time: 0,
            id: ((i * 7919) % 3001) ^ (i % 5),
            size: 1 + (i % 3) as u32,
            next: -1,
        })
        .collect();
    let hits = |mut e: Engine| -> Vec<bool> { reqs.iter().map(|r| e.access(r)).collect() };
    assert_eq!(
        hits(Engine::with_seed(300, 3)),
        hits(Engine::with_seed(300, 3))
    );
    assert_eq!(hits(Engine::with_seed(300, 0)), hits(Engine::new(300)));
    assert_ne!(hits(Engine::with_seed(300, 3)), hits(Engine::new(300)));
}

/// A node-sized run: ten shards read in turn over and over, and between them, in turn,
/// 240 shards each read twice in a row and not again for 720 requests (what "read twice"
/// would promote).
fn hot_and_pairs(steps: u64) -> Vec<Request> {
    let mut v = Vec::new();
    let req = |id| Request {
        time: 0,
        id,
        size: 1,
        next: -1,
    };
    for i in 0..steps {
        v.push(req(i % 10));
        v.push(req(1_000 + i % 240));
        v.push(req(1_000 + i % 240));
    }
    v
}

#[test]
fn a_node_sized_engine_trains_early_and_tells_pairs_from_the_hot_set() {
    let mut e = Engine::with_training(
        20,
        1,
        Training {
            first: 128,
            every: 256,
        },
    );
    assert_eq!(e.no_reuse_odds(0), None);
    for r in hot_and_pairs(700) {
        e.access(&r);
    }
    assert!(e.is_trained());
    let pair = e.no_reuse_odds(1_000 + 699 % 240).unwrap();
    let hot = e.no_reuse_odds(699 % 10).unwrap();
    eprintln!("no-reuse odds: a shard read twice in a row {pair:.3}, a hot shard {hot:.3}");
    assert!(pair > 0.5, "{pair}");
    assert!(hot < 0.5, "{hot}");
    assert_eq!(e.no_reuse_odds(77_777), None, "no history, no odds");
    // the default schedule has not trained after 300 steps; the node-sized one has
    let run = |mut e: Engine| {
        for r in hot_and_pairs(300) {
            e.access(&r);
        }
        e.is_trained()
    };
    assert!(!run(Engine::new(20)));
    let t = Training {
        first: 128,
        every: 256,
    };
    assert!(run(Engine::with_training(20, 1, t)));
}

#[test]
fn a_smaller_capacity_evicts_at_once() {
    let mut e = Engine::new(100);
    for i in 0..100u64 {
        e.access(&Request {
            time: 0,
            id: i,
            size: 1,
            next: -1,
        });
    }
    assert_eq!(e.used(), 100);
    e.set_capacity(30);
    assert_eq!((e.used(), e.capacity()), (30, 30));
    // the least recently used went (no model yet)
    assert!((70..100).all(|i| e.contains(i)));
    e.set_capacity(0);
    assert_eq!(e.used(), 0);
}

#[test]
fn capacity_holds_and_oversized_objects_are_not_admitted() {
    let mut e = Engine::new(100);
    for i in 0..20_000u64 {
        let r = Request {
            time: 0,
            id: i % 977,
            size: if i % 13 == 0 { 500 } else { 1 + (i % 7) as u32 },
            next: -1,
        };
        e.access(&r);
        assert!(e.used() <= e.capacity());
    }
    assert!(!e.contains(0)); // size 500 > capacity
                             // its footprint counts every tracked object's history at least
    let (n, bytes) = e.footprint().unwrap();
    assert_eq!(n, e.tracked() as u64);
    assert!(n > 0 && bytes >= n * std::mem::size_of::<Meta>() as u64);
}
