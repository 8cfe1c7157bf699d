//! A networked storage node: serves and accepts shards, places a dataset's shards on distinct
//! nodes by weighted rendezvous hashing, announces them in the DHT, and runs scrub and repair
//! workers that restore `k + m` holders per stripe.

use crate::heat::{now_ms, AccessLog, Heat, PeerSpeeds, Speed};
use crate::proving::{GossipMsg, ProofOptions, ProofStatus, Proofs, GOSSIP_QUEUE};
use crate::tier::{Cache, Tier, TierOptions};
use bytes::Bytes;
use cairn_core::block::cid_from_bytes;
use cairn_core::erasure::{Coder, Stripe};
use cairn_core::manifest::Manifest;
use cairn_core::profile::Profile;
use cairn_core::rendezvous::{self, Candidate};
use cairn_core::{Block, Cid};
use cairn_net::wire::{CtrlRequest, CtrlResponse, NodeInfo, PutStatus, MAX_HAVE};
use cairn_net::{Keypair, NetClient, NetConfig, NetError, NetEvent, PeerId, Service};
use cairn_repo::store::{Batch, Durability, StoreError, Table};
use cairn_repo::{Repo, RepoError};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Node failures.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The repo failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A peer refused or failed to store shards.
    #[error("peer {peer} did not store {cid}: {status:?}")]
    Push {
        /// The peer.
        peer: PeerId,
        /// The first block it did not store.
        cid: Cid,
        /// What it said.
        status: PutStatus,
    },
    /// A profile or stripe setting is invalid.
    #[error("{0}")]
    Config(String),
    /// A request is invalid or not allowed (a bad profile, `k` or `m`; removing a dataset
    /// another node published).
    #[error("{0}")]
    Invalid(String),
    /// A peer did not make a pushed dataset durable.
    #[error("peer {peer} did not commit dataset {manifest}: {reason}")]
    Commit {
        /// The peer.
        peer: PeerId,
        /// The dataset's manifest.
        manifest: Cid,
        /// What it said.
        reason: String,
    },
    /// A background job panicked or was cancelled.
    #[error("background job failed: {0}")]
    Join(String),
    /// Sealing, proving or the audit log failed.
    #[error("proofs: {0}")]
    Proofs(String),
}

/// Node settings beyond the network's.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Bytes this node offers to store.
    pub capacity: u64,
    /// Import profile for datasets put through this node.
    pub profile: String,
    /// Data shards per stripe.
    pub k: usize,
    /// Parity shards per stripe.
    pub m: usize,
    /// Seconds between repair rounds (0: only on demand and when a peer disconnects).
    pub repair_interval: Duration,
    /// Seconds between scrubs of the local store (0: only on demand).
    pub scrub_interval: Duration,
    /// Proofs of storage (sealing, window proofs, audits); `None` turns them off.
    pub proofs: Option<ProofOptions>,
    /// The fast tier (promoting hot shards to fast peers, keeping peers' promoted copies).
    pub tier: TierOptions,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            capacity: 64 << 30,
            profile: "cairn-v1".into(),
            k: 4,
            m: 2,
            repair_interval: Duration::from_secs(60),
            scrub_interval: Duration::from_secs(3600),
            proofs: None,
            tier: TierOptions::default(),
        }
    }
}

/// Where one shard was placed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ShardPlacement {
    /// The shard's CID.
    pub cid: String,
    /// Peers holding it.
    pub holders: Vec<String>,
}

/// What `put` through a node did.
#[derive(Debug, Clone, Serialize)]
pub struct PutReport {
    /// Root CID.
    pub root: String,
    /// Manifest CID.
    pub manifest: String,
    /// File bytes.
    pub bytes: u64,
    /// DAG blocks.
    pub blocks: u64,
    /// Stripes.
    pub stripes: u64,
    /// Whether the shards were spread over `k + m` distinct nodes (false: fewer nodes were
    /// reachable; this node keeps the whole dataset for now, and rebalancing in repair rounds
    /// moves shards onto distinct nodes as they join).
    pub distributed: bool,
    /// Distinct nodes holding shards.
    pub nodes: usize,
    /// Per stripe, its shards and their holders.
    pub placement: Vec<Vec<ShardPlacement>>,
}

/// The publisher's choices for one put through a node; `None` takes the node's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Import profile name (`cairn-v1`, `unixfs-v1-2025`, `kubo-legacy`); with it, `k` and
    /// `m` default to the profile's rather than the node's.
    pub profile: Option<String>,
    /// Data shards per stripe.
    pub k: Option<usize>,
    /// Parity shards per stripe.
    pub m: Option<usize>,
}

/// What removing a dataset from the network did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RemoveReport {
    /// Root CID.
    pub root: String,
    /// Manifest CID.
    pub manifest: String,
    /// Nodes that held some of it and dropped it (this node included).
    pub removed_from: Vec<String>,
    /// Live nodes that held none of it.
    pub not_held: usize,
    /// Nodes that failed or refused, with the reason (they may still hold shards).
    pub failed: Vec<String>,
}

/// What one repair round did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RepairRound {
    /// Stripes examined.
    pub stripes: u64,
    /// Stripes this node was responsible for and found short of holders.
    pub degraded: u64,
    /// Shards rebuilt and placed on a new holder.
    pub rebuilt: u64,
    /// Shards copied, by rebalancing, onto a node that held nothing of their stripe.
    pub moved: u64,
    /// Local copies dropped by rebalancing once a node holding only that shard of its stripe
    /// had it.
    pub dropped: u64,
    /// Stripes that could not be restored, with the reason.
    pub failed: Vec<String>,
}

/// A node's state, for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// Peer id.
    pub peer_id: String,
    /// Listen addresses.
    pub addrs: Vec<String>,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Bytes stored.
    pub used: u64,
    /// Datasets this node holds shards of.
    pub datasets: usize,
    /// Peers connected.
    pub peers: usize,
    /// Last repair round.
    pub last_repair: Option<RepairRound>,
    /// Corrupt blocks found by the last scrub.
    pub last_scrub_corrupt: Option<usize>,
    /// Proofs of storage, when on.
    pub proofs: Option<ProofStatus>,
}

/// What the node knows of a dataset it holds shards of.
struct DatasetIndex {
    root: Cid,
    pages: HashSet<Cid>,
    shards: HashSet<Cid>,
}

/// The part of the node that peers talk to.
struct NodeService {
    repo: Arc<Repo>,
    used: AtomicU64,
    capacity: u64,
    index: Mutex<HashMap<Cid, Arc<DatasetIndex>>>,
    announce: mpsc::Sender<Vec<Cid>>,
    proofs: Option<Arc<Proofs>>,
    reads: Arc<AccessLog>,
    cache: Arc<Cache>,
    /// Storage nodes seen answering `Info`: their block fetches (repair, probes) are not
    /// client reads.
    storage_peers: Mutex<HashSet<PeerId>>,
}

/// Storage peers remembered at most (their reads are not counted as client reads).
const MAX_STORAGE_PEERS: usize = 4096;

