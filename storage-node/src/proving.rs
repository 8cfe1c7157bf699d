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

use crate::node::{block_on_pool, Node, NodeError};
use ark_bn254::Fr;
use ark_ff::PrimeField;
use cairn_core::Cid;
use cairn_net::wire::{CtrlRequest, CtrlResponse};
use cairn_net::PeerId;
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

fn fr_of_hex(s: &str) -> Option<Fr> {
    let b: [u8; 32] = unhex(s)?.try_into().ok()?;
    audit::fr_from_bytes(&b).ok()
}

/// Counters for status.
#[derive(Debug, Clone, Default, Serialize)]
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

/// The proof state of a node.
/// Window proofs one peer may ask for per window (an auditor asks once; retries after a miss
/// fit).
pub const PROOFS_PER_PEER_WINDOW: u32 = 4;
/// Distinct peers that may ask for proofs per window.
const MAX_PROVE_PEERS: usize = 1024;

pub(crate) struct Proofs {
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

impl Proofs {
    /// Loads keys (running the development setup if they are missing) and the log.
    pub(crate) fn open(
        repo: Arc<Repo>,
        me: PeerId,
        opts: ProofOptions,
    ) -> Result<Self, ProofsError> {
        opts.params.check()?;
        let seal_keys = opts.params.seal_keys(&opts.keys_dir)?;
        let post_keys = opts.params.post_keys(&opts.keys_dir)?;
        let p = Proofs {
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

    /// Seals every stored block not yet in a sector, on the low-priority sealing thread.
    /// Returns the new sector records.
    pub(crate) fn seal_pending(&self) -> Result<Vec<SectorRecord>, ProofsError> {
        self.seal_pool.install(|| self.seal_pending_here())
    }

    fn seal_pending_here(&self) -> Result<Vec<SectorRecord>, ProofsError> {
        let store = self.repo.store();
        let mut pending = Vec::new();
        store.for_each_cid(&mut |c| {
            pending.push(c);
            true
        })?;
        let mut todo = Vec::new();
        for c in pending {
            if store.table_get(Table::Sealed, &c.to_bytes())?.is_none() {
                todo.push(c);
            }
        }
        let p = self.opts.params.sector();
        let cap = p.capacity();
        // full sectors are sealed in batches labelled together (eight lanes at once where the
        // CPU has AVX-512 IFMA), within a memory budget for their labels and replicas
        let batch_max = (SEAL_BATCH_BYTES / (p.nodes * (p.layers * 80 + 96)).max(1)).clamp(1, 8);
        let mut out = Vec::new();
        let mut batch: Vec<Pending> = Vec::new();
        let mut cur = Pending::default();
        for cid in todo {
            let Some(bytes) = store.get_raw(&cid)? else {
                continue;
            };
            if bytes.is_empty() {
                cur.done.push(cid);
            }
            let mut off = 0usize;
            while off < bytes.len() {
                let n = (cap - cur.data.len()).min(bytes.len() - off);
                cur.data.extend_from_slice(&bytes[off..off + n]);
                cur.pieces.push((cid, off as u64, n as u64));
                off += n;
                if off == bytes.len() {
                    cur.done.push(cid);
                }
                if cur.data.len() == cap {
                    batch.push(std::mem::take(&mut cur));
                    if batch.len() == batch_max {
                        out.extend(self.seal_batch(&batch)?);
                        batch.clear();
                    }
                }
            }
        }
        if !cur.data.is_empty() {
            batch.push(cur);
        }
        if !batch.is_empty() {
            out.extend(self.seal_batch(&batch)?);
        }
        Ok(out)
    }

    /// Seals `batch` (labelled together), stores each sealed sector and logs its record.
    fn seal_batch(&self, batch: &[Pending]) -> Result<Vec<SectorRecord>, ProofsError> {
        let mut rng = rand::rngs::OsRng;
        let mut inputs = Vec::with_capacity(batch.len());
        for b in batch {
            let sector = rng.next_u64() >> 1;
            let mut ticket = [0u8; 32];
            rng.fill_bytes(&mut ticket);
            inputs.push((sector, ticket, b.data.as_slice()));
        }
        let t = std::time::Instant::now();
        let labelled = audit::label_sectors(&self.opts.params, &self.me, &inputs)?;
        let label_secs = t.elapsed().as_secs_f64();
        let mut out = Vec::with_capacity(batch.len());
        // each sector is kept (and its record logged) as soon as its seal is proved
        for ((b, input), (sealed, labels)) in batch.iter().zip(&inputs).zip(labelled) {
            let t = std::time::Instant::now();
            let record = audit::prove_seal(
                &self.opts.params,
                &self.seal_keys,
                &self.me,
                input,
                &sealed,
                labels,
            )?;
            self.keep_sealed(b, &sealed, &record)?;
            tracing::info!(
                sector = record.sector,
                bytes = b.data.len(),
                batch = batch.len(),
                batch_label_secs = label_secs,
                prove_secs = t.elapsed().as_secs_f64(),
                "sector sealed"
            );
            out.push(record);
        }
        Ok(out)
    }

    /// Stores a sealed sector (replica, metadata, which blocks it completes) and logs it.
    fn keep_sealed(
        &self,
        b: &Pending,
        sealed: &Sealed,
        record: &SectorRecord,
    ) -> Result<(), ProofsError> {
        let sector = record.sector;
        let mut replica = Vec::with_capacity(sealed.replica.len() * 32);
        for x in &sealed.replica {
            replica.extend_from_slice(&fr_bytes(x));
        }
        let meta = SectorMeta {
            record: hex(&record.encode()),
            comm_c: hex(&fr_bytes(&sealed.comm_c)),
            comm_r_last: hex(&fr_bytes(&sealed.comm_r_last)),
            pieces: b
                .pieces
                .iter()
                .map(|(c, o, n)| (c.to_string(), *o, *n))
                .collect(),
        };
        let mut batch = Batch::new();
        batch
            .put(
                Table::Sectors,
                be(sector),
                serde_json::to_vec(&meta).unwrap_or_default(),
            )
            .put(Table::Replicas, be(sector), replica);
        for c in &b.done {
            batch.put(Table::Sealed, c.to_bytes(), be(sector));
        }
        self.repo.store().write(batch, Durability::Sync)?;
        self.remember(record);
        self.append(EntryKind::Sector, record.encode())?;
        if let Ok(mut s) = self.status.lock() {
            s.sectors += 1;
            s.sealed_bytes += b.data.len() as u64;
        }
        Ok(())
    }

    fn load_sector(&self, id: u64) -> Result<Option<(SectorRecord, Sealed)>, ProofsError> {
        let store = self.repo.store();
        let Some(m) = store.table_get(Table::Sectors, &be(id))? else {
            return Ok(None);
        };
        let Some(rep) = store.table_get(Table::Replicas, &be(id))? else {
            return Ok(None);
        };
        let meta: SectorMeta = serde_json::from_slice(&m).map_err(|_| ProofsError::Meta(id))?;
        let record = unhex(&meta.record)
            .and_then(|b| SectorRecord::decode(&b).ok())
            .ok_or(ProofsError::Meta(id))?;
        let nodes = self.opts.params.sector().nodes;
        if rep.len() != nodes * 32 {
            return Err(ProofsError::Meta(id));
        }
        let replica = rep.chunks(32).map(Fr::from_le_bytes_mod_order).collect();
        let sealed = Sealed {
            replica,
            replica_id: record.replica_id(),
            comm_d: record.comm_d,
            comm_c: fr_of_hex(&meta.comm_c).ok_or(ProofsError::Meta(id))?,
            comm_r_last: fr_of_hex(&meta.comm_r_last).ok_or(ProofsError::Meta(id))?,
            comm_r: record.comm_r,
        };
        Ok(Some((record, sealed)))
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

impl Node {
    fn proofs(&self) -> Option<Arc<Proofs>> {
        self.inner.proofs.clone()
    }

    /// Peers this node currently counts as faulty.
    pub fn faulty_peers(&self) -> Vec<PeerId> {
        self.inner
            .proofs
            .as_ref()
            .and_then(|p| p.faulty.lock().ok().map(|f| f.keys().copied().collect()))
            .unwrap_or_default()
    }

    /// A receiver that changes whenever the faulty set does (tests and the API wait on it).
    pub fn faulty_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.proofs.as_ref().map(|p| p.faulty_seq.subscribe())
    }

    /// Proof counters, when proofs are on.
    pub fn proof_status(&self) -> Option<ProofStatus> {
        self.inner.proofs.as_ref().map(|p| p.status())
    }

    /// The audit log (entries from `from` on, at most [`LOG_PAGE`]).
    pub async fn audit_log(&self, from: u64) -> Result<Vec<LogEntry>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(Vec::new());
        };
        let all = block_on_pool(move || p.log()).await?.map_err(proofs_err)?;
        Ok(all.into_iter().skip(from as usize).take(LOG_PAGE).collect())
    }

    /// Seals every stored block not yet in a sector, now.
    pub async fn seal_now(&self) -> Result<usize, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(0);
        };
        let _one = self.inner.seal_lock.lock().await;
        let recs = block_on_pool(move || p.seal_pending())
            .await?
            .map_err(proofs_err)?;
        for r in &recs {
            if let Err(e) = self.inner.net.publish(SECTOR_TOPIC, r.encode()).await {
                tracing::debug!(error = %e, "sector record not gossiped (peers ask for it at audit time)");
            }
        }
        Ok(recs.len())
    }

