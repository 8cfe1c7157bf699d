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
//! - **Faults**: a failed or missed window marks the prover faulty: it no longer counts as a
//!   live holder, so repair rebuilds its shards elsewhere; a later pass clears it.

use crate::error::{offload, NodeError};
use ark_bn254::Fr;
use ark_ff::PrimeField;
use cairn_core::Cid;
use cairn_net::wire::{CtrlRequest, CtrlResponse};
use cairn_net::{NetClient, PeerId};
use cairn_proofs::audit::{
    self, fr_bytes, AuditError, AuditRecord, AuditRequest, AuditResponse, EntryKind, LogEntry,
    NetParams, SectorRecord, Verdict, MAX_SECTORS_PAGE,
};
use cairn_proofs::keys::{KeyError, Keys};
use cairn_proofs::sdr::Sealed;
use cairn_repo::store::{Batch, Durability, StoreError, Table};
use cairn_repo::Repo;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod prover;
mod quota;
mod schedule;
mod seal;
use thiserror::Error;
use tokio::sync::mpsc;

/// Gossip topic of signed audit records.
pub const AUDIT_TOPIC: &str = "/cairn/audit/1";
/// Gossip topic of sector records.
pub const SECTOR_TOPIC: &str = "/cairn/sectors/1";
/// Audit log entries returned per API page.
pub const LOG_PAGE: usize = 1000;

/// Proof settings of a node.
#[derive(Debug, Clone)]
pub struct ProofOptions {
    /// The network's proof parameters.
    pub params: NetParams,
    /// Length of a proving window.
    pub window: Duration,
    /// Where development keys are cached.
    pub keys_dir: PathBuf,
    /// How often the sealing worker looks for unsealed blocks.
    pub seal_interval: Duration,
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

/// Memory for one sealing batch's labels and replicas (about 80 bytes per node and layer plus
/// 96 per node, per sector): up to eight 256 KiB sectors fit many times over; very large
/// sectors are sealed one at a time.
const SEAL_BATCH_BYTES: usize = 512 << 20;

use cairn_proofs::audit::{from_hex as unhex, to_hex as hex};

/// A field element from the 64 hex digits of its canonical little-endian bytes.
fn fr_of_hex(s: &str) -> Option<Fr> {
    audit::fr_from_bytes(&unhex(s)?.try_into().ok()?).ok()
}

/// Counters for status.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProofStatus {
    /// Sectors this node sealed.
    pub sectors: u64,
    /// Data bytes in them.
    pub sealed_bytes: u64,
    /// Window proofs this node produced.
    pub proofs_made: u64,
    /// Audits this node made, by verdict.
    pub audits_pass: u64,
    /// Audits this node made that failed.
    pub audits_fail: u64,
    /// Audits this node made that the prover missed.
    pub audits_missed: u64,
    /// Audit log length.
    pub log_entries: u64,
    /// Peers currently marked faulty, with the window of their last failure.
    pub faulty: Vec<(String, u64)>,
    /// Sector size, layers, challenges and batch of this network.
    pub params: (usize, usize, usize, usize),
    /// Window length in seconds.
    pub window_secs: u64,
}

/// Window proofs one peer may ask for per window (an auditor asks once; retries after a miss
/// fit).
pub const PROOFS_PER_PEER_WINDOW: u32 = 4;
/// Distinct peers that may ask for proofs per window.
const MAX_PROVE_PEERS: usize = 1024;

