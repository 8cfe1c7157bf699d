//! Repo behaviour end to end on the real RocksDB store: round trips, atomic and resumable
//! ingest, scrub and repair of corrupt and missing blocks (including bytes flipped in RocksDB's
//! files), gc, CAR import/export, and bad input.

use cairn_core::block::Block;
use cairn_core::profile::Profile;
use cairn_repo::ingest::{ingest, IngestReport, Source, Target};
use cairn_repo::store::{Batch, BlockStore, Durability, RocksStore, StoreError, Table};
use cairn_repo::{Repo, RepoError};
use cid::Cid;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Seeded test data (xorshift64*).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545F4914F6CDD1D) >> 56) as u8
        })
        .collect()
}

/// A dataset with nested directories, a unicode name, an empty file and dir, and a symlink.
fn dataset(root: &Path) -> PathBuf {
    let d = root.join("dataset");
    std::fs::create_dir_all(d.join("shards/train")).unwrap();
    std::fs::create_dir_all(d.join("empty")).unwrap();
    std::fs::write(d.join("README.md"), b"# sample\n").unwrap();
    std::fs::write(d.join("zero.bin"), b"").unwrap();
    std::fs::write(
        d.join("shards/train/0000.tar"),
        bytes(1, 3 * 1024 * 1024 + 17),
    )
    .unwrap();
    std::fs::write(d.join("shards/train/0001.tar"), bytes(2, 700_000)).unwrap();
    std::fs::write(d.join("shards/ünïcode.json"), b"{}").unwrap();
    std::os::unix::fs::symlink("README.md", d.join("link")).unwrap();
    d
}

fn small_profile() -> Profile {
    let mut p = Profile::cairn_v1();
    p.chunk_size = 64 * 1024; // more blocks and stripes from small inputs
    p
}

fn same_tree(a: &Path, b: &Path) {
    let ma = std::fs::symlink_metadata(a).unwrap();
    let mb = std::fs::symlink_metadata(b).unwrap();
    assert_eq!(
        ma.file_type().is_dir(),
        mb.file_type().is_dir(),
        "{}",
        a.display()
    );
    if ma.file_type().is_symlink() {
        assert_eq!(
            std::fs::read_link(a).unwrap(),
            std::fs::read_link(b).unwrap()
        );
    } else if ma.is_dir() {
        let mut na: Vec<_> = std::fs::read_dir(a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut nb: Vec<_> = std::fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        na.sort();
        nb.sort();
        assert_eq!(na, nb);
        for n in na {
            same_tree(&a.join(&n), &b.join(&n));
        }
    } else {
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{}",
            a.display()
        );
    }
}

#[test]
fn put_get_roundtrip_and_only_hash_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path());
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let p = Profile::cairn_v1();
    let r = repo.put(&src, &p, &|_| {}).unwrap();
    let hashed = ingest(&src, &p, Target::HashOnly, &|_| {}).unwrap();
    assert_eq!(hashed, r);
    // the content CIDs alone (`put --only-hash`: files mapped, no parity) agree too, for the
    // tree and for one file in it
    let content = cairn_repo::ingest::content_root(Source::Path(&src), &p, &|_| {}).unwrap();
    assert_eq!(
        (content.root, content.bytes, content.blocks),
        (r.root, r.bytes, r.blocks)
    );
    let file = src.join("shards/train/0000.tar");
    let one = repo.put(&file, &p, &|_| {}).unwrap();
    let mapped = cairn_repo::ingest::content_root(Source::Path(&file), &p, &|_| {}).unwrap();
    assert_eq!((mapped.root, mapped.bytes), (one.root, one.bytes));
    assert_eq!(r.bytes, 3 * 1024 * 1024 + 17 + 700_000 + 9 + 2);
    let out = tmp.path().join("out");
    repo.get(&r.root, &out).unwrap();
    same_tree(&src, &out);
    // a second get refuses to overwrite
    assert!(matches!(repo.get(&r.root, &out), Err(RepoError::Exists(_))));
    // a get that fails midway (a block gone) leaves neither the output nor a partial tree
    let big = repo.resolve(&r.root, "shards/train/0000.tar").unwrap();
    let mut b = Batch::new();
    b.delete_block(big);
    repo.store().write(b, Durability::Sync).unwrap();
    let out2 = tmp.path().join("out2");
    assert!(repo.get(&r.root, &out2).is_err());
    assert!(!out2.exists() && !tmp.path().join("out2.cairn-partial").exists());
    let entries: Vec<String> = repo
        .ls(&r.root)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        entries,
        ["README.md", "empty", "link", "shards", "zero.bin"]
    );
    let f = repo.resolve(&r.root, "shards/ünïcode.json").unwrap();
    let mut v = Vec::new();
    repo.cat(&f, &mut v).unwrap();
    assert_eq!(v, b"{}");
    let s = repo.stat(&r.root).unwrap();
    assert!(s.pinned);
    assert_eq!(s.manifest.unwrap().blocks, r.blocks);
    // the same bytes under another profile get another CID; the same profile, the same one
    let legacy = ingest(&src, &Profile::kubo_legacy(), Target::HashOnly, &|_| {}).unwrap();
    assert_ne!(legacy.root, r.root);
    assert_eq!(repo.put(&src, &p, &|_| {}).unwrap().root, r.root);
}

