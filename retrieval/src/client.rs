//! The retrieval client: resolve, locate, fetch (verified, parallel, with parity fallback).

use crate::cache::BlockCache;
pub use crate::error::RetrievalError;
use crate::layout;
use bytes::Bytes;
use cairn_core::dag::{DagError, Node};
use cairn_core::erasure::{Coder, ErasureError, Stripe};
use cairn_core::gather::Gather;
use cairn_core::manifest::Manifest;
use cairn_core::{Block, Cid};
use cairn_net::{NetClient, PeerId};
use futures::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a download is doing, for progress displays and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The manifest was found and verified.
    Resolved {
        /// Manifest head CID.
        manifest: Cid,
        /// Stripes in the dataset.
        stripes: usize,
        /// File bytes in the dataset.
        bytes: u64,
        /// Peers asked where shards are.
        peers: usize,
    },
    /// A verified block arrived.
    Fetched {
        /// The block.
        cid: Cid,
        /// From whom.
        peer: PeerId,
        /// Its size.
        bytes: u64,
    },
    /// A block was already in the resume cache.
    Cached {
        /// The block.
        cid: Cid,
    },
    /// A provider failed to serve a block (missing, slow, unreachable or wrong bytes).
    ProviderFailed {
        /// The provider.
        peer: PeerId,
        /// The block.
        cid: Cid,
        /// Why.
        reason: String,
        /// The provider sent bytes that do not match the CID (it is now skipped).
        lied: bool,
    },
    /// Missing data shards of a stripe were decoded from parity.
    Reconstructed {
        /// Stripe index.
        stripe: usize,
        /// Shards rebuilt.
        shards: usize,
    },
    /// Leaves of a stripe were written to the output and recorded for resuming.
    Written {
        /// Stripe index.
        stripe: usize,
        /// Leaves written.
        blocks: usize,
    },
    /// Every block is here; the output is complete.
    Done {
        /// File bytes written.
        bytes: u64,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stripes fetched at once (each fetches its data shards in parallel).
    pub parallel_stripes: usize,
    /// How long one block may take from one provider before the client moves on (to another
    /// holder or to parity).
    pub block_timeout: Duration,
    /// Bytes of blocks a [`Dataset`](crate::dataset::Dataset) keeps in memory for reuse
    /// (least recently used out first). Default 64 MiB: the directory nodes of a large
    /// dataset and a few dozen 1 MiB leaves.
    pub cache_bytes: u64,
    /// Blocks a [`FileReader`](crate::reader::FileReader) fetches ahead of the one it is
    /// reading (at least 1). With 1 MiB leaves, 4 keeps a link of 100 ms round trips busy at
    /// about 40 MB/s per reader and holds at most 4 blocks (16 MiB at the 4 MiB block limit)
    /// besides the cache.
    pub read_ahead: usize,
    /// Whether a [`Dataset`](crate::dataset::Dataset) registers its reading order with a
    /// storage node when it starts reading in one ([`Dataset::register_plan`](crate::dataset::Dataset::register_plan)),
    /// so the node copies what comes next onto fast peers ahead of it. Default true.
    pub register_plans: bool,
    /// The reader's rate in bytes per second, sent with its plan (the node prefetches that
    /// many seconds of reading ahead); `None`: unknown.
    pub read_rate: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallel_stripes: 8,
            block_timeout: Duration::from_secs(10),
            cache_bytes: 64 << 20,
            read_ahead: 4,
            register_plans: true,
            read_rate: None,
        }
    }
}

/// A dataset resolved from its root: manifest, stripes and who holds which shard.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The root CID.
    pub root: Cid,
    /// The manifest head block CID.
    pub manifest_cid: Cid,
    /// The manifest.
    pub manifest: Manifest,
    /// Every stripe, in DAG order.
    pub stripes: Vec<Stripe>,
    /// For each shard: the peers that said they hold it.
    pub holders: HashMap<Cid, Vec<PeerId>>,
    /// For each promoted shard: the fast peers holding a promoted copy. Reads try these
    /// first (the fast tier; design §4).
    pub fast: HashMap<Cid, Vec<PeerId>>,
    /// For each shard: (stripe index, position in the stripe).
    pub position: HashMap<Cid, (usize, usize)>,
}

