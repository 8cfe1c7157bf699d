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

use crate::heat::now_ms;
use crate::node::{block_on_pool, Node, NodeError};
use bytes::Bytes;
use cairn_core::block::cid_from_bytes;
use cairn_core::{Block, Cid};
use cairn_net::wire::{CtrlRequest, CtrlResponse, PutStatus, MAX_CACHED};
use cairn_net::PeerId;
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
/// Record format version of `promoted` and `cache_index` values.
const RECORD_VERSION: u8 = 1;

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

/// A shard this node promoted (table `promoted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    /// The fast peer holding the copy.
    pub peer: PeerId,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Bytes.
    pub size: u64,
    /// Reads of the copy the peer reported so far.
    pub reads_seen: u32,
}

/// A promoted copy kept here for a peer (table `cache_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheEntry {
    /// The peer that promoted it.
    pub promoter: PeerId,
    /// When it arrived, ms since the Unix epoch.
    pub at_ms: u64,
    /// Bytes.
    pub size: u64,
}

/// A malformed stored record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {0} record")]
pub struct RecordError(&'static str);

fn put_peer(out: &mut Vec<u8>, p: &PeerId) {
    let b = p.to_bytes();
    out.push(b.len() as u8);
    out.extend_from_slice(&b);
}

struct Cursor<'a>(&'a [u8], &'static str);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError(self.1));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }
    fn head(&mut self) -> Result<PeerId, RecordError> {
        if self.take(1)? != [RECORD_VERSION] {
            return Err(RecordError(self.1));
        }
        let n = self.take(1)?[0] as usize;
        let b = self.take(n)?;
        match PeerId::from_bytes(b) {
            // one encoding per record
            Ok(p) if p.to_bytes() == b => Ok(p),
            _ => Err(RecordError(self.1)),
        }
    }
    fn end(self) -> Result<(), RecordError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(RecordError(self.1))
        }
    }
}

impl Promotion {
    /// `version (1) | peer length (1) | peer id | at_ms (u64 BE) | size (u64 BE) |
    /// reads_seen (u32 BE)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![RECORD_VERSION];
        put_peer(&mut v, &self.peer);
        v.extend_from_slice(&self.at_ms.to_be_bytes());
        v.extend_from_slice(&self.size.to_be_bytes());
        v.extend_from_slice(&self.reads_seen.to_be_bytes());
        v
    }

    /// Decodes [`Promotion::encode`]'s bytes; anything else is an error.
    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        let mut c = Cursor(b, "promotion");
        let p = Promotion {
            peer: c.head()?,
            at_ms: c.u64()?,
            size: c.u64()?,
            reads_seen: c.u32()?,
        };
        c.end()?;
        Ok(p)
    }
}

impl CacheEntry {
    /// `version (1) | peer length (1) | promoter peer id | at_ms (u64 BE) | size (u64 BE)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![RECORD_VERSION];
        put_peer(&mut v, &self.promoter);
        v.extend_from_slice(&self.at_ms.to_be_bytes());
        v.extend_from_slice(&self.size.to_be_bytes());
        v
    }

    /// Decodes [`CacheEntry::encode`]'s bytes; anything else is an error.
    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        let mut c = Cursor(b, "cache");
        let e = CacheEntry {
            promoter: c.head()?,
            at_ms: c.u64()?,
            size: c.u64()?,
        };
        c.end()?;
        Ok(e)
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
pub(crate) struct Tier {
    pub(crate) opts: TierOptions,
    state: Mutex<State>,
    lock: tokio::sync::Mutex<()>,
}

