//! The prover's work over its host: sealing passes, the gossip of sector and audit records,
//! audits of peers (schedule, request, verdict, signature, log) and faults.

use super::schedule::{audit_target, auditors_of, judge, role_of, window_is_current, Answer};
use super::*;
use cairn_net::GossipVerdict;

/// Why a gossiped record was refused, and whether the peer that sent it is to blame
/// (`penalize`: the record is invalid on its face; otherwise it is only not for this node now:
/// a stale window, a quota, a differing view of the ring, trouble of this node's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) reason: String,
    pub(crate) penalize: bool,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

pub(crate) fn invalid(reason: &str) -> Refused {
    Refused {
        reason: reason.to_string(),
        penalize: true,
    }
}

pub(crate) fn not_now(reason: &str) -> Refused {
    Refused {
        reason: reason.to_string(),
        penalize: false,
    }
}

impl<H: ProverHost + Clone> Prover<H> {
    fn proofs(&self) -> Option<Arc<Ledger>> {
        self.0.proofs()
    }

    /// Peers this node currently counts as faulty.
    pub fn faulty_peers(&self) -> Vec<PeerId> {
        self.0
            .proofs()
            .map(|p| p.faulty_peers().into_iter().map(|(p, _)| p).collect())
            .unwrap_or_default()
    }

