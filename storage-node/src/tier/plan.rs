//! The fast tier's window plan, pure: which peers are fast, how many reads a fast peer's
//! answer adds, which shards stay promoted, which are promoted now and which are demoted (and
//! why). No clock (the window's time is an argument), no I/O, generic over the shard and peer
//! id types; [`super::FastTier::placement_window`] gathers the inputs (peer speeds, the heat of
//! the shards read here, the engine's residents, which candidates are base shards held here)
//! and carries out the moves.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// The limits of one window's plan (from [`super::TierOptions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Reads a shard needs before it may be promoted.
    pub min_reads: u64,
    /// A shard not read for this long (ms) is cold.
    pub idle_ms: u64,
    /// Bytes that may be promoted at once.
    pub promote_bytes: u64,
    /// Bytes promoted per window at most.
    pub budget_bytes: u64,
}

/// A shard read here, as the window sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hot<K> {
    /// The shard.
    pub id: K,
    /// Reads counted.
    pub reads: u64,
    /// Last read, ms.
    pub last_ms: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Whether the placement engine keeps it (a resident of its cache).
    pub resident: bool,
    /// The engine's trained model: the probability that it is not read again before the
    /// engine's horizon (`None` before the first model).
    pub no_reuse: Option<f32>,
}

/// A shard the trained model gives less than this probability of no reuse is admitted.
pub(crate) const ADMIT_BELOW: f32 = 0.5;

/// What decided whether a shard is in the fast tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// The engine: its eviction (residency) and its trained model's reuse prediction.
    Engine,
    /// Before the first model: "read at least `min_reads` times lately".
    Reads,
}

impl Rule {
    /// The name in the status (`engine` or `reads`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Rule::Engine => "engine",
            Rule::Reads => "reads",
        }
    }
}

/// One shard's admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decision<K> {
    /// The shard.
    pub id: K,
    /// Its size.
    pub size: u64,
    /// Admitted to the fast tier.
    pub admit: bool,
    /// What decided.
    pub rule: Rule,
    /// What the "read `min_reads` times lately" rule alone would have decided (residency
    /// aside).
    pub by_reads: bool,
    /// A trained model took part (its prediction, and its eviction choices).
    pub modelled: bool,
}

impl<K> Decision<K> {
    /// The trained model decided otherwise than the reads rule would have.
    pub(crate) fn overrides_reads(&self) -> bool {
        self.modelled && self.admit != self.by_reads
    }
}

/// Admission of one shard: never if the engine evicted it; with a trained model, when the
/// model gives it less than [`ADMIT_BELOW`] probability of no reuse; before that, when it
/// was read at least `min_reads` times, the last within `idle_ms` of `now`.
pub(crate) fn decide<K: Copy>(h: &Hot<K>, lim: &Limits, now: u64) -> Decision<K> {
    let by_reads = h.reads >= lim.min_reads && now.saturating_sub(h.last_ms) <= lim.idle_ms;
    let (admit, rule) = match h.no_reuse {
        _ if !h.resident => (false, Rule::Engine),
        Some(p) => (p < ADMIT_BELOW, Rule::Engine),
        None => (by_reads, Rule::Reads),
    };
    Decision {
        id: h.id,
        size: h.size,
        admit,
        rule,
        by_reads,
        modelled: h.no_reuse.is_some(),
    }
}

/// The fast peers, fastest first: those whose estimated 1 MiB fetch time is at most `ratio`
/// of the median over the measured peers; none unless at least two are measured.
pub(crate) fn fast_peers<P: Copy>(mut measured: Vec<(P, f64)>, ratio: f64) -> Vec<P> {
    if measured.len() < 2 {
        return Vec::new();
    }
    measured.sort_by(|a, b| a.1.total_cmp(&b.1));
    let median = measured[measured.len() / 2].1;
    measured
        .into_iter()
        .filter(|(_, t)| *t <= ratio * median)
        .map(|(p, _)| p)
        .collect()
}

