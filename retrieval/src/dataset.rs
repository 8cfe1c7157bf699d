//! A streaming dataset API for training loops: the files of a dataset (for example WebDataset
//! `.tar` shards), in order or in a seeded shuffle, with bounded prefetch.

use crate::cache::BlockCache;
use crate::client::{Client, Resolved, RetrievalError};
use bytes::Bytes;
use cairn_core::dag::{Kind, Node};
use cairn_core::Cid;
use futures::stream::{self, Stream, StreamExt};
use std::path::Path;
use std::sync::Arc;

/// One file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path inside the dataset, `/`-separated (empty when the dataset is a single file).
    pub path: String,
    /// The file's CID.
    pub cid: Cid,
}

/// Order in which [`Dataset::stream`] yields files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Path order.
    Sequential,
    /// A permutation fixed by the seed (the same seed gives the same order on every machine).
    Shuffled {
        /// The seed, e.g. derived from the epoch number.
        seed: u64,
    },
}

/// An opened dataset.
pub struct Dataset {
    client: Client,
    resolved: Arc<Resolved>,
    cache: BlockCache,
    files: Vec<FileEntry>,
}

/// splitmix64: a tiny, well-mixed generator so shuffles are reproducible across platforms.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seeded permutation of `0..n` that [`Order::Shuffled`] uses (Fisher-Yates).
pub fn shuffle_order(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s = seed;
    for i in (1..n).rev() {
        let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

impl Dataset {
    /// Resolves `root` and lists its files, fetching only directory blocks and file heads.
    /// Blocks are kept in `cache_dir`.
    pub async fn open(
        client: Client,
        root: &Cid,
        cache_dir: &Path,
    ) -> Result<Dataset, RetrievalError> {
        let cache = BlockCache::open(cache_dir).map_err(|source| RetrievalError::Io {
            path: cache_dir.to_path_buf(),
            source,
        })?;
        let resolved = Arc::new(client.resolve(root).await?);
        // fetch the directory structure level by level (file heads, but not file bodies)
        let mut frontier = vec![*root];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for c in &frontier {
                if !cache.has(c) {
                    let &(s, _) = resolved
                        .position
                        .get(c)
                        .ok_or(RetrievalError::NotInDataset(*c))?;
                    client.fetch_stripe(&resolved, s, &cache).await?;
                }
                if c.codec() == cairn_core::block::RAW {
                    continue;
                }
                let b = cache.get(c).ok_or(RetrievalError::NotInDataset(*c))?;
                if let Node::Directory(e) | Node::Hamt(e) = Node::decode(c, b)? {
                    next.extend(e.iter().map(|x| x.1));
                }
            }
            frontier = next;
        }
        let mut files = Vec::new();
        list(&cache, root, String::new(), &mut files, 0)?;
        Ok(Dataset {
            client,
            resolved,
            cache,
            files,
        })
    }

    /// The files, in path order.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// Reads one file (fetching, verifying and decoding from parity as needed).
    pub async fn read(&self, f: &FileEntry) -> Result<Bytes, RetrievalError> {
        self.client
            .fetch_dag(&self.resolved, &f.cid, &self.cache)
            .await?;
        let cache = self.cache.clone();
        let cid = f.cid;
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            cache.reader().read_file(&cid, &mut out)?;
            Ok::<_, RetrievalError>(Bytes::from(out))
        })
        .await
        .map_err(|e| RetrievalError::Io {
            path: self.cache.dir().to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// Yields every file with its bytes in `order`, fetching at most `prefetch` files ahead of
    /// the consumer (at least 1).
    pub fn stream(
        &self,
        order: Order,
        prefetch: usize,
    ) -> impl Stream<Item = Result<(FileEntry, Bytes), RetrievalError>> + '_ {
        let idx = match order {
            Order::Sequential => (0..self.files.len()).collect(),
            Order::Shuffled { seed } => shuffle_order(self.files.len(), seed),
        };
        stream::iter(idx)
            .map(move |i| async move {
                let f = self.files[i].clone();
                let b = self.read(&f).await?;
                Ok((f, b))
            })
            .buffered(prefetch.max(1))
    }
}

fn list(
    cache: &BlockCache,
    cid: &Cid,
    path: String,
    out: &mut Vec<FileEntry>,
    depth: usize,
) -> Result<(), RetrievalError> {
    if depth > cairn_core::dag::MAX_DEPTH {
        return Err(cairn_core::dag::DagError::TooDeep.into());
    }
    let mut r = cache.reader();
    match r.node(cid)?.kind() {
        Kind::File => out.push(FileEntry { path, cid: *cid }),
        Kind::Symlink => {}
        Kind::Directory => {
            let mut entries = r.list(cid)?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, c, _) in entries {
                let p = if path.is_empty() {
                    name
                } else {
                    format!("{path}/{name}")
                };
                list(cache, &c, p, out, depth + 1)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let a = shuffle_order(1000, 7);
        assert_eq!(a, shuffle_order(1000, 7));
        assert_ne!(a, shuffle_order(1000, 8));
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert!(shuffle_order(0, 1).is_empty());
    }
}