    /// A receiver that changes whenever the faulty set does (tests and the API wait on it).
    pub fn faulty_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.0.proofs().as_ref().map(|p| p.faulty_seq.subscribe())
    }

    /// Proof counters, when proofs are on.
    pub fn proof_status(&self) -> Option<ProofStatus> {
        self.0.proofs().as_ref().map(|p| p.status())
    }

    /// The audit log: at most [`LOG_PAGE`] entries from position `from` on, read from there.
    pub async fn audit_log(&self, from: u64) -> Result<Vec<LogEntry>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(Vec::new());
        };
        offload(move || p.log.entries_from(from, LOG_PAGE))
            .await?
            .map_err(|e| proofs_err(e.into()))
    }

    /// Seals every stored block not yet in a sector, now.
    pub async fn seal_now(&self) -> Result<usize, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(0);
        };
        let _one = self.0.seal_lock().lock().await;
        let recs = offload(move || p.seal_pending())
            .await?
            .map_err(proofs_err)?;
        for r in &recs {
            if let Err(e) = self.0.net().publish(SECTOR_TOPIC, r.encode()).await {
                tracing::debug!(error = %e, "sector record not gossiped (peers ask for it at audit time)");
            }
        }
        Ok(recs.len())
    }

    pub(crate) async fn seal_worker(self) {
        let Some(p) = self.proofs() else { return };
        let mut stop = self.0.stop_signal();
        let mut tick = tokio::time::interval(p.opts.seal_interval);
        // the first pass one interval from now, not at once: a pass that starts whenever the
        // low-priority sealing thread first gets the CPU would seal whatever has arrived by
        // then, which nobody asked for yet (and tests that drive sealing could not)
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.seal_now().await {
                tracing::warn!(error = %e, "sealing failed");
            }
            if let Err(e) = self.retire_now().await {
                tracing::warn!(error = %e, "retiring sectors failed");
            }
        }
    }

    pub(crate) async fn gossip_worker(self, mut rx: mpsc::Receiver<GossipMsg>) {
        if self.proofs().is_none() {
            return;
        }
        let mut stop = self.0.stop_signal();
        loop {
            let (source, topic, data, id) = tokio::select! {
                _ = stop.changed() => return,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            let outcome = self.handle_gossip(source, &topic, data).await;
            let verdict = match &outcome {
                Ok(Ok(_)) => GossipVerdict::Accept,
                Ok(Err(r)) if r.penalize => GossipVerdict::Reject,
                _ => GossipVerdict::Ignore,
            };
            // forwarded only when valid here; an invalid one counts against its sender
            let _ = self.0.net().report_gossip(id, verdict).await;
            match outcome {
                Ok(Ok(true)) => self.0.repair_notify().notify_one(),
                Ok(Ok(false)) => {}
                Ok(Err(r)) => {
                    tracing::debug!(%source, %topic, reason = %r.reason, penalize = r.penalize, "gossip record refused")
                }
                Err(e) => tracing::warn!(error = %e, "gossip handling failed"),
            }
        }
    }

    /// Handles one gossip message from `source` on `topic`: a sector record (registered when
    /// its prover sent it and its seal proof verifies) or an audit record ([`Self::accept_audit`]).
    /// `Ok(Ok(true))` when a prover became faulty.
    pub(crate) async fn handle_gossip(
        &self,
        source: PeerId,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<Result<bool, Refused>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(Err(not_now("this node does not prove storage")));
        };
        match topic {
            SECTOR_TOPIC => {
                offload(move || {
                    let r = SectorRecord::decode(&data).map_err(|e| invalid(&e.to_string()))?;
                    if r.prover != source.to_bytes() {
                        return Err(invalid("sector record gossiped by another peer"));
                    }
                    p.register(&r).map(|_| false).map_err(|e| match e {
                        // a seal proof that does not verify, a shape that is not the network's
                        ProofsError::Audit(e) => invalid(&e.to_string()),
                        // this node's own trouble (its store, its keys)
                        e => not_now(&e.to_string()),
                    })
                })
                .await
            }
            RETIRE_TOPIC => self.accept_retirement(source, data).await,
            CHECK_TOPIC => self.accept_check(data).await,
            AUDIT_TOPIC => match AuditRecord::decode(&data) {
                Ok(a) => self.accept_audit(a).await,
                Err(e) => Ok(Err(invalid(&e.to_string()))),
            },
            _ => Ok(Err(not_now("not a proofs topic"))),
        }
    }

    /// Checks a gossiped audit record and logs it: the window is the receiver's previous,
    /// current or next; the auditor signed it, has quota left, and is the prover's designated
    /// auditor in the role it claims; the audited sectors are committed; a pass's proof
    /// verifies; a fail carries the prover's signed answer (a proof that does not verify, or a
    /// refusal). A primary's miss makes this node audit the prover too when it is the window's
    /// confirming auditor.
    async fn accept_audit(&self, a: AuditRecord) -> Result<Result<bool, Refused>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(Err(not_now("this node does not prove storage")));
        };
        let (auditor, prover) = match p.admit_verdict(Envelope {
            auditor: &a.auditor,
            prover: &a.prover,
            window: a.window,
            role: a.role,
            signed: a.signed_bytes(),
            signature: &a.signature,
        }) {
            Ok(x) => x,
            Err(r) => return Ok(Err(r)),
        };
        let known = p.sectors_of(&a.prover);
        if a.sectors.iter().any(|s| !known.contains(s)) {
            // a designated auditor names a sector this node has not heard of yet
            self.fetch_sectors(prover).await;
        }
        // what of the prover's answer verifies: the proof, and the opened leaves' paths to the
        // listed piece's sector (`None`: that piece is not known here)
        let (p2, a2) = (p.clone(), a.clone());
        let checked = offload(move || {
            let proof_ok = !a2.proof.is_empty() && p2.proof_verifies(&a2);
            if a2.open.is_empty() {
                return Some((proof_ok, true, None));
            }
            let first = a2.sectors.first()?.0;
            let (comm_d, detail, start) = p2.piece_of(&a2.prover, first, a2.piece)?;
            let cid = Cid::try_from(detail.cid.as_slice()).ok()?;
            let paths_ok = a2.openings_verify(&p2.opts.params, comm_d);
            let o = cover::Opened {
                cid,
                piece: a2.piece,
                leaves: a2.open.clone(),
                comm_d,
                start,
                detail,
            };
            Some((proof_ok, paths_ok, Some(o)))
        })
        .await?;
        let Some((proof_ok, paths_ok, opened)) = checked else {
            return Ok(Err(not_now("audit of a piece with no known listing")));
        };
        let mut ok = proof_ok && paths_ok;
        if ok && a.verdict == Verdict::Fail {
            // a fail whose proof and paths hold must be about the opened bytes: checked
            // against the block (from here, the auditor or the prover)
            if let Some(o) = &opened {
                let Some(block) = self.block_for_check(o.cid, &[auditor, prover]).await else {
                    return Ok(Err(not_now(
                        "the opened block could not be fetched to check",
                    )));
                };
                ok = a
                    .openings
                    .iter()
                    .all(|x| x.matches(&o.detail, o.start, &block));
            }
        }
        let p2 = p.clone();
        let a2 = a.clone();
        let outcome = offload(move || {
            let a = a2;
            match a.verdict {
                Verdict::Pass if !ok => {
                    return Err(invalid("a pass whose proof or openings do not verify"))
                }
                Verdict::Fail | Verdict::Missed if ok => {
                    return Err(invalid("a fail whose proof and openings verify"))
                }
                Verdict::Fail
                    if !cairn_net::identity::verify_signature(
                        &a.prover,
                        &a.answer_message(),
                        &a.answer_sig,
                    ) =>
                {
                    return Err(invalid("a fail without the prover's signed answer"))
                }
                _ => {}
            }
            p2.record_audit(&a, false)
                .map_err(|e| not_now(&e.to_string()))
        })
        .await;
        if matches!(outcome, Ok(Ok(_))) && a.verdict == Verdict::Missed && a.role == Role::Primary {
            let me = self.0.net().peer_id();
            let confirmer = auditors_of(prover, &p.ring(), a.window).and_then(|(_, c)| c);
            if confirmer == Some(me) && p.start_confirming(&a.prover, a.window) {
                let node = self.clone();
                let window = a.window;
                let primary = a.clone();
                tokio::spawn(async move {
                    match node
                        .audit_as(prover, window, Role::Confirmer, Some(&primary))
                        .await
                    {
                        Ok(Some(r)) => tracing::info!(%prover, window, verdict = r.verdict.name(),
                            "confirming audit after the primary's miss"),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(%prover, error = %e, "confirming audit failed"),
                    }
                });
            }
        }
        outcome
    }

    /// Block `cid` for checking an opening, verified against its CID: from this node's store,
    /// else from `first` (in order), else rebuilt from the rest of its stripe.
    async fn block_for_check(&self, cid: Cid, first: &[PeerId]) -> Option<Vec<u8>> {
        let p = self.proofs()?;
        let repo = p.repo.clone();
        if let Ok(Ok(b)) = offload(move || repo.block(&cid)).await {
            return Some(b);
        }
        let me = self.0.net().peer_id();
        for peer in first.iter().filter(|r| **r != me) {
            let got = tokio::time::timeout(
                Duration::from_secs(10),
                self.0.net().fetch_verified(*peer, &cid),
            )
            .await;
            if let Ok(Ok(Some(b))) = got {
                return Some(b.to_vec());
            }
        }
        self.0.shard_rebuilt(cid).await
    }

    /// Asks `peer` for its sector records and registers the ones whose seal proof verifies.
    pub(crate) async fn fetch_sectors(&self, peer: PeerId) {
        let Some(p) = self.proofs() else { return };
        let mut from = 0u64;
        for _ in 0..64 {
            let req = CtrlRequest::App(AuditRequest::Sectors { from }.encode());
            let resp =
                tokio::time::timeout(Duration::from_secs(10), self.0.net().ctrl(peer, req)).await;
            let Ok(Ok(CtrlResponse::App(bytes))) = resp else {
                return;
            };
            let Ok(AuditResponse::Sectors(recs)) = AuditResponse::decode(&bytes) else {
                return;
            };
            let full = !recs.is_empty();
            let next = recs
                .iter()
                .map(|r| r.sector)
                .max()
                .map(|m| m.saturating_add(1));
            let p2 = p.clone();
            let owner = peer.to_bytes();
            let _ = offload(move || {
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
        let mut stop = self.0.stop_signal();
        let _ = self.0.net().subscribe(AUDIT_TOPIC).await;
        let _ = self.0.net().subscribe(SECTOR_TOPIC).await;
        let _ = self.0.net().subscribe(RETIRE_TOPIC).await;
        let _ = self.0.net().subscribe(CHECK_TOPIC).await;
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
                    // then one of its sectors' seal checks, in its own task: a slow answer must
                    // not make this node skip the next window's audit ([`check`])
                    if let Ok(target) = PeerId::from_bytes(&a.prover) {
                        let node = self.clone();
                        let window = a.window;
                        tokio::spawn(async move {
                            match node.check_as(target, window, Role::Primary).await {
                                Ok(Some(c)) => tracing::info!(prover = %target, sector = c.sector,
                                    verdict = c.verdict.name(), "seal check"),
                                Ok(None) => {}
                                Err(e) => {
                                    tracing::warn!(prover = %target, error = %e, "seal check failed")
                                }
                            }
                        });
                    }
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
        let me = self.0.net().peer_id();
        // learn the sectors of peers that have not told us theirs
        let known = p.provers();
        let connected = self.0.net().connected_peers().await.unwrap_or_default();
        for peer in connected
            .into_iter()
            .filter(|c| !known.contains(c))
            .take(SECTOR_QUERIES)
        {
            self.fetch_sectors(peer).await;
        }
        let window = p.window_now();
        let Some(target) = audit_target(me, &p.ring(), window) else {
            return Ok(None);
        };
        self.audit_as(target, window, Role::Primary, None).await
    }

    /// Audits `target` now in this node's role for it this window ([`Role::Manual`] when it is
    /// not one of `target`'s designated auditors: then the record is logged here but neither
    /// gossiped nor counted). `None` when no sector of `target` is known.
    pub async fn audit_once_for(&self, target: PeerId) -> Result<Option<AuditRecord>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(None);
        };
        if !p.provers().contains(&target) {
            self.fetch_sectors(target).await;
        }
        let window = p.window_now();
        let role = role_of(self.0.net().peer_id(), target, &p.ring(), window);
        self.audit_as(target, window, role, None).await
    }

    /// The designated auditors of `target` this window (primary, confirming), as this node
    /// sees the ring.
    pub fn auditors_of(&self, target: PeerId) -> Option<(PeerId, Option<PeerId>)> {
        let p = self.proofs()?;
        auditors_of(target, &p.ring(), p.window_now())
    }

    /// Sends `req` to `target` and waits up to `deadline` for its answer, as the verdicts
    /// judge it ([`Answer`]).
    pub(crate) async fn ask(
        &self,
        target: PeerId,
        req: AuditRequest,
        deadline: Duration,
    ) -> Answer {
        let answer = tokio::time::timeout(
            deadline,
            self.0.net().ctrl(target, CtrlRequest::App(req.encode())),
        )
        .await;
        match answer {
            Err(_) => Answer::Late(deadline),
            Ok(Err(e)) => Answer::Unreachable(e.to_string()),
            Ok(Ok(CtrlResponse::Error(e))) => Answer::Declined(e),
            Ok(Ok(CtrlResponse::App(bytes))) => Answer::Reply(bytes.to_vec()),
            Ok(Ok(_)) => Answer::Unexpected,
        }
    }

    /// One audit of `target` for `window` in `role`: fresh nonce, the sectors holding shards it
    /// is counted as holding (or, when there are none, a random batch of its committed
    /// sectors; [`cover::challenge`]), one piece's leaves opened and compared with the block;
    /// the verdict ([`judge`]), signed; logged, and gossiped unless manual. A confirming audit
    /// (`repeat`: the primary's record of a miss) asks for the same sectors and leaves.
    pub(crate) async fn audit_as(
        &self,
        target: PeerId,
        window: u64,
        role: Role,
        repeat: Option<&AuditRecord>,
    ) -> Result<Option<AuditRecord>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(None);
        };
        let me = self.0.net().peer_id();
        let (p2, tb) = (p.clone(), target.to_bytes());
        let (mut batch, mut opened) = offload(move || p2.plan_challenge(&tb)).await?;
        if let Some(r) = repeat {
            // the same sectors and leaves as the primary asked for, when this node knows them
            let known = p.sectors_of(&r.prover);
            if r.sectors.iter().all(|s| known.contains(s)) {
                batch = r.sectors.clone();
                opened = r
                    .sectors
                    .first()
                    .zip(r.open.first())
                    .and_then(|((first, _), _)| {
                        let (comm_d, detail, start) = p.piece_of(&r.prover, *first, r.piece)?;
                        Some(cover::Opened {
                            cid: Cid::try_from(detail.cid.as_slice()).ok()?,
                            piece: r.piece,
                            leaves: r.open.clone(),
                            comm_d,
                            start,
                            detail,
                        })
                    });
            }
        }
        if batch.is_empty() {
            return Ok(None);
        }
        // the block of the opened piece, verified against its CID: here, from the prover, or
        // from a few other provers; without it nothing is opened this time
        let block = match &opened {
            Some(o) => self.block_for_check(o.cid, &[target]).await,
            None => None,
        };
        if block.is_none() {
            opened = None;
        }
        let mut rng = rand::rngs::OsRng;
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let open: Vec<u64> = opened
            .as_ref()
            .map(|o| o.leaves.clone())
            .unwrap_or_default();
        let req = AuditRequest::Prove {
            window,
            nonce,
            sectors: batch.iter().map(|s| s.0).collect(),
            open: open.clone(),
        };
        let answer = self.ask(target, req, answer_deadline(p.opts.window)).await;
        let mut rec = AuditRecord {
            auditor: me.to_bytes(),
            prover: target.to_bytes(),
            window,
            nonce,
            sectors: batch,
            open,
            piece: opened.as_ref().map(|o| o.piece).unwrap_or(0),
            openings: Vec::new(),
            verdict: Verdict::Missed,
            role,
            proof: Vec::new(),
            reason: String::new(),
            answer_sig: Vec::new(),
            signature: Vec::new(),
        };
        // the verdict is pure ([`judge`]); the checks in it run on the blocking pool
        let (p2, r2) = (p.clone(), rec.clone());
        let j = offload(move || {
            let ids: Vec<u64> = r2.sectors.iter().map(|s| s.0).collect();
            judge(
                &answer,
                |proof, openings, refusal, sig| {
                    let m = audit::answer_message(
                        &r2.auditor,
                        &r2.prover,
                        r2.window,
                        &r2.nonce,
                        &ids,
                        &r2.open,
                        audit::Answered {
                            proof,
                            openings,
                            refusal,
                        },
                    );
                    cairn_net::identity::verify_signature(&r2.prover, &m, sig)
                },
                |proof, openings| {
                    let mut r = r2.clone();
                    r.proof = proof.to_vec();
                    r.openings = openings.to_vec();
                    if !p2.proof_verifies(&r) {
                        return Err("the proof does not verify".into());
                    }
                    match (&opened, &block) {
                        (Some(o), Some(b)) => check_openings(&r, &p2.opts.params, o, b),
                        _ => Ok(()),
                    }
                },
            )
        })
        .await?;
        (
            rec.verdict,
            rec.reason,
            rec.proof,
            rec.openings,
            rec.answer_sig,
        ) = (j.verdict, j.reason, j.proof, j.openings, j.answer_sig);
        rec.signature = self.0.net().sign(&rec.signed_bytes());
        let (p2, r2) = (p.clone(), rec.clone());
        let newly_faulty = offload(move || p2.record_audit(&r2, true))
            .await?
            .map_err(proofs_err)?;
        if role != Role::Manual {
            if let Err(e) = self.0.net().publish(AUDIT_TOPIC, rec.encode()).await {
                tracing::debug!(error = %e, "audit record not gossiped");
            }
        }
        if newly_faulty {
            self.0.repair_notify().notify_one();
        }
        Ok(Some(rec))
    }
}

