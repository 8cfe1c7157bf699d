//! The node as the gateway's [`BlockSource`]: a block comes from the local repo when it is
//! here (verified, under either CID version). Otherwise, when the request's root is a dataset
//! (or a block served earlier under one: [`DatasetMemo`]), the block is fetched as a shard of
//! its stripe through the retrieval client: from its holders in parallel, verified, decoded
//! from parity when holders are gone, slow or lying. A block of no known dataset is asked of
//! the nodes that announced it in the DHT. Fetched blocks are not kept: the gateway reads, it
//! does not pin.

use super::Node;
use crate::gateway::{BlockSource, DatasetMemo, GatewayError, RepoSource};
use crate::heat::now_ms;
use bytes::Bytes;
use cairn_retrieval::client::{Client, Options, Resolved};
use cid::Cid;
use std::sync::Arc;

/// A resolution of `root` under way ([`DatasetMemo::resolving`]): dropping it forgets the
/// lock.
struct Resolving<'a> {
    memo: &'a DatasetMemo,
    root: Cid,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Resolving<'_> {
    fn drop(&mut self) {
        self.memo.resolved(&self.root, &self.lock);
    }
}

impl Node {
    /// A retrieval client that counts this node's own blocks.
    pub(super) fn gateway_client(&self) -> Client {
        let repo = self.repo_arc();
        Client::new(self.net().clone(), Options::default())
            .with_local(Arc::new(move |c| repo.block(c).ok().map(Bytes::from)))
    }

    /// The dataset `root` names, or that `root` was served under: remembered, or resolved now
    /// (a root that did not resolve is not tried again for a minute).
    pub(super) async fn gateway_dataset(
        &self,
        memo: &DatasetMemo,
        root: &Cid,
    ) -> Option<Arc<Resolved>> {
        if let Some(d) = memo.dataset_of(root) {
            return Some(d);
        }
        if memo.failed_recently(root, now_ms()) {
            return None;
        }
        // one resolution per root at a time: the others wait for it and use its result; the
        // guard forgets the lock however this ends (a caller that goes away included)
        let guard = Resolving {
            memo,
            root: *root,
            lock: memo.resolving(root),
        };
        let _one = guard.lock.lock().await;
        if let Some(d) = memo.dataset_of(root) {
            return Some(d);
        }
        if memo.failed_recently(root, now_ms()) {
            return None;
        }
        match self.gateway_client().resolve(root).await {
            Ok(r) => Some(memo.insert(r)),
            Err(e) => {
                tracing::debug!(%root, error = %e, "gateway root is no dataset known to the network");
                memo.failed(*root, now_ms());
                None
            }
        }
    }

    async fn local_block(&self, cid: &Cid) -> Option<Bytes> {
        match RepoSource::new(self.repo_arc()).block(cid).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%cid, error = %e, "local copy unreadable; asking the network");
                None
            }
        }
    }

    async fn provided_block(&self, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        self.gateway_client()
            .fetch_block(cid)
            .await
            .map_err(|e| GatewayError::Source {
                cid: *cid,
                reason: e.to_string(),
            })
    }
}

impl Node {
    /// Block `cid` of dataset `root` from this node's store or the network, without counting
    /// a read (the prefetcher and plan registration fetch through this).
    pub(crate) async fn block_of(
        &self,
        root: &Cid,
        cid: &Cid,
    ) -> Result<Option<Bytes>, GatewayError> {
        if let Some(b) = self.local_block(cid).await {
            return Ok(Some(b));
        }
        self.network_block_in(root, cid).await
    }

    /// Block `cid` of dataset `root` from the network: as a shard of its stripe when `root`
    /// is a dataset, else from the nodes that announced it.
    async fn network_block_in(&self, root: &Cid, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        let memo = &self.inner.gateway_memo;
        if let Some(d) = self.gateway_dataset(memo, root).await {
            memo.learn(*cid, d.root);
            if let Some(&(stripe, at)) = d.position.get(cid) {
                match self.gateway_client().obtain(&d, stripe, &[at]).await {
                    Ok(shards) => {
                        if let Some((_, b)) = shards.into_iter().find(|(c, _)| c == cid) {
                            return Ok(Some(Bytes::from(b)));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%cid, stripe, error = %e, "shard not had from its stripe")
                    }
                }
            }
        }
        self.provided_block(cid).await
    }

    /// The copy of `cid` this node prefetched to a fast peer for a reader's plan, verified;
    /// `None` when there is none or it cannot be had quickly (the fast peer counts the read,
    /// and reports it to the prefetcher).
    async fn plan_copy_block(&self, cid: &Cid) -> Option<Bytes> {
        let (peer, copy) = self.inner.tier.plan_copy(cid)?;
        match tokio::time::timeout(PLAN_COPY_TIMEOUT, self.net().fetch_verified(peer, cid)).await {
            Ok(Ok(Some(b))) => {
                if !copy {
                    // a fast base holder counts no plan reads: count it here
                    self.inner.tier.observe_read(cid, now_ms());
                }
                Some(b)
            }
            _ => None,
        }
    }

    /// One of `fast` that holds `cid` of dataset `root` as a base shard, as the gateway's
    /// resolution of the dataset says.
    pub(super) async fn fast_holder(
        &self,
        root: &Cid,
        cid: &Cid,
        fast: &[cairn_net::PeerId],
    ) -> Option<cairn_net::PeerId> {
        let d = self.gateway_dataset(&self.inner.gateway_memo, root).await?;
        d.holders
            .get(cid)?
            .iter()
            .find(|p| fast.contains(p))
            .copied()
    }

    /// Counts a gateway read for the readers' plans.
    fn observe(&self, got: &Result<Option<Bytes>, GatewayError>, cid: &Cid) {
        if matches!(got, Ok(Some(_))) {
            self.inner.tier.observe_read(cid, now_ms());
        }
    }
}

/// How long a prefetched copy may take to come from its fast peer before the gateway asks
/// the holders instead.
const PLAN_COPY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl BlockSource for Node {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        if let Some(b) = self.local_block(cid).await {
            self.inner.tier.observe_read(cid, now_ms());
            return Ok(Some(b));
        }
        if let Some(b) = self.plan_copy_block(cid).await {
            return Ok(Some(b));
        }
        let got = self.provided_block(cid).await;
        self.observe(&got, cid);
        got
    }

    async fn block_in(&self, root: &Cid, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        if let Some(b) = self.local_block(cid).await {
            self.inner.tier.observe_read(cid, now_ms());
            return Ok(Some(b));
        }
        if let Some(b) = self.plan_copy_block(cid).await {
            return Ok(Some(b));
        }
        let got = self.network_block_in(root, cid).await;
        self.observe(&got, cid);
        got
    }

    fn has_local(&self, cid: &Cid) -> bool {
        RepoSource::new(self.repo_arc()).has_local(cid)
    }
}