/// Fails every write after the first `budget` ones, like a crash or a full disk mid-ingest.
struct Crashy {
    inner: RocksStore,
    budget: AtomicUsize,
}

impl BlockStore for Crashy {
    fn write(&self, batch: Batch, d: Durability) -> Result<(), StoreError> {
        if self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_err()
        {
            return Err(StoreError::Backend("injected crash".into()));
        }
        self.inner.write(batch, d)
    }
    fn persist(&self) -> Result<(), StoreError> {
        self.inner.persist()
    }
    fn get_raw(&self, c: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_raw(c)
    }
    fn has(&self, c: &Cid) -> Result<bool, StoreError> {
        self.inner.has(c)
    }
    fn size(&self, c: &Cid) -> Result<Option<u64>, StoreError> {
        self.inner.size(c)
    }
    fn for_each_cid(&self, f: &mut dyn FnMut(Cid) -> bool) -> Result<(), StoreError> {
        self.inner.for_each_cid(f)
    }
    fn table_get(&self, t: Table, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.table_get(t, k)
    }
    fn table_scan(&self, t: Table) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.inner.table_scan(t)
    }
}

#[test]
fn interrupted_ingest_commits_nothing_and_resumes_to_the_same_cid() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path());
    let p = small_profile();
    let want = ingest(&src, &p, Target::HashOnly, &|_| {}).unwrap();
    assert!(want.stripes > 10);
    let db = tmp.path().join("db");
    {
        // an earlier dataset that must survive the failed ingest
        let s = RocksStore::open(&db).unwrap();
        let repo = Repo::with_store(Box::new(s));
        let f = tmp.path().join("earlier.txt");
        std::fs::write(&f, b"earlier").unwrap();
        repo.put(&f, &p, &|_| {}).unwrap();
    }
    {
        let s = Crashy {
            inner: RocksStore::open(&db).unwrap(),
            budget: AtomicUsize::new(6),
        };
        let repo = Repo::with_store(Box::new(s));
        let e = repo.put(&src, &p, &|_| {}).unwrap_err();
        assert!(e.to_string().contains("injected crash"), "{e}");
        // nothing a reader can see: no dataset, no pin for the new root
        assert!(repo
            .datasets()
            .unwrap()
            .iter()
            .all(|(r, _)| *r != want.root));
        assert!(!repo.pin_ls().unwrap().contains(&want.root));
    }
    let repo = Repo::with_store(Box::new(RocksStore::open(&db).unwrap()));
    let r = repo.put(&src, &p, &|_| {}).unwrap();
    assert_eq!(r.root, want.root);
    assert_eq!(r.manifest, want.manifest);
    assert!(r.stripes_skipped >= 1, "resume rewrote everything: {r:?}");
    assert_eq!(repo.datasets().unwrap().len(), 2);
    assert!(repo.scrub(&|_| {}).unwrap().corrupt.is_empty());
    let mut v = Vec::new();
    let earlier = repo
        .pin_ls()
        .unwrap()
        .into_iter()
        .find(|c| *c != r.root)
        .unwrap();
    repo.cat(&earlier, &mut v).unwrap();
    assert_eq!(v, b"earlier");
}

fn shards_of(repo: &Repo, root: &Cid) -> Vec<Vec<Cid>> {
    let (_, m) = repo
        .datasets()
        .unwrap()
        .into_iter()
        .find(|(r, _)| r == root)
        .unwrap();
    let m = repo.manifest(&m).unwrap();
    repo.stripes(&m)
        .unwrap()
        .iter()
        .map(|s| s.shards().copied().collect())
        .collect()
}

