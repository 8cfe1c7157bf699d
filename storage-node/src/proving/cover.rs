//! Storage bound to assignment: which blocks each prover's sealed sectors hold, who counts as
//! a block's holder, and what an audit challenges.
//!
//! - Every verified [`SectorRecord`] lists its pieces (the blocks in the sector, bound into the
//!   seal). [`Cover`] indexes them: prover -> block -> (sector, piece).
//! - **Holders.** A peer that says it has a block counts as its holder only when a sealed
//!   sector of its verified records lists the block, or, until then, for the grace period
//!   after this node first saw it claim the block ([`within_grace`]; sealing takes time). Repair
//!   and rebalancing only see counted holders, so a node that keeps what it is given unsealed
//!   (or never stored it) stops counting when its grace ends, and its shards are rebuilt
//!   elsewhere.
//! - **Challenges.** An auditor draws the shards it challenges from the prover's listed pieces
//!   of the datasets the auditor knows (the shards the network counts the prover as holding),
//!   and challenges the sectors that hold them ([`challenge`]); the first one's piece is also
//!   opened leaf by leaf against `comm_d` and compared with the block's bytes, so a sector
//!   sealed from other bytes than it lists fails.
//!
//! The decisions are pure functions of their inputs (time and draws are arguments), tested by
//! tables; the ledger's calls into them (with the clock, the store and fresh randomness) are in
//! `assign.rs`.

use ark_bn254::Fr;
use cairn_core::Cid;
use cairn_proofs::audit::{piece_leaves, piece_starts, Piece, SectorRecord};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Most (peer, block) claims remembered for their grace period. When full, a new claim does
/// not count until a sealed sector lists its block (the safe side: repair makes another copy).
pub(crate) const MAX_CLAIMS: usize = 1 << 20;

/// Where a prover's records list one block: (sector, piece index) pairs.
pub(crate) type Listing = Vec<(u64, u8)>;
/// A block (CID bytes) and where a prover's records list it.
pub(crate) type Assigned = (Vec<u8>, Listing);
/// A prover's sectors: number -> (`comm_d`, pieces).
type SectorPieces = BTreeMap<u64, (Fr, Vec<Piece>)>;

/// The piece lists of verified sector records, indexed by block, and the claims in grace.
#[derive(Debug, Default)]
pub(crate) struct Cover {
    /// prover -> sector -> (`comm_d`, pieces).
    sectors: HashMap<Vec<u8>, SectorPieces>,
    /// prover -> block CID bytes -> (sector, piece index).
    blocks: HashMap<Vec<u8>, HashMap<Vec<u8>, Listing>>,
    /// (prover, block CID bytes) -> when this node first saw the claim (unix seconds).
    claims: HashMap<(Vec<u8>, Vec<u8>), u64>,
    /// (prover, sector) -> when this node registered the sector (unix seconds), until it passes
    /// a seal check; a sector that passed is not here.
    unchecked: HashMap<(Vec<u8>, u64), u64>,
}

/// Whether a claim first seen at `first` still counts at `now` (seconds) with `grace`.
pub(crate) fn within_grace(first: u64, now: u64, grace: u64) -> bool {
    now.saturating_sub(first) < grace
}

impl Cover {
    /// Indexes a verified record's pieces (a record of the same sector replaces the old one).
    /// Until the sector passes a seal check ([`Cover::checked`]), it counts only for
    /// `check_grace` from `now` ([`Cover::counts`]).
    pub(crate) fn add(&mut self, r: &SectorRecord, now: u64) {
        self.remove(&r.prover, r.sector);
        self.unchecked.insert((r.prover.clone(), r.sector), now);
        let by_block = self.blocks.entry(r.prover.clone()).or_default();
        let sectors = self.sectors.entry(r.prover.clone()).or_default();
        for (i, p) in r.pieces.iter().enumerate() {
            by_block
                .entry(p.cid.clone())
                .or_default()
                .push((r.sector, i as u8));
            self.claims.remove(&(r.prover.clone(), p.cid.clone()));
        }
        sectors.insert(r.sector, (r.comm_d, r.pieces.clone()));
    }

