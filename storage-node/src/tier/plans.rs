//! The plans a promoter follows ([`super::prefetch`] carries them out): each reader's
//! [`Cursor`] over its planned blocks, the blocks held on fast peers for them, the status
//! they report, and one tick's decision over every plan ([`combine`]): each plan an equal
//! share of `plan_bytes`, a copy made once for the first plan that wants it, and dropped only
//! when no plan wants it. A read does not say whose reader made it: it counts for the plan
//! whose reader is nearest the block ([`PlanBook::observe`]).

use cairn_core::Cid;
use cairn_net::PeerId;
use cairn_placement::prefetch::{Cursor, DropReason, Tuning};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Plans kept at once; registering another replaces the oldest.
pub const MAX_PLANS: usize = 8;
/// Peers' plans (sent over the network, not through the API) kept at once: a new one past
/// this replaces the oldest of them, so strangers hold at most half of the plan slots.
pub const MAX_PEER_PLANS: usize = MAX_PLANS / 2;

/// A reader's plan, as registered.
#[derive(Debug, Clone)]
pub(crate) struct NewPlan {
    /// The dataset.
    pub root: Cid,
    /// The job's name (a plan replaces the one of the same root and job).
    pub job: String,
    /// The blocks in reading order, with their sizes (0 when unknown).
    pub order: Vec<(Cid, u64)>,
    /// The reader's declared rate, bytes per second.
    pub rate: Option<f64>,
    /// Whether a peer sent it (see [`MAX_PEER_PLANS`]).
    pub from_peer: bool,
}

/// A block held on a fast peer for plans.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub(super) peer: PeerId,
    pub(super) size: u64,
    pub(super) reads_seen: u32,
    /// A copy made for plans (else the fast peer is a base holder: nothing to drop there).
    pub(super) copy: bool,
    /// Since when no plan reads it again (`None`: a plan does), ms: it is kept
    /// [`Follow::keep_ms`] at most.
    pub(super) spare_since: Option<u64>,
}

pub(super) struct Plan {
    pub(super) root: Cid,
    pub(super) job: String,
    pub(super) at_ms: u64,
    pub(super) cursor: Cursor<Cid>,
    pub(super) head: usize,
    pub(super) prefetched: u64,
    pub(super) prefetched_bytes: u64,
    pub(super) dropped: u64,
    pub(super) fast_reads: u64,
    pub(super) from_peer: bool,
    /// Its reader reports its reads ([`PlanBook::reader_reads`]): reads seen otherwise, which
    /// do not say whose they are, are not counted for it.
    pub(super) reported: bool,
}

/// The plans a node follows and the copies it made for them.
#[derive(Default)]
pub(crate) struct PlanBook {
    pub(super) plans: Vec<Plan>,
    pub(super) held: HashMap<Cid, Held>,
    /// Copies being made now (at most [`super::prefetch::FETCHES_AT_ONCE`]).
    pub(super) inflight: HashSet<Cid>,
    /// Client reads here are taken from after this sequence number.
    pub(super) seq: u64,
    pub(super) note: Option<String>,
    /// Planned reads observed, and how many of them ticks have reported.
    pub(super) observed: u64,
    pub(super) reported: u64,
}

/// One plan's state, for `placement status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanStatus {
    /// The dataset.
    pub root: String,
    /// The job.
    pub job: String,
    /// When it was registered, ms since the Unix epoch.
    pub registered_ms: u64,
    /// Planned blocks.
    pub blocks: usize,
    /// Planned bytes (as far as known).
    pub bytes: u64,
    /// The declared rate, bytes per second.
    pub rate_bps: Option<f64>,
    /// The estimated reader position (next block), at the last tick.
    pub head: usize,
    /// Planned blocks seen read.
    pub read: usize,
    /// Copies on fast peers that this plan wants now.
    pub held: usize,
    /// Copies made for it.
    pub prefetched: u64,
    /// Their bytes.
    pub prefetched_bytes: u64,
    /// Copies dropped for it.
    pub dropped: u64,
    /// Reads of the copies, reported by fast peers.
    pub fast_reads: u64,
}

/// What one prefetch tick did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PrefetchReport {
    /// Plans followed.
    pub plans: usize,
    /// Planned reads observed since the last tick (through the gateway, by clients here, and
    /// on the copies).
    pub reads: u64,
    /// Copies made.
    pub prefetched: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Copies dropped.
    pub dropped: usize,
    /// Copies that could not be made, with the reason.
    pub failed: Vec<String>,
    /// Why nothing could be prefetched, if so.
    pub note: Option<String>,
}

