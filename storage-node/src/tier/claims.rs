//! One prefetch tick's decision over every plan a node follows ([`combine`]): each plan an
//! equal share of `plan_bytes`, the copies it holds and reads again claimed before new ones,
//! a copy made once for the first plan that wants it and dropped only when no plan's share
//! or the room left keeps it. Pure: the time is an argument.

use super::plans::{Held, PlanBook};
use cairn_core::Cid;
use cairn_placement::prefetch::{DropReason, Tuning};
use std::collections::{HashMap, HashSet};

/// How plans are followed (from the node's `TierOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Follow {
    /// Bytes held on fast peers for all plans at once.
    pub(super) plan_bytes: u64,
    /// Look-ahead, ms of reading at a plan's rate.
    pub(super) lookahead_ms: u64,
    /// Time between ticks, ms.
    pub(super) tick_ms: u64,
    /// How long a copy no plan reads again may stay (while the room is not needed), ms.
    pub(super) keep_ms: u64,
}

/// Each plan's tuning: an equal share of `plan_bytes`.
pub(super) fn tuning(f: &Follow, plans: usize) -> Tuning {
    let budget = f.plan_bytes / plans.max(1) as u64;
    Tuning {
        budget,
        lookahead_ms: f.lookahead_ms,
        // a reader not seen for five ticks is not assumed to read on
        extrapolate_ms: (5 * f.tick_ms).max(5_000),
        // side-by-side workers read a little out of order
        behind_bytes: budget / 4,
    }
}

