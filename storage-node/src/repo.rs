//! The embedded repo: everything `cairn` does without a daemon, on a [`BlockStore`].

use crate::ingest::{self, IngestError, IngestReport, Target};
use crate::store::{Batch, BlockStore, Durability, MemoryStore, RocksStore, StoreError, Table};
use cairn_core::block::{cid_from_bytes, Block};
use cairn_core::car::{self, CarError, CarReader};
use cairn_core::dag::{DagError, DagReader, FetchError, Kind, Node};
use cairn_core::erasure::{Coder, ErasureError, Stripe};
use cairn_core::manifest::{self, Manifest, ManifestError};
use cairn_core::profile::Profile;
use cid::Cid;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Repo failures.
#[derive(Debug, Error)]
pub enum RepoError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a DAG failed.
    #[error(transparent)]
    Dag(#[from] DagError),
    /// A block is not here.
    #[error("block {0} is not in the repo")]
    Missing(Cid),
    /// A manifest could not be read.
    #[error("reading manifest {cid}")]
    Manifest {
        /// The manifest or page block.
        cid: Cid,
        /// Why.
        source: ManifestError,
    },
    /// Erasure coding failed.
    #[error(transparent)]
    Erasure(#[from] ErasureError),
    /// A CAR could not be read or written.
    #[error(transparent)]
    Car(#[from] CarError),
    /// Writing output failed.
    #[error("writing {path}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The output path exists.
    #[error("{0} already exists; choose another output path")]
    Exists(PathBuf),
    /// A pinned DAG cannot be walked, so garbage collection would not know what to keep.
    #[error(
        "gc refused: pinned root {root} cannot be walked ({reason}); run `cairn repair` first"
    )]
    GcUnsafe {
        /// The root.
        root: Cid,
        /// Why.
        reason: String,
    },
    /// Ingest failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// Writing a tree out failed.
    #[error(transparent)]
    Export(#[from] cairn_retrieval::export::ExportError),
    /// A pin was asked for a root whose DAG is not all here.
    #[error("cannot pin {root}: its DAG is not in the repo (block {missing} is missing); nothing was changed")]
    Incomplete {
        /// The root asked for.
        root: Cid,
        /// The first block of its DAG that is not stored here.
        missing: Cid,
    },
    /// A removal was asked for a root this repo keeps no dataset or pin of.
    #[error("{0} is not a dataset or pin in this repo")]
    NotHeld(Cid),
}

/// One directory entry, for `ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsEntry {
    /// Name.
    pub name: String,
    /// CID.
    pub cid: Cid,
    /// Cumulative DAG size recorded in the link.
    pub tsize: u64,
}

/// What `stat` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The CID.
    pub cid: Cid,
    /// File, directory or symlink.
    pub kind: Kind,
    /// File bytes (files), or total DAG bytes (directories).
    pub size: u64,
    /// Manifest, if this root was ingested here.
    pub manifest: Option<Manifest>,
    /// Whether the root is pinned.
    pub pinned: bool,
}

/// What `scrub` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Blocks read and verified.
    pub checked: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Blocks whose bytes do not match their CID (now quarantined).
    pub corrupt: Vec<Cid>,
    /// Blocks a dataset or pin needs that are absent.
    pub missing: Vec<Cid>,
}

/// What `repair` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Stripes examined.
    pub stripes: u64,
    /// Blocks rebuilt from parity and rewritten.
    pub repaired: Vec<Cid>,
    /// Stripes that have fewer than k good shards: (first data CID, reason).
    pub unrepairable: Vec<(Cid, String)>,
}

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blocks removed.
    pub removed: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Blocks kept.
    pub kept: u64,
}

/// A Cairn repo.
pub struct Repo {
    store: Box<dyn BlockStore>,
    path: Option<PathBuf>,
}

