//! Seal checks in a running node ([`SealCheck`]): a sector record's own seal proof has
//! challenges the prover could grind by sealing again; a seal check proves the same statement
//! over challenges seeded by a designated auditor's fresh nonce, drawn after the record was
//! public.
//!
//! - **Auditing**: after its window audit of a prover, the primary auditor asks it to check
//!   its lowest-numbered sector that has not passed a check yet ([`AuditRequest::Check`]),
//!   waits [`check_deadline`], judges the answer ([`judge_check`]), signs, logs and gossips
//!   the verdict on [`CHECK_TOPIC`].
//! - **Answering**: the prover labels the sector again and rebuilds its trees from the stored
//!   replica, then proves ([`audit::prove_check`]); one check at a time, at most
//!   [`CHECKS_PER_AUDITOR_WINDOW`] per designated auditor and window.
//! - **Receiving**: a gossiped check counts when its auditor signed it, is the prover's
//!   designated auditor in the role it claims for a window that is now, and its verdict
//!   matches the answer re-verified here against the sector's record.
//! - **Verdicts**: a pass marks the sector checked; a fail (an answer that does not verify, or
//!   the prover's signed refusal) drops the sector here (never audited again, its blocks no
//!   longer counted as held by the prover, so repair copies them) and refuses its record if it
//!   comes back; a miss changes nothing (the next window asks again).

use super::prover::{invalid, not_now, Envelope, Refused};
use super::schedule::{cut, role_of, window_is_current, Answer};
use super::*;
use audit::{CheckAnswered, SealCheck};
use std::collections::HashSet;

/// Seal checks a designated auditor may ask of a prover per window (an auditor asks once;
/// an operator's retry fits).
pub(crate) const CHECKS_PER_AUDITOR_WINDOW: u32 = 2;
/// (auditor, window) pairs whose checks are counted at once; past it, new askers wait for
/// the windows to turn.
const MAX_CHECK_ASKERS: usize = 1024;

