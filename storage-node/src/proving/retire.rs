//! Retiring sealed sectors whose blocks are gone, and freeing their replicas.
//!
//! A sector's replica holds a copy of its blocks' bytes; when every block the sector lists has
//! left the store (collected, removed by its publisher, or dropped after repair moved it), the
//! replica guards nothing and only takes disk. The prover then:
//!
//! 1. signs a [`Retirement`] of the sector, logs it, gossips it on [`RETIRE_TOPIC`] and stops
//!    counting the sector as its own (its blocks may be sealed again if they come back);
//! 2. keeps the replica for [`ProofOptions::retire_grace`] more windows and answers window
//!    proofs over it as before (an auditor that has not heard of the retirement yet asks for
//!    it), gossiping the retirement again once a window;
//! 3. then deletes the replica and the sector's metadata.
//!
//! An auditor that receives a retirement signed by the sector's prover for the `comm_r` it has
//! registered logs it and forgets the sector: it is no longer challenged, and the blocks it
//! lists no longer count as held by that prover (repair copies them elsewhere if they are still
//! wanted). Audits already asked are judged as before. The decisions are pure functions below
//! ([`all_gone`], [`due`]), tested by tables.

use super::*;
use cairn_proofs::audit::Retirement;

/// Whether a sector's blocks have all left the store: `has(cid)` for each listed block. A
/// sector that lists none (sealed from other bytes) is never retired this way.
pub(crate) fn all_gone(pieces: &[(String, u64, u64)], mut has: impl FnMut(&str) -> bool) -> bool {
    !pieces.is_empty() && pieces.iter().all(|(c, _, _)| !has(c))
}

/// Whether a sector retired in window `retired` is due to be deleted in window `now`, after
/// `grace` windows of answering for it still.
pub(crate) fn due(retired: u64, grace: u64, now: u64) -> bool {
    retired.checked_add(grace).is_some_and(|end| now >= end)
}

/// Bytes a node keeps for one sealed sector's replica in `params`: 32 per leaf and the kept
/// top of its tree ([`StoredReplica`]).
pub(crate) fn replica_len(params: &NetParams) -> u64 {
    let n = params.sector().nodes;
    let h = KEPT_FROM.min(n.trailing_zeros() as usize);
    32 * (n + TopLevels::count(n, h)) as u64
}

/// What sealing `len` more bytes will add on disk in replicas (32 bytes per 31 of data).
pub(crate) fn replica_cost(len: u64) -> u64 {
    len.div_ceil(sdr_leaf_bytes()).saturating_mul(32)
}

fn sdr_leaf_bytes() -> u64 {
    cairn_proofs::sdr::BYTES_PER_LEAF as u64
}

fn meta_of(v: &[u8]) -> Option<SectorMeta> {
    serde_json::from_slice(v).ok()
}

impl Ledger {
    /// Bytes this node keeps per sealed sector's replica ([`replica_len`]).
    pub(super) fn replica_len(&self) -> u64 {
        replica_len(&self.opts.params)
    }

    /// Bytes on disk for `blocks` bytes of blocks: the plain blocks (in replica-only mode only
    /// those not sealed yet), the replicas kept (retired ones until they are freed), and the
    /// replicas the blocks not sealed yet will need.
    pub(crate) fn disk_use(&self, blocks: u64) -> u64 {
        let (replicas, sealed) = self
            .status
            .lock()
            .map(|s| (s.replica_bytes, s.sealed_bytes))
            .unwrap_or_default();
        let unsealed = blocks.saturating_sub(sealed);
        // replica-only: a sealed block's bytes are in its replica alone
        let plain = if self.opts.replica_only {
            unsealed
        } else {
            blocks
        };
        plain
            .saturating_add(replicas)
            .saturating_add(replica_cost(unsealed))
    }