impl PlanBook {
    /// Counts a read of `cid` at `at_ms` for the plan whose reader most likely made it: among
    /// the plans registered by then whose readers do not report their reads (a read from before a plan, of the epoch before, say, is
    /// not its reader's), the one whose next unread position of it is nearest its reader's
    /// head (plans over one dataset share blocks, and a read does not say whose it is).
    pub(super) fn observe(&mut self, cid: &Cid, at_ms: u64) -> bool {
        let nearest = self
            .plans
            .iter()
            .enumerate()
            .filter(|(_, p)| p.at_ms <= at_ms && !p.reported)
            .filter_map(|(i, p)| p.cursor.distance(cid).map(|d| (d, i)))
            .min();
        let hit = match nearest {
            Some((_, i)) => self.plans[i].cursor.observe(cid, at_ms),
            None => false,
        };
        self.observed += u64::from(hit);
        hit
    }
}

impl PlanBook {
    /// Counts the reads that the reader of the plan `job` over `root` reports it made
    /// ([`cairn_net::wire::CtrlRequest::Read`]): they move only that plan's head. Returns the
    /// reads that were of blocks it planned and had not seen read, or `None` when there is no
    /// such plan.
    pub(crate) fn reader_reads(
        &mut self,
        root: &Cid,
        job: &str,
        cids: &[Cid],
        at_ms: u64,
    ) -> Option<usize> {
        let p = self
            .plans
            .iter_mut()
            .find(|p| p.root == *root && p.job == job)?;
        p.reported = true;
        let hits = cids.iter().filter(|c| p.cursor.observe(c, at_ms)).count();
        self.observed += hits as u64;
        Some(hits)
    }

    /// Follows `plan` from `now_ms`: it replaces the plan of the same root and job (the same
    /// plan again only updates the rate: what its reader read stays read), or else the
    /// oldest when [`MAX_PLANS`] are followed. Returns whether it is a new plan.
    pub(super) fn follow(&mut self, plan: NewPlan, now_ms: u64) -> bool {
        // the same plan again (a reader asking again where the copies go): kept as followed
        if let Some(p) = self.plans.iter_mut().find(|p| {
            p.root == plan.root && p.job == plan.job && p.cursor.order() == plan.order.as_slice()
        }) {
            p.cursor.set_rate(plan.rate);
            return false;
        }
        self.plans
            .retain(|p| !(p.root == plan.root && p.job == plan.job));
        let peers = self.plans.iter().filter(|p| p.from_peer).count();
        if plan.from_peer && peers >= MAX_PEER_PLANS {
            if let Some(i) = self.plans.iter().position(|p| p.from_peer) {
                self.plans.remove(i);
            }
        } else if self.plans.len() >= MAX_PLANS {
            self.plans.remove(0);
        }
        self.plans.push(Plan {
            root: plan.root,
            job: plan.job,
            at_ms: now_ms,
            cursor: Cursor::new(plan.order, plan.rate, now_ms),
            head: 0,
            prefetched: 0,
            prefetched_bytes: 0,
            dropped: 0,
            fast_reads: 0,
            from_peer: plan.from_peer,
            reported: false,
        });
        true
    }

    /// The fast peer holding `cid` for a plan, if any, and whether it is a copy made for it
    /// (else the peer is a base holder).
    /// Whether a followed plan reads `cid`.
    pub(super) fn plans_read(&self, cid: &Cid) -> bool {
        self.plans.iter().any(|p| p.cursor.contains(cid))
    }

    /// Bytes of the copies made for plans on these peers.
    pub(super) fn copy_bytes(&self, peers: &[PeerId]) -> u64 {
        self.held
            .values()
            .filter(|h| h.copy && peers.contains(&h.peer))
            .map(|h| h.size)
            .sum()
    }

    pub(super) fn copy_of(&self, cid: &Cid) -> Option<(PeerId, bool)> {
        self.held.get(cid).map(|h| (h.peer, h.copy))
    }

    /// The plans followed, and why nothing is prefetched now, if so.
    pub(super) fn status(&self) -> (Vec<PlanStatus>, Option<String>) {
        let plans = self
            .plans
            .iter()
            .map(|p| PlanStatus {
                root: p.root.to_string(),
                job: p.job.clone(),
                registered_ms: p.at_ms,
                blocks: p.cursor.len(),
                bytes: p.cursor.bytes(),
                rate_bps: p.cursor.rate(),
                head: p.head,
                read: p.cursor.read_count(),
                held: self
                    .held
                    .iter()
                    .filter(|(c, h)| h.copy && p.cursor.contains(c))
                    .count(),
                prefetched: p.prefetched,
                prefetched_bytes: p.prefetched_bytes,
                dropped: p.dropped,
                fast_reads: p.fast_reads,
            })
            .collect();
        (plans, self.note.clone())
    }
}

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

