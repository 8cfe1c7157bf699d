//! The fast tier in the network (design §4): hot shards are copied to fast peers, cold copies
//! are dropped, and the erasure-coded base placement never changes.
//!
//! Two roles, which every node plays:
//!
//! - **Promoter** (a shard's base holder). Each window ([`Node::placement_window`]) it
//!   1. probes every storage peer's throughput with a timed, verified fetch of a shard the peer
//!      holds (RTT comes from pings), and calls *fast* the peers whose estimated time to fetch
//!      1 MiB is at most half the median over the peers it measured;
//!   2. asks each fast peer how often the copies it promoted there were read
//!      ([`cairn_net::wire::CtrlRequest::Cached`]) and counts those reads as its own, so a shard
//!      served from the fast tier stays hot; copies the peer no longer has are forgotten;
//!   3. feeds the reads clients made since the last window to the placement engine
//!      ([`cairn_placement::engine::Engine`], capacity `promote_bytes`);
//!   4. plans: the shards to keep promoted are the engine's residents that were read at least
//!      `min_reads` times and within `idle_windows` windows, hottest first, up to
//!      `promote_bytes`; promotions are taken in that order up to `budget_bytes` per window;
//!      every other promoted copy is demoted;
//!   5. executes: a promotion pushes the shard to the fastest fast peer that accepts it
//!      ([`cairn_net::wire::StreamRequest::Cache`]), a demotion asks the peer to drop it
//!      ([`cairn_net::wire::CtrlRequest::Uncache`]). Both are recorded (table `promoted`, and a
//!      bounded history of moves).
//! - **Fast node**: it keeps promoted copies apart from its base blocks (tables `cache` and
//!   `cache_index`, at most `cache_bytes`), serves them like any block, counts their reads,
//!   announces them in the DHT, and drops them when their promoter asks or when neither a
//!   read nor their promoter has touched them for [`ORPHAN_WINDOWS`] windows. Promoted copies
//!   never answer `Have`, so repair and proofs never count them as holders.
//!
//! Reads are counted only when a client asks: block fetches by storage peers (repair, probes)
//! are not accesses.

use crate::error::{offload, NodeError};
use crate::heat::{now_ms, Heat, Read, Speed};
use bytes::Bytes;
use cairn_core::block::cid_from_bytes;
use cairn_core::{Block, Cid};
use cairn_net::wire::{CtrlRequest, CtrlResponse, NodeInfo, PutStatus, MAX_CACHED};
use cairn_net::{NetClient, PeerId};
use cairn_placement::engine::Engine;
use cairn_placement::policy::Policy;
use cairn_placement::trace::Request;
use cairn_repo::store::{Batch, Durability, Table};
use cairn_repo::Repo;
use futures::StreamExt;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod access;
mod plan;
mod record;
mod windows;

pub use record::{CacheEntry, Promotion, RecordError};

/// A fast peer's estimated 1 MiB fetch time is at most this share of the median.
pub const FAST_RATIO: f64 = 0.5;
/// Moves remembered for `placement status`.
pub const MOVE_HISTORY: usize = 256;
/// A promoted copy that neither a read nor its promoter touched for this many windows is
/// dropped by the node holding it (its promoter is gone).
pub const ORPHAN_WINDOWS: u64 = 10;
/// Shard CIDs offered to a peer per probe (`Have`), to find one it holds.
const PROBE_SAMPLE: usize = 256;
/// Peers probed per window at most (the rest in later windows, round robin).
const PROBES_PER_WINDOW: usize = 32;
/// Probes in flight at once (few, so that they measure the peer, not each other).
const PROBES_AT_ONCE: usize = 4;
/// How long a probe fetch may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most reads one `Cached` answer may add to a shard per window (a lying fast peer cannot
/// inflate a shard's heat without bound).
const MAX_REPORTED_READS: u64 = 100_000;