/// Whether this node is fast among its peers: its own time to have 1 MiB in hand
/// (`local_ms`), plus the median round trip to them (what a client adds to reach it), is at
/// most `ratio` of the median 1 MiB time over the peers it measured (`peers`: 1 MiB time and
/// round trip, ms; at least two, as for [`fast_peers`]).
pub(crate) fn self_fast(local_ms: Option<f64>, peers: &[(f64, f64)], ratio: f64) -> bool {
    let Some(local) = local_ms else {
        return false;
    };
    if peers.len() < 2 {
        return false;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mib = median(peers.iter().map(|p| p.0).collect());
    let rtt = median(peers.iter().map(|p| p.1).collect());
    local + rtt <= ratio * mib
}

/// Reads a fast peer's count `now` adds over the count seen last window, `seen` (a count
/// below it means the peer restarted and counts afresh), at most `cap`.
pub(crate) fn read_delta(seen: u32, now: u32, cap: u64) -> u64 {
    let d = if now >= seen { now - seen } else { now };
    u64::from(d).min(cap)
}

/// The shards that may be promoted, in `hot`'s order (hottest first): those [`decide`]
/// admits.
pub(crate) fn candidates<K: Copy>(hot: &[Hot<K>], lim: &Limits, now: u64) -> Vec<(K, u64)> {
    hot.iter()
        .map(|h| decide(h, lim, now))
        .filter(|d| d.admit)
        .map(|d| (d.id, d.size))
        .collect()
}

/// What decided a demotion, given the shard's heat here: the engine when it evicted the
/// shard or its model predicts no reuse, else the reads rule.
pub(crate) fn demotion_rule<K>(heat: Option<&Hot<K>>) -> Rule {
    match heat {
        Some(h) if !h.resident || h.no_reuse.is_some() => Rule::Engine,
        _ => Rule::Reads,
    }
}

/// Why a promoted shard is demoted, given its heat here (`None`: not read here any more).
pub(crate) fn demotion_reason<K>(heat: Option<&Hot<K>>, idle_ms: u64, now: u64) -> String {
    match heat {
        None => "cold: no longer among the shards read here".to_string(),
        Some(h) if !h.resident => "the engine evicted it for hotter shards".to_string(),
        Some(h) if h.no_reuse.is_some_and(|p| p >= ADMIT_BELOW) => format!(
            "the engine's model predicts no read before its horizon (probability {:.2})",
            h.no_reuse.unwrap_or(1.0)
        ),
        Some(h) if now.saturating_sub(h.last_ms) > idle_ms => format!(
            "cold: no reads for {:.0} s",
            now.saturating_sub(h.last_ms) as f64 / 1e3
        ),
        Some(_) => "over the promotable bytes, or no longer held here".to_string(),
    }
}

/// One window's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowPlan<K> {
    /// The shards to keep promoted, hottest first, with their sizes.
    pub keep: Vec<(K, u64)>,
    /// Their bytes (at most `promote_bytes`).
    pub planned_bytes: u64,
    /// Shards to promote now (kept but not yet promoted), within `budget_bytes`.
    pub promote: Vec<(K, u64)>,
    /// Promoted shards to demote, each with the reason.
    pub demote: Vec<(K, String)>,
}

