//! The node as the fast tier's host ([`TierHost`]), and the node's fast-tier calls, which run
//! [`FastTier`] over it.

use super::Node;
use crate::error::NodeError;
use crate::heat::{now_ms, Heat, Read, Speed};
use crate::tier::{
    FastCache, FastTier, PeerSpeedReport, PlanBlock, PrefetchReport, PromoterState, TierHost,
    TierStatus, WindowReport,
};
use cairn_core::Cid;
use cairn_net::wire::NodeInfo;
use cairn_net::{NetClient, PeerId};
use cairn_repo::Repo;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

impl TierHost for Node {
    fn net(&self) -> &NetClient {
        &self.inner.net
    }

    fn shared_repo(&self) -> Arc<Repo> {
        self.inner.repo.clone()
    }

    fn tier(&self) -> &PromoterState {
        &self.inner.tier
    }

    fn cache(&self) -> Arc<FastCache> {
        self.inner.svc.cache.clone()
    }

    fn peer_speeds(&self) -> Vec<(PeerId, Speed)> {
        self.inner.speeds.all()
    }

    fn record_probe(&self, peer: PeerId, bytes: u64, dt: Duration) {
        self.inner.speeds.probe(peer, bytes, dt);
    }

    fn hot_shards(&self, n: usize) -> Vec<(Cid, Heat, f64)> {
        self.inner.svc.reads.hottest(n, now_ms())
    }

    fn shard_reads(&self, cid: &Cid) -> u64 {
        self.inner.svc.reads.get(cid).map_or(0, |h| h.reads)
    }

    fn record_reads(&self, cid: Cid, size: u64, n: u64, at_ms: u64) {
        self.inner.svc.reads.record_many(cid, size, n, at_ms);
    }

    fn reads_since(&self, seq: u64) -> (Vec<Read>, u64) {
        self.inner.svc.reads.since(seq)
    }

    fn faulty_peers(&self) -> Vec<PeerId> {
        Node::faulty_peers(self)
    }

    fn stop_signal(&self) -> watch::Receiver<bool> {
        self.inner.stop.subscribe()
    }

    async fn live_nodes(&self) -> Vec<(PeerId, NodeInfo)> {
        Node::live_nodes(self).await
    }

    async fn block_for_plan(
        &self,
        root: Cid,
        cid: Cid,
        fast: &[PeerId],
    ) -> Result<PlanBlock, String> {
        if let Some(p) = self.fast_holder(&root, &cid, fast).await {
            return Ok(PlanBlock::FastHolder(p));
        }
        match self.block_of(&root, &cid).await {
            Ok(Some(b)) => Ok(PlanBlock::Data(b)),
            Ok(None) => Err("not found in the network".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Node {
    /// Peers' measured speeds, fastest first, each marked fast or not (faulty provers are
    /// never fast).
    pub fn speed_report(&self) -> Vec<PeerSpeedReport> {
        FastTier(self.clone()).speed_report()
    }

    /// The peers measured fast enough to hold promoted copies, fastest first.
    pub fn fast_peers(&self) -> Vec<PeerId> {
        FastTier(self.clone()).fast_peers()
    }

    /// Probes peers' speeds now (ping RTT and a timed block fetch); returns how many answered.
    pub async fn probe_peers(&self) -> usize {
        FastTier(self.clone()).probe_peers().await
    }

    /// Runs one placement window now: the engine on this node's reads, then promotions and
    /// demotions.
    pub async fn placement_window(&self) -> Result<WindowReport, NodeError> {
        FastTier(self.clone()).placement_window().await
    }

    /// The fast tier's state here: hot shards, peer speeds, promotions, cached copies, moves.
    pub async fn tier_status(&self) -> TierStatus {
        FastTier(self.clone()).tier_status().await
    }

    /// Runs placement windows on a timer until the node stops.
    pub(crate) async fn placement_worker(self) {
        FastTier(self).placement_worker().await
    }

    /// Follows the readers' plans once now (reads observed, copies made and dropped); the
    /// node also does it on its own every `prefetch_every`.
    pub async fn prefetch_tick(&self) -> PrefetchReport {
        FastTier(self.clone()).prefetch_tick().await
    }

    /// Follows readers' plans on a timer until the node stops.
    pub(crate) async fn prefetch_worker(self) {
        FastTier(self).prefetch_worker().await
    }
}
