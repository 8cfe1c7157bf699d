//! Proofs of storage in a running node (design §3, "Audits").
//!
//! - **Sealing**: a worker packs the blocks this node stores and has not sealed yet into
//!   sectors (in CID order, a block may span sectors), seals each into a replica unique to this
//!   node, proves the seal, stores replica and metadata, appends the [`SectorRecord`] to the
//!   audit log and gossips it on [`SECTOR_TOPIC`].
//! - **Proving**: an auditor's [`AuditRequest::Prove`] is answered with a window proof over the
//!   requested sectors, made from the stored replicas (one proof at a time).
//! - **Auditing**: every window, each node audits one peer (a ring offset drawn from the window
//!   number, so each prover is audited about once per window by a changing auditor) with a
//!   fresh random nonce and a random batch of its committed sectors, verifies the proof, signs
//!   the verdict and gossips it on [`AUDIT_TOPIC`].
//! - **Log**: every node appends verified sector records and audit records (its own and
//!   gossiped ones whose signature and proof it re-checked) to a hash-chained log in the store.
//! - **Assignment** ([`cover`]): sector records list the blocks they hold; a peer counts as a
//!   block's holder once a sealed sector lists it (after a grace period, only then), and
//!   audits challenge the sectors holding the prover's shards, opening one piece's leaves.
//! - **Faults** ([`faults`]): only a window's designated auditors count. A failed window (the
//!   prover's own signed answer, re-checked by everyone) marks the prover faulty; a missed one
//!   does when the window's confirming auditor misses it too. A faulty prover no longer counts
//!   as a live holder, so repair rebuilds its shards elsewhere; a later designated pass clears
//!   it. The faulty set is replayed from the log when the node starts, so it survives restarts.

use crate::error::{offload, NodeError};
use ark_bn254::Fr;
use ark_ff::PrimeField;
use cairn_core::Cid;
use cairn_net::wire::{CtrlRequest, CtrlResponse};
use cairn_net::{NetClient, PeerId};
use cairn_proofs::audit::{
    self, fr_bytes, AuditError, AuditRecord, AuditRequest, AuditResponse, EntryKind, KeySource,
    LogEntry, NetParams, Piece, Role, SectorRecord, Verdict, MAX_SECTORS_PAGE,
};
use cairn_proofs::keys::{KeyError, Keys};
use cairn_proofs::merkle::TopLevels;
use cairn_proofs::post::{Openable, StoredReplica, KEPT_FROM};
use cairn_proofs::sdr::Sealed;
use cairn_repo::store::{Batch, Durability, StoreError, Table};
use cairn_repo::Repo;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod answer;
mod assign;
mod check;
mod check_table;
mod cover;
mod describe;
mod faults;
mod log;
mod prover;
mod quota;
mod replica_store;
mod retire;
mod schedule;
mod seal;
pub(crate) use check_table::Checks;
pub use describe::{describe, ProofStatus};
pub(crate) use replica_store::ReplicaStore;
pub(crate) use retire::replica_cost;
use thiserror::Error;
use tokio::sync::mpsc;

/// Gossip topic of signed audit records.
pub const AUDIT_TOPIC: &str = "/cairn/audit/1";
/// Gossip topic of sector records.
pub const SECTOR_TOPIC: &str = "/cairn/sectors/1";
/// Gossip topic of sector retirements ([`retire`]).
pub const RETIRE_TOPIC: &str = "/cairn/retire/1";
/// Gossip topic of signed seal checks ([`check`]).
pub const CHECK_TOPIC: &str = "/cairn/check/1";
/// Audit log entries returned per API page.
pub const LOG_PAGE: usize = 1000;

/// Proof settings of a node.
#[derive(Debug, Clone)]
pub struct ProofOptions {
    /// The network's proof parameters.
    pub params: NetParams,
    /// Length of a proving window.
    pub window: Duration,
    /// Where the seal and window keys come from (pinned ceremony keys, or development keys).
    pub keys: KeySource,
    /// How often the sealing worker looks for unsealed blocks.
    pub seal_interval: Duration,
    /// How long data too small to fill a sector waits for more before it is sealed in a
    /// partly empty sector (zero: at once).
    pub seal_wait: Duration,
    /// How long a peer counts as the holder of a block it says it has before a sealed sector
    /// of its verified records lists the block ([`cover`]).
    pub grace: Duration,
    /// Windows a retired sector's replica is kept, and proved when asked, after its
    /// retirement is gossiped ([`retire`]): auditors that missed the gossip still get answers.
    pub retire_grace: u64,
    /// How long a verified sector counts for the blocks it lists before it has passed a seal
    /// check ([`check`]).
    pub check_grace: Duration,
    /// Replica-only storage: a sealed block is kept only inside its sector's replica and
    /// unsealed when read ([`ReplicaStore`]); otherwise the plain block stays beside it.
    pub replica_only: bool,
}