#[test]
fn scrub_finds_corrupt_and_missing_blocks_and_repair_rebuilds_them() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path());
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let r = repo.put(&src, &small_profile(), &|_| {}).unwrap();
    let stripes = shards_of(&repo, &r.root);
    // stripe 0: corrupt a data shard and delete a parity shard (m = 2 losses)
    // stripe 1: delete two data shards
    let corrupt = stripes[0][1];
    let mut b = Batch::new();
    b.put_block(Block {
        cid: corrupt,
        data: vec![0xAB; 100].into(),
    })
    .delete_block(stripes[0][5])
    .delete_block(stripes[1][0])
    .delete_block(stripes[1][2]);
    repo.store().write(b, Durability::Sync).unwrap();

    let s = repo.scrub(&|_| {}).unwrap();
    assert_eq!(s.corrupt, vec![corrupt]);
    let mut missing = vec![stripes[0][5], stripes[1][0], stripes[1][2]];
    missing.sort_by_key(|c| c.to_bytes());
    assert_eq!(s.missing, missing);
    // reading through the corrupt block is an error, not wrong bytes
    let mut out = Vec::new();
    assert!(repo
        .cat(
            &repo.resolve(&r.root, "shards/train/0000.tar").unwrap(),
            &mut out
        )
        .is_err());

    let rep = repo.repair(&|_| {}).unwrap();
    assert_eq!(rep.repaired.len(), 4);
    assert!(rep.unrepairable.is_empty());
    let s = repo.scrub(&|_| {}).unwrap();
    assert!(s.corrupt.is_empty() && s.missing.is_empty(), "{s:?}");
    assert!(repo
        .store()
        .table_scan(Table::Quarantine)
        .unwrap()
        .is_empty());
    let dest = tmp.path().join("out");
    repo.get(&r.root, &dest).unwrap();
    same_tree(&src, &dest);
}

#[test]
fn more_than_m_losses_are_reported_unrepairable_without_harm() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path());
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let r = repo.put(&src, &small_profile(), &|_| {}).unwrap();
    let stripes = shards_of(&repo, &r.root);
    let mut b = Batch::new();
    for c in &stripes[2][..3] {
        b.delete_block(*c);
    }
    repo.store().write(b, Durability::Sync).unwrap();
    let rep = repo.repair(&|_| {}).unwrap();
    assert_eq!(rep.unrepairable.len(), 1);
    assert!(
        rep.unrepairable[0].1.contains("3 of the 4"),
        "{:?}",
        rep.unrepairable
    );
    // other stripes are untouched and still verify
    assert_eq!(repo.scrub(&|_| {}).unwrap().missing.len(), 3);
}

/// The sample dataset put into a fresh repo under `dir` with small blocks (many stripes):
/// the source, the repo directory and the root.
fn put_small(dir: &Path) -> (PathBuf, PathBuf, Cid) {
    let src = dataset(dir);
    let repo_dir = dir.join("repo");
    let repo = Repo::open(&repo_dir).unwrap();
    let root = repo.put(&src, &small_profile(), &|_| {}).unwrap().root;
    (src, repo_dir, root)
}

/// Reopens a damaged repo: a scrub finds corrupt blocks, repair rebuilds every one, a second
/// scrub finds nothing, and `root` reads back as `src` into `dest`.
fn scrub_repair_and_read_back(repo_dir: &Path, root: &Cid, src: &Path, dest: &Path) {
    let repo = Repo::open(repo_dir).unwrap();
    let s = repo.scrub(&|_| {}).unwrap();
    assert!(!s.corrupt.is_empty(), "{s:?}");
    let rep = repo.repair(&|_| {}).unwrap();
    assert!(rep.unrepairable.is_empty(), "{rep:?}");
    // every damaged block is whole again (manifest pages heal from their second copy as soon as
    // anything reads them, data and parity shards from their stripes)
    for c in &s.corrupt {
        assert!(repo.block(c).is_ok(), "{c} still damaged: {s:?} {rep:?}");
    }
    let again = repo.scrub(&|_| {}).unwrap();
    assert!(
        again.corrupt.is_empty() && again.missing.is_empty(),
        "{again:?}"
    );
    repo.get(root, dest).unwrap();
    same_tree(src, dest);
}

