//! What the node answers its peers: the block protocol's [`Service`] on the repo.

use super::admit::{self, Admission};
use super::*;

impl NodeService {
    /// Bytes this node's data takes on disk: its blocks, and with proofs on the replicas kept
    /// and those its unsealed blocks will need (what `capacity` is measured against).
    pub(crate) fn disk_use(&self) -> u64 {
        let blocks = self.used.load(Ordering::Relaxed);
        match &self.proofs {
            Some(p) => p.disk_use(blocks),
            None => blocks,
        }
    }

    /// Bytes a new block of `len` bytes will take: itself, and its replica with proofs on.
    pub(crate) fn space_for(&self, len: u64) -> u64 {
        match &self.proofs {
            Some(_) => len.saturating_add(crate::proving::replica_cost(len)),
            None => len,
        }
    }

    /// A peer's plan was registered (or refused): it may send another.
    pub(crate) fn plan_done(&self, from: &PeerId) {
        if let Ok(mut w) = self.plans_waiting.lock() {
            w.remove(from);
        }
    }
}

impl NodeService {
    fn quarantined(&self, cid: &Cid) -> bool {
        matches!(
            self.repo
                .store()
                .table_get(Table::Quarantine, &cid.to_bytes()),
            Ok(Some(_))
        )
    }

    /// The index of a dataset whose manifest head and pages are stored here.
    fn dataset(&self, manifest: &Cid) -> Option<Arc<DatasetIndex>> {
        if let Some(d) = self.index.lock().ok()?.get(manifest) {
            return Some(d.clone());
        }
        let m = self.repo.manifest(manifest).ok()?;
        let stripes = self.repo.stripes(&m).ok()?;
        let d = Arc::new(DatasetIndex {
            root: m.root,
            pages: m.pages.iter().copied().collect(),
            shards: stripes
                .iter()
                .enumerate()
                .flat_map(|(i, s)| s.shards().map(move |c| (*c, i as u32)))
                .collect(),
            stripes: stripes
                .iter()
                .map(|s| (crate::plan::stripe_key(s), s.data.len() + s.parity.len()))
                .collect(),
        });
        let mut idx = self.index.lock().ok()?;
        if idx.len() >= MAX_INDEXED_DATASETS {
            idx.clear();
        }
        idx.insert(*manifest, d.clone());
        Some(d)
    }

    /// Stores a block `from` pushed for dataset `manifest` (a copy in table `manifests` too for
    /// the manifest's own blocks), when admission lets it ([`super::admit`]) and it fits.
    fn store_block(
        &self,
        from: &PeerId,
        manifest: &Cid,
        block: Block,
        manifest_copy: bool,
        rank: Option<(usize, usize)>,
    ) -> PutStatus {
        let len = block.data.len() as u64;
        // a block held already (perhaps quarantined, or without its manifest copy) is written
        // again, free: it takes no new space
        let had = self.repo.store().has(&block.cid).unwrap_or(false);
        // what the block takes on disk, replica included: what quotas and capacity count
        let cost = self.space_for(len);
        if !had {
            match self.admission(from, cost, rank) {
                Admission::Admit => {}
                refused => {
                    tracing::debug!(%from, %manifest, cid = %block.cid, ?refused, "pushed block refused");
                    return PutStatus::Refused;
                }
            }
            if self.disk_use().saturating_add(cost) > self.capacity {
                return PutStatus::NoSpace;
            }
        }
        let cid = block.cid;
        let mut b = Batch::new();
        if manifest_copy {
            b.put(Table::Manifests, cid.to_bytes(), block.data.to_vec());
        }
        if !had {
            self.charge(&mut b, manifest, from, cost);
        }
        // a block held only in a replica (replica-only mode) gets no second, plain copy
        let in_replica = had
            && !self.quarantined(&cid)
            && self.repo.store().held_in_replica(&cid).unwrap_or(false);
        if !in_replica {
            b.put_block(block).delete(Table::Quarantine, cid.to_bytes());
        }
        match self.repo.store().write(b, Durability::Deferred) {
            Ok(()) => {
                if !had {
                    self.used.fetch_add(len, Ordering::Relaxed);
                    self.charged(*from, cost);
                }
                PutStatus::Stored
            }
            Err(e) => {
                tracing::error!(%cid, error = %e, "storing a pushed block failed");
                PutStatus::Failed
            }
        }
    }
}

