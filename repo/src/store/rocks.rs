//! The RocksDB backend.
//!
//! Column families (see `docs/formats.md` for the byte layout):
//! - `blocks`: CID bytes -> block bytes, with BlobDB (key-value separation) for values of 4 KiB
//!   and more, so large blocks are written once to blob files and compactions only move keys;
//! - `block_index`: CID bytes -> block length (u64 LE), written in the same batch, so listing and
//!   sizing blocks never reads block bytes;
//! - `pins`, `datasets`, `quarantine`, ...: the [`Table`]s.
//!
//! # Crash safety
//!
//! [`Durability::Deferred`] writes skip the WAL, so after a crash only what a flush committed
//! survives of them. Without more, each column family flushes on its own (`blocks` whenever its
//! 16 MiB memtable fills, `block_index` far more rarely), and a crash between two flushes leaves
//! block bytes with no index entry (space `gc` never frees) or index entries with no bytes (`has`
//! says yes, misleading resumed ingests and repair). So the database runs with `atomic_flush`:
//! every flush, automatic or by [`BlockStore::persist`], cuts the memtables of all column
//! families at one sequence number and commits their files in one MANIFEST record, which a
//! crash either applies whole or not at all. A write batch is never split by the cut. What a
//! crash keeps of a batch is therefore the same in every column family:
//!
//! - a [`Durability::Sync`] batch is in the synced WAL and is replayed whole (RocksDB replays WAL
//!   batches after the last flush independently of the Deferred batches around them);
//! - a Deferred batch survives iff it came before the last committed flush.
//!
//! `blocks` and `block_index` only ever change together, for the same key, in the same batch
//! ([`Op::PutBlock`], [`Op::DeleteBlock`]), so for every key the last surviving batch that touched
//! it is the same in both and they agree; so do `cache` and `cache_index`, which the fast tier
//! likewise writes and deletes together. Cross-table facts (a pin naming a manifest whose stripes
//! are stored) hold because writers [`persist`](BlockStore::persist) Deferred data before the
//! Sync batch that refers to it. Blob files are written and synced during a flush before the
//! SST that points into them, and are added in the same MANIFEST record, so a flushed `blocks`
//! key always finds its bytes; files of a flush cut short are unreferenced and deleted at open.

use super::packs::{self, Loc, Packs};
use super::{Batch, BlockStore, Durability, Entries, Op, StoreError, Table};
use cid::Cid;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, FlushOptions, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};
use std::path::{Path, PathBuf};

const BLOCKS: &str = "blocks";
const INDEX: &str = "block_index";
/// The store's own bookkeeping of its pack files (see [`PackState`]).
const PACKS: &str = "packs";
/// The pack files' directory, inside the database directory.
const PACK_DIR: &str = "packs";
/// Values at least this large go to blob files (below it they stay inline in SSTs).
const MIN_BLOB_SIZE: u64 = 4096;
/// Memtable size for the blocks column family. With at most two memtables this bounds the
/// store's ingest buffering to 32 MiB, inside the 128 MiB import RSS budget.
const BLOCKS_WRITE_BUFFER: usize = 16 << 20;

/// A [`BlockStore`] on RocksDB, with the bytes of large blocks in pack files.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    packs: Packs,
    state: std::sync::Mutex<PackState>,
}

/// A record to punch: (pack, record offset, span).
type Punch = (u32, u64, u64);

/// What the store tracks of its pack files between writes.
///
/// Two kinds of keys in the `packs` column family make pack space safe across crashes:
/// - `w` ++ pack (u32 BE) -> u64 LE, the pack's *watermark*: every record below it is named by
///   `block_index` or journaled for punching. Records above it may be orphans of a crash (bytes
///   written, index entry lost with its Deferred batch); [`RocksStore::open`] scans them.
/// - `p` ++ pack (u32 BE) ++ record offset (u64 BE) -> span (u64 LE), the *punch journal*: a
///   record whose block was deleted or rewritten, written in the same batch as the index
///   change, so the hole is punched exactly when that change is durable (replayed at open).
#[derive(Default)]
struct PackState {
    /// Records written whose index entries are not written yet: (pack, offset).
    in_flight: std::collections::BTreeSet<(u32, u64)>,
    /// Records journaled by Deferred batches, waiting for a flush before they are punched:
    /// the block's key, then (pack, record, span).
    to_punch: Vec<(Vec<u8>, Punch)>,
}