/// The window's plan: the candidates (see [`candidates`]) that are base shards held here, in
/// order, up to `promote_bytes`, are kept; those not promoted yet are promoted in that order
/// until one does not fit the window's `budget_bytes`; every other shard in `promoted` is
/// demoted, with the reason from its heat in `hot`.
pub(crate) fn plan_window<K: Copy + Eq + Hash + Ord>(
    cands: &[(K, u64)],
    base: &HashSet<K>,
    hot: &[Hot<K>],
    promoted: &HashSet<K>,
    lim: &Limits,
    now: u64,
) -> WindowPlan<K> {
    let mut keep = Vec::new();
    let mut bytes = 0u64;
    for &(id, size) in cands {
        if bytes.saturating_add(size) <= lim.promote_bytes && base.contains(&id) {
            bytes += size;
            keep.push((id, size));
        }
    }
    let mut promote = Vec::new();
    let mut budget = lim.budget_bytes;
    for &(id, size) in &keep {
        if promoted.contains(&id) {
            continue;
        }
        if size > budget {
            break;
        }
        budget -= size;
        promote.push((id, size));
    }
    let kept: HashSet<K> = keep.iter().map(|x| x.0).collect();
    let heat: HashMap<K, &Hot<K>> = hot.iter().map(|h| (h.id, h)).collect();
    let mut demote: Vec<(K, String)> = promoted
        .iter()
        .filter(|id| !kept.contains(id))
        .map(|id| {
            (
                *id,
                demotion_reason(heat.get(id).copied(), lim.idle_ms, now),
            )
        })
        .collect();
    demote.sort_by_key(|a| a.0);
    WindowPlan {
        keep,
        planned_bytes: bytes,
        promote,
        demote,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        min_reads: 2,
        idle_ms: 3_000,
        promote_bytes: 100,
        budget_bytes: 50,
    };

    fn hot(id: u8, reads: u64, last_ms: u64, size: u64, resident: bool) -> Hot<u8> {
        Hot {
            id,
            reads,
            last_ms,
            size,
            resident,
            no_reuse: None,
        }
    }

    fn model(h: Hot<u8>, p: f32) -> Hot<u8> {
        Hot {
            no_reuse: Some(p),
            ..h
        }
    }

    #[test]
    fn decide_table() {
        let now = 10_000;
        // (shard, admit, rule, by_reads, overrides the reads rule)
        let cases = [
            (hot(1, 9, now, 10, true), true, Rule::Reads, true, false),
            (hot(2, 1, now, 10, true), false, Rule::Reads, false, false),
            (
                hot(3, 9, now - 3_001, 10, true),
                false,
                Rule::Reads,
                false,
                false,
            ),
            // evicted before any model (least recently used): not the model's decision
            (hot(4, 9, now, 10, false), false, Rule::Engine, true, false),
            // a trained model decides: read once, predicted back soon
            (
                model(hot(5, 1, now, 10, true), 0.1),
                true,
                Rule::Engine,
                false,
                true,
            ),
            // read twice, predicted never back
            (
                model(hot(6, 2, now, 10, true), 0.9),
                false,
                Rule::Engine,
                true,
                true,
            ),
            (
                model(hot(7, 9, now, 10, true), 0.2),
                true,
                Rule::Engine,
                true,
                false,
            ),
            (
                model(hot(8, 9, now, 10, true), 0.5),
                false,
                Rule::Engine,
                true,
                true,
            ),
            // evicted: the model's odds do not matter
            (
                model(hot(9, 9, now, 10, false), 0.0),
                false,
                Rule::Engine,
                true,
                true,
            ),
        ];
        for (h, admit, rule, by_reads, over) in cases {
            let d = decide(&h, &LIM, now);
            assert_eq!(
                (d.admit, d.rule, d.by_reads, d.overrides_reads()),
                (admit, rule, by_reads, over),
                "shard {}",
                h.id
            );
        }
        assert_eq!(demotion_rule(Some(&hot(1, 9, now, 1, true))), Rule::Reads);
        assert_eq!(demotion_rule::<u8>(None), Rule::Reads);
        assert_eq!(demotion_rule(Some(&hot(1, 9, now, 1, false))), Rule::Engine);
        assert_eq!(
            demotion_rule(Some(&model(hot(1, 9, now, 1, true), 0.7))),
            Rule::Engine
        );
        assert_eq!(
            demotion_reason(Some(&model(hot(1, 9, now, 1, true), 0.7)), 3_000, now),
            "the engine's model predicts no read before its horizon (probability 0.70)"
        );
    }

    #[test]
    fn self_fast_table() {
        // (own ms per MiB, peers' (1 MiB ms, rtt ms)), fast
        const SLOW_NET: &[(f64, f64)] = &[
            (45.0, 1.0),
            (46.0, 1.0),
            (44.0, 1.0),
            (5.0, 1.0),
            (47.0, 1.0),
        ];
        type Case = (Option<f64>, &'static [(f64, f64)], bool);
        let cases: [Case; 7] = [
            (Some(3.0), SLOW_NET, true),
            // a slow node: 41 ms of its own is more than half the median 45 ms
            (Some(41.0), SLOW_NET, false),
            (Some(21.0), SLOW_NET, true),
            (Some(22.0), SLOW_NET, false),
            // not measured yet, or too few peers
            (None, SLOW_NET, false),
            (Some(1.0), &[(45.0, 1.0)], false),
            // far peers: the round trip counts against this node too
            (
                Some(3.0),
                &[(120.0, 100.0), (130.0, 100.0), (125.0, 100.0)],
                false,
            ),
        ];
        for (local, peers, want) in cases {
            assert_eq!(self_fast(local, peers, 0.5), want, "{local:?} {peers:?}");
        }
    }

    #[test]
    fn fast_peers_table() {
        // (measured 1 MiB times, expected fast peers fastest first)
        type Case<'a> = (&'a [(u8, f64)], &'a [u8]);
        let cases: &[Case] = &[
            (&[], &[]),
            (&[(1, 1.0)], &[]),
            (&[(1, 10.0), (2, 100.0)], &[1]),
            (&[(1, 10.0), (2, 100.0), (3, 100.0)], &[1]),
            (&[(3, 50.0), (1, 10.0), (2, 100.0), (4, 120.0)], &[1, 3]),
            (&[(1, 10.0), (2, 10.0), (3, 10.0)], &[]),
        ];
        for (i, (m, want)) in cases.iter().enumerate() {
            assert_eq!(fast_peers(m.to_vec(), 0.5), want.to_vec(), "case {i}");
        }
    }

    #[test]
    fn read_delta_table() {
        // (seen, now, cap, delta)
        for (i, &(seen, now, cap, want)) in [
            (0u32, 5u32, 100u64, 5u64),
            (5, 5, 100, 0),
            (5, 9, 100, 4),
            (9, 3, 100, 3), // restarted: counts afresh
            (0, u32::MAX, 1000, 1000),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(read_delta(seen, now, cap), want, "case {i}");
        }
    }

    #[test]
    fn candidates_are_hot_residents_read_lately() {
        let now = 10_000;
        let h = [
            hot(1, 9, now, 10, true),
            hot(2, 1, now, 10, true),         // too few reads
            hot(3, 9, now - 3_001, 10, true), // idle too long
            hot(4, 9, now - 3_000, 10, true),
            hot(5, 9, now, 10, false), // evicted by the engine
        ];
        assert_eq!(candidates(&h, &LIM, now), vec![(1, 10), (4, 10)]);
    }

    #[test]
    fn plan_table() {
        let now = 10_000;
        struct Case {
            name: &'static str,
            hot: Vec<Hot<u8>>,
            base: &'static [u8],
            promoted: &'static [u8],
            keep: &'static [u8],
            promote: &'static [u8],
            demote: &'static [(u8, &'static str)],
        }
        let cases = [
            Case {
                name: "hot base shards are promoted within the budget, hottest first",
                hot: vec![hot(1, 9, now, 30, true), hot(2, 8, now, 30, true)],
                base: &[1, 2],
                promoted: &[],
                keep: &[1, 2],
                promote: &[1],
                demote: &[],
            },
            Case {
                name: "already promoted shards do not use the budget",
                hot: vec![hot(1, 9, now, 30, true), hot(2, 8, now, 30, true)],
                base: &[1, 2],
                promoted: &[1],
                keep: &[1, 2],
                promote: &[2],
                demote: &[],
            },
            Case {
                name: "a shard over the promotable bytes is skipped, a smaller one fits",
                hot: vec![
                    hot(1, 9, now, 60, true),
                    hot(2, 8, now, 60, true),
                    hot(3, 7, now, 40, true),
                ],
                base: &[1, 2, 3],
                promoted: &[1, 2],
                keep: &[1, 3],
                promote: &[3],
                demote: &[(2, "over the promotable bytes, or no longer held here")],
            },
            Case {
                name: "the budget stops at the first shard that does not fit",
                hot: vec![hot(1, 9, now, 60, true), hot(2, 8, now, 10, true)],
                base: &[1, 2],
                promoted: &[],
                keep: &[1, 2],
                promote: &[],
                demote: &[],
            },
            Case {
                name: "shards not held here as base shards are never kept",
                hot: vec![hot(1, 9, now, 10, true)],
                base: &[],
                promoted: &[1],
                keep: &[],
                promote: &[],
                demote: &[(1, "over the promotable bytes, or no longer held here")],
            },
            Case {
                name: "cold and evicted shards are demoted with their reasons",
                hot: vec![hot(2, 9, now - 5_000, 10, true), hot(3, 9, now, 10, false)],
                base: &[1, 2, 3],
                promoted: &[1, 2, 3],
                keep: &[],
                promote: &[],
                demote: &[
                    (1, "cold: no longer among the shards read here"),
                    (2, "cold: no reads for 5 s"),
                    (3, "the engine evicted it for hotter shards"),
                ],
            },
        ];
        for c in cases {
            let cands = candidates(&c.hot, &LIM, now);
            let base: HashSet<u8> = c.base.iter().copied().collect();
            let promoted: HashSet<u8> = c.promoted.iter().copied().collect();
            let p = plan_window(&cands, &base, &c.hot, &promoted, &LIM, now);
            let ids = |v: &[(u8, u64)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
            assert_eq!(ids(&p.keep), c.keep, "{}: keep", c.name);
            assert_eq!(ids(&p.promote), c.promote, "{}: promote", c.name);
            let demote: Vec<(u8, String)> =
                c.demote.iter().map(|(i, r)| (*i, r.to_string())).collect();
            assert_eq!(p.demote, demote, "{}: demote", c.name);
            assert!(p.planned_bytes <= LIM.promote_bytes, "{}", c.name);
            let promoted_bytes: u64 = p.promote.iter().map(|x| x.1).sum();
            assert!(promoted_bytes <= LIM.budget_bytes, "{}", c.name);
        }
    }
}
