//! Model-based fuzzing of the RocksDB block store with a reboot step (close and reopen):
//! after any sequence of writes, deletes, persists and reboots, every read matches a simple
//! model. Writes made durable (Sync, or Deferred followed by persist) survive reboots; a
//! Deferred write not yet persisted may be lost in a reboot but is never corrupted. Blocks of
//! 64 KiB and more exercise the pack files (`repo/src/store/packs.rs`).
#![no_main]
use arbitrary::Arbitrary;
use cairn_core::block::{Block, HashAlg, RAW};
use cairn_repo::store::{Batch, BlockStore, Durability, RocksStore, Table};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

#[derive(Arbitrary, Debug)]
enum Op {
    Put { seed: u8, len: u16, sync: bool },
    Delete { seed: u8 },
    Pin { key: u8, val: u8 },
    Unpin { key: u8 },
    Persist,
    Reboot,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum State {
    Present,
    Absent,
    /// written or deleted with Deferred and not persisted: either outcome after a reboot
    Either,
}

fn block(seed: u8, len: u16) -> Block {
    // a quarter of the blocks are large enough for pack files, the rest stay in RocksDB
    let len = if len % 4 == 0 { 65_536 + (len as usize % 60_000) } else { (len % 20_000) as usize };
    // the first byte is the seed, so different seeds never share a CID
    let data: Vec<u8> = std::iter::once(seed).chain((0..len).map(|i| (i as u8).wrapping_mul(seed) ^ seed)).collect();
    Block::new(HashAlg::Blake3, RAW, data)
}

fuzz_target!(|ops: Vec<Op>| {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Some(RocksStore::open(dir.path()).unwrap());
    let mut blocks: BTreeMap<u8, (Block, State)> = BTreeMap::new();
    let mut pins: BTreeMap<u8, u8> = BTreeMap::new();
    for op in ops.into_iter().take(64) {
        let s = store.as_ref().unwrap();
        match op {
            Op::Put { seed, len, sync } => {
                let b = block(seed, len);
                let mut batch = Batch::new();
                batch.put_block(b.clone());
                let d = if sync { Durability::Sync } else { Durability::Deferred };
                s.write(batch, d).unwrap();
                let st = if sync { State::Present } else { State::Either };
                // a later block with the same seed but another length is another CID
                blocks.insert(seed, (b, st));
            }
            Op::Delete { seed } => {
                if let Some((b, st)) = blocks.get_mut(&seed) {
                    let mut batch = Batch::new();
                    batch.delete_block(b.cid);
                    s.write(batch, Durability::Sync).unwrap();
                    *st = State::Absent;
                }
            }
            Op::Pin { key, val } => {
                let mut batch = Batch::new();
                batch.put(Table::Pins, vec![key], vec![val]);
                s.write(batch, Durability::Sync).unwrap();
                pins.insert(key, val);
            }
            Op::Unpin { key } => {
                let mut batch = Batch::new();
                batch.delete(Table::Pins, vec![key]);
                s.write(batch, Durability::Sync).unwrap();
                pins.remove(&key);
            }
            Op::Persist => {
                s.persist().unwrap();
                for (_, st) in blocks.values_mut() {
                    if *st == State::Either {
                        *st = State::Present;
                    }
                }
            }
            Op::Reboot => {
                drop(store.take());
                store = Some(RocksStore::open(dir.path()).unwrap());
                let s = store.as_ref().unwrap();
                for (b, st) in blocks.values_mut() {
                    if *st == State::Either {
                        *st = if s.has(&b.cid).unwrap() { State::Present } else { State::Absent };
                    }
                }
            }
        }
        let s = store.as_ref().unwrap();
        for (b, st) in blocks.values() {
            let got = s.get(&b.cid).unwrap();
            match st {
                State::Present => assert_eq!(got.as_deref(), Some(&b.data[..])),
                State::Absent => assert_eq!(got, None),
                State::Either => assert!(got.is_none() || got.as_deref() == Some(&b.data[..])),
            }
        }
        let got: BTreeMap<u8, u8> = s
            .table_scan(Table::Pins)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k[0], v[0]))
            .collect();
        assert_eq!(got, pins);
    }
});
