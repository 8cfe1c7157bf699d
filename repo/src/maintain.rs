//! Scrub (verify every block, quarantine corrupt ones) and repair (rebuild from parity).

use crate::*;
use cairn_core::gather::Gather;

impl Repo {
    /// Verifies every stored block and checks that every block a dataset or pin needs is
    /// present. Corrupt blocks are quarantined. `progress` gets bytes verified.
    pub fn scrub(&self, progress: &dyn Fn(u64)) -> Result<ScrubReport, RepoError> {
        let mut report = ScrubReport::default();
        let mut cids = Vec::new();
        self.store.for_each_cid(&mut |c| {
            cids.push(c);
            true
        })?;
        for c in cids {
            if self.store.held_in_replica(&c)? {
                report.in_replicas += 1;
                continue;
            }
            let bytes = match self.store.get_raw(&c) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                // the backend's own checksums caught damage below us: same as a CID mismatch
                Err(StoreError::Backend(why)) => {
                    self.quarantine(&c, &why)?;
                    report.checked += 1;
                    report.corrupt.push(c);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            report.checked += 1;
            report.bytes += bytes.len() as u64;
            progress(bytes.len() as u64);
            if let Err(e) = Block::verify(&c, &bytes) {
                self.quarantine(&c, &e.to_string())?;
                report.corrupt.push(c);
            }
        }
        let mut missing = HashSet::new();
        for (root, mcid) in self.datasets()? {
            let needed = match self
                .manifest(&mcid)
                .and_then(|m| Ok((m.pages.clone(), self.stripes(&m)?)))
            {
                Ok((pages, stripes)) => {
                    let mut v: Vec<Cid> = pages;
                    v.push(mcid);
                    v.extend(stripes.iter().flat_map(|s| s.shards().copied()));
                    v
                }
                Err(_) => vec![root, mcid],
            };
            for c in needed {
                if !self.store.has(&c)? {
                    missing.insert(c);
                }
            }
        }
        for (k, v) in self.store.table_scan(Table::Pins)? {
            if !v.is_empty() {
                continue; // covered by its manifest above
            }
            let root = cid_from_bytes(&k).map_err(|_| StoreError::BadKey("pins"))?;
            let mut seen = Vec::new();
            // A walk stops at the first block it cannot read or decode; that block was visited
            // (so it is counted below if absent, and by the verification pass if corrupt).
            let walked = self.reader().walk(&root, &mut |c| seen.push(*c));
            for c in seen {
                if !self.store.has(&c)? {
                    missing.insert(c);
                }
            }
            if let Err(e) = walked {
                tracing::warn!(%root, error = %e, "pinned DAG could not be walked to the end");
            }
        }
        report.missing = missing.into_iter().collect();
        report.missing.sort_by_key(|c| c.to_bytes());
        Ok(report)
    }

    /// Rebuilds every missing or corrupt shard of every dataset from its stripe's parity.
    pub fn repair(&self, progress: &dyn Fn(u64)) -> Result<RepairReport, RepoError> {
        let mut report = RepairReport::default();
        for (_, mcid) in self.datasets()? {
            if self.block(&mcid).is_err() {
                self.manifest_block(&mcid)?;
                report.repaired.push(mcid);
            }
            let m = self.manifest(&mcid)?;
            for p in &m.pages {
                if self.block(p).is_err() {
                    self.manifest_block(p)?;
                    report.repaired.push(*p);
                }
            }
            let coder = Coder::new(m.k as usize, m.m as usize)?;
            for stripe in self.stripes(&m)? {
                report.stripes += 1;
                // every shard is read (this is also the scrub of the stripe); the gather
                // decodes the ones missing or corrupt
                let n = stripe.data.len() + stripe.parity.len();
                let all: Vec<usize> = (0..n).collect();
                let mut gather = Gather::for_stripe(&coder, &stripe, &all)?;
                let mut lost = Vec::new();
                for (i, c) in stripe.shards().enumerate() {
                    let good = match self.store.get_raw(c) {
                        Ok(b) => b.filter(|b| Block::verify(c, b).is_ok()),
                        Err(StoreError::Backend(_)) => None, // unreadable: rebuild it
                        Err(e) => return Err(e.into()),
                    };
                    if good.is_none() {
                        lost.push(i);
                    }
                    gather.offer(i, good);
                }
                progress(1);
                if lost.is_empty() {
                    continue;
                }
                match gather.finish(&coder, &stripe) {
                    Ok(mut shards) => {
                        let cids: Vec<Cid> = stripe.shards().copied().collect();
                        let mut batch = Batch::new();
                        for i in lost {
                            let data = shards[i].take().unwrap_or_default();
                            batch.put_block(Block {
                                cid: cids[i],
                                data: data.into(),
                            });
                            batch.delete(Table::Quarantine, cids[i].to_bytes());
                            report.repaired.push(cids[i]);
                        }
                        self.store.write(batch, Durability::Sync)?;
                    }
                    Err(e) => report.unrepairable.push((stripe.data[0], e.to_string())),
                }
            }
        }
        Ok(report)
    }
}