/// The retrieval client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) net: NetClient,
    opts: Options,
    /// Providers caught serving wrong bytes; skipped from then on.
    liars: Arc<Mutex<HashSet<PeerId>>>,
    progress: Option<mpsc::Sender<Progress>>,
    /// Blocks the caller holds itself (a node's own repo), asked before any peer.
    pub(crate) local: Option<LocalBlocks>,
    /// Peers tried for every shard after its known fast copies, before its holders: the fast
    /// peers a node copies a registered plan's blocks to ([`Client::prefer`]).
    preferred: Arc<std::sync::RwLock<Vec<PeerId>>>,
}

/// A source of blocks held by the client's own process, verified against their CIDs (a
/// node's repo): `None` when not held.
pub type LocalBlocks = Arc<dyn Fn(&Cid) -> Option<Bytes> + Send + Sync>;

impl Client {
    /// A client over a network handle.
    pub fn new(net: NetClient, opts: Options) -> Self {
        Client {
            net,
            opts,
            liars: Arc::default(),
            progress: None,
            local: None,
            preferred: Arc::default(),
        }
    }

    /// Tries `peers` for every shard after its known fast copies and before its holders (the
    /// fast peers a node said it copies a registered plan's blocks to: the copies made after
    /// the dataset was resolved are found there). Shared by this client's clones; replaces
    /// the peers preferred before.
    pub fn prefer(&self, peers: Vec<PeerId>) {
        if let Ok(mut p) = self.preferred.write() {
            *p = peers;
        }
    }