    /// Drops `prover`'s sector `sector` (replaced or retired): the blocks it lists no longer
    /// count as held through it.
    pub(crate) fn remove(&mut self, prover: &[u8], sector: u64) {
        self.unchecked.remove(&(prover.to_vec(), sector));
        let Some(sectors) = self.sectors.get_mut(prover) else {
            return;
        };
        let Some((_, old)) = sectors.remove(&sector) else {
            return;
        };
        if sectors.is_empty() {
            self.sectors.remove(prover);
        }
        if let Some(by_block) = self.blocks.get_mut(prover) {
            for p in old {
                if let Some(v) = by_block.get_mut(&p.cid) {
                    v.retain(|(s, _)| *s != sector);
                    if v.is_empty() {
                        by_block.remove(&p.cid);
                    }
                }
            }
            if by_block.is_empty() {
                self.blocks.remove(prover);
            }
        }
    }

    /// Marks `prover`'s sector `sector` as having passed a seal check: it counts from now on.
    pub(crate) fn checked(&mut self, prover: &[u8], sector: u64) {
        self.unchecked.remove(&(prover.to_vec(), sector));
    }

    /// The (sector, piece) entries of `prover`'s records that list block `cid`.
    pub(crate) fn listed(&self, prover: &[u8], cid: &[u8]) -> &[(u64, u8)] {
        self.blocks
            .get(prover)
            .and_then(|m| m.get(cid))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Piece `piece` of `prover`'s sector `sector`: the sector's `comm_d`, the piece and where
    /// it starts in the sector's data.
    pub(crate) fn piece(&self, prover: &[u8], sector: u64, piece: u8) -> Option<(Fr, Piece, u64)> {
        let (comm_d, pieces) = self.sectors.get(prover)?.get(&sector)?;
        let p = pieces.get(piece as usize)?.clone();
        let start = piece_starts(pieces)[piece as usize];
        Some((*comm_d, p, start))
    }

    /// Whether `prover`, which says it has block `cid`, counts as its holder at `now` (unix
    /// seconds): listed by one of its sealed sectors that passed a seal check or was
    /// registered less than `check_grace` seconds ago, or (listed by none) within `grace`
    /// seconds of this node's first sight of the claim (remembered from here on, up to
    /// [`MAX_CLAIMS`]).
    pub(crate) fn counts(
        &mut self,
        prover: &[u8],
        cid: &[u8],
        now: u64,
        (grace, check_grace): (u64, u64),
    ) -> bool {
        let listed = self.listed(prover, cid);
        if listed.iter().any(|(s, _)| {
            self.unchecked
                .get(&(prover.to_vec(), *s))
                .is_none_or(|first| within_grace(*first, now, check_grace))
        }) {
            return true;
        }
        if !listed.is_empty() {
            // listed only by sectors past their check grace: sealed, not checked, not counted
            return false;
        }
        let key = (prover.to_vec(), cid.to_vec());
        let first = match self.claims.get(&key) {
            Some(t) => *t,
            None if self.claims.len() >= MAX_CLAIMS => return false,
            None => {
                self.claims.insert(key, now);
                now
            }
        };
        within_grace(first, now, grace)
    }

    /// `prover`'s listed pieces of the blocks in `shards`, by block: what it is counted as
    /// holding of the datasets the caller knows.
    pub(crate) fn assigned(&self, prover: &[u8], shards: &HashSet<Vec<u8>>) -> Vec<Assigned> {
        let Some(m) = self.blocks.get(prover) else {
            return Vec::new();
        };
        let mut out: Vec<Assigned> = m
            .iter()
            .filter(|(c, _)| shards.contains(*c))
            .map(|(c, v)| (c.clone(), v.clone()))
            .collect();
        out.sort();
        out
    }
}

/// What one audit asks: the sectors of the window proof, in order, and which piece of the
/// first one is opened (block CID bytes, piece index), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Sector numbers, `batch` of them.
    pub(crate) sectors: Vec<u64>,
    /// The block and piece (of `sectors[0]`) whose leaves are opened.
    pub(crate) open: Option<(Vec<u8>, u8)>,
}

