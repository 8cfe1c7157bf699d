//! The node as the prover's host ([`ProverHost`]), and the node's proving calls, which run
//! [`Prover`] over it.

use super::Node;
use crate::error::NodeError;
use crate::proving::{GossipMsg, Ledger, ProofStatus, Prover, ProverHost};
use cairn_net::{NetClient, PeerId};
use cairn_proofs::audit::{AuditRecord, LogEntry};
use std::sync::Arc;
use tokio::sync::mpsc;

impl ProverHost for Node {
    fn net(&self) -> &NetClient {
        &self.inner.net
    }

    fn proofs(&self) -> Option<Arc<Ledger>> {
        self.inner.proofs.clone()
    }

    fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    fn repair_notify(&self) -> &tokio::sync::Notify {
        &self.inner.repair_now
    }

    fn seal_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.seal_lock
    }

    fn shard_rebuilt(
        &self,
        cid: cairn_core::Cid,
    ) -> impl std::future::Future<Output = Option<Vec<u8>>> + Send {
        let node = self.clone();
        async move { node.shard_rebuilt(cid).await }
    }
}

impl Node {
    /// Peers this node currently counts as faulty.
    pub fn faulty_peers(&self) -> Vec<PeerId> {
        Prover(self.clone()).faulty_peers()
    }

    /// A receiver that changes whenever the faulty set does (tests and the API wait on it).
    pub fn faulty_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Prover(self.clone()).faulty_changes()
    }

    /// Proof counters, when proofs are on.
    pub fn proof_status(&self) -> Option<ProofStatus> {
        Prover(self.clone()).proof_status()
    }

    /// The audit log: at most [`LOG_PAGE`] entries from position `from` on.
    pub async fn audit_log(&self, from: u64) -> Result<Vec<LogEntry>, NodeError> {
        Prover(self.clone()).audit_log(from).await
    }

    /// Asks `peer` for its sector records now and registers those whose seal proof verifies
    /// (audits do it for peers not heard of yet; records are gossiped as they are sealed).
    pub async fn refresh_sectors(&self, peer: PeerId) {
        Prover(self.clone()).fetch_sectors(peer).await
    }

    /// Seals every stored block not yet in a sector, now.
    pub async fn seal_now(&self) -> Result<usize, NodeError> {
        Prover(self.clone()).seal_now().await
    }

    /// Retires this node's sealed sectors whose blocks have all left the store (a signed
    /// retirement, logged and gossiped), and deletes the replicas of those retired at least
    /// `retire_grace` windows ago. Returns the sectors retired now. The sealing worker does it
    /// after every pass.
    pub async fn retire_now(&self) -> Result<usize, NodeError> {
        Prover(self.clone()).retire_now().await
    }

    pub(crate) async fn seal_worker(self) {
        Prover(self).seal_worker().await
    }

    /// Handles a proofs gossip message as if `source` had gossiped it, and says what came of
    /// it: `Ok(true)` when a prover became faulty, `Err` with the reason it was refused. The
    /// gossip worker does the same for every message; tests that play a dishonest peer call
    /// it to see why a forged record is refused.
    #[doc(hidden)]
    pub async fn accept_gossip(
        &self,
        source: PeerId,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<bool, String> {
        let outcome = Prover(self.clone())
            .handle_gossip(source, topic, data)
            .await;
        match outcome {
            Ok(Ok(faulty)) => {
                if faulty {
                    self.inner.repair_now.notify_one();
                }
                Ok(faulty)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(crate) async fn gossip_worker(self, rx: mpsc::Receiver<GossipMsg>) {
        Prover(self).gossip_worker(rx).await
    }

    pub(crate) async fn audit_worker(self) {
        Prover(self).audit_worker().await
    }

    /// Audits this window's peer: fresh nonce, random batch of its committed sectors, verify,
    /// sign, log and gossip. `None` when there is no one to audit.
    pub async fn audit_once(&self) -> Result<Option<AuditRecord>, NodeError> {
        Prover(self.clone()).audit_once().await
    }

    /// The designated auditors of `target` this window (primary, confirming), as this node
    /// sees the ring of provers.
    pub fn auditors_of(&self, target: PeerId) -> Option<(PeerId, Option<PeerId>)> {
        Prover(self.clone()).auditors_of(target)
    }

    /// Audits `target` now, in this node's role for it this window: only a designated
    /// auditor's verdict is gossiped and counts. `None` when no sector of `target` is known.
    pub async fn audit_once_for(&self, target: PeerId) -> Result<Option<AuditRecord>, NodeError> {
        Prover(self.clone()).audit_once_for(target).await
    }

    /// Seal-checks `target`'s lowest-numbered sector that has not passed a check, in this
    /// node's role for it this window (only a designated auditor's check is gossiped and
    /// counts). `None` when every sector of `target` known here has passed one.
    pub async fn check_once_for(
        &self,
        target: PeerId,
    ) -> Result<Option<cairn_proofs::audit::SealCheck>, NodeError> {
        Prover(self.clone()).check_once_for(target).await
    }
}
