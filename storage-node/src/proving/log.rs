//! The node's hash-chained audit log in its store, kept bounded by compaction.
//!
//! The bound is [`MAX_LOG_ENTRIES`] plus what must be kept: when the live sector records and
//! the evidence of current faults alone exceed it, the log holds them and a compaction runs at
//! most once per [`COMPACT_BATCH`] appends.
//!
//! Entries are appended durably, each chained to the one before ([`LogEntry`]). When the log
//! holds more than [`MAX_LOG_ENTRIES`], its oldest [`COMPACT_BATCH`] entries are dropped and
//! those still needed are appended again at the head, in one durable write: the sector records
//! of commitments still registered (the ring and the auditors' view of every prover's sectors
//! are rebuilt from them) and the audits behind current faults (the faulty set is replayed
//! from them). What is needed is decided by the caller ([`carry_over`] is the rule the node
//! uses), so the log itself knows nothing of proofs. The log then starts above position 0;
//! `verify_log` takes its first entry's `prev` as the anchor.

use cairn_proofs::audit::{
    fr_bytes, AuditRecord, EntryKind, LogEntry, Retirement, SectorRecord, Verdict,
};
use cairn_repo::store::{Batch, Durability, StoreError, Table};
use cairn_repo::Repo;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Entries a log holds before it is compacted (about 50 MB at a few hundred bytes each).
pub(crate) const MAX_LOG_ENTRIES: u64 = 100_000;
/// Oldest entries dropped per compaction.
pub(crate) const COMPACT_BATCH: u64 = 10_000;

/// Position of the next entry, hash of the last one, position of the first one held, and the
/// entry count past which the next compaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    next: u64,
    last: [u8; 32],
    first: u64,
    limit: u64,
}

/// The audit log of a repo.
pub(crate) struct AuditLog {
    repo: Arc<Repo>,
    head: Mutex<Head>,
    cap: u64,
    batch: u64,
}

