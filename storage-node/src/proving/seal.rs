//! Sealing: pending blocks packed into sectors, labelled (SDR-lite), committed, proved (the
//! seal proof) and kept beside the plain blocks; sectors loaded back for window proofs.

use super::*;

impl Ledger {
    /// Seals every stored block not yet in a sector, on the low-priority sealing thread.
    /// Returns the new sector records.
    pub(crate) fn seal_pending(&self) -> Result<Vec<SectorRecord>, ProofsError> {
        self.seal_pool.install(|| self.seal_pending_here())
    }

    pub(super) fn seal_pending_here(&self) -> Result<Vec<SectorRecord>, ProofsError> {
        let store = self.repo.store();
        let mut pending = Vec::new();
        store.for_each_cid(&mut |c| {
            pending.push(c);
            true
        })?;
        let mut todo = Vec::new();
        for c in pending {
            if store.table_get(Table::Sealed, &c.to_bytes())?.is_none() {
                todo.push(c);
            }
        }
        let p = self.opts.params.sector();
        let cap = p.capacity();
        // full sectors are sealed in batches of up to 8 (one after the other: each keeps its
        // labels and trees, about (L + 7) x 32 bytes per leaf, until its proof), within a
        // memory budget for the pending data
        let batch_max = (SEAL_BATCH_BYTES / (p.nodes * 32).max(1)).clamp(1, 8);
        let mut out = Vec::new();
        let mut batch: Vec<Pending> = Vec::new();
        let mut cur = Pending::default();
        for cid in todo {
            let Some(bytes) = store.get_raw(&cid)? else {
                continue;
            };
            if bytes.is_empty() {
                cur.done.push(cid);
            }
            let mut off = 0usize;
            while off < bytes.len() {
                if cur.pieces.len() == audit::MAX_PIECES {
                    // a record lists at most so many pieces: the rest goes to the next sector
                    batch.push(std::mem::take(&mut cur));
                    if batch.len() == batch_max {
                        out.extend(self.seal_batch(&batch)?);
                        batch.clear();
                    }
                }
                let n = (cap - cur.data.len()).min(bytes.len() - off);
                cur.data.extend_from_slice(&bytes[off..off + n]);
                cur.pieces.push((cid, off as u64, n as u64));
                off += n;
                if off == bytes.len() {
                    cur.done.push(cid);
                }
                if cur.data.len() == cap {
                    batch.push(std::mem::take(&mut cur));
                    if batch.len() == batch_max {
                        out.extend(self.seal_batch(&batch)?);
                        batch.clear();
                    }
                }
            }
        }
        if cur.data.is_empty() {
            // nothing waits: a wait started for data since sealed in a full sector ends too
            if let Ok(mut since) = self.partial_since.lock() {
                *since = None;
            }
        } else if self.partial_ready() {
            batch.push(cur);
        }
        if !batch.is_empty() {
            out.extend(self.seal_batch(&batch)?);
        }
        Ok(out)
    }

    /// Whether pending data that does not fill a sector has waited long enough to be sealed
    /// in a partly empty one: the wait starts the first time it is seen, and ends when it is
    /// sealed (sealing a 64 MiB sector costs the same CPU however little data it holds).
    fn partial_ready(&self) -> bool {
        let now = std::time::Instant::now();
        let Ok(mut since) = self.partial_since.lock() else {
            return true;
        };
        let start = *since.get_or_insert(now);
        if now.duration_since(start) >= self.opts.seal_wait {
            *since = None;
            return true;
        }
        false
    }

    /// Seals each sector of `batch` in turn (labels, trees, seal proof), stores it and logs
    /// its record as soon as its seal is proved.
    pub(super) fn seal_batch(&self, batch: &[Pending]) -> Result<Vec<SectorRecord>, ProofsError> {
        let mut rng = rand::rngs::OsRng;
        let mut out = Vec::with_capacity(batch.len());
        for b in batch {
            let sector = rng.next_u64() >> 1;
            let mut ticket = [0u8; 32];
            rng.fill_bytes(&mut ticket);
            // the record lists the blocks in the sector, and the seal is made with a ticket
            // bound to that list, so the seal proof commits to it
            let pieces: Vec<Piece> = b
                .pieces
                .iter()
                .map(|(c, o, n)| Piece {
                    cid: c.to_bytes(),
                    offset: *o,
                    len: *n,
                })
                .collect();
            let bound = (
                sector,
                audit::bound_ticket(&ticket, &pieces),
                b.data.as_slice(),
            );
            let t = std::time::Instant::now();
            let (sealed, work) = audit::label_sector(&self.opts.params, &self.me, bound)?;
            let label_secs = t.elapsed().as_secs_f64();
            // what window proofs need of the replica's tree, kept beside the replica
            let tops = work.replica.top(KEPT_FROM);
            let t = std::time::Instant::now();
            let record = audit::prove_seal(
                &self.opts.params,
                &self.seal_keys,
                &self.me,
                &(sector, ticket, b.data.as_slice()),
                pieces,
                &sealed,
                work,
            )?;
            self.keep_sealed(b, &sealed, &tops, &record)?;
            tracing::info!(
                sector = record.sector,
                bytes = b.data.len(),
                label_secs,
                prove_secs = t.elapsed().as_secs_f64(),
                "sector sealed"
            );
            out.push(record);
        }
        Ok(out)
    }

