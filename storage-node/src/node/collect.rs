//! Collection of data that no assignment or pin needs: blocks of pushes that were never
//! committed (the pusher stopped, or this node restarted in between) and anything else stored
//! here that no dataset of this node and no pin needs.
//!
//! A block is collected only when two passes in a row found it unneeded, with no ingest running
//! at either, and no push of its dataset within the last collection interval: a push still
//! arriving, a put still ingesting and a repair in progress keep what they write. The decisions
//! ([`active_pushes`], [`two_passes`]) are pure and table-tested.

use super::*;

/// At most so many datasets' pushes are tracked; the oldest is forgotten first (its blocks are
/// then kept only while they are needed, or for the next two passes).
pub(crate) const MAX_TRACKED_PUSHES: usize = 4096;

/// What one collection pass did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectReport {
    /// The pass did nothing: an ingest was running.
    pub skipped: bool,
    /// Blocks found unneeded this pass.
    pub unneeded: u64,
    /// Blocks removed (unneeded in this pass and the one before).
    pub removed: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// The uncommitted datasets (manifest CIDs) that received a pushed block within `idle` ms of
/// `now`: their blocks are kept.
pub(crate) fn active_pushes(last: &HashMap<Cid, u64>, now: u64, idle: u64) -> HashSet<Cid> {
    last.iter()
        .filter(|(_, t)| now.saturating_sub(**t) < idle)
        .map(|(c, _)| *c)
        .collect()
}

/// Two passes in a row: what to remove now (unneeded in `prev` and in `now`) and what to
/// remember for the next pass (unneeded now, first seen now).
pub(crate) fn two_passes(prev: &HashSet<Cid>, now: Vec<Cid>) -> (Vec<Cid>, HashSet<Cid>) {
    let (doomed, fresh): (Vec<Cid>, Vec<Cid>) = now.into_iter().partition(|c| prev.contains(c));
    (doomed, fresh.into_iter().collect())
}

impl NodeService {
    /// Notes a block pushed for the uncommitted dataset `manifest` at `now` (ms).
    pub(super) fn push_seen(&self, manifest: &Cid, now: u64) {
        if let Ok(mut p) = self.pushes.lock() {
            if p.len() >= MAX_TRACKED_PUSHES && !p.contains_key(manifest) {
                if let Some(oldest) = p.iter().min_by_key(|(_, t)| **t).map(|(c, _)| *c) {
                    p.remove(&oldest);
                }
            }
            p.insert(*manifest, now);
        }
    }

    /// The dataset `manifest` was committed: its blocks are needed by its pin from now on.
    pub(super) fn push_committed(&self, manifest: &Cid) {
        if let Ok(mut p) = self.pushes.lock() {
            p.remove(manifest);
        }
    }
}

impl Node {
    pub(super) async fn collect_worker(self) {
        let period = self.inner.opts.collect_interval;
        self.every(period, |node| async move {
            match node.collect_garbage().await {
                Ok(r) if r.removed > 0 => {
                    tracing::info!(
                        removed = r.removed,
                        bytes = r.bytes,
                        "unneeded blocks collected"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "collection failed"),
            }
        })
        .await
    }

    /// One collection pass: blocks that no dataset committed here, no pin and no push active
    /// within the collection interval needs are noted; those noted by the pass before too are
    /// removed. Skipped while a put is ingesting; never runs beside a repair round.
    pub async fn collect_garbage(&self) -> Result<CollectReport, NodeError> {
        let _one = self.inner.repair_lock.lock().await;
        if self.inner.ingesting.load(Ordering::SeqCst) > 0 {
            return Ok(CollectReport {
                skipped: true,
                ..CollectReport::default()
            });
        }
        let idle = self.inner.opts.collect_interval.as_millis() as u64;
        let active = self
            .inner
            .svc
            .pushes
            .lock()
            .map(|p| active_pushes(&p, now_ms(), idle))
            .unwrap_or_default();
        let repo = self.inner.repo.clone();
        let unneeded = offload(move || {
            let mut keep = repo.needed()?;
            for m in &active {
                // a push still arriving: what has come of it so far
                if let Ok(b) = repo.dataset_blocks(m) {
                    keep.extend(b);
                } else {
                    keep.insert(*m);
                }
            }
            repo.unneeded(&keep)
        })
        .await??;
        let mut report = CollectReport {
            unneeded: unneeded.len() as u64,
            ..CollectReport::default()
        };
        let doomed = {
            let mut prev = self
                .inner
                .collect_prev
                .lock()
                .map_err(|_| NodeError::Repair("collection state poisoned".into()))?;
            let (doomed, next) = two_passes(&prev, unneeded);
            *prev = next;
            doomed
        };
        if doomed.is_empty() {
            return Ok(report);
        }
        let repo = self.inner.repo.clone();
        let gone = offload(move || repo.collect(&doomed)).await??;
        let svc = self.inner.svc.clone();
        if let Err(e) = offload(move || svc.recount_pushes()).await? {
            tracing::warn!(error = %e, "recounting push charges failed");
        }
        report.removed = gone.removed;
        report.bytes = gone.bytes;
        let repo = self.inner.repo.clone();
        if let Ok(Ok(used)) = offload(move || stored_bytes(&repo)).await {
            self.inner.svc.used.store(used, Ordering::Relaxed);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u8) -> Cid {
        cairn_core::HashAlg::Blake3.cid(cairn_core::block::RAW, &[i])
    }

    #[test]
    fn pushes_stay_active_for_the_interval() {
        let last: HashMap<Cid, u64> = [(cid(1), 1000), (cid(2), 5000), (cid(3), 9999)]
            .into_iter()
            .collect();
        // (now, idle, active)
        let table: [(u64, u64, &[u8]); 4] = [
            (10_000, 5_001, &[2, 3]),
            (10_000, 5_000, &[3]),
            (10_000, 0, &[]),
            (500, 10, &[1, 2, 3]), // a clock that went back keeps everything
        ];
        for (now, idle, want) in table {
            let want: HashSet<Cid> = want.iter().map(|i| cid(*i)).collect();
            assert_eq!(active_pushes(&last, now, idle), want, "{now} {idle}");
        }
    }

    #[test]
    fn only_what_two_passes_in_a_row_found_unneeded_goes() {
        // (previous pass, this pass, removed, remembered)
        type Case = (&'static [u8], &'static [u8], &'static [u8], &'static [u8]);
        let cases: [Case; 4] = [
            (&[], &[1, 2], &[], &[1, 2]),
            (&[1, 2], &[2, 3], &[2], &[3]),
            (&[1], &[], &[], &[]),
            (&[1, 2], &[1, 2], &[1, 2], &[]),
        ];
        for (prev, now, removed, next) in cases {
            let prev: HashSet<Cid> = prev.iter().map(|i| cid(*i)).collect();
            let (d, n) = two_passes(&prev, now.iter().map(|i| cid(*i)).collect());
            let d: HashSet<Cid> = d.into_iter().collect();
            assert_eq!(d, removed.iter().map(|i| cid(*i)).collect(), "{now:?}");
            assert_eq!(n, next.iter().map(|i| cid(*i)).collect(), "{now:?}");
        }
    }
}
