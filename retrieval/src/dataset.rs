//! A streaming dataset API for training loops: the files of a dataset (for example WebDataset
//! `.tar` shards), in order or in a seeded shuffle, each readable as a byte stream, a byte
//! range or an [`AsyncRead`](tokio::io::AsyncRead) + [`AsyncSeek`](tokio::io::AsyncSeek)
//! [`FileReader`], in memory bounded independently of the files' sizes.
//!
//! Every block is verified against its CID and fetched only when a read needs it (from its
//! holders, or decoded from its stripe's parity), a few ahead of the reader
//! ([`Options::read_ahead`](crate::Options::read_ahead)), and kept in a [`MemoryCache`] of
//! at most [`Options::cache_bytes`](crate::Options::cache_bytes).
//!
//! A dataset that starts reading in an order registers it as a plan with the storage node
//! holding most of its shards ([`Dataset::register_plan`]; off with
//! [`Options::register_plans`](crate::Options::register_plans)): the node copies the blocks
//! the reader reaches next onto fast peers, and the reader tries those peers first.
//!
//! ```no_run
//! # async fn demo(client: cairn_retrieval::Client, root: cairn_core::Cid)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use cairn_retrieval::dataset::{Dataset, Order};
//! use tokio::io::{AsyncReadExt, AsyncSeekExt};
//!
//! let ds = Dataset::open(client, &root).await?;
//! for (entry, mut reader) in ds.readers(Order::Shuffled { seed: 7 }) {
//!     let mut header = [0u8; 512]; // a tar header, say
//!     reader.read_exact(&mut header).await?;
//!     reader.seek(std::io::SeekFrom::Start(4096)).await?;
//!     println!("{} ({} bytes)", entry.path, entry.size);
//! }
//! let first = ds.files()[0].clone();
//! let head = ds.read_range(&first, 0..first.size.min(1 << 20)).await?;
//! # let _ = head;
//! # Ok(()) }
//! ```

use crate::cache::MemoryCache;
use crate::client::{Client, RetrievalError};
use crate::lru::CacheStats;
use crate::reader::{range_stream, FileReader, Source};
use bytes::{Bytes, BytesMut};
use cairn_core::block::RAW;
use cairn_core::dag::{safe_name, DagError, DagReader, Node, MAX_DEPTH};
use cairn_core::dagpb::DagPbError;
use cairn_core::Cid;
use cairn_net::wire::{CtrlRequest, CtrlResponse};
use cairn_net::PeerId;
use futures::stream::{self, Stream, StreamExt};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

/// Blocks fetched at once while listing a dataset (directory nodes, HAMT shards and file
/// roots): each is one round trip, and listing waits on nothing else.
const LIST_PARALLEL: usize = 16;

/// Files a [`Dataset`] lists at most: its list is in memory (about 150 bytes per file), and a
/// hostile DAG that links one directory from many places could otherwise list without end.
pub const MAX_FILES: usize = 1 << 24;

/// Bytes [`Dataset::read_range`] reserves up front at most: the rest grows as bytes arrive,
/// so a file that claims a huge size does not allocate it before its blocks are seen.
const RESERVE: u64 = 16 << 20;

/// Times a plan answered with no fast peer is sent again, and how long apart: a node
/// measures its peers within seconds of being asked.
const PLAN_RETRIES: usize = 6;
const PLAN_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// One file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path inside the dataset, `/`-separated (empty when the dataset is a single file).
    pub path: String,
    /// The file's CID.
    pub cid: Cid,
    /// The file's size in bytes, as its root records it (reads check the blocks against it).
    pub size: u64,
}

/// Order in which [`Dataset::stream`] and [`Dataset::readers`] yield files.
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

/// What a [`Dataset`] has fetched and cached, for tests and progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetStats {
    /// The block cache's counters.
    pub cache: CacheStats,
    /// Blocks fetched from the network (each verified; decoded ones included).
    pub fetched_blocks: u64,
    /// Their bytes.
    pub fetched_bytes: u64,
}