    /// Stores a sealed sector (replica, metadata, which blocks it completes) and logs it.
    pub(super) fn keep_sealed(
        &self,
        b: &Pending,
        sealed: &Sealed,
        tops: &TopLevels,
        record: &SectorRecord,
    ) -> Result<(), ProofsError> {
        let sector = record.sector;
        let replica = StoredReplica::value(&sealed.replica, tops);
        let replica_len = replica.len() as u64;
        let meta = SectorMeta {
            record: hex(&record.encode()),
            comm_c: hex(&fr_bytes(&sealed.comm_c)),
            comm_r_last: hex(&fr_bytes(&sealed.comm_r_last)),
            pieces: b
                .pieces
                .iter()
                .map(|(c, o, n)| (c.to_string(), *o, *n))
                .collect(),
            retired: None,
        };
        let mut batch = Batch::new();
        batch
            .put(
                Table::Sectors,
                be(sector),
                serde_json::to_vec(&meta).unwrap_or_default(),
            )
            .put(Table::Replicas, be(sector), replica);
        for c in &b.done {
            batch.put(Table::Sealed, c.to_bytes(), be(sector));
        }
        if self.opts.replica_only {
            // each piece is found in the replica from now on, and the blocks this sector
            // completes keep no plain copy ([`super::ReplicaStore`])
            let mut start = 0u64;
            for (c, off, n) in &b.pieces {
                let at = replica_store::Placed {
                    offset: *off,
                    sector,
                    start,
                    len: *n,
                };
                batch.put(
                    Table::InReplica,
                    replica_store::Placed::key(c, *off),
                    at.value(),
                );
                start += n;
            }
            // (an empty block has no piece and stays as it is: it takes no space)
            for c in b
                .done
                .iter()
                .filter(|c| b.pieces.iter().any(|p| p.0 == **c))
            {
                batch.delete_block(*c);
            }
        }
        self.repo.store().write(batch, Durability::Sync)?;
        self.remember(record);
        self.append(EntryKind::Sector, record.encode())?;
        if let Ok(mut s) = self.status.lock() {
            s.sectors += 1;
            s.sealed_bytes += b.data.len() as u64;
            s.replica_bytes += replica_len;
        }
        Ok(())
    }

    /// Opens `leaves` of sealed sector `id` (its data's leaves, with paths to `comm_d`): the
    /// data is read back from the plain blocks its pieces name, or, when they are gone or
    /// changed, unsealed from the replica.
    pub(super) fn open_sector(
        &self,
        id: u64,
        record: &SectorRecord,
        stored: &StoredReplica,
        leaves: &[u64],
    ) -> Result<Vec<audit::Opening>, ProofsError> {
        let store = self.repo.store();
        let meta: Option<SectorMeta> = store
            .table_get(Table::Sectors, &be(id))?
            .and_then(|m| serde_json::from_slice(&m).ok());
        let mut data = Vec::with_capacity(record.data_len as usize);
        for (c, off, n) in meta.map(|m| m.pieces).unwrap_or_default() {
            let Some(bytes) = Cid::try_from(c.as_str())
                .ok()
                .and_then(|c| store.get_raw(&c).ok().flatten())
            else {
                break;
            };
            let (off, n) = (off as usize, n as usize);
            match bytes.get(off..off.saturating_add(n)) {
                Some(b) => data.extend_from_slice(b),
                None => break,
            }
        }
        if data.len() as u64 == record.data_len {
            let (root, out) = audit::open_leaves(&self.opts.params, &data, leaves)?;
            if root == record.comm_d {
                return Ok(out);
            }
        }
        tracing::info!(
            sector = id,
            "plain blocks of a sealed sector missing; unsealing it to open leaves"
        );
        let replica: Vec<Fr> = stored
            .replica
            .chunks_exact(32)
            .map(Fr::from_le_bytes_mod_order)
            .collect();
        let data = cairn_proofs::sdr::unseal(
            &self.opts.params.sector(),
            &replica,
            record.replica_id(),
            record.data_len as usize,
        )
        .map_err(|e| AuditError::Prove(e.to_string()))?;
        let (root, out) = audit::open_leaves(&self.opts.params, &data, leaves)?;
        if root != record.comm_d {
            return Err(ProofsError::Meta(id));
        }
        Ok(out)
    }

    /// Sector `id` as stored: its record, and its replica with the top of the replica's tree.
    /// The replica value is the replica (32 bytes per leaf) then the tree's levels from
    /// [`KEPT_FROM`] up (`docs/formats.md`).
    pub(super) fn load_sector(
        &self,
        id: u64,
    ) -> Result<Option<(SectorRecord, StoredReplica)>, ProofsError> {
        let store = self.repo.store();
        let Some(m) = store.table_get(Table::Sectors, &be(id))? else {
            return Ok(None);
        };
        let Some(rep) = store.table_get(Table::Replicas, &be(id))? else {
            return Ok(None);
        };
        let meta: SectorMeta = serde_json::from_slice(&m).map_err(|_| ProofsError::Meta(id))?;
        let record = unhex(&meta.record)
            .and_then(|b| SectorRecord::decode(&b).ok())
            .ok_or(ProofsError::Meta(id))?;
        let comms = (
            fr_of_hex(&meta.comm_c).ok_or(ProofsError::Meta(id))?,
            fr_of_hex(&meta.comm_r_last).ok_or(ProofsError::Meta(id))?,
            record.comm_r,
        );
        let stored = StoredReplica::from_value(rep, self.opts.params.sector().nodes, comms)
            .ok_or(ProofsError::Meta(id))?;
        Ok(Some((record, stored)))
    }
}