/// Fast-tier settings of a node.
#[derive(Debug, Clone)]
pub struct TierOptions {
    /// Run a placement window every `window` on a timer (else only when asked).
    pub auto: bool,
    /// Window length.
    pub window: Duration,
    /// Bytes of this node's shards that may be promoted at once (the engine's capacity).
    pub promote_bytes: u64,
    /// Bytes promoted per window at most.
    pub budget_bytes: u64,
    /// Bytes of promoted copies kept here for peers.
    pub cache_bytes: u64,
    /// Reads a shard needs before it may be promoted.
    pub min_reads: u64,
    /// Windows without a read after which a promoted shard is demoted.
    pub idle_windows: u64,
}

impl Default for TierOptions {
    fn default() -> Self {
        TierOptions {
            auto: false,
            window: Duration::from_secs(60),
            promote_bytes: 1 << 30,
            budget_bytes: 256 << 20,
            cache_bytes: 1 << 30,
            min_reads: 2,
            idle_windows: 3,
        }
    }
}

/// One executed or attempted move.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Move {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Window number (this node's count).
    pub window: u64,
    /// `promote`, `demote` or `lost` (the fast peer no longer had the copy).
    pub kind: &'static str,
    /// The shard.
    pub cid: String,
    /// The fast peer.
    pub peer: String,
    /// Bytes.
    pub bytes: u64,
    /// Whether it was done.
    pub ok: bool,
    /// Why it failed, or why it was made.
    pub reason: String,
}

/// A peer the tier measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerSpeedReport {
    /// The peer.
    pub peer: String,
    /// Smoothed RTT in ms.
    pub rtt_ms: f64,
    /// Smoothed throughput in MB/s (0 until probed).
    pub throughput_mbps: f64,
    /// Estimated time to fetch 1 MiB, ms.
    pub mib_ms: Option<f64>,
    /// Whether it counts as fast now.
    pub fast: bool,
}

/// What one placement window did.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct WindowReport {
    /// Window number (this node's count).
    pub window: u64,
    /// When it ran, ms since the Unix epoch.
    pub at_ms: u64,
    /// Client reads fed to the engine.
    pub reads: usize,
    /// Reads served by promoted copies, reported by fast peers.
    pub fast_reads: u64,
    /// Peers probed for throughput.
    pub probed: usize,
    /// Fast peers, fastest first.
    pub fast_peers: Vec<String>,
    /// Shards the plan keeps promoted (bytes).
    pub planned_bytes: u64,
    /// Promotions planned (shard CIDs).
    pub planned_promotions: Vec<String>,
    /// Demotions planned (shard CIDs).
    pub planned_demotions: Vec<String>,
    /// Promotions done.
    pub promoted: usize,
    /// Demotions done.
    pub demoted: usize,
    /// Bytes copied to fast peers.
    pub bytes_promoted: u64,
    /// Moves that failed, with the reason.
    pub failed: Vec<String>,
    /// Why nothing could be promoted, if so.
    pub note: Option<String>,
    /// Models the engine has trained so far.
    pub engine_trainings: u64,
    /// Shards whose history the engine tracks.
    pub engine_tracked: usize,
}

struct State {
    engine: Engine,
    /// Engine ids of the shards read here (bounded by the access log's tracking).
    ids: HashMap<u64, Cid>,
    seq: u64,
    window: u64,
    last: Option<WindowReport>,
    moves: VecDeque<Move>,
    probe_turn: usize,
}

/// One window's bookkeeping: its report, its moves and the `promoted` table updates.
struct Pass {
    now: u64,
    window: u64,
    report: WindowReport,
    moves: Vec<Move>,
    updates: Batch,
}

impl Pass {
    fn record(
        &mut self,
        kind: &'static str,
        cid: &Cid,
        peer: Option<PeerId>,
        bytes: u64,
        ok: bool,
        reason: String,
    ) {
        self.moves.push(Move {
            at_ms: self.now,
            window: self.window,
            kind,
            cid: cid.to_string(),
            peer: peer.map(|p| p.to_string()).unwrap_or_default(),
            bytes,
            ok,
            reason,
        });
    }
}

/// The promoter's side: engine and history.
pub(crate) struct PromoterState {
    pub(crate) opts: TierOptions,
    state: Mutex<State>,
    lock: tokio::sync::Mutex<()>,
}

