//! The fast node's side of the fast tier: promoted copies kept here for peers (tables `cache`
//! and `cache_index`, at most `cache_bytes`), counted per promoter, with their reads.

use super::*;

/// A copy's reads and last touch, ms.
#[derive(Debug, Clone, Copy, Default)]
struct Touch {
    reads: u32,
    last_ms: u64,
    planned: bool,
}

/// The fast node's side: promoted copies kept here for peers.
pub(crate) struct FastCache {
    repo: Arc<Repo>,
    capacity: u64,
    used: AtomicU64,
    /// Bytes held per promoter: one may use at most half the capacity, so a single peer cannot
    /// take the whole fast tier.
    by_promoter: Mutex<HashMap<PeerId, u64>>,
    /// Held while a copy is admitted (`put`): checking the room, making it and taking it are
    /// one step, so two pushes cannot both count the same free bytes or victims.
    admit: Mutex<()>,
    /// Per copy: reads served since this process started, when a read or its promoter last
    /// touched it, and whether it was pushed for a reader's plan (in memory: after a restart
    /// every copy counts as unplanned).
    touched: Mutex<HashMap<Cid, Touch>>,
}

impl FastCache {
    /// Opens the cache of `repo`, counting the bytes it holds.
    pub(crate) fn open(repo: Arc<Repo>, capacity: u64) -> Result<Self, NodeError> {
        let mut used = 0;
        let mut touched = HashMap::new();
        let mut by_promoter: HashMap<PeerId, u64> = HashMap::new();
        let now = now_ms();
        for (k, v) in repo.store().table_scan(Table::CacheIndex)? {
            match (cid_from_bytes(&k), CacheEntry::decode(&v)) {
                (Ok(c), Ok(e)) => {
                    used += e.size;
                    *by_promoter.entry(e.promoter).or_default() += e.size;
                    touched.insert(
                        c,
                        Touch {
                            last_ms: now,
                            ..Touch::default()
                        },
                    );
                }
                _ => tracing::warn!("skipping a malformed cache record"),
            }
        }
        Ok(FastCache {
            repo,
            capacity,
            used: AtomicU64::new(used),
            by_promoter: Mutex::new(by_promoter),
            admit: Mutex::new(()),
            touched: Mutex::new(touched),
        })
    }

    fn entry(&self, cid: &Cid) -> Option<CacheEntry> {
        let v = self
            .repo
            .store()
            .table_get(Table::CacheIndex, &cid.to_bytes())
            .ok()??;
        CacheEntry::decode(&v).ok()
    }

    /// A promoted copy's bytes, verified; counts the read.
    pub(crate) fn get(&self, cid: &Cid) -> Option<Bytes> {
        let v = self
            .repo
            .store()
            .table_get(Table::Cache, &cid.to_bytes())
            .ok()??;
        if Block::verify(cid, &v).is_err() {
            tracing::warn!(%cid, "a promoted copy is corrupt; dropping it");
            self.drop_copies(&[*cid]);
            return None;
        }
        if let Ok(mut t) = self.touched.lock() {
            let e = t.entry(*cid).or_default();
            e.reads = e.reads.saturating_add(1);
            e.last_ms = now_ms();
        }
        Some(Bytes::from(v))
    }

    /// Per CID: the reads served by its promoted copy, if held. Asking marks the copies as
    /// still wanted when `from` is their promoter.
    pub(crate) fn cached(&self, from: PeerId, cids: &[Cid]) -> Vec<Option<u32>> {
        let now = now_ms();
        cids.iter()
            .map(|c| {
                let e = self.entry(c)?;
                let mut t = self.touched.lock().ok()?;
                let x = t.entry(*c).or_insert(Touch {
                    last_ms: now,
                    ..Touch::default()
                });
                if e.promoter == from {
                    x.last_ms = now;
                }
                Some(x.reads)
            })
            .collect()
    }

    /// The room `from` has here, with the limits [`FastCache::put`] applies: half the
    /// capacity per promoter, and a quarter for all promoters that are not proven storage
    /// nodes.
    pub(crate) fn space(&self, from: PeerId, proven: &dyn Fn(&PeerId) -> bool) -> CacheSpace {
        let (yours, others_unproven) = self
            .by_promoter
            .lock()
            .map(|m| {
                let others: u64 = m
                    .iter()
                    .filter(|(p, _)| **p != from && !proven(p))
                    .map(|(_, b)| b)
                    .sum();
                (m.get(&from).copied().unwrap_or(0), others)
            })
            .unwrap_or((0, u64::MAX));
        let mut limit = self.capacity / 2;
        if !proven(&from) {
            limit = limit.min((self.capacity / 4).saturating_sub(others_unproven));
        }
        CacheSpace {
            capacity: self.capacity,
            used: self.used.load(Ordering::Relaxed),
            yours,
            limit,
        }
    }

