//! The ledger's side of storage bound to assignment ([`cover`]): whether a claimed holder
//! counts now, and an audit's challenge drawn with fresh randomness from the datasets this node
//! knows.

use super::cover::{challenge, leaves_to_open, Opened};
use super::*;
use cairn_proofs::audit::Piece;
use std::collections::HashSet;

impl Ledger {
    /// Whether `peer`, which says it has `cid`, counts as its holder now ([`Cover::counts`]).
    pub(crate) fn counts_as_holder(&self, peer: &PeerId, cid: &Cid) -> bool {
        let grace = (self.opts.grace.as_secs(), self.opts.check_grace.as_secs());
        self.cover
            .lock()
            .map(|mut c| c.counts(&peer.to_bytes(), &cid.to_bytes(), unix_now(), grace))
            .unwrap_or(false)
    }

    /// The shards (data and parity) of every dataset whose manifest this node has.
    fn known_shards(&self) -> HashSet<Vec<u8>> {
        let mut out = HashSet::new();
        let Ok(datasets) = self.repo.datasets() else {
            return out;
        };
        for (_, mcid) in datasets {
            let Ok(m) = self.repo.manifest(&mcid) else {
                continue;
            };
            let Ok(stripes) = self.repo.stripes(&m) else {
                continue;
            };
            for s in &stripes {
                out.extend(s.shards().map(|c| c.to_bytes()));
            }
        }
        out
    }

    /// An audit's challenge of `prover` ([`challenge`]) with fresh randomness: the sectors with
    /// their `comm_r`, and what to open (block, piece index, leaves, `comm_d`, the piece and
    /// its start). Empty when no sector of `prover` is known.
    pub(crate) fn plan_challenge(&self, prover: &[u8]) -> (Vec<(u64, Fr)>, Option<Opened>) {
        let committed = self.sectors_of(prover);
        let ids: Vec<u64> = committed.iter().map(|s| s.0).collect();
        let shards = self.known_shards();
        let Ok(cover) = self.cover.lock() else {
            return (Vec::new(), None);
        };
        let assigned = cover.assigned(prover, &shards);
        let mut rng = rand::rngs::OsRng;
        let c = challenge(&assigned, &ids, self.opts.params.batch, |n| {
            rng.next_u64() % n.max(1)
        });
        let sectors = c
            .sectors
            .iter()
            .filter_map(|s| committed.iter().find(|x| x.0 == *s).copied())
            .collect();
        let opened = c.open.and_then(|(cid, piece)| {
            let first = *c.sectors.first()?;
            let (comm_d, p, start) = cover.piece(prover, first, piece)?;
            let leaves = leaves_to_open(start, p.len, audit::MAX_OPENINGS, |n| {
                rng.next_u64() % n.max(1)
            });
            let cid = Cid::try_from(cid.as_slice()).ok()?;
            Some(Opened {
                cid,
                piece,
                leaves,
                comm_d,
                start,
                detail: p,
            })
        });
        (sectors, opened)
    }

    /// `comm_d`, the piece and its start, for checking openings of `prover`'s `sector`.
    pub(crate) fn piece_of(
        &self,
        prover: &[u8],
        sector: u64,
        piece: u8,
    ) -> Option<(Fr, Piece, u64)> {
        self.cover.lock().ok()?.piece(prover, sector, piece)
    }
}
