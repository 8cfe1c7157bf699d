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
use cairn_net::wire::{CacheSpace, CtrlRequest, CtrlResponse, NodeInfo, PutStatus, MAX_CACHED};
use cairn_net::{NetClient, PeerId};
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
mod cache;
mod claims;
mod plan;
mod plans;
mod prefetch;
mod ranker;
mod record;
mod windows;

pub(crate) use cache::FastCache;
pub(crate) use plans::{NewPlan, PlanBook};
pub use plans::{PlanStatus, PrefetchReport, MAX_PLANS};
pub use prefetch::{FETCHES_AT_ONCE, FETCHES_PER_TICK};
pub use ranker::TierPolicy;
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
/// Fast peers asked for their room per window at most (the fastest).
const SPACE_PEERS: usize = 16;
/// How long a fast peer may take to say how much room it has.
const SPACE_TIMEOUT: Duration = Duration::from_secs(3);
/// Overrides of the reads rule a window report lists at most (all are counted).
const OVERRIDES_LISTED: usize = 16;

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
    /// Bytes of readers' planned blocks held on fast peers at once, over all plans.
    pub plan_bytes: u64,
    /// How far ahead of a planned reader to prefetch, in time of reading at its rate.
    pub lookahead: Duration,
    /// How long a plan's copy that no followed plan reads again stays on its fast peer, kept
    /// before new copies, for the next epoch's plan (zero: dropped once read).
    pub plan_keep: Duration,
    /// How often plans are followed (reads observed, blocks prefetched and dropped).
    pub prefetch_every: Duration,
    /// Labelled examples the engine's first model needs (retrained after twice as many new
    /// ones, doubling); until then the reads rule admits.
    pub train_after: usize,
    /// What ranks the shards: the engine, or least-recently-used (a baseline).
    pub policy: TierPolicy,
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
            plan_bytes: 256 << 20,
            lookahead: Duration::from_secs(30),
            plan_keep: Duration::from_secs(60),
            prefetch_every: Duration::from_secs(1),
            train_after: 256,
            policy: TierPolicy::Engine,
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
    /// `promote`, `demote` or `lost` (the fast peer no longer had the copy); for plans,
    /// `prefetch`, `drop` or `lost`.
    pub kind: &'static str,
    /// What decided it: `heat` (the window's plan over the engine and the reads here) or
    /// `plan` (a reader's registered access plan).
    pub rule: &'static str,
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
    /// This node's own time to have a block it serves in hand, ms per MiB (see
    /// [`cairn_net::serve_times`]).
    pub self_mib_ms: Option<f64>,
    /// Whether this node is fast itself (its serve time plus the median round trip is at most
    /// half the median peer's 1 MiB time): it then promotes nothing, since clients read its
    /// shards from it as fast as from a fast peer.
    pub self_fast: bool,
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
    /// Room the fast peers reported for this node's copies (capped, for a peer that refused a
    /// copy for want of space since, at what it holds for this node), less the copies held
    /// for readers' plans.
    pub fast_space: u64,
    /// The engine's capacity this window: the fast space, at most `promote_bytes`.
    pub engine_capacity: u64,
    /// Shards the trained model decided on (residents, with a prediction).
    pub modelled: usize,
    /// Of those, how many it decided otherwise than the reads rule would have.
    pub overrides: usize,
    /// The first of them (at most 16).
    pub override_list: Vec<Override>,
}

/// A shard the trained model admitted or declined against the reads rule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Override {
    /// The shard.
    pub cid: String,
    /// Reads counted here.
    pub reads: u64,
    /// The model's probability that it is not read again before the engine's horizon.
    pub no_reuse: f32,
    /// Whether the engine admitted it (the reads rule would have decided the opposite).
    pub admitted: bool,
}

