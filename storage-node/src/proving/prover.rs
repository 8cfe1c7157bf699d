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

fn invalid(reason: &str) -> Refused {
    Refused {
        reason: reason.to_string(),
        penalize: true,
    }
}

fn not_now(reason: &str) -> Refused {
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

    /// The audit log (entries from `from` on, at most [`LOG_PAGE`]).
    pub async fn audit_log(&self, from: u64) -> Result<Vec<LogEntry>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(Vec::new());
        };
        let all = offload(move || p.log()).await?.map_err(proofs_err)?;
        Ok(all.into_iter().skip(from as usize).take(LOG_PAGE).collect())
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
        if a.auditor == p.me() {
            // this node's own records come from here, not from gossip: never forwarded
            return Ok(Err(not_now("a record naming this node as its auditor")));
        }
        if a.role == Role::Manual {
            return Ok(Err(invalid(
                "an audit by a peer that is not a designated auditor counts for nothing",
            )));
        }
        if !window_is_current(a.window, p.window_now()) {
            return Ok(Err(not_now(
                "audit record for a window that is not the previous, current or next",
            )));
        }
        if !cairn_net::identity::verify_signature(&a.auditor, &a.signed_bytes(), &a.signature) {
            return Ok(Err(invalid("auditor signature invalid")));
        }
        let (Ok(auditor), Ok(prover)) = (
            PeerId::from_bytes(&a.auditor),
            PeerId::from_bytes(&a.prover),
        ) else {
            return Ok(Err(invalid("peer id unreadable")));
        };
        // the role first: only a member of the ring (a peer whose sealed sector this node
        // verified) can be designated, so identities that cost nothing go no further: they
        // neither spend the quota below nor make this node fetch anything
        if role_of(auditor, prover, &p.ring(), a.window) != a.role {
            return Ok(Err(not_now(
                "the auditor is not the prover's designated auditor in that role this window",
            )));
        }
        // counted once the signature and the role hold, so nobody spends another auditor's
        // quota
        let admitted = p
            .verdict_quota
            .lock()
            .map(|mut q| q.admit(&a.auditor, a.window, p.window_now()))
            .unwrap_or(false);
        if !admitted {
            return Ok(Err(not_now(
                "the auditor sent more audit records this window than any audit needs",
            )));
        }
        let known = p.sectors_of(&a.prover);
        if a.sectors.iter().any(|s| !known.contains(s)) {
            // a designated auditor names a sector this node has not heard of yet
            self.fetch_sectors(prover).await;
        }
        let p2 = p.clone();
        let a2 = a.clone();
        let outcome = offload(move || {
            let a = a2;
            let known = p2.sectors_of(&a.prover);
            if a.sectors.iter().any(|s| !known.contains(s)) {
                return Err(not_now("audit of sectors with no known commitment"));
            }
            let ok = !a.proof.is_empty() && p2.proof_verifies(&a);
            match a.verdict {
                Verdict::Pass if !ok => return Err(invalid("a pass whose proof does not verify")),
                Verdict::Fail | Verdict::Missed if ok => {
                    return Err(invalid("a fail whose proof verifies"))
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
                tokio::spawn(async move {
                    match node.audit_as(prover, window, Role::Confirmer).await {
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

    /// Asks `peer` for its sector records and registers the ones whose seal proof verifies.
    async fn fetch_sectors(&self, peer: PeerId) {
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
            let full = recs.len() == MAX_SECTORS_PAGE;
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
        match audit_target(me, &p.ring(), window) {
            Some(target) => self.audit_as(target, window, Role::Primary).await,
            None => Ok(None),
        }
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
        self.audit_as(target, window, role).await
    }

    /// The designated auditors of `target` this window (primary, confirming), as this node
    /// sees the ring.
    pub fn auditors_of(&self, target: PeerId) -> Option<(PeerId, Option<PeerId>)> {
        let p = self.proofs()?;
        auditors_of(target, &p.ring(), p.window_now())
    }

    /// One audit of `target` for `window` in `role`: fresh nonce, a random batch of its
    /// committed sectors, the verdict ([`judge`]), signed; logged, and gossiped unless manual.
    pub(crate) async fn audit_as(
        &self,
        target: PeerId,
        window: u64,
        role: Role,
    ) -> Result<Option<AuditRecord>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(None);
        };
        let me = self.0.net().peer_id();
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
            self.0.net().ctrl(target, CtrlRequest::App(req.encode())),
        )
        .await;
        let mut rec = AuditRecord {
            auditor: me.to_bytes(),
            prover: target.to_bytes(),
            window,
            nonce,
            sectors: batch,
            verdict: Verdict::Missed,
            role,
            proof: Vec::new(),
            reason: String::new(),
            answer_sig: Vec::new(),
            signature: Vec::new(),
        };
        let answer = match answer {
            Err(_) => Answer::Late(deadline),
            Ok(Err(e)) => Answer::Unreachable(e.to_string()),
            Ok(Ok(CtrlResponse::Error(e))) => Answer::Declined(e),
            Ok(Ok(CtrlResponse::App(bytes))) => Answer::Reply(bytes.to_vec()),
            Ok(Ok(_)) => Answer::Unexpected,
        };
        // the verdict is pure ([`judge`]); the checks in it run on the blocking pool
        let (p2, r2) = (p.clone(), rec.clone());
        let j = offload(move || {
            let ids: Vec<u64> = r2.sectors.iter().map(|s| s.0).collect();
            judge(
                &answer,
                |proof, refusal, sig| {
                    let m = audit::answer_message(
                        &r2.auditor,
                        &r2.prover,
                        r2.window,
                        &r2.nonce,
                        &ids,
                        proof,
                        refusal,
                    );
                    cairn_net::identity::verify_signature(&r2.prover, &m, sig)
                },
                |proof| {
                    let mut r = r2.clone();
                    r.proof = proof.to_vec();
                    p2.proof_verifies(&r)
                },
            )
        })
        .await?;
        (rec.verdict, rec.reason, rec.proof, rec.answer_sig) =
            (j.verdict, j.reason, j.proof, j.answer_sig);
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
