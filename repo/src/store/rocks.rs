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

use super::{Batch, BlockStore, Durability, Op, StoreError, Table};
use cid::Cid;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, FlushOptions, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};
use std::path::{Path, PathBuf};

const BLOCKS: &str = "blocks";
const INDEX: &str = "block_index";
/// Values at least this large go to blob files (below it they stay inline in SSTs).
const MIN_BLOB_SIZE: u64 = 4096;
/// Memtable size for the blocks column family. With at most two memtables this bounds the
/// store's ingest buffering to 32 MiB, inside the 128 MiB import RSS budget.
const BLOCKS_WRITE_BUFFER: usize = 16 << 20;

/// A [`BlockStore`] on RocksDB.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
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
        Ok(RocksStore {
            db,
            path: path.to_path_buf(),
        })
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
        let (blocks, index) = (self.cf(BLOCKS)?, self.cf(INDEX)?);
        let mut wb = WriteBatch::default();
        for op in batch.ops {
            match op {
                Op::PutBlock(b) => {
                    let key = b.cid.to_bytes();
                    wb.put_cf(index, &key, (b.data.len() as u64).to_le_bytes());
                    wb.put_cf(blocks, &key, &b.data);
                }
                Op::DeleteBlock(c) => {
                    let key = c.to_bytes();
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
            // Bulk block data skips the WAL: it is written once, to blob files, at flush time;
            // `persist` flushes before the ingest commits its manifest. Atomic flush keeps the
            // column families in step across a crash.
            Durability::Deferred => wo.disable_wal(true),
        }
        self.db.write_opt(wb, &wo).map_err(|e| self.err(e))
    }

    fn persist(&self) -> Result<(), StoreError> {
        let mut fo = FlushOptions::default();
        fo.set_wait(true);
        // with `atomic_flush` this is one flush of every column family, committed at once
        let cfs: Vec<&ColumnFamily> = [BLOCKS, INDEX]
            .into_iter()
            .chain(Table::ALL.iter().map(|t| t.name()))
            .map(|n| self.cf(n))
            .collect::<Result<_, _>>()?;
        self.db.flush_cfs_opt(&cfs, &fo).map_err(|e| self.err(e))
    }

    fn get_raw(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(BLOCKS)?, cid.to_bytes())
            .map_err(|e| self.err(e))
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
            Some(v) => {
                let a: [u8; 8] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::BadKey("block_index"))?;
                Ok(Some(u64::from_le_bytes(a)))
            }
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
        let mut it = self.db.raw_iterator_cf(self.cf(BLOCKS)?);
        it.seek_to_first();
        while let Some(k) = it.key() {
            let cid = Cid::try_from(k).map_err(|_| StoreError::BadKey("blocks"))?;
            if !f(cid) {
                return Ok(());
            }
            it.next();
        }
        it.status().map_err(|e| self.err(e))
    }

    fn table_get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(t.name())?, key)
            .map_err(|e| self.err(e))
    }

    fn table_scan(&self, t: Table) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(t.name())?, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
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
mod tests {
    use super::*;
    use crate::store::{Batch, Durability};
    use cairn_core::block::{Block, HashAlg, RAW};
    use cairn_core::testgen::Gen;

    #[test]
    fn shared_suite() {
        let dirs = std::sync::Mutex::new(Vec::new());
        super::super::suite::run(&|| {
            let d = tempfile::tempdir().unwrap();
            let s = RocksStore::open(d.path()).unwrap();
            dirs.lock().unwrap().push(d);
            Box::new(s)
        });
    }

    #[test]
    fn survives_reopen_and_deferred_writes_after_persist() {
        let d = tempfile::tempdir().unwrap();
        let b = Block::new(HashAlg::Blake3, RAW, vec![7u8; 10_000]);
        let small = Block::new(HashAlg::Blake3, RAW, vec![1u8; 10]);
        {
            let s = RocksStore::open(d.path()).unwrap();
            let mut batch = Batch::new();
            batch.put_block(b.clone()).put_block(small.clone());
            s.write(batch, Durability::Deferred).unwrap();
            s.persist().unwrap();
        }
        let s = RocksStore::open(d.path()).unwrap();
        assert_eq!(s.get(&b.cid).unwrap(), Some(b.data.to_vec()));
        assert_eq!(s.get(&small.cid).unwrap(), Some(small.data.to_vec()));
        assert_eq!(s.size(&b.cid).unwrap(), Some(10_000));
    }

    /// The files of a store as a crash would leave them: copied while it is open.
    fn crash_image(s: &RocksStore, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(&s.path).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }

    #[test]
    fn crash_after_an_automatic_flush_keeps_blocks_and_index_together() {
        let d = tempfile::tempdir().unwrap();
        let s = RocksStore::open(&d.path().join("db")).unwrap();
        // 24 MiB of Deferred blocks: past the 16 MiB blocks memtable, so RocksDB flushes on its
        // own, with no `persist`; the index entries alone would fill no memtable
        let blocks: Vec<Block> = (0..24u64)
            .map(|i| Block::new(HashAlg::Blake3, RAW, Gen::bytes(i, 1 << 20)))
            .collect();
        for b in &blocks {
            let mut batch = Batch::new();
            batch.put_block(b.clone());
            s.write(batch, Durability::Deferred).unwrap();
        }
        let prop = |name: &str| {
            s.db.property_int_value_cf(s.cf(BLOCKS).unwrap(), name)
                .unwrap()
                .unwrap()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while prop("rocksdb.num-immutable-mem-table") > 0 || prop("rocksdb.num-running-flushes") > 0
        {
            assert!(std::time::Instant::now() < deadline, "no flush finished");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        crash_image(&s, &d.path().join("image"));
        drop(s);

        let s = RocksStore::open(&d.path().join("image")).unwrap();
        let (mut indexed, mut stored) = (Vec::new(), Vec::new());
        s.for_each_cid(&mut |c| {
            indexed.push(c);
            true
        })
        .unwrap();
        s.for_each_stored_cid(&mut |c| {
            stored.push(c);
            true
        })
        .unwrap();
        assert!(!stored.is_empty(), "the automatic flush wrote nothing");
        assert_eq!(
            stored, indexed,
            "blocks and block_index disagree after a crash"
        );
        for c in &indexed {
            assert!(s.get(c).unwrap().is_some());
        }
    }

    #[test]
    fn second_open_of_a_locked_repo_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let _s = RocksStore::open(d.path()).unwrap();
        let e = RocksStore::open(d.path()).err().unwrap();
        assert!(matches!(e, StoreError::Open { .. }), "{e}");
    }
}