impl PromoterState {
    pub(crate) fn new(opts: TierOptions) -> Self {
        PromoterState {
            state: Mutex::new(State {
                engine: Engine::new(opts.promote_bytes.max(1)),
                ids: HashMap::new(),
                seq: 0,
                window: 0,
                last: None,
                moves: VecDeque::new(),
                probe_turn: 0,
            }),
            opts,
            lock: tokio::sync::Mutex::new(()),
        }
    }
}

impl PromoterState {
    pub(crate) fn seq(&self) -> u64 {
        self.state.lock().map(|s| s.seq).unwrap_or(0)
    }

    fn next_probe_turn(&self) -> usize {
        self.state
            .lock()
            .map(|mut s| {
                s.probe_turn += 1;
                s.probe_turn - 1
            })
            .unwrap_or(0)
    }
}

/// The engine's id of a shard.
fn engine_id(cid: &Cid) -> u64 {
    let h = blake3::hash(&cid.to_bytes());
    let mut a = [0u8; 8];
    a.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(a)
}

/// The fast node's side: promoted copies kept here for peers.
pub(crate) struct FastCache {
    repo: Arc<Repo>,
    capacity: u64,
    used: AtomicU64,
    /// Bytes held per promoter: one may use at most half the capacity, so a single peer cannot
    /// take the whole fast tier.
    by_promoter: Mutex<HashMap<PeerId, u64>>,
    /// Per copy: reads served since this process started, and when a read or its promoter
    /// last touched it.
    touched: Mutex<HashMap<Cid, (u32, u64)>>,
}

impl FastCache {
    /// Opens the cache of `repo`, counting the bytes it holds.
    pub(crate) fn open(repo: Arc<Repo>, capacity: u64) -> Result<Self, NodeError> {
        let mut used = 0;
        let mut touched = HashMap::new();
        let mut by_promoter: HashMap<PeerId, u64> = HashMap::new();
        let now = now_ms();
        for (k, v) in repo.store().table_scan(Table::CacheIndex)? {
            match (cid_from_bytes(&k), CacheEntry::decode(&v)) {
                (Ok(c), Ok(e)) => {
                    used += e.size;
                    *by_promoter.entry(e.promoter).or_default() += e.size;
                    touched.insert(c, (0, now));
                }
                _ => tracing::warn!("skipping a malformed cache record"),
            }
        }
        Ok(FastCache {
            repo,
            capacity,
            used: AtomicU64::new(used),
            by_promoter: Mutex::new(by_promoter),
            touched: Mutex::new(touched),
        })
    }

    fn entry(&self, cid: &Cid) -> Option<CacheEntry> {
        let v = self
            .repo
            .store()
            .table_get(Table::CacheIndex, &cid.to_bytes())
            .ok()??;
        CacheEntry::decode(&v).ok()
    }

    /// A promoted copy's bytes, verified; counts the read.
    pub(crate) fn get(&self, cid: &Cid) -> Option<Bytes> {
        let v = self
            .repo
            .store()
            .table_get(Table::Cache, &cid.to_bytes())
            .ok()??;
        if Block::verify(cid, &v).is_err() {
            tracing::warn!(%cid, "a promoted copy is corrupt; dropping it");
            self.drop_copies(&[*cid]);
            return None;
        }
        if let Ok(mut t) = self.touched.lock() {
            let e = t.entry(*cid).or_insert((0, 0));
            e.0 = e.0.saturating_add(1);
            e.1 = now_ms();
        }
        Some(Bytes::from(v))
    }

    /// Per CID: the reads served by its promoted copy, if held. Asking marks the copies as
    /// still wanted when `from` is their promoter.
    pub(crate) fn cached(&self, from: PeerId, cids: &[Cid]) -> Vec<Option<u32>> {
        let now = now_ms();
        cids.iter()
            .map(|c| {
                let e = self.entry(c)?;
                let mut t = self.touched.lock().ok()?;
                let x = t.entry(*c).or_insert((0, now));
                if e.promoter == from {
                    x.1 = now;
                }
                Some(x.0)
            })
            .collect()
    }

