//! A directory of verified blocks, one file per CID: where a download keeps what it has, so a
//! killed download resumes from there.

use cairn_core::dag::{DagReader, FetchError};
use cairn_core::{Block, Cid};
use std::path::{Path, PathBuf};

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
