//! The prover's work over its host: sealing passes, the gossip of sector and audit records,
//! audits of peers (schedule, request, verdict, signature, log) and faults.

use super::schedule::{audit_target, judge, window_is_current, Answer};
use super::*;

impl<H: ProverHost + Clone> Prover<H> {
    fn proofs(&self) -> Option<Arc<Ledger>> {
        self.0.proofs()
    }

    /// Peers this node currently counts as faulty.
    pub fn faulty_peers(&self) -> Vec<PeerId> {
        self.0
            .proofs()
            .and_then(|p| p.faulty.lock().ok().map(|f| f.keys().copied().collect()))
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
        let Some(p) = self.proofs() else { return };
        let mut stop = self.0.stop_signal();
        loop {
            let (source, topic, data) = tokio::select! {
                _ = stop.changed() => return,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            let p = p.clone();
            let node = self.clone();
            let outcome = match topic.as_str() {
                SECTOR_TOPIC => {
                    offload(move || {
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
                Ok(Ok(true)) => self.0.repair_notify().notify_one(),
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
        if !window_is_current(a.window, p.window_now()) {
            return Ok(Err(AuditError::Field(
                "audit record for a window that is not the previous, current or next",
            )
            .into()));
        }
        if !cairn_net::identity::verify_signature(&a.auditor, &a.signed_bytes(), &a.signature) {
            return Ok(Err(AuditError::Field("auditor signature invalid").into()));
        }
        // counted once the signature holds, so nobody spends another auditor's quota
        let admitted = p
            .verdict_quota
            .lock()
            .map(|mut q| q.admit(&a.auditor, a.window, p.window_now()))
            .unwrap_or(false);
        if !admitted {
            return Ok(Err(AuditError::Field(
                "the auditor sent more audit records this window than any audit needs",
            )
            .into()));
        }
        let known = p.sectors_of(&a.prover);
        if a.sectors.iter().any(|s| !known.contains(s)) {
            if let Ok(prover) = PeerId::from_bytes(&a.prover) {
                self.fetch_sectors(prover).await;
            }
        }
        let p2 = p.clone();
        offload(move || {
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
        match audit_target(me, &p.provers(), p.window_now()) {
            Some(target) => self.audit_once_for(target).await,
            None => Ok(None),
        }
    }

    /// Audits `target` now (what [`Node::audit_once`] does for the window's peer). `None` when
    /// no sector of `target` is known.
    pub async fn audit_once_for(&self, target: PeerId) -> Result<Option<AuditRecord>, NodeError> {
        let Some(p) = self.proofs() else {
            return Ok(None);
        };
        let me = self.0.net().peer_id();
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
            proof: Vec::new(),
            reason: String::new(),
            signature: Vec::new(),
        };
        let answer = match answer {
            Err(_) => Answer::Late(deadline),
            Ok(Err(e)) => Answer::Unreachable(e.to_string()),
            Ok(Ok(CtrlResponse::Error(e))) => Answer::Refused(e),
            Ok(Ok(CtrlResponse::App(bytes))) => Answer::Reply(bytes.to_vec()),
            Ok(Ok(_)) => Answer::Unexpected,
        };
        // the verdict is pure ([`judge`]); the proof check in it runs on the blocking pool
        let (p2, r2) = (p.clone(), rec.clone());
        let (verdict, reason, proof) = offload(move || {
            judge(&answer, |proof| {
                let mut r = r2;
                r.proof = proof.to_vec();
                p2.proof_verifies(&r)
            })
        })
        .await?;
        (rec.verdict, rec.reason, rec.proof) = (verdict, reason, proof);
        rec.signature = self.0.net().sign(&rec.signed_bytes());
        let (p2, r2) = (p.clone(), rec.clone());
        let newly_faulty = offload(move || p2.record_audit(&r2, true))
            .await?
            .map_err(proofs_err)?;
        if let Err(e) = self.0.net().publish(AUDIT_TOPIC, rec.encode()).await {
            tracing::debug!(error = %e, "audit record not gossiped");
        }
        if newly_faulty {
            self.0.repair_notify().notify_one();
        }
        Ok(Some(rec))
    }
}
