//! Rebalancing: spreading a stripe whose shards share nodes onto nodes that hold nothing of it.
//!
//! A dataset put while fewer than `k + m` nodes were reachable sits on the publishing node
//! (or on a few nodes). Repair only rebuilds shards that no live node holds, so nothing else
//! would ever spread such a stripe. This module decides, for one stripe and one node (`me`),
//! what that node should do about it. It is pure: no clock, no I/O, generic over the shard and
//! peer id types (the node passes CIDs and peer ids; the tests pass small integers). The node's
//! repair round (`Node::repair_round`) runs it on every stripe after the lost-shard
//! handling and carries out the actions.
//!
//! # The rule
//!
//! Shards are taken as distinct ids (a stripe whose two data blocks have the same bytes has one
//! shard id twice; a node holding it covers both positions). A node's *load* is the number of
//! the stripe's distinct shards it holds. A holder of shard `s` is *clean* when its load is 1:
//! it holds `s` and nothing else of the stripe.
//!
//! - **Nothing when a shard is lost.** If any shard has no holder, the plan is empty: rebuilding
//!   it is repair's job, it needs the free nodes, and the extra copies are worth keeping while
//!   the stripe is degraded.
//! - **Copy (leader only).** The stripe's *leader* is its holder with the lowest id, the same
//!   node that repair picks. It finds a maximum matching of shards to distinct holders; the
//!   shards the matching leaves over are the fewest that must move for every shard to sit on a
//!   node of its own. Each goes to a *free* node (live, holding nothing of the stripe, with room
//!   for a shard), ranked by the same weighted rendezvous key as put and repair (the stripe's
//!   first data shard CID), at most one shard per free node. With too few free nodes the first
//!   leftover shards move now and the rest in later rounds, as nodes join.
//! - **Drop (only `me`'s own copies).** When `me` holds two or more shards, it drops each shard
//!   that also has a clean holder elsewhere, keeping at least one shard. Drops are planned on
//!   the holders as they will be once this plan's copies land, so the leader drops what it has
//!   just moved; the caller carries out a drop only after checking its clean holder (the
//!   confirmed target of a copy, or a peer that still answers it holds exactly that shard and
//!   serves bytes that verify).
//!
//! # Why a drop is safe
//!
//! Take one view of the stripe's holders, and let every node apply its plan to it.
//!
//! 1. A drop of `s` by `me` needs another holder `c` of `s` whose load is 1. A node with load 1
//!    never drops (dropping needs a load of 2 or more). So `c` keeps `s`, and after all the
//!    drops `s` still has at least one verified copy, on a node other than the dropper: a drop
//!    never removes the only copy of a shard and never the only copy elsewhere.
//! 2. Two crowded nodes sharing a shard are not clean for each other, so they can never both
//!    drop the last copies of it.
//! 3. A dropper keeps at least one shard, so it stays a holder; the clean holder stays one too.
//!    The stripe's number of distinct holders never goes down, and copies only add holders.
//! 4. Copies go to nodes that hold nothing of the stripe, so a clean holder never becomes
//!    crowded through this rule within one view.
//!
//! Views taken at different times by different nodes can disagree. The caller narrows that
//! window by re-checking a pre-existing clean holder just before the drop (it still holds
//! exactly that shard of the stripe, and serves it); what is left needs two nodes each acting
//! as the leader of the same stripe on different views and copying onto the same free node.
//! A block that is a shard of more than one stripe (the same bytes twice in a dataset, or in
//! two datasets) is never dropped: the per-stripe argument says nothing about its other stripe.
//!
//! # Convergence
//!
//! Each copy gives a leftover shard a clean holder; a maximum matching is perfect once every
//! shard has a holder of its own, and then the stripe has as many distinct holders as
//! distinct shards. From a stripe on one node (the put-on-a-small-network case) with enough
//! free nodes, one leader round moves every shard but one and the crowded holders' rounds drop
//! the moved copies: every shard ends on exactly one node. A stripe whose shards all have
//! two crowded holders each (a perfect matching with no clean holder) is left as it is: it
//! already has enough distinct holders, and no drop there could be proved safe without
//! coordination.

use super::Live;
use cairn_core::rendezvous::{self, Candidate};
use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

