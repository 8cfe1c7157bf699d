//! A networked storage node: serves and accepts shards, places a dataset's shards on distinct
//! nodes by weighted rendezvous hashing, announces them in the DHT, and runs scrub and repair
//! workers that restore `k + m` holders per stripe.

use crate::heat::{now_ms, AccessLog, Heat, PeerSpeeds, Speed};
use crate::proving::{GossipMsg, Ledger, ProofOptions, ProofStatus, GOSSIP_QUEUE};
use crate::tier::{FastCache, PromoterState, TierOptions};
use bytes::Bytes;
use cairn_core::block::cid_from_bytes;
use cairn_core::erasure::{Coder, Stripe};
use cairn_core::manifest::Manifest;
use cairn_core::profile::Profile;
use cairn_core::{Block, Cid};
use cairn_net::wire::{CtrlRequest, CtrlResponse, NodeInfo, PutStatus, MAX_HAVE};
use cairn_net::{Keypair, NetClient, NetConfig, NetError, NetEvent, PeerId, Service};
use cairn_repo::store::{Batch, Durability, StoreError, Table};
use cairn_repo::{Repo, RepoError};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

mod access_plan;
mod admit;
mod collect;
mod gateway_host;
mod prover_host;
mod put;
mod repair;
mod service;
mod tier_host;
mod workers;

pub(crate) use crate::error::offload;
pub use crate::error::NodeError;
pub use access_plan::{PlanReport, PlanRequest, MAX_JOB_NAME, MAX_PLAN_BLOCKS, MAX_PLAN_FILES};
pub use collect::CollectReport;

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
    /// Between collection passes of data no dataset, pin or recent push needs (0: only on
    /// demand); a block goes when two passes in a row find it unneeded.
    pub collect_interval: Duration,
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
            collect_interval: Duration::from_secs(3600),
            proofs: None,
            tier: TierOptions::default(),
        }
    }
}

/// Where one shard was placed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardPlacement {
    /// The shard's CID.
    pub cid: String,
    /// Peers holding it.
    pub holders: Vec<String>,
}

/// What `put` through a node did.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Peer id.
    pub peer_id: String,
    /// Listen addresses.
    pub addrs: Vec<String>,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Bytes stored: blocks, and with proofs on the replicas kept and those the unsealed
    /// blocks will need.
    pub used: u64,
    /// Bytes of the blocks held (plain, or only in replicas in replica-only mode).
    #[serde(default)]
    pub blocks_bytes: u64,
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
    /// The daemon's IPFS gateway (`http://host:port`, the bound address), when it serves one.
    /// The node does not know it: the daemon's API fills it in.
    #[serde(default)]
    pub gateway: Option<String>,
}

/// What the node knows of a dataset it holds shards of.
struct DatasetIndex {
    root: Cid,
    pages: HashSet<Cid>,
    /// Every shard -> its stripe's position in `stripes`.
    shards: HashMap<Cid, u32>,
    /// Each stripe's rendezvous key and shard count.
    stripes: Vec<(Vec<u8>, usize)>,
}

/// Peers' plans waiting to be registered at most.
const PEER_PLAN_QUEUE: usize = 16;

/// A plan a peer sent (`CtrlRequest::Plan`), waiting for the worker.
#[derive(Debug, Clone)]
pub(crate) struct PeerPlan {
    pub(crate) from: cairn_net::PeerId,
    pub(crate) root: Cid,
    pub(crate) seed: Option<u64>,
    pub(crate) rate: u64,
}

/// The part of the node that peers talk to.
struct NodeService {
    repo: Arc<Repo>,
    used: AtomicU64,
    capacity: u64,
    index: Mutex<HashMap<Cid, Arc<DatasetIndex>>>,
    announce: mpsc::Sender<Vec<Cid>>,
    proofs: Option<Arc<Ledger>>,
    reads: Arc<AccessLog>,
    cache: Arc<FastCache>,
    /// Storage nodes seen answering `Info`: their block fetches (repair, probes) are not
    /// client reads.
    storage_peers: Mutex<HashSet<PeerId>>,
    /// This node's identity, which signs its answers to auditors.
    key: Keypair,
    /// Uncommitted datasets pushed here -> when their last block came (ms), for collection.
    pushes: Mutex<HashMap<Cid, u64>>,
    /// The live nodes this node saw last, as placement ranks them (push admission).
    view: Mutex<Vec<crate::plan::Live<PeerId>>>,
    /// What each pusher holds here (push admission).
    charges: Mutex<admit::PushCharges>,
    /// Peers' plans for the worker (`access_plan`), and the peers with one waiting.
    plans: mpsc::Sender<PeerPlan>,
    plans_waiting: Mutex<HashMap<PeerId, Cid>>,
    /// The fast peers the fast tier measured last (where plans' copies go).
    fast_now: Arc<Mutex<Vec<PeerId>>>,
    /// Whether the last window found this node fast itself: it then leaves peers' plans to
    /// slow holders.
    self_fast: Arc<std::sync::atomic::AtomicBool>,
    /// Whether this node follows plans (`plan_bytes` > 0).
    follows_plans: bool,
    /// The plans the fast tier follows (readers report their reads into them).
    plan_book: Arc<Mutex<crate::tier::PlanBook>>,
}

