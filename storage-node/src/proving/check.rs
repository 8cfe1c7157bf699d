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
//!   [`CHECKS_PER_AUDITOR_WINDOW`](super::check_table::CHECKS_PER_AUDITOR_WINDOW) per
//!   designated auditor and window.
//! - **Receiving**: a gossiped check counts when its auditor signed it, is the prover's
//!   designated auditor in the role it claims for a window that is now, and its verdict
//!   matches the answer re-verified here against the sector's record.
//! - **Verdicts**: a pass marks the sector checked; a fail (an answer that does not verify, or
//!   the prover's signed refusal) drops the sector here (never audited again, its blocks no
//!   longer counted as held by the prover, so repair copies them) and refuses its record if it
//!   comes back; a miss keeps the check's nonce pending (the next window asks again, with it).
//!   A sector counts for its blocks once it passed, or within `check_grace` of its
//!   registration ([`cover`]).
//!
//! The tables (what is known per sector, the quota, the judgement) are pure, in
//! [`check_table`](super::check_table).

use super::check_table::{judge_check, Applied};
use super::prover::{invalid, not_now, Envelope, Refused};
use super::schedule::{cut, role_of, window_is_current};
use super::*;
use audit::{CheckAnswered, SealCheck};

/// How long an auditor waits for a seal check's answer in windows of `window`: twice the
/// window proof's deadline (0.9 of a window, at least 10 s), since the prover labels the
/// sector again and rebuilds its trees before it proves.
pub fn check_deadline(window: Duration) -> Duration {
    answer_deadline(window) * 2
}

impl Ledger {
    /// Applies a check's verdict (logged, or replayed from the log at start) to the check
    /// table, the cover and the registry; returns whether it dropped a registered sector.
    pub(super) fn apply_check(&self, c: &SealCheck) -> bool {
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
        let dropped = self.apply_check(c);
        self.append(EntryKind::Check, c.encode())?;
        if c.verdict == Verdict::Fail {
            tracing::warn!(prover = %peer_str(&c.prover), sector = c.sector, reason = %c.reason,
                "sector failed its seal check: dropped, its blocks will be repaired");
        }
        Ok(dropped)
    }

    /// `(replica_id, comm_d, comm_r)` of `prover`'s registered sector `sector`.
    fn check_info(&self, prover: &[u8], sector: u64) -> Option<(Fr, Fr, Fr)> {
        self.checks.lock().ok()?.info(prover, sector)
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
    /// this window's designated auditors only, within [`CHECKS_PER_AUDITOR_WINDOW`](super::check_table::CHECKS_PER_AUDITOR_WINDOW), one check
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
        let answer = self.ask(target, req, check_deadline(p.opts.window)).await;
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
