//! # cairn-repo
//!
//! The embedded repo: everything `cairn` does without a daemon. The [`store`] keeps blocks in
//! RocksDB (or in memory) behind the [`store::BlockStore`] trait; [`ingest`] streams files into
//! UnixFS DAGs and erasure-coded stripes; [`Repo`] adds reading, pins, scrub, repair, garbage
//! collection and CAR import/export on top. No networking, no HTTP, no proofs: the storage
//! node daemon (`cairn-storage-node`) and the `cairn` CLI build on it.
//!
//! ```
//! use cairn_core::profile::Profile;
//! use cairn_repo::Repo;
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("hello.txt"), b"foo\n").unwrap();
//! let repo = Repo::in_memory();
//! let r = repo.put(&dir.path().join("hello.txt"), &Profile::cairn_v1(), &|_| {}).unwrap();
//! assert_eq!(r.root.to_string(), "bafkr4icj3sdq34o6p7lapfgoxtset5om3lsxll72uz5cjnrkzmb6aoo3si");
//! let mut out = Vec::new();
//! repo.cat(&r.root, &mut out).unwrap();
//! assert_eq!(out, b"foo\n");
//! ```
#![warn(missing_docs)]

pub mod export;
pub mod ingest;
mod mapped;
pub mod store;

mod car_io;
mod maintain;
mod pins;

use cairn_core::block::{cid_from_bytes, Block};
use cairn_core::car::{CarError, CarReader};
use cairn_core::dag::{DagError, DagReader, FetchError, Kind, Node};
use cairn_core::erasure::{Coder, ErasureError, Stripe};
use cairn_core::manifest::{self, Manifest, ManifestError};
use cairn_core::profile::Profile;
use cid::Cid;
use ingest::{IngestError, IngestReport, Target};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use store::{Batch, BlockStore, Durability, MemoryStore, RocksStore, StoreError, Table};
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
    Export(#[from] export::ExportError),
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
    /// Blocks held only inside sealed replicas ([`BlockStore::held_in_replica`]): not read,
    /// since reading one unseals its sector; window proofs check the replicas, and every read
    /// checks the block against its CID.
    pub in_replicas: u64,
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

    /// The same repo over a store wrapping this one's (`wrap` gets the store and returns the
    /// one to use; the directory stays).
    pub fn map_store(self, wrap: impl FnOnce(Box<dyn BlockStore>) -> Box<dyn BlockStore>) -> Repo {
        Repo {
            store: wrap(self.store),
            path: self.path,
        }
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
        match export::export(&mut self.reader(), cid, &tmp).map_err(RepoError::from) {
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
}
