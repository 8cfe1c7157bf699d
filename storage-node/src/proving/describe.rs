//! Log entries as JSON for the API and the CLI.

use super::*;
use cairn_proofs::audit::Retirement;

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
    };
    serde_json::json!({
        "seq": e.seq,
        "hash": hex(&e.hash()),
        "prev": hex(&e.prev),
        "entry": hex(&e.encode()),
        "summary": summary,
    })
}