/// One stripe as a node sees it now.
#[derive(Debug, Clone, Copy)]
pub struct StripeView<'a, S, P> {
    /// Rendezvous key: the stripe's first data shard CID's bytes, as in put and repair.
    pub key: &'a [u8],
    /// The stripe's shard ids in stripe order (data then parity); repeats are one shard.
    pub shards: &'a [S],
    /// Verified live holders of each shard, aligned with `shards` (missing entries: none).
    pub holders: &'a [Vec<P>],
    /// Live nodes, holders included.
    pub live: &'a [Live<P>],
    /// Bytes a node needs free to take one shard (the stripe's padded shard length).
    pub shard_bytes: u64,
}

/// What a node should do about a stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action<S, P> {
    /// Copy `shard` to `to`, a live node that holds nothing of the stripe (leader only).
    Copy {
        /// The shard.
        shard: S,
        /// Its new holder.
        to: P,
    },
    /// Delete this node's copy of `shard`: `clean` holds it and nothing else of the stripe
    /// (possibly as the target of a `Copy` in the same plan, which must be confirmed first).
    Drop {
        /// The shard.
        shard: S,
        /// The holder that makes the drop safe.
        clean: P,
    },
}

/// The actions for `me` on one stripe: copies first (only when `me` leads the stripe), then
/// drops of `me`'s own copies, planned as if the copies had landed. Empty when the stripe is
/// spread already, when a shard is lost, or when `me` holds nothing of it.
pub fn plan<S, P>(view: &StripeView<'_, S, P>, me: P) -> Vec<Action<S, P>>
where
    S: Eq + Hash + Copy,
    P: Ord + Hash + Copy,
{
    // distinct shards (first position wins), each with its sorted, deduplicated holders
    let mut seen = HashSet::new();
    let mut shards: Vec<S> = Vec::new();
    let mut held: Vec<Vec<P>> = Vec::new();
    for (i, s) in view.shards.iter().enumerate() {
        if !seen.insert(*s) {
            continue;
        }
        let mut h = view.holders.get(i).cloned().unwrap_or_default();
        h.sort_unstable();
        h.dedup();
        if h.is_empty() {
            // lost: repair's job
            return Vec::new();
        }
        shards.push(*s);
        held.push(h);
    }
    let load = loads(&held);
    if !load.contains_key(&me) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let leader = load.keys().next() == Some(&me);
    if leader {
        let owner = max_matching(&held, &load);
        let leftover: Vec<usize> = (0..shards.len()).filter(|&i| owner[i].is_none()).collect();
        if !leftover.is_empty() {
            let mut ids = HashSet::new();
            let free: Vec<&Live<P>> = view
                .live
                .iter()
                .filter(|l| !load.contains_key(&l.id) && l.free >= view.shard_bytes)
                .filter(|l| ids.insert(l.id))
                .collect();
            let cands: Vec<Candidate> = free
                .iter()
                .map(|l| Candidate {
                    id: l.rank_id.clone(),
                    weight: l.free.max(1),
                })
                .collect();
            for (&i, r) in leftover.iter().zip(rendezvous::rank(view.key, &cands)) {
                let to = free[r].id;
                out.push(Action::Copy {
                    shard: shards[i],
                    to,
                });
                held[i].push(to);
            }
        }
    }
    // drops of my own copies, on the holders as they will be once the copies land
    let load = loads(&held);
    let mut mine = load.get(&me).copied().unwrap_or(0);
    for (i, h) in held.iter().enumerate() {
        if mine <= 1 {
            break;
        }
        if !h.contains(&me) {
            continue;
        }
        let clean = h
            .iter()
            .filter(|p| **p != me && load.get(p) == Some(&1))
            .min();
        if let Some(&clean) = clean {
            out.push(Action::Drop {
                shard: shards[i],
                clean,
            });
            mine -= 1;
        }
    }
    out
}

/// How many of the shards each holder holds.
fn loads<P: Ord + Copy>(held: &[Vec<P>]) -> BTreeMap<P, usize> {
    let mut load = BTreeMap::new();
    for h in held {
        for p in h {
            *load.entry(*p).or_insert(0) += 1;
        }
    }
    load
}

/// A maximum matching of shards to distinct holders (Kuhn's augmenting paths; a stripe has at
/// most a few hundred shards): for each shard, the holder it is matched to, if any. Holders
/// are tried least loaded first, then by id, so the result is deterministic and a clean holder
/// is preferred.
fn max_matching<P: Ord + Hash + Copy>(
    held: &[Vec<P>],
    load: &BTreeMap<P, usize>,
) -> Vec<Option<P>> {
    let order: Vec<Vec<P>> = held
        .iter()
        .map(|h| {
            let mut h = h.clone();
            h.sort_by_key(|p| (load.get(p).copied().unwrap_or(0), *p));
            h
        })
        .collect();
    let mut shard_of: BTreeMap<P, usize> = BTreeMap::new();
    for s in 0..order.len() {
        let mut visited = HashSet::new();
        augment(s, &order, &mut shard_of, &mut visited);
    }
    let mut owner = vec![None; held.len()];
    for (p, s) in shard_of {
        owner[s] = Some(p);
    }
    owner
}

/// Tries to match shard `s`, moving earlier matches along an augmenting path.
fn augment<P: Ord + Hash + Copy>(
    s: usize,
    order: &[Vec<P>],
    shard_of: &mut BTreeMap<P, usize>,
    visited: &mut HashSet<P>,
) -> bool {
    for &p in &order[s] {
        if !visited.insert(p) {
            continue;
        }
        let free = match shard_of.get(&p) {
            None => true,
            Some(&t) => augment(t, order, shard_of, visited),
        };
        if free {
            shard_of.insert(p, s);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    type A = Action<u8, u8>;

    /// Live nodes `0..n`, each with `free` bytes.
    fn live(n: u8, free: u64) -> Vec<Live<u8>> {
        (0..n)
            .map(|id| Live {
                id,
                rank_id: vec![id],
                free,
            })
            .collect()
    }

    /// Holders per shard `0..shards`, from "node:shards ..." (`"0:012 1:345"`: node 0 holds
    /// shards 0, 1 and 2, node 1 holds 3, 4 and 5; one digit each).
    fn holding(shards: usize, by: &str) -> Vec<Vec<u8>> {
        let digit = |c: char| c.to_digit(10).unwrap() as u8;
        let mut h = vec![Vec::new(); shards];
        for entry in by.split_whitespace() {
            let (p, ss) = entry.split_once(':').unwrap();
            for s in ss.chars() {
                h[digit(s) as usize].push(digit(p.chars().next().unwrap()));
            }
        }
        h
    }

    const SHARDS: [u8; 6] = [0, 1, 2, 3, 4, 5];

    fn run(holders: &[Vec<u8>], live: &[Live<u8>], me: u8) -> Vec<A> {
        plan(
            &StripeView {
                key: b"stripe-key",
                shards: &SHARDS[..holders.len()],
                holders,
                live,
                shard_bytes: 100,
            },
            me,
        )
    }

    fn copies(a: &[A]) -> Vec<(u8, u8)> {
        a.iter()
            .filter_map(|x| match x {
                Action::Copy { shard, to } => Some((*shard, *to)),
                _ => None,
            })
            .collect()
    }

    fn drops(a: &[A]) -> Vec<(u8, u8)> {
        a.iter()
            .filter_map(|x| match x {
                Action::Drop { shard, clean } => Some((*shard, *clean)),
                _ => None,
            })
            .collect()
    }

    /// Rendezvous order of the nodes in `ids` for the test key (equal free space).
    fn ranked(ids: &[u8]) -> Vec<u8> {
        crate::plan::tests::ranked(b"stripe-key", ids)
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            holders: Vec<Vec<u8>>,
            live: Vec<Live<u8>>,
            me: u8,
            copied: Vec<u8>,
            dropped: Vec<(u8, u8)>,
        }
        let cases = vec![
            Case {
                name: "already distinct: nothing to do",
                holders: holding(6, "0:0 1:1 2:2 3:3 4:4 5:5"),
                live: live(8, 1000),
                me: 0,
                copied: vec![],
                dropped: vec![],
            },
            Case {
                name: "all on one node, 5 free: 5 move, the leader drops them, keeps one",
                holders: holding(6, "0:012345"),
                live: live(6, 1000),
                me: 0,
                copied: vec![1, 2, 3, 4, 5],
                dropped: vec![(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)],
            },
            Case {
                name: "all on one node, 7 free: still only 5 move",
                holders: holding(6, "0:012345"),
                live: live(8, 1000),
                me: 0,
                copied: vec![1, 2, 3, 4, 5],
                dropped: vec![(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)],
            },
            Case {
                name: "all on one node, 1 free (the 2-node network): one moves now",
                holders: holding(6, "0:012345"),
                live: live(2, 1000),
                me: 0,
                copied: vec![1],
                dropped: vec![(1, 0)],
            },
            Case {
                name: "all on one node, no free node: nothing",
                holders: holding(6, "0:012345"),
                live: live(1, 1000),
                me: 0,
                copied: vec![],
                dropped: vec![],
            },
            Case {
                name: "free nodes without room for a shard are not chosen",
                holders: holding(6, "0:012345"),
                live: live(6, 99),
                me: 0,
                copied: vec![],
                dropped: vec![],
            },
            Case {
                name: "two nodes with 3 each, 4 free, leader: 4 move, the leader drops its 2",
                holders: holding(6, "0:012 1:345"),
                live: live(6, 1000),
                me: 0,
                copied: vec![1, 2, 4, 5],
                dropped: vec![(1, 0), (2, 0)],
            },
            Case {
                name: "two nodes with 3 each, moved already: the other drops its 2",
                holders: holding(6, "0:0 1:345 2:1 3:2 4:4 5:5"),
                live: live(6, 1000),
                me: 1,
                copied: vec![],
                dropped: vec![(4, 4), (5, 5)],
            },
            Case {
                name: "me not leader: no copies, and no drop without a clean holder",
                holders: holding(6, "0:012 1:345"),
                live: live(6, 1000),
                me: 1,
                copied: vec![],
                dropped: vec![],
            },
            Case {
                name: "me holds nothing of the stripe: nothing",
                holders: holding(6, "0:012345"),
                live: live(6, 1000),
                me: 4,
                copied: vec![],
                dropped: vec![],
            },
            Case {
                name: "drop with a clean holder (a node holding only that shard)",
                holders: holding(6, "0:01 1:1 2:2 3:3 4:4 5:5"),
                live: live(6, 1000),
                me: 0,
                copied: vec![],
                dropped: vec![(1, 1)],
            },
            Case {
                name: "every shard clean elsewhere: drop all but one",
                holders: holding(3, "0:012 1:0 2:1 3:2"),
                live: live(4, 1000),
                me: 0,
                copied: vec![],
                dropped: vec![(0, 1), (1, 2)],
            },
            Case {
                name: "two crowded nodes sharing a shard, no free node: neither drops it",
                holders: holding(6, "0:01 1:12 2:3 3:4 4:5"),
                live: live(5, 1000),
                me: 0,
                copied: vec![],
                dropped: vec![],
            },
            Case {
                name: "two crowded nodes sharing a shard, the other one's view",
                holders: holding(6, "0:01 1:12 2:3 3:4 4:5"),
                live: live(5, 1000),
                me: 1,
                copied: vec![],
                dropped: vec![],
            },
            Case {
                name: "a shard lost: left to repair, no copy and no drop",
                holders: holding(6, "0:012 1:1 2:3 3:4"),
                live: live(8, 1000),
                me: 0,
                copied: vec![],
                dropped: vec![],
            },
            Case {
                name: "a short last stripe (2 data + 2 parity) on one node, 3 free",
                holders: holding(4, "0:0123"),
                live: live(4, 1000),
                me: 0,
                copied: vec![1, 2, 3],
                dropped: vec![(1, 0), (2, 0), (3, 0)],
            },
        ];
        for c in cases {
            let a = run(&c.holders, &c.live, c.me);
            let cp = copies(&a);
            let got: Vec<u8> = cp.iter().map(|x| x.0).collect();
            assert_eq!(got, c.copied, "{}: {a:?}", c.name);
            // targets: distinct, live, holding nothing of the stripe
            let holders: BTreeSet<u8> = c.holders.iter().flatten().copied().collect();
            let to: BTreeSet<u8> = cp.iter().map(|x| x.1).collect();
            assert_eq!(to.len(), cp.len(), "{}: {a:?}", c.name);
            assert!(to.iter().all(|t| !holders.contains(t)), "{}: {a:?}", c.name);
            // a drop's clean holder is the copy target when the shard moves in this plan
            let want: Vec<(u8, u8)> = c
                .dropped
                .iter()
                .map(|&(s, clean)| match cp.iter().find(|x| x.0 == s) {
                    Some(&(_, t)) if clean == c.me => (s, t),
                    _ => (s, clean),
                })
                .collect();
            assert_eq!(drops(&a), want, "{}: {a:?}", c.name);
        }
    }

    #[test]
    fn copies_follow_the_rendezvous_rank_of_free_nodes() {
        let h = holding(6, "0:012345");
        let a = run(&h, &live(6, 1000), 0);
        let to: Vec<u8> = copies(&a).iter().map(|x| x.1).collect();
        assert_eq!(to, ranked(&[1, 2, 3, 4, 5]));
    }

    #[test]
    fn a_repeated_shard_id_counts_once() {
        // data shards 0 and 1 are the same block (same bytes): 5 distinct shards
        let shards = [7u8, 7, 2, 3, 4, 5];
        let holders = vec![vec![0u8]; 6];
        let a = plan(
            &StripeView {
                key: b"k",
                shards: &shards,
                holders: &holders,
                live: &live(8, 1000),
                shard_bytes: 1,
            },
            0,
        );
        assert_eq!(copies(&a).len(), 4, "{a:?}");
        assert_eq!(drops(&a).len(), 4, "{a:?}");
        assert!(copies(&a).iter().all(|c| c.0 != 7), "{a:?}");
    }

    #[test]
    fn holders_listed_twice_or_missing_entries() {
        // a holder listed twice is one holder; a shard without an entry is lost
        let h = vec![vec![0u8, 0], vec![0]];
        assert_eq!(copies(&run(&h, &live(3, 1000), 0)).len(), 1);
        let short = vec![vec![0u8]];
        let a = plan(
            &StripeView {
                key: b"k",
                shards: &SHARDS[..2],
                holders: &short,
                live: &live(3, 1000),
                shard_bytes: 1,
            },
            0,
        );
        assert!(a.is_empty());
    }

    /// State: holders per shard. Applies `me`'s plan on the view `view` to `state` (copies
    /// land, then drops), asserting no shard loses its last holder.
    fn apply(state: &mut [BTreeSet<u8>], view: &[BTreeSet<u8>], nodes: u8, me: u8) {
        let hv: Vec<Vec<u8>> = view.iter().map(|s| s.iter().copied().collect()).collect();
        for a in run(&hv, &live(nodes, 1000), me) {
            match a {
                Action::Copy { shard, to } => {
                    state[shard as usize].insert(to);
                }
                Action::Drop { shard, .. } => {
                    state[shard as usize].remove(&me);
                }
            }
        }
        assert!(state.iter().all(|h| !h.is_empty()), "{state:?}");
    }

    fn distinct(state: &[BTreeSet<u8>]) -> usize {
        state.iter().flatten().collect::<BTreeSet<_>>().len()
    }

    #[test]
    fn put_on_two_nodes_then_grown_to_six_ends_one_holder_per_shard() {
        let mut state: Vec<BTreeSet<u8>> = vec![BTreeSet::from([0]); 6];
        // two nodes: one round
        for me in 0..2 {
            let v = state.clone();
            apply(&mut state, &v, 2, me);
        }
        assert_eq!(distinct(&state), 2);
        // six nodes: rounds until nothing changes
        for _ in 0..3 {
            for me in 0..6 {
                let v = state.clone();
                apply(&mut state, &v, 6, me);
            }
        }
        assert!(state.iter().all(|h| h.len() == 1), "{state:?}");
        assert_eq!(distinct(&state), 6);
    }

    proptest! {
        /// Every node plans on the same view and all plans are applied at once: no shard ever
        /// loses its last holder, nobody drops everything, and distinct holders never shrink.
        #[test]
        fn simultaneous_plans_never_lose_a_shard(
            held in proptest::collection::vec(proptest::collection::btree_set(0u8..5, 1..4), 1..7),
            extra in 0u8..4,
        ) {
            let nodes = 5 + extra;
            let hv: Vec<Vec<u8>> = held.iter().map(|s| s.iter().copied().collect()).collect();
            let mut state = held.clone();
            for me in 0..nodes {
                let mut mine = state.clone();
                apply(&mut mine, &held, nodes, me);
                // merge: copies add, drops remove only me
                for (s, m) in state.iter_mut().zip(&mine) {
                    for p in m {
                        s.insert(*p);
                    }
                    if !m.contains(&me) {
                        s.remove(&me);
                    }
                }
            }
            prop_assert!(state.iter().all(|h| !h.is_empty()), "{:?} -> {:?}", hv, state);
            let before: BTreeSet<u8> = held.iter().flatten().copied().collect();
            let after: BTreeSet<u8> = state.iter().flatten().copied().collect();
            prop_assert!(before.is_subset(&after), "{:?} -> {:?}", hv, state);
        }

        /// Rounds of sequential plans (each node on a fresh view) with enough free nodes reach
        /// as many distinct holders as shards, never losing a shard on the way.
        #[test]
        fn sequential_rounds_converge(
            held in proptest::collection::vec(proptest::collection::btree_set(0u8..4, 1..3), 1..7),
        ) {
            let nodes = 4 + 6;
            let mut state = held.clone();
            for _ in 0..4 {
                for me in 0..nodes {
                    let v = state.clone();
                    apply(&mut state, &v, nodes, me);
                }
            }
            prop_assert!(distinct(&state) >= state.len(), "{:?} -> {:?}", held, state);
        }
    }
}