    /// The peers tried first ([`Client::prefer`]).
    pub fn preferred(&self) -> Vec<PeerId> {
        self.preferred.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// Asks `local` for every shard before any peer: a node reading through its own client
    /// counts the shards it holds itself (no peer serves a node its own blocks).
    pub fn with_local(mut self, local: LocalBlocks) -> Self {
        self.local = Some(local);
        self
    }

    /// The settings.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Sends progress events to `tx` (the download waits when the channel is full).
    pub fn with_progress(mut self, tx: mpsc::Sender<Progress>) -> Self {
        self.progress = Some(tx);
        self
    }

    /// Providers caught serving wrong bytes.
    pub fn liars(&self) -> Vec<PeerId> {
        self.liars
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) async fn emit(&self, p: Progress) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(p).await;
        }
    }

    fn is_liar(&self, p: &PeerId) -> bool {
        self.liars.lock().map(|l| l.contains(p)).unwrap_or(false)
    }

    /// Fetches one block from one of `peers`, verified; emits failures.
    pub(crate) async fn fetch_from(&self, cid: &Cid, peers: &[PeerId]) -> Option<(Bytes, PeerId)> {
        for &peer in peers {
            if self.is_liar(&peer) {
                continue;
            }
            let r =
                tokio::time::timeout(self.opts.block_timeout, self.net.fetch(peer, &[*cid])).await;
            let reason = match r {
                Err(_) => format!("no answer within {:?}", self.opts.block_timeout),
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(mut v)) => match v.pop() {
                    Some(cairn_net::wire::GetStatus::Found(b)) => {
                        if Block::verify(cid, &b).is_ok() {
                            self.emit(Progress::Fetched {
                                cid: *cid,
                                peer,
                                bytes: b.len() as u64,
                            })
                            .await;
                            return Some((b, peer));
                        }
                        if let Ok(mut l) = self.liars.lock() {
                            l.insert(peer);
                        }
                        tracing::warn!(%peer, %cid, "provider sent bytes that do not match the CID; skipping it");
                        let _ = self.net.disconnect(peer).await;
                        self.emit(Progress::ProviderFailed {
                            peer,
                            cid: *cid,
                            reason: "sent bytes that do not match the CID".into(),
                            lied: true,
                        })
                        .await;
                        continue;
                    }
                    _ => "does not have it".to_string(),
                },
            };
            tracing::debug!(%peer, %cid, %reason, "provider failed");
            self.emit(Progress::ProviderFailed {
                peer,
                cid: *cid,
                reason,
                lied: false,
            })
            .await;
        }
        None
    }

    /// One block from whichever of the nodes that announced it serves it first, verified
    /// (a provider that sends wrong bytes is skipped from then on); `Ok(None)` when none has
    /// it. No parity: a block is rebuilt from its stripe only by [`Client::obtain`], which
    /// needs the dataset's manifest.
    pub async fn fetch_block(&self, cid: &Cid) -> Result<Option<Bytes>, RetrievalError> {
        let peers = self.net.providers(*cid).await?;
        Ok(self.fetch_from(cid, &peers).await.map(|(b, _)| b))
    }

    /// The data shards `wanted` (indices into the stripe) of stripe `index`, verified: fetched
    /// from their holders, or decoded from parity when holders are missing, slow or lying.
    pub async fn obtain(
        &self,
        r: &Resolved,
        index: usize,
        wanted: &[usize],
    ) -> Result<Vec<(Cid, Vec<u8>)>, RetrievalError> {
        let stripe = r.stripes.get(index).ok_or(RetrievalError::Stripe {
            index,
            reason: "no such stripe".into(),
        })?;
        let n_data = stripe.data.len();
        let cids: Vec<Cid> = stripe.shards().copied().collect();
        let wanted: Vec<usize> = wanted.iter().copied().filter(|&i| i < n_data).collect();
        let (k, m) = (r.manifest.k as usize, r.manifest.m as usize);
        // the wanted shards first; when one is missing, others (parity first) until k are here
        let mut gather = Gather::new(k, m, n_data, &wanted).map_err(|e| stripe_err(index, e))?;
        while let Some(batch) = gather.next_batch() {
            self.fill(r, &cids, &batch, &mut gather).await;
        }
        let rebuilt = gather.missing_wanted();
        let mut shards = if rebuilt == 0 {
            gather.into_shards()
        } else {
            let coder = Coder::new(k, m).map_err(|e| stripe_err(index, e))?;
            let shards = gather
                .finish(&coder, stripe)
                .map_err(|e| stripe_err(index, e))?;
            self.emit(Progress::Reconstructed {
                stripe: index,
                shards: rebuilt,
            })
            .await;
            shards
        };
        Ok(wanted
            .iter()
            .map(|&i| (cids[i], shards[i].take().unwrap_or_default()))
            .collect())
    }

    /// Makes sure every data shard of stripe `index` is in `cache`.
    pub async fn fetch_stripe(
        &self,
        r: &Resolved,
        index: usize,
        cache: &BlockCache,
    ) -> Result<(), RetrievalError> {
        let Some(stripe) = r.stripes.get(index) else {
            return Err(RetrievalError::Stripe {
                index,
                reason: "no such stripe".into(),
            });
        };
        let wanted: Vec<usize> = (0..stripe.data.len())
            .filter(|&i| !cache.has(&stripe.data[i]))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        for (cid, b) in self.obtain(r, index, &wanted).await? {
            cache.put(&cid, &b).map_err(|source| RetrievalError::Io {
                path: cache.dir().to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }

    async fn fill(&self, r: &Resolved, cids: &[Cid], wanted: &[usize], gather: &mut Gather) {
        let got: Vec<(usize, Option<Vec<u8>>)> =
            futures::future::join_all(wanted.iter().map(|&i| async move {
                let cid = cids[i];
                if let Some(b) = self.local.as_ref().and_then(|l| l(&cid)) {
                    return (i, Some(b.to_vec()));
                }
                // promoted copies on fast peers first, then the peers a plan's copies go to,
                // then the base holders
                let mut peers = r.fast.get(&cid).cloned().unwrap_or_default();
                let preferred = self.preferred.read().map(|p| p.clone()).unwrap_or_default();
                for p in preferred
                    .iter()
                    .chain(r.holders.get(&cid).into_iter().flatten())
                {
                    if !peers.contains(p) {
                        peers.push(*p);
                    }
                }
                (
                    i,
                    self.fetch_from(&cid, &peers).await.map(|(b, _)| b.to_vec()),
                )
            }))
            .await;
        for (i, b) in got {
            gather.offer(i, b);
        }
    }

    /// Makes sure every block of the DAG under `cid` is in `cache`, level by level, fetching
    /// only the stripes that hold them.
    pub async fn fetch_dag(
        &self,
        r: &Resolved,
        cid: &Cid,
        cache: &BlockCache,
    ) -> Result<(), RetrievalError> {
        let mut frontier = vec![*cid];
        let mut depth = 0;
        while !frontier.is_empty() {
            depth += 1;
            if depth > cairn_core::dag::MAX_DEPTH {
                return Err(DagError::TooDeep.into());
            }
            let mut stripes: Vec<usize> = Vec::new();
            for c in &frontier {
                if !cache.has(c) {
                    let &(s, _) = r.position.get(c).ok_or(RetrievalError::NotInDataset(*c))?;
                    stripes.push(s);
                }
            }
            stripes.sort_unstable();
            stripes.dedup();
            let results: Vec<Result<(), RetrievalError>> = stream::iter(stripes)
                .map(|i| self.fetch_stripe(r, i, cache))
                .buffer_unordered(self.opts.parallel_stripes.max(1))
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            let mut next = Vec::new();
            for c in &frontier {
                if c.codec() == cairn_core::block::RAW {
                    continue;
                }
                let bytes = cache.get(c).ok_or(RetrievalError::NotInDataset(*c))?;
                match Node::decode(c, bytes)? {
                    Node::File { children, .. } => next.extend(children.iter().map(|x| x.0)),
                    Node::Directory(e) | Node::Hamt(e) => next.extend(e.iter().map(|x| x.1)),
                    Node::Raw(_) | Node::Symlink(_) => {}
                }
            }
            frontier = next;
        }
        Ok(())
    }

    /// Downloads the dataset `root` into `out` (which must not exist); returns the file bytes
    /// written.
    ///
    /// Internal DAG nodes (a few per GiB) are fetched first into `out.cairn-blocks/`; from
    /// them the layout of every file is known, and each leaf is then written once, straight
    /// to its offsets under `out.cairn-partial`, synced, and then recorded in
    /// `out.cairn-blocks/done`. Running the same command after a crash, kill or power loss
    /// resumes from that record: the leaves it names are read back and verified against their
    /// CIDs first, and those that do not verify are fetched again. The tree is synced, renamed
    /// to `out` when every leaf is written or verified, and the rename synced.
    pub async fn get(&self, root: &Cid, out: &Path) -> Result<u64, RetrievalError> {
        if out.symlink_metadata().is_ok() {
            return Err(RetrievalError::Exists(out.to_path_buf()));
        }
        let cache_dir = with_suffix(out, ".cairn-blocks");
        let partial = with_suffix(out, ".cairn-partial");
        let cache = BlockCache::open(&cache_dir).map_err(ioe(&cache_dir))?;
        let r = self.resolve(root).await?;
        // 1. internal nodes
        let mut internal: Vec<(usize, Vec<usize>)> = Vec::new();
        for (si, s) in r.stripes.iter().enumerate() {
            let w: Vec<usize> = (0..s.data.len())
                .filter(|&i| s.data[i].codec() != cairn_core::block::RAW && !cache.has(&s.data[i]))
                .collect();
            if !w.is_empty() {
                internal.push((si, w));
            }
        }
        let got: Vec<Result<Blocks, RetrievalError>> = stream::iter(internal)
            .map(|(si, w)| {
                let r = &r;
                async move { self.obtain(r, si, &w).await }
            })
            .buffer_unordered(self.opts.parallel_stripes.max(1))
            .collect()
            .await;
        for g in got {
            for (cid, b) in g? {
                cache.put(&cid, &b).map_err(ioe(&cache_dir))?;
            }
        }
        // 2. the layout, and the files created at their full size
        let (c2, p2, root2) = (cache.clone(), partial.clone(), *root);
        let layout = offload(move || layout::plan(&c2, &root2, &p2)).await??;
        let done_path = cache_dir.join("done");
        let done = Arc::new(layout::Journal::open(&done_path).map_err(ioe(&done_path))?);
        let targets = Arc::new(layout.leaves);
        // 3. what earlier runs journaled is read back and verified; what does not verify is
        // fetched again (see `layout`'s docs for why the journal alone is not trusted)
        let named: Vec<Cid> = targets
            .keys()
            .filter(|c| done.contains(c))
            .copied()
            .collect();
        if !named.is_empty() {
            let lens: Arc<HashMap<Cid, u64>> = Arc::new(
                r.stripes
                    .iter()
                    .flat_map(|s| s.data.iter().copied().zip(s.lens.iter().copied()))
                    .collect(),
            );
            let par = self.opts.parallel_stripes.max(1);
            let per = named.len().div_ceil(par);
            let checked: Vec<Result<Vec<Cid>, RetrievalError>> =
                stream::iter(named.chunks(per).map(<[Cid]>::to_vec))
                    .map(|cids| {
                        let (targets, done, lens) = (targets.clone(), done.clone(), lens.clone());
                        async move { offload(move || done.check(&targets, &lens, &cids)).await? }
                    })
                    .buffer_unordered(par)
                    .collect()
                    .await;
            let mut bad = 0;
            for c in checked {
                bad += c?.len();
            }
            if bad > 0 {
                tracing::warn!(
                    leaves = bad,
                    journaled = named.len(),
                    "journaled leaves do not match their CIDs on disk; fetching them again"
                );
            }
        }
        // 4. leaves, written in place
        let mut jobs: Vec<(usize, Vec<usize>)> = Vec::new();
        for (si, s) in r.stripes.iter().enumerate() {
            let w: Vec<usize> = (0..s.data.len())
                .filter(|&i| targets.contains_key(&s.data[i]) && !done.trusted(&s.data[i]))
                .collect();
            if !w.is_empty() {
                jobs.push((si, w));
            }
        }
        let results: Vec<Result<(), RetrievalError>> = stream::iter(jobs)
            .map(|(si, w)| {
                let (targets, done, r) = (targets.clone(), done.clone(), &r);
                async move {
                    let blocks = self.obtain(r, si, &w).await?;
                    let n = blocks.len();
                    offload(move || layout::write_leaves(&targets, &done, blocks)).await??;
                    self.emit(Progress::Written {
                        stripe: si,
                        blocks: n,
                    })
                    .await;
                    Ok(())
                }
            })
            .buffer_unordered(self.opts.parallel_stripes.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let bytes = if layout.raw_root {
            std::fs::metadata(&partial).map_err(ioe(&partial))?.len()
        } else {
            layout.bytes
        };
        // 5. every leaf trusted, everything synced, renamed, the rename synced
        let (p2, o2) = (partial.clone(), out.to_path_buf());
        offload(move || layout::finish(&targets, &done, &p2, &o2)).await??;
        let _ = cache.remove();
        self.emit(Progress::Done { bytes }).await;
        Ok(bytes)
    }
}

/// Verified blocks with their CIDs.
type Blocks = Vec<(Cid, Vec<u8>)>;

fn ioe(path: &Path) -> impl FnOnce(std::io::Error) -> RetrievalError {
    let path = path.to_path_buf();
    move |source| RetrievalError::Io { path, source }
}

/// Runs `f` on tokio's blocking pool and awaits it (a panic there is an I/O error with no
/// path).
async fn offload<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RetrievalError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RetrievalError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })
}

fn stripe_err(index: usize, e: ErasureError) -> RetrievalError {
    RetrievalError::Stripe {
        index,
        reason: e.to_string(),
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
