//! The pure side of seal checks ([`super::check`]): what a node knows about them per sector
//! (registered commitments, passes, fails, the nonce pending for a check left unanswered), the
//! per-auditor quota of checks a prover answers, and the judgement of an answer. Time and
//! verification are passed in; every rule is a row of a table test below.

use super::schedule::{cut, Answer};
use super::*;
use audit::SealCheck;
use std::collections::HashSet;
/// Seal checks a designated auditor may ask of a prover per window (an auditor asks once;
/// an operator's retry fits).
pub(crate) const CHECKS_PER_AUDITOR_WINDOW: u32 = 2;
/// (auditor, window) pairs whose checks are counted at once; past it, new askers wait for
/// the windows to turn.
const MAX_CHECK_ASKERS: usize = 1024;

/// A sector's identity in the check tables: prover, sector number, `comm_r`.
type Committed = (Vec<u8>, u64, [u8; 32]);

/// What a node knows about seal checks.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    /// (prover, sector) -> (`replica_id`, `comm_d`, `comm_r`) of each registered sector: what
    /// a check's answer is verified against.
    info: HashMap<(Vec<u8>, u64), (Fr, Fr, Fr)>,
    /// Sectors that passed a check.
    passed: HashSet<Committed>,
    /// Sectors that failed one: dropped, and refused if their record comes back.
    failed: HashSet<Committed>,
    /// The nonce of a designated check a prover did not answer, per sector: asked again, the
    /// same nonce, until it is answered (a prover that declines gets no new draw).
    pending: HashMap<Committed, [u8; 32]>,
    /// Checks answered per (auditor, window).
    asked: HashMap<(PeerId, u64), u32>,
}

impl Checks {
    /// Notes a registered sector record.
    pub(super) fn note(&mut self, r: &SectorRecord) {
        self.info.insert(
            (r.prover.clone(), r.sector),
            (r.replica_id(), r.comm_d, r.comm_r),
        );
    }

    /// `(replica_id, comm_d, comm_r)` of `prover`'s registered sector `sector`.
    pub(super) fn info(&self, prover: &[u8], sector: u64) -> Option<(Fr, Fr, Fr)> {
        self.info.get(&(prover.to_vec(), sector)).copied()
    }

    /// Forgets a sector no longer registered (retired or dropped).
    pub(super) fn forget(&mut self, prover: &[u8], sector: u64) {
        if let Some((_, _, comm_r)) = self.info.remove(&(prover.to_vec(), sector)) {
            let key = (prover.to_vec(), sector, fr_bytes(&comm_r));
            self.pending.remove(&key);
            self.passed.remove(&key);
        }
    }

    /// Whether `r` names a sector that failed its seal check.
    pub(super) fn rejected(&self, r: &SectorRecord) -> bool {
        self.failed
            .contains(&(r.prover.clone(), r.sector, fr_bytes(&r.comm_r)))
    }

    /// Applies a checked verdict: what it does to the sector.
    pub(super) fn apply(&mut self, c: &SealCheck) -> Applied {
        let key = (c.prover.clone(), c.sector, fr_bytes(&c.comm_r));
        let registered = self
            .info
            .get(&(key.0.clone(), key.1))
            .is_some_and(|i| i.2 == c.comm_r);
        match c.verdict {
            Verdict::Pass => {
                self.pending.remove(&key);
                self.passed.insert(key);
                if registered {
                    Applied::Checked
                } else {
                    Applied::Nothing
                }
            }
            Verdict::Fail => {
                self.pending.remove(&key);
                self.passed.remove(&key);
                self.failed.insert(key);
                Applied::Dropped
            }
            Verdict::Missed => {
                if c.role != Role::Manual && registered {
                    self.pending.entry(key).or_insert(c.nonce);
                }
                Applied::Nothing
            }
        }
    }

    /// The nonce every check of this sector uses until one is answered (`None`: a fresh one).
    pub(super) fn pending(&self, prover: &[u8], sector: u64, comm_r: &Fr) -> Option<[u8; 32]> {
        self.pending
            .get(&(prover.to_vec(), sector, fr_bytes(comm_r)))
            .copied()
    }