    pub(crate) async fn seal_worker(self) {
        let Some(p) = self.proofs() else { return };
        let mut stop = self.inner.stop.subscribe();
        let mut tick = tokio::time::interval(p.opts.seal_interval);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.seal_now().await {
                tracing::warn!(error = %e, "sealing failed");
            }
        }
    }

    pub(crate) async fn gossip_worker(self, mut rx: mpsc::Receiver<GossipMsg>) {
        let Some(p) = self.proofs() else { return };
        let mut stop = self.inner.stop.subscribe();
        loop {
            let (source, topic, data) = tokio::select! {
                _ = stop.changed() => return,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            let p = p.clone();
            let node = self.clone();
            let outcome = match topic.as_str() {
                SECTOR_TOPIC => {
                    block_on_pool(move || {
                        let r = SectorRecord::decode(&data)?;
                        if r.prover != source.to_bytes() {
                            return Err(AuditError::Field(
                                "sector record gossiped by another peer",
                            )
                            .into());
                        }
                        p.register(&r).map(|_| false)
                    })
                    .await
                }
                AUDIT_TOPIC => {
                    let a = match AuditRecord::decode(&data) {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::debug!(%source, error = %e, "malformed audit record dropped");
                            continue;
                        }
                    };
                    node.accept_audit(a).await
                }
                _ => continue,
            };
            match outcome {
                Ok(Ok(true)) => self.inner.repair_now.notify_one(),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%source, %topic, error = %e, "gossip record rejected")
                }
                Err(e) => tracing::warn!(error = %e, "gossip handling failed"),
            }
        }
    }

    /// Checks a gossiped audit record (signature, known commitments, proof) and logs it.
    async fn accept_audit(&self, a: AuditRecord) -> Result<Result<bool, ProofsError>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(Ok(false));
        };
        if a.auditor == p.me() {
            return Ok(Ok(false));
        }
        if !cairn_net::identity::verify_signature(&a.auditor, &a.signed_bytes(), &a.signature) {
            return Ok(Err(AuditError::Field("auditor signature invalid").into()));
        }
        let known = p.sectors_of(&a.prover);
        if a.sectors.iter().any(|s| !known.contains(s)) {
            if let Ok(prover) = PeerId::from_bytes(&a.prover) {
                self.fetch_sectors(prover).await;
            }
        }
        let p2 = p.clone();
        block_on_pool(move || {
            let known = p2.sectors_of(&a.prover);
            if a.sectors.iter().any(|s| !known.contains(s)) {
                return Err(AuditError::Field("audit of sectors with no known commitment").into());
            }
            let ok = !a.proof.is_empty() && p2.proof_verifies(&a);
            match a.verdict {
                Verdict::Pass if !ok => {
                    return Err(AuditError::Field("a pass whose proof does not verify").into())
                }
                Verdict::Fail | Verdict::Missed if ok => {
                    return Err(AuditError::Field("a fail whose proof verifies").into())
                }
                _ => {}
            }
            p2.record_audit(&a, false)
        })
        .await
    }

    /// Asks `peer` for its sector records and registers the ones whose seal proof verifies.
    async fn fetch_sectors(&self, peer: PeerId) {
        let Some(p) = self.proofs() else { return };
        let mut from = 0u64;
        for _ in 0..64 {
            let req = CtrlRequest::App(AuditRequest::Sectors { from }.encode());
            let resp =
                tokio::time::timeout(Duration::from_secs(10), self.inner.net.ctrl(peer, req)).await;
            let Ok(Ok(CtrlResponse::App(bytes))) = resp else {
                return;
            };
            let Ok(AuditResponse::Sectors(recs)) = AuditResponse::decode(&bytes) else {
                return;
            };
            let full = recs.len() == MAX_SECTORS_PAGE;
            let next = recs
                .iter()
                .map(|r| r.sector)
                .max()
                .map(|m| m.saturating_add(1));
            let p2 = p.clone();
            let owner = peer.to_bytes();
            let _ = block_on_pool(move || {
                // a peer may only vouch for its own sectors
                for r in recs.iter().filter(|r| r.prover == owner) {
                    if let Err(e) = p2.register(r) {
                        tracing::info!(%peer, sector = r.sector, error = %e, "sector record rejected");
                    }
                }
            })
            .await;
            match next {
                Some(n) if full && n > from => from = n,
                _ => return,
            }
        }
    }

    pub(crate) async fn audit_worker(self) {
        let Some(p) = self.proofs() else { return };
        let mut stop = self.inner.stop.subscribe();
        let _ = self.inner.net.subscribe(AUDIT_TOPIC).await;
        let _ = self.inner.net.subscribe(SECTOR_TOPIC).await;
        let secs = p.opts.window.as_secs().max(1);
        loop {
            // audit at a random point of the next window's first half: auditors spread out,
            // so provers do not all prove at once, and every proof has half a window or more
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let into = now.as_millis() as u64 % (secs * 1000);
            let jitter = rand::rngs::OsRng.next_u64() % (secs * 500).max(1);
            let wait = Duration::from_millis(secs * 1000 - into + 200 + jitter);
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.audit_once().await {
                Ok(Some(a)) => {
                    tracing::info!(prover = ?PeerId::from_bytes(&a.prover).ok(), window = a.window,
                    verdict = a.verdict.name(), "audit")
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "audit failed"),
            }
        }
    }

    /// Audits this window's peer: fresh nonce, random batch of its committed sectors, verify,
    /// sign, log and gossip. `None` when there is no one to audit.
    pub async fn audit_once(&self) -> Result<Option<AuditRecord>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(None);
        };
        let me = self.peer_id();
        // learn the sectors of peers that have not told us theirs
        let known = p.provers();
        let connected = self.inner.net.connected_peers().await.unwrap_or_default();
        for peer in connected
            .into_iter()
            .filter(|c| !known.contains(c))
            .take(SECTOR_QUERIES)
        {
            self.fetch_sectors(peer).await;
        }
        let mut ring = p.provers();
        if ring.is_empty() {
            return Ok(None);
        }
        ring.push(me);
        ring.sort();
        ring.dedup();
        let window = p.window_now();
        let h = blake3::hash(&window.to_le_bytes());
        let shift = 1
            + (u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]))
                % (ring.len() as u64 - 1)) as usize;
        let pos = ring.iter().position(|x| *x == me).unwrap_or(0);
        self.audit_once_for(ring[(pos + shift) % ring.len()]).await
    }

    /// Audits `target` now (what [`Node::audit_once`] does for the window's peer). `None` when
    /// no sector of `target` is known.
    pub async fn audit_once_for(&self, target: PeerId) -> Result<Option<AuditRecord>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(None);
        };
        let me = self.peer_id();
        let window = p.window_now();
        if !p.provers().contains(&target) {
            self.fetch_sectors(target).await;
        }
        let committed = p.sectors_of(&target.to_bytes());
        if committed.is_empty() {
            return Ok(None);
        }
        let mut rng = rand::rngs::OsRng;
        let batch: Vec<(u64, Fr)> = (0..p.opts.params.batch)
            .map(|_| committed[(rng.next_u64() % committed.len() as u64) as usize])
            .collect();
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let req = AuditRequest::Prove {
            window,
            nonce,
            sectors: batch.iter().map(|s| s.0).collect(),
        };
        let deadline = answer_deadline(p.opts.window);
        let answer = tokio::time::timeout(
            deadline,
            self.inner.net.ctrl(target, CtrlRequest::App(req.encode())),
        )
        .await;
        let mut rec = AuditRecord {
            auditor: me.to_bytes(),
            prover: target.to_bytes(),
            window,
            nonce,
            sectors: batch,
            verdict: Verdict::Missed,
            proof: Vec::new(),
            reason: String::new(),
            signature: Vec::new(),
        };
        match answer {
            Err(_) => rec.reason = format!("no answer within {:.0} s", deadline.as_secs_f64()),
            Ok(Err(e)) => rec.reason = cut(&e.to_string()),
            Ok(Ok(CtrlResponse::Error(e))) => {
                rec.verdict = Verdict::Fail;
                rec.reason = cut(&e);
            }
            Ok(Ok(CtrlResponse::App(bytes))) => match AuditResponse::decode(&bytes) {
                Ok(AuditResponse::Proof(proof)) => {
                    rec.proof = proof.to_vec();
                    let (p2, r2) = (p.clone(), rec.clone());
                    let ok = block_on_pool(move || p2.proof_verifies(&r2)).await?;
                    if ok {
                        rec.verdict = Verdict::Pass;
                    } else {
                        rec.verdict = Verdict::Fail;
                        rec.reason = "the proof does not verify".into();
                    }
                }
                _ => {
                    rec.verdict = Verdict::Fail;
                    rec.reason = "malformed answer".into();
                }
            },
            Ok(Ok(_)) => {
                rec.verdict = Verdict::Fail;
                rec.reason = "unexpected answer".into();
            }
        }
        rec.signature = self.inner.net.sign(&rec.signed_bytes());
        let (p2, r2) = (p.clone(), rec.clone());
        let newly_faulty = block_on_pool(move || p2.record_audit(&r2, true))
            .await?
            .map_err(proofs_err)?;
        if let Err(e) = self.inner.net.publish(AUDIT_TOPIC, rec.encode()).await {
            tracing::debug!(error = %e, "audit record not gossiped");
        }
        if newly_faulty {
            self.inner.repair_now.notify_one();
        }
        Ok(Some(rec))
    }
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(audit::MAX_REASON);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

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