#[test]
fn bytes_flipped_in_rocksdb_files_are_found_and_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, repo_dir, root) = put_small(tmp.path());
    // flip bytes in the middle of every blob file, as a failing disk would
    let mut flipped = 0;
    for e in std::fs::read_dir(repo_dir.join("blocks")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "blob") {
            let mut b = std::fs::read(&p).unwrap();
            let mid = b.len() / 2;
            for x in &mut b[mid..mid + 64] {
                *x ^= 0x5A;
            }
            std::fs::write(&p, b).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped > 0, "no blob files: BlobDB is not in use");
    scrub_repair_and_read_back(&repo_dir, &root, &src, &tmp.path().join("out"));
}

#[test]
fn a_truncated_pack_file_is_damage_that_repair_rebuilds() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, repo_dir, root) = put_small(tmp.path());
    // cut the end of the last record off, as a disk that lost the file's tail would
    let packs = repo_dir.join("blocks").join("packs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    files.sort();
    let last = files.last().expect("64 KiB blocks live in pack files");
    let f = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 8192).unwrap();
    drop(f);
    scrub_repair_and_read_back(&repo_dir, &root, &src, &tmp.path().join("out"));
}

#[test]
fn gc_keeps_pinned_datasets_and_frees_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path());
    let other = tmp.path().join("other.bin");
    std::fs::write(&other, bytes(9, 500_000)).unwrap();
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let p = small_profile();
    let keep = repo.put(&src, &p, &|_| {}).unwrap();
    let drop = repo.put(&other, &p, &|_| {}).unwrap();
    assert!(repo.pin_rm(&drop.root).unwrap());
    let g = repo.gc().unwrap();
    assert!(g.removed > 0 && g.bytes >= 500_000, "{g:?}");
    assert!(!repo.store().has(&drop.root).unwrap());
    assert_eq!(repo.datasets().unwrap().len(), 1);
    let s = repo.scrub(&|_| {}).unwrap();
    assert!(s.missing.is_empty() && s.corrupt.is_empty());
    assert_eq!(repo.gc().unwrap().removed, 0);
    let dest = tmp.path().join("out");
    repo.get(&keep.root, &dest).unwrap();
    same_tree(&src, &dest);
    // pinning something absent is an error
    assert!(repo.pin_add(&drop.root).is_err());
}

#[test]
fn pin_add_of_a_dag_not_here_fails_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let p = small_profile();
    let f = tmp.path().join("f.bin");
    std::fs::write(&f, bytes(3, 3 * 1024 * 1024)).unwrap();
    let r = repo.put(&f, &p, &|_| {}).unwrap();
    let pins_before = repo.pin_ls().unwrap();
    // a raw block CID that was never stored (the walk visits raw leaves without reading them)
    let absent_raw = Block::new(
        cairn_core::block::HashAlg::Blake3,
        cairn_core::block::RAW,
        b"nope".to_vec(),
    )
    .cid;
    // a dag-pb root whose leaves are gone: one leaf of the file deleted
    let mut leaves = Vec::new();
    repo.reader()
        .walk(&r.root, &mut |c| {
            if c.codec() == cairn_core::block::RAW {
                leaves.push(*c)
            }
        })
        .unwrap();
    let mut b = Batch::new();
    b.delete_block(leaves[1]);
    repo.store().write(b, Durability::Sync).unwrap();
    assert!(repo.pin_rm(&r.root).unwrap());
    for (target, missing) in [(absent_raw, absent_raw), (r.root, leaves[1])] {
        match repo.pin_add(&target) {
            Err(RepoError::Incomplete { root, missing: m }) => {
                assert_eq!((root, m), (target, missing));
            }
            other => panic!("pin add of an incomplete DAG: {other:?}"),
        }
    }
    let mut expect = pins_before.clone();
    expect.retain(|c| *c != r.root);
    assert_eq!(
        repo.pin_ls().unwrap(),
        expect,
        "a failed pin changed the pins"
    );
    let s = repo.scrub(&|_| {}).unwrap();
    assert!(s.corrupt.is_empty());
}