    /// Keeps `block` for `from`, unless the capacity is used up: one promoter may use half of
    /// it, and promoters that have not `proven` storage (no verified sealed sector; always
    /// true when proofs are off) a quarter of it together, so identities that cost nothing
    /// cannot fill the fast tier.
    pub(crate) fn put(
        &self,
        from: PeerId,
        block: Block,
        proven: &dyn Fn(&PeerId) -> bool,
    ) -> PutStatus {
        if self.entry(&block.cid).is_some() {
            return PutStatus::Stored;
        }
        let len = block.data.len() as u64;
        let (theirs, unproven) = self
            .by_promoter
            .lock()
            .map(|m| {
                let unproven: u64 = m.iter().filter(|(p, _)| !proven(p)).map(|(_, b)| b).sum();
                (m.get(&from).copied().unwrap_or(0), unproven)
            })
            .unwrap_or((u64::MAX, u64::MAX));
        if self.used.load(Ordering::Relaxed) + len > self.capacity
            || theirs.saturating_add(len) > self.capacity / 2
            || (!proven(&from) && unproven.saturating_add(len) > self.capacity / 4)
        {
            return PutStatus::NoSpace;
        }
        let key = block.cid.to_bytes();
        let e = CacheEntry {
            promoter: from,
            at_ms: now_ms(),
            size: len,
        };
        let mut b = Batch::new();
        b.put(Table::Cache, key.clone(), block.data.to_vec()).put(
            Table::CacheIndex,
            key,
            e.encode(),
        );
        match self.repo.store().write(b, Durability::Deferred) {
            Ok(()) => {
                self.used.fetch_add(len, Ordering::Relaxed);
                if let Ok(mut m) = self.by_promoter.lock() {
                    *m.entry(from).or_default() += len;
                }
                if let Ok(mut t) = self.touched.lock() {
                    t.insert(block.cid, (0, e.at_ms));
                }
                PutStatus::Stored
            }
            Err(e) => {
                tracing::error!(cid = %block.cid, error = %e, "storing a promoted copy failed");
                PutStatus::Failed
            }
        }
    }

    /// Drops the copies `from` promoted, of those in `cids`; true for each dropped.
    pub(crate) fn uncache(&self, from: PeerId, cids: &[Cid]) -> Vec<bool> {
        let mine: Vec<bool> = cids
            .iter()
            .map(|c| self.entry(c).is_some_and(|e| e.promoter == from))
            .collect();
        let drop: Vec<Cid> = cids
            .iter()
            .zip(&mine)
            .filter(|(_, m)| **m)
            .map(|(c, _)| *c)
            .collect();
        if self.drop_copies(&drop) {
            mine
        } else {
            vec![false; cids.len()]
        }
    }

    fn drop_copies(&self, cids: &[Cid]) -> bool {
        if cids.is_empty() {
            return true;
        }
        let mut freed = 0;
        let mut owners: Vec<(PeerId, u64)> = Vec::new();
        let mut b = Batch::new();
        for c in cids {
            if let Some(e) = self.entry(c) {
                freed += e.size;
                owners.push((e.promoter, e.size));
            }
            b.delete(Table::Cache, c.to_bytes())
                .delete(Table::CacheIndex, c.to_bytes());
        }
        match self.repo.store().write(b, Durability::Sync) {
            Ok(()) => {
                let used = self.used.load(Ordering::Relaxed);
                self.used
                    .store(used.saturating_sub(freed), Ordering::Relaxed);
                if let Ok(mut m) = self.by_promoter.lock() {
                    for (p, n) in owners {
                        if let Some(x) = m.get_mut(&p) {
                            *x = x.saturating_sub(n);
                            if *x == 0 {
                                m.remove(&p);
                            }
                        }
                    }
                }
                if let Ok(mut t) = self.touched.lock() {
                    for c in cids {
                        t.remove(c);
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "dropping promoted copies failed");
                false
            }
        }
    }

    /// Drops copies that neither a read nor their promoter touched since `before_ms`.
    pub(crate) fn expire(&self, before_ms: u64) -> usize {
        let stale: Vec<Cid> = self
            .touched
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|(_, (_, last))| *last < before_ms)
                    .map(|(c, _)| *c)
                    .collect()
            })
            .unwrap_or_default();
        if !stale.is_empty() && self.drop_copies(&stale) {
            tracing::info!(
                copies = stale.len(),
                "dropped promoted copies nobody read or claimed"
            );
        }
        stale.len()
    }

    /// Every copy held here: CID, record, reads served.
    pub(crate) fn list(&self) -> Vec<(Cid, CacheEntry, u32)> {
        let touched = self.touched.lock().map(|t| t.clone()).unwrap_or_default();
        self.repo
            .store()
            .table_scan(Table::CacheIndex)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| {
                let c = cid_from_bytes(&k).ok()?;
                let e = CacheEntry::decode(&v).ok()?;
                Some((c, e, touched.get(&c).map_or(0, |x| x.0)))
            })
            .collect()
    }

    /// Bytes held.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Capacity in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }
}