impl Tier {
    pub(crate) fn new(opts: TierOptions) -> Self {
        Tier {
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

impl Tier {
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
pub(crate) struct Cache {
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

impl Cache {
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
        Ok(Cache {
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

    /// Keeps `block` for `from`, unless the capacity is used up.
    pub(crate) fn put(&self, from: PeerId, block: Block) -> PutStatus {
        if self.entry(&block.cid).is_some() {
            return PutStatus::Stored;
        }
        let len = block.data.len() as u64;
        let theirs = self
            .by_promoter
            .lock()
            .map(|m| m.get(&from).copied().unwrap_or(0))
            .unwrap_or(u64::MAX);
        if self.used.load(Ordering::Relaxed) + len > self.capacity
            || theirs.saturating_add(len) > self.capacity / 2
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

impl Node {
    /// Peers' measured speeds, fastest first, each marked fast or not (faulty provers are
    /// never fast).
    pub fn speed_report(&self) -> Vec<PeerSpeedReport> {
        let speeds = self.peer_speeds();
        let fast: HashSet<PeerId> = self.fast_peers().into_iter().collect();
        let mut v: Vec<PeerSpeedReport> = speeds
            .into_iter()
            .map(|(p, s)| PeerSpeedReport {
                peer: p.to_string(),
                rtt_ms: s.rtt_ms,
                throughput_mbps: s.throughput_bps / 1e6,
                mib_ms: s.mib_ms(),
                fast: fast.contains(&p),
            })
            .collect();
        v.sort_by(|a, b| {
            a.mib_ms
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.mib_ms.unwrap_or(f64::INFINITY))
        });
        v
    }

    /// The fast peers, fastest first: measured 1 MiB time at most [`FAST_RATIO`] of the
    /// median over the measured peers (at least two measured).
    pub fn fast_peers(&self) -> Vec<PeerId> {
        let faulty: HashSet<PeerId> = self.faulty_peers().into_iter().collect();
        let mut m: Vec<(PeerId, f64)> = self
            .peer_speeds()
            .into_iter()
            .filter(|(p, _)| !faulty.contains(p))
            .filter_map(|(p, s)| s.mib_ms().map(|t| (p, t)))
            .collect();
        if m.len() < 2 {
            return Vec::new();
        }
        m.sort_by(|a, b| a.1.total_cmp(&b.1));
        let median = m[m.len() / 2].1;
        m.into_iter()
            .filter(|(_, t)| *t <= FAST_RATIO * median)
            .map(|(p, _)| p)
            .collect()
    }

    /// Measures live storage peers' throughput: one timed, verified fetch of a shard each
    /// holds, for up to 32 peers per call (round robin over calls), 4 at a time. Returns the
    /// peers probed.
    pub async fn probe_peers(&self) -> usize {
        let repo = self.inner_repo();
        let sample: Vec<Cid> = block_on_pool(move || probe_candidates(&repo, 16 * PROBE_SAMPLE))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.0)
            .collect();
        if sample.is_empty() {
            return 0;
        }
        let me = self.peer_id();
        let peers: Vec<PeerId> = self
            .live_nodes()
            .await
            .into_iter()
            .map(|x| x.0)
            .filter(|p| *p != me)
            .collect();
        let turn = self.tier().next_probe_turn();
        let start = if peers.is_empty() {
            0
        } else {
            (turn * PROBES_PER_WINDOW) % peers.len()
        };
        let round: Vec<PeerId> = peers
            .iter()
            .cycle()
            .skip(start)
            .take(PROBES_PER_WINDOW.min(peers.len()))
            .copied()
            .collect();
        let net = self.net().clone();
        let probes: Vec<_> = futures::stream::iter(round.into_iter().map(|p| {
            let net = net.clone();
            // the largest shards first: the first one the peer holds is fetched
            let offer: Vec<Cid> = sample.iter().take(PROBE_SAMPLE).copied().collect();
            async move {
                let held = match net.ctrl(p, CtrlRequest::Have(offer.clone())).await {
                    Ok(CtrlResponse::Have(f)) if f.len() == offer.len() => f,
                    _ => return None,
                };
                let cid = offer.iter().zip(held).find(|(_, h)| *h).map(|(c, _)| *c)?;
                let t = Instant::now();
                match tokio::time::timeout(PROBE_TIMEOUT, net.fetch_verified(p, &cid)).await {
                    Ok(Ok(Some(b))) => Some((p, b.len() as u64, t.elapsed())),
                    _ => None,
                }
            }
        }))
        .buffer_unordered(PROBES_AT_ONCE)
        .collect()
        .await;
        let mut n = 0;
        for (p, bytes, dt) in probes.into_iter().flatten() {
            self.record_probe(p, bytes, dt);
            n += 1;
        }
        n
    }

    /// Runs one placement window now (probes, engine, plan, moves); see the module docs.
    pub async fn placement_window(&self) -> Result<WindowReport, NodeError> {
        let tier = self.tier();
        let _one = tier.lock.lock().await;
        let opts = tier.opts.clone();
        let now = now_ms();
        let window_ms = opts.window.as_millis() as u64;
        let window = tier
            .state
            .lock()
            .map(|mut st| {
                st.window += 1;
                st.window
            })
            .map_err(|_| NodeError::Config("placement state poisoned".into()))?;
        let mut pass = Pass {
            now,
            window,
            report: WindowReport {
                window,
                at_ms: now,
                ..WindowReport::default()
            },
            moves: Vec::new(),
            updates: Batch::new(),
        };
        // the fast node's part: drop copies whose promoter vanished
        let (cache, before) = (
            self.cache_arc(),
            now.saturating_sub(ORPHAN_WINDOWS * window_ms),
        );
        block_on_pool(move || cache.expire(before)).await?;
        pass.report.probed = self.probe_peers().await;
        let fast = self.fast_peers();
        pass.report.fast_peers = fast.iter().map(|p| p.to_string()).collect();
        let repo = self.inner_repo();
        let mut promoted = block_on_pool(move || load_promotions(&repo)).await??;
        self.fold_fast_reads(&mut pass, &mut promoted).await;
        let (keep, why) = self.plan(&mut pass, &opts, &promoted).await?;

        let keep_set: HashSet<Cid> = keep.iter().map(|x| x.0).collect();
        let demote: Vec<(Cid, Promotion)> = promoted
            .iter()
            .filter(|(c, _)| !keep_set.contains(c))
            .map(|(c, p)| (*c, *p))
            .collect();
        let mut promote: Vec<(Cid, u64)> = Vec::new();
        let mut budget = opts.budget_bytes;
        for (c, size) in &keep {
            if promoted.contains_key(c) {
                continue;
            }
            if *size > budget {
                break;
            }
            budget -= size;
            promote.push((*c, *size));
        }
        pass.report.planned_promotions = promote.iter().map(|x| x.0.to_string()).collect();
        pass.report.planned_demotions = demote.iter().map(|x| x.0.to_string()).collect();
        self.demote(&mut pass, demote, &why).await;
        self.promote(&mut pass, promote, &fast).await?;

        let Pass {
            report,
            moves,
            updates,
            ..
        } = pass;
        let repo = self.inner_repo();
        block_on_pool(move || repo.store().write(updates, Durability::Sync)).await??;
        if report.promoted + report.demoted > 0 {
            tracing::info!(
                window,
                promoted = report.promoted,
                demoted = report.demoted,
                bytes = report.bytes_promoted,
                "placement window"
            );
        }
        if let Ok(mut st) = tier.state.lock() {
            for m in moves {
                if st.moves.len() == MOVE_HISTORY {
                    st.moves.pop_front();
                }
                st.moves.push_back(m);
            }
            st.last = Some(report.clone());
        }
        Ok(report)
    }

    /// Asks the fast peers how often the copies promoted there were read, and counts those
    /// reads as this node's; copies a peer no longer holds are forgotten.
    async fn fold_fast_reads(&self, pass: &mut Pass, promoted: &mut HashMap<Cid, Promotion>) {
        let mut by_peer: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        for (c, p) in promoted.iter() {
            by_peer.entry(p.peer).or_default().push(*c);
        }
        for (peer, cids) in by_peer {
            for chunk in cids.chunks(MAX_CACHED) {
                let answer = self
                    .net()
                    .ctrl(peer, CtrlRequest::Cached(chunk.to_vec()))
                    .await;
                let reads: Vec<Option<u32>> = match answer {
                    Ok(CtrlResponse::Reads(r)) if r.len() == chunk.len() => r,
                    Ok(_) => vec![None; chunk.len()],
                    Err(e) => {
                        // unreachable: keep the records; the copies come back with the peer,
                        // or are demoted when the shards cool down
                        tracing::debug!(%peer, error = %e, "asking a fast peer for its reads failed");
                        continue;
                    }
                };
                for (c, r) in chunk.iter().zip(reads) {
                    let Some(p) = promoted.get_mut(c) else {
                        continue;
                    };
                    match r {
                        None => {
                            let size = p.size;
                            pass.record(
                                "lost",
                                c,
                                Some(peer),
                                size,
                                true,
                                "the fast peer no longer holds the copy".into(),
                            );
                            pass.updates.delete(Table::Promoted, c.to_bytes());
                            promoted.remove(c);
                        }
                        Some(n) => {
                            // a count below the last one: the peer restarted and counts afresh
                            let delta = if n >= p.reads_seen {
                                n - p.reads_seen
                            } else {
                                n
                            };
                            let delta = u64::from(delta).min(MAX_REPORTED_READS);
                            pass.report.fast_reads += delta;
                            self.record_reads(*c, p.size, delta, pass.now);
                            p.reads_seen = n;
                            pass.updates.put(Table::Promoted, c.to_bytes(), p.encode());
                        }
                    }
                }
            }
        }
    }

    /// Feeds the client reads since the last window to the engine and plans: the shards to keep
    /// promoted, hottest first (engine residents read at least `min_reads` times within
    /// `idle_windows` windows, held here as base shards, up to `promote_bytes`), and why each
    /// other promoted shard goes.
    async fn plan(
        &self,
        pass: &mut Pass,
        opts: &TierOptions,
        promoted: &HashMap<Cid, Promotion>,
    ) -> Result<(Vec<(Cid, u64)>, HashMap<Cid, String>), NodeError> {
        let now = pass.now;
        let idle_ms = opts.idle_windows * opts.window.as_millis() as u64;
        let (reads, seq) = self.reads_since(self.tier_seq());
        pass.report.reads = reads.len();
        let hot = self.hot_shards(crate::heat::MAX_TRACKED);
        let (candidates, why) = {
            let mut st = self
                .tier()
                .state
                .lock()
                .map_err(|_| NodeError::Config("placement state poisoned".into()))?;
            st.seq = seq;
            for r in &reads {
                let id = engine_id(&r.cid);
                st.ids.insert(id, r.cid);
                st.engine.access(&Request {
                    time: (r.at_ms / 1000) as u32,
                    id,
                    size: r.size.min(u64::from(u32::MAX)) as u32,
                    next: -1,
                });
            }
            let candidates: Vec<(Cid, u64)> = hot
                .iter()
                .filter(|(cid, h, _)| {
                    st.engine.contains(engine_id(cid))
                        && h.reads >= opts.min_reads
                        && now.saturating_sub(h.last_ms) <= idle_ms
                })
                .map(|(c, h, _)| (*c, h.size))
                .collect();
            let heat: HashMap<Cid, crate::heat::Heat> = hot.iter().map(|x| (x.0, x.1)).collect();
            let why: HashMap<Cid, String> = promoted
                .keys()
                .map(|c| {
                    let r = match heat.get(c) {
                        None => "cold: no longer among the shards read here".to_string(),
                        Some(_) if !st.engine.contains(engine_id(c)) => {
                            "the engine evicted it for hotter shards".to_string()
                        }
                        Some(h) if now.saturating_sub(h.last_ms) > idle_ms => format!(
                            "cold: no reads for {:.0} s",
                            now.saturating_sub(h.last_ms) as f64 / 1e3
                        ),
                        Some(_) => "over the promotable bytes, or no longer held here".to_string(),
                    };
                    (*c, r)
                })
                .collect();
            if st.ids.len() > crate::heat::MAX_TRACKED {
                let tracked: HashSet<Cid> = hot.iter().map(|x| x.0).collect();
                st.ids.retain(|_, c| tracked.contains(c));
            }
            pass.report.engine_trainings = st.engine.trainings;
            pass.report.engine_tracked = st.engine.tracked();
            (candidates, why)
        };
        let repo = self.inner_repo();
        let promote_bytes = opts.promote_bytes;
        let (keep, bytes) = block_on_pool(move || {
            let mut keep: Vec<(Cid, u64)> = Vec::new();
            let mut bytes = 0u64;
            for (cid, size) in candidates {
                if bytes + size <= promote_bytes && base_shard(&repo, &cid) {
                    bytes += size;
                    keep.push((cid, size));
                }
            }
            (keep, bytes)
        })
        .await?;
        pass.report.planned_bytes = bytes;
        Ok((keep, why))
    }

    /// Asks each fast peer to drop the copies in `demote`, and forgets them.
    async fn demote(
        &self,
        pass: &mut Pass,
        demote: Vec<(Cid, Promotion)>,
        why: &HashMap<Cid, String>,
    ) {
        let mut by_peer: HashMap<PeerId, Vec<(Cid, Promotion)>> = HashMap::new();
        for (c, p) in demote {
            by_peer.entry(p.peer).or_default().push((c, p));
        }
        for (peer, list) in by_peer {
            for chunk in list.chunks(MAX_CACHED) {
                let cids: Vec<Cid> = chunk.iter().map(|x| x.0).collect();
                let note = match self.net().ctrl(peer, CtrlRequest::Uncache(cids)).await {
                    Ok(CtrlResponse::Have(_)) => String::new(),
                    Ok(other) => format!("; unexpected answer {other:?}"),
                    Err(e) => format!("; {e} (forgotten: the peer drops it as an orphan)"),
                };
                for (c, p) in chunk {
                    let reason = format!("{}{note}", why.get(c).map_or("cold", String::as_str));
                    pass.updates.delete(Table::Promoted, c.to_bytes());
                    pass.report.demoted += 1;
                    pass.record("demote", c, Some(peer), p.size, true, reason);
                }
            }
        }
    }

    /// Copies each shard in `promote` to the fastest of `fast` that accepts it.
    async fn promote(
        &self,
        pass: &mut Pass,
        promote: Vec<(Cid, u64)>,
        fast: &[PeerId],
    ) -> Result<(), NodeError> {
        if !promote.is_empty() && fast.is_empty() {
            pass.report.note = Some(
                "no fast peers measured (a fast peer fetches 1 MiB in at most half the median time)"
                    .into(),
            );
            return Ok(());
        }
        let me = self.peer_id();
        for (cid, size) in promote {
            let repo = self.inner_repo();
            let block = match block_on_pool(move || repo.block(&cid)).await? {
                Ok(b) => Block {
                    cid,
                    data: b.into(),
                },
                Err(e) => {
                    pass.report.failed.push(format!("{cid}: {e}"));
                    continue;
                }
            };
            let mut done = None;
            let mut refused = Vec::new();
            for &peer in fast.iter().filter(|p| **p != me) {
                match self
                    .net()
                    .push_cached(peer, std::slice::from_ref(&block))
                    .await
                {
                    Ok(st) if st.first() == Some(&PutStatus::Stored) => {
                        done = Some(peer);
                        break;
                    }
                    Ok(st) => refused.push(format!("{peer}: {st:?}")),
                    Err(e) => refused.push(format!("{peer}: {e}")),
                }
            }
            match done {
                Some(peer) => {
                    let p = Promotion {
                        peer,
                        at_ms: pass.now,
                        size,
                        reads_seen: 0,
                    };
                    pass.updates
                        .put(Table::Promoted, cid.to_bytes(), p.encode());
                    pass.report.promoted += 1;
                    pass.report.bytes_promoted += size;
                    let reads = self.shard_reads(&cid);
                    pass.record(
                        "promote",
                        &cid,
                        Some(peer),
                        size,
                        true,
                        format!("hot: {reads} reads"),
                    );
                }
                None => {
                    let r = refused.join("; ");
                    pass.report.failed.push(format!("promote {cid}: {r}"));
                    pass.record("promote", &cid, None, size, false, r);
                }
            }
        }
        Ok(())
    }

    /// Runs placement windows on the timer when `auto` is set.
    pub(crate) async fn placement_worker(self) {
        let opts = self.tier().opts.clone();
        if !opts.auto {
            return;
        }
        let mut stop = self.inner.stop.subscribe();
        let mut tick = tokio::time::interval(opts.window);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.placement_window().await {
                tracing::warn!(error = %e, "placement window failed");
            }
        }
    }

    /// The fast tier's state: measured peers, promotions, copies held, the last plan, moves.
    pub async fn tier_status(&self) -> TierStatus {
        let repo = self.inner_repo();
        let promoted = block_on_pool(move || load_promotions(&repo))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let cache = self.cache_arc();
        let cached = block_on_pool(move || cache.list())
            .await
            .unwrap_or_default();
        let tier = self.tier();
        let (windows, last, moves) = tier
            .state
            .lock()
            .map(|s| (s.window, s.last.clone(), s.moves.iter().cloned().collect()))
            .unwrap_or_default();
        let mut promoted: Vec<serde_json::Value> = promoted
            .into_iter()
            .map(|(c, p)| {
                serde_json::json!({
                    "cid": c.to_string(),
                    "peer": p.peer.to_string(),
                    "bytes": p.size,
                    "reads_there": p.reads_seen,
                    "since_ms": p.at_ms,
                })
            })
            .collect();
        promoted.sort_by(|a, b| a["cid"].as_str().cmp(&b["cid"].as_str()));
        TierStatus {
            windows,
            window_secs: tier.opts.window.as_secs(),
            auto: tier.opts.auto,
            peers: self.speed_report(),
            promoted,
            cached: cached
                .into_iter()
                .map(|(c, e, reads)| {
                    serde_json::json!({
                        "cid": c.to_string(),
                        "promoter": e.promoter.to_string(),
                        "bytes": e.size,
                        "reads": reads,
                        "since_ms": e.at_ms,
                    })
                })
                .collect(),
            cache_used: self.cache().used(),
            cache_capacity: self.cache().capacity(),
            last_window: last,
            moves,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_every_malformation() {
        let peer = PeerId::random();
        let p = Promotion {
            peer,
            at_ms: 7,
            size: 1 << 20,
            reads_seen: 42,
        };
        let e = p.encode();
        assert_eq!(Promotion::decode(&e), Ok(p));
        for n in 0..e.len() {
            assert!(Promotion::decode(&e[..n]).is_err(), "prefix {n}");
        }
        let mut long = e.clone();
        long.push(0);
        assert!(Promotion::decode(&long).is_err());
        let mut v2 = e.clone();
        v2[0] = 2;
        assert!(Promotion::decode(&v2).is_err());
        let c = CacheEntry {
            promoter: peer,
            at_ms: u64::MAX,
            size: 0,
        };
        let e = c.encode();
        assert_eq!(CacheEntry::decode(&e), Ok(c));
        for n in 0..e.len() {
            assert!(CacheEntry::decode(&e[..n]).is_err(), "prefix {n}");
        }
        assert!(CacheEntry::decode(&[1, 3, 0, 0, 0]).is_err());
    }

    #[test]
    fn the_cache_keeps_to_its_capacity_and_drops_only_for_the_promoter() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Arc::new(Repo::open(dir.path()).unwrap());
        let cache = Cache::open(repo.clone(), 100).unwrap();
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
        assert_eq!(cache.put(a, blk(4, 51)), PutStatus::NoSpace);
        assert_eq!(cache.put(a, x.clone()), PutStatus::Stored);
        assert_eq!(cache.put(b, y.clone()), PutStatus::Stored);
        assert_eq!(cache.put(a, z.clone()), PutStatus::NoSpace);
        assert_eq!(cache.put(b, z.clone()), PutStatus::NoSpace); // 120 > 100
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
        assert_eq!(cache.put(b, z.clone()), PutStatus::Stored);
        assert_eq!(cache.uncache(b, &[z.cid]), vec![true]);
        // reopening counts what is held, per promoter too
        drop(cache);
        let cache = Cache::open(repo, 100).unwrap();
        assert_eq!(cache.used(), 50);
        assert_eq!(cache.put(a, blk(5, 1)), PutStatus::NoSpace);
        assert_eq!(cache.list().len(), 1);
        assert_eq!(cache.expire(u64::MAX), 1);
        assert_eq!(cache.used(), 0);
        assert_eq!(cache.get(&x.cid), None);
    }
}