/// Datasets indexed in memory at once; the index is rebuilt from the store when evicted.
const MAX_INDEXED_DATASETS: usize = 64;
/// Announcement batches queued; when full, a batch is dropped and the next reprovide covers it.
const ANNOUNCE_QUEUE: usize = 256;
/// DHT announcements in flight at once.
const ANNOUNCE_PARALLEL: usize = 16;
/// Blocks per push exchange: 8 MiB in flight per receiving peer bounds the publisher's memory.
const PUSH_BATCH: usize = 8;
/// How long a peer may take to answer `Info` before it counts as down.
const INFO_TIMEOUT: Duration = Duration::from_secs(3);

impl NodeService {
    fn quarantined(&self, cid: &Cid) -> bool {
        matches!(
            self.repo
                .store()
                .table_get(Table::Quarantine, &cid.to_bytes()),
            Ok(Some(_))
        )
    }

    /// The index of a dataset whose manifest head and pages are stored here.
    fn dataset(&self, manifest: &Cid) -> Option<Arc<DatasetIndex>> {
        if let Some(d) = self.index.lock().ok()?.get(manifest) {
            return Some(d.clone());
        }
        let m = self.repo.manifest(manifest).ok()?;
        let stripes = self.repo.stripes(&m).ok()?;
        let d = Arc::new(DatasetIndex {
            root: m.root,
            pages: m.pages.iter().copied().collect(),
            shards: stripes.iter().flat_map(|s| s.shards().copied()).collect(),
        });
        let mut idx = self.index.lock().ok()?;
        if idx.len() >= MAX_INDEXED_DATASETS {
            idx.clear();
        }
        idx.insert(*manifest, d.clone());
        Some(d)
    }

    fn store_block(&self, block: Block, manifest_copy: bool) -> PutStatus {
        let len = block.data.len() as u64;
        let had = self.repo.store().has(&block.cid).unwrap_or(false);
        if !had && self.used.load(Ordering::Relaxed) + len > self.capacity {
            return PutStatus::NoSpace;
        }
        let cid = block.cid;
        let mut b = Batch::new();
        if manifest_copy {
            b.put(Table::Manifests, cid.to_bytes(), block.data.to_vec());
        }
        b.put_block(block).delete(Table::Quarantine, cid.to_bytes());
        match self.repo.store().write(b, Durability::Deferred) {
            Ok(()) => {
                if !had {
                    self.used.fetch_add(len, Ordering::Relaxed);
                }
                PutStatus::Stored
            }
            Err(e) => {
                tracing::error!(%cid, error = %e, "storing a pushed block failed");
                PutStatus::Failed
            }
        }
    }
}

impl Service for NodeService {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            capacity: self.capacity,
            used: self.used.load(Ordering::Relaxed),
        }
    }

    fn have(&self, cids: &[Cid]) -> Vec<bool> {
        cids.iter()
            .map(|c| self.repo.store().has(c).unwrap_or(false) && !self.quarantined(c))
            .collect()
    }

    fn get_block(&self, from: PeerId, cid: &Cid) -> Option<Bytes> {
        // `Repo::block` verifies, and quarantines a block that does not match
        let Some(b) = self.repo.block(cid).ok().map(Bytes::from) else {
            // a promoted copy kept here for a peer (counted by the cache)
            return self.cache.get(cid);
        };
        let peer_node = self
            .storage_peers
            .lock()
            .map(|s| s.contains(&from))
            .unwrap_or(false);
        if !peer_node {
            self.reads.record(*cid, b.len() as u64, now_ms());
        }
        Some(b)
    }

    fn cached(&self, from: PeerId, cids: &[Cid]) -> Vec<Option<u32>> {
        self.cache.cached(from, cids)
    }

    fn put_cached(&self, from: PeerId, block: Block) -> PutStatus {
        if self.repo.store().has(&block.cid).unwrap_or(false) {
            // held here already (base placement): nothing to copy
            return PutStatus::Stored;
        }
        self.cache.put(from, block)
    }

    fn cache_done(&self, from: PeerId, stored: &[Cid]) -> bool {
        if stored.is_empty() {
            return true;
        }
        // No flush per push: promoted copies are a cache over blocks that stay on their base
        // holders. A crash may lose the latest ones (the store's atomic flush keeps `cache`
        // and `cache_index` in step); the promoter's next `Cached` check sees them gone, and
        // clients that try one fall back to the base holders.
        let _ = from;
        if self.announce.try_send(stored.to_vec()).is_err() {
            tracing::warn!("announcement queue full; promoted copies not announced");
        }
        true
    }

    fn uncache(&self, from: PeerId, cids: &[Cid]) -> Vec<bool> {
        self.cache.uncache(from, cids)
    }

    fn put_block(&self, from: PeerId, manifest: &Cid, block: Block) -> PutStatus {
        if block.cid == *manifest {
            return match Manifest::decode(&block.data) {
                Ok(_) => self.store_block(block, true),
                Err(e) => {
                    tracing::info!(%from, %manifest, error = %e, "pushed manifest rejected");
                    PutStatus::NotInDataset
                }
            };
        }
        let is_page = match self.repo.manifest(manifest) {
            Ok(m) => m.pages.contains(&block.cid),
            Err(_) => return PutStatus::NotInDataset,
        };
        if is_page {
            return self.store_block(block, true);
        }
        match self.dataset(manifest) {
            Some(d) if d.shards.contains(&block.cid) => self.store_block(block, false),
            _ => PutStatus::NotInDataset,
        }
    }

    fn app(&self, from: PeerId, msg: &[u8]) -> Result<Vec<u8>, String> {
        match &self.proofs {
            Some(p) => p.answer(from, msg),
            None => Err("this node does not prove storage".into()),
        }
    }

    fn put_done(&self, from: PeerId, manifest: &Cid, stored: &[Cid]) -> bool {
        // Stored blocks become durable at the pusher's `Commit` (one flush per dataset, not
        // one per push of 8 blocks); until then a crash may lose them, and the pusher keeps
        // its own copies until every receiver committed.
        let _ = from;
        if stored.is_empty() {
            return true;
        }
        let pages = self.dataset(manifest).map(|d| d.pages.clone());
        let mut ann: Vec<Cid> = stored
            .iter()
            .filter(|c| !pages.as_ref().is_some_and(|p| p.contains(c)))
            .copied()
            .collect();
        ann.push(*manifest);
        if self.announce.try_send(ann).is_err() {
            tracing::warn!("announcement queue full; the next reprovide will announce");
        }
        true
    }

    fn commit(&self, from: PeerId, manifest: &Cid, publisher: PeerId) -> Result<bool, String> {
        let Some(d) = self.dataset(manifest) else {
            return Err(format!("no manifest {manifest} was pushed here"));
        };
        if let Err(e) = self.repo.store().persist() {
            tracing::error!(%from, error = %e, "persisting pushed blocks failed");
            return Ok(false);
        }
        let mut b = Batch::new();
        b.put(Table::Datasets, d.root.to_bytes(), manifest.to_bytes())
            .put(Table::Pins, d.root.to_bytes(), manifest.to_bytes());
        // the first publisher claim is kept: the publisher's own push comes before any
        // repair or rebalance that forwards the claim (docs/wire.md, `Commit`)
        let known = self
            .repo
            .store()
            .table_get(Table::Publishers, &manifest.to_bytes());
        if matches!(known, Ok(None)) {
            b.put(Table::Publishers, manifest.to_bytes(), publisher.to_bytes());
        }
        if let Err(e) = self.repo.store().write(b, Durability::Sync) {
            tracing::error!(%from, error = %e, "recording a pushed dataset failed");
            return Ok(false);
        }
        Ok(true)
    }

    fn remove(&self, from: PeerId, manifest: &Cid) -> Result<bool, String> {
        let publisher = match self
            .repo
            .store()
            .table_get(Table::Publishers, &manifest.to_bytes())
        {
            Ok(p) => p.and_then(|p| PeerId::from_bytes(&p).ok()),
            Err(e) => return Err(format!("reading the dataset's publisher: {e}")),
        };
        let Some(root) = self.dataset(manifest).map(|d| d.root) else {
            return Ok(false);
        };
        match publisher {
            Some(p) if p == from => {}
            Some(p) => {
                tracing::info!(%from, %manifest, publisher = %p, "removal refused: not the publisher");
                return Err(format!(
                    "refused: only the dataset's publisher {p} may remove {root}"
                ));
            }
            None => return Err(format!("refused: no publisher is recorded for {root} here")),
        }
        match self.repo.remove(&root) {
            Ok(r) => {
                self.used.fetch_sub(
                    r.bytes.min(self.used.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                if let Ok(mut idx) = self.index.lock() {
                    idx.remove(manifest);
                }
                tracing::info!(%from, %root, blocks = r.removed, bytes = r.bytes, "dataset removed on its publisher's request");
                Ok(true)
            }
            Err(RepoError::NotHeld(_)) => Ok(false),
            Err(e) => Err(format!("removing {root}: {e}")),
        }
    }
}

/// Bytes of every block in the store.
fn stored_bytes(repo: &Repo) -> Result<u64, StoreError> {
    let mut cids = Vec::new();
    repo.store().for_each_cid(&mut |c| {
        cids.push(c);
        true
    })?;
    let mut used = 0u64;
    for c in cids {
        used += repo.store().size(&c)?.unwrap_or(0);
    }
    Ok(used)
}

/// A running storage node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    repo: Arc<Repo>,
    pub(crate) net: NetClient,
    svc: Arc<NodeService>,
    opts: NodeOptions,
    pub(crate) stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    last_repair: Mutex<Option<RepairRound>>,
    last_scrub: Mutex<Option<usize>>,
    repair_lock: tokio::sync::Mutex<()>,
    pub(crate) proofs: Option<Arc<Proofs>>,
    pub(crate) repair_now: tokio::sync::Notify,
    pub(crate) seal_lock: tokio::sync::Mutex<()>,
    gossip: mpsc::Sender<GossipMsg>,
    speeds: PeerSpeeds,
    tier: Tier,
}