/// An opened dataset: its file list, and readers of its files.
pub struct Dataset {
    src: Arc<Source>,
    files: Vec<FileEntry>,
    /// The order last registered as a plan (automatic registration sends each order once).
    planned: std::sync::Mutex<Option<Order>>,
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

/// What a listed CID is.
enum Found {
    File(u64),
    Dir(Vec<(String, Cid)>),
    Symlink,
}

/// Compares paths component by component: the order of a depth-first walk that visits each
/// directory's entries by name.
fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

impl Dataset {
    /// Resolves `root` and lists its files, fetching only directory nodes (HAMT shards
    /// included) and the root nodes of files that are not a single raw block. Blocks are kept
    /// in memory, at most [`Options::cache_bytes`](crate::Options::cache_bytes) of them.
    pub async fn open(client: Client, root: &Cid) -> Result<Dataset, RetrievalError> {
        let resolved = client.resolve(root).await?;
        Self::open_resolved(client, resolved).await
    }

    /// Opens the dataset `resolved` names, resolved earlier by `client` (a node's memo of the
    /// datasets it serves): lists its files as [`Dataset::open`] does, without asking the
    /// network who holds what again. Reads use those holders (a holder gone since is passed
    /// over for parity, as always).
    pub async fn open_resolved(
        client: Client,
        resolved: crate::client::Resolved,
    ) -> Result<Dataset, RetrievalError> {
        let root = resolved.root;
        let root = &root;
        let src = Arc::new(Source::new(client, resolved));
        let mut files = Vec::new();
        let mut frontier: Vec<(String, Cid)> = vec![(String::new(), *root)];
        let mut depth = 0;
        while !frontier.is_empty() {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(DagError::TooDeep.into());
            }
            let src2 = &src;
            let found: Vec<(String, Cid, Result<Found, RetrievalError>)> = stream::iter(frontier)
                .map(|(path, cid)| async move {
                    let f = inspect(src2, cid).await;
                    (path, cid, f)
                })
                .buffered(LIST_PARALLEL)
                .collect()
                .await;
            let mut next = Vec::new();
            for (path, cid, f) in found {
                match f? {
                    Found::File(size) => files.push(FileEntry { path, cid, size }),
                    Found::Symlink => {}
                    Found::Dir(entries) => next.extend(entries.into_iter().map(|(name, c)| {
                        let p = if path.is_empty() {
                            name
                        } else {
                            format!("{path}/{name}")
                        };
                        (p, c)
                    })),
                }
                if files.len() + next.len() > MAX_FILES {
                    return Err(RetrievalError::TooManyFiles {
                        root: *root,
                        limit: MAX_FILES,
                    });
                }
            }
            frontier = next;
        }
        files.sort_by(|a, b| path_order(&a.path, &b.path));
        Ok(Dataset {
            src,
            files,
            planned: std::sync::Mutex::new(None),
        })
    }

    /// The storage node a plan goes to first ([`Dataset::plan_nodes`]), if any.
    pub fn plan_node(&self) -> Option<PeerId> {
        self.plan_nodes().first().copied()
    }

    /// The storage nodes a plan may go to, in the order they are asked ([`plan_nodes_of`]
    /// over who holds how many of the dataset's shards): a node following peers' plans over
    /// another dataset refuses, and the next is asked.
    pub fn plan_nodes(&self) -> Vec<PeerId> {
        let mut count: HashMap<PeerId, usize> = HashMap::new();
        for peers in self.src.resolved().holders.values() {
            for p in peers {
                *count.entry(*p).or_default() += 1;
            }
        }
        plan_nodes_of(self.root(), &count)
    }

    /// Registers this reader's plan with storage node `node` (`CtrlRequest::Plan`): every file
    /// in `order`, read at about `rate` bytes per second. The node copies what the reader
    /// reaches next onto fast peers; the reads of this dataset's client try those peers
    /// ([`Client::prefer`]) after a shard's known fast copies, before its holders. Returns
    /// those peers.
    pub async fn register_plan(
        &self,
        node: PeerId,
        order: Order,
        rate: Option<f64>,
    ) -> Result<Vec<PeerId>, RetrievalError> {
        let seed = match order {
            Order::Sequential => None,
            Order::Shuffled { seed } => Some(seed),
        };
        let req = CtrlRequest::Plan {
            root: *self.root(),
            seed,
            rate: rate
                .filter(|r| r.is_finite() && *r > 0.0)
                .map_or(0, |r| r as u64),
        };
        let client = self.src.client();
        match client.net.ctrl(node, req).await? {
            CtrlResponse::Peers(p) => {
                client.prefer(p.clone());
                // the node sees only some of the reads: tell it where the reader is
                self.src.report_to(node);
                if let Ok(mut planned) = self.planned.lock() {
                    *planned = Some(order);
                }
                Ok(p)
            }
            CtrlResponse::Error(e) => Err(RetrievalError::Plan { node, reason: e }),
            other => Err(RetrievalError::Plan {
                node,
                reason: format!("unexpected answer {other:?}"),
            }),
        }
    }

