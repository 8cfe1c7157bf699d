//! Ingest: walks files and directories, imports them with the profile's chunker and DAG
//! builder, groups the blocks into Reed-Solomon stripes and writes one atomic batch per stripe,
//! then commits the manifest and pin last (design §2).
//!
//! Reading and hashing run on the calling thread (leaves hashed in parallel with rayon); parity
//! encoding and store writes run on a worker thread fed through a bounded channel, so memory is
//! bounded by [`READ_BATCH`] chunks plus [`STRIPE_QUEUE`] stripes in flight, whatever the input
//! size. Re-running an interrupted ingest rewrites nothing already durable and ends with the
//! same CIDs.

use crate::store::{Batch, BlockStore, Durability, StoreError, Table};
use bytes::Bytes;
use cairn_core::block::Block;
use cairn_core::erasure::{Coder, ErasureError, Stripe};
use cairn_core::importer::{self, DirEntry, Entry, FileImporter, ImportError};
use cairn_core::manifest;
use cairn_core::profile::Profile;
use cid::Cid;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use thiserror::Error;

/// Chunks read and hashed together (8 MiB at the default chunk size): enough to keep both cores
/// hashing, small enough for the 128 MiB import RSS budget.
pub const READ_BATCH: usize = 8;
/// Stripes queued between the hashing thread and the encoder/writer.
pub const STRIPE_QUEUE: usize = 2;
/// Deepest directory nesting accepted.
pub const MAX_DIR_DEPTH: usize = 256;