#[test]
fn rm_frees_a_dataset_and_keeps_what_another_pin_shares() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let p = small_profile();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    // the same file in both datasets: its leaves are shared blocks
    let shared = bytes(4, 2 * 1024 * 1024 + 5);
    std::fs::write(a.join("x.bin"), &shared).unwrap();
    std::fs::write(b.join("x.bin"), &shared).unwrap();
    std::fs::write(a.join("only-a.bin"), bytes(5, 900_000)).unwrap();
    let ra = repo.put(&a, &p, &|_| {}).unwrap();
    let rb = repo.put(&b, &p, &|_| {}).unwrap();
    let g = repo.remove(&ra.root).unwrap();
    assert!(g.removed > 0 && g.bytes >= 900_000, "{g:?}");
    assert!(!repo.pin_ls().unwrap().contains(&ra.root));
    assert_eq!(repo.datasets().unwrap().len(), 1);
    // b is whole and verifies; a is gone
    let s = repo.scrub(&|_| {}).unwrap();
    assert!(s.missing.is_empty() && s.corrupt.is_empty(), "{s:?}");
    let out = tmp.path().join("out");
    repo.get(&rb.root, &out).unwrap();
    same_tree(&b, &out);
    assert!(repo.get(&ra.root, &tmp.path().join("out2")).is_err());
    assert!(matches!(repo.remove(&ra.root), Err(RepoError::NotHeld(_))));
}

#[test]
fn car_roundtrip_and_bad_cars_pin_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = dataset(tmp.path());
    let a = Repo::open(&tmp.path().join("a")).unwrap();
    let r = a.put(&src, &Profile::cairn_v1(), &|_| {}).unwrap();
    let mut car = Vec::new();
    let n = a.car_export(&r.root, &mut car).unwrap();
    assert_eq!(n, r.blocks);

    let b = Repo::open(&tmp.path().join("b")).unwrap();
    let (roots, got) = b
        .car_import(&mut car.as_slice(), &Profile::cairn_v1())
        .unwrap();
    assert_eq!((roots, got), (vec![r.root], n));
    let dest = tmp.path().join("out");
    b.get(&r.root, &dest).unwrap();
    same_tree(&src, &dest);
    assert!(b.pin_ls().unwrap().contains(&r.root));

    let c = Repo::open(&tmp.path().join("c")).unwrap();
    let truncated = &car[..car.len() - 10];
    assert!(c
        .car_import(&mut &truncated[..], &Profile::cairn_v1())
        .is_err());
    let mut tampered = car.clone();
    let at = tampered.len() - 5;
    tampered[at] ^= 1;
    let e = c
        .car_import(&mut tampered.as_slice(), &Profile::cairn_v1())
        .unwrap_err();
    assert!(matches!(e, RepoError::Car(_)), "{e}");
    assert!(c.pin_ls().unwrap().is_empty());
    assert!(c.datasets().unwrap().is_empty());
    assert!(c
        .car_import(&mut &b"not a car"[..], &Profile::cairn_v1())
        .is_err());
}

#[test]
fn bad_paths_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let p = Profile::cairn_v1();
    let e = repo
        .put(&tmp.path().join("missing"), &p, &|_| {})
        .unwrap_err();
    assert!(format!("{e:?}").contains("NotFound"), "{e:?}");

    // a file that cannot be read (reading /proc/self/mem at offset 0 fails with EIO, even for
    // root, which file permissions would not stop)
    let e = repo
        .put(Path::new("/proc/self/mem"), &p, &|_| {})
        .unwrap_err();
    assert!(e.to_string().contains("/proc/self/mem"), "{e}");
    assert!(format!("{e:?}").contains("Io"), "{e:?}");

    // a symlink loop as the argument
    let a = tmp.path().join("loop-a");
    let b = tmp.path().join("loop-b");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let e = repo.put(&a, &p, &|_| {}).unwrap_err();
    assert!(
        format!("{e:?}").contains("FilesystemLoop") || e.to_string().contains("loop-a"),
        "{e:?}"
    );

    // loops inside a tree are stored as symlinks (as `ipfs add -r` does) and never followed
    let d = tmp.path().join("tree");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::symlink("../tree", d.join("up")).unwrap();
    std::os::unix::fs::symlink("self", d.join("self")).unwrap();
    let r = repo.put(&d, &p, &|_| {}).unwrap();
    assert_eq!(repo.ls(&r.root).unwrap().len(), 2);

    // a FIFO is not importable
    let fifo = tmp.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = repo.put(&fifo, &p, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("unsupported file type"), "{e}");

    // non-UTF-8 names cannot be UnixFS names
    use std::os::unix::ffi::OsStrExt;
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join(std::ffi::OsStr::from_bytes(b"\xff\xfe")), b"x").unwrap();
    let e = repo.put(&bad, &p, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("UTF-8"), "{e}");

    // none of the failures left a dataset behind
    assert_eq!(repo.datasets().unwrap().len(), 1);
}