/// Proof failures.
#[derive(Debug, Error)]
pub enum ProofsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys could not be loaded or made.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A record or proof failed.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Stored sector metadata is unreadable.
    #[error("sector metadata {0} is corrupt")]
    Meta(u64),
}

/// What a node keeps about one of its sealed sectors (JSON in [`Table::Sectors`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SectorMeta {
    /// The encoded [`SectorRecord`], hex.
    record: String,
    /// `comm_c`, hex (32 bytes little-endian).
    comm_c: String,
    /// `comm_r_last`, hex.
    comm_r_last: String,
    /// The blocks (CID, offset in the block, length) in sector order.
    pieces: Vec<(String, u64, u64)>,
    /// The sector's signed [`audit::Retirement`], hex, once retired (the replica is kept for
    /// the grace windows, then the sector's rows are deleted).
    #[serde(default)]
    retired: Option<String>,
}

/// A sector's worth of blocks waiting to be sealed.
#[derive(Debug, Default)]
struct Pending {
    /// The sector's data.
    data: Vec<u8>,
    /// The blocks (CID, offset in the block, length) in sector order.
    pieces: Vec<(Cid, u64, u64)>,
    /// The blocks whose last byte is in this sector.
    done: Vec<Cid>,
}

/// Memory for one sealing batch's pending data (sectors are sealed one after the other): up to
/// eight 64 MiB sectors; larger sectors are taken one at a time.
const SEAL_BATCH_BYTES: usize = 512 << 20;

use cairn_proofs::audit::{from_hex as unhex, to_hex as hex};

/// A field element from the 64 hex digits of its canonical little-endian bytes.
fn fr_of_hex(s: &str) -> Option<Fr> {
    audit::fr_from_bytes(&unhex(s)?.try_into().ok()?).ok()
}

pub use quota::{
    PROOFS_FOR_OTHERS_PER_WINDOW, PROOFS_PER_OTHER_PEER_WINDOW, PROOFS_PER_PEER_WINDOW,
};

/// The node's sector and audit ledger: sealed sectors and what is pending, window proofs
/// asked of it, verdicts, faulty peers and the hash-chained audit log, over the repo.
pub(crate) struct Ledger {
    repo: Arc<Repo>,
    me: Vec<u8>,
    pub(crate) opts: ProofOptions,
    seal_keys: Keys,
    post_keys: Keys,
    prove_lock: Mutex<()>,
    /// Designated auditors' requests waiting for or holding `prove_lock`: others wait for none.
    designated_waiting: std::sync::atomic::AtomicUsize,
    /// Window proofs made in the current window (window, designated peer -> count, count for
    /// everyone else, other peer -> count): see [`PROOFS_PER_PEER_WINDOW`] and
    /// [`PROOFS_FOR_OTHERS_PER_WINDOW`].
    served: Mutex<quota::ProveQuota>,
    /// Sealing runs here: one thread at the lowest CPU priority, so that window proofs (which
    /// have a deadline) and serving are never starved by background sealing.
    seal_pool: rayon::ThreadPool,
    /// Since when pending data has not filled a sector ([`ProofOptions::seal_wait`]).
    partial_since: Mutex<Option<std::time::Instant>>,
    /// The hash-chained audit log, bounded by compaction.
    log: log::AuditLog,
    /// prover -> sector -> comm_r, from verified sector records.
    registry: Mutex<HashMap<Vec<u8>, BTreeMap<u64, Fr>>>,
    /// prover -> sector -> data bytes, from the same records.
    sealed: Mutex<HashMap<Vec<u8>, BTreeMap<u64, u64>>>,
    /// The blocks those records list, and claims in their grace period ([`cover`]).
    cover: Mutex<cover::Cover>,
    faults: Mutex<faults::Faults>,
    /// Held from appending an audit record to applying its verdict.
    verdicts: Mutex<()>,
    /// (prover, window) pairs this node has started a confirming audit for (the current and
    /// previous window only).
    confirming: Mutex<Vec<(Vec<u8>, u64)>>,
    /// Gossiped audit records accepted per auditor and window ([`quota`]).
    pub(crate) verdict_quota: Mutex<quota::VerdictQuota>,
    /// Bumped whenever the faulty set changes.
    faulty_seq: tokio::sync::watch::Sender<u64>,
    status: Mutex<ProofStatus>,
    /// The window this node last gossiped its retirements in ([`retire`]).
    retire_gossiped: Mutex<u64>,
    /// Seal checks: what registered sectors they are checked against, which passed, which
    /// failed ([`check`]).
    checks: Mutex<Checks>,
    /// One seal check answered at a time.
    check_lock: Mutex<()>,
}