impl Service for NodeService {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            capacity: self.capacity,
            used: self.disk_use(),
        }
    }

    fn have(&self, cids: &[Cid]) -> Vec<bool> {
        cids.iter()
            .map(|c| self.repo.store().has(c).unwrap_or(false) && !self.quarantined(c))
            .collect()
    }

    fn get_block(&self, from: PeerId, cid: &Cid) -> Option<Bytes> {
        // `Repo::block` verifies, and quarantines a block that does not match
        let Some(b) = self.repo.block(cid).ok().map(Bytes::from) else {
            // a promoted copy kept here for a peer (counted by the cache)
            return self.cache.get(cid);
        };
        let peer_node = self
            .storage_peers
            .lock()
            .map(|s| s.contains(&from))
            .unwrap_or(false);
        if !peer_node {
            self.reads.record(*cid, b.len() as u64, now_ms());
        }
        Some(b)
    }

    fn cached(&self, from: PeerId, cids: &[Cid]) -> Vec<Option<u32>> {
        self.cache.cached(from, cids)
    }

    fn put_cached(&self, from: PeerId, block: Block, planned: bool) -> PutStatus {
        if self.repo.store().has(&block.cid).unwrap_or(false) {
            // held here already (base placement): nothing to copy
            return PutStatus::Stored;
        }
        let proofs = self.proofs.clone();
        self.cache.put(from, block, planned, &|p| {
            proofs.as_ref().is_none_or(|l| l.is_prover(p))
        })
    }

    fn cache_done(&self, from: PeerId, stored: &[Cid], planned: bool) -> bool {
        // a plan's copies are short-lived (look-ahead, kept for a later planned read, or spare
        // for at most plan_keep_secs), and their readers find them through the fast peers the
        // plan's node named: they are not announced (no provider records left behind)
        if stored.is_empty() || planned {
            return true;
        }
        // No flush per push: promoted copies are a cache over blocks that stay on their base
        // holders. A crash may lose the latest ones (the store's atomic flush keeps `cache`
        // and `cache_index` in step); the promoter's next `Cached` check sees them gone, and
        // clients that try one fall back to the base holders.
        let _ = from;
        if self.announce.try_send(stored.to_vec()).is_err() {
            tracing::warn!("announcement queue full; promoted copies not announced");
        }
        true
    }

    fn plan_reads(&self, from: PeerId, root: &Cid, cids: &[Cid]) -> Result<(), String> {
        let mut book = self.plan_book.lock().map_err(|_| "busy".to_string())?;
        // a peer's plan is its job "peer <id>": a report moves only the sender's own plan
        match book.reader_reads(root, &super::access_plan::peer_job(&from), cids, now_ms()) {
            Some(_) => Ok(()),
            None => Err(format!("no plan of yours over {root} is followed here")),
        }
    }

    fn cache_space(&self, from: PeerId) -> cairn_net::wire::CacheSpace {
        let proofs = self.proofs.clone();
        self.cache
            .space(from, &|p| proofs.as_ref().is_none_or(|l| l.is_prover(p)))
    }

    fn uncache(&self, from: PeerId, cids: &[Cid]) -> Vec<bool> {
        self.cache.uncache(from, cids)
    }

    fn put_block(&self, from: PeerId, manifest: &Cid, block: Block) -> PutStatus {
        if block.cid == *manifest {
            self.push_seen(manifest, now_ms());
            return match Manifest::decode(&block.data) {
                Ok(_) => self.store_block(&from, manifest, block, true, None),
                Err(e) => {
                    tracing::info!(%from, %manifest, error = %e, "pushed manifest rejected");
                    PutStatus::NotInDataset
                }
            };
        }
        let is_page = match self.repo.manifest(manifest) {
            Ok(m) => m.pages.contains(&block.cid),
            Err(_) => return PutStatus::NotInDataset,
        };
        if is_page {
            return self.store_block(&from, manifest, block, true, None);
        }
        let status = match self.dataset(manifest) {
            Some(d) => match d
                .shards
                .get(&block.cid)
                .and_then(|&i| d.stripes.get(i as usize))
            {
                Some((key, n)) => {
                    let rank = self.rank_here(key, *n);
                    self.store_block(&from, manifest, block, false, rank)
                }
                None => PutStatus::NotInDataset,
            },
            None => PutStatus::NotInDataset,
        };
        if status == PutStatus::Stored {
            self.push_seen(manifest, now_ms());
        }
        status
    }

    fn plan(
        &self,
        from: PeerId,
        root: &Cid,
        seed: Option<u64>,
        rate: u64,
    ) -> Result<Vec<PeerId>, String> {
        if !self.follows_plans {
            return Err("this node follows no plans".into());
        }
        // a stranger's plan makes this node list the dataset and expand its files: only for
        // a dataset it keeps, so the work is bounded by what it stores
        let kept = self
            .repo
            .store()
            .table_get(cairn_repo::store::Table::Pins, &root.to_bytes())
            .map_err(|e| format!("busy: {e}"))?;
        if kept.is_none() {
            return Err(format!("this node keeps no dataset {root}"));
        }
        // a node fast itself is where other nodes' plans copy to; following a plan, it could
        // copy only to the other fast peers, and its own shards need no copy
        if self.self_fast.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("busy: this node is fast itself; a slow holder follows plans".into());
        }
        let mut waiting = self.plans_waiting.lock().map_err(|_| "busy".to_string())?;
        if waiting.contains_key(&from) {
            return Err("busy: a plan of yours is being registered".into());
        }
        // peers' plans over one dataset at a time: a job over another dataset goes to another
        // of its holders (`PlanBook::peers_follow_another`)
        let other = match waiting.values().find(|r| *r != root) {
            Some(r) => Some(*r),
            None => self
                .plan_book
                .lock()
                .map_err(|_| "busy".to_string())?
                .peers_follow_another(root, now_ms()),
        };
        if let Some(other) = other {
            return Err(format!(
                "busy: this node follows peers' plans over dataset {other}"
            ));
        }
        let p = super::PeerPlan {
            from,
            root: *root,
            seed,
            rate,
        };
        self.plans
            .try_send(p)
            .map_err(|_| "busy: too many plans waiting".to_string())?;
        waiting.insert(from, *root);
        Ok(self.fast_now.lock().map(|f| f.clone()).unwrap_or_default())
    }

    fn app(&self, from: PeerId, msg: &[u8]) -> Result<Vec<u8>, String> {
        match &self.proofs {
            Some(p) => p.answer(from, msg, &|m| cairn_net::identity::sign(&self.key, m)),
            None => Err("this node does not prove storage".into()),
        }
    }

    fn put_done(&self, from: PeerId, manifest: &Cid, stored: &[Cid]) -> bool {
        // Stored blocks become durable at the pusher's `Commit` (one flush per dataset, not
        // one per push of 8 blocks); until then a crash may lose them, and the pusher keeps
        // its own copies until every receiver committed.
        let _ = from;
        if stored.is_empty() {
            return true;
        }
        let pages = self.dataset(manifest).map(|d| d.pages.clone());
        let mut ann: Vec<Cid> = stored
            .iter()
            .filter(|c| !pages.as_ref().is_some_and(|p| p.contains(c)))
            .copied()
            .collect();
        ann.push(*manifest);
        if self.announce.try_send(ann).is_err() {
            tracing::warn!("announcement queue full; the next reprovide will announce");
        }
        true
    }

    fn commit(&self, from: PeerId, manifest: &Cid, publisher: PeerId) -> Result<bool, String> {
        let Some(d) = self.dataset(manifest) else {
            return Err(format!("no manifest {manifest} was pushed here"));
        };
        if let Err(e) = self.repo.store().persist() {
            tracing::error!(%from, error = %e, "persisting pushed blocks failed");
            return Ok(false);
        }
        let mut b = Batch::new();
        b.put(Table::Datasets, d.root.to_bytes(), manifest.to_bytes())
            .put(Table::Pins, d.root.to_bytes(), manifest.to_bytes());
        // the first publisher claim is kept: the publisher's own push comes before any
        // repair or rebalance that forwards the claim (docs/wire.md, `Commit`)
        let known = self
            .repo
            .store()
            .table_get(Table::Publishers, &manifest.to_bytes());
        if matches!(known, Ok(None)) {
            b.put(Table::Publishers, manifest.to_bytes(), publisher.to_bytes());
        }
        if let Err(e) = self.repo.store().write(b, Durability::Sync) {
            tracing::error!(%from, error = %e, "recording a pushed dataset failed");
            return Ok(false);
        }
        self.push_committed(manifest);
        Ok(true)
    }

    fn remove(&self, from: PeerId, manifest: &Cid) -> Result<bool, String> {
        let publisher = match self
            .repo
            .store()
            .table_get(Table::Publishers, &manifest.to_bytes())
        {
            Ok(p) => p.and_then(|p| PeerId::from_bytes(&p).ok()),
            Err(e) => return Err(format!("reading the dataset's publisher: {e}")),
        };
        let Some(root) = self.dataset(manifest).map(|d| d.root) else {
            return Ok(false);
        };
        match publisher {
            Some(p) if p == from => {}
            Some(p) => {
                tracing::info!(%from, %manifest, publisher = %p, "removal refused: not the publisher");
                return Err(format!(
                    "refused: only the dataset's publisher {p} may remove {root}"
                ));
            }
            None => return Err(format!("refused: no publisher is recorded for {root} here")),
        }
        match self.repo.remove(&root) {
            Ok(r) => {
                self.used.fetch_sub(
                    r.bytes.min(self.used.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                if let Ok(mut idx) = self.index.lock() {
                    idx.remove(manifest);
                }
                if let Err(e) = self.recount_pushes() {
                    tracing::warn!(error = %e, "recounting push charges failed");
                }
                tracing::info!(%from, %root, blocks = r.removed, bytes = r.bytes, "dataset removed on its publisher's request");
                Ok(true)
            }
            Err(RepoError::NotHeld(_)) => Ok(false),
            Err(e) => Err(format!("removing {root}: {e}")),
        }
    }
}

/// Push admission ([`super::admit`]): the receiver's rank, the pushers' charges.
impl NodeService {
    /// What `p` has proven here, counted as the disk it takes (data and replica, as charges
    /// are: [`NodeService::space_for`]); `None`: proofs off.
    fn proven_of(&self, p: &PeerId) -> Option<u64> {
        self.proofs
            .as_ref()
            .map(|l| self.space_for(l.proven_bytes(p)))
    }

    /// Where this node ranks for a stripe (its rendezvous `key`, `n` shards) among the live
    /// nodes it last saw; `None` with no view yet.
    pub(super) fn rank_here(&self, key: &[u8], n: usize) -> Option<(usize, usize)> {
        let me = self.key.public().to_peer_id();
        let view = self.view.lock().ok()?;
        if view.is_empty() {
            return None;
        }
        crate::plan::rank_of(key, &view, &me).map(|r| (r, n))
    }

    /// Remembers the live nodes this node saw last, for [`Self::rank_here`].
    pub(super) fn set_view(&self, live: Vec<crate::plan::Live<PeerId>>) {
        if let Ok(mut v) = self.view.lock() {
            *v = live;
        }
    }

    /// Whether a block taking `len` bytes of disk ([`NodeService::space_for`]) pushed by `from`
    /// (its stripe ranked as `rank`) is stored.
    pub(super) fn admission(
        &self,
        from: &PeerId,
        len: u64,
        rank: Option<(usize, usize)>,
    ) -> admit::Admission {
        let proven = self.proven_of(from);
        let Ok(c) = self.charges.lock() else {
            return admit::Admission::OverQuota;
        };
        if !c.knows(from) && c.pushers() >= admit::MAX_PUSHERS {
            return admit::Admission::OverQuota;
        }
        let (theirs, overdrawn) = c.get(from);
        admit::admit(&admit::Ask {
            len,
            rank,
            proven,
            theirs,
            overdrawn,
            capacity: self.capacity,
        })
    }

    /// Adds to `b` the charge of `len` more bytes of disk for dataset `manifest` to `from` (recorded in
    /// memory by [`Self::charged`] once `b` is written).
    pub(super) fn charge(&self, b: &mut Batch, manifest: &Cid, from: &PeerId, len: u64) {
        let key = admit::row_key(manifest, from);
        let now = match self.repo.store().table_get(Table::Pushed, &key) {
            Ok(Some(v)) => admit::row_value(&v),
            _ => 0,
        };
        b.put(
            Table::Pushed,
            key,
            now.saturating_add(len).to_be_bytes().to_vec(),
        );
    }

    /// Records in memory a charge written by [`Self::charge`].
    pub(super) fn charged(&self, from: PeerId, len: u64) {
        let proven = self.proven_of(&from);
        if let Ok(mut c) = self.charges.lock() {
            let theirs = c.get(&from).0.saturating_add(len);
            c.set(from, theirs, proven);
        }
    }

    /// Rebuilds the charges from table `pushed`, dropping the rows of datasets whose manifest
    /// is no longer held (collected or removed).
    pub(super) fn recount_pushes(&self) -> Result<(), StoreError> {
        let mut totals: HashMap<PeerId, u64> = HashMap::new();
        let mut b = Batch::new();
        for (k, v) in self.repo.store().table_scan(Table::Pushed)? {
            match admit::parse_row_key(&k) {
                Some((m, p)) if self.repo.store().has(&m)? => {
                    *totals.entry(p).or_default() += admit::row_value(&v);
                }
                _ => {
                    b.delete(Table::Pushed, k);
                }
            }
        }
        if !b.ops.is_empty() {
            self.repo.store().write(b, Durability::Deferred)?;
        }
        let mut fresh = admit::PushCharges::default();
        for (p, t) in totals {
            let proven = self.proven_of(&p);
            fresh.set(p, t, proven);
        }
        if let Ok(mut c) = self.charges.lock() {
            *c = fresh;
        }
        Ok(())
    }
}
