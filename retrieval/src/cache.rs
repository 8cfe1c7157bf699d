//! Block caches. [`BlockCache`] is a directory of verified blocks, one file per CID: where a
//! download keeps what it has, so a killed download resumes from there. [`MemoryCache`] keeps
//! verified blocks in memory up to a byte limit, least recently used out first: what a
//! [`Dataset`](crate::dataset::Dataset) reads through.

use crate::lru::{ByteLru, CacheStats};
use bytes::Bytes;
use cairn_core::dag::{DagReader, FetchError};
use cairn_core::{Block, Cid};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A block cache in a directory. Files are written to a temporary name and renamed, and every
/// read is verified against the CID, so a torn or tampered file is only a cache miss.
#[derive(Debug, Clone)]
pub struct BlockCache {
    dir: PathBuf,
}

impl BlockCache {
    /// Opens (creating) the cache directory.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(BlockCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, cid: &Cid) -> PathBuf {
        self.dir.join(cid.to_string())
    }

    /// A block's verified bytes, or `None` if absent or damaged (a damaged file is removed).
    pub fn get(&self, cid: &Cid) -> Option<Vec<u8>> {
        let p = self.path(cid);
        let b = std::fs::read(&p).ok()?;
        if Block::verify(cid, &b).is_ok() {
            Some(b)
        } else {
            let _ = std::fs::remove_file(&p);
            None
        }
    }

    /// Whether a file for the block exists (not verified; [`BlockCache::get`] verifies).
    pub fn has(&self, cid: &Cid) -> bool {
        self.path(cid).exists()
    }

    /// Stores verified bytes.
    pub fn put(&self, cid: &Cid, data: &[u8]) -> std::io::Result<()> {
        let p = self.path(cid);
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, &p)
    }

    /// A DAG reader over the cache.
    pub fn reader(&self) -> DagReader<impl FnMut(&Cid) -> Result<Vec<u8>, FetchError> + '_> {
        DagReader::new(move |c: &Cid| {
            self.get(c)
                .ok_or_else(|| format!("block {c} is not in the download cache").into())
        })
    }

    /// Removes the cache directory.
    pub fn remove(self) -> std::io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }
}

/// Verified blocks in memory, at most a byte limit of them: inserting past the limit drops the
/// least recently used blocks first, and a block longer than the limit is not kept. Cheap to
/// clone (clones share the blocks). Callers insert only blocks verified against their CIDs.
#[derive(Debug, Clone)]
pub struct MemoryCache {
    lru: Arc<Mutex<ByteLru<Cid>>>,
}

impl MemoryCache {
    /// An empty cache holding at most `limit` bytes of blocks.
    pub fn new(limit: u64) -> Self {
        MemoryCache {
            lru: Arc::new(Mutex::new(ByteLru::new(limit))),
        }
    }

    /// Every operation leaves the map consistent before it can panic, so a poisoned lock is
    /// still usable.
    fn lock(&self) -> MutexGuard<'_, ByteLru<Cid>> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A block's bytes, now the most recently used; `None` if not held.
    pub fn get(&self, cid: &Cid) -> Option<Bytes> {
        self.lock().get(cid)
    }

    /// Whether the block is held (not a use).
    pub fn contains(&self, cid: &Cid) -> bool {
        self.lock().contains(cid)
    }

    /// Keeps a verified block, evicting least recently used ones to make room; `false` when it
    /// alone is longer than the limit (it is then not kept).
    pub fn insert(&self, cid: Cid, data: Bytes) -> bool {
        self.lock().insert(cid, data)
    }

    /// Drops every block.
    pub fn clear(&self) {
        self.lock().clear()
    }

    /// Counters: bytes held, their peak, hits, misses, inserts, evictions.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats()
    }
}
