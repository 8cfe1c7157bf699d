//! The in-memory twin of the RocksDB store.

use super::{Batch, BlockStore, Durability, Op, StoreError, Table};
use cid::Cid;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
struct Inner {
    blocks: BTreeMap<Vec<u8>, Vec<u8>>,
    tables: BTreeMap<(Table, Vec<u8>), Vec<u8>>,
}

/// A [`BlockStore`] in memory: for tests, `--only-hash` and benchmarks.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // a panic elsewhere cannot leave a half-applied batch: batches apply under one lock
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Overwrites a block's bytes without any check (tests simulate disk corruption with it).
    pub fn corrupt_for_test(&self, cid: &Cid, bytes: Vec<u8>) {
        self.lock().blocks.insert(cid.to_bytes(), bytes);
    }
}

impl BlockStore for MemoryStore {
    fn write(&self, batch: Batch, _durability: Durability) -> Result<(), StoreError> {
        let mut g = self.lock();
        for op in batch.ops {
            match op {
                Op::PutBlock(b) => {
                    g.blocks.insert(b.cid.to_bytes(), b.data.to_vec());
                }
                Op::DeleteBlock(c) => {
                    g.blocks.remove(&c.to_bytes());
                }
                Op::Put(t, k, v) => {
                    g.tables.insert((t, k), v);
                }
                Op::Delete(t, k) => {
                    g.tables.remove(&(t, k));
                }
            }
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn get_raw(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().blocks.get(&cid.to_bytes()).cloned())
    }

    fn has(&self, cid: &Cid) -> Result<bool, StoreError> {
        Ok(self.lock().blocks.contains_key(&cid.to_bytes()))
    }

    fn size(&self, cid: &Cid) -> Result<Option<u64>, StoreError> {
        Ok(self
            .lock()
            .blocks
            .get(&cid.to_bytes())
            .map(|b| b.len() as u64))
    }

    fn for_each_cid(&self, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError> {
        let keys: Vec<Vec<u8>> = self.lock().blocks.keys().cloned().collect();
        for k in keys {
            let cid = Cid::try_from(k.as_slice()).map_err(|_| StoreError::BadKey("blocks"))?;
            if !f(cid) {
                break;
            }
        }
        Ok(())
    }

    fn table_get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().tables.get(&(t, key.to_vec())).cloned())
    }

    fn table_scan(&self, t: Table) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        Ok(self
            .lock()
            .tables
            .iter()
            .filter(|((tt, _), _)| *tt == t)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_suite() {
        super::super::suite::run(&|| Box::new(super::MemoryStore::new()));
    }
}