    /// Registers `order` in the background with [`Dataset::plan_node`] when the client's
    /// options ask for it, a tokio runtime runs, and this order is not the one registered
    /// last. Best effort: a failure is logged, reading goes on.
    fn auto_plan(&self, order: Order) {
        let opts = self.src.client().options();
        if !opts.register_plans {
            return;
        }
        let Ok(mut planned) = self.planned.lock() else {
            return;
        };
        if *planned == Some(order) {
            return;
        }
        let nodes = self.plan_nodes();
        let (false, Ok(rt)) = (nodes.is_empty(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        *planned = Some(order);
        let rate = opts.read_rate;
        let this = Dataset {
            src: self.src.clone(),
            files: Vec::new(),
            planned: std::sync::Mutex::new(None),
        };
        rt.spawn(async move {
            // the candidates in turn until one takes the plan (a node following peers' plans
            // over another dataset refuses); a node that has measured no fast peer yet (it
            // just started) answers with none: ask it again a few times while it measures
            // them (the same plan again changes nothing there but the answer)
            let mut last = String::new();
            let mut taken: Option<PeerId> = None;
            for attempt in 0..=PLAN_RETRIES {
                for &node in taken.as_ref().map_or(&nodes[..], std::slice::from_ref) {
                    match this.register_plan(node, order, rate).await {
                        Ok(p) if !p.is_empty() => return,
                        Ok(_) => {
                            taken = Some(node);
                            last = format!("{node}: no fast peer measured there");
                            break;
                        }
                        Err(e) => last = e.to_string(),
                    }
                }
                if attempt < PLAN_RETRIES {
                    tokio::time::sleep(PLAN_RETRY_AFTER).await;
                }
            }
            tracing::info!(reason = %last, "the dataset's plan has no fast peers to read from");
        });
    }

    /// The dataset's root CID.
    pub fn root(&self) -> &Cid {
        &self.src.resolved().root
    }

    /// The files, in path order (directory by directory, entries by name).
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The file at `path` (`/`-separated, as in [`FileEntry::path`]).
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        let i = self
            .files
            .binary_search_by(|f| path_order(&f.path, path))
            .ok()?;
        self.files.get(i)
    }

    /// A reader of `f` ([`AsyncRead`](tokio::io::AsyncRead) +
    /// [`AsyncSeek`](tokio::io::AsyncSeek)); nothing is fetched before its first read.
    pub fn reader(&self, f: &FileEntry) -> FileReader {
        FileReader::new(self.src.clone(), f.cid, f.size)
    }

    /// Bytes `range` of `f`, in order, in pieces of at most one block, fetching only the
    /// blocks under the range, a few ahead of the consumer. A range not inside the file is an
    /// error ([`RetrievalError::Range`]); so is a block that cannot be had, which ends the
    /// stream.
    pub fn range(
        &self,
        f: &FileEntry,
        range: Range<u64>,
    ) -> impl Stream<Item = Result<Bytes, RetrievalError>> + Send + 'static {
        let (start, end) = (range.start, range.end);
        if start > end || end > f.size {
            let e = RetrievalError::Range {
                cid: f.cid,
                start,
                end,
                size: f.size,
            };
            return stream::once(async move { Err(e) }).boxed();
        }
        range_stream(self.src.clone(), f.cid, f.size, start, end)
    }

    /// Bytes `range` of `f` in one buffer (see [`Dataset::range`]); memory grows with the
    /// range, not the file.
    pub async fn read_range(
        &self,
        f: &FileEntry,
        range: Range<u64>,
    ) -> Result<Bytes, RetrievalError> {
        let len = range.end.saturating_sub(range.start);
        let mut s = self.range(f, range);
        let Some(first) = s.next().await.transpose()? else {
            return Ok(Bytes::new());
        };
        if first.len() as u64 == len {
            // one block (or part of one): no copy
            return Ok(first);
        }
        let mut out = BytesMut::with_capacity(len.min(RESERVE) as usize);
        out.extend_from_slice(&first);
        while let Some(b) = s.next().await.transpose()? {
            out.extend_from_slice(&b);
        }
        Ok(out.freeze())
    }