/// What every gossiped verdict (an audit record, a seal check) carries about who made it.
pub(crate) struct Envelope<'a> {
    pub(crate) auditor: &'a [u8],
    pub(crate) prover: &'a [u8],
    pub(crate) window: u64,
    pub(crate) role: Role,
    /// The bytes the auditor signed.
    pub(crate) signed: Vec<u8>,
    pub(crate) signature: &'a [u8],
}

impl Ledger {
    /// The checks a gossiped verdict passes before anything is fetched or verified: not this
    /// node's own (its records come from here, never from gossip), a designated role, a window
    /// that is the previous, current or next, the auditor's signature, the auditor designated
    /// in that role in this node's ring (only members of the ring, peers whose sealed sector
    /// this node verified, can be: identities that cost nothing go no further), and then, so
    /// nobody spends another auditor's quota, the auditor's records this window. The auditor
    /// and the prover.
    pub(crate) fn admit_verdict(&self, e: Envelope<'_>) -> Result<(PeerId, PeerId), Refused> {
        if e.auditor == self.me() {
            return Err(not_now("a record naming this node as its auditor"));
        }
        if e.role == Role::Manual {
            return Err(invalid(
                "a verdict by a peer that is not a designated auditor counts for nothing",
            ));
        }
        if !window_is_current(e.window, self.window_now()) {
            return Err(not_now(
                "a record for a window that is not the previous, current or next",
            ));
        }
        if !cairn_net::identity::verify_signature(e.auditor, &e.signed, e.signature) {
            return Err(invalid("auditor signature invalid"));
        }
        let (Ok(auditor), Ok(prover)) =
            (PeerId::from_bytes(e.auditor), PeerId::from_bytes(e.prover))
        else {
            return Err(invalid("peer id unreadable"));
        };
        if role_of(auditor, prover, &self.ring(), e.window) != e.role {
            return Err(not_now(
                "the auditor is not the prover's designated auditor in that role this window",
            ));
        }
        let admitted = self
            .verdict_quota
            .lock()
            .map(|mut q| q.admit(e.auditor, e.window, self.window_now()))
            .unwrap_or(false);
        if !admitted {
            return Err(not_now(
                "the auditor sent more records this window than any audit needs",
            ));
        }
        Ok((auditor, prover))
    }
}

/// Whether a record's openings hold for the piece `o`: every asked leaf opened with a path to
/// the sector's `comm_d`, and its bytes equal to the block's (`block`, already checked against
/// its CID). `Err` says which part fails.
pub(crate) fn check_openings(
    r: &AuditRecord,
    params: &NetParams,
    o: &cover::Opened,
    block: &[u8],
) -> Result<(), String> {
    if !r.openings_verify(params, o.comm_d) {
        return Err("an opened leaf is not in the sealed sector's data".into());
    }
    if !r
        .openings
        .iter()
        .all(|x| x.matches(&o.detail, o.start, block))
    {
        return Err(format!(
            "the sealed sector's data is not the block {} it lists",
            o.cid
        ));
    }
    Ok(())
}
