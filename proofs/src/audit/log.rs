//! The hash-chained audit log and its end-to-end verification.

use super::*;
use crate::keys::Keys;
use std::collections::HashMap;

/// What a log entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A [`SectorRecord`] this node verified.
    Sector,
    /// An [`AuditRecord`] (this node's own or received by gossip).
    Audit,
    /// A [`Retirement`] (this node's own or received by gossip).
    Retire,
    /// A [`SealCheck`] (this node's own or received by gossip).
    Check,
}

/// One link of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Position, from 0.
    pub seq: u64,
    /// Hash of the previous entry (zeros for the first).
    pub prev: [u8; 32],
    /// What the body is.
    pub kind: EntryKind,
    /// The encoded record.
    pub body: Vec<u8>,
}

impl LogEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 48);
        out.push(LOG_VERSION);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.prev);
        out.push(match self.kind {
            EntryKind::Sector => 1,
            EntryKind::Audit => 2,
            EntryKind::Retire => 3,
            EntryKind::Check => 4,
        });
        put_bytes(&mut out, &self.body);
        out
    }

    /// Decodes untrusted bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::with_version(buf, LOG_VERSION)?;
        let seq = r.u64()?;
        let prev = r.b32()?;
        let kind = match r.u8()? {
            1 => EntryKind::Sector,
            2 => EntryKind::Audit,
            3 => EntryKind::Retire,
            4 => EntryKind::Check,
            _ => return Err(AuditError::Field("entry kind")),
        };
        let body = r.bytes(MAX_ENTRY_BODY, "entry body length")?.to_vec();
        r.end()?;
        Ok(LogEntry {
            seq,
            prev,
            kind,
            body,
        })
    }

    /// This entry's hash: blake3 of a domain tag and the encoding.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"cairn audit log v1");
        h.update(&self.encode());
        *h.finalize().as_bytes()
    }
}

/// What re-verifying a log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    /// Position of the first entry: 0, or where a compacted log now starts (the entries before
    /// it were dropped, and the still-needed ones appended again; [`verify_log`]).
    pub first: u64,
    /// Entries checked.
    pub entries: u64,
    /// Sector records whose seal proof verified.
    pub sectors: u64,
    /// Passes whose proof verified.
    pub passes: u64,
    /// Fails that carried a proof, re-checked to be invalid (the prover's signature on it
    /// checked too).
    pub fails_rechecked: u64,
    /// Fails on a refusal the prover signed, and misses: a miss is a signed claim of the
    /// auditor's that cannot be re-checked, which is why one needs a second auditor.
    pub claims: u64,
    /// Retirements signed by their prover, of a sector committed in the log with the same
    /// `comm_r` (in a compacted log, whose retired records were dropped, signed only).
    pub retired: u64,
    /// Seal checks passed, their answer re-verified against the sector's record.
    pub checks_passed: u64,
    /// Seal checks failed on an answer the prover signed, re-checked not to verify (or a
    /// signed refusal), and missed checks (the auditor's claim).
    pub checks_failed: u64,
    /// Problems, each with the entry's position (empty: the log verifies).
    pub problems: Vec<String>,
}

/// Checks a signature: `(signer peer id bytes, message, signature) -> valid`.
pub type SignatureCheck = dyn Fn(&[u8], &[u8], &[u8]) -> bool;

