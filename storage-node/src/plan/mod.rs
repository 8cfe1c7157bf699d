//! Put and repair planning: where a dataset's shards go when it is published, who rebuilds a
//! stripe that lost shards and onto which nodes, and how a crowded stripe is spread
//! ([`rebalance`]).
//!
//! Pure, like the audit schedule in [`crate::proving`]'s `schedule`: no clock, no I/O, generic
//! over the peer id type (the node passes peer ids, the tests small integers). The node's put
//! and repair round gather the views (live nodes and their free bytes, verified holders of
//! each shard), call these functions, and carry out what they return.
//!
//! Every choice ranks nodes by weighted rendezvous hashing ([`cairn_core::rendezvous`]) on one
//! key per stripe, its first data shard CID's bytes, weighted by the node's free bytes (at
//! least 1, so a full node still ranks, last): put, repair and rebalancing agree on where a
//! stripe's shards belong, and any node computes the same answer from the same view.

pub mod rebalance;

use cairn_core::rendezvous::{self, Candidate};
use std::collections::HashSet;
use std::hash::Hash;

/// The rendezvous key of a stripe: its first data shard CID's bytes (empty for a stripe with
/// no data shard, which no decoder accepts anyway).
pub fn stripe_key(s: &cairn_core::erasure::Stripe) -> Vec<u8> {
    s.data.first().map(|c| c.to_bytes()).unwrap_or_default()
}

/// A live node that could receive a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live<P> {
    /// Its id.
    pub id: P,
    /// Its id's bytes, hashed by rendezvous ranking (a peer id's bytes).
    pub rank_id: Vec<u8>,
    /// Bytes it has free (the rendezvous weight).
    pub free: u64,
}

/// Bytes a node that has proven no storage yet may be weighted with in placement.
pub const UNPROVEN_ALLOWANCE: u64 = 1 << 30;

/// The free bytes placement weights a node with: what it claims (`Info`, self-reported), but,
/// when the network runs proofs, at most twice the data it has proven (`proven`: bytes in its
/// sealed sectors whose seal proofs verified) or [`UNPROVEN_ALLOWANCE`], whichever is more. A
/// node that claims a huge disk attracts no more than an honest one until it seals what it is
/// given; an honest node's weight doubles as it proves. `None` (proofs off): the claim.
pub fn weight(free: u64, proven: Option<u64>) -> u64 {
    match proven {
        None => free,
        Some(p) => free.min(UNPROVEN_ALLOWANCE.max(p.saturating_mul(2))),
    }
}

fn candidates<'a, P: 'a>(nodes: impl Iterator<Item = &'a Live<P>>) -> Vec<Candidate> {
    nodes
        .map(|l| Candidate {
            id: l.rank_id.clone(),
            weight: l.free.max(1),
        })
        .collect()
}

/// Where a put sends each stripe's shards: for each stripe (given by its rendezvous key and
/// its shard count), the holder of each shard in stripe order, the `j`-th shard on the
/// stripe's `j`-th ranked node, so every shard of a stripe lands on a distinct node. `None`
/// when fewer than `n` (`k + m`) nodes are live: the publisher then keeps the whole dataset
/// until rebalancing can spread it.
pub fn put_targets<P: Copy>(
    stripes: &[(&[u8], usize)],
    live: &[Live<P>],
    n: usize,
) -> Option<Vec<Vec<P>>> {
    if live.len() < n || stripes.iter().any(|(_, shards)| *shards > live.len()) {
        return None;
    }
    let cands = candidates(live.iter());
    Some(
        stripes
            .iter()
            .map(|(key, shards)| {
                rendezvous::rank(key, &cands)
                    .into_iter()
                    .take(*shards)
                    .map(|i| live[i].id)
                    .collect()
            })
            .collect(),
    )
}

/// Where `me` ranks among `live` for a stripe's rendezvous `key` (0 first); `None` when it is
/// not among them (or weighs nothing).
pub fn rank_of<P: PartialEq>(key: &[u8], live: &[Live<P>], me: &P) -> Option<usize> {
    rendezvous::rank(key, &candidates(live.iter()))
        .into_iter()
        .position(|i| live[i].id == *me)
}