/// Storage peers remembered at most (their reads are not counted as client reads).
const MAX_STORAGE_PEERS: usize = 4096;

/// Datasets indexed in memory at once; the index is rebuilt from the store when evicted.
const MAX_INDEXED_DATASETS: usize = 64;
/// How often a node republishes the manifest records of the datasets it holds and re-announces
/// what it holds (Kademlia keeps records and provider records for 36 and 48 hours).
const REPUBLISH_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Announcement batches queued; when full, a batch is dropped and the next reprovide covers it.
const ANNOUNCE_QUEUE: usize = 256;
/// DHT announcements in flight at once.
const ANNOUNCE_PARALLEL: usize = 16;
/// Blocks per push exchange: 8 MiB in flight per receiving peer bounds the publisher's memory.
const PUSH_BATCH: usize = 8;
/// How long a peer may take to answer `Info` before it counts as down.
const INFO_TIMEOUT: Duration = Duration::from_secs(3);

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
    pub(crate) proofs: Option<Arc<Ledger>>,
    pub(crate) repair_now: tokio::sync::Notify,
    pub(crate) seal_lock: tokio::sync::Mutex<()>,
    gossip: mpsc::Sender<GossipMsg>,
    speeds: PeerSpeeds,
    tier: PromoterState,
    /// Puts ingesting now (collection waits for none).
    ingesting: std::sync::atomic::AtomicUsize,
    /// What the last collection pass found unneeded.
    collect_prev: Mutex<HashSet<Cid>>,
    /// The gateway's memory of the datasets it serves (`gateway_host`).
    gateway_memo: crate::gateway::DatasetMemo,
}