/// The node's sector and audit ledger: sealed sectors and what is pending, window proofs
/// asked of it, verdicts, faulty peers and the hash-chained audit log, over the repo.
pub(crate) struct Ledger {
    repo: Arc<Repo>,
    me: Vec<u8>,
    pub(crate) opts: ProofOptions,
    seal_keys: Keys,
    post_keys: Keys,
    prove_lock: Mutex<()>,
    /// Window proofs made for each peer in the current window (window, peer -> count): a peer
    /// gets at most [`PROOFS_PER_PEER_WINDOW`], so nobody can keep the prover busy.
    served: Mutex<(u64, HashMap<PeerId, u32>)>,
    /// Sealing runs here: one thread at the lowest CPU priority, so that window proofs (which
    /// have a deadline) and serving are never starved by background sealing.
    seal_pool: rayon::ThreadPool,
    /// (next position, hash of the last entry).
    head: Mutex<(u64, [u8; 32])>,
    /// prover -> sector -> comm_r, from verified sector records.
    registry: Mutex<HashMap<Vec<u8>, BTreeMap<u64, Fr>>>,
    faulty: Mutex<HashMap<PeerId, u64>>,
    /// Gossiped audit records accepted per auditor and window ([`quota`]).
    pub(crate) verdict_quota: Mutex<quota::VerdictQuota>,
    /// Bumped whenever the faulty set changes.
    faulty_seq: tokio::sync::watch::Sender<u64>,
    status: Mutex<ProofStatus>,
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
        let seal_keys = opts.params.seal_keys(&opts.keys_dir)?;
        let post_keys = opts.params.post_keys(&opts.keys_dir)?;
        let p = Ledger {
            repo,
            me: me.to_bytes(),
            opts,
            seal_keys,
            post_keys,
            prove_lock: Mutex::new(()),
            served: Mutex::new((0, HashMap::new())),
            seal_pool: rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "cairn-seal".into())
                .start_handler(|_| lowest_priority())
                .build()
                .map_err(|e| StoreError::Backend(format!("sealing thread: {e}")))?,
            head: Mutex::new((0, [0; 32])),
            registry: Mutex::new(HashMap::new()),
            faulty: Mutex::new(HashMap::new()),
            verdict_quota: Mutex::new(quota::VerdictQuota::default()),
            faulty_seq: tokio::sync::watch::channel(0).0,
            status: Mutex::new(ProofStatus::default()),
        };
        let mut head = (0u64, [0u8; 32]);
        for e in p.log()? {
            head = (e.seq + 1, e.hash());
            if e.kind == EntryKind::Sector {
                if let Ok(r) = SectorRecord::decode(&e.body) {
                    p.remember(&r);
                }
            }
        }
        if let Ok(mut h) = p.head.lock() {
            *h = head;
        }
        let mut st = ProofStatus::default();
        for (_, v) in p.repo.store().table_scan(Table::Sectors)? {
            st.sectors += 1;
            if let Some(r) = serde_json::from_slice::<SectorMeta>(&v)
                .ok()
                .and_then(|m| unhex(&m.record))
                .and_then(|b| SectorRecord::decode(&b).ok())
            {
                st.sealed_bytes += r.data_len;
            }
        }
        if let Ok(mut s) = p.status.lock() {
            *s = st;
        }
        Ok(p)
    }

    fn remember(&self, r: &SectorRecord) {
        if let Ok(mut reg) = self.registry.lock() {
            reg.entry(r.prover.clone())
                .or_default()
                .insert(r.sector, r.comm_r);
        }
    }

    /// The whole log, in order.
    pub(crate) fn log(&self) -> Result<Vec<LogEntry>, ProofsError> {
        let mut out = Vec::new();
        for (_, v) in self.repo.store().table_scan(Table::AuditLog)? {
            out.push(LogEntry::decode(&v)?);
        }
        Ok(out)
    }

    /// Appends a record to the log (durably).
    fn append(&self, kind: EntryKind, body: Vec<u8>) -> Result<LogEntry, ProofsError> {
        let mut head = self
            .head
            .lock()
            .map_err(|_| StoreError::Backend("audit log lock poisoned".into()))?;
        let e = LogEntry {
            seq: head.0,
            prev: head.1,
            kind,
            body,
        };
        let mut b = Batch::new();
        b.put(Table::AuditLog, be(e.seq), e.encode());
        self.repo.store().write(b, Durability::Sync)?;
        *head = (e.seq + 1, e.hash());
        if let Ok(mut s) = self.status.lock() {
            s.log_entries = head.0;
        }
        Ok(e)
    }

    /// Whether `peer` is marked faulty.
    pub(crate) fn is_faulty(&self, peer: &PeerId) -> bool {
        self.faulty
            .lock()
            .map(|f| f.contains_key(peer))
            .unwrap_or(false)
    }

    /// Status counters.
    pub(crate) fn status(&self) -> ProofStatus {
        let mut s = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        s.faulty = self
            .faulty
            .lock()
            .map(|f| f.iter().map(|(p, w)| (p.to_string(), *w)).collect())
            .unwrap_or_default();
        let p = self.opts.params;
        s.params = (p.sector_size, p.layers, p.challenges, p.batch);
        s.window_secs = self.opts.window.as_secs();
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
        for (k, v) in self.repo.store().table_scan(Table::Sectors)? {
            let id = u64::from_be_bytes(k.as_slice().try_into().map_err(|_| ProofsError::Meta(0))?);
            if id < from {
                continue;
            }
            let meta: SectorMeta = serde_json::from_slice(&v).map_err(|_| ProofsError::Meta(id))?;
            if let Some(r) = unhex(&meta.record).and_then(|b| SectorRecord::decode(&b).ok()) {
                out.push(r);
            }
            if out.len() == MAX_SECTORS_PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// Answers an auditor (runs on the blocking pool).
    pub(crate) fn answer(&self, from: PeerId, msg: &[u8]) -> Result<Vec<u8>, String> {
        match AuditRequest::decode(msg).map_err(|e| e.to_string())? {
            AuditRequest::Sectors { from: first } => self
                .own_records(first)
                .map(|v| AuditResponse::Sectors(v).encode())
                .map_err(|e| e.to_string()),
            AuditRequest::Prove {
                window,
                nonce,
                sectors,
            } => {
                if sectors.len() != self.opts.params.batch {
                    return Err(format!(
                        "a proof covers {} sectors, not {}",
                        self.opts.params.batch,
                        sectors.len()
                    ));
                }
                let mut loaded = Vec::new();
                for id in &sectors {
                    match self.load_sector(*id) {
                        Ok(Some((_, s))) => loaded.push((*id, s)),
                        Ok(None) => return Err(format!("sector {id} is not held here")),
                        Err(e) => return Err(format!("sector {id}: {e}")),
                    }
                }
                self.admit_prove(from)?;
                let arrived = std::time::Instant::now();
                let _one = self.prove_lock.lock().map_err(|_| "prover lock poisoned")?;
                // the auditor started its clock before this request arrived: once its deadline
                // has passed here it has stopped waiting, so a proof now would only delay the
                // proofs still awaited (load shedding; the auditor has recorded a miss already)
                let deadline = answer_deadline(self.opts.window);
                if arrived.elapsed() >= deadline {
                    tracing::warn!(auditor = %from, window, waited = arrived.elapsed().as_secs_f64(),
                        "window proof skipped: the auditor's deadline passed while earlier proofs ran");
                    return Err(format!(
                        "busy: the {:.0} s deadline passed before this proof could start",
                        deadline.as_secs_f64()
                    ));
                }
                let refs: Vec<(u64, &Sealed)> = loaded.iter().map(|(i, s)| (*i, s)).collect();
                let t = std::time::Instant::now();
                let proof =
                    audit::prove_window(&self.opts.params, &self.post_keys, &nonce, window, &refs)
                        .map_err(|e| e.to_string())?;
                tracing::info!(auditor = %from, window, secs = t.elapsed().as_secs_f64(), "window proved");
                if let Ok(mut s) = self.status.lock() {
                    s.proofs_made += 1;
                }
                Ok(AuditResponse::Proof(proof).encode())
            }
        }
    }

    /// Counts a window proof for `from`, or refuses it when `from` already had
    /// [`PROOFS_PER_PEER_WINDOW`] this window (or too many peers asked).
    fn admit_prove(&self, from: PeerId) -> Result<(), String> {
        let now = self.window_now();
        let mut s = self.served.lock().map_err(|_| "rate limiter poisoned")?;
        if s.0 != now {
            *s = (now, HashMap::new());
        }
        if s.1.len() >= MAX_PROVE_PEERS && !s.1.contains_key(&from) {
            return Err("too many auditors this window; try the next".into());
        }
        let n = s.1.entry(from).or_insert(0);
        if *n >= PROOFS_PER_PEER_WINDOW {
            return Err(format!(
                "at most {PROOFS_PER_PEER_WINDOW} window proofs per peer per window"
            ));
        }
        *n += 1;
        Ok(())
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

    /// Logs an audit record (already checked) and applies its verdict. Returns whether the
    /// prover is now faulty.
    pub(crate) fn record_audit(&self, a: &AuditRecord, mine: bool) -> Result<bool, ProofsError> {
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
        let Ok(prover) = PeerId::from_bytes(&a.prover) else {
            return Ok(false);
        };
        let mut f = self
            .faulty
            .lock()
            .map_err(|_| StoreError::Backend("fault table lock poisoned".into()))?;
        match a.verdict {
            Verdict::Pass => {
                if f.get(&prover).is_some_and(|w| *w < a.window) {
                    f.remove(&prover);
                    self.faulty_seq.send_modify(|n| *n += 1);
                    tracing::info!(%prover, window = a.window, "prover passed again; no longer faulty");
                }
                Ok(false)
            }
            Verdict::Fail | Verdict::Missed => {
                let newly = !f.contains_key(&prover);
                f.insert(prover, a.window);
                self.faulty_seq.send_modify(|n| *n += 1);
                if newly {
                    tracing::warn!(%prover, window = a.window, verdict = a.verdict.name(), reason = %a.reason,
                        "prover failed a window; its sectors are faulty and its shards will be repaired");
                }
                Ok(newly)
            }
        }
    }

    /// This node's peer id bytes.
    pub(crate) fn me(&self) -> &[u8] {
        &self.me
    }
}

/// A gossip message handed from the network event loop to the proof worker.
pub(crate) type GossipMsg = (PeerId, String, Vec<u8>);
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

/// A log entry as JSON: position, hashes, the encoded entry (hex, for re-verification) and a
/// readable summary.
pub fn describe(e: &LogEntry) -> serde_json::Value {
    let summary = match e.kind {
        EntryKind::Sector => match SectorRecord::decode(&e.body) {
            Ok(r) => serde_json::json!({
                "kind": "sector",
                "prover": peer_str(&r.prover),
                "sector": r.sector,
                "data_len": r.data_len,
                "comm_r": hex(&fr_bytes(&r.comm_r)),
            }),
            Err(err) => serde_json::json!({ "kind": "sector", "error": err.to_string() }),
        },
        EntryKind::Audit => match AuditRecord::decode(&e.body) {
            Ok(a) => serde_json::json!({
                "kind": "audit",
                "auditor": peer_str(&a.auditor),
                "prover": peer_str(&a.prover),
                "window": a.window,
                "sectors": a.sectors.iter().map(|s| s.0).collect::<Vec<_>>(),
                "verdict": a.verdict.name(),
                "reason": a.reason,
            }),
            Err(err) => serde_json::json!({ "kind": "audit", "error": err.to_string() }),
        },
    };
    serde_json::json!({
        "seq": e.seq,
        "hash": hex(&e.hash()),
        "prev": hex(&e.prev),
        "entry": hex(&e.encode()),
        "summary": summary,
    })
}