/// This node's promotions, from table `promoted`.
fn load_promotions(repo: &Repo) -> Result<HashMap<Cid, Promotion>, NodeError> {
    let mut out = HashMap::new();
    for (k, v) in repo.store().table_scan(Table::Promoted)? {
        match (cid_from_bytes(&k), Promotion::decode(&v)) {
            (Ok(c), Ok(p)) => {
                out.insert(c, p);
            }
            _ => tracing::warn!("skipping a malformed promotion record"),
        }
    }
    Ok(out)
}

/// Shards of the datasets this node knows with their sizes, largest first (at most `cap`): a
/// probe fetches the largest one a peer holds, so it measures throughput, not latency.
fn probe_candidates(repo: &Repo, cap: usize) -> Vec<(Cid, u64)> {
    let mut out = Vec::new();
    'all: for (_, mcid) in repo.datasets().unwrap_or_default() {
        let Ok(m) = repo.manifest(&mcid) else {
            continue;
        };
        for s in repo.stripes(&m).unwrap_or_default() {
            let len = s.shard_len() as u64;
            let sizes = s.lens.iter().copied().chain(s.parity.iter().map(|_| len));
            for (c, n) in s.shards().zip(sizes) {
                if out.len() >= cap {
                    break 'all;
                }
                out.push((*c, n));
            }
        }
    }
    out.sort_by_key(|x| std::cmp::Reverse(x.1));
    out
}

/// Whether `cid` is a shard stored here in the base placement (not a manifest block, not a
/// promoted copy).
fn base_shard(repo: &Repo, cid: &Cid) -> bool {
    repo.store().has(cid).unwrap_or(false)
        && !matches!(
            repo.store().table_get(Table::Manifests, &cid.to_bytes()),
            Ok(Some(_))
        )
}

/// State of the fast tier on this node, for `placement status`.
#[derive(Debug, Clone, Serialize)]
pub struct TierStatus {
    /// Windows run.
    pub windows: u64,
    /// Window length in seconds.
    pub window_secs: u64,
    /// Whether windows run on a timer.
    pub auto: bool,
    /// Peers with measurements, fastest first.
    pub peers: Vec<PeerSpeedReport>,
    /// This node's shards promoted to fast peers: CID, peer, bytes, reads there.
    pub promoted: Vec<serde_json::Value>,
    /// Copies kept here for peers: CID, promoter, bytes, reads served.
    pub cached: Vec<serde_json::Value>,
    /// Bytes of copies kept here, and the capacity.
    pub cache_used: u64,
    /// Capacity for copies kept here.
    pub cache_capacity: u64,
    /// The last window's plan and outcome.
    pub last_window: Option<WindowReport>,
    /// The latest moves, newest last.
    pub moves: Vec<Move>,
}

