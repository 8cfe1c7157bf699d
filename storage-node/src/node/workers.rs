//! The node's background workers: announcing and reproviding, repair on schedule and on events, scrub.

use super::*;

impl Node {
    pub(super) async fn announcer(self, mut rx: mpsc::Receiver<Vec<Cid>>) {
        while let Some(batch) = rx.recv().await {
            let net = self.inner.net.clone();
            stream::iter(batch)
                .for_each_concurrent(ANNOUNCE_PARALLEL, |c| {
                    let net = net.clone();
                    async move {
                        if let Err(e) = net.provide(c).await {
                            tracing::debug!(cid = %c, error = %e, "announce failed");
                        }
                    }
                })
                .await;
        }
    }

    /// Announces every manifest and held shard, and republishes the manifest record of every
    /// dataset held here (from the manifest in the repo): at start, since DHT records live in
    /// the peers' memory and a network whose nodes all restarted would otherwise resolve
    /// nothing, and every [`REPUBLISH_INTERVAL`] after that, so records outlive the peers that
    /// stored them.
    pub(super) async fn reprovide(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut tick = tokio::time::interval(REPUBLISH_INTERVAL);
        // the first pass only announces: `Node::start` put the records just before
        let mut republish = false;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            if !self.reprovide_once(republish).await {
                return;
            }
            republish = true;
        }
    }

    /// Puts the manifest record of every dataset held here into the DHT (the local store
    /// first, then the closest peers): [`Node::start`] does it before it returns, so a node
    /// that restarted answers for its datasets at once.
    pub(super) async fn republish_records(&self) {
        let repo = self.inner.repo.clone();
        let records = offload(move || {
            let mut records = Vec::new();
            for (root, mcid) in repo.datasets().unwrap_or_default() {
                if let Ok(data) = repo.block(&mcid) {
                    let head = cairn_core::Block {
                        cid: mcid,
                        data: Bytes::from(data),
                    };
                    records.push((root, head));
                }
            }
            records
        })
        .await
        .unwrap_or_default();
        let net = &self.inner.net;
        stream::iter(records)
            .for_each_concurrent(ANNOUNCE_PARALLEL, |(root, head)| async move {
                if let Err(e) = net.publish_manifest(&root, &head).await {
                    tracing::debug!(%root, error = %e, "manifest record not republished");
                }
            })
            .await;
    }

    /// One reprovide pass (manifest records too when `republish`); `false` when the node is
    /// stopping.
    async fn reprovide_once(&self, republish: bool) -> bool {
        if republish {
            self.republish_records().await;
        }
        let repo = self.inner.repo.clone();
        let held = offload(move || {
            let mut out = Vec::new();
            for (_, mcid) in repo.datasets().unwrap_or_default() {
                out.push(mcid);
                if let Ok(m) = repo.manifest(&mcid) {
                    for s in repo.stripes(&m).unwrap_or_default() {
                        for c in s.shards() {
                            if repo.store().has(c).unwrap_or(false) {
                                out.push(*c);
                            }
                        }
                    }
                }
            }
            out
        })
        .await
        .unwrap_or_default();
        for chunk in held.chunks(1024) {
            if self.inner.svc.announce.send(chunk.to_vec()).await.is_err() {
                return false;
            }
        }
        true
    }

    pub(super) async fn repair_worker(self, mut events: mpsc::Receiver<NetEvent>) {
        let mut stop = self.inner.stop.subscribe();
        let period = self.inner.opts.repair_interval;
        let mut tick = tokio::time::interval(if period.is_zero() {
            Duration::from_secs(3600 * 24 * 365)
        } else {
            period
        });
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
                _ = self.inner.repair_now.notified() => {
                    tracing::info!("a prover became faulty; checking stripes");
                }
                ev = events.recv() => match ev {
                    None => return,
                    Some(NetEvent::Disconnected(p)) => {
                        self.inner.speeds.forget(&p);
                        tracing::info!(peer = %p, "peer disconnected; checking stripes");
                    }
                    Some(NetEvent::Rtt(p, rtt)) => {
                        self.inner.speeds.sample(p, rtt);
                        continue;
                    }
                    Some(NetEvent::Connected(_)) => continue,
                    Some(NetEvent::Gossip { source, topic, data, id }) => {
                        if let Err(e) = self.inner.gossip.try_send((source, topic, data, id)) {
                            tracing::debug!("gossip queue full; message dropped");
                            let id = e.into_inner().3;
                            let _ = self.inner.net.report_gossip(id, cairn_net::GossipVerdict::Ignore).await;
                        }
                        continue;
                    }
                },
            }
            match self.repair_round().await {
                Ok(r) if r.rebuilt > 0 || !r.failed.is_empty() => {
                    tracing::info!(rebuilt = r.rebuilt, failed = r.failed.len(), "repair round")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "repair round failed"),
            }
        }
    }

    /// Runs `pass` every `period` (the first one a period from now) until the node stops;
    /// a zero period runs nothing.
    pub(super) async fn every<F, Fut>(&self, period: Duration, mut pass: F)
    where
        F: FnMut(Node) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        if period.is_zero() {
            return;
        }
        let mut stop = self.inner.stop.subscribe();
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            pass(self.clone()).await;
        }
    }

    pub(super) async fn scrub_worker(self) {
        let period = self.inner.opts.scrub_interval;
        self.every(period, |node| async move {
            match node.scrub().await {
                Ok(n) if n > 0 => {
                    let _ = node.repair_round().await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scrub failed"),
            }
        })
        .await
    }

    /// Verifies every local block, quarantining corrupt ones (which then count as lost and are
    /// restored by repair). Returns the number of corrupt blocks found.
    pub async fn scrub(&self) -> Result<usize, NodeError> {
        Ok(self.scrub_report().await?.corrupt.len())
    }

    /// [`Node::scrub`], with what it checked. Its `missing` list is left empty: a storage
    /// node holds only its share of each dataset, so blocks absent here are not missing.
    pub async fn scrub_report(&self) -> Result<cairn_repo::ScrubReport, NodeError> {
        let repo = self.inner.repo.clone();
        let mut r = offload(move || repo.scrub(&|_| {})).await??;
        r.missing.clear();
        if let Ok(mut s) = self.inner.last_scrub.lock() {
            *s = Some(r.corrupt.len());
        }
        Ok(r)
    }
}