/// Draws an audit's sectors. `assigned` is the prover's listed pieces of the shards the auditor
/// knows ([`Cover::assigned`]), `committed` all its sector numbers, `draw(n)` a uniform draw
/// in `0..n`. Each of the `batch` challenges picks a shard uniformly, then one sector holding
/// it; the first shard's piece is opened. With no assigned shard, sectors are drawn from all
/// committed ones and nothing is opened. Empty when nothing is committed.
///
/// A prover that lost the sectors of `d` of its `s` assigned shards answers every challenge of
/// a window with probability at most `(1 - d/s)^batch`.
pub(crate) fn challenge(
    assigned: &[Assigned],
    committed: &[u64],
    batch: usize,
    mut draw: impl FnMut(u64) -> u64,
) -> Challenge {
    let usable: Vec<&Assigned> = assigned.iter().filter(|(_, v)| !v.is_empty()).collect();
    if usable.is_empty() {
        if committed.is_empty() {
            return Challenge {
                sectors: Vec::new(),
                open: None,
            };
        }
        let sectors = (0..batch)
            .map(|_| committed[draw(committed.len() as u64) as usize % committed.len()])
            .collect();
        return Challenge {
            sectors,
            open: None,
        };
    }
    let mut sectors = Vec::with_capacity(batch);
    let mut open = None;
    for i in 0..batch {
        let (cid, pieces) = usable[draw(usable.len() as u64) as usize % usable.len()];
        let (sector, piece) = pieces[draw(pieces.len() as u64) as usize % pieces.len()];
        sectors.push(sector);
        if i == 0 {
            open = Some((cid.clone(), piece));
        }
    }
    Challenge { sectors, open }
}

/// `count` leaves drawn uniformly among those holding a piece that starts at `start` with
/// `len` bytes.
pub(crate) fn leaves_to_open(
    start: u64,
    len: u64,
    count: usize,
    mut draw: impl FnMut(u64) -> u64,
) -> Vec<u64> {
    let (first, last) = piece_leaves(start, len);
    let n = last - first + 1;
    (0..count).map(|_| first + draw(n) % n).collect()
}