/// How long an auditor waits for a window proof in windows of `window`: 0.45 of a window, at
/// least 5 s (an auditor asks in the first half of a window, so the answer lands in the same
/// window). The prover skips a request that waited this long for earlier proofs.
pub fn answer_deadline(window: Duration) -> Duration {
    window.mul_f64(0.45).max(Duration::from_secs(5))
}

/// Drops the calling thread to the lowest scheduling priority (nice 19).
fn lowest_priority() {
    // SAFETY: setpriority on this thread's id (Linux: per-thread nice); no memory is touched
    #[allow(unsafe_code)]
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn be(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

impl Ledger {
    /// Loads keys (running the development setup if they are missing) and the log.
    pub(crate) fn open(
        repo: Arc<Repo>,
        me: PeerId,
        opts: ProofOptions,
    ) -> Result<Self, ProofsError> {
        opts.params.check()?;
        let (seal_keys, post_keys) = opts.params.load_keys(&opts.keys)?;
        let audit_log =
            log::AuditLog::open(repo.clone(), log::MAX_LOG_ENTRIES, log::COMPACT_BATCH)?;
        let p = Ledger {
            repo,
            me: me.to_bytes(),
            opts,
            seal_keys,
            post_keys,
            prove_lock: Mutex::new(()),
            designated_waiting: std::sync::atomic::AtomicUsize::new(0),
            served: Mutex::new(quota::ProveQuota::default()),
            seal_pool: rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "cairn-seal".into())
                .start_handler(|_| lowest_priority())
                .build()
                .map_err(|e| StoreError::Backend(format!("sealing thread: {e}")))?,
            log: audit_log,
            registry: Mutex::new(HashMap::new()),
            sealed: Mutex::new(HashMap::new()),
            cover: Mutex::new(cover::Cover::default()),
            faults: Mutex::new(faults::Faults::default()),
            verdicts: Mutex::new(()),
            confirming: Mutex::new(Vec::new()),
            verdict_quota: Mutex::new(quota::VerdictQuota::default()),
            faulty_seq: tokio::sync::watch::channel(0).0,
            status: Mutex::new(ProofStatus::default()),
            partial_since: Mutex::new(None),
            retire_gossiped: Mutex::new(u64::MAX),
            checks: Mutex::new(Checks::default()),
            check_lock: Mutex::new(()),
        };
        let mut faults = faults::Faults::default();
        for e in p.log()? {
            match e.kind {
                EntryKind::Sector => {
                    if let Ok(r) = SectorRecord::decode(&e.body) {
                        p.remember(&r);
                    }
                }
                // the log holds only records that were checked when they were appended, so
                // replaying their verdicts gives back the faulty set the node had
                EntryKind::Audit => {
                    if let Ok(a) = AuditRecord::decode(&e.body) {
                        faults.apply(&a.prover, a.window, a.role, a.verdict);
                    }
                }
                EntryKind::Retire => {
                    if let Ok(r) = audit::Retirement::decode(&e.body) {
                        p.forget(&r.prover, r.sector, r.comm_r);
                    }
                }
                EntryKind::Check => {
                    if let Ok(c) = audit::SealCheck::decode(&e.body) {
                        p.apply_check(&c);
                    }
                }
            }
        }
        if let Ok(mut f) = p.faults.lock() {
            *f = faults;
        }
        let mut st = ProofStatus::default();
        let mut stale = Vec::new();
        for (k, v) in p.repo.store().table_scan(Table::Sectors)? {
            let meta = serde_json::from_slice::<SectorMeta>(&v).ok();
            let retired = meta.as_ref().is_some_and(|m| m.retired.is_some());
            match meta
                .and_then(|m| unhex(&m.record))
                .and_then(|b| SectorRecord::decode(&b).ok())
            {
                Some(r) => {
                    st.replica_bytes += p.replica_len();
                    if retired {
                        // retired, perhaps without its log entry (a crash in between)
                        p.forget(&p.me, r.sector, r.comm_r);
                    } else {
                        st.sectors += 1;
                        st.sealed_bytes += r.data_len;
                    }
                }
                None => stale.push(k),
            }
        }
        p.drop_sectors(&stale)?;
        if let Ok(mut s) = p.status.lock() {
            *s = st;
        }
        Ok(p)
    }

    /// Drops sealed sectors whose record no longer reads (sealed by an older version, whose
    /// records listed no pieces): their replicas and metadata go, and their blocks are sealed
    /// again by the next sealing pass.
    fn drop_sectors(&self, keys: &[Vec<u8>]) -> Result<(), ProofsError> {
        if keys.is_empty() {
            return Ok(());
        }
        let store = self.repo.store();
        let mut batch = Batch::new();
        for (cid, sector) in store.table_scan(Table::Sealed)? {
            if keys.contains(&sector) {
                batch.delete(Table::Sealed, cid);
            }
        }
        for k in keys {
            batch
                .delete(Table::Sectors, k.clone())
                .delete(Table::Replicas, k.clone());
        }
        store.write(batch, Durability::Sync)?;
        tracing::warn!(
            sectors = keys.len(),
            "sealed sectors of an older format dropped; their blocks will be sealed again"
        );
        Ok(())
    }

    fn remember(&self, r: &SectorRecord) {
        if let Ok(mut reg) = self.registry.lock() {
            reg.entry(r.prover.clone())
                .or_default()
                .insert(r.sector, r.comm_r);
        }
        if let Ok(mut sealed) = self.sealed.lock() {
            sealed
                .entry(r.prover.clone())
                .or_default()
                .insert(r.sector, r.data_len);
        }
        if let Ok(mut c) = self.cover.lock() {
            c.add(r, unix_now());
        }
        if let Ok(mut c) = self.checks.lock() {
            c.note(r);
        }
    }

    /// Whether `peer` has a sealed sector whose seal proof verified here.
    pub(crate) fn is_prover(&self, peer: &PeerId) -> bool {
        self.registry
            .lock()
            .map(|r| r.get(&peer.to_bytes()).is_some_and(|m| !m.is_empty()))
            .unwrap_or(false)
    }

    /// Data bytes in `peer`'s sealed sectors whose seal proofs verified here: the storage it
    /// has proven, which caps its weight in placement ([`crate::plan::weight`]).
    pub(crate) fn proven_bytes(&self, peer: &PeerId) -> u64 {
        self.sealed
            .lock()
            .ok()
            .and_then(|s| s.get(&peer.to_bytes()).map(|m| m.values().sum()))
            .unwrap_or(0)
    }

    /// The whole log, in order.
    pub(crate) fn log(&self) -> Result<Vec<LogEntry>, ProofsError> {
        Ok(self.log.entries()?)
    }

    /// Appends a record to the log (durably). When the log is compacted, the dropped sector
    /// records still registered and the audits behind current faults are kept
    /// ([`log::carry_over`]).
    fn append(&self, kind: EntryKind, body: Vec<u8>) -> Result<LogEntry, ProofsError> {
        let e = self.log.append(kind, body, |dropped| {
            let registry = self.registry.lock().ok();
            let faults = self.faults.lock().ok();
            log::carry_over(
                dropped,
                |r| {
                    registry
                        .as_ref()
                        .and_then(|reg| reg.get(&r.prover).and_then(|m| m.get(&r.sector)))
                        == Some(&r.comm_r)
                },
                |p| faults.as_ref().is_some_and(|f| f.is_faulty(p)),
            )
        })?;
        if let Ok(mut s) = self.status.lock() {
            s.log_entries = self.log.next();
        }
        Ok(e)
    }

    /// Whether `peer` is marked faulty.
    pub(crate) fn is_faulty(&self, peer: &PeerId) -> bool {
        self.faults
            .lock()
            .map(|f| f.is_faulty(&peer.to_bytes()))
            .unwrap_or(false)
    }

    /// The faulty peers and the window of each one's latest fault.
    pub(crate) fn faulty_peers(&self) -> Vec<(PeerId, u64)> {
        self.faults
            .lock()
            .map(|f| {
                f.faulty()
                    .filter_map(|(p, w)| PeerId::from_bytes(p).ok().map(|p| (p, w)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Status counters.
    pub(crate) fn status(&self) -> ProofStatus {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        s.faulty = self
            .faulty_peers()
            .into_iter()
            .map(|(p, w)| (p.to_string(), w))
            .collect();
        let p = self.opts.params;
        s.params = (p.sector_size, p.layers, p.challenges, p.batch);
        s.window_secs = self.opts.window.as_secs();
        s.window = self.window_now();
        s.keys_sha256 = match &self.opts.keys {
            KeySource::Dev(_) => None,
            KeySource::Pinned { sha256, .. } => Some(sha256.clone()),
        };
        if let Ok(c) = self.checks.lock() {
            (s.sectors_checked, s.sectors_unchecked) = c.tally(&self.me);
        }
        s
    }

    /// The current window number.
    pub(crate) fn window_now(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_secs() / self.opts.window.as_secs().max(1)
    }

    /// This node's sector records with numbers from `from` on (one page).
    fn own_records(&self, from: u64) -> Result<Vec<SectorRecord>, ProofsError> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (k, v) in self.repo.store().table_scan(Table::Sectors)? {
            let id = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| ProofsError::Meta(0))?);
            if id < from {
                continue;
            }
            let meta: SectorMeta = serde_json::from_slice(&v).map_err(|_| ProofsError::Meta(id))?;
            if meta.retired.is_some() {
                continue;
            }
            if let Some(r) = unhex(&meta.record).and_then(|b| SectorRecord::decode(&b).ok()) {
                let n = r.encode().len() + 2;
                if !out.is_empty() && bytes + n > audit::MAX_SECTORS_PAGE_BYTES {
                    break;
                }
                bytes += n;
                out.push(r);
            }
            if out.len() == MAX_SECTORS_PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// Whether this node should start a confirming audit of `prover` for `window` (it is the
    /// current or previous window and none was started for it): at most one per pair.
    pub(crate) fn start_confirming(&self, prover: &[u8], window: u64) -> bool {
        let now = self.window_now();
        if window.saturating_add(1) < now || window > now {
            return false;
        }
        let Ok(mut c) = self.confirming.lock() else {
            return false;
        };
        c.retain(|(_, w)| w.saturating_add(1) >= now);
        if c.iter().any(|(p, w)| p == prover && *w == window) || c.len() >= 64 {
            return false;
        }
        c.push((prover.to_vec(), window));
        true
    }

    /// Every peer with a verified sector record, this node included when it has one: the
    /// ring the audit schedule is computed over ([`schedule::ring_of`]).
    pub(crate) fn ring(&self) -> Vec<PeerId> {
        self.registry
            .lock()
            .map(|r| {
                r.keys()
                    .filter_map(|k| PeerId::from_bytes(k).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Registers a sector record after checking its seal proof; logs it when new. Returns
    /// whether it was new.
    pub(crate) fn register(&self, r: &SectorRecord) -> Result<bool, ProofsError> {
        let known = self
            .registry
            .lock()
            .ok()
            .and_then(|reg| reg.get(&r.prover).and_then(|m| m.get(&r.sector)).copied());
        if known == Some(r.comm_r) {
            return Ok(false);
        }
        if self.checks.lock().is_ok_and(|c| c.rejected(r)) {
            return Err(AuditError::Field("a sector that failed its seal check").into());
        }
        if !r.verify_seal(&self.opts.params, &self.seal_keys)? {
            return Err(AuditError::Field("seal proof does not verify").into());
        }
        self.append(EntryKind::Sector, r.encode())?;
        self.remember(r);
        Ok(true)
    }

    /// The committed sectors of `prover`.
    pub(crate) fn sectors_of(&self, prover: &[u8]) -> Vec<(u64, Fr)> {
        self.registry
            .lock()
            .ok()
            .and_then(|r| {
                r.get(prover)
                    .map(|m| m.iter().map(|(a, b)| (*a, *b)).collect())
            })
            .unwrap_or_default()
    }

    /// Peers with committed sectors (this node excluded).
    pub(crate) fn provers(&self) -> Vec<PeerId> {
        self.registry
            .lock()
            .map(|r| {
                r.keys()
                    .filter(|k| **k != self.me)
                    .filter_map(|k| PeerId::from_bytes(k).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Checks an audit record's proof against the window's public inputs.
    pub(crate) fn proof_verifies(&self, a: &AuditRecord) -> bool {
        a.proof_verifies(&self.opts.params, &self.post_keys)
    }

    /// Logs an audit record (already checked) and applies its verdict ([`faults`]). Returns
    /// whether the prover became faulty.
    pub(crate) fn record_audit(&self, a: &AuditRecord, mine: bool) -> Result<bool, ProofsError> {
        // one record at a time from log to fault table, so the table changes in log order and
        // replaying the log at start gives the same faulty set (the fault table itself cannot
        // be held across the append: a compaction reads it)
        let _in_order = self
            .verdicts
            .lock()
            .map_err(|_| StoreError::Backend("verdict lock poisoned".into()))?;
        self.append(EntryKind::Audit, a.encode())?;
        if mine {
            if let Ok(mut s) = self.status.lock() {
                match a.verdict {
                    Verdict::Pass => s.audits_pass += 1,
                    Verdict::Fail => s.audits_fail += 1,
                    Verdict::Missed => s.audits_missed += 1,
                }
            }
        }
        let change = self
            .faults
            .lock()
            .map_err(|_| StoreError::Backend("fault table lock poisoned".into()))?
            .apply(&a.prover, a.window, a.role, a.verdict);
        let prover = peer_str(&a.prover);
        match change {
            faults::Change::Faulty => {
                tracing::warn!(%prover, window = a.window, verdict = a.verdict.name(), role = a.role.name(), reason = %a.reason,
                    "prover failed a window; its sectors are faulty and its shards will be repaired");
            }
            faults::Change::Cleared => {
                tracing::info!(%prover, window = a.window, "prover passed again; no longer faulty");
            }
            faults::Change::None | faults::Change::StillFaulty => {}
        }
        if change != faults::Change::None {
            self.faulty_seq.send_modify(|n| *n += 1);
        }
        Ok(change == faults::Change::Faulty)
    }

    /// This node's peer id bytes.
    pub(crate) fn me(&self) -> &[u8] {
        &self.me
    }
}

/// A gossip message handed from the network event loop to the proof worker.
pub(crate) type GossipMsg = (PeerId, String, Vec<u8>, cairn_net::GossipId);
/// Gossip messages queued for the proof worker; more are dropped (audits repeat every window).
pub(crate) const GOSSIP_QUEUE: usize = 256;
/// Peers asked for their sector list per window.
const SECTOR_QUERIES: usize = 8;

/// What the prover needs from the node it runs in ([`crate::node::Node`] implements it): the
/// network, its [`Ledger`] (none when proofs are off), the stop signal, the repair trigger
/// (pulled when a peer turns faulty) and the lock that keeps one sealing pass at a time.
pub(crate) trait ProverHost: Send + Sync + 'static {
    /// The network client.
    fn net(&self) -> &NetClient;
    /// Sealing, proving and the audit log, when proofs are on.
    fn proofs(&self) -> Option<Arc<Ledger>>;
    /// Changes to `true` when the node stops.
    fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool>;
    /// Wakes the repair worker.
    fn repair_notify(&self) -> &tokio::sync::Notify;
    /// Held while a sealing pass runs.
    fn seal_lock(&self) -> &tokio::sync::Mutex<()>;
    /// Shard `cid` rebuilt from the rest of its stripe, verified (for checking an opening
    /// when no other node holds the shard).
    fn shard_rebuilt(&self, cid: Cid) -> impl std::future::Future<Output = Option<Vec<u8>>> + Send;
}

/// The node's proving duties over a [`ProverHost`]: sealing what it stores, answering and
/// running audits, gossip of sector and audit records, faults.
#[derive(Clone)]
pub(crate) struct Prover<H>(pub(crate) H);

fn proofs_err(e: ProofsError) -> NodeError {
    NodeError::Proofs(e.to_string())
}

fn peer_str(b: &[u8]) -> String {
    PeerId::from_bytes(b)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| hex(b))
}