/// `path` with `.cairn-partial` appended.
fn partial(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".cairn-partial");
    PathBuf::from(p)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
    move |source| RepoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Repo {
    /// Opens (creating if needed) the RocksDB repo in directory `path`.
    pub fn open(path: &Path) -> Result<Repo, RepoError> {
        std::fs::create_dir_all(path).map_err(io(path))?;
        let store = RocksStore::open(&path.join("blocks"))?;
        Ok(Repo {
            store: Box::new(store),
            path: Some(path.to_path_buf()),
        })
    }

    /// A repo in memory.
    pub fn in_memory() -> Repo {
        Repo::with_store(Box::new(MemoryStore::new()))
    }

    /// A repo over any store.
    pub fn with_store(store: Box<dyn BlockStore>) -> Repo {
        Repo { store, path: None }
    }

    /// The repo directory, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The underlying store.
    pub fn store(&self) -> &dyn BlockStore {
        &*self.store
    }

    /// Imports a file or directory tree, erasure-codes it, and pins it.
    pub fn put(
        &self,
        path: &Path,
        profile: &Profile,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<IngestReport, RepoError> {
        Ok(ingest::ingest(
            path,
            profile,
            Target::Store(&*self.store),
            progress,
        )?)
    }

    /// A verified block; corruption is quarantined and reported.
    pub fn block(&self, cid: &Cid) -> Result<Vec<u8>, RepoError> {
        match self.store.get(cid) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(RepoError::Missing(*cid)),
            Err(e @ StoreError::Corrupt { .. }) => {
                self.quarantine(cid, &e.to_string())?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn quarantine(&self, cid: &Cid, reason: &str) -> Result<(), StoreError> {
        let mut b = Batch::new();
        b.put(
            Table::Quarantine,
            cid.to_bytes(),
            reason.as_bytes().to_vec(),
        );
        self.store.write(b, Durability::Sync)
    }

    /// A DAG reader over this repo's verified blocks.
    pub fn reader(&self) -> DagReader<impl FnMut(&Cid) -> Result<Vec<u8>, FetchError> + '_> {
        DagReader::new(move |c: &Cid| self.block(c).map_err(|e| Box::new(e) as FetchError))
    }

    /// Resolves `cid` plus an optional `/`-path.
    pub fn resolve(&self, cid: &Cid, path: &str) -> Result<Cid, RepoError> {
        Ok(self.reader().resolve(cid, path)?)
    }

    /// Streams a file's bytes to `out`.
    pub fn cat(&self, cid: &Cid, out: &mut dyn Write) -> Result<u64, RepoError> {
        Ok(self.reader().read_file(cid, out)?)
    }

    /// Lists a directory.
    pub fn ls(&self, cid: &Cid) -> Result<Vec<LsEntry>, RepoError> {
        Ok(self
            .reader()
            .list(cid)?
            .into_iter()
            .map(|(name, cid, tsize)| LsEntry { name, cid, tsize })
            .collect())
    }

    /// Writes the file, directory tree or symlink at `cid` to `out` (which must not exist).
    /// Returns the file bytes written.
    ///
    /// The tree is written under `out` + `.cairn-partial` and renamed into place when complete,
    /// so `out` never holds a partial result; a failed get removes what it wrote.
    pub fn get(&self, cid: &Cid, out: &Path) -> Result<u64, RepoError> {
        if out.symlink_metadata().is_ok() {
            return Err(RepoError::Exists(out.to_path_buf()));
        }
        let tmp = partial(out);
        if tmp.symlink_metadata().is_ok() {
            return Err(RepoError::Exists(tmp));
        }
        match cairn_retrieval::export::export(&mut self.reader(), cid, &tmp)
            .map_err(RepoError::from)
        {
            Ok(n) => {
                std::fs::rename(&tmp, out).map_err(io(out))?;
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp).or_else(|_| std::fs::remove_file(&tmp));
                Err(e)
            }
        }
    }

    /// Size, kind, manifest and pin state of a CID.
    pub fn stat(&self, cid: &Cid) -> Result<Stat, RepoError> {
        let node = self.reader().node(cid)?;
        let size = match &node {
            Node::Raw(b) => b.len() as u64,
            Node::File { size, .. } => *size,
            Node::Symlink(t) => t.len() as u64,
            Node::Directory(e) | Node::Hamt(e) => e.iter().map(|x| x.2).sum(),
        };
        let manifest = match self.store.table_get(Table::Datasets, &cid.to_bytes())? {
            Some(m) => Some(
                self.manifest(&cid_from_bytes(&m).map_err(|_| StoreError::BadKey("datasets"))?)?,
            ),
            None => None,
        };
        Ok(Stat {
            cid: *cid,
            kind: node.kind(),
            size,
            manifest,
            pinned: self
                .store
                .table_get(Table::Pins, &cid.to_bytes())?
                .is_some(),
        })
    }

    /// A manifest or page block: from the block store, or, if that copy is missing or
    /// damaged, from the second copy in the manifests table, which then replaces the first.
    fn manifest_block(&self, cid: &Cid) -> Result<Vec<u8>, RepoError> {
        let first = self.block(cid);
        if first.is_ok() {
            return first;
        }
        match self.store.table_get(Table::Manifests, &cid.to_bytes())? {
            Some(copy) if Block::verify(cid, &copy).is_ok() => {
                let mut b = Batch::new();
                b.put_block(Block {
                    cid: *cid,
                    data: copy.clone().into(),
                })
                .delete(Table::Quarantine, cid.to_bytes());
                self.store.write(b, Durability::Sync)?;
                tracing::warn!(%cid, "restored manifest block from its second copy");
                Ok(copy)
            }
            _ => first,
        }
    }

    /// Reads a manifest head block.
    pub fn manifest(&self, cid: &Cid) -> Result<Manifest, RepoError> {
        let b = self.manifest_block(cid)?;
        Manifest::decode(&b).map_err(|source| RepoError::Manifest { cid: *cid, source })
    }

    /// Every stripe of a manifest.
    pub fn stripes(&self, m: &Manifest) -> Result<Vec<Stripe>, RepoError> {
        let mut out = Vec::new();
        for p in &m.pages {
            let b = self.manifest_block(p)?;
            out.extend(
                manifest::decode_page(&b)
                    .map_err(|source| RepoError::Manifest { cid: *p, source })?,
            );
        }
        Ok(out)
    }

    /// (root, manifest) of every dataset ingested here.
    pub fn datasets(&self) -> Result<Vec<(Cid, Cid)>, RepoError> {
        self.store
            .table_scan(Table::Datasets)?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    cid_from_bytes(&k).map_err(|_| StoreError::BadKey("datasets"))?,
                    cid_from_bytes(&v).map_err(|_| StoreError::BadKey("datasets"))?,
                ))
            })
            .collect()
    }

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
                coder.check(&stripe)?;
                let mut shards: Vec<Option<Vec<u8>>> =
                    Vec::with_capacity(stripe.data.len() + stripe.parity.len());
                for c in stripe.shards() {
                    let good = match self.store.get_raw(c) {
                        Ok(b) => b.filter(|b| Block::verify(c, b).is_ok()),
                        Err(StoreError::Backend(_)) => None, // unreadable: rebuild it
                        Err(e) => return Err(e.into()),
                    };
                    shards.push(good);
                }
                progress(1);
                if shards.iter().all(Option::is_some) {
                    continue;
                }
                let lost: Vec<usize> = (0..shards.len()).filter(|&i| shards[i].is_none()).collect();
                match coder.reconstruct(&stripe, &mut shards) {
                    Ok(()) => {
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

    /// Removes every block no pin needs (a pinned dataset keeps its DAG, parity and manifest).
    /// Datasets whose root is no longer pinned are forgotten.
    pub fn gc(&self) -> Result<GcReport, RepoError> {
        let mut keep: HashSet<Cid> = HashSet::new();
        let datasets: std::collections::HashMap<Cid, Cid> = self.datasets()?.into_iter().collect();
        let mut forget = Vec::new();
        for (root, mcid) in &datasets {
            if self
                .store
                .table_get(Table::Pins, &root.to_bytes())?
                .is_none()
            {
                forget.push(*root);
            }
            let _ = mcid;
        }
        for root in self.pin_ls()? {
            if let Some(mcid) = datasets.get(&root) {
                let m = self.manifest(mcid).map_err(|e| RepoError::GcUnsafe {
                    root,
                    reason: e.to_string(),
                })?;
                let stripes = self.stripes(&m).map_err(|e| RepoError::GcUnsafe {
                    root,
                    reason: e.to_string(),
                })?;
                keep.insert(*mcid);
                keep.extend(m.pages.iter().copied());
                keep.extend(stripes.iter().flat_map(|s| s.shards().copied()));
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
        let mut doomed = Vec::new();
        let mut report = GcReport::default();
        self.store.for_each_cid(&mut |c| {
            if keep.contains(&c) {
                report.kept += 1;
            } else {
                doomed.push(c);
            }
            true
        })?;
        for chunk in doomed.chunks(1024) {
            let mut b = Batch::new();
            for c in chunk {
                report.bytes += self.store.size(c)?.unwrap_or(0);
                report.removed += 1;
                b.delete_block(*c);
                b.delete(Table::Quarantine, c.to_bytes());
            }
            self.store.write(b, Durability::Sync)?;
        }
        let mut b = Batch::new();
        for root in forget {
            b.delete(Table::Datasets, root.to_bytes());
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

    /// Every block of the DAG under `root`, once each, parents first.
    fn dag_blocks(&self, root: &Cid) -> Result<Vec<Cid>, RepoError> {
        let mut order = Vec::new();
        self.reader().walk(root, &mut |c| order.push(*c))?;
        Ok(order)
    }

    /// Writes the DAG under `root` as a CAR v1 (each block once, parents first).
    pub fn car_export(&self, root: &Cid, out: &mut dyn Write) -> Result<u64, RepoError> {
        let order = self.dag_blocks(root)?;
        let wrap = |e: std::io::Error| RepoError::Io {
            path: PathBuf::from("<car output>"),
            source: e,
        };
        out.write_all(&car::header(&[*root])).map_err(wrap)?;
        let mut buf = Vec::new();
        for c in &order {
            buf.clear();
            car::section(
                &Block {
                    cid: *c,
                    data: self.block(c)?.into(),
                },
                &mut buf,
            );
            out.write_all(&buf).map_err(wrap)?;
        }
        Ok(order.len() as u64)
    }

    /// Imports a CAR v1: every block is verified against its CID before it is stored; nothing
    /// is pinned unless the whole file verifies and each root's DAG is complete. Complete roots
    /// are erasure-coded with `profile`'s k and m, like ingested datasets.
    pub fn car_import(
        &self,
        r: &mut dyn Read,
        profile: &Profile,
    ) -> Result<(Vec<Cid>, u64), RepoError> {
        let mut reader = CarReader::new(r)?;
        let roots = reader.roots().to_vec();
        let mut n = 0;
        let mut batch = Batch::new();
        let mut pending = 0usize;
        while let Some(b) = reader.next_block()? {
            n += 1;
            pending += b.data.len();
            batch.put_block(b);
            if pending >= 8 << 20 {
                self.store
                    .write(std::mem::take(&mut batch), Durability::Deferred)?;
                pending = 0;
            }
        }
        self.store.write(batch, Durability::Deferred)?;
        self.store.persist()?;
        for root in &roots {
            if self
                .store
                .table_get(Table::Datasets, &root.to_bytes())?
                .is_none()
            {
                self.protect(root, profile)?;
            } else {
                self.pin_add(root)?;
            }
        }
        Ok((roots, n))
    }

    /// Erasure-codes the complete DAG under `root` (blocks in walk order) and pins it.
    fn protect(&self, root: &Cid, profile: &Profile) -> Result<(), RepoError> {
        let order = self.dag_blocks(root)?;
        let coder = Coder::new(profile.k, profile.m)?;
        let mut stripes = Vec::new();
        let mut bytes = 0u64;
        for group in order.chunks(profile.k) {
            let blocks: Vec<Block> = group
                .iter()
                .map(|c| {
                    Ok(Block {
                        cid: *c,
                        data: self.block(c)?.into(),
                    })
                })
                .collect::<Result<_, RepoError>>()?;
            bytes += blocks
                .iter()
                .filter(|b| b.cid.codec() == cairn_core::block::RAW)
                .map(|b| b.data.len() as u64)
                .sum::<u64>();
            let refs: Vec<&Block> = blocks.iter().collect();
            let (stripe, parity) = coder.encode(profile.hash, &refs)?;
            let mut batch = Batch::new();
            for p in parity {
                batch.put_block(p);
            }
            self.store.write(batch, Durability::Deferred)?;
            stripes.push(stripe);
        }
        ingest::commit(
            &*self.store,
            profile,
            *root,
            bytes,
            order.len() as u64,
            &stripes,
        )?;
        Ok(())
    }
}