/// The piece an audit opens.
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    /// The block.
    pub(crate) cid: Cid,
    /// Its piece's index in the first sector's record.
    pub(crate) piece: u8,
    /// The leaves asked for.
    pub(crate) leaves: Vec<u64>,
    /// The sector's `comm_d`.
    pub(crate) comm_d: Fr,
    /// Where the piece starts in the sector's data.
    pub(crate) start: u64,
    /// The piece.
    pub(crate) detail: Piece,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(prover: u8, sector: u64, cids: &[u8]) -> SectorRecord {
        SectorRecord {
            prover: vec![prover; 38],
            sector,
            sector_size: 4096,
            layers: 1,
            data_len: 3968,
            ticket: [0; 32],
            pieces: cids
                .iter()
                .map(|c| Piece {
                    cid: vec![*c; 36],
                    offset: 0,
                    len: 100,
                })
                .collect(),
            comm_d: Fr::from(sector),
            comm_r: Fr::from(sector + 1),
            seal_proof: [0; cairn_proofs::audit::PROOF_LEN],
            revealed: Vec::new(),
        }
    }

    #[test]
    fn grace_table() {
        // (first seen, now, grace, counts)
        for (first, now, grace, want) in [
            (100, 100, 60, true),
            (100, 159, 60, true),
            (100, 160, 60, false),
            (100, 100, 0, false), // no grace: only sealed blocks count
            (200, 100, 60, true), // a clock that went back
        ] {
            assert_eq!(
                within_grace(first, now, grace),
                want,
                "{first} {now} {grace}"
            );
        }
    }

    #[test]
    fn holders_count_when_listed_or_in_grace() {
        let mut c = Cover::default();
        c.add(&record(1, 7, &[10, 11]), 0);
        let (p, q) = (vec![1u8; 38], vec![2u8; 38]);
        let (x, y) = (vec![10u8; 36], vec![12u8; 36]);
        assert!(c.counts(&p, &x, 1000, (0, u64::MAX)), "listed: always");
        assert!(
            c.counts(&p, &y, 1000, (60, u64::MAX)),
            "a new claim, in grace"
        );
        assert!(c.counts(&p, &y, 1059, (60, u64::MAX)));
        assert!(
            !c.counts(&p, &y, 1060, (60, u64::MAX)),
            "grace over, still unsealed"
        );
        assert!(
            !c.counts(&q, &x, 1000, (0, u64::MAX)),
            "another prover's listing counts for nothing"
        );
        // sealing it later makes it count again, and forgets the claim
        c.add(&record(1, 8, &[12]), 0);
        assert!(c.counts(&p, &y, 5000, (60, u64::MAX)));
        assert!(!c.claims.contains_key(&(p.clone(), y.clone())));
        // a record of the same sector replaces the old listing
        c.add(&record(1, 7, &[13]), 0);
        assert!(c.listed(&p, &x).is_empty());
        assert_eq!(c.listed(&p, &[13u8; 36]), &[(7, 0)]);
        assert_eq!(
            c.piece(&p, 8, 0).map(|(d, _, s)| (d, s)),
            Some((Fr::from(8u64), 0))
        );
        assert!(c.piece(&p, 8, 1).is_none());
        // a retired sector no longer counts for the blocks it listed (grace over)
        c.add(&record(1, 9, &[13, 14]), 0);
        c.remove(&p, 7);
        assert_eq!(c.listed(&p, &[13u8; 36]), &[(9, 0)]);
        c.remove(&p, 9);
        assert!(c.listed(&p, &[13u8; 36]).is_empty());
        assert!(!c.counts(&p, &[14u8; 36], 9000, (0, u64::MAX)));
        assert!(c.piece(&p, 9, 0).is_none());
        // removing what is not there changes nothing
        c.remove(&p, 9);
        c.remove(&q, 1);
        assert!(
            c.counts(&p, &y, 9000, (0, u64::MAX)),
            "sector 8 still lists it"
        );
    }

    #[test]
    fn a_sector_counts_for_its_check_grace_then_only_once_checked() {
        let p = vec![1u8; 38];
        let x = [10u8; 36];
        // (registered at, checked, now, check grace, counts)
        for (at, checked, now, cg, want) in [
            (100, false, 100, 60, true),
            (100, false, 159, 60, true),
            (100, false, 160, 60, false), // never checked: no longer counted
            (100, true, 160, 60, true),
            (100, true, 99_999, 0, true),
            (100, false, 100, 0, false),
        ] {
            let mut c = Cover::default();
            c.add(&record(1, 7, &[10]), at);
            if checked {
                c.checked(&p, 7);
            }
            assert_eq!(
                c.counts(&p, &x, now, (3600, cg)),
                want,
                "{at} {checked} {now} {cg}"
            );
        }
        // another sector listing the block, checked, makes it count
        let mut c = Cover::default();
        c.add(&record(1, 7, &[10]), 0);
        c.add(&record(1, 8, &[10]), 0);
        assert!(!c.counts(&p, &x, 100, (0, 60)));
        c.checked(&p, 8);
        assert!(c.counts(&p, &x, 100, (0, 60)));
        // a sector registered again (a new record) waits for a check again
        c.add(&record(1, 8, &[10]), 100);
        assert!(c.counts(&p, &x, 159, (0, 60)));
        assert!(!c.counts(&p, &x, 160, (0, 60)));
    }

    #[test]
    fn a_full_claim_table_counts_no_new_claim() {
        let mut c = Cover::default();
        for i in 0..MAX_CLAIMS as u64 {
            c.claims.insert((vec![1], i.to_le_bytes().to_vec()), 0);
        }
        assert!(!c.counts(&[1], b"new", 0, (60, u64::MAX)));
        assert!(
            c.counts(&[1], &5u64.to_le_bytes(), 10, (60, u64::MAX)),
            "an old claim still in grace"
        );
    }

    #[test]
    fn challenge_table() {
        let a = |c: u8, v: &[(u64, u8)]| (vec![c], v.to_vec());
        // draws return 0, 1, 2, ... modulo n
        let seq = || {
            let mut i = 0u64;
            move |n: u64| {
                i += 1;
                (i - 1) % n
            }
        };
        // (assigned, committed, batch, sectors, opened)
        type Case = (
            Vec<(Vec<u8>, Vec<(u64, u8)>)>,
            Vec<u64>,
            usize,
            Vec<u64>,
            Option<(Vec<u8>, u8)>,
        );
        let cases: Vec<Case> = vec![
            (vec![], vec![], 2, vec![], None),
            (vec![], vec![5, 6, 7], 2, vec![5, 6], None),
            (vec![a(1, &[])], vec![5], 2, vec![5, 5], None),
            // draws: shard 0 (piece 1 of 2), shard 0 again (piece 1 of 2: 3 % 2)
            (
                vec![a(1, &[(4, 0), (9, 3)])],
                vec![4, 9],
                2,
                vec![9, 9],
                Some((vec![1], 3)),
            ),
            // two shards: shard 0 -> its one piece, then shard 0 (2 % 2) -> same
            (
                vec![a(1, &[(4, 0)]), a(2, &[(6, 1)])],
                vec![4, 6],
                2,
                vec![4, 4],
                Some((vec![1], 0)),
            ),
            (
                vec![a(1, &[(4, 0)]), a(2, &[(6, 1)])],
                vec![4, 6],
                3,
                vec![4, 4, 4],
                Some((vec![1], 0)),
            ),
        ];
        for (i, (assigned, committed, batch, sectors, open)) in cases.into_iter().enumerate() {
            let got = challenge(&assigned, &committed, batch, seq());
            assert_eq!(got.sectors, sectors, "case {i}");
            assert_eq!(got.open, open, "case {i}");
        }
        // every assigned shard is reachable with uniform draws
        let assigned = vec![a(1, &[(4, 0)]), a(2, &[(6, 1)]), a(3, &[(8, 2)])];
        let mut seen = HashSet::new();
        for k in 0..3u64 {
            let c = challenge(&assigned, &[4, 6, 8], 1, |n| k % n);
            seen.insert(c.sectors[0]);
        }
        assert_eq!(seen.len(), 3);
    }

    /// The detection figure of docs/threat-model.md, by simulation with a seeded generator:
    /// a prover that lost the sectors of `d` of its `s` shards escapes one audit of `b`
    /// challenges with probability `(1 - d/s)^b`.
    #[test]
    fn audits_catch_dropped_shards_as_often_as_the_threat_model_says() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xCA12);
        const RUNS: usize = 20_000;
        for (s, d, b) in [(10u64, 1u64, 2usize), (10, 5, 2), (100, 1, 2), (40, 4, 3)] {
            // shard i is held in sector 1000 + i; the first d are lost
            let assigned: Vec<Assigned> = (0..s)
                .map(|i| (i.to_le_bytes().to_vec(), vec![(1000 + i, 0)]))
                .collect();
            let ids: Vec<u64> = (0..s).map(|i| 1000 + i).collect();
            let mut caught = 0;
            for _ in 0..RUNS {
                let c = challenge(&assigned, &ids, b, |n| rng.gen_range(0..n));
                if c.sectors.iter().any(|x| *x < 1000 + d) {
                    caught += 1;
                }
            }
            let want = 1.0 - (1.0 - d as f64 / s as f64).powi(b as i32);
            let got = caught as f64 / RUNS as f64;
            // five standard deviations of a binomial proportion
            let tol = 5.0 * (want * (1.0 - want) / RUNS as f64).sqrt();
            assert!(
                (got - want).abs() <= tol,
                "s {s} d {d} b {b}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn leaves_to_open_stay_in_the_piece() {
        for (start, len) in [(0u64, 1u64), (30, 2), (31, 31), (100, 5000)] {
            let (first, last) = piece_leaves(start, len);
            for k in 0..20u64 {
                let ls = leaves_to_open(start, len, 4, |n| (k * 7919) % n);
                assert_eq!(ls.len(), 4);
                assert!(
                    ls.iter().all(|l| (first..=last).contains(l)),
                    "{start} {len} {ls:?}"
                );
            }
        }
    }
}