    /// The lowest-numbered of `prover`'s registered sectors that has not passed a check.
    pub(super) fn unchecked(&self, prover: &[u8]) -> Option<(u64, Fr)> {
        self.info
            .iter()
            .filter(|((p, _), _)| p == prover)
            .map(|((_, s), (_, _, comm_r))| (*s, *comm_r))
            .filter(|(s, comm_r)| {
                !self
                    .passed
                    .contains(&(prover.to_vec(), *s, fr_bytes(comm_r)))
            })
            .min_by_key(|(s, _)| *s)
    }

    /// `prover`'s registered sectors: (passed a check, not yet).
    pub(super) fn tally(&self, prover: &[u8]) -> (u64, u64) {
        let mut t = (0, 0);
        for ((p, s), (_, _, comm_r)) in &self.info {
            if p == prover {
                if self.passed.contains(&(p.clone(), *s, fr_bytes(comm_r))) {
                    t.0 += 1;
                } else {
                    t.1 += 1;
                }
            }
        }
        t
    }

    /// Counts a check asked by `from` for `window` at current window `now`, or refuses it over
    /// [`CHECKS_PER_AUDITOR_WINDOW`].
    pub(super) fn admit(&mut self, from: PeerId, window: u64, now: u64) -> bool {
        self.asked.retain(|(_, w), _| w.saturating_add(1) >= now);
        let key = (from, window);
        if !self.asked.contains_key(&key) && self.asked.len() >= MAX_CHECK_ASKERS {
            return false;
        }
        let n = self.asked.entry(key).or_insert(0);
        if *n >= CHECKS_PER_AUDITOR_WINDOW {
            return false;
        }
        *n += 1;
        true
    }
}

/// What a seal check's verdict does to its sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    /// Nothing (a miss, or a pass of a commitment not registered here).
    Nothing,
    /// It passed: it counts for the blocks it lists from now on.
    Checked,
    /// It failed: dropped.
    Dropped,
}

/// An auditor's judgement of a seal check's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckJudgement {
    pub(crate) verdict: Verdict,
    pub(crate) reason: String,
    pub(crate) proof: Vec<u8>,
    pub(crate) revealed: Vec<Fr>,
    pub(crate) answer_sig: Vec<u8>,
}