/// What a node does about one stripe in a repair round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeRepair<P> {
    /// Every shard has a live holder (rebalancing may still spread it).
    Whole,
    /// Shards are lost, but another live holder leads the stripe (the lowest id), or no shard
    /// has a live holder at all.
    NotLeader,
    /// This node leads: rebuild shards `lost` (stripe indices, ascending) from any `k` others
    /// and place `lost[j]` on `targets[j]`, live nodes holding nothing of the stripe.
    Rebuild {
        /// The lost shards.
        lost: Vec<usize>,
        /// Their new holders, one each.
        targets: Vec<P>,
    },
    /// This node leads, but fewer live nodes hold nothing of the stripe than shards are lost.
    Short {
        /// Shards lost.
        lost: usize,
        /// Live nodes holding nothing of the stripe.
        free: usize,
    },
}

/// The repair decision for `me` on one stripe. `key` is the stripe's rendezvous key,
/// `holders[i]` the verified live holders of shard `i` (data then parity) and `live` the live
/// nodes. The leader is the stripe's live holder with the lowest id, so exactly one node of a
/// shared view rebuilds; its targets are the nodes holding nothing of the stripe, by rank.
pub fn repair_stripe<P: Copy + Ord + Hash>(
    key: &[u8],
    holders: &[Vec<P>],
    live: &[Live<P>],
    me: P,
) -> StripeRepair<P> {
    let lost: Vec<usize> = (0..holders.len())
        .filter(|&i| holders[i].is_empty())
        .collect();
    if lost.is_empty() {
        return StripeRepair::Whole;
    }
    let held: HashSet<P> = holders.iter().flatten().copied().collect();
    if held.iter().min() != Some(&me) {
        return StripeRepair::NotLeader;
    }
    let free: Vec<&Live<P>> = live.iter().filter(|l| !held.contains(&l.id)).collect();
    let ranked = rendezvous::rank(key, &candidates(free.iter().copied()));
    if ranked.len() < lost.len() {
        return StripeRepair::Short {
            lost: lost.len(),
            free: ranked.len(),
        };
    }
    let targets = ranked
        .iter()
        .take(lost.len())
        .map(|&i| free[i].id)
        .collect();
    StripeRepair::Rebuild { lost, targets }
}

#[cfg(test)]
pub(super) mod tests {
    #[test]
    fn a_claimed_capacity_counts_only_as_far_as_it_is_proven() {
        const G: u64 = UNPROVEN_ALLOWANCE;
        // (claimed free, proven, weight)
        let table: [(u64, Option<u64>, u64); 7] = [
            (1 << 50, None, 1 << 50),           // proofs off: the claim
            (1 << 50, Some(0), G),              // a huge claim, nothing proven
            (100, Some(0), 100),                // a small claim stands
            (1 << 50, Some(G), 2 * G),          // twice what is proven
            (3 * G, Some(4 * G), 3 * G),        // never above the claim
            (1 << 50, Some(u64::MAX), 1 << 50), // no overflow
            (0, Some(G), 0),                    // full is full
        ];
        for (free, proven, want) in table {
            assert_eq!(weight(free, proven), want, "{free} {proven:?}");
        }
    }

    use super::*;

    fn live(ids: &[u8], free: u64) -> Vec<Live<u8>> {
        ids.iter()
            .map(|&id| Live {
                id,
                rank_id: vec![id],
                free,
            })
            .collect()
    }

    /// Rendezvous order of `ids` for `key` (equal free space); the rebalancing tests use it too.
    pub(crate) fn ranked(key: &[u8], ids: &[u8]) -> Vec<u8> {
        let c: Vec<Candidate> = ids
            .iter()
            .map(|i| Candidate {
                id: vec![*i],
                weight: 1000,
            })
            .collect();
        rendezvous::rank(key, &c)
            .into_iter()
            .map(|r| ids[r])
            .collect()
    }

    #[test]
    fn put_spreads_each_stripe_over_distinct_nodes_by_rank() {
        let nodes = live(&[1, 2, 3, 4, 5, 6, 7], 1000);
        let keys: [&[u8]; 3] = [b"s0", b"s1", b"s2"];
        let plan = put_targets(&[(keys[0], 6), (keys[1], 6), (keys[2], 4)], &nodes, 6).unwrap();
        for (key, got) in keys.iter().zip(&plan) {
            let want: Vec<u8> = ranked(key, &[1, 2, 3, 4, 5, 6, 7])
                .into_iter()
                .take(got.len())
                .collect();
            assert_eq!(got, &want);
            let distinct: HashSet<u8> = got.iter().copied().collect();
            assert_eq!(distinct.len(), got.len());
        }
        assert_eq!(plan[2].len(), 4, "a short stripe has fewer shards");
    }

