//! Admission of pushed blocks (docs/threat-model.md, "Push admission"): a node stores a pushed
//! shard only when its own placement assigns the shard's stripe to it, and only within the
//! pusher's quota of its space.
//!
//! - **Assignment**: the receiver ranks the live nodes it last saw (weighted rendezvous on the
//!   stripe's key, as put, repair and rebalancing do) and accepts a shard of a stripe of `n`
//!   shards only when it ranks among the first `2n`. Views differ between nodes by the peers
//!   that joined, died or turned faulty since each last looked, and repair and rebalancing
//!   place shards on the nodes that hold nothing of the stripe, which rank after its holders:
//!   the slack of `n` ranks covers both. A node that has not looked yet (just started) accepts.
//! - **Quota** (proofs on): every byte pushed here is charged to its pusher, per dataset, in
//!   table `pushed` (so charges survive restarts; a dataset's charges go when its manifest is
//!   collected or removed). A pusher may hold here up to twice the storage it has proven
//!   ([`PUSH_FACTOR`]); beyond that, pushers draw from one bucket of a quarter of the
//!   capacity shared by all of them, so any number of identities with nothing proven (Sybils)
//!   together fill no more than that quarter. Proofs off: no quota (a network of known nodes).
//!
//! The decision ([`admit`]) is pure and table-tested; the node applies it where it answers
//! pushes (`service.rs`).

use cairn_core::block::cid_from_bytes;
use cairn_core::Cid;
use cairn_net::PeerId;
use std::collections::HashMap;

/// A shard is accepted when the receiver ranks among the first `RANK_SLACK * n` nodes of its
/// view for the stripe (`n` shards).
pub(crate) const RANK_SLACK: usize = 2;

/// A pusher may hold this many times the bytes it has proven before it draws from the shared
/// bucket.
pub(crate) const PUSH_FACTOR: u64 = 2;

/// Pushers whose charges are kept in memory; beyond, a new pusher's blocks are refused until a
/// collection pass drops the charges of datasets no longer held.
pub(crate) const MAX_PUSHERS: usize = 1 << 16;

/// One pushed block, as admission sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ask {
    /// Its bytes.
    pub len: u64,
    /// Where the receiver ranks for the block's stripe among the live nodes it last saw, and
    /// the stripe's shard count; `None` for manifest and page blocks, or when it has no view.
    pub rank: Option<(usize, usize)>,
    /// Bytes the pusher has proven (proofs on); `None`: proofs off, no quota.
    pub proven: Option<u64>,
    /// Bytes the pusher holds here already.
    pub theirs: u64,
    /// Bytes held here beyond their pushers' own allowances, over all pushers.
    pub overdrawn: u64,
    /// The receiver's capacity.
    pub capacity: u64,
}

/// What the receiver does with a pushed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Store it.
    Admit,
    /// Its stripe is not assigned here.
    NotAssigned,
    /// The pusher's allowance and the shared bucket are used up.
    OverQuota,
}

/// The pusher's allowance: [`PUSH_FACTOR`] times what it has proven.
pub(crate) fn allowance(proven: u64) -> u64 {
    proven.saturating_mul(PUSH_FACTOR)
}

/// Bytes of `theirs` beyond the allowance of a pusher that proved `proven`.
pub(crate) fn overdraft(theirs: u64, proven: u64) -> u64 {
    theirs.saturating_sub(allowance(proven))
}

/// Whether a pushed block is stored (module docs).
pub(crate) fn admit(a: &Ask) -> Admission {
    if let Some((rank, n)) = a.rank {
        if rank >= RANK_SLACK.saturating_mul(n.max(1)) {
            return Admission::NotAssigned;
        }
    }
    let Some(proven) = a.proven else {
        return Admission::Admit;
    };
    let after = a.theirs.saturating_add(a.len);
    let more = overdraft(after, proven) - overdraft(a.theirs, proven);
    if more == 0 || a.overdrawn.saturating_add(more) <= a.capacity / 4 {
        Admission::Admit
    } else {
        Admission::OverQuota
    }
}

/// The charges of every pusher, in memory (rebuilt from table `pushed` at start and after each
/// collection or removal).
#[derive(Debug, Default)]
pub(crate) struct PushCharges {
    theirs: HashMap<PeerId, u64>,
    over: HashMap<PeerId, u64>,
    overdrawn: u64,
}

impl PushCharges {
    /// Bytes `p` holds here, and the overdraft over all pushers.
    pub(super) fn get(&self, p: &PeerId) -> (u64, u64) {
        (self.theirs.get(p).copied().unwrap_or(0), self.overdrawn)
    }

