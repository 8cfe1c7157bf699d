//! The replica-only storage mode: a node keeps each sealed block only inside its sector's
//! replica, and unseals the sector when the block is read.
//!
//! [`ReplicaStore`] wraps the repo's store. Sealing (in this mode) writes, with each sector,
//! one [`Table::InReplica`] row per piece (block, where the piece starts in it -> sector, where
//! it starts in the sector's data, length) and deletes the plain copies of the blocks the
//! sector completes, in the same batch. The wrapper then answers for those blocks as if they
//! were stored: `get_raw` reassembles a block from its pieces, each unsealed from its replica
//! (labelling the whole sector again: `cairn bench proofs` prints the unseal rate), with the
//! last [`UNSEALED_KEPT`] sectors unsealed kept in memory, since blocks are packed into sectors
//! in key order and read back mostly in it; `has`, `size` and `for_each_cid` count them (scrub
//! skips them: [`BlockStore::held_in_replica`]); and
//! deleting such a block deletes its rows, so a sector whose blocks are all gone is retired as
//! in the default mode ([`super::retire`]).
//!
//! A batch that writes `InReplica` rows for a block *and* deletes the block moves it into the
//! replica: only its plain copy goes. Any other delete of the block removes it entirely.
//!
//! Every block read back is checked against its CID by the repo (`Repo::block`), so a replica
//! changed on disk gives a corrupt block, quarantined and repaired like any other.

use super::SectorMeta;
use cairn_core::Cid;
use cairn_proofs::audit::{from_hex, NetParams, SectorRecord};
use cairn_repo::store::{Batch, BlockStore, Durability, Entries, Op, StoreError, Table};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Sectors kept unsealed in memory (a 64 MiB sector's data is about 62 MiB).
pub(crate) const UNSEALED_KEPT: usize = 2;
/// Most pieces one block may have in replicas (a 1 MiB block over 16 KiB sectors has 65).
const MAX_PIECES_PER_BLOCK: usize = 4096;
/// Rows read per page when looking up one block's.
const ROWS_PAGE: usize = 8;

/// Where one piece of a block sits in a sealed sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// Where the piece starts in the block.
    pub(crate) offset: u64,
    /// The sector.
    pub(crate) sector: u64,
    /// Where the piece starts in the sector's data.
    pub(crate) start: u64,
    /// Its length.
    pub(crate) len: u64,
}

impl Placed {
    /// The row's key: the block's CID bytes, then where the piece starts in it.
    pub(crate) fn key(cid: &Cid, offset: u64) -> Vec<u8> {
        let mut k = cid.to_bytes();
        k.extend_from_slice(&offset.to_be_bytes());
        k
    }

    /// The row's value.
    pub(crate) fn value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        for x in [self.sector, self.start, self.len] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }

    /// Reads a row of block `cid` (`None` when the key is another block's or a field is short).
    fn read(cid: &[u8], key: &[u8], value: &[u8]) -> Option<Placed> {
        let rest = key.strip_prefix(cid)?;
        let offset = u64::from_be_bytes(rest.try_into().ok()?);
        let f = |i: usize| Some(u64::from_be_bytes(value.get(i..i + 8)?.try_into().ok()?));
        if value.len() != 24 {
            return None;
        }
        Some(Placed {
            offset,
            sector: f(0)?,
            start: f(8)?,
            len: f(16)?,
        })
    }
}

/// The pieces that make up a block, in order: from offset 0, each starting where the one before
/// ends, until no row starts there. `None` when no row starts at 0 (a row left from an older
/// packing is skipped when the chain does not pass through it).
pub(crate) fn chain(rows: &[Placed]) -> Option<Vec<Placed>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    loop {
        match rows.iter().find(|r| r.offset == pos && r.len > 0) {
            Some(r) => {
                out.push(*r);
                pos = pos.checked_add(r.len)?;
            }
            None if out.is_empty() => return None,
            None => return Some(out),
        }
    }
}

