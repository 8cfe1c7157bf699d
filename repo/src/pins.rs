//! Pins, dataset removal and garbage collection.

use crate::*;

impl Repo {
    /// Pins a root whose DAG is fully present; anything less is [`RepoError::Incomplete`] and
    /// changes nothing (a pin on a DAG that is not here would make every later scrub report the
    /// repo damaged, with nothing repair could rebuild).
    pub fn pin_add(&self, cid: &Cid) -> Result<(), RepoError> {
        // the walk reads every internal node (a missing one stops it); raw leaves are visited
        // without being read, so their presence is checked here
        let mut visited = Vec::new();
        match self.reader().walk(cid, &mut |c| visited.push(*c)) {
            Ok(()) => {}
            Err(DagError::Fetch(e)) => {
                let last = visited.last().copied().unwrap_or(*cid);
                if self.store.has(&last)? {
                    // there but unreadable (corrupt, quarantined): say that, not "missing"
                    return Err(DagError::Fetch(e).into());
                }
                return Err(RepoError::Incomplete {
                    root: *cid,
                    missing: last,
                });
            }
            Err(e) => return Err(e.into()),
        }
        for c in &visited {
            if !self.store.has(c)? {
                return Err(RepoError::Incomplete {
                    root: *cid,
                    missing: *c,
                });
            }
        }
        let manifest = self
            .store
            .table_get(Table::Datasets, &cid.to_bytes())?
            .unwrap_or_default();
        let mut b = Batch::new();
        b.put(Table::Pins, cid.to_bytes(), manifest);
        self.store.write(b, Durability::Sync)?;
        Ok(())
    }

    /// Unpins a root; returns whether it was pinned.
    pub fn pin_rm(&self, cid: &Cid) -> Result<bool, RepoError> {
        let was = self
            .store
            .table_get(Table::Pins, &cid.to_bytes())?
            .is_some();
        let mut b = Batch::new();
        b.delete(Table::Pins, cid.to_bytes());
        self.store.write(b, Durability::Sync)?;
        Ok(was)
    }

    /// Pinned roots.
    pub fn pin_ls(&self) -> Result<Vec<Cid>, RepoError> {
        self.store
            .table_scan(Table::Pins)?
            .into_iter()
            .map(|(k, _)| Ok(cid_from_bytes(&k).map_err(|_| StoreError::BadKey("pins"))?))
            .collect()
    }

    /// Takes the dataset or pin `root` out of the repo: unpins it, forgets the dataset, and
    /// deletes its blocks (DAG, parity, manifest head and pages) that no other pin needs. Unlike
    /// [`Repo::gc`] it touches nothing else, so blocks of a put still in flight stay.
    pub fn remove(&self, root: &Cid) -> Result<GcReport, RepoError> {
        let key = root.to_bytes();
        let dataset = self.store.table_get(Table::Datasets, &key)?;
        let pinned = self.store.table_get(Table::Pins, &key)?.is_some();
        if dataset.is_none() && !pinned {
            return Err(RepoError::NotHeld(*root));
        }
        let mut mine: HashSet<Cid> = HashSet::new();
        let mut mcid = None;
        if let Some(m) = &dataset {
            let mc = cid_from_bytes(m).map_err(|_| StoreError::BadKey("datasets"))?;
            mcid = Some(mc);
            mine.insert(mc);
            if let Ok(m) = self.manifest(&mc) {
                mine.extend(m.pages.iter().copied());
                if let Ok(stripes) = self.stripes(&m) {
                    mine.extend(stripes.iter().flat_map(|s| s.shards().copied()));
                }
            }
        } else {
            // a plain pin: its DAG, as far as it can be walked
            let _ = self.reader().walk(root, &mut |c| {
                mine.insert(*c);
            });
        }
        // what every other pin still needs stays
        let mut keep: HashSet<Cid> = HashSet::new();
        let datasets: std::collections::HashMap<Cid, Cid> = self.datasets()?.into_iter().collect();
        for other in self.pin_ls()? {
            if other == *root {
                continue;
            }
            if let Some(mc) = datasets.get(&other) {
                let m = self.manifest(mc).map_err(|e| RepoError::GcUnsafe {
                    root: other,
                    reason: e.to_string(),
                })?;
                keep.insert(*mc);
                keep.extend(m.pages.iter().copied());
                keep.extend(self.stripes(&m)?.iter().flat_map(|s| s.shards().copied()));
            } else {
                self.reader()
                    .walk(&other, &mut |c| {
                        keep.insert(*c);
                    })
                    .map_err(|e| RepoError::GcUnsafe {
                        root: other,
                        reason: e.to_string(),
                    })?;
            }
        }
        // the pin goes first: a crash part way leaves unpinned blocks for gc, never a pin on
        // a DAG that is half gone
        let mut b = Batch::new();
        b.delete(Table::Pins, key.clone())
            .delete(Table::Datasets, key);
        if let Some(mc) = mcid {
            b.delete(Table::Publishers, mc.to_bytes());
        }
        self.store.write(b, Durability::Sync)?;
        let mut report = GcReport::default();
        let doomed: Vec<Cid> = mine.into_iter().filter(|c| !keep.contains(c)).collect();
        for chunk in doomed.chunks(1024) {
            let mut b = Batch::new();
            for c in chunk {
                match self.store.size(c)? {
                    Some(n) => {
                        report.bytes += n;
                        report.removed += 1;
                        b.delete_block(*c);
                    }
                    None => continue,
                }
                b.delete(Table::Quarantine, c.to_bytes());
                b.delete(Table::Manifests, c.to_bytes());
            }
            self.store.write(b, Durability::Sync)?;
        }
        report.kept = keep.len() as u64;
        Ok(report)
    }