fn watermark_key(pack: u32) -> Vec<u8> {
    let mut k = vec![b'w'];
    k.extend_from_slice(&pack.to_be_bytes());
    k
}

fn punch_key(pack: u32, record: u64) -> Vec<u8> {
    let mut k = vec![b'p'];
    k.extend_from_slice(&pack.to_be_bytes());
    k.extend_from_slice(&record.to_be_bytes());
    k
}

/// A `block_index` value: the length (u64 LE), then for a packed block the pack (u32 LE) and
/// record offset (u64 LE).
fn index_value(len: u64, packed: Option<&Loc>) -> Vec<u8> {
    let mut v = len.to_le_bytes().to_vec();
    if let Some(l) = packed {
        v.extend_from_slice(&l.pack.to_le_bytes());
        v.extend_from_slice(&l.record.to_le_bytes());
    }
    v
}

/// Decodes a `block_index` value for the block whose key (CID bytes) is `key`.
fn parse_index(key: &[u8], v: &[u8]) -> Result<(u64, Option<Loc>), StoreError> {
    let bad = || StoreError::BadKey("block_index");
    let len = u64::from_le_bytes(v.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(bad)?);
    match v.len() {
        8 => Ok((len, None)),
        20 => {
            let pack = u32::from_le_bytes(v[8..12].try_into().map_err(|_| bad())?);
            let record = u64::from_le_bytes(v[12..20].try_into().map_err(|_| bad())?);
            let data = record.checked_add(10 + key.len() as u64).ok_or_else(bad)?;
            data.checked_add(len).ok_or_else(bad)?;
            Ok((
                len,
                Some(Loc {
                    pack,
                    record,
                    data,
                    len,
                }),
            ))
        }
        _ => Err(bad()),
    }
}

impl RocksStore {
    /// Opens (creating if needed) a store in `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        opts.set_max_total_wal_size(64 << 20);
        // Flushes write blob files with O_DIRECT: block bytes go to disk without a second copy
        // through the page cache (measured with `cairn bench ingest`).
        opts.set_use_direct_io_for_flush_and_compaction(true);
        opts.set_bytes_per_sync(1 << 20);
        // Deferred writes skip the WAL: flush all column families as one, so a crash never
        // separates a block from its index entry (see "Crash safety" above).
        opts.set_atomic_flush(true);

        let mut blocks = Options::default();
        blocks.set_enable_blob_files(true);
        blocks.set_min_blob_size(MIN_BLOB_SIZE);
        blocks.set_blob_file_size(256 << 20);
        // Blocks are write-once; blob GC would rewrite live blobs during compactions. `gc`
        // compacts explicitly instead.
        blocks.set_enable_blob_gc(false);
        blocks.set_write_buffer_size(BLOCKS_WRITE_BUFFER);
        blocks.set_max_write_buffer_number(2);
        // Block bytes are hashes' preimages of compressed media: compressing them wastes CPU.
        blocks.set_compression_type(rocksdb::DBCompressionType::None);
        blocks.set_blob_compression_type(rocksdb::DBCompressionType::None);

        let mut small = Options::default();
        small.set_write_buffer_size(8 << 20);