/// How long an auditor waits for a seal check's answer in windows of `window`: twice the
/// window proof's deadline (0.9 of a window, at least 10 s), since the prover labels the
/// sector again and rebuilds its trees before it proves.
pub fn check_deadline(window: Duration) -> Duration {
    answer_deadline(window) * 2
}

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
    fn apply(&mut self, c: &SealCheck) -> Applied {
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
    fn pending(&self, prover: &[u8], sector: u64, comm_r: &Fr) -> Option<[u8; 32]> {
        self.pending
            .get(&(prover.to_vec(), sector, fr_bytes(comm_r)))
            .copied()
    }

    /// The lowest-numbered of `prover`'s registered sectors that has not passed a check.
    fn unchecked(&self, prover: &[u8]) -> Option<(u64, Fr)> {
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
    fn admit(&mut self, from: PeerId, window: u64, now: u64) -> bool {
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
enum Applied {
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

impl Ledger {
    /// Applies a seal check from the log at start (no append).
    pub(super) fn apply_check(&self, c: &SealCheck) {
        self.follow_check(c);
    }

    /// Applies a check's verdict to the check table, the cover and the registry; returns
    /// whether it dropped a registered sector.
    fn follow_check(&self, c: &SealCheck) -> bool {
        let applied = self
            .checks
            .lock()
            .map(|mut k| k.apply(c))
            .unwrap_or(Applied::Nothing);
        match applied {
            Applied::Checked => {
                if let Ok(mut cover) = self.cover.lock() {
                    cover.checked(&c.prover, c.sector);
                }
                false
            }
            Applied::Dropped => self.forget(&c.prover, c.sector, c.comm_r) > 0,
            Applied::Nothing => false,
        }
    }

    /// Logs a verified seal check and applies its verdict. Returns whether it dropped a
    /// sector (a fail: repair has blocks to copy).
    pub(crate) fn record_check(&self, c: &SealCheck, mine: bool) -> Result<bool, ProofsError> {
        if mine {
            if let Ok(mut s) = self.status.lock() {
                match c.verdict {
                    Verdict::Pass => s.checks_pass += 1,
                    Verdict::Fail => s.checks_fail += 1,
                    Verdict::Missed => s.checks_missed += 1,
                }
            }
        }
        // applied first (a dropped sector is forgotten), so a compaction the append runs does
        // not carry its record over
        let dropped = self.follow_check(c);
        self.append(EntryKind::Check, c.encode())?;
        if c.verdict == Verdict::Fail {
            tracing::warn!(prover = %peer_str(&c.prover), sector = c.sector, reason = %c.reason,
                "sector failed its seal check: dropped, its blocks will be repaired");
        }
        Ok(dropped)
    }

    /// `(replica_id, comm_d, comm_r)` of `prover`'s registered sector `sector`.
    fn check_info(&self, prover: &[u8], sector: u64) -> Option<(Fr, Fr, Fr)> {
        let c = self.checks.lock().ok()?;
        c.info.get(&(prover.to_vec(), sector)).copied()
    }

    /// Whether a check's carried answer verifies for `sector` ([`Ledger::check_info`]).
    fn check_verifies(&self, c: &SealCheck, sector: (Fr, Fr, Fr)) -> bool {
        sector.2 == c.comm_r
            && audit::verify_check(
                &self.opts.params,
                &self.seal_keys,
                sector,
                &c.nonce,
                &c.proof,
                &c.revealed,
            )
    }

    /// Answers a seal check of this node's `sector` for `from` (runs on the blocking pool):
    /// this window's designated auditors only, within [`CHECKS_PER_AUDITOR_WINDOW`], one check
    /// at a time (another asker gets `busy` before anything is read). The answer is signed, and
    /// so is the refusal for a committed sector no longer held or whose replica no longer gives
    /// its commitments: evidence for a fail.
    pub(super) fn answer_check(
        &self,
        from: PeerId,
        (window, nonce, sector): (u64, [u8; 32], u64),
        sign: &dyn Fn(&[u8]) -> Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let now = self.window_now();
        let me = PeerId::from_bytes(&self.me).map_err(|_| "own peer id unreadable")?;
        if !window_is_current(window, now)
            || role_of(from, me, &self.ring(), window) == Role::Manual
        {
            return Err("seal checks are answered for this window's designated auditors".into());
        }
        let admitted = self
            .checks
            .lock()
            .is_ok_and(|mut c| c.admit(from, window, now));
        if !admitted {
            return Err("busy: seal checks over this window's quota".into());
        }
        let Ok(_one) = self.check_lock.try_lock() else {
            return Err("busy: another seal check is running".into());
        };
        let signed = |comm_r: Fr, answered: CheckAnswered<'_>| {
            sign(&audit::check_answer_message(
                (&from.to_bytes(), &self.me),
                window,
                &nonce,
                (sector, comm_r),
                answered,
            ))
        };
        let refuse = |comm_r: Fr, reason: String| {
            let reason = cut(&reason);
            let signature = signed(
                comm_r,
                CheckAnswered {
                    proof: &[],
                    revealed: &[],
                    refusal: &reason,
                },
            );
            Ok(AuditResponse::Refused { reason, signature }.encode())
        };
        let (record, stored) = match self.load_sector(sector) {
            Ok(Some(x)) => x,
            Ok(None) if self.committed(sector) => {
                let Some(comm_r) = self.check_info(&self.me, sector).map(|i| i.2) else {
                    return Err(format!("sector {sector} is not registered here"));
                };
                return refuse(comm_r, format!("sector {sector} is not held here"));
            }
            Ok(None) => return Err(format!("sector {sector} was never committed here")),
            Err(e) => return Err(format!("sector {sector}: {e}")),
        };
        let leaves: Vec<Fr> = stored
            .replica
            .chunks(32)
            .map(Fr::from_le_bytes_mod_order)
            .collect();
        let t = std::time::Instant::now();
        let (proof, revealed) = match audit::prove_check(
            &self.opts.params,
            &self.seal_keys,
            &record,
            &leaves,
            &nonce,
        ) {
            Ok(x) => x,
            Err(AuditError::Field(why)) => {
                return refuse(record.comm_r, format!("sector {sector}: {why}"))
            }
            Err(e) => return Err(e.to_string()),
        };
        tracing::info!(auditor = %from, window, sector, secs = t.elapsed().as_secs_f64(), "seal check proved");
        let signature = signed(
            record.comm_r,
            CheckAnswered {
                proof: &proof,
                revealed: &revealed,
                refusal: "",
            },
        );
        Ok(AuditResponse::Checked {
            proof,
            revealed,
            signature,
        }
        .encode())
    }
}

impl<H: ProverHost + Clone> Prover<H> {
    /// Seal-checks `target`'s lowest-numbered sector not checked yet, in `role` for `window`:
    /// fresh nonce, the answer judged ([`judge_check`]), signed, logged and gossiped unless
    /// manual. `None` when every sector of `target` known here has passed a check.
    pub async fn check_as(
        &self,
        target: PeerId,
        window: u64,
        role: Role,
    ) -> Result<Option<SealCheck>, NodeError> {
        let Some(p) = self.0.proofs() else {
            return Ok(None);
        };
        let tb = target.to_bytes();
        let next = p.checks.lock().ok().and_then(|c| c.unchecked(&tb));
        let Some((sector, comm_r)) = next else {
            return Ok(None);
        };
        let Some(info) = p.check_info(&tb, sector) else {
            return Ok(None);
        };
        // a check the prover left unanswered is asked again with its nonce: no new draw
        let pending = p
            .checks
            .lock()
            .ok()
            .and_then(|c| c.pending(&tb, sector, &comm_r));
        let nonce = pending.unwrap_or_else(|| {
            let mut n = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut n);
            n
        });
        let req = AuditRequest::Check {
            window,
            nonce,
            sector,
        };
        let deadline = check_deadline(p.opts.window);
        let answer = tokio::time::timeout(
            deadline,
            self.0.net().ctrl(target, CtrlRequest::App(req.encode())),
        )
        .await;
        let answer = match answer {
            Err(_) => Answer::Late(deadline),
            Ok(Err(e)) => Answer::Unreachable(e.to_string()),
            Ok(Ok(CtrlResponse::Error(e))) => Answer::Declined(e),
            Ok(Ok(CtrlResponse::App(bytes))) => Answer::Reply(bytes.to_vec()),
            Ok(Ok(_)) => Answer::Unexpected,
        };
        let mut rec = SealCheck {
            auditor: self.0.net().peer_id().to_bytes(),
            prover: tb,
            window,
            nonce,
            sector,
            comm_r,
            verdict: Verdict::Missed,
            role,
            proof: Vec::new(),
            revealed: Vec::new(),
            reason: String::new(),
            answer_sig: Vec::new(),
            signature: Vec::new(),
        };
        let (p2, r2) = (p.clone(), rec.clone());
        let labels = cairn_proofs::porep::revealed_len(
            &p.opts.params.sector(),
            p.opts.params.seal_challenges,
        );
        let j = offload(move || {
            judge_check(
                &answer,
                labels,
                |proof, revealed, refusal, sig| {
                    let m = audit::check_answer_message(
                        (&r2.auditor, &r2.prover),
                        r2.window,
                        &r2.nonce,
                        (r2.sector, r2.comm_r),
                        CheckAnswered {
                            proof,
                            revealed,
                            refusal,
                        },
                    );
                    cairn_net::identity::verify_signature(&r2.prover, &m, sig)
                },
                |proof, revealed| {
                    let mut r = r2.clone();
                    (r.proof, r.revealed) = (proof.to_vec(), revealed.to_vec());
                    p2.check_verifies(&r, info)
                },
            )
        })
        .await?;
        (
            rec.verdict,
            rec.reason,
            rec.proof,
            rec.revealed,
            rec.answer_sig,
        ) = (j.verdict, j.reason, j.proof, j.revealed, j.answer_sig);
        rec.signature = self.0.net().sign(&rec.signed_bytes());
        let (p2, r2) = (p.clone(), rec.clone());
        let dropped = offload(move || p2.record_check(&r2, true))
            .await?
            .map_err(proofs_err)?;
        if role != Role::Manual {
            if let Err(e) = self.0.net().publish(CHECK_TOPIC, rec.encode()).await {
                tracing::debug!(error = %e, "seal check not gossiped");
            }
        }
        if dropped {
            self.0.repair_notify().notify_one();
        }
        Ok(Some(rec))
    }

    /// [`Self::check_as`] for `target` now, in this node's role for it this window.
    pub async fn check_once_for(&self, target: PeerId) -> Result<Option<SealCheck>, NodeError> {
        let Some(p) = self.0.proofs() else {
            return Ok(None);
        };
        if !p.provers().contains(&target) {
            self.fetch_sectors(target).await;
        }
        let window = p.window_now();
        let role = role_of(self.0.net().peer_id(), target, &p.ring(), window);
        self.check_as(target, window, role).await
    }

    /// Checks a gossiped seal check and logs it (see the module docs). `Ok(Ok(true))` when it
    /// dropped a sector.
    pub(crate) async fn accept_check(
        &self,
        data: Vec<u8>,
    ) -> Result<Result<bool, Refused>, NodeError> {
        let Some(p) = self.0.proofs() else {
            return Ok(Err(not_now("this node does not prove storage")));
        };
        let c = match SealCheck::decode(&data) {
            Ok(c) => c,
            Err(e) => return Ok(Err(invalid(&e.to_string()))),
        };
        let (_, prover) = match p.admit_verdict(Envelope {
            auditor: &c.auditor,
            prover: &c.prover,
            window: c.window,
            role: c.role,
            signed: c.signed_bytes(),
            signature: &c.signature,
        }) {
            Ok(x) => x,
            Err(r) => return Ok(Err(r)),
        };
        let mut info = p.check_info(&c.prover, c.sector);
        if info.is_none() {
            self.fetch_sectors(prover).await;
            info = p.check_info(&c.prover, c.sector);
        }
        let Some(info) = info.filter(|i| i.2 == c.comm_r) else {
            return Ok(Err(not_now("a seal check of a sector not registered here")));
        };
        let pending = p
            .checks
            .lock()
            .ok()
            .and_then(|k| k.pending(&c.prover, c.sector, &c.comm_r));
        if pending.is_some_and(|n| n != c.nonce) {
            return Ok(Err(not_now(
                "a seal check with another nonce than the one pending for that sector",
            )));
        }
        offload(move || {
            let ok = !c.proof.is_empty() && p.check_verifies(&c, info);
            match c.verdict {
                Verdict::Pass if !ok => {
                    return Err(invalid("a passed seal check whose answer does not verify"))
                }
                Verdict::Fail | Verdict::Missed if ok => {
                    return Err(invalid("a failed seal check whose answer verifies"))
                }
                Verdict::Fail
                    if !cairn_net::identity::verify_signature(
                        &c.prover,
                        &c.answer_message(),
                        &c.answer_sig,
                    ) =>
                {
                    return Err(invalid(
                        "a failed seal check without the prover's signed answer",
                    ))
                }
                _ => {}
            }
            p.record_check(&c, false)
                .map_err(|e| not_now(&e.to_string()))
        })
        .await
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