    /// Every block a pin needs: a pinned dataset's manifest head and pages and every shard of
    /// its stripes (data and parity), and a pinned root without a dataset its whole DAG. Errs
    /// ([`RepoError::GcUnsafe`]) when what a pin needs cannot be read: nothing may be collected
    /// then.
    pub fn needed(&self) -> Result<HashSet<Cid>, RepoError> {
        let mut keep: HashSet<Cid> = HashSet::new();
        let datasets: std::collections::HashMap<Cid, Cid> = self.datasets()?.into_iter().collect();
        for root in self.pin_ls()? {
            if let Some(mcid) = datasets.get(&root) {
                keep.extend(self.dataset_blocks(mcid).map_err(|e| RepoError::GcUnsafe {
                    root,
                    reason: e.to_string(),
                })?);
            } else {
                let mut seen = Vec::new();
                self.reader()
                    .walk(&root, &mut |c| seen.push(*c))
                    .map_err(|e| RepoError::GcUnsafe {
                        root,
                        reason: e.to_string(),
                    })?;
                keep.extend(seen);
            }
        }
        Ok(keep)
    }

    /// A dataset's manifest head and pages and every shard of its stripes (data and parity).
    pub fn dataset_blocks(&self, manifest: &Cid) -> Result<HashSet<Cid>, RepoError> {
        let m = self.manifest(manifest)?;
        let stripes = self.stripes(&m)?;
        let mut out: HashSet<Cid> = HashSet::new();
        out.insert(*manifest);
        out.extend(m.pages.iter().copied());
        out.extend(stripes.iter().flat_map(|s| s.shards().copied()));
        Ok(out)
    }

    /// Every stored block not in `keep`.
    pub fn unneeded(&self, keep: &HashSet<Cid>) -> Result<Vec<Cid>, RepoError> {
        let mut out = Vec::new();
        self.store.for_each_cid(&mut |c| {
            if !keep.contains(&c) {
                out.push(c);
            }
            true
        })?;
        Ok(out)
    }

    /// Removes the blocks `doomed` (with their quarantine marks and manifest copies), in
    /// durable batches of 1024.
    pub fn collect(&self, doomed: &[Cid]) -> Result<GcReport, RepoError> {
        let mut report = GcReport::default();
        for chunk in doomed.chunks(1024) {
            let mut b = Batch::new();
            for c in chunk {
                let Some(n) = self.store.size(c)? else {
                    continue;
                };
                report.bytes += n;
                report.removed += 1;
                b.delete_block(*c);
                b.delete(Table::Quarantine, c.to_bytes());
                b.delete(Table::Manifests, c.to_bytes());
            }
            self.store.write(b, Durability::Sync)?;
        }
        Ok(report)
    }

    /// Removes every block no pin needs (a pinned dataset keeps its DAG, parity and manifest).
    /// Datasets whose root is no longer pinned are forgotten.
    pub fn gc(&self) -> Result<GcReport, RepoError> {
        let keep = self.needed()?;
        let doomed = self.unneeded(&keep)?;
        let mut report = self.collect(&doomed)?;
        report.kept = self.unneeded(&HashSet::new())?.len() as u64;
        let mut b = Batch::new();
        for (root, _) in self.datasets()? {
            if self
                .store
                .table_get(Table::Pins, &root.to_bytes())?
                .is_none()
            {
                b.delete(Table::Datasets, root.to_bytes());
            }
        }
        for (k, _) in self.store.table_scan(Table::Manifests)? {
            let c = cid_from_bytes(&k).map_err(|_| StoreError::BadKey("manifests"))?;
            if !keep.contains(&c) {
                b.delete(Table::Manifests, k);
            }
        }
        self.store.write(b, Durability::Sync)?;
        Ok(report)
    }
}