/// Why a copy kept past its plans' look-ahead goes.
const ROOM_NEEDED: &str = "its room is needed for blocks read sooner";
/// Why a spare copy goes after [`Follow::keep_ms`].
const KEPT_LONG: &str = "no plan read it again within the keep time";

/// Decides every plan at `now` and combines them: a copy is made once, for the first plan
/// that wants it. A held copy no plan wants within its look-ahead now is **kept** while the
/// blocks the plans want leave room in `plan_bytes`: first those a plan reads again, the
/// nearest next read first (another job's reader, later this epoch: Belady's choice over the
/// known future), then the *spare* ones no plan reads again, the most recently spared first,
/// for at most `keep_ms` (the next epoch's plan, registered later, may read them). The rest
/// are dropped.
pub(super) fn combine(book: &mut PlanBook, f: &Follow, now: u64) -> Combined {
    let t = tuning(f, book.plans.len());
    let held: HashSet<Cid> = book.held.keys().copied().collect();
    let mut wanted: HashMap<Cid, u64> = HashMap::new();
    let mut fetches: Vec<Vec<(Cid, u64)>> = Vec::new();
    let mut reasons: HashMap<Cid, DropReason> = HashMap::new();
    for p in &mut book.plans {
        let d = p.cursor.decide(now, &t, &held);
        p.head = d.head;
        wanted.extend(d.want.iter().copied());
        fetches.push(d.fetch);
        for (c, r) in d.drop {
            // the most telling reason any plan gives
            let e = reasons.entry(c).or_insert(r);
            if *e == DropReason::Unplanned {
                *e = r;
            }
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
    // the copies no plan wants now, ranked for keeping
    let mut room = f.plan_bytes.saturating_sub(wanted.values().sum());
    let mut spare: Vec<((u8, u64), Cid)> = Vec::new();
    let mut drop: Vec<(Cid, Held, &'static str)> = Vec::new();
    for (c, h) in book.held.iter_mut() {
        if wanted.contains_key(c) {
            h.spare_since = None;
            continue;
        }
        let why = reasons
            .get(c)
            .copied()
            .unwrap_or(DropReason::Unplanned)
            .reason();
        if !h.copy {
            drop.push((*c, *h, why));
            continue;
        }
        match book.plans.iter().filter_map(|p| p.cursor.ahead(c)).min() {
            Some(next) => {
                h.spare_since = None;
                spare.push(((0, next), *c));
            }
            None => {
                let since = *h.spare_since.get_or_insert(now);
                if now.saturating_sub(since) >= f.keep_ms {
                    drop.push((*c, *h, if f.keep_ms == 0 { why } else { KEPT_LONG }));
                } else {
                    spare.push(((1, u64::MAX - since), *c));
                }
            }
        }
    }
    spare.sort();
    for (_, c) in spare {
        let Some(h) = book.held.get(&c).copied() else {
            continue;
        };
        if h.size <= room {
            room -= h.size;
        } else {
            drop.push((c, h, ROOM_NEEDED));
        }
    }
    drop.sort_by_key(|x| x.0);
    Combined { fetch, drop }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::block::{Block, HashAlg, RAW};

    fn cid(i: u8) -> Cid {
        Block::new(HashAlg::Blake3, RAW, vec![i]).cid
    }

    fn opts(plan_bytes: u64) -> Follow {
        Follow {
            plan_bytes,
            lookahead_ms: 30_000,
            tick_ms: 1_000,
            keep_ms: 0,
        }
    }

    fn plan(root: u8, job: &str, blocks: &[u8]) -> NewPlan {
        NewPlan {
            root: cid(root),
            job: job.into(),
            order: blocks.iter().map(|&b| (cid(b), 100)).collect(),
            rate: None,
            from_peer: false,
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
        let peer = PeerId::random();
        for x in [10, 11, 12, 14] {
            book.held.insert(
                cid(x),
                Held {
                    peer,
                    size: 100,
                    reads_seen: 0,
                    copy: true,
                    spare_since: None,
                },
            );
        }
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

    fn hold(book: &mut PlanBook, blocks: &[u8]) {
        let peer = PeerId::random();
        for &x in blocks {
            let h = Held {
                peer,
                size: 100,
                reads_seen: 0,
                copy: true,
                spare_since: None,
            };
            book.held.insert(cid(x), h);
        }
    }

    fn dropped(c: &Combined) -> Vec<(Cid, &'static str)> {
        c.drop.iter().map(|x| (x.0, x.2)).collect()
    }

    #[test]
    fn copies_stay_for_a_later_read_nearest_first_and_spares_for_the_keep_time() {
        // two jobs over one dataset, 200 bytes of look-ahead each (400 / 2 plans)
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
        // wanted now: a's 12 and 13, b's 13 and 15: 300 bytes, 100 left. Read again later:
        // 14 (by a, 200 bytes on) and 10 (by b, 300 bytes on): the nearest, 14, is kept;
        // 11 (no plan reads it again) is a spare, and there is no room for it either
        let c = combine(&mut book, &fo, 10);
        let mut want = vec![(cid(10), ROOM_NEEDED), (cid(11), ROOM_NEEDED)];
        want.sort();
        assert_eq!(dropped(&c), want);
        let f: Vec<Cid> = c.fetch.iter().map(|x| x.0).collect();
        assert_eq!(f, vec![cid(12), cid(15)]);
        // with more room, the spares stay, then go after the keep time
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
        let f: Vec<Cid> = c.fetch.iter().map(|x| x.0).collect();
        assert_eq!(f, vec![cid(12)]);
    }

    #[test]
    fn a_reader_s_reports_move_only_its_own_plan() {
        let mut book = PlanBook::default();
        book.follow(plan(1, "peer x", &[10, 11, 12, 13]), 0);
        book.follow(plan(1, "peer y", &[10, 11, 12, 13]), 0);
        // (plan 1 of another dataset, and a job with no plan)
        assert_eq!(book.reader_reads(&cid(2), "peer x", &[cid(10)], 1), None);
        assert_eq!(book.reader_reads(&cid(1), "peer z", &[cid(10)], 1), None);
        // x reports 10, 11 and a block it did not plan: y's reader has read nothing
        assert_eq!(
            book.reader_reads(&cid(1), "peer x", &[cid(10), cid(11), cid(99)], 1),
            Some(2)
        );
        assert_eq!(book.plans[0].cursor.read_count(), 2);
        assert_eq!(book.plans[1].cursor.read_count(), 0);
        // the same reads again count once
        assert_eq!(
            book.reader_reads(&cid(1), "peer x", &[cid(10), cid(11)], 2),
            Some(0)
        );
        assert_eq!(book.observed, 2);
        // a read that does not say whose it is no longer counts for x, whose reader reports
        assert!(book.observe(&cid(12), 3));
        assert_eq!(book.plans[0].cursor.read_count(), 2);
        assert_eq!(book.plans[1].cursor.read_count(), 1);
        assert!(book.plans_read(&cid(13)) && !book.plans_read(&cid(99)));
    }

    #[test]
    fn a_plan_replaces_its_own_and_the_oldest_goes_past_the_limit() {
        let mut book = PlanBook::default();
        book.follow(plan(1, "a", &[1]), 0);
        book.follow(plan(1, "a", &[2, 3]), 1);
        let (s, _) = book.status();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].blocks, 2);
        for i in 0..MAX_PLANS as u8 {
            book.follow(plan(2, &format!("job{i}"), &[4]), 2 + u64::from(i));
        }
        let (s, _) = book.status();
        assert_eq!(s.len(), MAX_PLANS);
        assert!(
            s.iter().all(|p| p.root == cid(2).to_string()),
            "the oldest went"
        );
    }

    #[test]
    fn the_same_plan_again_keeps_what_was_read() {
        let mut book = PlanBook::default();
        book.follow(plan(1, "a", &[10, 11]), 0);
        assert!(book.observe(&cid(10), 1));
        let mut again = plan(1, "a", &[10, 11]);
        again.rate = Some(5.0);
        book.follow(again, 2);
        assert_eq!(book.plans.len(), 1);
        assert_eq!(book.plans[0].cursor.read_count(), 1);
        assert_eq!(book.plans[0].cursor.rate(), Some(5.0));
        // another order is another plan: it replaces the first
        book.follow(plan(1, "a", &[11, 10]), 3);
        assert_eq!(book.plans[0].cursor.read_count(), 0);
    }

    #[test]
    fn reads_from_before_a_plan_are_not_its_readers() {
        let mut book = PlanBook::default();
        book.follow(plan(1, "a", &[10, 11]), 1_000);
        // a read of the epoch before, still in the node's read log
        assert!(!book.observe(&cid(10), 999));
        assert!(book.observe(&cid(10), 1_000));
        assert_eq!(book.plans[0].cursor.read_count(), 1);
    }

    #[test]
    fn the_budget_is_shared_equally() {
        let t = tuning(&opts(1000), 4);
        assert_eq!(t.budget, 250);
        assert_eq!(t.behind_bytes, 62);
        assert_eq!(tuning(&opts(1000), 0).budget, 1000);
    }
}
