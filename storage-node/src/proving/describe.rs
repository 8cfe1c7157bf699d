//! Log entries as JSON for the API and the CLI.

use super::*;
use cairn_proofs::audit::{Retirement, SealCheck};

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
                "pieces": r.pieces.len(),
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
                "opened": a.open,
                "verdict": a.verdict.name(),
                "reason": a.reason,
            }),
            Err(err) => serde_json::json!({ "kind": "audit", "error": err.to_string() }),
        },
        EntryKind::Retire => match Retirement::decode(&e.body) {
            Ok(r) => serde_json::json!({
                "kind": "retire",
                "prover": peer_str(&r.prover),
                "sector": r.sector,
                "window": r.window,
                "comm_r": hex(&fr_bytes(&r.comm_r)),
            }),
            Err(err) => serde_json::json!({ "kind": "retire", "error": err.to_string() }),
        },
        EntryKind::Check => match SealCheck::decode(&e.body) {
            Ok(c) => serde_json::json!({
                "kind": "check",
                "auditor": peer_str(&c.auditor),
                "prover": peer_str(&c.prover),
                "window": c.window,
                "sector": c.sector,
                "verdict": c.verdict.name(),
                "reason": c.reason,
            }),
            Err(err) => serde_json::json!({ "kind": "check", "error": err.to_string() }),
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
    /// The current window number.
    #[serde(default)]
    pub window: u64,
    /// The pinned SHA-256 of the keys' manifest, or `None` with the development keys.
    #[serde(default)]
    pub keys_sha256: Option<String>,
    /// Bytes of replicas on disk (retired ones included until they are freed): counted in
    /// the node's used space.
    #[serde(default)]
    pub replica_bytes: u64,
    /// Sectors this node retired since it started.
    #[serde(default)]
    pub retired: u64,
    /// Seal checks this node made as an auditor, by verdict ([`check`]).
    #[serde(default)]
    pub checks_pass: u64,
    /// Seal checks this node made that failed (the sector is dropped everywhere).
    #[serde(default)]
    pub checks_fail: u64,
    /// Seal checks this node made that the prover missed (asked again next window).
    #[serde(default)]
    pub checks_missed: u64,
    /// This node's sectors that passed a seal check, as far as it has heard.
    #[serde(default)]
    pub sectors_checked: u64,
    /// This node's sectors no seal check has passed yet.
    #[serde(default)]
    pub sectors_unchecked: u64,
}
