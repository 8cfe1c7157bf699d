//! Tests of the RocksDB backend: the shared suite, reopening, pack files and crash images.
use super::*;
use crate::store::suite::stored_and_indexed;
use crate::store::{Batch, Durability};
use cairn_core::block::{Block, HashAlg, RAW};
use cairn_core::testgen::Gen;

#[test]
fn shared_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    super::super::suite::run(&|| {
        let d = tempfile::tempdir().unwrap();
        let s = RocksStore::open(d.path()).unwrap();
        dirs.lock().unwrap().push(d);
        Box::new(s)
    });
}

#[test]
fn survives_reopen_and_deferred_writes_after_persist() {
    let d = tempfile::tempdir().unwrap();
    let b = Block::new(HashAlg::Blake3, RAW, vec![7u8; 10_000]);
    let small = Block::new(HashAlg::Blake3, RAW, vec![1u8; 10]);
    {
        let s = RocksStore::open(d.path()).unwrap();
        let mut batch = Batch::new();
        batch.put_block(b.clone()).put_block(small.clone());
        s.write(batch, Durability::Deferred).unwrap();
        s.persist().unwrap();
    }
    let s = RocksStore::open(d.path()).unwrap();
    assert_eq!(s.get(&b.cid).unwrap(), Some(b.data.to_vec()));
    assert_eq!(s.get(&small.cid).unwrap(), Some(small.data.to_vec()));
    assert_eq!(s.size(&b.cid).unwrap(), Some(10_000));
}

/// The files of a store as a crash would leave them: copied while it is open.
fn crash_image(s: &RocksStore, to: &Path) {
    // RocksDB deletes files it no longer needs at any time; a copy that missed one the copied
    // MANIFEST still names would be no crash image at all
    s.db.disable_file_deletions().unwrap();
    copy_dir(&s.path, to);
    s.db.enable_file_deletions().unwrap();
}

/// Copies a store's files as a crash at the moment of the call would leave them: `CURRENT`
/// and the MANIFEST first (the state at that moment), then every other file, which holds at
/// least what it held then (with file deletions off, none the MANIFEST names can go; files
/// made later are unreferenced or above a watermark). Packs are copied with their holes kept
/// (`cp --sparse`), so space checks on the copy see what the original holds.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let first = |n: &std::ffi::OsString| {
        let n = n.to_string_lossy();
        !(n == "CURRENT" || n.starts_with("MANIFEST-"))
    };
    names.sort_by_key(|n| first(n));
    for n in names {
        let src = from.join(&n);
        if src.is_dir() {
            let ok = std::process::Command::new("cp")
                .arg("-r")
                .arg("--sparse=always")
                .arg(&src)
                .arg(to.join(&n))
                .status()
                .unwrap()
                .success();
            assert!(ok, "cp {}", src.display());
        } else {
            match std::fs::copy(&src, to.join(&n)) {
                Ok(_) => {}
                // a file made and dropped after the MANIFEST was copied: it named none of it
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("copying {}: {e}", src.display()),
            }
        }
    }
}

/// Bytes the file system holds for a file (holes excluded).
fn allocated(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().blocks() * 512
}

#[test]
fn large_blocks_live_in_packs_and_deletes_give_their_space_back() {
    let d = tempfile::tempdir().unwrap();
    let big: Vec<Block> = (0..4u64)
        .map(|i| Block::new(HashAlg::Blake3, RAW, Gen::bytes(i, 1 << 20)))
        .collect();
    let pack0 = d.path().join("db").join(PACK_DIR).join("00000000.pack");
    {
        let s = RocksStore::open(&d.path().join("db")).unwrap();
        let mut batch = Batch::new();
        for b in &big {
            batch.put_block(b.clone());
        }
        s.write(batch, Durability::Deferred).unwrap();
        s.persist().unwrap();
        assert!(allocated(&pack0) >= 4 << 20);
        // nothing of the bytes went through RocksDB's blocks column family
        assert_eq!(
            s.db.get_cf(s.cf(BLOCKS).unwrap(), big[0].cid.to_bytes())
                .unwrap(),
            None
        );
        // a Deferred delete frees the space once persisted, a Sync one at once
        let mut del = Batch::new();
        del.delete_block(big[0].cid);
        s.write(del, Durability::Deferred).unwrap();
        assert_eq!(
            stored_and_indexed(&s).0.len(),
            3,
            "a deleted record is not stored"
        );
        s.persist().unwrap();
        let mut del = Batch::new();
        del.delete_block(big[1].cid);
        s.write(del, Durability::Sync).unwrap();
        let left = allocated(&pack0);
        assert!(
            left <= (2 << 20) + (64 << 10),
            "{left} bytes still allocated"
        );
        // rewriting a stored block frees its old record
        let mut again = Batch::new();
        again.put_block(big[2].clone());
        s.write(again, Durability::Sync).unwrap();
        assert_eq!(s.get(&big[2].cid).unwrap(), Some(big[2].data.to_vec()));
    }
    // a reopened store reads the packs it wrote and writes to a new one
    let s = RocksStore::open(&d.path().join("db")).unwrap();
    for b in &big[2..] {
        assert_eq!(s.get(&b.cid).unwrap(), Some(b.data.to_vec()));
        assert_eq!(s.size(&b.cid).unwrap(), Some(1 << 20));
    }
    assert_eq!(s.get(&big[0].cid).unwrap(), None);
    let (stored, indexed) = stored_and_indexed(&s);
    assert_eq!(stored, indexed);
    assert!(allocated(&pack0) <= (2 << 20) + (64 << 10));
}