/// A store whose sealed blocks may live only in their replicas (module docs).
pub(crate) struct ReplicaStore {
    inner: Box<dyn BlockStore>,
    params: NetParams,
    unsealed: Mutex<VecDeque<(u64, Arc<Vec<u8>>)>>,
    /// Held while a sector is unsealed.
    unsealing: Mutex<()>,
}

impl ReplicaStore {
    /// Wraps `inner`, whose sectors are sealed with `params`.
    pub(crate) fn new(inner: Box<dyn BlockStore>, params: NetParams) -> Self {
        ReplicaStore {
            inner,
            params,
            unsealed: Mutex::new(VecDeque::new()),
            unsealing: Mutex::new(()),
        }
    }

    /// Block `cid`'s rows, read a page at a time from its first key (most blocks have one or
    /// two pieces), at most [`MAX_PIECES_PER_BLOCK`].
    fn rows(&self, cid: &Cid) -> Result<Vec<Placed>, StoreError> {
        let prefix = cid.to_bytes();
        let mut out = Vec::new();
        let mut from = prefix.clone();
        loop {
            let page = self
                .inner
                .table_scan_from(Table::InReplica, &from, ROWS_PAGE)?;
            let full = page.len() == ROWS_PAGE;
            for (k, v) in &page {
                if !k.starts_with(&prefix) || out.len() == MAX_PIECES_PER_BLOCK {
                    return Ok(out);
                }
                out.extend(Placed::read(&prefix, k, v));
            }
            match page.last() {
                Some((k, _)) if full => {
                    // the next page starts just after the last key read
                    from = k.clone();
                    from.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// Sector `id`'s data, unsealed from its replica (or kept from a recent read).
    fn sector_data(&self, id: u64) -> Result<Arc<Vec<u8>>, StoreError> {
        let kept = || {
            self.unsealed
                .lock()
                .ok()
                .and_then(|u| u.iter().find(|(s, _)| *s == id).map(|(_, d)| d.clone()))
        };
        if let Some(d) = kept() {
            return Ok(d);
        }
        // one unseal at a time (each relabels a whole sector and holds its data): reads of
        // many sectors at once, a peer's included, queue here instead of taking every core
        // and a sector's worth of memory each; a read of a sector just unsealed finds it kept
        let _one = self
            .unsealing
            .lock()
            .map_err(|_| StoreError::Backend("unsealing lock poisoned".into()))?;
        if let Some(d) = kept() {
            return Ok(d);
        }
        let bad = |why: &str| StoreError::Backend(format!("sector {id}: {why}"));
        let key = id.to_be_bytes();
        let meta: SectorMeta = self
            .inner
            .table_get(Table::Sectors, &key)?
            .and_then(|m| serde_json::from_slice(&m).ok())
            .ok_or_else(|| bad("no readable metadata"))?;
        let record = from_hex(&meta.record)
            .and_then(|b| SectorRecord::decode(&b).ok())
            .ok_or_else(|| bad("no readable record"))?;
        let nodes = self.params.sector().nodes;
        let replica = self
            .inner
            .table_get(Table::Replicas, &key)?
            .ok_or_else(|| bad("no replica"))?;
        let leaves: Vec<ark_bn254::Fr> = replica
            .get(..nodes * 32)
            .ok_or_else(|| bad("replica cut short"))?
            .chunks_exact(32)
            .map(ark_ff::PrimeField::from_le_bytes_mod_order)
            .collect();
        let data = cairn_proofs::sdr::unseal(
            &self.params.sector(),
            &leaves,
            record.replica_id(),
            record.data_len as usize,
        )
        .map_err(|e| bad(&e.to_string()))?;
        let data = Arc::new(data);
        if let Ok(mut u) = self.unsealed.lock() {
            if u.len() == UNSEALED_KEPT {
                u.pop_front();
            }
            u.push_back((id, data.clone()));
        }
        Ok(data)
    }

    /// Block `cid` reassembled from its replicas, unverified (`None`: it has no rows).
    fn read_replicas(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.rows(cid)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let pieces = chain(&rows).ok_or_else(|| {
            StoreError::Backend(format!("{cid}: its pieces in replicas do not chain"))
        })?;
        let mut out = Vec::new();
        for p in pieces {
            let data = self.sector_data(p.sector)?;
            let piece = usize::try_from(p.start)
                .ok()
                .zip(usize::try_from(p.len).ok())
                .and_then(|(s, n)| data.get(s..s.checked_add(n)?))
                .ok_or_else(|| {
                    StoreError::Backend(format!("{cid}: a piece lies outside sector {}", p.sector))
                })?;
            out.extend_from_slice(piece);
        }
        Ok(Some(out))
    }

    /// Every block with rows, in key order.
    fn replica_cids(&self) -> Result<Vec<Cid>, StoreError> {
        let mut out: Vec<Cid> = Vec::new();
        for (k, _) in self.inner.table_scan(Table::InReplica)? {
            let Some(cid) = k
                .len()
                .checked_sub(8)
                .and_then(|n| Cid::try_from(&k[..n]).ok())
            else {
                continue;
            };
            if out.last() != Some(&cid) {
                out.push(cid);
            }
        }
        Ok(out)
    }

    /// Calls `f` with the merge of `plain` (in key order) and the replica-held blocks.
    fn merged(&self, plain: Vec<Cid>, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError> {
        let mut all: Vec<(Vec<u8>, Cid)> = plain
            .into_iter()
            .chain(self.replica_cids()?)
            .map(|c| (c.to_bytes(), c))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|a, b| a.0 == b.0);
        for (_, c) in all {
            if !f(c) {
                break;
            }
        }
        Ok(())
    }
}

impl BlockStore for ReplicaStore {
    fn write(&self, mut batch: Batch, durability: Durability) -> Result<(), StoreError> {
        // a block with new rows in this batch is moving into a replica: its delete drops only
        // the plain copy; any other delete drops its rows too
        let moving: HashSet<Vec<u8>> = batch
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Put(Table::InReplica, k, _) => {
                    k.get(..k.len().checked_sub(8)?).map(<[u8]>::to_vec)
                }
                _ => None,
            })
            .collect();
        let mut extra = Vec::new();
        for op in &batch.ops {
            if let Op::DeleteBlock(cid) = op {
                if moving.contains(&cid.to_bytes()) {
                    continue;
                }
                for r in self.rows(cid)? {
                    extra.push(Op::Delete(Table::InReplica, Placed::key(cid, r.offset)));
                }
            }
        }
        batch.ops.extend(extra);
        self.inner.write(batch, durability)
    }

    fn persist(&self) -> Result<(), StoreError> {
        self.inner.persist()
    }

    fn get_raw(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        match self.inner.get_raw(cid)? {
            Some(b) => Ok(Some(b)),
            None => self.read_replicas(cid),
        }
    }

    fn has(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.inner.has(cid)? || !self.rows(cid)?.is_empty())
    }

    fn held_in_replica(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(!self.inner.has(cid)? && !self.rows(cid)?.is_empty())
    }

    fn size(&self, cid: &Cid) -> Result<Option<u64>, StoreError> {
        if let Some(n) = self.inner.size(cid)? {
            return Ok(Some(n));
        }
        Ok(chain(&self.rows(cid)?).map(|ps| ps.iter().map(|p| p.len).sum()))
    }

    fn for_each_cid(&self, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError> {
        let mut plain = Vec::new();
        self.inner.for_each_cid(&mut |c| {
            plain.push(c);
            true
        })?;
        self.merged(plain, f)
    }

    fn for_each_stored_cid(&self, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError> {
        let mut plain = Vec::new();
        self.inner.for_each_stored_cid(&mut |c| {
            plain.push(c);
            true
        })?;
        self.merged(plain, f)
    }

    fn table_get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.table_get(t, key)
    }

    fn table_scan(&self, t: Table) -> Result<Entries, StoreError> {
        self.inner.table_scan(t)
    }

    fn table_scan_from(&self, t: Table, from: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.inner.table_scan_from(t, from, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(offset: u64, sector: u64, len: u64) -> Placed {
        Placed {
            offset,
            sector,
            start: 0,
            len,
        }
    }

    /// A memory store holding blocks `a`, `b` (sealed into sector 5, moved into its replica)
    /// and `c` (plain only), wrapped.
    fn sealed_store() -> (ReplicaStore, [cairn_core::Block; 3]) {
        use cairn_core::block::{Block, HashAlg, RAW};
        use cairn_proofs::audit::{self, bound_ticket, fr_bytes, to_hex, Piece, PROOF_LEN};
        let params = NetParams {
            sector_size: 16 << 10,
            layers: 2,
            challenges: 10,
            batch: 2,
            seal_challenges: 2,
        };
        let gen = |seed, n| cairn_core::testgen::Gen::bytes(seed, n);
        let blocks = [
            Block::new(HashAlg::Blake3, RAW, gen(1, 1000)),
            Block::new(HashAlg::Blake3, RAW, gen(2, 7000)),
            Block::new(HashAlg::Blake3, RAW, gen(3, 500)),
        ];
        let store = ReplicaStore::new(Box::new(cairn_repo::store::MemoryStore::new()), params);
        let mut b = Batch::new();
        for x in &blocks {
            b.put_block(x.clone());
        }
        store.write(b, Durability::Sync).unwrap();
        let (a, bb) = (&blocks[0], &blocks[1]);
        let pieces: Vec<Piece> = [a, bb]
            .iter()
            .map(|x| Piece {
                cid: x.cid.to_bytes(),
                offset: 0,
                len: x.data.len() as u64,
            })
            .collect();
        let data = [&a.data[..], &bb.data[..]].concat();
        let (prover, ticket, id) = (b"prover".to_vec(), [3u8; 32], 5u64);
        let (sealed, _) = audit::label_sector(
            &params,
            &prover,
            (id, bound_ticket(&ticket, &pieces), &data),
        )
        .unwrap();
        let record = SectorRecord {
            prover,
            sector: id,
            sector_size: params.sector_size as u64,
            layers: params.layers as u8,
            data_len: data.len() as u64,
            ticket,
            pieces,
            comm_d: sealed.comm_d,
            comm_r: sealed.comm_r,
            seal_proof: [0; PROOF_LEN],
            revealed: Vec::new(),
        };
        let meta = SectorMeta {
            record: to_hex(&record.encode()),
            comm_c: to_hex(&fr_bytes(&sealed.comm_c)),
            comm_r_last: to_hex(&fr_bytes(&sealed.comm_r_last)),
            pieces: Vec::new(),
            retired: None,
        };
        let replica: Vec<u8> = sealed.replica.iter().flat_map(fr_bytes).collect();
        let mut b = Batch::new();
        b.put(
            Table::Sectors,
            id.to_be_bytes().to_vec(),
            serde_json::to_vec(&meta).unwrap(),
        )
        .put(Table::Replicas, id.to_be_bytes().to_vec(), replica);
        let mut start = 0;
        for x in [a, bb] {
            let len = x.data.len() as u64;
            let at = Placed {
                offset: 0,
                sector: id,
                start,
                len,
            };
            b.put(Table::InReplica, Placed::key(&x.cid, 0), at.value())
                .delete_block(x.cid);
            start += len;
        }
        store.write(b, Durability::Sync).unwrap();
        (store, blocks)
    }

    #[test]
    fn sealed_blocks_live_in_the_replica_and_are_unsealed_when_read() {
        let (store, [a, b, c]) = sealed_store();
        // moved: the plain copies went in the batch that wrote their rows
        assert!(!store.inner.has(&a.cid).unwrap() && !store.inner.has(&b.cid).unwrap());
        assert!(store.inner.has(&c.cid).unwrap());
        assert!(store.held_in_replica(&a.cid).unwrap() && store.held_in_replica(&b.cid).unwrap());
        assert!(!store.held_in_replica(&c.cid).unwrap());
        for x in [&a, &b, &c] {
            assert!(store.has(&x.cid).unwrap());
            assert_eq!(store.get(&x.cid).unwrap().as_deref(), Some(&x.data[..]));
            assert_eq!(store.size(&x.cid).unwrap(), Some(x.data.len() as u64));
        }
        let mut listed = Vec::new();
        store
            .for_each_cid(&mut |x| {
                listed.push(x);
                true
            })
            .unwrap();
        let mut want = vec![a.cid, b.cid, c.cid];
        want.sort_by_key(|x| x.to_bytes());
        assert_eq!(listed, want);
        assert!(store.unsealed.lock().unwrap().len() <= UNSEALED_KEPT);

        // deleting a replica-held block deletes its rows: it is gone, the other stays
        let mut batch = Batch::new();
        batch.delete_block(a.cid);
        store.write(batch, Durability::Sync).unwrap();
        assert!(!store.has(&a.cid).unwrap());
        assert_eq!(store.get(&a.cid).unwrap(), None);
        assert_eq!(store.get(&b.cid).unwrap().as_deref(), Some(&b.data[..]));

        // a replica changed on disk reads back as a corrupt block, never as wrong bytes
        let key = 5u64.to_be_bytes();
        let mut replica = store
            .inner
            .table_get(Table::Replicas, &key)
            .unwrap()
            .unwrap();
        // leaf 40 holds data bytes 1240 to 1270: block b's
        replica[40 * 32 + 3] ^= 1;
        let mut batch = Batch::new();
        batch.put(Table::Replicas, key.to_vec(), replica);
        store.write(batch, Durability::Sync).unwrap();
        store.unsealed.lock().unwrap().clear();
        assert!(matches!(store.get(&b.cid), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn pieces_chain_from_the_block_start() {
        // (rows, chained sectors or None)
        for (rows, want) in [
            (vec![p(0, 1, 10)], Some(vec![1])),
            (vec![p(10, 2, 5), p(0, 1, 10)], Some(vec![1, 2])),
            // a row left from an older packing that the chain does not pass through
            (vec![p(0, 1, 10), p(10, 2, 5), p(4, 9, 3)], Some(vec![1, 2])),
            (vec![p(3, 1, 10)], None),
            (vec![], None),
            // an empty piece is never followed (it would loop)
            (vec![p(0, 1, 0)], None),
            // an end past u64 is no chain
            (vec![p(0, 1, u64::MAX), p(u64::MAX, 2, 2)], None),
        ] {
            let got = chain(&rows).map(|c| c.iter().map(|x| x.sector).collect::<Vec<_>>());
            assert_eq!(got, want, "{rows:?}");
        }
    }

    #[test]
    fn rows_round_trip_and_other_blocks_rows_are_not_read() {
        let cid =
            Cid::try_from("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").unwrap();
        let x = Placed {
            offset: 7,
            sector: 9,
            start: 31,
            len: 100,
        };
        let k = Placed::key(&cid, 7);
        assert_eq!(Placed::read(&cid.to_bytes(), &k, &x.value()), Some(x));
        assert_eq!(Placed::read(&[1, 2], &k, &x.value()), None);
        assert_eq!(Placed::read(&cid.to_bytes(), &k, &x.value()[..23]), None);
        let mut long = k.clone();
        long.push(0);
        assert_eq!(Placed::read(&cid.to_bytes(), &long, &x.value()), None);
    }
}