    /// Keeps `block` for `from`, unless the capacity is used up: one promoter may use half of
    /// it, and promoters that have not `proven` storage (no verified sealed sector; always
    /// true when proofs are off) a quarter of it together, so identities that cost nothing
    /// cannot fill the fast tier.
    ///
    /// A `planned` copy (for a reader's access plan, read within seconds) that finds the
    /// capacity used up takes the room of unplanned copies (a window's guesses that a shard
    /// stays hot), the least recently read or claimed first; their promoters find them gone
    /// at their next `Cached`. It never takes a planned copy's room, and the per-promoter
    /// limits hold either way.
    pub(crate) fn put(
        &self,
        from: PeerId,
        block: Block,
        planned: bool,
        proven: &dyn Fn(&PeerId) -> bool,
    ) -> PutStatus {
        // one admission at a time: the room checked, made and taken in one step
        let Ok(_one) = self.admit.lock() else {
            return PutStatus::Failed;
        };
        if self.entry(&block.cid).is_some() {
            if planned {
                // held already: a plan's read of it is near, so it is planned now
                if let Ok(mut t) = self.touched.lock() {
                    t.entry(block.cid).or_default().planned = true;
                }
            }
            return PutStatus::Stored;
        }
        let len = block.data.len() as u64;
        let (theirs, unproven) = self
            .by_promoter
            .lock()
            .map(|m| {
                let unproven: u64 = m.iter().filter(|(p, _)| !proven(p)).map(|(_, b)| b).sum();
                (m.get(&from).copied().unwrap_or(0), unproven)
            })
            .unwrap_or((u64::MAX, u64::MAX));
        if theirs.saturating_add(len) > self.capacity / 2
            || (!proven(&from) && unproven.saturating_add(len) > self.capacity / 4)
        {
            return PutStatus::NoSpace;
        }
        let over = (self.used.load(Ordering::Relaxed) + len).saturating_sub(self.capacity);
        if over > 0 && !(planned && self.make_room(over)) {
            return PutStatus::NoSpace;
        }
        let key = block.cid.to_bytes();
        let e = CacheEntry {
            promoter: from,
            at_ms: now_ms(),
            size: len,
        };
        let mut b = Batch::new();
        b.put(Table::Cache, key.clone(), block.data.to_vec()).put(
            Table::CacheIndex,
            key,
            e.encode(),
        );
        match self.repo.store().write(b, Durability::Deferred) {
            Ok(()) => {
                self.used.fetch_add(len, Ordering::Relaxed);
                if let Ok(mut m) = self.by_promoter.lock() {
                    *m.entry(from).or_default() += len;
                }
                if let Ok(mut t) = self.touched.lock() {
                    let x = Touch {
                        reads: 0,
                        last_ms: e.at_ms,
                        planned,
                    };
                    t.insert(block.cid, x);
                }
                PutStatus::Stored
            }
            Err(e) => {
                tracing::error!(cid = %block.cid, error = %e, "storing a promoted copy failed");
                PutStatus::Failed
            }
        }
    }

    /// Drops unplanned copies, the least recently touched first, until `bytes` are freed;
    /// false (nothing dropped) when they cannot free that much.
    fn make_room(&self, bytes: u64) -> bool {
        let mut unplanned: Vec<(u64, Cid)> = match self.touched.lock() {
            Ok(t) => t
                .iter()
                .filter(|(_, x)| !x.planned)
                .map(|(c, x)| (x.last_ms, *c))
                .collect(),
            Err(_) => return false,
        };
        unplanned.sort();
        let mut victims = Vec::new();
        let mut freed = 0u64;
        for (_, c) in unplanned {
            if freed >= bytes {
                break;
            }
            if let Some(e) = self.entry(&c) {
                freed += e.size;
                victims.push(c);
            }
        }
        if freed < bytes || !self.drop_copies(&victims) {
            return false;
        }
        tracing::debug!(
            copies = victims.len(),
            bytes = freed,
            "unplanned copies dropped for a planned one"
        );
        true
    }