    /// Reads one whole file into memory; for large files, prefer [`Dataset::reader`] or
    /// [`Dataset::range`], which hold only a few blocks at a time.
    pub async fn read(&self, f: &FileEntry) -> Result<Bytes, RetrievalError> {
        self.read_range(f, 0..f.size).await
    }

    fn order(&self, order: Order) -> Vec<usize> {
        match order {
            Order::Sequential => (0..self.files.len()).collect(),
            Order::Shuffled { seed } => shuffle_order(self.files.len(), seed),
        }
    }

    /// Every file with its bytes in `order`, reading at most `prefetch` whole files ahead of
    /// the consumer (at least 1). Memory grows with the files' sizes; for large files, use
    /// [`Dataset::readers`].
    pub fn stream(
        &self,
        order: Order,
        prefetch: usize,
    ) -> impl Stream<Item = Result<(FileEntry, Bytes), RetrievalError>> + '_ {
        self.auto_plan(order);
        stream::iter(self.order(order))
            .map(move |i| async move {
                let f = self.files[i].clone();
                let b = self.read(&f).await?;
                Ok((f, b))
            })
            .buffered(prefetch.max(1))
    }

    /// Every file with a [`FileReader`] of it, in `order`; the readers fetch nothing until
    /// they are read, so memory stays bounded however large the files are.
    pub fn readers(&self, order: Order) -> impl Iterator<Item = (FileEntry, FileReader)> + '_ {
        self.auto_plan(order);
        self.order(order).into_iter().map(move |i| {
            let f = self.files[i].clone();
            let r = self.reader(&f);
            (f, r)
        })
    }

    /// The block cache.
    pub fn cache(&self) -> &MemoryCache {
        self.src.cache()
    }

    /// What has been fetched and cached so far.
    pub fn stats(&self) -> DatasetStats {
        let (fetched_blocks, fetched_bytes) = self.src.fetched();
        DatasetStats {
            cache: self.src.cache().stats(),
            fetched_blocks,
            fetched_bytes,
        }
    }
}

/// What `cid` is, fetching its block unless it is a raw leaf (a file of one block, whose size
/// the manifest records); a directory's entries, HAMT shards fetched and merged.
async fn inspect(src: &Source, cid: Cid) -> Result<Found, RetrievalError> {
    if cid.codec() == RAW {
        return Ok(Found::File(src.recorded_len(&cid)?));
    }
    let bytes = src.block(&cid).await?;
    match Node::decode(&cid, bytes.to_vec())? {
        Node::Raw(b) => Ok(Found::File(b.len() as u64)),
        Node::File { size, .. } => Ok(Found::File(size)),
        Node::Symlink(_) => Ok(Found::Symlink),
        Node::Directory(_) => entries(&cid, &HashMap::from([(cid, bytes)])),
        Node::Hamt(links) => {
            // the shards under this directory, level by level, then one listing over them
            let mut blocks = HashMap::from([(cid, bytes)]);
            let mut frontier = sub_shards(links);
            let mut depth = 0;
            while !frontier.is_empty() {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DagError::TooDeep.into());
                }
                let got: Vec<(Cid, Result<Bytes, RetrievalError>)> = stream::iter(frontier)
                    .map(|c| async move { (c, src.block(&c).await) })
                    .buffered(LIST_PARALLEL)
                    .collect()
                    .await;
                let mut next = Vec::new();
                for (c, b) in got {
                    let b = b?;
                    match Node::decode(&c, b.to_vec())? {
                        Node::Hamt(links) => next.extend(sub_shards(links)),
                        _ => return Err(DagError::NotADirectory(c).into()),
                    }
                    blocks.insert(c, b);
                }
                // a shard linked twice is fetched once
                let mut seen = HashSet::new();
                next.retain(|s| !blocks.contains_key(s) && seen.insert(*s));
                frontier = next;
            }
            entries(&cid, &blocks)
        }
    }
}

/// The links of a HAMT shard to its sub-shards (names of 2 hex digits).
fn sub_shards(links: Vec<(String, Cid, u64)>) -> Vec<Cid> {
    links
        .into_iter()
        .filter(|(n, _, _)| n.len() == 2)
        .map(|(_, c, _)| c)
        .collect()
}