        let mut cfs = vec![
            ColumnFamilyDescriptor::new(BLOCKS, blocks.clone()),
            ColumnFamilyDescriptor::new(INDEX, small.clone()),
            ColumnFamilyDescriptor::new(PACKS, small.clone()),
        ];
        for t in Table::ALL {
            // promoted copies are block-sized: they go to blob files like blocks
            let o = if t == Table::Cache {
                blocks.clone()
            } else {
                small.clone()
            };
            cfs.push(ColumnFamilyDescriptor::new(t.name(), o));
        }
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.into_string(),
        })?;
        let packs = Packs::open(&path.join(PACK_DIR))?;
        let store = RocksStore {
            db,
            path: path.to_path_buf(),
            packs,
            state: Default::default(),
        };
        store.recover()?;
        Ok(store)
    }

    /// Brings the pack files in line with the index after whatever ended the last session:
    /// punches what the journal says, then every record above a pack's watermark that the
    /// index does not name (bytes written before a crash lost their index entry), and raises
    /// the watermarks to the packs' ends.
    fn recover(&self) -> Result<(), StoreError> {
        let cf = self.cf(PACKS)?;
        let mut batch = WriteBatch::default();
        let mut marks = std::collections::HashMap::new();
        for (k, v) in self.table_scan_cf(PACKS)? {
            let bad = || StoreError::BadKey("packs");
            match (k.first(), k.len(), v.len()) {
                (Some(b'p'), 13, 8) => {
                    let pack = u32::from_be_bytes(k[1..5].try_into().map_err(|_| bad())?);
                    let record = u64::from_be_bytes(k[5..13].try_into().map_err(|_| bad())?);
                    let span = u64::from_le_bytes(v[..8].try_into().map_err(|_| bad())?);
                    self.packs.punch(pack, record, span)?;
                    batch.delete_cf(cf, &k);
                }
                (Some(b'w'), 5, 8) => {
                    let pack = u32::from_be_bytes(k[1..5].try_into().map_err(|_| bad())?);
                    marks.insert(
                        pack,
                        u64::from_le_bytes(v[..8].try_into().map_err(|_| bad())?),
                    );
                }
                _ => return Err(bad()),
            }
        }
        for pack in self.packs.list()? {
            let from = marks.get(&pack).copied().unwrap_or(0);
            let end = self.packs.len(pack)?;
            if end <= from {
                continue;
            }
            let mut orphans = Vec::new();
            self.packs.scan(pack, from, &mut |cid, loc| {
                if self.location(&cid.to_bytes())?.1 != Some(loc) {
                    orphans.push(loc);
                }
                Ok(())
            })?;
            for l in &orphans {
                self.packs.punch(l.pack, l.record, l.span())?;
            }
            if !orphans.is_empty() {
                tracing::info!(
                    pack,
                    orphans = orphans.len(),
                    "punched pack records no index names"
                );
            }
            batch.put_cf(cf, watermark_key(pack), end.to_le_bytes());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.err(e))
    }

    /// A block's indexed length and, for a packed block, where its bytes are.
    fn location(&self, key: &[u8]) -> Result<(u64, Option<Loc>), StoreError> {
        match self
            .db
            .get_pinned_cf(self.cf(INDEX)?, key)
            .map_err(|e| self.err(e))?
        {
            None => Ok((0, None)),
            Some(v) => parse_index(key, &v),
        }
    }

    /// Writes a batch's index and table changes, with packed blocks at `locs` (in the order of
    /// their puts); returns the records it journaled for punching.
    fn write_index(
        &self,
        batch: Batch,
        durability: Durability,
        locs: &[Loc],
        blocks: &ColumnFamily,
        index: &ColumnFamily,
        packs_cf: &ColumnFamily,
    ) -> Result<Vec<(Vec<u8>, Punch)>, StoreError> {
        let mut wb = WriteBatch::default();
        let mut journaled = Vec::new();
        let sync = matches!(durability, Durability::Sync);
        let mut journal = |wb: &mut WriteBatch, key: &[u8]| -> Result<(), StoreError> {
            let mut records = Vec::new();
            if let (_, Some(old)) = self.location(key)? {
                records.push((old.pack, old.record, old.span()));
            }
            // A Deferred rewrite of this block not yet flushed journaled the record a crash
            // would bring back; once this synced change lands, no outcome of a crash names
            // that record either, so it is journaled here too.
            if sync {
                let mut st = self.state()?;
                let (same, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut st.to_punch)
                    .into_iter()
                    .partition(|(k, _)| k == key);
                st.to_punch = rest;
                records.extend(same.into_iter().map(|(_, r)| r));
            }
            for r in records {
                wb.put_cf(packs_cf, punch_key(r.0, r.1), r.2.to_le_bytes());
                journaled.push((key.to_vec(), r));
            }
            Ok(())
        };
        let mut locs = locs.iter();
        for op in batch.ops {
            match op {
                Op::PutBlock(b) => {
                    let key = b.cid.to_bytes();
                    let len = b.data.len() as u64;
                    // a rewritten packed block's old record is freed once this batch is durable
                    journal(&mut wb, &key)?;
                    if b.data.len() >= packs::PACK_MIN {
                        let loc = locs
                            .next()
                            .ok_or_else(|| StoreError::Backend("pack write lost a block".into()))?;
                        wb.put_cf(index, &key, index_value(len, Some(loc)));
                        // an inline copy from before pack files would disagree with the index
                        wb.delete_cf(blocks, &key);
                    } else {
                        wb.put_cf(index, &key, index_value(len, None));
                        wb.put_cf(blocks, &key, &b.data);
                    }
                }
                Op::DeleteBlock(c) => {
                    let key = c.to_bytes();
                    journal(&mut wb, &key)?;
                    wb.delete_cf(blocks, &key);
                    wb.delete_cf(index, &key);
                }
                Op::Put(t, k, v) => wb.put_cf(self.cf(t.name())?, k, v),
                Op::Delete(t, k) => wb.delete_cf(self.cf(t.name())?, k),
            }
        }
        let mut wo = WriteOptions::default();
        match durability {
            Durability::Sync => wo.set_sync(true),
            // Bulk block data skips the WAL: large blocks' bytes are already in a pack and
            // the rest is written at flush time; `persist` flushes before the ingest commits
            // its manifest. Atomic flush keeps the column families in step across a crash.
            Durability::Deferred => wo.disable_wal(true),
        }
        self.db.write_opt(wb, &wo).map_err(|e| self.err(e))?;
        Ok(journaled)
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, PackState>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("pack state lock poisoned".into()))
    }

    fn table_scan_cf(&self, name: &'static str) -> Result<Entries, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(name)?, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Punches journaled records whose index change is durable, and clears their journal keys.
    fn punch_journaled(&self, done: Vec<(Vec<u8>, Punch)>) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let cf = self.cf(PACKS)?;
        let mut batch = WriteBatch::default();
        for (_, (pack, record, span)) in done {
            self.packs.punch(pack, record, span)?;
            batch.delete_cf(cf, punch_key(pack, record));
        }
        // losing these deletes in a crash only repeats the punches at open
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.err(e))
    }

    /// The watermarks `persist` may record once its flush is done: each pack's length now,
    /// or, lower, its first record still waiting for its index entry. Lengths are read before
    /// the records in flight, and a record joins them when its space is reserved, so every
    /// record below a mark had its index entry written before the flush began.
    fn marks_before_flush(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        let mut lens = Vec::new();
        for pack in self.packs.list()? {
            lens.push((pack, self.packs.len(pack)?));
        }
        let in_flight = self.state()?.in_flight.clone();
        Ok(lens
            .into_iter()
            .map(|(pack, end)| {
                let first = in_flight.range((pack, 0)..=(pack, u64::MAX)).next();
                (pack, first.map_or(end, |(_, at)| (*at).min(end)))
            })
            .collect())
    }

    /// Records watermarks (after the flush that made everything below them durable).
    fn raise_watermarks(&self, marks: Vec<(u32, u64)>) -> Result<(), StoreError> {
        let cf = self.cf(PACKS)?;
        let mut batch = WriteBatch::default();
        for (pack, mark) in marks {
            batch.put_cf(cf, watermark_key(pack), mark.to_le_bytes());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.err(e))
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Backend(format!("column family {name} missing")))
    }

    fn err(&self, e: rocksdb::Error) -> StoreError {
        let s = e.into_string();
        if s.contains("No space left") || s.contains("ENOSPC") {
            StoreError::NoSpace {
                path: self.path.display().to_string(),
            }
        } else {
            StoreError::Backend(s)
        }
    }
}