    /// Drops the copies `from` promoted, of those in `cids`; true for each dropped.
    pub(crate) fn uncache(&self, from: PeerId, cids: &[Cid]) -> Vec<bool> {
        let mine: Vec<bool> = cids
            .iter()
            .map(|c| self.entry(c).is_some_and(|e| e.promoter == from))
            .collect();
        let drop: Vec<Cid> = cids
            .iter()
            .zip(&mine)
            .filter(|(_, m)| **m)
            .map(|(c, _)| *c)
            .collect();
        if self.drop_copies(&drop) {
            mine
        } else {
            vec![false; cids.len()]
        }
    }

    fn drop_copies(&self, cids: &[Cid]) -> bool {
        if cids.is_empty() {
            return true;
        }
        let mut freed = 0;
        let mut owners: Vec<(PeerId, u64)> = Vec::new();
        let mut b = Batch::new();
        for c in cids {
            if let Some(e) = self.entry(c) {
                freed += e.size;
                owners.push((e.promoter, e.size));
            }
            b.delete(Table::Cache, c.to_bytes())
                .delete(Table::CacheIndex, c.to_bytes());
        }
        match self.repo.store().write(b, Durability::Sync) {
            Ok(()) => {
                let _ = self
                    .used
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                        Some(u.saturating_sub(freed))
                    });
                if let Ok(mut m) = self.by_promoter.lock() {
                    for (p, n) in owners {
                        if let Some(x) = m.get_mut(&p) {
                            *x = x.saturating_sub(n);
                            if *x == 0 {
                                m.remove(&p);
                            }
                        }
                    }
                }
                if let Ok(mut t) = self.touched.lock() {
                    for c in cids {
                        t.remove(c);
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "dropping promoted copies failed");
                false
            }
        }
    }

    /// Drops copies that neither a read nor their promoter touched since `before_ms`.
    pub(crate) fn expire(&self, before_ms: u64) -> usize {
        let stale: Vec<Cid> = self
            .touched
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|(_, t)| t.last_ms < before_ms)
                    .map(|(c, _)| *c)
                    .collect()
            })
            .unwrap_or_default();
        if !stale.is_empty() && self.drop_copies(&stale) {
            tracing::info!(
                copies = stale.len(),
                "dropped promoted copies nobody read or claimed"
            );
        }
        stale.len()
    }

    /// Every copy held here: CID, record, reads served.
    pub(crate) fn list(&self) -> Vec<(Cid, CacheEntry, u32)> {
        let touched = self.touched.lock().map(|t| t.clone()).unwrap_or_default();
        self.repo
            .store()
            .table_scan(Table::CacheIndex)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| {
                let c = cid_from_bytes(&k).ok()?;
                let e = CacheEntry::decode(&v).ok()?;
                Some((c, e, touched.get(&c).map_or(0, |x| x.reads)))
            })
            .collect()
    }

    /// Bytes held.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Capacity in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_to_its_capacity_and_drops_only_for_the_promoter() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Arc::new(Repo::open(dir.path()).unwrap());
        let cache = FastCache::open(repo.clone(), 100).unwrap();
        let (a, b) = (PeerId::random(), PeerId::random());
        let blk = |i: u8, n: usize| {
            Block::new(
                cairn_core::block::HashAlg::Blake3,
                cairn_core::block::RAW,
                vec![i; n],
            )
        };
        let (x, y, z) = (blk(1, 50), blk(2, 40), blk(3, 30));
        // one promoter may use half the capacity
        assert_eq!(
            cache.put(a, blk(4, 51), false, &|_| true),
            PutStatus::NoSpace
        );
        assert_eq!(cache.put(a, x.clone(), false, &|_| true), PutStatus::Stored);
        assert_eq!(cache.put(b, y.clone(), false, &|_| true), PutStatus::Stored);
        assert_eq!(
            cache.put(a, z.clone(), false, &|_| true),
            PutStatus::NoSpace
        );
        assert_eq!(
            cache.put(b, z.clone(), false, &|_| true),
            PutStatus::NoSpace
        ); // 120 > 100
        assert_eq!(cache.used(), 90);
        assert_eq!(cache.get(&x.cid).as_deref(), Some(&x.data[..]));
        assert_eq!(cache.get(&z.cid), None);
        assert_eq!(
            cache.cached(a, &[x.cid, y.cid, z.cid]),
            vec![Some(1), Some(0), None]
        );
        // a peer cannot drop another's copy
        assert_eq!(cache.uncache(b, &[x.cid, y.cid]), vec![false, true]);
        assert_eq!(cache.used(), 50);
        assert_eq!(cache.put(b, z.clone(), false, &|_| true), PutStatus::Stored);
        assert_eq!(cache.uncache(b, &[z.cid]), vec![true]);
        // reopening counts what is held, per promoter too
        drop(cache);
        let cache = FastCache::open(repo, 100).unwrap();
        assert_eq!(cache.used(), 50);
        assert_eq!(
            cache.put(a, blk(5, 1), false, &|_| true),
            PutStatus::NoSpace
        );
        assert_eq!(cache.list().len(), 1);
        assert_eq!(cache.expire(u64::MAX), 1);
        assert_eq!(cache.used(), 0);
        assert_eq!(cache.get(&x.cid), None);
        // promoters with no proven storage share a quarter of the capacity
        let (c, d) = (PeerId::random(), PeerId::random());
        let proven = |p: &PeerId| *p != c && *p != d;
        assert_eq!(cache.put(c, blk(6, 26), false, &proven), PutStatus::NoSpace);
        assert_eq!(cache.put(c, blk(6, 20), false, &proven), PutStatus::Stored);
        assert_eq!(cache.put(d, blk(7, 10), false, &proven), PutStatus::NoSpace);
        // a proven promoter is not held back by them
        assert_eq!(cache.put(a, blk(8, 40), false, &proven), PutStatus::Stored);
    }

    #[test]
    fn a_planned_copy_takes_the_room_of_unplanned_ones_least_recently_read_first() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Arc::new(Repo::open(dir.path()).unwrap());
        let cache = FastCache::open(repo, 100).unwrap();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let blk = |i: u8, n: usize| {
            Block::new(
                cairn_core::block::HashAlg::Blake3,
                cairn_core::block::RAW,
                vec![i; n],
            )
        };
        let yes = |_: &PeerId| true;
        let (x, y, z) = (blk(1, 30), blk(2, 30), blk(3, 30));
        assert_eq!(cache.put(a, x.clone(), false, &yes), PutStatus::Stored);
        assert_eq!(cache.put(b, y.clone(), false, &yes), PutStatus::Stored);
        assert_eq!(cache.put(c, z.clone(), true, &yes), PutStatus::Stored);
        // x is read later than y: y is the least recently touched unplanned copy
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(cache.get(&x.cid).is_some());
        // full (90 + 20 > 100): an unplanned copy is refused, a planned one takes y's room
        assert_eq!(cache.put(a, blk(4, 20), false, &yes), PutStatus::NoSpace);
        assert_eq!(cache.put(c, blk(5, 20), true, &yes), PutStatus::Stored);
        assert_eq!(cache.cached(b, &[y.cid]), vec![None]);
        assert!(cache.get(&x.cid).is_some() && cache.get(&z.cid).is_some());
        assert_eq!(cache.used(), 80);
        // the half per promoter holds for planned copies too
        assert_eq!(cache.put(c, blk(6, 40), true, &yes), PutStatus::NoSpace);
        assert_eq!(cache.put(b, blk(7, 50), true, &yes), PutStatus::Stored);
        assert_eq!(cache.cached(a, &[x.cid]), vec![None]);
        // and planned copies never take planned copies' room
        assert_eq!(cache.put(a, blk(8, 30), true, &yes), PutStatus::NoSpace);
        assert_eq!(cache.used(), 100);
        // an unplanned copy pushed again as planned becomes planned
        let dir2 = tempfile::tempdir().unwrap();
        let cache = FastCache::open(Arc::new(Repo::open(dir2.path()).unwrap()), 100).unwrap();
        let (u, v) = (blk(9, 50), blk(10, 50));
        assert_eq!(cache.put(a, u.clone(), false, &yes), PutStatus::Stored);
        assert_eq!(cache.put(b, v.clone(), false, &yes), PutStatus::Stored);
        assert_eq!(cache.put(a, u.clone(), true, &yes), PutStatus::Stored);
        assert_eq!(cache.put(c, blk(11, 50), true, &yes), PutStatus::Stored);
        assert_eq!(cache.cached(a, &[u.cid, v.cid]), vec![Some(0), None]);
    }
}
