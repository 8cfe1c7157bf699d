//! The plans a promoter follows ([`super::prefetch`] carries them out; one tick's decision
//! over them is [`super::claims::combine`]): each reader's [`Cursor`] over its planned
//! blocks, the blocks held on fast peers for them, and the status they report. A read does
//! not say whose reader made it: it counts for the plan whose reader is nearest the block
//! ([`PlanBook::observe`]). Peers' plans are followed over one dataset at a time
//! ([`PlanBook::peers_follow_another`]).

use cairn_core::Cid;
use cairn_net::PeerId;
use cairn_placement::prefetch::Cursor;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Plans kept at once; registering another replaces the oldest.
pub const MAX_PLANS: usize = 8;
/// Peers' plans (sent over the network, not through the API) kept at once: a new one past
/// this replaces the oldest of them, so strangers hold at most half of the plan slots.
pub const MAX_PEER_PLANS: usize = MAX_PLANS / 2;

/// How long after a peer's plan over a dataset was registered, or its reader was last seen,
/// this node still follows peers' plans over that dataset only (ms): see
/// [`PlanBook::peers_follow_another`].
pub const PEER_DATASET_IDLE_MS: u64 = 30_000;

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
    /// The dataset of the plan it was copied for (its plans claim it when spare).
    pub(super) root: Option<Cid>,
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

    /// The dataset other than `root` whose peers' plans this node follows at `now_ms`, if
    /// any: one registered, or whose reader was seen, within [`PEER_DATASET_IDLE_MS`]. A node
    /// follows peers' plans over one dataset at a time, so that jobs over another dataset go to
    /// another of its holders ([`cairn_retrieval::dataset::plan_node_of`] ranks them): each
    /// promoter may use half of a fast peer's cache, and two datasets' plans sharing one
    /// node's room copy half as much of each.
    pub(crate) fn peers_follow_another(&self, root: &Cid, now_ms: u64) -> Option<Cid> {
        self.plans
            .iter()
            .filter(|p| p.from_peer && p.root != *root)
            .find(|p| {
                let seen = p.at_ms.max(p.cursor.head_ms());
                now_ms.saturating_sub(seen) < PEER_DATASET_IDLE_MS
            })
            .map(|p| p.root)
    }

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use cairn_core::block::{Block, HashAlg, RAW};

    /// A CID for tests.
    pub(crate) fn cid(i: u8) -> Cid {
        Block::new(HashAlg::Blake3, RAW, vec![i]).cid
    }

    /// An API plan over dataset `root` of 100-byte `blocks`.
    pub(crate) fn plan(root: u8, job: &str, blocks: &[u8]) -> NewPlan {
        NewPlan {
            root: cid(root),
            job: job.into(),
            order: blocks.iter().map(|&b| (cid(b), 100)).collect(),
            rate: None,
            from_peer: false,
        }
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
    fn peers_plans_over_one_dataset_at_a_time() {
        let mut book = PlanBook::default();
        let peer = |root: u8, job: &str, blocks: &[u8]| NewPlan {
            from_peer: true,
            ..plan(root, job, blocks)
        };
        // the operator's plans do not count
        book.follow(plan(3, "api", &[30]), 0);
        assert_eq!(book.peers_follow_another(&cid(1), 0), None);
        book.follow(peer(1, "peer a", &[10, 11]), 1_000);
        // (at, asking for) -> the other dataset followed
        let table: [(u64, u8, Option<u8>); 5] = [
            (1_000, 1, None),
            (1_000, 2, Some(1)),
            (30_999, 2, Some(1)),
            // idle past the limit: another dataset may come
            (31_000, 2, None),
            // its reader seen at 20 s keeps it until 50 s
            (49_999, 2, Some(1)),
        ];
        for (i, (at, root, want)) in table.into_iter().enumerate() {
            if i == 4 {
                assert!(book.observe(&cid(10), 20_000));
            }
            assert_eq!(
                book.peers_follow_another(&cid(root), at),
                want.map(cid),
                "row {i}"
            );
        }
        assert_eq!(book.peers_follow_another(&cid(2), 50_000), None);
    }
}