pub(crate) fn block_on_pool<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = Result<T, NodeError>> {
    let h = tokio::task::spawn_blocking(f);
    async move { h.await.map_err(|e| NodeError::Join(e.to_string())) }
}

impl Node {
    /// Starts a node on `repo` with identity `key`: joins the network, announces what it holds,
    /// and starts the announce, scrub and repair workers.
    pub async fn start(
        repo: Repo,
        key: Keypair,
        net_config: NetConfig,
        opts: NodeOptions,
    ) -> Result<Node, NodeError> {
        Profile::by_name(&opts.profile)
            .and_then(|p| p.with_stripe(opts.k, opts.m))
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let repo = Arc::new(repo);
        let r2 = repo.clone();
        let used = block_on_pool(move || stored_bytes(&r2)).await??;
        let (ann_tx, ann_rx) = mpsc::channel(ANNOUNCE_QUEUE);
        let proofs = match opts.proofs.clone() {
            None => None,
            Some(po) => {
                let (r3, me) = (repo.clone(), key.public().to_peer_id());
                Some(Arc::new(
                    block_on_pool(move || Proofs::open(r3, me, po))
                        .await?
                        .map_err(|e| NodeError::Proofs(e.to_string()))?,
                ))
            }
        };
        let (r4, cache_bytes) = (repo.clone(), opts.tier.cache_bytes);
        let cache = Arc::new(block_on_pool(move || Cache::open(r4, cache_bytes)).await??);
        let svc = Arc::new(NodeService {
            cache,
            storage_peers: Mutex::new(HashSet::new()),
            repo: repo.clone(),
            used: AtomicU64::new(used),
            capacity: opts.capacity,
            index: Mutex::new(HashMap::new()),
            announce: ann_tx,
            proofs: proofs.clone(),
            reads: Arc::new(AccessLog::default()),
        });
        let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_QUEUE);
        let tier = Tier::new(opts.tier.clone());
        let (net, events) = cairn_net::start(key, net_config, svc.clone()).await?;
        let (stop, _) = watch::channel(false);
        let node = Node {
            inner: Arc::new(Inner {
                repo,
                net,
                svc,
                opts,
                stop,
                tasks: Mutex::new(Vec::new()),
                last_repair: Mutex::new(None),
                last_scrub: Mutex::new(None),
                repair_lock: tokio::sync::Mutex::new(()),
                proofs,
                repair_now: tokio::sync::Notify::new(),
                seal_lock: tokio::sync::Mutex::new(()),
                gossip: gossip_tx,
                speeds: PeerSpeeds::default(),
                tier,
            }),
        };
        let tasks = vec![
            tokio::spawn(node.clone().announcer(ann_rx)),
            tokio::spawn(node.clone().reprovide()),
            tokio::spawn(node.clone().repair_worker(events)),
            tokio::spawn(node.clone().scrub_worker()),
            tokio::spawn(node.clone().seal_worker()),
            tokio::spawn(node.clone().audit_worker()),
            tokio::spawn(node.clone().gossip_worker(gossip_rx)),
            tokio::spawn(node.clone().placement_worker()),
        ];
        if let Ok(mut t) = node.inner.tasks.lock() {
            t.extend(tasks);
        }
        Ok(node)
    }

    /// The network handle.
    pub fn net(&self) -> &NetClient {
        &self.inner.net
    }

    /// The repo.
    pub fn repo(&self) -> &Repo {
        &self.inner.repo
    }

    /// The `n` shards read most from this node lately (decayed read counts), hottest first.
    pub fn hot_shards(&self, n: usize) -> Vec<(Cid, Heat, f64)> {
        self.inner.svc.reads.hottest(n, now_ms())
    }

    /// Shards with a read history here.
    pub fn tracked_shards(&self) -> usize {
        self.inner.svc.reads.tracked()
    }

    /// Connected peers' measured round-trip times, fastest first.
    pub fn peer_speeds(&self) -> Vec<(PeerId, Speed)> {
        self.inner.speeds.all()
    }

    /// The repo, shared (for work on the blocking pool).
    pub fn repo_arc(&self) -> Arc<Repo> {
        self.inner.repo.clone()
    }

    pub(crate) fn inner_repo(&self) -> Arc<Repo> {
        self.inner.repo.clone()
    }

    pub(crate) fn tier(&self) -> &Tier {
        &self.inner.tier
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.inner.svc.cache
    }

    pub(crate) fn cache_arc(&self) -> Arc<Cache> {
        self.inner.svc.cache.clone()
    }

    pub(crate) fn record_probe(&self, peer: PeerId, bytes: u64, dt: Duration) {
        self.inner.speeds.probe(peer, bytes, dt);
    }

    pub(crate) fn record_reads(&self, cid: Cid, size: u64, n: u64, at_ms: u64) {
        self.inner.svc.reads.record_many(cid, size, n, at_ms);
    }

    pub(crate) fn reads_since(&self, seq: u64) -> (Vec<crate::heat::Read>, u64) {
        self.inner.svc.reads.since(seq)
    }

    pub(crate) fn tier_seq(&self) -> u64 {
        self.inner.tier.seq()
    }

    pub(crate) fn shard_reads(&self, cid: &Cid) -> u64 {
        self.inner.svc.reads.get(cid).map_or(0, |h| h.reads)
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.net.peer_id()
    }

    /// Stops the workers and the network, and waits for them; the repo is released when the
    /// last clone of the node is dropped.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = self
            .inner
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        self.inner.net.shutdown().await;
        let _ = self.inner.repo.store().persist();
    }

    async fn announcer(self, mut rx: mpsc::Receiver<Vec<Cid>>) {
        while let Some(batch) = rx.recv().await {
            let net = self.inner.net.clone();
            stream::iter(batch)
                .for_each_concurrent(ANNOUNCE_PARALLEL, |c| {
                    let net = net.clone();
                    async move {
                        if let Err(e) = net.provide(c).await {
                            tracing::debug!(cid = %c, error = %e, "announce failed");
                        }
                    }
                })
                .await;
        }
    }

    /// Announces every manifest and held shard (at start: provider records live in memory).
    async fn reprovide(self) {
        let repo = self.inner.repo.clone();
        let held = block_on_pool(move || {
            let mut out = Vec::new();
            for (_, mcid) in repo.datasets().unwrap_or_default() {
                out.push(mcid);
                if let Ok(m) = repo.manifest(&mcid) {
                    for s in repo.stripes(&m).unwrap_or_default() {
                        for c in s.shards() {
                            if repo.store().has(c).unwrap_or(false) {
                                out.push(*c);
                            }
                        }
                    }
                }
            }
            out
        })
        .await
        .unwrap_or_default();
        for chunk in held.chunks(1024) {
            if self.inner.svc.announce.send(chunk.to_vec()).await.is_err() {
                return;
            }
        }
    }

    async fn repair_worker(self, mut events: mpsc::Receiver<NetEvent>) {
        let mut stop = self.inner.stop.subscribe();
        let period = self.inner.opts.repair_interval;
        let mut tick = tokio::time::interval(if period.is_zero() {
            Duration::from_secs(3600 * 24 * 365)
        } else {
            period
        });
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
                _ = self.inner.repair_now.notified() => {
                    tracing::info!("a prover became faulty; checking stripes");
                }
                ev = events.recv() => match ev {
                    None => return,
                    Some(NetEvent::Disconnected(p)) => {
                        self.inner.speeds.forget(&p);
                        tracing::info!(peer = %p, "peer disconnected; checking stripes");
                    }
                    Some(NetEvent::Rtt(p, rtt)) => {
                        self.inner.speeds.sample(p, rtt);
                        continue;
                    }
                    Some(NetEvent::Connected(_)) => continue,
                    Some(NetEvent::Gossip { source, topic, data }) => {
                        if self.inner.gossip.try_send((source, topic, data)).is_err() {
                            tracing::debug!("gossip queue full; message dropped");
                        }
                        continue;
                    }
                },
            }
            match self.repair_round().await {
                Ok(r) if r.rebuilt > 0 || !r.failed.is_empty() => {
                    tracing::info!(rebuilt = r.rebuilt, failed = r.failed.len(), "repair round")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "repair round failed"),
            }
        }
    }

    async fn scrub_worker(self) {
        let period = self.inner.opts.scrub_interval;
        if period.is_zero() {
            return;
        }
        let mut stop = self.inner.stop.subscribe();
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            match self.scrub().await {
                Ok(n) if n > 0 => {
                    let _ = self.repair_round().await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scrub failed"),
            }
        }
    }

    /// Verifies every local block, quarantining corrupt ones (which then count as lost and are
    /// restored by repair). Returns the number of corrupt blocks found.
    pub async fn scrub(&self) -> Result<usize, NodeError> {
        Ok(self.scrub_report().await?.corrupt.len())
    }

    /// [`Node::scrub`], with what it checked. Its `missing` list is left empty: a storage
    /// node holds only its share of each dataset, so blocks absent here are not missing.
    pub async fn scrub_report(&self) -> Result<cairn_repo::ScrubReport, NodeError> {
        let repo = self.inner.repo.clone();
        let mut r = block_on_pool(move || repo.scrub(&|_| {})).await??;
        r.missing.clear();
        if let Ok(mut s) = self.inner.last_scrub.lock() {
            *s = Some(r.corrupt.len());
        }
        Ok(r)
    }

    /// Storage nodes that answer now, with their capacity (this node included).
    pub async fn live_nodes(&self) -> Vec<(PeerId, NodeInfo)> {
        let net = &self.inner.net;
        let mut peers: HashSet<PeerId> = net
            .routing_peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        peers.extend(net.connected_peers().await.unwrap_or_default());
        peers.remove(&self.peer_id());
        let mut out: Vec<(PeerId, NodeInfo)> = stream::iter(peers)
            .map(|p| async move {
                match tokio::time::timeout(INFO_TIMEOUT, net.ctrl(p, CtrlRequest::Info)).await {
                    Ok(Ok(CtrlResponse::Info(i))) if i.capacity > 0 => Some((p, i)),
                    _ => None,
                }
            })
            .buffer_unordered(32)
            .filter_map(|x| async move { x })
            .collect()
            .await;
        if let Ok(mut s) = self.inner.svc.storage_peers.lock() {
            if s.len() >= MAX_STORAGE_PEERS {
                s.clear();
            }
            s.extend(out.iter().map(|x| x.0));
        }
        out.push((self.peer_id(), self.inner.svc.info()));
        if let Some(p) = &self.inner.proofs {
            // a faulty prover's shards count as lost until it passes a window again
            out.retain(|(peer, _)| !p.is_faulty(peer));
        }
        out.sort_by_key(|(p, _)| *p);
        out
    }

    /// For every shard in `cids`: which of `nodes` hold it (verified, not quarantined).
    async fn holders(&self, cids: &[Cid], nodes: &[PeerId]) -> HashMap<Cid, Vec<PeerId>> {
        let me = self.peer_id();
        let net = &self.inner.net;
        let svc = self.inner.svc.clone();
        let owned = cids.to_vec();
        let mine = block_on_pool(move || svc.have(&owned))
            .await
            .unwrap_or_default();
        let mut out: HashMap<Cid, Vec<PeerId>> = HashMap::new();
        for (c, h) in cids.iter().zip(mine) {
            if h {
                out.entry(*c).or_default().push(me);
            }
        }
        let answers: Vec<(PeerId, Vec<Cid>)> =
            stream::iter(nodes.iter().copied().filter(|p| *p != me))
                .map(|p| async move {
                    let mut held = Vec::new();
                    for chunk in cids.chunks(MAX_HAVE) {
                        match net.ctrl(p, CtrlRequest::Have(chunk.to_vec())).await {
                            Ok(CtrlResponse::Have(f)) if f.len() == chunk.len() => held
                                .extend(chunk.iter().zip(f).filter(|(_, f)| *f).map(|(c, _)| *c)),
                            _ => break,
                        }
                    }
                    (p, held)
                })
                .buffer_unordered(32)
                .collect()
                .await;
        for (p, held) in answers {
            for c in held {
                out.entry(c).or_default().push(p);
            }
        }
        out
    }

    /// Imports a file or tree, then spreads each stripe's `k + m` shards over `k + m` distinct
    /// nodes chosen by rendezvous hashing weighted by free capacity, announces them, and
    /// publishes the manifest record.
    pub async fn put(&self, path: &Path) -> Result<PutReport, NodeError> {
        self.put_with(path, &PutOptions::default()).await
    }

    /// [`Node::put`] with the publisher's choice of profile, `k` and `m` (each defaults to the
    /// node's config).
    pub async fn put_with(&self, path: &Path, o: &PutOptions) -> Result<PutReport, NodeError> {
        let name = o.profile.as_deref().unwrap_or(&self.inner.opts.profile);
        let profile = Profile::by_name(name)
            .and_then(|p| {
                let (k, m) = (
                    o.k.unwrap_or(if o.profile.is_some() {
                        p.k
                    } else {
                        self.inner.opts.k
                    }),
                    o.m.unwrap_or(if o.profile.is_some() {
                        p.m
                    } else {
                        self.inner.opts.m
                    }),
                );
                p.with_stripe(k, m)
            })
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        let repo = self.inner.repo.clone();
        let path = path.to_path_buf();
        let rep = block_on_pool(move || repo.put(&path, &profile, &|_| {})).await??;
        let repo = self.inner.repo.clone();
        let mcid = rep.manifest;
        let (m, stripes, head, pages) = block_on_pool(move || {
            let m = repo.manifest(&mcid)?;
            let stripes = repo.stripes(&m)?;
            let head = Block {
                cid: mcid,
                data: repo.block(&mcid)?.into(),
            };
            let mut pages = Vec::new();
            for p in &m.pages {
                pages.push(Block {
                    cid: *p,
                    data: repo.block(p)?.into(),
                });
            }
            Ok::<_, RepoError>((m, stripes, head, pages))
        })
        .await??;
        // the index of a dataset just ingested here
        if let Ok(mut idx) = self.inner.svc.index.lock() {
            idx.remove(&mcid);
        }
        let n = (m.k + m.m) as usize;
        let nodes = self.live_nodes().await;
        let me = self.peer_id();
        let mut report = PutReport {
            root: rep.root.to_string(),
            manifest: mcid.to_string(),
            bytes: rep.bytes,
            blocks: rep.blocks,
            stripes: rep.stripes,
            distributed: false,
            nodes: 1,
            placement: Vec::new(),
        };
        let cands: Vec<Candidate> = nodes
            .iter()
            .map(|(p, i)| Candidate {
                id: p.to_bytes(),
                weight: i.free().max(1),
            })
            .collect();
        let mut plan: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        if nodes.len() >= n {
            for s in &stripes {
                let ranked = rendezvous::rank(&s.data[0].to_bytes(), &cands);
                let shards: Vec<ShardPlacement> = s
                    .shards()
                    .zip(ranked)
                    .map(|(c, i)| {
                        plan.entry(nodes[i].0).or_default().push(*c);
                        ShardPlacement {
                            cid: c.to_string(),
                            holders: vec![nodes[i].0.to_string()],
                        }
                    })
                    .collect();
                report.placement.push(shards);
            }
            let mut manifest_blocks = vec![head.clone()];
            manifest_blocks.extend(pages.iter().cloned());
            let jobs: Vec<(PeerId, Vec<Cid>)> = plan
                .iter()
                .filter(|(p, _)| **p != me)
                .map(|(p, c)| (*p, c.clone()))
                .collect();
            let pushes: Vec<_> = jobs
                .iter()
                .map(|(peer, cids)| self.push_to(*peer, mcid, &manifest_blocks, cids))
                .collect();
            let results = futures::future::join_all(pushes).await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            // every receiver makes what it got durable (one flush each) before this node drops
            // its own copies
            let commits: Vec<_> = jobs
                .iter()
                .map(|(peer, _)| self.commit_on(*peer, mcid, me))
                .collect();
            futures::future::join_all(commits)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()?;
            // keep only what rendezvous assigned to this node (and the manifest)
            let mine: HashSet<Cid> = plan
                .get(&me)
                .map(|v| v.iter().copied().collect())
                .unwrap_or_default();
            let repo = self.inner.repo.clone();
            let drop_list: Vec<Cid> = stripes
                .iter()
                .flat_map(|s| s.shards().copied())
                .filter(|c| !mine.contains(c))
                .collect();
            block_on_pool(move || {
                let mut b = Batch::new();
                for c in &drop_list {
                    b.delete_block(*c);
                }
                repo.store().write(b, Durability::Sync)
            })
            .await??;
            report.distributed = true;
            report.nodes = plan.len();
        } else {
            tracing::warn!(
                reachable = nodes.len(),
                needed = n,
                "fewer nodes than k + m: keeping the whole dataset here until repair can spread it"
            );
            for s in &stripes {
                report.placement.push(
                    s.shards()
                        .map(|c| ShardPlacement {
                            cid: c.to_string(),
                            holders: vec![me.to_string()],
                        })
                        .collect(),
                );
            }
            plan.insert(
                me,
                stripes.iter().flat_map(|s| s.shards().copied()).collect(),
            );
        }
        // what this node keeps of the dataset (its shards, or all of it, and the manifest),
        // and that it is the publisher: the only node whose `Remove` holders honour
        let repo = self.inner.repo.clone();
        let publisher = me.to_bytes();
        let used = block_on_pool(move || {
            let mut b = Batch::new();
            b.put(Table::Publishers, mcid.to_bytes(), publisher);
            repo.store().write(b, Durability::Sync)?;
            stored_bytes(&repo)
        })
        .await??;
        self.inner.svc.used.store(used, Ordering::Relaxed);
        let mut ann = plan.remove(&me).unwrap_or_default();
        ann.push(mcid);
        let _ = self.inner.svc.announce.send(ann).await;
        self.inner.net.publish_manifest(&rep.root, &head).await?;
        Ok(report)
    }

    async fn push_to(
        &self,
        peer: PeerId,
        manifest: Cid,
        manifest_blocks: &[Block],
        cids: &[Cid],
    ) -> Result<(), NodeError> {
        let st = self.inner.net.push(peer, manifest, manifest_blocks).await?;
        check_statuses(peer, manifest_blocks.iter().map(|b| b.cid), &st)?;
        for chunk in cids.chunks(PUSH_BATCH) {
            let repo = self.inner.repo.clone();
            let list = chunk.to_vec();
            let blocks = block_on_pool(move || {
                list.iter()
                    .map(|c| {
                        Ok(Block {
                            cid: *c,
                            data: repo.block(c)?.into(),
                        })
                    })
                    .collect::<Result<Vec<Block>, RepoError>>()
            })
            .await??;
            let st = self.inner.net.push(peer, manifest, &blocks).await?;
            check_statuses(peer, chunk.iter().copied(), &st)?;
        }
        Ok(())
    }

    /// Where every shard of `root`'s dataset is now, by asking the live nodes.
    pub async fn placement(&self, root: &Cid) -> Result<Vec<Vec<ShardPlacement>>, NodeError> {
        let repo = self.inner.repo.clone();
        let root = *root;
        let stripes = block_on_pool(move || {
            let mcid = repo
                .store()
                .table_get(Table::Datasets, &root.to_bytes())?
                .and_then(|v| cid_from_bytes(&v).ok())
                .ok_or(RepoError::Missing(root))?;
            let m = repo.manifest(&mcid)?;
            repo.stripes(&m)
        })
        .await??;
        let nodes: Vec<PeerId> = self.live_nodes().await.into_iter().map(|x| x.0).collect();
        let cids: Vec<Cid> = stripes.iter().flat_map(|s| s.shards().copied()).collect();
        let h = self.holders(&cids, &nodes).await;
        Ok(stripes
            .iter()
            .map(|s| {
                s.shards()
                    .map(|c| ShardPlacement {
                        cid: c.to_string(),
                        holders: h
                            .get(c)
                            .map(|v| v.iter().map(|p| p.to_string()).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .collect())
    }

    /// One repair round over every dataset this node knows: for each stripe with shards that
    /// no live node holds, the live holder with the lowest peer id rebuilds them from any `k`
    /// shards and places them on nodes that hold none of the stripe, chosen by rendezvous.
    pub async fn repair_round(&self) -> Result<RepairRound, NodeError> {
        let _one = self.inner.repair_lock.lock().await;
        let mut round = RepairRound::default();
        let repo = self.inner.repo.clone();
        let (datasets, unreadable) = block_on_pool(move || {
            let load = |mcid: Cid| -> Result<_, RepoError> {
                let m = repo.manifest(&mcid)?;
                let s = repo.stripes(&m)?;
                let mut blocks = vec![Block {
                    cid: mcid,
                    data: repo.block(&mcid)?.into(),
                }];
                for p in &m.pages {
                    blocks.push(Block {
                        cid: *p,
                        data: repo.block(p)?.into(),
                    });
                }
                Ok((m, s, blocks))
            };
            // one unreadable manifest (a peer may have pushed a bad one) must not stop the
            // repair of every other dataset
            let (mut ok, mut bad) = (Vec::new(), Vec::new());
            for (root, mcid) in repo.datasets()? {
                match load(mcid) {
                    Ok(d) => ok.push(d),
                    Err(e) => bad.push(format!("dataset {root}: {e}")),
                }
            }
            Ok::<_, RepoError>((ok, bad))
        })
        .await??;
        // rebalancing never drops a block that is a shard of two stripes (the same bytes twice
        // in a dataset, or in two datasets), nor anything while a manifest is unreadable (its
        // stripes may share blocks too)
        let may_drop = unreadable.is_empty();
        let mut stripes_of: HashMap<Cid, u32> = HashMap::new();
        for (_, stripes, _) in &datasets {
            for s in stripes {
                for c in s.shards().collect::<HashSet<_>>() {
                    *stripes_of.entry(*c).or_default() += 1;
                }
            }
        }
        let shared: HashSet<Cid> = stripes_of
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(c, _)| c)
            .collect();
        round.failed.extend(unreadable);
        let nodes = self.live_nodes().await;
        let ids: Vec<PeerId> = nodes.iter().map(|x| x.0).collect();
        let me = self.peer_id();
        for (m, stripes, manifest_blocks) in datasets {
            let cids: Vec<Cid> = stripes.iter().flat_map(|s| s.shards().copied()).collect();
            let holders = self.holders(&cids, &ids).await;
            let coder = match Coder::new(m.k as usize, m.m as usize) {
                Ok(c) => c,
                Err(e) => {
                    round.failed.push(format!("dataset {}: {e}", m.root));
                    continue;
                }
            };
            for (si, s) in stripes.iter().enumerate() {
                round.stripes += 1;
                let mut stripe_holders: HashSet<PeerId> = HashSet::new();
                for c in s.shards() {
                    stripe_holders.extend(holders.get(c).into_iter().flatten());
                }
                let lost: Vec<usize> = s
                    .shards()
                    .enumerate()
                    .filter(|(_, c)| !holders.contains_key(c))
                    .map(|(i, _)| i)
                    .collect();
                if lost.is_empty() || stripe_holders.iter().min() != Some(&me) {
                    continue;
                }
                round.degraded += 1;
                match self
                    .rebuild(
                        &coder,
                        s,
                        &lost,
                        &holders,
                        &stripe_holders,
                        &nodes,
                        &manifest_blocks,
                    )
                    .await
                {
                    Ok(n) => round.rebuilt += n,
                    Err(e) => round.failed.push(format!("stripe {si} of {}: {e}", m.root)),
                }
            }
            // then spread the stripes that are whole but crowded (after a put on a small
            // network); stripes with lost shards are left to the rebuild above
            self.rebalance(
                m.root,
                &stripes,
                &holders,
                &nodes,
                &manifest_blocks,
                &shared,
                may_drop,
                &mut round,
            )
            .await;
        }
        if round.dropped > 0 {
            let repo = self.inner.repo.clone();
            if let Ok(Ok(used)) = block_on_pool(move || stored_bytes(&repo)).await {
                self.inner.svc.used.store(used, Ordering::Relaxed);
            }
        }
        if let Ok(mut l) = self.inner.last_repair.lock() {
            *l = Some(round.clone());
        }
        Ok(round)
    }

    #[allow(clippy::too_many_arguments)]
    async fn rebuild(
        &self,
        coder: &Coder,
        s: &Stripe,
        lost: &[usize],
        holders: &HashMap<Cid, Vec<PeerId>>,
        stripe_holders: &HashSet<PeerId>,
        nodes: &[(PeerId, NodeInfo)],
        manifest_blocks: &[Block],
    ) -> Result<u64, NodeError> {
        let me = self.peer_id();
        let cids: Vec<Cid> = s.shards().copied().collect();
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; cids.len()];
        let k = coder.k();
        let mut have = k - s.data.len();
        for (i, c) in cids.iter().enumerate() {
            if have >= k {
                break;
            }
            for p in holders.get(c).into_iter().flatten() {
                let got = if *p == me {
                    let repo = self.inner.repo.clone();
                    let c = *c;
                    block_on_pool(move || repo.block(&c).ok()).await?
                } else {
                    self.inner
                        .net
                        .fetch_verified(*p, c)
                        .await
                        .ok()
                        .flatten()
                        .map(|b| b.to_vec())
                };
                if let Some(b) = got {
                    shards[i] = Some(b);
                    have += 1;
                    break;
                }
            }
        }
        coder
            .reconstruct(s, &mut shards)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        // new holders: nodes holding nothing of this stripe, by rendezvous rank
        let free: Vec<&(PeerId, NodeInfo)> = nodes
            .iter()
            .filter(|(p, _)| !stripe_holders.contains(p))
            .collect();
        let cands: Vec<Candidate> = free
            .iter()
            .map(|(p, i)| Candidate {
                id: p.to_bytes(),
                weight: i.free().max(1),
            })
            .collect();
        let ranked = rendezvous::rank(&s.data[0].to_bytes(), &cands);
        if ranked.len() < lost.len() {
            return Err(NodeError::Config(format!(
                "{} shards lost but only {} nodes hold nothing of the stripe",
                lost.len(),
                ranked.len()
            )));
        }
        let mut rebuilt = 0;
        for (&i, &t) in lost.iter().zip(&ranked) {
            let target = free[t].0;
            let block = Block {
                cid: cids[i],
                data: shards[i].take().unwrap_or_default().into(),
            };
            if target == me {
                let mcid = manifest_blocks[0].cid;
                let svc = self.inner.svc.clone();
                let cid = cids[i];
                let publisher = self.publisher_of(mcid).await;
                let ok = block_on_pool(move || {
                    svc.put_block(me, &mcid, block) == PutStatus::Stored
                        && svc.put_done(me, &mcid, &[cid])
                        && svc.commit(me, &mcid, publisher) == Ok(true)
                })
                .await?;
                if !ok {
                    return Err(NodeError::Config(format!(
                        "storing rebuilt shard {} here failed",
                        cids[i]
                    )));
                }
            } else {
                self.push_to_blocks(target, manifest_blocks, vec![block])
                    .await?;
            }
            tracing::info!(shard = %cids[i], to = %target, "rebuilt shard placed");
            rebuilt += 1;
        }
        Ok(rebuilt)
    }

    /// Rebalancing of one dataset ([`crate::rebalance`]): plans every stripe this node holds
    /// some of, copies the shards it leads to nodes that hold nothing of their stripe (up to
    /// [`PUSH_BATCH`] shards per push, read here or fetched verified from a holder), then drops
    /// this node's copies of shards that have a clean holder: the target of a copy confirmed
    /// (pushed and committed) just now, or a peer that still holds exactly that shard of the
    /// stripe and serves bytes that verify. Blocks in `keep` are never dropped, and nothing is
    /// when `may_drop` is false.
    #[allow(clippy::too_many_arguments)]
    async fn rebalance(
        &self,
        root: Cid,
        stripes: &[Stripe],
        holders: &HashMap<Cid, Vec<PeerId>>,
        nodes: &[(PeerId, NodeInfo)],
        manifest_blocks: &[Block],
        keep: &HashSet<Cid>,
        may_drop: bool,
        round: &mut RepairRound,
    ) {
        use crate::rebalance::{plan, Action, Live, StripeView};
        /// Targets pushed to at once: each holds up to `PUSH_BATCH` blocks here in flight.
        const TARGETS_AT_ONCE: usize = 4;
        let me = self.peer_id();
        let live: Vec<Live<PeerId>> = nodes
            .iter()
            .map(|(p, i)| Live {
                id: *p,
                rank_id: p.to_bytes(),
                free: i.free(),
            })
            .collect();
        let mut copies: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        let mut drops: Vec<(usize, Cid, PeerId)> = Vec::new();
        for (si, s) in stripes.iter().enumerate() {
            let cids: Vec<Cid> = s.shards().copied().collect();
            let hs: Vec<Vec<PeerId>> = cids
                .iter()
                .map(|c| holders.get(c).cloned().unwrap_or_default())
                .collect();
            let key = s.data.first().map(|c| c.to_bytes()).unwrap_or_default();
            let view = StripeView {
                key: &key,
                shards: &cids,
                holders: &hs,
                live: &live,
                shard_bytes: s.shard_len() as u64,
            };
            for a in plan(&view, me) {
                match a {
                    Action::Copy { shard, to } => copies.entry(to).or_default().push(shard),
                    Action::Drop { shard, clean } => drops.push((si, shard, clean)),
                }
            }
        }
        let planned: HashSet<(Cid, PeerId)> = copies
            .iter()
            .flat_map(|(to, v)| v.iter().map(move |c| (*c, *to)))
            .collect();
        let results: Vec<(PeerId, Vec<Cid>, Option<String>)> = stream::iter(copies)
            .map(|(to, shards)| async move {
                let mut done = Vec::new();
                for chunk in shards.chunks(PUSH_BATCH) {
                    let mut blocks = Vec::with_capacity(chunk.len());
                    for c in chunk {
                        let mut got: Option<Bytes> = None;
                        for p in holders.get(c).into_iter().flatten() {
                            got = if *p == me {
                                let (repo, c) = (self.inner.repo.clone(), *c);
                                block_on_pool(move || repo.block(&c).ok().map(Bytes::from))
                                    .await
                                    .ok()
                                    .flatten()
                            } else {
                                self.inner.net.fetch_verified(*p, c).await.ok().flatten()
                            };
                            if got.is_some() {
                                break;
                            }
                        }
                        let Some(data) = got else {
                            return (to, done, Some(format!("no holder served {c}")));
                        };
                        blocks.push(Block { cid: *c, data });
                    }
                    if let Err(e) = self.push_to_blocks(to, manifest_blocks, blocks).await {
                        return (to, done, Some(e.to_string()));
                    }
                    done.extend_from_slice(chunk);
                }
                (to, done, None)
            })
            .buffer_unordered(TARGETS_AT_ONCE)
            .collect()
            .await;
        let mut landed: HashSet<(Cid, PeerId)> = HashSet::new();
        for (to, done, err) in results {
            round.moved += done.len() as u64;
            for c in done {
                tracing::info!(shard = %c, %to, "shard moved to a node with none of its stripe");
                landed.insert((c, to));
            }
            if let Some(e) = err {
                round
                    .failed
                    .push(format!("rebalancing {root} onto {to}: {e}"));
            }
        }
        if !may_drop {
            return;
        }
        let mut gone: Vec<Cid> = Vec::new();
        for (si, shard, clean) in drops {
            if keep.contains(&shard) {
                continue;
            }
            let safe = if planned.contains(&(shard, clean)) {
                landed.contains(&(shard, clean))
            } else {
                // a clean holder seen earlier this round: it must still hold exactly this
                // shard of the stripe, and serve it
                let mut seen = HashSet::new();
                let distinct: Vec<Cid> = stripes[si]
                    .shards()
                    .filter(|c| seen.insert(**c))
                    .copied()
                    .collect();
                let only = match self
                    .inner
                    .net
                    .ctrl(clean, CtrlRequest::Have(distinct.clone()))
                    .await
                {
                    Ok(CtrlResponse::Have(f)) if f.len() == distinct.len() => distinct
                        .iter()
                        .zip(&f)
                        .all(|(c, held)| *held == (*c == shard)),
                    _ => false,
                };
                only && matches!(
                    self.inner.net.fetch_verified(clean, &shard).await,
                    Ok(Some(_))
                )
            };
            if safe {
                gone.push(shard);
            }
        }
        if gone.is_empty() {
            return;
        }
        let repo = self.inner.repo.clone();
        let list = gone.clone();
        let deleted = block_on_pool(move || {
            let mut b = Batch::new();
            for c in &list {
                b.delete_block(*c);
            }
            repo.store().write(b, Durability::Sync)
        })
        .await;
        match deleted {
            Ok(Ok(())) => {
                round.dropped += gone.len() as u64;
                for c in &gone {
                    tracing::info!(shard = %c, "local copy dropped: a clean holder has it");
                }
            }
            Ok(Err(e)) => round
                .failed
                .push(format!("rebalancing {root}: dropping local copies: {e}")),
            Err(e) => round
                .failed
                .push(format!("rebalancing {root}: dropping local copies: {e}")),
        }
    }

    async fn push_to_blocks(
        &self,
        peer: PeerId,
        manifest_blocks: &[Block],
        blocks: Vec<Block>,
    ) -> Result<(), NodeError> {
        let mcid = manifest_blocks[0].cid;
        let mut all = manifest_blocks.to_vec();
        all.extend(blocks);
        let st = self.inner.net.push(peer, mcid, &all).await?;
        check_statuses(peer, all.iter().map(|b| b.cid), &st)?;
        let publisher = self.publisher_of(mcid).await;
        self.commit_on(peer, mcid, publisher).await
    }

    /// The recorded publisher of dataset `manifest` (this node when none is recorded).
    async fn publisher_of(&self, manifest: Cid) -> PeerId {
        let repo = self.inner.repo.clone();
        let me = self.peer_id();
        block_on_pool(move || {
            repo.store()
                .table_get(Table::Publishers, &manifest.to_bytes())
                .ok()
                .flatten()
                .and_then(|p| PeerId::from_bytes(&p).ok())
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(me)
    }

    /// Asks `peer` to make what it was pushed of `manifest` durable and keep the dataset.
    async fn commit_on(
        &self,
        peer: PeerId,
        manifest: Cid,
        publisher: PeerId,
    ) -> Result<(), NodeError> {
        match self
            .inner
            .net
            .ctrl(
                peer,
                CtrlRequest::Commit {
                    manifest,
                    publisher,
                },
            )
            .await?
        {
            CtrlResponse::Have(v) if v == [true] => Ok(()),
            CtrlResponse::Error(e) => Err(NodeError::Commit {
                peer,
                manifest,
                reason: e,
            }),
            other => Err(NodeError::Commit {
                peer,
                manifest,
                reason: format!("it answered {other:?}"),
            }),
        }
    }

    /// Takes dataset `root`, which this node published, off the network: every live node
    /// drops its shards and its copy of the manifest (holders honour this only from the
    /// publisher), then this node does. Nodes that are down keep theirs; running it again
    /// when they are back finishes the job, as long as this node still knows the dataset.
    pub async fn remove(&self, root: &Cid) -> Result<RemoveReport, NodeError> {
        let repo = self.inner.repo.clone();
        let (root, me) = (*root, self.peer_id());
        let mcid = block_on_pool(move || -> Result<Cid, NodeError> {
            let mcid = repo
                .store()
                .table_get(Table::Datasets, &root.to_bytes())?
                .and_then(|v| cid_from_bytes(&v).ok())
                .ok_or(RepoError::NotHeld(root))?;
            let publisher = repo
                .store()
                .table_get(Table::Publishers, &mcid.to_bytes())?
                .and_then(|p| PeerId::from_bytes(&p).ok());
            match publisher {
                Some(p) if p == me => Ok(mcid),
                Some(p) => Err(NodeError::Invalid(format!(
                    "{root} was published by {p}, not this node: remove it through that node (with its api.token)"
                ))),
                None => Err(NodeError::Invalid(format!(
                    "this node did not publish {root}: remove it through the node that did (with its api.token)"
                ))),
            }
        })
        .await??;
        let nodes = self.live_nodes().await;
        let net = &self.inner.net;
        let peers: Vec<PeerId> = nodes.iter().map(|x| x.0).filter(|p| *p != me).collect();
        let answers: Vec<(PeerId, Result<CtrlResponse, NetError>)> = stream::iter(peers)
            .map(|p| async move { (p, net.ctrl(p, CtrlRequest::Remove(mcid)).await) })
            .buffer_unordered(32)
            .collect()
            .await;
        let mut report = RemoveReport {
            root: root.to_string(),
            manifest: mcid.to_string(),
            ..RemoveReport::default()
        };
        for (p, a) in answers {
            match a {
                Ok(CtrlResponse::Have(v)) if v == [true] => report.removed_from.push(p.to_string()),
                Ok(CtrlResponse::Have(_)) => report.not_held += 1,
                Ok(CtrlResponse::Error(e)) => report.failed.push(format!("{p}: {e}")),
                Ok(other) => report.failed.push(format!("{p}: answered {other:?}")),
                Err(e) => report.failed.push(format!("{p}: {e}")),
            }
        }
        let svc = self.inner.svc.clone();
        let local = block_on_pool(move || svc.remove(me, &mcid)).await?;
        match local {
            Ok(true) => report.removed_from.push(me.to_string()),
            Ok(false) => report.not_held += 1,
            Err(e) => report.failed.push(format!("{me}: {e}")),
        }
        report.removed_from.sort();
        Ok(report)
    }

    /// The node's state.
    pub async fn status(&self) -> NodeStatus {
        let net = &self.inner.net;
        let repo = self.inner.repo.clone();
        let datasets = block_on_pool(move || repo.datasets().map(|d| d.len()).unwrap_or(0))
            .await
            .unwrap_or(0);
        NodeStatus {
            peer_id: self.peer_id().to_string(),
            addrs: net
                .listen_addrs()
                .await
                .unwrap_or_default()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            capacity: self.inner.opts.capacity,
            used: self.inner.svc.used.load(Ordering::Relaxed),
            datasets,
            peers: net.connected_peers().await.map(|p| p.len()).unwrap_or(0),
            last_repair: self.inner.last_repair.lock().ok().and_then(|l| l.clone()),
            last_scrub_corrupt: self.inner.last_scrub.lock().ok().and_then(|l| *l),
            proofs: self.proof_status(),
        }
    }
}

fn check_statuses(
    peer: PeerId,
    cids: impl Iterator<Item = Cid>,
    st: &[PutStatus],
) -> Result<(), NodeError> {
    for (cid, s) in cids.zip(st) {
        if *s != PutStatus::Stored {
            return Err(NodeError::Push {
                peer,
                cid,
                status: *s,
            });
        }
    }
    Ok(())
}
