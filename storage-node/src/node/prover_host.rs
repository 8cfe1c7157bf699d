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

    /// The audit log (entries from `from` on, at most [`LOG_PAGE`]).
    pub async fn audit_log(&self, from: u64) -> Result<Vec<LogEntry>, NodeError> {
        Prover(self.clone()).audit_log(from).await
    }

    /// Seals every stored block not yet in a sector, now.
    pub async fn seal_now(&self) -> Result<usize, NodeError> {
        Prover(self.clone()).seal_now().await
    }

    pub(crate) async fn seal_worker(self) {
        Prover(self).seal_worker().await
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

    /// Audits `target` now (what [`Node::audit_once`] does for the window's peer). `None` when
    /// no sector of `target` is known.
    pub async fn audit_once_for(&self, target: PeerId) -> Result<Option<AuditRecord>, NodeError> {
        Prover(self.clone()).audit_once_for(target).await
    }
}