/// What the fast tier needs from the node it runs in ([`crate::node::Node`] implements it): its
/// network, repo, read counts, measured peer speeds, the prover's faulty set and the stop
/// signal. The tier's windows run on [`FastTier`] over it, so this file does not know the node.
pub(crate) trait TierHost: Send + Sync + 'static {
    /// The network client.
    fn net(&self) -> &NetClient;
    /// The repo.
    fn shared_repo(&self) -> Arc<Repo>;
    /// The tier's own state.
    fn tier(&self) -> &PromoterState;
    /// The copies kept here for peers.
    fn cache(&self) -> Arc<FastCache>;
    /// Peers' measured speeds.
    fn peer_speeds(&self) -> Vec<(PeerId, Speed)>;
    /// Records a timed block fetch from `peer`.
    fn record_probe(&self, peer: PeerId, bytes: u64, dt: Duration);
    /// The `n` hottest shards read here.
    fn hot_shards(&self, n: usize) -> Vec<(Cid, Heat, f64)>;
    /// Reads of `cid` served here lately.
    fn shard_reads(&self, cid: &Cid) -> u64;
    /// Records `n` reads of `cid` (reported by the holder of a promoted copy).
    fn record_reads(&self, cid: Cid, size: u64, n: u64, at_ms: u64);
    /// Reads recorded after `seq`, and the new sequence number.
    fn reads_since(&self, seq: u64) -> (Vec<Read>, u64);
    /// Peers the prover counts as faulty (never fast).
    fn faulty_peers(&self) -> Vec<PeerId>;
    /// Changes to `true` when the node stops.
    fn stop_signal(&self) -> watch::Receiver<bool>;
    /// The storage nodes reachable now, with what they said about themselves.
    fn live_nodes(&self) -> impl std::future::Future<Output = Vec<(PeerId, NodeInfo)>> + Send;
}

/// The fast tier's windows, probes and status, run over a [`TierHost`].
pub(crate) struct FastTier<H>(pub(crate) H);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_to_its_capacity_and_drops_only_for_the_promoter() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Arc::new(Repo::open(dir.path()).unwrap());
        let cache = FastCache::open(repo.clone(), 100).unwrap();
        let (a, b) = (PeerId::random(), PeerId::random());
        let blk = |i: u8, n: usize| {
            Block::new(
                cairn_core::block::HashAlg::Blake3,
                cairn_core::block::RAW,
                vec![i; n],
            )
        };
        let (x, y, z) = (blk(1, 50), blk(2, 40), blk(3, 30));
        // one promoter may use half the capacity
        assert_eq!(cache.put(a, blk(4, 51), &|_| true), PutStatus::NoSpace);
        assert_eq!(cache.put(a, x.clone(), &|_| true), PutStatus::Stored);
        assert_eq!(cache.put(b, y.clone(), &|_| true), PutStatus::Stored);
        assert_eq!(cache.put(a, z.clone(), &|_| true), PutStatus::NoSpace);
        assert_eq!(cache.put(b, z.clone(), &|_| true), PutStatus::NoSpace); // 120 > 100
        assert_eq!(cache.used(), 90);
        assert_eq!(cache.get(&x.cid).as_deref(), Some(&x.data[..]));
        assert_eq!(cache.get(&z.cid), None);
        assert_eq!(
            cache.cached(a, &[x.cid, y.cid, z.cid]),
            vec![Some(1), Some(0), None]
        );
        // a peer cannot drop another's copy
        assert_eq!(cache.uncache(b, &[x.cid, y.cid]), vec![false, true]);
        assert_eq!(cache.used(), 50);
        assert_eq!(cache.put(b, z.clone(), &|_| true), PutStatus::Stored);
        assert_eq!(cache.uncache(b, &[z.cid]), vec![true]);
        // reopening counts what is held, per promoter too
        drop(cache);
        let cache = FastCache::open(repo, 100).unwrap();
        assert_eq!(cache.used(), 50);
        assert_eq!(cache.put(a, blk(5, 1), &|_| true), PutStatus::NoSpace);
        assert_eq!(cache.list().len(), 1);
        assert_eq!(cache.expire(u64::MAX), 1);
        assert_eq!(cache.used(), 0);
        assert_eq!(cache.get(&x.cid), None);
        // promoters with no proven storage share a quarter of the capacity
        let (c, d) = (PeerId::random(), PeerId::random());
        let proven = |p: &PeerId| *p != c && *p != d;
        assert_eq!(cache.put(c, blk(6, 26), &proven), PutStatus::NoSpace);
        assert_eq!(cache.put(c, blk(6, 20), &proven), PutStatus::Stored);
        assert_eq!(cache.put(d, blk(7, 10), &proven), PutStatus::NoSpace);
        // a proven promoter is not held back by them
        assert_eq!(cache.put(a, blk(8, 40), &proven), PutStatus::Stored);
    }
}