    #[test]
    fn put_table() {
        // (live nodes, k + m, shards per stripe, planned)
        let cases: &[(&[u8], usize, &[usize], bool)] = &[
            (&[1, 2, 3, 4, 5, 6], 6, &[6, 6], true),
            (&[1, 2, 3, 4, 5], 6, &[6], false),
            (&[1], 6, &[6], false),
            (&[], 1, &[1], false),
            (&[1, 2], 2, &[2, 1], true),
            (&[1, 2], 2, &[3], false),
        ];
        for (i, &(ids, n, shards, planned)) in cases.iter().enumerate() {
            let stripes: Vec<(&[u8], usize)> =
                shards.iter().map(|&s| (b"key".as_slice(), s)).collect();
            let got = put_targets(&stripes, &live(ids, 10), n);
            assert_eq!(got.is_some(), planned, "case {i}");
            if let Some(p) = got {
                assert_eq!(
                    p.iter().map(Vec::len).collect::<Vec<_>>(),
                    shards,
                    "case {i}"
                );
            }
        }
    }

    #[test]
    fn a_full_node_still_ranks_and_free_bytes_weigh() {
        let mut nodes = live(&[1, 2], 0);
        nodes[1].free = u64::MAX / 4;
        let plan = put_targets(&[(b"k".as_slice(), 2)], &nodes, 2).unwrap();
        assert_eq!(
            plan[0].len(),
            2,
            "weight 0 is raised to 1: every node ranks"
        );
        let mut firsts = 0;
        for i in 0..200u32 {
            let key = i.to_le_bytes();
            if put_targets(&[(key.as_slice(), 1)], &nodes, 1).unwrap()[0][0] == 2 {
                firsts += 1;
            }
        }
        assert_eq!(firsts, 200, "the node with room ranks first for every key");
    }

    #[test]
    fn repair_table() {
        let all = [1u8, 2, 3, 4, 5, 6, 7, 8];
        // (holders per shard, live nodes, me, expected)
        type Case = (Vec<Vec<u8>>, Vec<u8>, u8, StripeRepair<u8>);
        let cases: Vec<Case> = vec![
            // every shard held: nothing to do
            (
                vec![vec![1], vec![2], vec![3]],
                all.to_vec(),
                1,
                StripeRepair::Whole,
            ),
            // a shard lost, the lowest holder leads
            (
                vec![vec![2], vec![], vec![3]],
                all.to_vec(),
                3,
                StripeRepair::NotLeader,
            ),
            (
                vec![vec![2], vec![], vec![3]],
                all.to_vec(),
                2,
                StripeRepair::Rebuild {
                    lost: vec![1],
                    targets: ranked(b"key", &[1, 4, 5, 6, 7, 8])[..1].to_vec(),
                },
            ),
            // a node holding two shards counts once; targets hold nothing of the stripe
            (
                vec![vec![5], vec![5, 6], vec![], vec![]],
                all.to_vec(),
                5,
                StripeRepair::Rebuild {
                    lost: vec![2, 3],
                    targets: ranked(b"key", &[1, 2, 3, 4, 7, 8])[..2].to_vec(),
                },
            ),
            // too few free nodes
            (
                vec![vec![1], vec![2], vec![], vec![]],
                vec![1, 2, 3],
                1,
                StripeRepair::Short { lost: 2, free: 1 },
            ),
            // nothing held anywhere: nobody leads
            (
                vec![vec![], vec![]],
                all.to_vec(),
                1,
                StripeRepair::NotLeader,
            ),
            // a holder that is not live any more still leads in the view it is given
            (
                vec![vec![9], vec![]],
                vec![1, 2],
                1,
                StripeRepair::NotLeader,
            ),
        ];
        for (i, (holders, ids, me, want)) in cases.into_iter().enumerate() {
            let got = repair_stripe(b"key", &holders, &live(&ids, 1000), me);
            assert_eq!(got, want, "case {i}");
        }
    }
}