/// Judges a seal check's answer (pure; the checks are passed in): an answer the prover did
/// not sign, a malformed one (other than `labels` revealed labels) or none at all is a miss; a signed answer that `verifies` is a
/// pass; a signed one that does not, or a signed refusal, is a fail.
pub(crate) fn judge_check(
    answer: &Answer,
    labels: usize,
    signed: impl Fn(&[u8], &[Fr], &str, &[u8]) -> bool,
    verifies: impl FnOnce(&[u8], &[Fr]) -> bool,
) -> CheckJudgement {
    let missed = |reason: String| CheckJudgement {
        verdict: Verdict::Missed,
        reason: cut(&reason),
        proof: Vec::new(),
        revealed: Vec::new(),
        answer_sig: Vec::new(),
    };
    let bytes = match answer {
        Answer::Late(d) => return missed(format!("no answer within {:.0} s", d.as_secs_f64())),
        Answer::Unreachable(e) => return missed(e.clone()),
        Answer::Declined(e) => return missed(format!("declined: {e}")),
        Answer::Unexpected => return missed("unexpected answer".into()),
        Answer::Reply(bytes) => bytes,
    };
    match AuditResponse::decode(bytes) {
        Ok(AuditResponse::Checked {
            proof,
            revealed,
            signature,
        }) => {
            // the network's count or nothing: a longer answer would not fit a log entry
            if revealed.len() != labels {
                return missed(format!(
                    "malformed answer: {} revealed labels, a check has {labels}",
                    revealed.len()
                ));
            }
            if !signed(&proof, &revealed, "", &signature) {
                return missed("a seal check answer the prover did not sign".into());
            }
            let ok = verifies(&proof, &revealed);
            CheckJudgement {
                verdict: if ok { Verdict::Pass } else { Verdict::Fail },
                reason: if ok {
                    String::new()
                } else {
                    "the seal check's answer does not verify".into()
                },
                proof: proof.to_vec(),
                revealed,
                answer_sig: signature,
            }
        }
        Ok(AuditResponse::Refused { reason, signature }) => {
            if !signed(&[], &[], &reason, &signature) {
                return missed("a refusal the prover did not sign".into());
            }
            CheckJudgement {
                verdict: Verdict::Fail,
                reason,
                proof: Vec::new(),
                revealed: Vec::new(),
                answer_sig: signature,
            }
        }
        _ => missed("malformed answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proofs::audit::PROOF_LEN;

    fn record(sector: u64, c: u64) -> SectorRecord {
        SectorRecord {
            prover: vec![2; 38],
            sector,
            sector_size: 4096,
            layers: 2,
            data_len: 100,
            ticket: [7; 32],
            pieces: vec![],
            comm_d: Fr::from(1u64),
            comm_r: Fr::from(c),
            seal_proof: [0; PROOF_LEN],
            revealed: vec![],
        }
    }

    fn check(sector: u64, c: u64, verdict: Verdict) -> SealCheck {
        SealCheck {
            auditor: vec![1; 38],
            prover: vec![2; 38],
            window: 3,
            nonce: [4; 32],
            sector,
            comm_r: Fr::from(c),
            verdict,
            role: Role::Primary,
            proof: vec![],
            revealed: vec![],
            reason: String::new(),
            answer_sig: vec![],
            signature: vec![],
        }
    }

    #[test]
    fn verdicts_decide_what_is_checked_next_and_what_is_refused() {
        let mut k = Checks::default();
        for s in [5, 2, 9] {
            k.note(&record(s, 10 + s));
        }
        let me = vec![2u8; 38];
        // (verdict on the lowest unchecked, dropped, next unchecked, tally)
        let table = [
            (Verdict::Missed, false, Some(2), (0, 3)),
            (Verdict::Pass, false, Some(5), (1, 2)),
            (Verdict::Fail, true, Some(9), (1, 1)),
            (Verdict::Pass, false, None, (2, 0)),
        ];
        for (verdict, dropped, next, tally) in table {
            let (s, c) = k.unchecked(&me).unwrap();
            let mut x = check(s, 0, verdict);
            x.comm_r = c;
            assert_eq!(
                k.apply(&x) == Applied::Dropped,
                dropped,
                "{verdict:?} on {s}"
            );
            if dropped {
                // what the ledger does on a drop
                k.forget(&me, s);
                assert!(k.rejected(&record(s, 10 + s)));
                // another commitment under that number is a new sector
                assert!(!k.rejected(&record(s, 99)));
            }
            assert_eq!(k.unchecked(&me).map(|u| u.0), next);
            assert_eq!(k.tally(&me), tally);
        }
        // a pass for another commitment under a number does not check the registered one
        let mut k = Checks::default();
        k.note(&record(1, 11));
        assert_eq!(k.apply(&check(1, 12, Verdict::Pass)), Applied::Nothing);
        assert_eq!(k.unchecked(&me).map(|u| u.0), Some(1));
        assert_eq!(k.unchecked(&[3u8; 38]), None);
    }

    #[test]
    fn a_check_left_unanswered_keeps_its_nonce_until_answered() {
        let me = vec![2u8; 38];
        let mut k = Checks::default();
        k.note(&record(1, 11));
        let c = Fr::from(11u64);
        // (verdict, role, nonce, pending nonce after)
        let table = [
            (Verdict::Missed, Role::Manual, 5, None),
            (Verdict::Missed, Role::Primary, 6, Some(6)),
            // a later miss does not move it: the prover gets no new draw by declining
            (Verdict::Missed, Role::Confirmer, 7, Some(6)),
            (Verdict::Pass, Role::Primary, 6, None),
        ];
        for (i, (verdict, role, nonce, want)) in table.into_iter().enumerate() {
            let mut x = check(1, 11, verdict);
            x.role = role;
            x.nonce = [nonce; 32];
            k.apply(&x);
            assert_eq!(k.pending(&me, 1, &c), want.map(|n| [n; 32]), "row {i}");
        }
        // a miss for a sector not registered here sets nothing
        k.apply(&check(9, 19, Verdict::Missed));
        assert_eq!(k.pending(&me, 9, &Fr::from(19u64)), None);
        // forgetting a sector forgets its pending nonce
        k.note(&record(2, 12));
        k.apply(&check(2, 12, Verdict::Missed));
        assert!(k.pending(&me, 2, &Fr::from(12u64)).is_some());
        k.forget(&me, 2);
        assert_eq!(k.pending(&me, 2, &Fr::from(12u64)), None);
    }

    #[test]
    fn checks_answered_per_auditor_and_window_are_bounded() {
        let mut k = Checks::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        // (asker, window, now, admitted)
        let table = [
            (a, 5, 5, true),
            (a, 5, 5, true),
            (a, 5, 5, false),
            (b, 5, 5, true),
            (a, 6, 5, true),
            (a, 6, 6, true),
            (a, 6, 7, false),
            // window 5's count is forgotten once the windows turn past it
            (a, 5, 8, true),
        ];
        for (i, (from, window, now, want)) in table.into_iter().enumerate() {
            assert_eq!(k.admit(from, window, now), want, "row {i}");
        }
        let mut k = Checks::default();
        for _ in 0..MAX_CHECK_ASKERS {
            assert!(k.admit(PeerId::random(), 1, 1));
        }
        assert!(!k.admit(PeerId::random(), 1, 1));
    }

    #[test]
    fn answers_are_judged() {
        let checked = |sig: u8| {
            AuditResponse::Checked {
                proof: [1; PROOF_LEN],
                revealed: vec![Fr::from(3u64)],
                signature: vec![sig; 64],
            }
            .encode()
        };
        let refused = |sig: u8| {
            AuditResponse::Refused {
                reason: "sector 4 is not held here".into(),
                signature: vec![sig; 64],
            }
            .encode()
        };
        let too_long = AuditResponse::Checked {
            proof: [1; PROOF_LEN],
            revealed: vec![Fr::from(3u64); 2],
            signature: vec![7; 64],
        }
        .encode();
        let window_proof = AuditResponse::Proof {
            proof: [1; PROOF_LEN],
            openings: vec![],
            signature: vec![7; 64],
        }
        .encode();
        // (answer, the proof verifies, verdict); signatures of byte 7 are the prover's
        let table = [
            (Answer::Late(Duration::from_secs(9)), true, Verdict::Missed),
            (Answer::Unreachable("gone".into()), true, Verdict::Missed),
            (Answer::Declined("busy".into()), true, Verdict::Missed),
            (Answer::Unexpected, true, Verdict::Missed),
            (Answer::Reply(checked(7)), true, Verdict::Pass),
            (Answer::Reply(checked(7)), false, Verdict::Fail),
            (Answer::Reply(checked(8)), true, Verdict::Missed),
            (Answer::Reply(checked(8)), false, Verdict::Missed),
            (Answer::Reply(refused(7)), true, Verdict::Fail),
            (Answer::Reply(refused(8)), true, Verdict::Missed),
            (Answer::Reply(too_long), true, Verdict::Missed),
            (Answer::Reply(window_proof), true, Verdict::Missed),
            (Answer::Reply(vec![1, 2, 3]), true, Verdict::Missed),
        ];
        for (i, (answer, ok, want)) in table.into_iter().enumerate() {
            let j = judge_check(&answer, 1, |_, _, _, sig| sig == [7; 64], |_, _| ok);
            assert_eq!(j.verdict, want, "row {i}");
            // a fail keeps the prover's signed answer (the evidence), a miss keeps nothing
            assert_eq!(j.answer_sig.is_empty(), want == Verdict::Missed, "row {i}");
            assert!(j.reason.len() <= audit::MAX_REASON);
        }
    }
}