struct State {
    engine: ranker::Ranker,
    /// Fast peers that refused a copy for want of space since they last took one.
    full: HashSet<PeerId>,
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
    /// What decided each shard's move (`engine` or `reads`), from the window's plan.
    rules: HashMap<Cid, &'static str>,
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
            rule: self.rules.get(cid).copied().unwrap_or("reads"),
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
    /// Readers' plans and the copies made for them.
    plans: Arc<Mutex<plans::PlanBook>>,
    /// One prefetch tick at a time.
    prefetch_lock: tokio::sync::Mutex<()>,
    /// Plan copies in flight at once (they may outlast the tick that started them).
    copy_slots: Arc<tokio::sync::Semaphore>,
    /// The fast peers measured last, fastest first (shared with the node's service, which
    /// tells peers sending plans where the copies go).
    fast_now: Arc<Mutex<Vec<PeerId>>>,
    /// Whether the last window found this node fast itself (shared with the service, which
    /// then leaves peers' plans to slow holders).
    self_fast: Arc<std::sync::atomic::AtomicBool>,
    /// Bytes copied to fast peers since the node started: by windows, and for plans.
    promoted_total: AtomicU64,
    prefetched_total: AtomicU64,
}

impl PromoterState {
    pub(crate) fn new(opts: TierOptions) -> Self {
        PromoterState {
            state: Mutex::new(State {
                engine: ranker::Ranker::new(
                    opts.policy,
                    opts.promote_bytes.max(1),
                    opts.train_after,
                ),
                full: HashSet::new(),
                ids: HashMap::new(),
                seq: 0,
                window: 0,
                last: None,
                moves: VecDeque::new(),
                probe_turn: 0,
            }),
            opts,
            lock: tokio::sync::Mutex::new(()),
            plans: Arc::default(),
            prefetch_lock: tokio::sync::Mutex::new(()),
            copy_slots: Arc::new(tokio::sync::Semaphore::new(FETCHES_AT_ONCE)),
            fast_now: Arc::default(),
            self_fast: Arc::default(),
            promoted_total: AtomicU64::new(0),
            prefetched_total: AtomicU64::new(0),
        }
    }
}

impl PromoterState {
    /// The fast peers measured last, shared.
    pub(crate) fn fast_list(&self) -> Arc<Mutex<Vec<PeerId>>> {
        self.fast_now.clone()
    }

    /// Whether the last window found this node fast itself, shared.
    pub(crate) fn self_fast_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.self_fast.clone()
    }

    pub(crate) fn seq(&self) -> u64 {
        self.state.lock().map(|s| s.seq).unwrap_or(0)
    }

    /// Notes whether `peer` took a copy (it has room again) or refused one for want of space.
    fn note_space(&self, peer: PeerId, took: bool) {
        if let Ok(mut s) = self.state.lock() {
            if took {
                s.full.remove(&peer);
            } else {
                s.full.insert(peer);
            }
        }
    }

    /// The plans followed, shared (with the node's service, which takes readers' reports of
    /// what they read).
    pub(crate) fn plan_book(&self) -> Arc<Mutex<PlanBook>> {
        self.plans.clone()
    }

    /// The shards of `cands` that no followed plan will read.
    fn not_planned(&self, mut cands: Vec<(Cid, u64)>) -> Vec<(Cid, u64)> {
        if let Ok(b) = self.plans.lock() {
            cands.retain(|(c, _)| !b.plans_read(c));
        }
        cands
    }

    /// Bytes of copies held for readers' plans on these peers.
    fn plan_copy_bytes(&self, peers: &[PeerId]) -> u64 {
        self.plans.lock().map(|b| b.copy_bytes(peers)).unwrap_or(0)
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
    /// Readers' plans followed here.
    pub plans: Vec<PlanStatus>,
    /// Why plans' blocks are not prefetched now, if so.
    pub plan_note: Option<String>,
    /// Bytes this node copied to fast peers since it started, by placement windows.
    pub promoted_bytes_total: u64,
    /// Bytes this node copied to fast peers since it started, ahead of readers' plans.
    pub prefetched_bytes_total: u64,
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
    /// Block `cid` of dataset `root`, for a plan: from this node's store, or verified from the
    /// network (decoded from parity when its holders are gone); or, when one of `fast` holds
    /// it as a base shard, that peer (no copy is needed).
    fn block_for_plan(
        &self,
        root: Cid,
        cid: Cid,
        fast: &[PeerId],
    ) -> impl std::future::Future<Output = Result<PlanBlock, String>> + Send;
}

/// A planned block, as [`TierHost::block_for_plan`] finds it.
pub(crate) enum PlanBlock {
    /// Its bytes, verified.
    Data(Bytes),
    /// A fast peer holds it as a base shard.
    FastHolder(PeerId),
}

/// The fast tier's windows, probes and status, run over a [`TierHost`].
pub(crate) struct FastTier<H>(pub(crate) H);