/// The entries of directory `dir` (flat, or a HAMT whose shards are all in `blocks`), by the
/// DAG reader's listing (sorted; a name listed twice is refused); a name that is not one path
/// component is refused too.
fn entries(dir: &Cid, blocks: &HashMap<Cid, Bytes>) -> Result<Found, RetrievalError> {
    let mut r = DagReader::new(|c: &Cid| {
        blocks
            .get(c)
            .map(|b| b.to_vec())
            .ok_or_else(|| format!("HAMT shard {c} was not fetched").into())
    });
    let mut out = Vec::new();
    for (name, cid, _) in r.list(dir)? {
        if !safe_name(&name) {
            return Err(DagError::Decode {
                cid: *dir,
                source: DagPbError::Malformed("unsafe entry name"),
            }
            .into());
        }
        out.push((name, cid));
    }
    Ok(Found::Dir(out))
}

/// Nodes a plan is offered to at most ([`plan_nodes_of`]).
pub const PLAN_CANDIDATES: usize = 4;

/// The nodes that may follow the plans over the dataset `root`, in the order they are asked,
/// given how many of its shards each holder holds: the holders of at least half as many
/// shards as the most, by `blake3(root || peer)` from the highest (rendezvous hashing), at
/// most [`PLAN_CANDIDATES`]. Every job over one dataset asks the same node first, so they
/// share its copies; different datasets spread over the nodes that hold much of them, as a
/// node's room for plans is capped (each promoter may use half of a fast peer's cache) and
/// following a plan costs it reads and bandwidth.
pub fn plan_nodes_of(root: &Cid, count: &HashMap<PeerId, usize>) -> Vec<PeerId> {
    let Some(most) = count.values().copied().max() else {
        return Vec::new();
    };
    let score = |p: &PeerId| {
        let mut b = root.to_bytes();
        b.extend_from_slice(&p.to_bytes());
        cairn_core::block::HashAlg::Blake3.digest(&b)
    };
    let mut c: Vec<([u8; 32], PeerId)> = count
        .iter()
        .filter(|(_, &n)| n > 0 && n * 2 >= most)
        .map(|(p, _)| (score(p), *p))
        .collect();
    c.sort_unstable_by(|a, b| b.cmp(a));
    c.into_iter().take(PLAN_CANDIDATES).map(|x| x.1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_s_plans_meet_at_one_of_its_main_holders_and_datasets_spread() {
        let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        let count: HashMap<PeerId, usize> = peers.iter().map(|p| (*p, 10)).collect();
        let root = |i: u8| {
            cairn_core::block::Block::new(cairn_core::block::HashAlg::Blake3, RAW, vec![i]).cid
        };
        // the same dataset, the same node, whatever the map's order
        let a = plan_nodes_of(&root(0), &count)[0];
        let mut rev: HashMap<PeerId, usize> = HashMap::new();
        for p in peers.iter().rev() {
            rev.insert(*p, 10);
        }
        assert_eq!(plan_nodes_of(&root(0), &rev)[0], a);
        assert_eq!(
            plan_nodes_of(&root(0), &rev),
            plan_nodes_of(&root(0), &count)
        );
        assert_eq!(plan_nodes_of(&root(0), &count).len(), PLAN_CANDIDATES);
        // 256 datasets over six equal holders: every holder follows some (a holder picked
        // for none would have odds of 6 x (5/6)^256, about 1e-20)
        let picked: HashSet<PeerId> = (0..=255)
            .map(|i| plan_nodes_of(&root(i), &count)[0])
            .collect();
        assert_eq!(picked.len(), 6);
        // a holder of fewer than half as many shards as the most is never picked
        let mut skew = count.clone();
        for p in &peers[1..] {
            skew.insert(*p, 4);
        }
        for i in 0..16 {
            assert_eq!(plan_nodes_of(&root(i), &skew), vec![peers[0]]);
        }
        // nobody holds anything
        assert!(plan_nodes_of(&root(0), &HashMap::new()).is_empty());
        let zero: HashMap<PeerId, usize> = peers.iter().map(|p| (*p, 0)).collect();
        assert!(plan_nodes_of(&root(0), &zero).is_empty());
    }

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

    #[test]
    fn path_order_is_depth_first_by_name() {
        // '-' sorts before '/' as a byte, but a directory's files come before its siblings
        let mut paths = vec!["a-c", "a/b", "a/a/z", "b", "a", "a/b0"];
        paths.sort_by(|a, b| path_order(a, b));
        assert_eq!(paths, vec!["a", "a/a/z", "a/b", "a/b0", "a-c", "b"]);
    }
}