impl BlockStore for RocksStore {
    fn write(&self, batch: Batch, durability: Durability) -> Result<(), StoreError> {
        let (blocks, index, packs_cf) = (self.cf(BLOCKS)?, self.cf(INDEX)?, self.cf(PACKS)?);
        // large blocks' bytes go to a pack first, durably, so no index entry can name bytes a
        // crash lost
        let big: Vec<(Vec<u8>, &[u8])> = batch
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::PutBlock(b) if b.data.len() >= packs::PACK_MIN => {
                    Some((b.cid.to_bytes(), b.data.as_ref()))
                }
                _ => None,
            })
            .collect();
        let mut at = None;
        let locs = if big.is_empty() {
            Vec::new()
        } else {
            let refs: Vec<(&[u8], &[u8])> = big.iter().map(|(k, d)| (k.as_slice(), *d)).collect();
            // registered while the space is reserved (see `marks_before_flush`)
            let written = self.packs.append(&refs, &mut |pack, off| {
                self.state()?.in_flight.insert((pack, off));
                at = Some((pack, off));
                Ok(())
            });
            match written {
                Ok(locs) => locs,
                Err(e) => {
                    // nothing was indexed: the reserved space is an orphan like a crash's
                    if let Some(key) = at {
                        self.state()?.in_flight.remove(&key);
                    }
                    return Err(e);
                }
            }
        };
        let r = self.write_index(batch, durability, &locs, blocks, index, packs_cf);
        if let Some(key) = at {
            self.state()?.in_flight.remove(&key);
        }
        let journaled = match r {
            Ok(j) => j,
            Err(e) => {
                // the index never named these records: give their space back
                for l in &locs {
                    let _ = self.packs.punch(l.pack, l.record, l.span());
                }
                return Err(e);
            }
        };
        match durability {
            Durability::Sync => self.punch_journaled(journaled),
            Durability::Deferred => {
                self.state()?.to_punch.extend(journaled);
                Ok(())
            }
        }
    }

    fn persist(&self) -> Result<(), StoreError> {
        let mut fo = FlushOptions::default();
        fo.set_wait(true);
        // with `atomic_flush` this is one flush of every column family, committed at once
        let cfs: Vec<&ColumnFamily> = [BLOCKS, INDEX, PACKS]
            .into_iter()
            .chain(Table::ALL.iter().map(|t| t.name()))
            .map(|n| self.cf(n))
            .collect::<Result<_, _>>()?;
        // what was journaled before the flush is durable after it
        let marks = self.marks_before_flush()?;
        let journaled = std::mem::take(&mut self.state()?.to_punch);
        self.db.flush_cfs_opt(&cfs, &fo).map_err(|e| self.err(e))?;
        self.punch_journaled(journaled)?;
        self.raise_watermarks(marks)
    }

    fn get_raw(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let key = cid.to_bytes();
        match self.location(&key)? {
            (_, Some(loc)) => self.packs.read(&loc).map(Some),
            (_, None) => self
                .db
                .get_cf(self.cf(BLOCKS)?, key)
                .map_err(|e| self.err(e)),
        }
    }

    fn has(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.size(cid)?.is_some())
    }

    fn size(&self, cid: &Cid) -> Result<Option<u64>, StoreError> {
        match self
            .db
            .get_pinned_cf(self.cf(INDEX)?, cid.to_bytes())
            .map_err(|e| self.err(e))?
        {
            None => Ok(None),
            Some(v) => Ok(Some(parse_index(&cid.to_bytes(), &v)?.0)),
        }
    }

    fn for_each_cid(&self, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError> {
        for item in self.db.iterator_cf(self.cf(INDEX)?, IteratorMode::Start) {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let cid = Cid::try_from(k.as_ref()).map_err(|_| StoreError::BadKey("block_index"))?;
            if !f(cid) {
                break;
            }
        }
        Ok(())
    }

    fn for_each_stored_cid(&self, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError> {
        // the iterator loads each value (blob values too): this reads every stored byte
        let mut all = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(BLOCKS)?);
        it.seek_to_first();
        while let Some(k) = it.key() {
            all.push(Cid::try_from(k).map_err(|_| StoreError::BadKey("blocks"))?);
            it.next();
        }
        it.status().map_err(|e| self.err(e))?;
        // and every record in the pack files but those journaled to be punched (their blocks
        // are deleted), in CID order with the rest
        let dead: std::collections::HashSet<Vec<u8>> = self
            .table_scan_cf(PACKS)?
            .into_iter()
            .filter(|(k, _)| k.first() == Some(&b'p'))
            .map(|(k, _)| k)
            .collect();
        for pack in self.packs.list()? {
            self.packs.scan(pack, 0, &mut |c, l| {
                if !dead.contains(&punch_key(l.pack, l.record)) {
                    all.push(c);
                }
                Ok(())
            })?;
        }
        all.sort_unstable_by_key(|c| c.to_bytes());
        all.dedup();
        for c in all {
            if !f(c) {
                break;
            }
        }
        Ok(())
    }

    fn table_get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(t.name())?, key)
            .map_err(|e| self.err(e))
    }

    fn table_scan(&self, t: Table) -> Result<Entries, StoreError> {
        self.table_scan_cf(t.name())
    }

    fn table_scan_from(
        &self,
        t: Table,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let mode = IteratorMode::From(from, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.cf(t.name())?, mode).take(limit) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "rocks_tests.rs"]
mod tests;