/// Live nodes as the plans rank them: rendezvous id and free bytes, capped by what each has
/// proven when proofs are on ([`crate::plan::weight`]).
fn live_of(
    nodes: &[(PeerId, NodeInfo)],
    proofs: Option<&Ledger>,
) -> Vec<crate::plan::Live<PeerId>> {
    nodes
        .iter()
        .map(|(p, i)| crate::plan::Live {
            id: *p,
            rank_id: p.to_bytes(),
            free: crate::plan::weight(i.free(), proofs.map(|l| l.proven_bytes(p))),
        })
        .collect()
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
        // replica-only: sealed blocks are read back from their replicas; a repo that ran in
        // that mode keeps reading them so, whatever the mode now (without the wrapper its
        // replica-held blocks would look gone, and their sectors would be retired and freed)
        let held = repo
            .store()
            .table_scan_from(Table::InReplica, &[], 1)
            .map(|r| !r.is_empty())?;
        let repo = match &opts.proofs {
            Some(po) if po.replica_only || held => {
                let params = po.params;
                repo.map_store(|s| Box::new(crate::proving::ReplicaStore::new(s, params)))
            }
            _ => repo,
        };
        let repo = Arc::new(repo);
        let r2 = repo.clone();
        let used = offload(move || stored_bytes(&r2)).await??;
        let (ann_tx, ann_rx) = mpsc::channel(ANNOUNCE_QUEUE);
        let proofs = match opts.proofs.clone() {
            None => None,
            Some(po) => {
                let (r3, me) = (repo.clone(), key.public().to_peer_id());
                Some(Arc::new(
                    offload(move || Ledger::open(r3, me, po))
                        .await?
                        .map_err(|e| NodeError::Proofs(e.to_string()))?,
                ))
            }
        };
        let (r4, cache_bytes) = (repo.clone(), opts.tier.cache_bytes);
        let cache = Arc::new(offload(move || FastCache::open(r4, cache_bytes)).await??);
        let tier = PromoterState::new(opts.tier.clone());
        let (plan_tx, plan_rx) = mpsc::channel(PEER_PLAN_QUEUE);
        let svc = Arc::new(NodeService {
            plans: plan_tx,
            plans_waiting: Mutex::new(HashMap::new()),
            fast_now: tier.fast_list(),
            self_fast: tier.self_fast_flag(),
            plan_book: tier.plan_book(),
            follows_plans: opts.tier.plan_bytes > 0,
            cache,
            storage_peers: Mutex::new(HashSet::new()),
            repo: repo.clone(),
            used: AtomicU64::new(used),
            capacity: opts.capacity,
            index: Mutex::new(HashMap::new()),
            announce: ann_tx,
            proofs: proofs.clone(),
            reads: Arc::new(AccessLog::default()),
            key: key.clone(),
            pushes: Mutex::new(HashMap::new()),
            view: Mutex::new(Vec::new()),
            charges: Mutex::new(admit::PushCharges::default()),
        });
        let s2 = svc.clone();
        offload(move || s2.recount_pushes()).await??;
        let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_QUEUE);
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
                ingesting: std::sync::atomic::AtomicUsize::new(0),
                collect_prev: Mutex::new(HashSet::new()),
                gateway_memo: crate::gateway::DatasetMemo::default(),
            }),
        };
        node.republish_records().await;
        let tasks = vec![
            tokio::spawn(node.clone().announcer(ann_rx)),
            tokio::spawn(node.clone().reprovide()),
            tokio::spawn(node.clone().repair_worker(events)),
            tokio::spawn(node.clone().scrub_worker()),
            tokio::spawn(node.clone().collect_worker()),
            tokio::spawn(node.clone().seal_worker()),
            tokio::spawn(node.clone().audit_worker()),
            tokio::spawn(node.clone().gossip_worker(gossip_rx)),
            tokio::spawn(node.clone().placement_worker()),
            tokio::spawn(node.clone().prefetch_worker()),
            tokio::spawn(node.clone().peer_plan_worker(plan_rx)),
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
        self.inner
            .svc
            .set_view(live_of(&out, self.inner.proofs.as_deref()));
        out
    }

    /// For every shard in `cids`: which of `nodes` hold it (verified, not quarantined).
    async fn holders(&self, cids: &[Cid], nodes: &[PeerId]) -> HashMap<Cid, Vec<PeerId>> {
        self.holders_and_lagging(cids, nodes).await.0
    }

    /// [`Self::holders`], and the peers that say they hold one of `cids` but do not count as
    /// its holder (proofs on: no sealed sector lists it and its grace period is over). Repair
    /// places nothing on those: they are behind on sealing, or keep what they are given
    /// without proving it.
    async fn holders_and_lagging(
        &self,
        cids: &[Cid],
        nodes: &[PeerId],
    ) -> (HashMap<Cid, Vec<PeerId>>, HashSet<PeerId>) {
        let me = self.peer_id();
        let net = &self.inner.net;
        let svc = self.inner.svc.clone();
        let owned = cids.to_vec();
        let mine = offload(move || svc.have(&owned)).await.unwrap_or_default();
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
        // with proofs on, a claim counts only once a sealed sector of the peer lists the
        // block (or while its grace period lasts): storage bound to assignment
        let mut lagging = HashSet::new();
        if let Some(l) = self.inner.proofs.as_deref() {
            for (c, ps) in out.iter_mut() {
                ps.retain(|p| {
                    let counts = l.counts_as_holder(p, c);
                    if !counts {
                        lagging.insert(*p);
                    }
                    counts
                });
            }
            out.retain(|_, ps| !ps.is_empty());
        }
        (out, lagging)
    }

    /// The node's state.
    pub async fn status(&self) -> NodeStatus {
        let net = &self.inner.net;
        let repo = self.inner.repo.clone();
        let datasets = offload(move || repo.datasets().map(|d| d.len()).unwrap_or(0))
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
            used: self.inner.svc.disk_use(),
            blocks_bytes: self.inner.svc.used.load(Ordering::Relaxed),
            datasets,
            peers: net.connected_peers().await.map(|p| p.len()).unwrap_or(0),
            last_repair: self.inner.last_repair.lock().ok().and_then(|l| l.clone()),
            last_scrub_corrupt: self.inner.last_scrub.lock().ok().and_then(|l| *l),
            proofs: self.proof_status(),
            gateway: None,
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
