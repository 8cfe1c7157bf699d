//! The test suite every [`BlockStore`] backend must pass.

use super::{Batch, BlockStore, Durability, StoreError, Table};
use cairn_core::block::{Block, HashAlg, RAW};

/// The blocks a store's bytes name (`for_each_stored_cid`) and those its index names
/// (`for_each_cid`), each in key order.
pub(crate) fn stored_and_indexed(s: &dyn BlockStore) -> (Vec<cid::Cid>, Vec<cid::Cid>) {
    let (mut indexed, mut stored) = (Vec::new(), Vec::new());
    s.for_each_cid(&mut |c| {
        indexed.push(c);
        true
    })
    .unwrap();
    s.for_each_stored_cid(&mut |c| {
        stored.push(c);
        true
    })
    .unwrap();
    (stored, indexed)
}

fn block(i: u32, len: usize) -> Block {
    Block::new(
        HashAlg::Blake3,
        RAW,
        (0..len)
            .map(|j| (i as usize + j) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// Runs every check on fresh stores from `make`.
pub(crate) fn run(make: &dyn Fn() -> Box<dyn BlockStore>) {
    put_get_delete(&*make());
    batches_are_atomic_in_effect(&*make());
    reads_are_verified(&*make());
    tables(&*make());
    enumeration_is_complete(&*make());
}

fn put_get_delete(s: &dyn BlockStore) {
    let (a, b) = (block(1, 10), block(2, 100_000));
    assert_eq!(s.get(&a.cid).unwrap(), None);
    let mut batch = Batch::new();
    batch.put_block(a.clone()).put_block(b.clone());
    s.write(batch, Durability::Sync).unwrap();
    assert_eq!(s.get(&a.cid).unwrap(), Some(a.data.to_vec()));
    assert_eq!(s.get(&b.cid).unwrap(), Some(b.data.to_vec()));
    assert!(s.has(&b.cid).unwrap());
    assert_eq!(s.size(&b.cid).unwrap(), Some(100_000));
    let mut batch = Batch::new();
    batch.delete_block(a.cid);
    s.write(batch, Durability::Sync).unwrap();
    assert!(!s.has(&a.cid).unwrap());
    assert_eq!(s.size(&a.cid).unwrap(), None);
    assert_eq!(s.get(&a.cid).unwrap(), None);
    // putting the same block twice is harmless
    let mut batch = Batch::new();
    batch.put_block(b.clone()).put_block(b.clone());
    s.write(batch, Durability::Deferred).unwrap();
    s.persist().unwrap();
    assert_eq!(s.get(&b.cid).unwrap(), Some(b.data.to_vec()));
}

fn batches_are_atomic_in_effect(s: &dyn BlockStore) {
    let mut batch = Batch::new();
    let blocks: Vec<Block> = (0..20).map(|i| block(i, 5000)).collect();
    for b in &blocks {
        batch.put_block(b.clone());
    }
    batch.put(Table::Pins, b"root".to_vec(), b"m".to_vec());
    s.write(batch, Durability::Sync).unwrap();
    for b in &blocks {
        assert!(s.has(&b.cid).unwrap());
    }
    assert_eq!(
        s.table_get(Table::Pins, b"root").unwrap(),
        Some(b"m".to_vec())
    );
}

fn reads_are_verified(s: &dyn BlockStore) {
    let a = block(3, 64);
    // write other bytes under a's CID, as a disk error would
    let forged = Block {
        cid: a.cid,
        data: vec![0u8; 64].into(),
    };
    let mut batch = Batch::new();
    batch.put_block(forged);
    s.write(batch, Durability::Sync).unwrap();
    assert!(matches!(s.get(&a.cid), Err(StoreError::Corrupt { .. })));
    assert_eq!(s.get_raw(&a.cid).unwrap(), Some(vec![0u8; 64]));
}

fn tables(s: &dyn BlockStore) {
    let mut batch = Batch::new();
    batch
        .put(Table::Datasets, b"b".to_vec(), b"2".to_vec())
        .put(Table::Datasets, b"a".to_vec(), b"1".to_vec())
        .put(Table::Quarantine, b"a".to_vec(), b"x".to_vec());
    s.write(batch, Durability::Sync).unwrap();
    assert_eq!(
        s.table_scan(Table::Datasets).unwrap(),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    let mut batch = Batch::new();
    batch.delete(Table::Datasets, b"a".to_vec());
    s.write(batch, Durability::Sync).unwrap();
    assert_eq!(s.table_get(Table::Datasets, b"a").unwrap(), None);
    assert_eq!(s.table_scan(Table::Quarantine).unwrap().len(), 1);
    assert!(s.table_scan(Table::Pins).unwrap().is_empty());
    // a page of a table from a key on, in key order (the audit log's pager)
    let mut batch = Batch::new();
    for i in 0..10u64 {
        batch.put(Table::AuditLog, i.to_be_bytes().to_vec(), vec![i as u8]);
    }
    s.write(batch, Durability::Sync).unwrap();
    let page = |from: u64, limit| {
        s.table_scan_from(Table::AuditLog, &from.to_be_bytes(), limit)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v[0])
            .collect::<Vec<u8>>()
    };
    assert_eq!(page(3, 4), vec![3, 4, 5, 6]);
    assert_eq!(page(8, 4), vec![8, 9]);
    assert!(page(10, 4).is_empty());
    assert_eq!(page(0, 100).len(), 10);
}

fn enumeration_is_complete(s: &dyn BlockStore) {
    let blocks: Vec<Block> = (0..50).map(|i| block(i, i as usize * 100)).collect();
    let mut batch = Batch::new();
    for b in &blocks {
        batch.put_block(b.clone());
    }
    s.write(batch, Durability::Sync).unwrap();
    let mut seen = Vec::new();
    s.for_each_cid(&mut |c| {
        seen.push(c);
        true
    })
    .unwrap();
    let mut want: Vec<_> = blocks.iter().map(|b| b.cid).collect();
    want.sort_by_key(|c| c.to_bytes());
    want.dedup();
    assert_eq!(seen, want);
    // the stored bytes name the same blocks as the index, also after a delete
    let mut batch = Batch::new();
    batch.delete_block(want[7]);
    s.write(batch, Durability::Deferred).unwrap();
    want.remove(7);
    let (stored, indexed) = stored_and_indexed(s);
    assert_eq!(indexed, want);
    assert_eq!(stored, want);
    let mut n = 0;
    s.for_each_stored_cid(&mut |_| {
        n += 1;
        n < 2
    })
    .unwrap();
    assert_eq!(n, 2);
    let mut n = 0;
    s.for_each_cid(&mut |_| {
        n += 1;
        n < 3
    })
    .unwrap();
    assert_eq!(n, 3);
}