/// Ingest failures. Nothing is committed when ingest fails: blocks already written stay
/// unpinned (a re-run reuses them; `gc` removes them).
#[derive(Debug, Error)]
pub enum IngestError {
    /// Reading the input failed.
    #[error("reading {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A name or link target UnixFS cannot hold.
    #[error("{0}: file names and symlink targets must be valid UTF-8")]
    NonUtf8(PathBuf),
    /// Not a file, directory or symlink.
    #[error("{0}: unsupported file type (only files, directories and symlinks can be added)")]
    Unsupported(PathBuf),
    /// Directory nesting beyond [`MAX_DIR_DEPTH`].
    #[error("{0}: directories nested deeper than {MAX_DIR_DEPTH} levels")]
    TooDeep(PathBuf),
    /// Building a directory failed.
    #[error("building directory {path}")]
    Import {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: ImportError,
    },
    /// Erasure coding failed.
    #[error("erasure coding: {0}")]
    Erasure(#[from] ErasureError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The result of an ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// Root CID (a file's, or a directory's own).
    pub root: Cid,
    /// Manifest CID.
    pub manifest: Cid,
    /// File bytes imported.
    pub bytes: u64,
    /// DAG blocks (data shards).
    pub blocks: u64,
    /// Stripes.
    pub stripes: u64,
    /// Stripes found already stored (resumed) and not rewritten.
    pub stripes_skipped: u64,
}

/// Where ingest puts blocks.
pub enum Target<'a> {
    /// Store blocks and commit the manifest and pin.
    Store(&'a dyn BlockStore),
    /// Compute CIDs only (`--only-hash`).
    HashOnly,
}

struct WorkerResult {
    stripes: Vec<Stripe>,
    skipped: u64,
}

fn encode_and_write(
    coder: &Coder,
    profile: &Profile,
    target: &Target<'_>,
    rx: Receiver<Vec<Block>>,
) -> Result<WorkerResult, IngestError> {
    let mut res = WorkerResult {
        stripes: Vec::new(),
        skipped: 0,
    };
    for data in rx {
        let refs: Vec<&Block> = data.iter().collect();
        let (stripe, parity) = coder.encode(profile.hash, &refs)?;
        if let Target::Store(store) = target {
            let mut present = true;
            for c in stripe.shards() {
                if !store.has(c)? {
                    present = false;
                    break;
                }
            }
            if present {
                res.skipped += 1;
            } else {
                let mut batch = Batch::new();
                for b in data.into_iter().chain(parity) {
                    batch.put_block(b);
                }
                store.write(batch, Durability::Deferred)?;
            }
        }
        res.stripes.push(stripe);
    }
    Ok(res)
}

struct Walker<'a> {
    profile: &'a Profile,
    pending: Vec<Block>,
    tx: std::sync::mpsc::SyncSender<Vec<Block>>,
    bytes: u64,
    blocks: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl Walker<'_> {
    /// Queues blocks; returns false if the worker has stopped (its error is reported on join).
    fn emit(&mut self, blocks: &mut Vec<Block>) -> bool {
        for b in blocks.drain(..) {
            self.blocks += 1;
            self.pending.push(b);
            if self.pending.len() == self.profile.k {
                let stripe = std::mem::take(&mut self.pending);
                if self.tx.send(stripe).is_err() {
                    return false;
                }
            }
        }
        true
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
        move |source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn file(&mut self, path: &Path) -> Result<Option<Entry>, IngestError> {
        let mut f = std::fs::File::open(path).map_err(Self::io(path))?;
        self.stream(&mut f, path)
    }

    fn stream(&mut self, f: &mut dyn Read, path: &Path) -> Result<Option<Entry>, IngestError> {
        let mut imp = FileImporter::new(self.profile);
        let mut out = Vec::new();
        loop {
            let mut batch = Vec::with_capacity(READ_BATCH);
            let mut eof = false;
            while batch.len() < READ_BATCH {
                // read_to_end on a Take fills exactly one chunk (or what is left) without
                // zeroing the buffer first, and retries interrupted reads
                let mut chunk = Vec::with_capacity(self.profile.chunk_size);
                (&mut *f)
                    .take(self.profile.chunk_size as u64)
                    .read_to_end(&mut chunk)
                    .map_err(Self::io(path))?;
                let filled = chunk.len();
                if filled == 0 {
                    eof = true;
                    break;
                }
                self.bytes += filled as u64;
                (self.progress)(filled as u64);
                batch.push(chunk.into());
                if filled < self.profile.chunk_size {
                    eof = true;
                    break;
                }
            }
            imp.add_chunks(batch, &mut out);
            if !self.emit(&mut out) {
                return Ok(None);
            }
            if eof {
                break;
            }
        }
        let e = imp.finish(&mut out);
        if !self.emit(&mut out) {
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// Imports an in-memory file by slicing it into chunks (no copies).
    fn slices(&mut self, bytes: Bytes) -> Option<Entry> {
        let mut imp = FileImporter::new(self.profile);
        let mut out = Vec::new();
        let size = self.profile.chunk_size;
        let batch_bytes = size * READ_BATCH;
        let mut off = 0;
        while off < bytes.len() {
            let end = (off + batch_bytes).min(bytes.len());
            let batch: Vec<Bytes> = (off..end)
                .step_by(size)
                .map(|s| bytes.slice(s..(s + size).min(end)))
                .collect();
            self.bytes += (end - off) as u64;
            (self.progress)((end - off) as u64);
            imp.add_chunks(batch, &mut out);
            if !self.emit(&mut out) {
                return None;
            }
            off = end;
        }
        let e = imp.finish(&mut out);
        self.emit(&mut out).then_some(e)
    }

    /// Imports `path`; `Ok(None)` means the worker stopped early (its error wins).
    fn path(
        &mut self,
        path: &Path,
        top: bool,
        depth: usize,
    ) -> Result<Option<(Entry, bool)>, IngestError> {
        if depth > MAX_DIR_DEPTH {
            return Err(IngestError::TooDeep(path.to_path_buf()));
        }
        let meta = if top {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        }
        .map_err(Self::io(path))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(Self::io(path))?;
            let target = target
                .to_str()
                .ok_or_else(|| IngestError::NonUtf8(path.to_path_buf()))?;
            let mut out = Vec::new();
            let e = importer::symlink(self.profile, target, &mut out);
            return Ok(self.emit(&mut out).then_some((e, true)));
        }
        if ft.is_file() {
            return Ok(self.file(path)?.map(|e| (e, true)));
        }
        if !ft.is_dir() {
            return Err(IngestError::Unsupported(path.to_path_buf()));
        }
        let mut names = Vec::new();
        for item in std::fs::read_dir(path).map_err(Self::io(path))? {
            let item = item.map_err(Self::io(path))?;
            let name = item.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| IngestError::NonUtf8(item.path()))?
                .to_string();
            names.push(name);
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(&name);
            let Some((entry, counts)) = self.path(&child, false, depth + 1)? else {
                return Ok(None);
            };
            entries.push(DirEntry {
                name,
                entry,
                counts_in_estimate: counts,
            });
        }
        let empty = entries.is_empty();
        let mut out = Vec::new();
        let e = importer::build_directory(self.profile, entries, &mut out).map_err(|source| {
            IngestError::Import {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(self.emit(&mut out).then_some((e, empty)))
    }
}

/// What to import.
pub enum Source<'a> {
    /// A file, directory tree, or symlink to either.
    Path(&'a Path),
    /// One file's bytes from a stream (stdin, uploads).
    Stream(&'a mut dyn Read),
    /// One file already in memory: chunks are slices of it, nothing is copied.
    Bytes(Bytes),
}

/// Imports `path` (file, directory tree, or symlink to either) with `profile`.
pub fn ingest(
    path: &Path,
    profile: &Profile,
    target: Target<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<IngestReport, IngestError> {
    ingest_source(Source::Path(path), profile, target, progress)
}

/// Imports a [`Source`] with `profile`.
pub fn ingest_source(
    source: Source<'_>,
    profile: &Profile,
    target: Target<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<IngestReport, IngestError> {
    let coder = Coder::new(profile.k, profile.m)?;
    let (tx, rx) = sync_channel::<Vec<Block>>(STRIPE_QUEUE);
    let (walk, worker) = std::thread::scope(|s| {
        let worker = s.spawn(|| encode_and_write(&coder, profile, &target, rx));
        let mut w = Walker {
            profile,
            pending: Vec::new(),
            tx,
            bytes: 0,
            blocks: 0,
            progress,
        };
        let r = match source {
            Source::Path(p) => w.path(p, true, 0),
            Source::Stream(s) => w
                .stream(s, Path::new("<stream>"))
                .map(|e| e.map(|e| (e, true))),
            Source::Bytes(b) => Ok(w.slices(b).map(|e| (e, true))),
        };
        let tail = std::mem::take(&mut w.pending);
        if !tail.is_empty() {
            let _ = w.tx.send(tail);
        }
        let (bytes, blocks) = (w.bytes, w.blocks);
        drop(w); // closes the channel so the worker finishes
        let worker = worker.join().unwrap_or_else(|_| {
            Err(IngestError::Store(StoreError::Backend(
                "encoder thread panicked".into(),
            )))
        });
        (r.map(|e| (e, bytes, blocks)), worker)
    });
    // A worker error (say, a full disk) explains why the walk stopped early: report it first.
    let worker = worker?;
    let (entry, bytes, blocks) = walk?;
    let Some((entry, _)) = entry else {
        return Err(IngestError::Store(StoreError::Backend(
            "encoder stopped without an error".into(),
        )));
    };
    let manifest_cid = match target {
        Target::Store(store) => commit(store, profile, entry.cid, bytes, blocks, &worker.stripes)?,
        Target::HashOnly => {
            let (_, mblocks) = manifest::encode(profile, entry.cid, bytes, blocks, &worker.stripes);
            mblocks.last().map(|b| b.cid).unwrap_or_default()
        }
    };
    Ok(IngestReport {
        root: entry.cid,
        manifest: manifest_cid,
        bytes,
        blocks,
        stripes: worker.stripes.len() as u64,
        stripes_skipped: worker.skipped,
    })
}

/// Commits a dataset whose stripes are already written: makes them durable, then writes the
/// manifest blocks, their second copies, the dataset record and the pin in one synced batch.
/// Returns the manifest CID.
pub(crate) fn commit(
    store: &dyn BlockStore,
    profile: &Profile,
    root: Cid,
    bytes: u64,
    blocks: u64,
    stripes: &[Stripe],
) -> Result<Cid, StoreError> {
    let (_, manifest_blocks) = manifest::encode(profile, root, bytes, blocks, stripes);
    let manifest_cid = manifest_blocks.last().map(|b| b.cid).unwrap_or_default();
    store.persist()?;
    let mut batch = Batch::new();
    for b in manifest_blocks {
        batch.put(Table::Manifests, b.cid.to_bytes(), b.data.to_vec());
        batch.put_block(b);
    }
    batch.put(Table::Datasets, root.to_bytes(), manifest_cid.to_bytes());
    batch.put(Table::Pins, root.to_bytes(), manifest_cid.to_bytes());
    store.write(batch, Durability::Sync)?;
    Ok(manifest_cid)
}