/// One tick's combined decision over every plan.
pub(super) struct Combined {
    /// Copies to make, round robin over the plans, each with the root and job of the plan
    /// that wants it (plans may change while the copies are made).
    pub(super) fetch: Vec<(Cid, u64, (Cid, String))>,
    /// Copies to drop, with the reason.
    pub(super) drop: Vec<(Cid, Held, &'static str)>,
}

/// A plan's blocks wanted now, and those of them not held yet.
type Decided = (HashSet<Cid>, Vec<(Cid, u64)>);

/// Why a copy goes that no plan's share has room for.
const ROOM_NEEDED: &str = "its plans' room is taken by copies they read sooner";
/// Why a spare copy goes after [`Follow::keep_ms`].
const KEPT_LONG: &str = "no plan read it again within the keep time";

/// Decides every plan at `now` and combines them. Each plan has an equal share of
/// `plan_bytes` ([`tuning`]), and **keeps what it holds before it copies more**: within its
/// share it claims, in this order,
///
/// 1. the held copies it reads again, the nearest next read first (Belady's choice over the
///    future the plans make known);
/// 2. the *spare* copies of its dataset (no plan reads them again now; the most recently
///    spared first), for at most `keep_ms`: the next epoch's plan, registered later, reads
///    every one of them again;
/// 3. the blocks its look-ahead wants that are not held yet, in plan order: these are copied.
///
/// A copy another plan claimed already costs nothing (two jobs over one dataset share their
/// copies). Room left in `plan_bytes` keeps the unclaimed held copies in the same order; the
/// rest are dropped. So a copy is never dropped to make room for another one that would be
/// read only once before it: with every block read once an epoch in a fresh shuffle, that
/// trade gains a read of a copy now, loses one later, and costs the bytes of a copy. Copies
/// fill the plans' room once and serve every epoch (CoorDL's MinIO cache, VLDB'21). With
/// `keep_ms` 0, a copy read by every plan goes at once and the room follows the readers.
pub(super) fn combine(book: &mut PlanBook, f: &Follow, now: u64) -> Combined {
    let t = tuning(f, book.plans.len());
    let held: HashSet<Cid> = book.held.keys().copied().collect();
    // per plan: the blocks it wants now, and those of them to copy
    let mut decided: Vec<Decided> = Vec::new();
    let mut reasons: HashMap<Cid, DropReason> = HashMap::new();
    for p in &mut book.plans {
        let d = p.cursor.decide(now, &t, &held);
        p.head = d.head;
        for (c, r) in d.drop {
            // the most telling reason any plan gives
            let e = reasons.entry(c).or_insert(r);
            if *e == DropReason::Unplanned {
                *e = r;
            }
        }
        decided.push((d.want.iter().map(|w| w.0).collect(), d.fetch));
    }
    let why = |c: &Cid| {
        reasons
            .get(c)
            .copied()
            .unwrap_or(DropReason::Unplanned)
            .reason()
    };
    let mut drop: Vec<(Cid, Held, &'static str)> = Vec::new();
    // per plan, the held copies it reads again: (bytes before its next read, copy)
    let mut again: Vec<Vec<(u64, Cid)>> = vec![Vec::new(); book.plans.len()];
    // spare copies within the keep time: (most recently spared first, copy, its dataset)
    let mut spare: Vec<(u64, Cid, Option<Cid>)> = Vec::new();
    for (c, h) in book.held.iter_mut() {
        let mut read_again = false;
        for (i, (p, (want, _))) in book.plans.iter().zip(&decided).enumerate() {
            // a wanted block a little behind the reader's head is as near as can be
            let next = if want.contains(c) {
                Some(p.cursor.ahead(c).unwrap_or(0))
            } else {
                p.cursor.ahead(c)
            };
            if let Some(n) = next {
                read_again = true;
                if h.copy {
                    again[i].push((n, *c));
                }
            }
        }
        if read_again {
            h.spare_since = None;
            if !h.copy {
                // a fast base holder: nothing to keep room for
                continue;
            }
        } else if !h.copy {
            drop.push((*c, *h, why(c)));
        } else {
            let since = *h.spare_since.get_or_insert(now);
            if now.saturating_sub(since) >= f.keep_ms {
                drop.push((*c, *h, if f.keep_ms == 0 { why(c) } else { KEPT_LONG }));
            } else {
                spare.push((u64::MAX - since, *c, h.root));
            }
        }
    }
    for a in &mut again {
        a.sort();
    }
    spare.sort();
    let size = |c: &Cid| book.held.get(c).map_or(0, |h| h.size);
    let mut claimed: HashSet<Cid> = HashSet::new();
    let mut used = 0u64;
    let mut fetches: Vec<Vec<(Cid, u64)>> = Vec::new();
    for (i, (p, (_, fetch))) in book.plans.iter().zip(&decided).enumerate() {
        let mut share = 0u64;
        let mut claim = |c: Cid, bytes: u64, share: &mut u64| {
            if claimed.contains(&c) {
                return true;
            }
            if share.saturating_add(bytes) > t.budget || used.saturating_add(bytes) > f.plan_bytes {
                return false;
            }
            *share += bytes;
            used += bytes;
            claimed.insert(c);
            true
        };
        for &(_, c) in &again[i] {
            claim(c, size(&c), &mut share);
        }
        for &(_, c, root) in &spare {
            if root == Some(p.root) {
                claim(c, size(&c), &mut share);
            }
        }
        let mut mine = Vec::new();
        for &(c, bytes) in fetch {
            if !claim(c, bytes, &mut share) {
                break;
            }
            mine.push((c, bytes));
        }
        fetches.push(mine);
    }
    // the room left keeps the unclaimed copies, read-again ones (nearest first) before spares
    let mut rest: Vec<(u8, u64, Cid)> = Vec::new();
    for a in &again {
        rest.extend(a.iter().map(|&(n, c)| (0, n, c)));
    }
    rest.extend(spare.iter().map(|&(s, c, _)| (1, s, c)));
    rest.sort();
    for (_, _, c) in rest {
        if claimed.contains(&c) {
            continue;
        }
        let Some(h) = book.held.get(&c).copied() else {
            continue;
        };
        claimed.insert(c);
        if used.saturating_add(h.size) <= f.plan_bytes {
            used += h.size;
        } else {
            drop.push((c, h, ROOM_NEEDED));
        }
    }
    let mut fetch = Vec::new();
    let mut seen: HashSet<Cid> = HashSet::new();
    let longest = fetches.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for (p, f) in book.plans.iter().zip(&fetches) {
            if let Some(&(c, size)) = f.get(i) {
                if seen.insert(c) {
                    fetch.push((c, size, (p.root, p.job.clone())));
                }
            }
        }
    }
    drop.sort_by_key(|x| x.0);
    Combined { fetch, drop }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::plans::tests::{cid, plan};
    use cairn_net::PeerId;

    fn opts(plan_bytes: u64) -> Follow {
        Follow {
            plan_bytes,
            lookahead_ms: 30_000,
            tick_ms: 1_000,
            keep_ms: 0,
        }
    }

    fn fetched(c: &Combined) -> Vec<Cid> {
        c.fetch.iter().map(|x| x.0).collect()
    }

    fn dropped(c: &Combined) -> Vec<(Cid, &'static str)> {
        c.drop.iter().map(|x| (x.0, x.2)).collect()
    }

    fn hold(book: &mut PlanBook, blocks: &[u8]) {
        let peer = PeerId::random();
        for &x in blocks {
            let h = Held {
                peer,
                size: 100,
                reads_seen: 0,
                copy: true,
                spare_since: None,
                root: Some(cid(1)),
            };
            book.held.insert(cid(x), h);
        }
    }

    #[test]
    fn plans_share_copies_and_a_copy_goes_only_when_no_plan_wants_it() {
        let fo = opts(800);
        let mut book = PlanBook::default();
        // two jobs over one dataset in different orders; 400 bytes each
        book.follow(plan(1, "a", &[10, 11, 12, 13]), 0);
        book.follow(plan(1, "b", &[12, 14, 10, 15]), 0);
        let c = combine(&mut book, &fo, 0);
        let f: Vec<(Cid, &str)> = c.fetch.iter().map(|x| (x.0, x.2 .1.as_str())).collect();
        // round robin over the plans, each block once
        let want = [
            (10, "a"),
            (12, "b"),
            (11, "a"),
            (14, "b"),
            (13, "a"),
            (15, "b"),
        ];
        assert_eq!(f, want.map(|(b, p)| (cid(b), p)).to_vec());
        hold(&mut book, &[10, 11, 12, 14]);
        // a reads 10 and 11 (10 is counted for a, whose reader is at it, not for b): 10
        // stays (b still wants it), 11 goes
        assert!(book.observe(&cid(10), 1));
        assert!(book.observe(&cid(11), 2));
        assert_eq!(book.plans[0].cursor.read_count(), 2);
        assert_eq!(book.plans[1].cursor.read_count(), 0);
        let c = combine(&mut book, &fo, 3);
        let d: Vec<(Cid, &str)> = c.drop.iter().map(|x| (x.0, x.2)).collect();
        assert_eq!(d, vec![(cid(11), DropReason::Read.reason())]);
        let f: Vec<Cid> = c.fetch.iter().map(|x| x.0).collect();
        assert_eq!(f, vec![cid(13), cid(15)]);
    }

    #[test]
    fn a_plan_keeps_what_it_holds_before_it_copies_more() {
        // one plan, room for two blocks; 10 and 11 held, the reader has read 10
        struct Case {
            keep_ms: u64,
            drop: &'static [(u8, &'static str)],
            fetch: &'static [u8],
        }
        const READ: &str = "read by the planned reader";
        assert_eq!(READ, DropReason::Read.reason());
        let cases = [
            // 10 stays for the next epoch (spare), 11 is read next: nothing is copied
            Case {
                keep_ms: 1_000,
                drop: &[],
                fetch: &[],
            },
            // no keeping: 10 goes, 12 is copied into its room
            Case {
                keep_ms: 0,
                drop: &[(10, READ)],
                fetch: &[12],
            },
        ];
        for c in cases {
            let mut fo = opts(200);
            fo.keep_ms = c.keep_ms;
            let mut book = PlanBook::default();
            book.follow(plan(1, "a", &[10, 11, 12, 13]), 0);
            hold(&mut book, &[10, 11]);
            assert!(book.observe(&cid(10), 1));
            let got = combine(&mut book, &fo, 10);
            let want: Vec<(Cid, &str)> = c.drop.iter().map(|&(b, r)| (cid(b), r)).collect();
            assert_eq!(dropped(&got), want, "keep {}", c.keep_ms);
            let want: Vec<Cid> = c.fetch.iter().map(|&b| cid(b)).collect();
            assert_eq!(fetched(&got), want, "keep {}", c.keep_ms);
        }
    }

    #[test]
    fn copies_read_again_are_claimed_nearest_first_and_spares_for_the_keep_time() {
        // two jobs over one dataset, a share of 200 bytes each (400 / 2 plans)
        let mut fo = opts(400);
        fo.keep_ms = 1_000;
        let mut book = PlanBook::default();
        book.follow(plan(1, "a", &[10, 11, 12, 13, 14]), 0);
        book.follow(plan(1, "b", &[14, 13, 15, 16, 10]), 0);
        hold(&mut book, &[10, 11, 13, 14]);
        // a reads 10 and 11; b reads 14
        for (x, at) in [(10, 1), (11, 2), (14, 3)] {
            assert!(book.observe(&cid(x), at));
        }
        // a claims 13 and 14, which it reads next but one and next but two: its share is
        // full, so its next block, 12, is not copied. b claims 13 (a's already), 10 (which
        // it reads later) and the spare 11 (no plan reads it again): nothing goes
        let c = combine(&mut book, &fo, 10);
        assert!(dropped(&c).is_empty());
        assert!(fetched(&c).is_empty());
        // following the readers instead (no keeping): the spare 11 goes, b copies 15
        fo.keep_ms = 0;
        let c = combine(&mut book, &fo, 11);
        assert_eq!(dropped(&c), vec![(cid(11), DropReason::Read.reason())]);
        assert_eq!(fetched(&c), vec![cid(15)]);
        // spares stay for the keep time, then go
        fo.keep_ms = 1_000;
        let mut book2 = PlanBook::default();
        book2.follow(plan(1, "a", &[10, 11]), 0);
        hold(&mut book2, &[10, 11]);
        assert!(book2.observe(&cid(10), 1));
        assert!(book2.observe(&cid(11), 2));
        assert!(dropped(&combine(&mut book2, &fo, 10)).is_empty());
        assert!(dropped(&combine(&mut book2, &fo, 1_009)).is_empty());
        // a new plan (the next epoch's) that reads 11 finds it held: nothing to copy, and
        // only 10 goes when its keep time is up
        book2.follow(plan(1, "a", &[11, 12]), 1_005);
        let c = combine(&mut book2, &fo, 1_010);
        assert_eq!(dropped(&c), vec![(cid(10), KEPT_LONG)]);
        assert_eq!(fetched(&c), vec![cid(12)]);
    }

    #[test]
    fn spares_of_one_dataset_do_not_take_another_plan_s_share() {
        let mut fo = opts(400);
        fo.keep_ms = 10_000;
        let mut book = PlanBook::default();
        book.follow(plan(1, "a", &[10, 11, 12, 13]), 0);
        hold(&mut book, &[10, 11, 12, 13]);
        for (x, at) in [(10, 1), (11, 2), (12, 3), (13, 4)] {
            assert!(book.observe(&cid(x), at));
        }
        // alone, a keeps its four spares
        assert!(dropped(&combine(&mut book, &fo, 5)).is_empty());
        // a job over another dataset gets its half of the room: two of the spares go
        book.follow(plan(2, "y", &[20, 21, 22]), 6);
        let c = combine(&mut book, &fo, 10);
        assert_eq!(fetched(&c), vec![cid(20), cid(21)]);
        let d = dropped(&c);
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|x| x.1 == ROOM_NEEDED));
    }

    #[test]
    fn the_budget_is_shared_equally() {
        let t = tuning(&opts(1000), 4);
        assert_eq!(t.budget, 250);
        assert_eq!(t.behind_bytes, 62);
        assert_eq!(tuning(&opts(1000), 0).budget, 1000);
    }
}