/// Re-verifies a whole log: consecutive positions, the hash chain, every sector record's seal
/// proof, every audit record's signature (`sig_ok(peer, message, signature)`), the prover's
/// signature on the answer behind every fail, that audited sectors were committed in the log
/// with the same `comm_r`, every carried proof, and the paths of opened leaves (a fail about
/// the opened bytes needs the block and is counted as a claim).
///
/// A node bounds its log by compaction: it drops the oldest entries and appends again those
/// still needed (sector records of live commitments, the audits behind current faults). The
/// log then starts at a position above 0, its first entry's `prev` is the hash of a dropped
/// entry (taken as the anchor), and a sector record may follow an audit that names it, so
/// commitments are collected from the whole log before audits are checked.
pub fn verify_log(
    entries: &[LogEntry],
    params: &NetParams,
    seal_keys: &Keys,
    post_keys: &Keys,
    sig_ok: &SignatureCheck,
) -> LogReport {
    let mut rep = LogReport {
        first: entries.first().map(|e| e.seq).unwrap_or(0),
        ..LogReport::default()
    };
    let mut prev = match entries.first() {
        Some(e) if e.seq > 0 => e.prev,
        _ => [0u8; 32],
    };
    // (prover, sector) -> its record
    let mut committed: HashMap<(Vec<u8>, u64), SectorRecord> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if e.kind != EntryKind::Sector {
            continue;
        }
        match SectorRecord::decode(&e.body) {
            Err(err) => rep.problems.push(format!("entry {i}: {err}")),
            Ok(s) => match s.verify_seal(params, seal_keys) {
                Ok(true) => {
                    rep.sectors += 1;
                    committed.insert((s.prover.clone(), s.sector), s);
                }
                Ok(false) => rep.problems.push(format!(
                    "entry {i}: seal proof of sector {} invalid",
                    s.sector
                )),
                Err(err) => rep.problems.push(format!("entry {i}: {err}")),
            },
        }
    }
    for (i, e) in entries.iter().enumerate() {
        rep.entries += 1;
        if e.seq != rep.first + i as u64 {
            rep.problems
                .push(format!("entry {i}: position {} out of order", e.seq));
        }
        if e.prev != prev {
            rep.problems
                .push(format!("entry {i}: does not chain to the entry before"));
        }
        prev = e.hash();
        if e.kind == EntryKind::Retire {
            match Retirement::decode(&e.body) {
                Err(err) => rep.problems.push(format!("entry {i}: {err}")),
                Ok(r) if !sig_ok(&r.prover, &r.signed_bytes(), &r.signature) => rep
                    .problems
                    .push(format!("entry {i}: retirement signature invalid")),
                // a compacted log drops a retired sector's record (it is no longer live), so
                // there the commitment cannot be checked
                Ok(r)
                    if rep.first == 0
                        && committed
                            .get(&(r.prover.clone(), r.sector))
                            .map(|x| x.comm_r)
                            != Some(r.comm_r) =>
                {
                    rep.problems.push(format!(
                        "entry {i}: retires a sector with no matching commitment in the log"
                    ))
                }
                Ok(_) => rep.retired += 1,
            }
            continue;
        }
        if e.kind == EntryKind::Check {
            check_entry(
                i,
                &e.body,
                &committed,
                (params, seal_keys),
                sig_ok,
                &mut rep,
            );
            continue;
        }
        if e.kind != EntryKind::Audit {
            continue;
        }
        match AuditRecord::decode(&e.body) {
            Err(err) => rep.problems.push(format!("entry {i}: {err}")),
            Ok(a) => {
                if !sig_ok(&a.auditor, &a.signed_bytes(), &a.signature) {
                    rep.problems
                        .push(format!("entry {i}: auditor signature invalid"));
                    continue;
                }
                if a.verdict == Verdict::Fail
                    && !sig_ok(&a.prover, &a.answer_message(), &a.answer_sig)
                {
                    rep.problems.push(format!(
                        "entry {i}: a fail without the prover's signed answer"
                    ));
                    continue;
                }
                let unknown = a.sectors.iter().any(|(id, c)| {
                    committed.get(&(a.prover.clone(), *id)).map(|x| x.comm_r) != Some(*c)
                });
                if unknown {
                    rep.problems.push(format!(
                        "entry {i}: audits a sector with no matching commitment in the log"
                    ));
                    continue;
                }
                // the opened leaves' paths lead to the first sector's comm_d, from a piece it
                // lists (their bytes need the block, which the log does not hold)
                let paths_ok = a.open.is_empty()
                    || a.sectors.first().is_some_and(|(id, _)| {
                        committed.get(&(a.prover.clone(), *id)).is_some_and(|s| {
                            (a.piece as usize) < s.pieces.len()
                                && a.openings_verify(params, s.comm_d)
                        })
                    });
                let ok = a.proof_verifies(params, post_keys) && paths_ok;
                match (a.verdict, a.proof.is_empty()) {
                    (Verdict::Pass, _) if ok => rep.passes += 1,
                    (Verdict::Pass, _) => rep.problems.push(format!(
                        "entry {i}: a pass whose proof or openings do not verify"
                    )),
                    (_, false) if !ok => rep.fails_rechecked += 1,
                    // a fail about the opened bytes: checkable only with the block
                    (_, false) if !a.open.is_empty() => rep.claims += 1,
                    (_, false) => rep
                        .problems
                        .push(format!("entry {i}: a fail whose proof verifies")),
                    (_, true) => rep.claims += 1,
                }
            }
        }
    }
    rep
}

/// Re-checks a logged seal check: the auditor's signature, the prover's signed answer behind a
/// fail, and the answer against the sector's record (a pass must verify, a fail with a proof
/// must not). A check of a sector whose record is not in the log is a problem, except in a
/// compacted log (a sector dropped after a failed check is no longer live).
fn check_entry(
    i: usize,
    body: &[u8],
    committed: &HashMap<(Vec<u8>, u64), SectorRecord>,
    (params, seal_keys): (&NetParams, &Keys),
    sig_ok: &SignatureCheck,
    rep: &mut LogReport,
) {
    let c = match SealCheck::decode(body) {
        Ok(c) => c,
        Err(err) => return rep.problems.push(format!("entry {i}: {err}")),
    };
    if !sig_ok(&c.auditor, &c.signed_bytes(), &c.signature) {
        return rep
            .problems
            .push(format!("entry {i}: seal check's auditor signature invalid"));
    }
    if c.verdict == Verdict::Fail && !sig_ok(&c.prover, &c.answer_message(), &c.answer_sig) {
        return rep.problems.push(format!(
            "entry {i}: a failed seal check without the prover's signed answer"
        ));
    }
    let Some(record) = committed
        .get(&(c.prover.clone(), c.sector))
        .filter(|r| r.comm_r == c.comm_r)
    else {
        if rep.first == 0 {
            rep.problems.push(format!(
                "entry {i}: a seal check of a sector with no matching commitment in the log"
            ));
        }
        return;
    };
    let ok = !c.proof.is_empty() && c.answer_verifies(params, seal_keys, record);
    match c.verdict {
        Verdict::Pass if ok => rep.checks_passed += 1,
        Verdict::Pass => rep.problems.push(format!(
            "entry {i}: a passed seal check whose answer does not verify"
        )),
        _ if ok => rep.problems.push(format!(
            "entry {i}: a failed seal check whose answer verifies"
        )),
        _ => rep.checks_failed += 1,
    }
}