    /// Pushers with charges.
    pub(super) fn pushers(&self) -> usize {
        self.theirs.len()
    }

    /// Whether `p` has charges.
    pub(super) fn knows(&self, p: &PeerId) -> bool {
        self.theirs.contains_key(p)
    }

    /// Records that `p` holds `theirs` bytes here, having proven `proven` (`None`: no quota).
    pub(super) fn set(&mut self, p: PeerId, theirs: u64, proven: Option<u64>) {
        let over = proven.map_or(0, |pr| overdraft(theirs, pr));
        let old = self.over.insert(p, over).unwrap_or(0);
        self.overdrawn = self.overdrawn - old + over;
        self.theirs.insert(p, theirs);
    }
}

/// Key of a row of table `pushed`: `u8` length of the manifest CID, its bytes, the pusher's
/// peer id bytes.
pub(super) fn row_key(manifest: &Cid, pusher: &PeerId) -> Vec<u8> {
    let m = manifest.to_bytes();
    let mut k = Vec::with_capacity(1 + m.len() + 40);
    k.push(m.len() as u8);
    k.extend_from_slice(&m);
    k.extend_from_slice(&pusher.to_bytes());
    k
}

/// The manifest and pusher of a row key (`None`: not a row this node wrote).
pub(super) fn parse_row_key(k: &[u8]) -> Option<(Cid, PeerId)> {
    let (&n, rest) = k.split_first()?;
    let m = cid_from_bytes(rest.get(..n as usize)?).ok()?;
    let p = PeerId::from_bytes(rest.get(n as usize..)?).ok()?;
    Some((m, p))
}

pub(super) fn row_value(v: &[u8]) -> u64 {
    v.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 1000;

    fn ask(
        len: u64,
        rank: Option<(usize, usize)>,
        proven: Option<u64>,
        theirs: u64,
        over: u64,
    ) -> Ask {
        Ask {
            len,
            rank,
            proven,
            theirs,
            overdrawn: over,
            capacity: CAP,
        }
    }

    #[test]
    fn admission_follows_rank_and_quota() {
        use Admission::*;
        // (ask, decision)
        let table = [
            // proofs off: only the rank counts
            (ask(10, None, None, 10_000, 10_000), Admit),
            (ask(10, Some((7, 4)), None, 0, 0), Admit),
            (ask(10, Some((8, 4)), None, 0, 0), NotAssigned),
            (ask(10, Some((1, 0)), None, 0, 0), Admit), // a stripe of no shards ranks as one
            (ask(10, Some((2, 0)), None, 0, 0), NotAssigned),
            // within twice what the pusher proved
            (ask(100, Some((0, 4)), Some(100), 100, 250), Admit),
            // nothing proven: the shared quarter of the capacity
            (ask(100, None, Some(0), 0, 150), Admit),
            (ask(100, None, Some(0), 0, 151), OverQuota),
            // part inside the allowance, part from the bucket
            (ask(100, None, Some(100), 150, 200), Admit), // 50 more overdrawn: 250
            (ask(100, None, Some(100), 150, 201), OverQuota),
            // a pusher already over draws the whole block from the bucket
            (ask(10, None, Some(1), 100, 240), Admit),
            (ask(10, None, Some(1), 100, 241), OverQuota),
            // the rank is checked before the quota
            (ask(1, Some((99, 4)), Some(1 << 40), 0, 0), NotAssigned),
            // no overflow
            (
                ask(u64::MAX, None, Some(u64::MAX), u64::MAX, u64::MAX),
                Admit,
            ),
        ];
        for (a, want) in table {
            assert_eq!(admit(&a), want, "{a:?}");
        }
    }

    #[test]
    fn charges_keep_the_overdraft_in_step() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut c = PushCharges::default();
        c.set(a, 300, Some(100)); // 100 over
        c.set(b, 50, Some(0)); // 50 over
        assert_eq!(c.get(&a), (300, 150));
        c.set(a, 150, Some(100)); // within
        assert_eq!(c.get(&a), (150, 50));
        c.set(b, 500, None); // proofs off: never over
        assert_eq!(c.get(&b), (500, 0));
    }

    #[test]
    fn row_keys_round_trip_and_junk_is_none() {
        let m = cairn_core::Block::new(cairn_core::block::HashAlg::Blake3, 0x55, &b"m"[..]).cid;
        let p = PeerId::random();
        assert_eq!(parse_row_key(&row_key(&m, &p)), Some((m, p)));
        for junk in [&[][..], &[200, 1, 2], &[0, 1, 2, 3]] {
            assert_eq!(parse_row_key(junk), None);
        }
    }
}