#[test]
fn crash_after_an_automatic_flush_keeps_blocks_and_index_together() {
    let d = tempfile::tempdir().unwrap();
    let s = RocksStore::open(&d.path().join("db")).unwrap();
    // 24 MiB of Deferred small blocks (kept in RocksDB): past the 16 MiB blocks memtable, so
    // RocksDB flushes on its own, with no `persist`; the index entries alone would fill no
    // memtable. Every 32nd block is large, so its bytes go to a pack at once and its index
    // entry is lost with the memtable if it came after the last flush.
    let blocks: Vec<Block> = (0..600u64)
        .map(|i| {
            let n = if i % 32 == 5 { 1 << 20 } else { 40 << 10 };
            Block::new(HashAlg::Blake3, RAW, Gen::bytes(i, n))
        })
        .collect();
    for b in &blocks {
        let mut batch = Batch::new();
        batch.put_block(b.clone());
        s.write(batch, Durability::Deferred).unwrap();
    }
    let prop = |name: &str| {
        s.db.property_int_value_cf(s.cf(BLOCKS).unwrap(), name)
            .unwrap()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while prop("rocksdb.num-immutable-mem-table") > 0 || prop("rocksdb.num-running-flushes") > 0 {
        assert!(std::time::Instant::now() < deadline, "no flush finished");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    crash_image(&s, &d.path().join("image"));
    drop(s);

    let image = d.path().join("image");
    let pack0 = image.join(PACK_DIR).join("00000000.pack");
    let before = allocated(&pack0);
    let s = RocksStore::open(&image).unwrap();
    let (stored, indexed) = stored_and_indexed(&s);
    assert!(!stored.is_empty(), "the automatic flush wrote nothing");
    let big = |c: &Cid| s.size(c).unwrap() == Some(1 << 20);
    let packed = indexed.iter().filter(|c| big(c)).count();
    assert!(packed >= 1, "no pack record survived with its index entry");
    // the records written after the last flush lost their index entries: opening punched them
    assert!(
        packed < 19,
        "every large block survived: no orphan to reclaim"
    );
    assert!(
        allocated(&pack0) < before,
        "orphaned records were not punched"
    );
    assert_eq!(
        stored, indexed,
        "blocks and block_index disagree after a crash"
    );
    for c in &indexed {
        assert!(s.get(c).unwrap().is_some());
    }
}

#[test]
fn second_open_of_a_locked_repo_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let _s = RocksStore::open(d.path()).unwrap();
    let e = RocksStore::open(d.path()).err().unwrap();
    assert!(matches!(e, StoreError::Open { .. }), "{e}");
}

/// A step of the model test.
#[derive(Debug, Clone)]
enum Step {
    Put {
        seed: u8,
        large: bool,
        sync: bool,
    },
    Delete {
        seed: u8,
        sync: bool,
    },
    Persist,
    /// Close and reopen.
    Reboot,
    /// Reopen from a copy of the files taken while the store is open (a killed process).
    Crash,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u8..6, any::<bool>(), any::<bool>())
            .prop_map(|(seed, large, sync)| Step::Put { seed, large, sync }),
        2 => (0u8..6, any::<bool>()).prop_map(|(seed, sync)| Step::Delete { seed, sync }),
        1 => Just(Step::Persist),
        1 => Just(Step::Reboot),
        1 => Just(Step::Crash),
    ]
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Known {
    Present,
    Absent,
    /// changed by a Deferred write not yet persisted: either outcome after a crash
    Either,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Any sequence of puts and deletes of small and packed blocks, persists, reboots and
    /// crashes leaves a store whose reads match a model, whose stored blocks are exactly its
    /// indexed ones after every reopen (orphaned records punched), and whose packs hold no
    /// more than the live records after a persist.
    #[test]
    fn packs_and_index_agree_through_reboots_and_crashes(steps in proptest::collection::vec(step(), 1..24)) {
        let d = tempfile::tempdir().unwrap();
        let mut gen = 0u32;
        let mut dir = d.path().join("0");
        let mut s = Some(RocksStore::open(&dir).unwrap());
        let mut model: std::collections::BTreeMap<u8, (Block, Known)> = Default::default();
        let block = |seed: u8, large: bool| {
            let n = if large { 100_000 + seed as usize } else { 3_000 + seed as usize };
            Block::new(HashAlg::Blake3, RAW, Gen::bytes(seed as u64, n))
        };
        for st in steps {
            let store = s.as_ref().unwrap();
            match st {
                Step::Put { seed, large, sync } => {
                    let b = block(seed, large);
                    let mut batch = Batch::new();
                    batch.put_block(b.clone());
                    let dur = if sync { Durability::Sync } else { Durability::Deferred };
                    store.write(batch, dur).unwrap();
                    // the other size of this seed is another block: forget it only if absent
                    if let Some((old, k)) = model.get(&seed) {
                        if old.cid != b.cid && *k != Known::Absent {
                            let mut del = Batch::new();
                            del.delete_block(old.cid);
                            store.write(del, Durability::Sync).unwrap();
                        }
                    }
                    model.insert(seed, (b, if sync { Known::Present } else { Known::Either }));
                }
                Step::Delete { seed, sync } => {
                    if let Some((b, k)) = model.get_mut(&seed) {
                        let mut batch = Batch::new();
                        batch.delete_block(b.cid);
                        let dur = if sync { Durability::Sync } else { Durability::Deferred };
                        store.write(batch, dur).unwrap();
                        *k = if sync { Known::Absent } else { Known::Either };
                    }
                }
                Step::Persist => {
                    store.persist().unwrap();
                    for (b, k) in model.values_mut() {
                        if *k == Known::Either {
                            *k = if store.has(&b.cid).unwrap() { Known::Present } else { Known::Absent };
                        }
                    }
                }
                Step::Reboot | Step::Crash => {
                    if matches!(st, Step::Crash) {
                        gen += 1;
                        let to = d.path().join(gen.to_string());
                        crash_image(store, &to);
                        drop(s.take());
                        dir = to;
                    } else {
                        drop(s.take());
                    }
                    s = Some(RocksStore::open(&dir).unwrap());
                    let store = s.as_ref().unwrap();
                    let (stored, indexed) = stored_and_indexed(store);
                    proptest::prop_assert_eq!(stored, indexed, "after {:?}", st);
                    for (b, k) in model.values_mut() {
                        if *k == Known::Either {
                            *k = if store.has(&b.cid).unwrap() { Known::Present } else { Known::Absent };
                        }
                    }
                }
            }
            let store = s.as_ref().unwrap();
            for (b, k) in model.values() {
                let got = store.get(&b.cid).unwrap();
                match k {
                    Known::Present => proptest::prop_assert_eq!(got.as_deref(), Some(&b.data[..])),
                    Known::Absent => proptest::prop_assert_eq!(got, None),
                    Known::Either => proptest::prop_assert!(got.is_none() || got.as_deref() == Some(&b.data[..])),
                }
            }
        }
        // after a persist, the packs hold the live packed records and nothing else
        let store = s.as_ref().unwrap();
        store.persist().unwrap();
        let live: u64 = model
            .values()
            .filter(|(b, _)| store.has(&b.cid).unwrap() && b.data.len() >= packs::PACK_MIN)
            .map(|(b, _)| packs::padded(b.data.len() as u64 + 10 + b.cid.to_bytes().len() as u64))
            .sum();
        let held: u64 = std::fs::read_dir(dir.join(PACK_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pack"))
            .map(|p| allocated(&p))
            .sum();
        proptest::prop_assert!(held <= live, "packs hold {} bytes, live records {}", held, live);
    }
}
