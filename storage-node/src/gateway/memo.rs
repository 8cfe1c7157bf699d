//! What a node's gateway remembers of the datasets it serves but does not hold: the datasets it
//! resolved (manifest, stripes, where each shard is), which dataset a block was last served
//! under, and the roots that did not resolve. With it, a block the node lacks is fetched as a
//! shard of its stripe (from its holders, decoded from parity when they are gone or lie)
//! rather than looked up alone in the DHT; and a request rooted at a file CID (a client
//! reading byte ranges of a file it resolved earlier through the dataset's root) finds its
//! dataset again without a DHT query.
//!
//! Everything is bounded: [`MAX_DATASETS`] resolved datasets, [`MAX_LEARNED`] block-to-dataset
//! entries and [`MAX_FAILED`] failed roots, each evicted oldest first; a failed root is tried
//! again after [`RETRY_MS`].

use cairn_retrieval::client::Resolved;
use cid::Cid;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Resolved datasets kept (a dataset's shard positions take about 100 bytes per shard).
pub const MAX_DATASETS: usize = 8;
/// Blocks remembered with the dataset they were served under.
pub const MAX_LEARNED: usize = 1 << 16;
/// Roots remembered as not resolving.
pub const MAX_FAILED: usize = 1024;
/// How long a root that did not resolve is not tried again (ms).
pub const RETRY_MS: u64 = 60_000;

/// A map that forgets its oldest entry beyond `cap` entries.
#[derive(Debug)]
struct Bounded<V> {
    map: HashMap<Cid, V>,
    order: VecDeque<Cid>,
    cap: usize,
}

impl<V> Bounded<V> {
    fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn get(&self, k: &Cid) -> Option<&V> {
        self.map.get(k)
    }

    fn insert(&mut self, k: Cid, v: V) {
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
        }
        while self.map.len() > self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    datasets: Bounded<Arc<Resolved>>,
    learned: Bounded<Cid>,
    failed: Bounded<u64>,
}

/// The gateway's memory of datasets (module docs). Cheap to share behind the node.
#[derive(Debug)]
pub struct DatasetMemo {
    inner: Mutex<Inner>,
    /// Roots being resolved now, each with the lock its resolvers queue on: one resolution
    /// per root at a time (many reads of a dataset not resolved yet would each resolve it,
    /// asking every node about every shard). An entry lives while a resolution runs.
    resolving: Mutex<HashMap<Cid, Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for DatasetMemo {
    fn default() -> Self {
        DatasetMemo {
            inner: Mutex::new(Inner {
                datasets: Bounded::new(MAX_DATASETS),
                learned: Bounded::new(MAX_LEARNED),
                failed: Bounded::new(MAX_FAILED),
            }),
            resolving: Mutex::default(),
        }
    }
}

impl DatasetMemo {
    /// The resolved dataset whose root is `cid`, or under which `cid` was last served.
    pub fn dataset_of(&self, cid: &Cid) -> Option<Arc<Resolved>> {
        let g = self.inner.lock().ok()?;
        if let Some(d) = g.datasets.get(cid) {
            return Some(d.clone());
        }
        let root = g.learned.get(cid)?;
        g.datasets.get(root).cloned()
    }

    /// Keeps a resolved dataset.
    pub fn insert(&self, r: Resolved) -> Arc<Resolved> {
        let r = Arc::new(r);
        if let Ok(mut g) = self.inner.lock() {
            g.datasets.insert(r.root, r.clone());
        }
        r
    }

    /// Notes that `cid` was served under the dataset whose root is `root`.
    pub fn learn(&self, cid: Cid, root: Cid) {
        if cid == root {
            return;
        }
        if let Ok(mut g) = self.inner.lock() {
            g.learned.insert(cid, root);
        }
    }

    /// Notes that `root` did not resolve at `now_ms`.
    pub fn failed(&self, root: Cid, now_ms: u64) {
        if let Ok(mut g) = self.inner.lock() {
            g.failed.insert(root, now_ms);
        }
    }

    /// The lock resolvers of `root` take (the same one while a resolution of it runs): the
    /// first resolves, the others find its result in the memo once they hold it.
    pub fn resolving(&self, root: &Cid) -> Arc<tokio::sync::Mutex<()>> {
        match self.resolving.lock() {
            Ok(mut m) => m.entry(*root).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// A resolution of `root` that held `lock` ended (in the memo, failed, or its caller
    /// went away): the lock is forgotten, unless a later resolver already has a new one.
    pub fn resolved(&self, root: &Cid, lock: &Arc<tokio::sync::Mutex<()>>) {
        if let Ok(mut m) = self.resolving.lock() {
            if m.get(root).is_some_and(|l| Arc::ptr_eq(l, lock)) {
                m.remove(root);
            }
        }
    }

    /// Whether `root` failed to resolve within [`RETRY_MS`] of `now_ms`.
    pub fn failed_recently(&self, root: &Cid, now_ms: u64) -> bool {
        self.inner
            .lock()
            .ok()
            .and_then(|g| g.failed.get(root).copied())
            .is_some_and(|t| now_ms.saturating_sub(t) < RETRY_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::block::HashAlg;
    use cairn_core::manifest::Manifest;

    fn cid(i: u32) -> Cid {
        HashAlg::Blake3.cid(0x55, &i.to_be_bytes())
    }

    fn resolved(root: Cid) -> Resolved {
        Resolved {
            root,
            manifest_cid: root,
            manifest: Manifest {
                root,
                profile: String::new(),
                k: 1,
                m: 1,
                bytes: 0,
                blocks: 0,
                pages: Vec::new(),
            },
            stripes: Vec::new(),
            holders: HashMap::new(),
            fast: HashMap::new(),
            position: HashMap::new(),
        }
    }

    #[test]
    fn one_resolution_of_a_root_at_a_time() {
        let m = DatasetMemo::default();
        let (a, b) = (m.resolving(&cid(1)), m.resolving(&cid(1)));
        assert!(Arc::ptr_eq(&a, &b), "resolvers of one root share a lock");
        assert!(!Arc::ptr_eq(&a, &m.resolving(&cid(2))));
        let held = a.try_lock().unwrap();
        assert!(b.try_lock().is_err(), "the second resolver waits");
        m.insert(resolved(cid(1)));
        m.resolved(&cid(1), &a);
        drop(held);
        // the waiter finds the dataset once it holds the lock; a later resolver gets a new lock
        assert!(b.try_lock().is_ok() && m.dataset_of(&cid(1)).is_some());
        let c = m.resolving(&cid(1));
        assert!(!Arc::ptr_eq(&a, &c));
        // the old lock's holder ending late does not forget the new one
        m.resolved(&cid(1), &a);
        assert!(Arc::ptr_eq(&c, &m.resolving(&cid(1))));
        m.resolved(&cid(1), &c);
        let d = m.resolving(&cid(2));
        m.resolved(&cid(2), &d);
        assert!(m.resolving.lock().unwrap().is_empty());
    }

    #[test]
    fn bounded_maps_forget_the_oldest_first() {
        let mut b = Bounded::new(2);
        b.insert(cid(1), 1);
        b.insert(cid(2), 2);
        b.insert(cid(1), 10); // an update keeps its place
        b.insert(cid(3), 3);
        assert_eq!(b.get(&cid(1)), None);
        assert_eq!(b.get(&cid(2)), Some(&2));
        assert_eq!(b.get(&cid(3)), Some(&3));
    }

    #[test]
    fn blocks_find_their_dataset_and_failures_expire() {
        let m = DatasetMemo::default();
        let (root, file, leaf) = (cid(1), cid(2), cid(3));
        assert!(m.dataset_of(&root).is_none());
        m.insert(resolved(root));
        m.learn(file, root);
        // (lookup, dataset root found)
        let table = [(root, Some(root)), (file, Some(root)), (leaf, None)];
        for (c, want) in table {
            assert_eq!(m.dataset_of(&c).map(|d| d.root), want, "{c}");
        }
        // a dataset evicted takes its learned blocks with it
        for i in 0..MAX_DATASETS as u32 {
            m.insert(resolved(cid(100 + i)));
        }
        assert!(m.dataset_of(&file).is_none());
        // (failed at, asked at, failed recently)
        for (at, now, want) in [(0, 0, true), (0, RETRY_MS - 1, true), (0, RETRY_MS, false)] {
            let m = DatasetMemo::default();
            m.failed(root, at);
            assert_eq!(m.failed_recently(&root, now), want, "{at} {now}");
        }
    }
}