fn be(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn poisoned() -> StoreError {
    StoreError::Backend("audit log lock poisoned".into())
}

impl AuditLog {
    /// Opens the log of `repo`, compacted past `cap` entries `batch` at a time.
    pub(crate) fn open(repo: Arc<Repo>, cap: u64, batch: u64) -> Result<Self, StoreError> {
        let log = AuditLog {
            repo,
            head: Mutex::new(Head {
                next: 0,
                last: [0; 32],
                first: 0,
                limit: cap.max(1),
            }),
            cap: cap.max(1),
            batch: batch.clamp(1, cap.max(1)),
        };
        let entries = log.entries()?;
        if let (Some(f), Some(l)) = (entries.first(), entries.last()) {
            // positions come from disk: no arithmetic on them may overflow
            let held = l.seq.saturating_add(1).saturating_sub(f.seq);
            *log.head.lock().map_err(|_| poisoned())? = Head {
                next: l.seq.saturating_add(1),
                last: l.hash(),
                first: f.seq,
                limit: log.cap.max(held),
            };
        }
        Ok(log)
    }

    /// Every entry held, in order (undecodable ones are an error).
    pub(crate) fn entries(&self) -> Result<Vec<LogEntry>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.repo.store().table_scan(Table::AuditLog)? {
            out.push(LogEntry::decode(&v).map_err(|e| {
                StoreError::Backend(format!("audit log entry {}: {e}", hex_key(&k)))
            })?);
        }
        Ok(out)
    }

    /// At most `limit` entries from position `from` on, in order, read from there (not the
    /// whole log).
    pub(crate) fn entries_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self
            .repo
            .store()
            .table_scan_from(Table::AuditLog, &be(from), limit)?
        {
            out.push(LogEntry::decode(&v).map_err(|e| {
                StoreError::Backend(format!("audit log entry {}: {e}", hex_key(&k)))
            })?);
        }
        Ok(out)
    }

    /// Entries appended so far (the next position).
    pub(crate) fn next(&self) -> u64 {
        self.head.lock().map(|h| h.next).unwrap_or(0)
    }

    /// Appends an entry durably; when the log then holds more than its cap, compacts it,
    /// appending again the dropped entries `keep` returns. Returns the entry.
    pub(crate) fn append(
        &self,
        kind: EntryKind,
        body: Vec<u8>,
        keep: impl FnOnce(&[LogEntry]) -> Vec<(EntryKind, Vec<u8>)>,
    ) -> Result<LogEntry, StoreError> {
        if body.len() > cairn_proofs::audit::MAX_ENTRY_BODY {
            // it would not decode again, and a log that does not decode cannot be opened
            return Err(StoreError::Backend(format!(
                "a log entry of {} bytes is over the {} allowed",
                body.len(),
                cairn_proofs::audit::MAX_ENTRY_BODY
            )));
        }
        let mut head = self.head.lock().map_err(|_| poisoned())?;
        let e = LogEntry {
            seq: head.next,
            prev: head.last,
            kind,
            body,
        };
        let mut b = Batch::new();
        b.put(Table::AuditLog, be(e.seq), e.encode());
        self.repo.store().write(b, Durability::Sync)?;
        head.next = e.seq.saturating_add(1);
        head.last = e.hash();
        if head.next.saturating_sub(head.first) > head.limit {
            self.compact(&mut head, keep)?;
        }
        Ok(e)
    }

    /// Drops the oldest `batch` entries and appends again what `keep` says is still needed,
    /// in one durable write.
    fn compact(
        &self,
        head: &mut Head,
        keep: impl FnOnce(&[LogEntry]) -> Vec<(EntryKind, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let cut = head.first + self.batch;
        let dropped: Vec<LogEntry> = self
            .entries()?
            .into_iter()
            .filter(|e| e.seq < cut)
            .collect();
        let carried = keep(&dropped);
        let mut b = Batch::new();
        for e in &dropped {
            b.delete(Table::AuditLog, be(e.seq));
        }
        let mut h = Head {
            first: cut,
            ..*head
        };
        for (kind, body) in carried {
            let e = LogEntry {
                seq: h.next,
                prev: h.last,
                kind,
                body,
            };
            b.put(Table::AuditLog, be(e.seq), e.encode());
            h.next += 1;
            h.last = e.hash();
        }
        self.repo.store().write(b, Durability::Sync)?;
        tracing::info!(
            dropped = dropped.len(),
            carried = h.next - head.next,
            first = cut,
            "audit log compacted"
        );
        // when most of what was dropped had to be carried, the log cannot shrink below the
        // cap: compact again only after another batch, so appends never each scan the log
        let held = h.next.saturating_sub(h.first);
        h.limit = if held <= self.cap {
            self.cap
        } else {
            held + self.batch
        };
        *head = h;
        Ok(())
    }
}