    /// This node's sectors not yet retired whose blocks have all left the store.
    pub(crate) fn retirable(&self) -> Result<Vec<SectorRecord>, ProofsError> {
        let store = self.repo.store();
        let mut out = Vec::new();
        for (_, v) in store.table_scan(Table::Sectors)? {
            let Some(meta) = meta_of(&v) else { continue };
            if meta.retired.is_some() {
                continue;
            }
            let gone = all_gone(&meta.pieces, |c| {
                // a listing that does not parse counts as held: never retire on a doubt
                Cid::try_from(c).map_or(true, |c| !matches!(store.has(&c), Ok(false)))
            });
            if !gone {
                continue;
            }
            if let Some(r) = unhex(&meta.record).and_then(|b| SectorRecord::decode(&b).ok()) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Retires this node's sector `r.sector` with the signed retirement `r`: the metadata
    /// keeps it (the replica stays for the grace windows), the blocks' sealed marks of this
    /// sector go (a block stored again is sealed again), the retirement is logged and the
    /// sector is forgotten here.
    pub(crate) fn retire_own(&self, r: &Retirement) -> Result<(), ProofsError> {
        let store = self.repo.store();
        let key = be(r.sector);
        let Some(mut meta) = store
            .table_get(Table::Sectors, &key)?
            .and_then(|v| meta_of(&v))
        else {
            return Ok(());
        };
        if meta.retired.is_some() {
            return Ok(());
        }
        meta.retired = Some(hex(&r.encode()));
        let mut batch = Batch::new();
        for (c, _, _) in &meta.pieces {
            let Ok(cid) = Cid::try_from(c.as_str()) else {
                continue;
            };
            if store.table_get(Table::Sealed, &cid.to_bytes())?.as_deref() == Some(&key[..]) {
                batch.delete(Table::Sealed, cid.to_bytes());
            }
        }
        batch.put(
            Table::Sectors,
            key,
            serde_json::to_vec(&meta).unwrap_or_default(),
        );
        // forgotten before it is logged: a compaction the append runs must not carry the
        // sector's record over as live (a replay would then register it again); a crash
        // before the append is mended when the node starts (an own sector marked retired is
        // forgotten)
        let data = self.forget(&r.prover, r.sector, r.comm_r);
        store.write(batch, Durability::Sync)?;
        self.append(EntryKind::Retire, r.encode())?;
        if let Ok(mut s) = self.status.lock() {
            s.sectors = s.sectors.saturating_sub(1);
            s.sealed_bytes = s.sealed_bytes.saturating_sub(data);
            s.retired += 1;
        }
        Ok(())
    }

    /// This node's retirements whose replicas are still kept (to gossip again).
    pub(crate) fn in_grace(&self) -> Result<Vec<Retirement>, ProofsError> {
        let mut out = Vec::new();
        for (_, v) in self.repo.store().table_scan(Table::Sectors)? {
            if let Some(r) = meta_of(&v)
                .and_then(|m| m.retired)
                .and_then(|h| unhex(&h))
                .and_then(|b| Retirement::decode(&b).ok())
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Deletes the replicas and metadata of retired sectors whose grace has ended by window
    /// `now`. Returns the replica bytes freed.
    pub(crate) fn free_retired(&self, now: u64) -> Result<u64, ProofsError> {
        let grace = self.opts.retire_grace;
        let mut batch = Batch::new();
        let mut freed = 0u64;
        for r in self.in_grace()? {
            if due(r.window, grace, now) {
                batch
                    .delete(Table::Sectors, be(r.sector))
                    .delete(Table::Replicas, be(r.sector));
                freed += self.replica_len();
            }
        }
        if freed > 0 {
            self.repo.store().write(batch, Durability::Sync)?;
            if let Ok(mut s) = self.status.lock() {
                s.replica_bytes = s.replica_bytes.saturating_sub(freed);
            }
        }
        Ok(freed)
    }

    /// Applies a peer's retirement whose signature the caller checked: when it names a sector
    /// registered here with the same `comm_r`, it is logged and the sector forgotten. Returns
    /// whether it was new.
    pub(crate) fn accept_retirement(&self, r: &Retirement) -> Result<bool, ProofsError> {
        let known = self
            .registry
            .lock()
            .ok()
            .and_then(|reg| reg.get(&r.prover).and_then(|m| m.get(&r.sector)).copied());
        if known != Some(r.comm_r) {
            return Ok(false);
        }
        // forgotten first, so a compaction the append runs does not carry its record over
        self.forget(&r.prover, r.sector, r.comm_r);
        self.append(EntryKind::Retire, r.encode())?;
        Ok(true)
    }

    /// Forgets `prover`'s sector `sector` when it is registered with `comm_r`: no longer
    /// challenged, its blocks no longer counted as held by the prover. Returns its data bytes.
    pub(super) fn forget(&self, prover: &[u8], sector: u64, comm_r: Fr) -> u64 {
        if let Ok(mut reg) = self.registry.lock() {
            let Some(m) = reg.get_mut(prover) else {
                return 0;
            };
            if m.get(&sector) != Some(&comm_r) {
                return 0;
            }
            m.remove(&sector);
            if m.is_empty() {
                reg.remove(prover);
            }
        }
        if let Ok(mut c) = self.cover.lock() {
            c.remove(prover, sector);
        }
        if let Ok(mut c) = self.checks.lock() {
            c.forget(prover, sector);
        }
        let mut data = 0;
        if let Ok(mut sealed) = self.sealed.lock() {
            if let Some(m) = sealed.get_mut(prover) {
                data = m.remove(&sector).unwrap_or(0);
                if m.is_empty() {
                    sealed.remove(prover);
                }
            }
        }
        data
    }
}

impl<H: ProverHost + Clone> Prover<H> {
    /// Retires this node's sectors whose blocks have all gone, gossips the retirements (again
    /// for those still in their grace, once a window), and frees the replicas whose grace has
    /// ended. Returns the sectors retired now.
    pub async fn retire_now(&self) -> Result<usize, NodeError> {
        let Some(p) = self.0.proofs() else {
            return Ok(0);
        };
        // one pass at a time, and never beside a sealing pass (which writes the marks and
        // rows a retirement deletes)
        let _one = self.0.seal_lock().lock().await;
        let p2 = p.clone();
        let todo = offload(move || p2.retirable()).await?.map_err(proofs_err)?;
        let window = p.window_now();
        let mut retired = 0;
        for rec in todo {
            let mut r = Retirement {
                prover: p.me().to_vec(),
                sector: rec.sector,
                comm_r: rec.comm_r,
                window,
                signature: Vec::new(),
            };
            r.signature = self.0.net().sign(&r.signed_bytes());
            let (p2, r2) = (p.clone(), r.clone());
            offload(move || p2.retire_own(&r2))
                .await?
                .map_err(proofs_err)?;
            tracing::info!(
                sector = r.sector,
                window,
                "sector retired: its blocks are gone"
            );
            retired += 1;
        }
        let regossip = p
            .retire_gossiped
            .lock()
            .map(|mut w| std::mem::replace(&mut *w, window) != window)
            .unwrap_or(true);
        let p2 = p.clone();
        let kept = offload(move || p2.in_grace()).await?.map_err(proofs_err)?;
        for r in kept.iter().filter(|r| regossip || r.window == window) {
            if let Err(e) = self.0.net().publish(RETIRE_TOPIC, r.encode()).await {
                tracing::debug!(error = %e, "retirement not gossiped (gossiped again next window)");
            }
        }
        let p2 = p.clone();
        let freed = offload(move || p2.free_retired(window))
            .await?
            .map_err(proofs_err)?;
        if freed > 0 {
            tracing::info!(bytes = freed, "replicas of retired sectors freed");
        }
        Ok(retired)
    }

    /// Checks a gossiped retirement: sent by its prover, signed by it, naming a sector
    /// registered here. `Ok(true)` when it was new here.
    pub(crate) async fn accept_retirement(
        &self,
        source: PeerId,
        data: Vec<u8>,
    ) -> Result<Result<bool, prover::Refused>, NodeError> {
        let Some(p) = self.0.proofs() else {
            return Ok(Err(prover::not_now("this node does not prove storage")));
        };
        let r = match Retirement::decode(&data) {
            Ok(r) => r,
            Err(e) => return Ok(Err(prover::invalid(&e.to_string()))),
        };
        if r.prover != source.to_bytes() {
            return Ok(Err(prover::invalid("retirement gossiped by another peer")));
        }
        if !cairn_net::identity::verify_signature(&r.prover, &r.signed_bytes(), &r.signature) {
            return Ok(Err(prover::invalid("retirement signature invalid")));
        }
        let new = offload(move || p.accept_retirement(&r))
            .await?
            .map_err(proofs_err)?;
        Ok(Ok(new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(cids: &[&str]) -> Vec<(String, u64, u64)> {
        cids.iter().map(|c| (c.to_string(), 0, 10)).collect()
    }

    #[test]
    fn a_sector_is_retired_only_when_every_block_it_lists_is_gone() {
        // (listed blocks, blocks still held, retire)
        for (listed, held, retire) in [
            (vec!["a", "b"], vec![], true),
            (vec!["a", "b"], vec!["a"], false),
            (vec!["a", "b"], vec!["b"], false),
            (vec!["a"], vec!["a", "z"], false),
            (vec!["a"], vec!["z"], true),
            // a sector listing nothing is never retired this way
            (vec![], vec![], false),
        ] {
            let got = all_gone(&pieces(&listed), |c| held.contains(&c));
            assert_eq!(got, retire, "{listed:?} with {held:?}");
        }
    }

    #[test]
    fn replicas_are_deleted_after_their_grace() {
        // (retired in window, grace windows, now, due)
        for (retired, grace, now, want) in [
            (10, 2, 10, false),
            (10, 2, 11, false),
            (10, 2, 12, true),
            (10, 2, 100, true),
            (10, 0, 10, true),
            // a clock behind the retirement's window keeps the replica
            (10, 0, 9, false),
            (u64::MAX, 2, u64::MAX, false),
        ] {
            assert_eq!(due(retired, grace, now), want, "{retired} {grace} {now}");
        }
    }

    #[test]
    fn replica_sizes_are_the_replica_and_its_kept_tree() {
        let p = |sector_size| NetParams {
            sector_size,
            layers: 2,
            challenges: 10,
            batch: 2,
            seal_challenges: 2,
        };
        // 64 MiB: 2^21 leaves of 32 bytes, and levels 10 to 21 of the tree (2^11 + ... + 1)
        assert_eq!(replica_len(&p(64 << 20)), (64 << 20) + 32 * ((1 << 12) - 1));
        // 16 KiB: 512 leaves, a tree of depth 9 kept from its root down to level 9
        assert_eq!(replica_len(&p(16 << 10)), (16 << 10) + 32);
        // 31 data bytes per 32-byte leaf
        assert_eq!(replica_cost(0), 0);
        assert_eq!(replica_cost(1), 32);
        assert_eq!(replica_cost(31), 32);
        assert_eq!(replica_cost(32), 64);
        assert_eq!(replica_cost(31 << 20), 32 << 20);
    }
}