#[test]
fn a_corrupt_repo_key_or_manifest_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let mut b = Batch::new();
    b.put(Table::Datasets, b"junk".to_vec(), b"junk".to_vec());
    repo.store().write(b, Durability::Sync).unwrap();
    assert!(repo.datasets().is_err());
    assert!(repo.scrub(&|_| {}).is_err());
    assert!(repo.gc().is_err());
}

/// `data` imported (hash only) from memory and through a reader.
fn bytes_and_stream(p: &Profile, data: &[u8]) -> (IngestReport, IngestReport) {
    use cairn_repo::ingest::{ingest_source, Source};
    let mem = Source::Bytes(data.to_vec().into());
    let from_bytes = ingest_source(mem, p, Target::HashOnly, &|_| {}).unwrap();
    let mut reader = data;
    let from_stream = ingest_source(Source::Stream(&mut reader), p, Target::HashOnly, &|_| {});
    (from_bytes, from_stream.unwrap())
}

#[test]
fn in_memory_bytes_and_streams_import_like_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = small_profile();
    for len in [0usize, 1, 65_535, 65_536, 65_537, 64 * 65_536 + 3] {
        let data = bytes(len as u64, len);
        let f = tmp.path().join(format!("f{len}"));
        std::fs::write(&f, &data).unwrap();
        let from_file = ingest(&f, &p, Target::HashOnly, &|_| {}).unwrap();
        let (from_bytes, from_stream) = bytes_and_stream(&p, &data);
        assert_eq!(from_bytes, from_file, "len {len}");
        assert_eq!(from_stream, from_file, "len {len}");
    }
}

/// In-memory imports encode stripes of leaves while hashing them; stripes that an internal DAG
/// node lands in, or that start with blocks left from a previous batch, take the other path.
/// Tiny chunks and 7 links per node put internal nodes at every alignment against RS(4,2).
#[test]
fn encoding_while_hashing_gives_the_same_dataset_at_every_alignment() {
    use cairn_core::block::HashAlg;
    for hash in [HashAlg::Blake3, HashAlg::Sha2_256] {
        let mut p = Profile::cairn_v1();
        p.chunk_size = 1024;
        p.max_links = 7;
        p.hash = hash;
        for len in [4 * 1024, 7 * 1024, 29 * 1024 + 5, 301 * 1024 + 17] {
            let data = bytes(len as u64 + 1, len);
            let (from_bytes, from_stream) = bytes_and_stream(&p, &data);
            assert_eq!(from_bytes, from_stream, "{hash:?}, {len} bytes");
        }
    }
}

/// Regression: a DAG that links the same child twice at every level (2^64 paths, 65 blocks)
/// must not make import, pinning, scrub or gc walk it path by path.
#[test]
fn diamond_dag_from_a_car_is_walked_once_per_block() {
    use cairn_core::block::{HashAlg, DAG_PB, RAW};
    use cairn_core::dagpb::{PbLink, PbNode};
    use cairn_core::unixfs::{DataType, UnixFsData};
    let leaf = Block::new(HashAlg::Blake3, RAW, b"x".to_vec());
    let mut blocks = vec![leaf.clone()];
    let (mut child, mut size) = (leaf.cid, 1u64);
    for _ in 0..64 {
        let mut data = UnixFsData::new(DataType::File);
        data.blocksizes = vec![size, size];
        size = size.saturating_mul(2);
        data.filesize = Some(size);
        let link = PbLink {
            hash: child,
            name: Some(String::new()),
            tsize: Some(size),
        };
        let node = PbNode {
            links: vec![link.clone(), link],
            data: Some(data.encode()),
        };
        let b = Block::new(HashAlg::Blake3, DAG_PB, node.encode());
        child = b.cid;
        blocks.push(b);
    }
    let mut car = cairn_core::car::header(&[child]);
    for b in blocks.iter().rev() {
        cairn_core::car::section(b, &mut car);
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::open(&tmp.path().join("repo")).unwrap();
    let (roots, n) = repo
        .car_import(&mut car.as_slice(), &Profile::cairn_v1())
        .unwrap();
    assert_eq!((roots, n), (vec![child], 65));
    assert!(repo.scrub(&|_| {}).unwrap().missing.is_empty());
    assert_eq!(repo.gc().unwrap().removed, 0);
    let mut out = Vec::new();
    assert_eq!(repo.car_export(&child, &mut out).unwrap(), 65);
}