fn hex_key(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// The node's rule for what a compaction keeps of the dropped entries: sector records whose
/// commitment is still registered (`live(prover, sector, comm_r)`), and the designated
/// auditors' fails and misses of provers that are faulty now (`faulty(prover)`), so the
/// registry and the faulty set rebuilt from the log at start stay what they were. A faulty
/// prover's retired sectors keep their record and retirement too (both are in the batch: a
/// retirement follows its record), so the audits kept still name a commitment in the log and
/// replaying it does not bring the sector back. Seal checks are not kept.
pub(crate) fn carry_over(
    dropped: &[LogEntry],
    live: impl Fn(&SectorRecord) -> bool,
    faulty: impl Fn(&[u8]) -> bool,
) -> Vec<(EntryKind, Vec<u8>)> {
    let retired: HashSet<(Vec<u8>, u64, [u8; 32])> = dropped
        .iter()
        .filter(|e| e.kind == EntryKind::Retire)
        .filter_map(|e| Retirement::decode(&e.body).ok())
        .filter(|r| faulty(&r.prover))
        .map(|r| (r.prover, r.sector, fr_bytes(&r.comm_r)))
        .collect();
    dropped
        .iter()
        .filter(|e| match e.kind {
            EntryKind::Sector => SectorRecord::decode(&e.body).is_ok_and(|r| {
                live(&r) || retired.contains(&(r.prover.clone(), r.sector, fr_bytes(&r.comm_r)))
            }),
            EntryKind::Retire => Retirement::decode(&e.body).is_ok_and(|r| {
                retired.contains(&(r.prover.clone(), r.sector, fr_bytes(&r.comm_r)))
            }),
            EntryKind::Audit => AuditRecord::decode(&e.body).is_ok_and(|a| {
                a.verdict != Verdict::Pass
                    && a.role != cairn_proofs::audit::Role::Manual
                    && faulty(&a.prover)
            }),
            // not kept: after a restart a sector whose check was dropped is checked again, and
            // one dropped after a failed check, if its record comes back, fails again
            EntryKind::Check => false,
        })
        .map(|e| (e.kind, e.body.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_bn254::Fr;
    use cairn_proofs::audit::{Role, PROOF_LEN};

    fn sector(prover: u8, n: u64) -> Vec<u8> {
        SectorRecord {
            prover: vec![prover; 38],
            sector: n,
            sector_size: 4096,
            layers: 2,
            data_len: 100,
            ticket: [7; 32],
            pieces: Vec::new(),
            comm_d: Fr::from(1u64),
            comm_r: Fr::from(n + 2),
            seal_proof: [0; PROOF_LEN],
            revealed: Vec::new(),
        }
        .encode()
    }

    fn audit(prover: u8, verdict: Verdict, role: Role) -> Vec<u8> {
        AuditRecord {
            auditor: vec![9; 38],
            prover: vec![prover; 38],
            window: 5,
            nonce: [3; 32],
            sectors: vec![(0, Fr::from(2u64))],
            open: Vec::new(),
            piece: 0,
            openings: Vec::new(),
            verdict,
            role,
            proof: if verdict == Verdict::Pass {
                vec![1; PROOF_LEN]
            } else {
                vec![]
            },
            reason: String::new(),
            answer_sig: if verdict == Verdict::Fail {
                vec![8; 64]
            } else {
                vec![]
            },
            signature: vec![4; 64],
        }
        .encode()
    }

    fn retire(prover: u8, n: u64) -> Vec<u8> {
        Retirement {
            prover: vec![prover; 38],
            sector: n,
            // the commitment `sector` gives the same number
            comm_r: Fr::from(n + 2),
            window: 1,
            signature: vec![0; 64],
        }
        .encode()
    }

    fn entry(kind: EntryKind, body: Vec<u8>) -> LogEntry {
        LogEntry {
            seq: 0,
            prev: [0; 32],
            kind,
            body,
        }
    }

    #[test]
    fn what_a_compaction_keeps() {
        use EntryKind::{Audit, Retire, Sector};
        // (entry, kept): prover 1 is faulty now, prover 2 is not; sector 5 of prover 1 was
        // replaced (its commitment is no longer registered); sectors 7 of both were retired
        // (not registered), sector 8 of prover 1 too but its retirement is not in the batch
        let table = vec![
            (entry(Sector, sector(1, 0)), true),
            (entry(Sector, sector(1, 5)), false),
            (entry(Sector, sector(2, 0)), true),
            // a faulty prover's retired sector: record and retirement stay, in order
            (entry(Sector, sector(1, 7)), true),
            (entry(Retire, retire(1, 7)), true),
            (entry(Sector, sector(2, 7)), false),
            (entry(Retire, retire(2, 7)), false),
            (entry(Sector, sector(1, 8)), false),
            // a retirement of another commitment than the record's
            (entry(Retire, retire(1, 9)), true),
            (entry(Retire, vec![1, 2, 3]), false),
            (entry(Audit, audit(1, Verdict::Fail, Role::Primary)), true),
            (entry(Audit, audit(1, Verdict::Missed, Role::Primary)), true),
            (
                entry(Audit, audit(1, Verdict::Missed, Role::Confirmer)),
                true,
            ),
            (entry(Audit, audit(1, Verdict::Pass, Role::Primary)), false),
            (entry(Audit, audit(1, Verdict::Fail, Role::Manual)), false),
            (entry(Audit, audit(2, Verdict::Fail, Role::Primary)), false),
            (entry(Audit, vec![1, 2, 3]), false),
        ];
        let dropped: Vec<LogEntry> = table.iter().map(|(e, _)| e.clone()).collect();
        let kept = carry_over(
            &dropped,
            |r| r.sector != 5 && r.sector < 7,
            |p| p == vec![1u8; 38].as_slice(),
        );
        let want: Vec<(EntryKind, Vec<u8>)> = table
            .into_iter()
            .filter(|(_, k)| *k)
            .map(|(e, _)| (e.kind, e.body))
            .collect();
        assert_eq!(kept, want);
    }

    #[test]
    fn when_everything_is_needed_compaction_runs_once_per_batch() {
        let repo = Arc::new(Repo::in_memory());
        let log = AuditLog::open(repo, 20, 5).unwrap();
        let runs = std::cell::Cell::new(0);
        let keep_all = |d: &[LogEntry]| {
            runs.set(runs.get() + 1);
            d.iter()
                .map(|e| (e.kind, e.body.clone()))
                .collect::<Vec<_>>()
        };
        for i in 0..120u8 {
            log.append(EntryKind::Audit, vec![i], keep_all).unwrap();
        }
        // 100 appends past the cap: at most one compaction per 5 of them, none lost
        assert!(runs.get() <= 21, "{} compactions", runs.get());
        assert_eq!(log.entries().unwrap().len(), 120);
    }

    #[test]
    fn the_log_stays_bounded_chained_and_keeps_what_is_needed() {
        let repo = Arc::new(Repo::in_memory());
        let log = AuditLog::open(repo.clone(), 20, 5).unwrap();
        // every tenth entry is "needed" (carried over at each compaction)
        let keep = |d: &[LogEntry]| {
            d.iter()
                .filter(|e| e.body[0] % 10 == 0)
                .map(|e| (e.kind, e.body.clone()))
                .collect::<Vec<_>>()
        };
        for i in 0..100u8 {
            log.append(EntryKind::Audit, vec![i], keep).unwrap();
            assert!(log.entries().unwrap().len() <= 20, "after {i}");
        }
        let entries = log.entries().unwrap();
        // positions consecutive from the first held, every entry chained to the one before
        for w in entries.windows(2) {
            assert_eq!(w[1].seq, w[0].seq + 1);
            assert_eq!(w[1].prev, w[0].hash());
        }
        assert!(entries[0].seq > 0);
        // the needed entries are all still there, once each
        let mut needed: Vec<u8> = entries
            .iter()
            .map(|e| e.body[0])
            .filter(|b| b % 10 == 0)
            .collect();
        needed.sort();
        needed.dedup();
        let held: Vec<u8> = entries
            .iter()
            .map(|e| e.body[0])
            .filter(|b| b % 10 == 0)
            .collect();
        assert_eq!(needed.len(), held.len(), "a needed entry held twice");
        assert_eq!(
            needed,
            (0..100u8).filter(|b| b % 10 == 0).collect::<Vec<_>>()
        );
        // reopening finds the same head
        let again = AuditLog::open(repo, 20, 5).unwrap();
        assert_eq!(again.next(), log.next());
        let e = again.append(EntryKind::Audit, vec![200], keep).unwrap();
        assert_eq!(e.prev, entries.last().unwrap().hash());
    }
}
