//! Ingest: walks files and directories, imports them with the profile's chunker and DAG
//! builder, groups the blocks into Reed-Solomon stripes and writes one atomic batch per stripe,
//! then commits the manifest and pin last (design §2).
//!
//! Reading and hashing run on the calling thread (leaves hashed in parallel with rayon); parity
//! encoding and store writes run on [`WRITERS`] threads fed through one bounded channel, so
//! memory is bounded by [`READ_BATCH`] chunks plus [`STRIPE_QUEUE`] + [`WRITERS`] stripes in
//! flight, whatever the input size. For a file already in memory ([`Source::Bytes`]) the leaves of a batch are grouped by
//! the stripe they will fall in, and each group is hashed and its parity encoded and hashed in
//! one rayon task while the bytes are in cache; the worker then only encodes stripes holding an
//! internal DAG node (which exists only once its leaves are hashed) and writes. Re-running an interrupted ingest rewrites nothing already durable and ends with the
//! same CIDs.

use crate::store::{Batch, BlockStore, Durability, StoreError, Table};
use bytes::Bytes;
use cairn_core::block::{Block, RAW};
use cairn_core::erasure::{Coder, ErasureError, Stripe};
use cairn_core::importer::{self, DirEntry, Entry, FileImporter, ImportError};
use cairn_core::manifest;
use cairn_core::profile::Profile;
use cid::Cid;
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use thiserror::Error;

/// Chunks read and hashed together (8 MiB at the default chunk size): enough to keep both cores
/// hashing, small enough for the 128 MiB import RSS budget.
pub const READ_BATCH: usize = 8;
/// Stripes queued between the hashing thread and the encoder/writer.
pub const STRIPE_QUEUE: usize = 2;
/// Leaves hashed together by one task with sha2-256 (on SHA-NI, the streams' rounds are
/// interleaved: `cairn_core::block::Block::many`). Measured on 2 GiB with `farm-bench`: four
/// lanes took 0.76x the time of two; eight leave one task per [`READ_BATCH`], so one core.
const SHA_LANES: usize = READ_BATCH / 2;
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

/// Threads that encode and write stripes. Each stripe's large blocks go to disk in one synced
/// direct write, so two writers keep two writes in flight while the next stripes are encoded
/// (on the development machine's virtio disk, 3 GiB in 4 MiB direct writes took 2.58 s from
/// one writer and 2.14 s from two).
pub const WRITERS: usize = 2;

struct WorkerResult {
    /// Stripes with their position in the dataset.
    stripes: Vec<(u64, Stripe)>,
    skipped: u64,
}

/// A stripe on its way to the writers, numbered in dataset order.
struct Job {
    seq: u64,
    data: Vec<Block>,
    fused: Option<Fused>,
}

/// A stripe encoded in the task that hashed its leaves.
struct Fused {
    stripe: Stripe,
    parity: Vec<Block>,
}

/// One writer: takes stripes from the shared queue until it closes or another writer failed.
fn encode_and_write(
    coder: &Coder,
    profile: &Profile,
    target: &Target<'_>,
    rx: std::sync::Arc<std::sync::Mutex<Receiver<Job>>>,
    failed: &std::sync::atomic::AtomicBool,
) -> Result<WorkerResult, IngestError> {
    use std::sync::atomic::Ordering;
    let mut res = WorkerResult {
        stripes: Vec::new(),
        skipped: 0,
    };
    loop {
        if failed.load(Ordering::Relaxed) {
            break;
        }
        // the lock is held only to take the next job; a poisoned lock means a writer panicked,
        // which its join reports
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(Job { seq, data, fused }) = job else {
            break;
        };
        let r = write_stripe(coder, profile, target, data, fused);
        match r {
            Ok((stripe, skipped)) => {
                res.skipped += u64::from(skipped);
                res.stripes.push((seq, stripe));
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
    Ok(res)
}

/// Encodes a stripe (unless it was encoded while hashed) and writes it unless already stored;
/// true when it was found stored.
fn write_stripe(
    coder: &Coder,
    profile: &Profile,
    target: &Target<'_>,
    data: Vec<Block>,
    fused: Option<Fused>,
) -> Result<(Stripe, bool), IngestError> {
    let Fused { stripe, parity } = match fused {
        Some(f) => f,
        None => {
            let refs: Vec<&Block> = data.iter().collect();
            let (stripe, parity) = coder.encode(profile.hash, &refs)?;
            Fused { stripe, parity }
        }
    };
    let Target::Store(store) = target else {
        return Ok((stripe, false));
    };
    let mut stored = true;
    for c in stripe.shards() {
        if !store.has(c)? {
            stored = false;
            break;
        }
    }
    if !stored {
        let mut batch = Batch::new();
        for b in data.into_iter().chain(parity) {
            batch.put_block(b);
        }
        store.write(batch, Durability::Deferred)?;
    }
    Ok((stripe, stored))
}

/// Reads up to [`READ_BATCH`] chunks of `size` bytes; true when the input ended.
fn read_batch(f: &mut dyn Read, size: usize) -> std::io::Result<(Vec<Bytes>, bool)> {
    let mut batch = Vec::with_capacity(READ_BATCH);
    while batch.len() < READ_BATCH {
        // read_to_end on a Take fills exactly one chunk (or what is left) without zeroing the
        // buffer first, and retries interrupted reads
        let mut chunk = Vec::with_capacity(size);
        f.take(size as u64).read_to_end(&mut chunk)?;
        let filled = chunk.len();
        if filled > 0 {
            batch.push(chunk.into());
        }
        if filled < size {
            return Ok((batch, true));
        }
    }
    Ok((batch, false))
}

struct Walker<'a> {
    profile: &'a Profile,
    coder: &'a Coder,
    pending: Vec<Block>,
    /// Stripes encoded ahead by [`Walker::add_chunks`], in the order they will be formed.
    fused: std::collections::VecDeque<Fused>,
    tx: std::sync::mpsc::SyncSender<Job>,
    /// Stripes queued so far.
    seq: u64,
    /// Whether blocks form stripes (false: only the content's CIDs are wanted).
    stripes: bool,
    bytes: u64,
    blocks: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl Walker<'_> {
    /// Queues the next stripe; false if the writers have stopped.
    fn send(&mut self, data: Vec<Block>, fused: Option<Fused>) -> bool {
        let seq = self.seq;
        self.seq += 1;
        self.tx.send(Job { seq, data, fused }).is_ok()
    }

    /// Queues blocks; returns false if the worker has stopped (its error is reported on join).
    fn emit(&mut self, blocks: &mut Vec<Block>) -> bool {
        if !self.stripes {
            self.blocks += blocks.len() as u64;
            blocks.clear();
            return true;
        }
        for b in blocks.drain(..) {
            self.blocks += 1;
            self.pending.push(b);
            if self.pending.len() == self.profile.k {
                let stripe = std::mem::take(&mut self.pending);
                let ahead = self
                    .fused
                    .front()
                    .is_some_and(|f| f.stripe.data.iter().eq(stripe.iter().map(|b| &b.cid)));
                // a prediction for a later stripe stays queued
                let fused = ahead.then(|| self.fused.pop_front()).flatten();
                if !self.send(stripe, fused) {
                    return false;
                }
            }
        }
        true
    }

    /// Hashes a batch of chunks (in parallel) and adds them to `imp`, whose new blocks land in
    /// `out`. Leaves are grouped by the stripe they will complete; a group whose stripe holds
    /// no internal node (the pending blocks, then these leaves) is hashed and encoded in one
    /// task, and [`Walker::emit`] sends that stripe already encoded when it forms with exactly
    /// those blocks. Any other stripe is encoded by the worker, so a wrong guess costs time,
    /// never correctness.
    fn add_chunks(
        &mut self,
        imp: &mut FileImporter<'_>,
        chunks: Vec<Bytes>,
        out: &mut Vec<Block>,
        fuse: bool,
    ) {
        let (k, hash) = (self.profile.k, self.profile.hash);
        self.fused.clear();
        let n = chunks.len();
        // with nothing in `out` yet, the next stripe is the pending blocks plus `head` leaves,
        // and an internal node follows leaf `room - 1`
        let fusable = fuse && self.stripes && out.is_empty();
        let room = imp.leaves_before_node();
        let head = (k - self.pending.len() % k) % k;
        let mut groups: Vec<(Vec<Block>, Vec<Bytes>, bool)> = Vec::new();
        let mut chunks = chunks.into_iter();
        let mut start = 0;
        while start < n {
            let end = if start == 0 && head > 0 {
                head
            } else {
                start + k
            }
            .min(n);
            let prefix = if start == 0 {
                self.pending.clone()
            } else {
                Vec::new()
            };
            let fuse = fusable && prefix.len() + (end - start) == k && end <= room;
            if fuse {
                let group: Vec<Bytes> = chunks.by_ref().take(end - start).collect();
                groups.push((prefix, group, true));
            } else if hash == cairn_core::block::HashAlg::Sha2_256 {
                // sha2-256: SHA_LANES chunks per task, hashed together where SHA-NI runs
                // several streams
                let mut take: Vec<Bytes> = chunks.by_ref().take(end - start).collect();
                while !take.is_empty() {
                    let n = take.len().min(SHA_LANES);
                    groups.push((Vec::new(), take.drain(..n).collect(), false));
                }
            } else {
                // hashed one chunk per task: finer tasks balance better against the worker
                groups.extend(
                    chunks
                        .by_ref()
                        .take(end - start)
                        .map(|c| (Vec::new(), vec![c], false)),
                );
            }
            start = end;
        }
        let coder = self.coder;
        let done: Vec<(Vec<Block>, Option<Fused>)> = groups
            .into_par_iter()
            .map(|(prefix, group, fuse)| {
                if fuse {
                    if let Ok((leaves, stripe, parity)) =
                        coder.hash_and_encode(hash, &prefix, group.clone())
                    {
                        return (leaves, Some(Fused { stripe, parity }));
                    }
                }
                if let Ok(lanes) = <[Bytes; SHA_LANES]>::try_from(group.clone()) {
                    return (Block::many(hash, RAW, lanes).into(), None);
                }
                let leaves = group.into_iter().map(|c| Block::new(hash, RAW, c));
                (leaves.collect(), None)
            })
            .collect();
        for (leaves, fused) in done {
            for leaf in leaves {
                imp.add_leaf(leaf, out);
            }
            self.fused.extend(fused);
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
        move |source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn file(&mut self, path: &Path) -> Result<Option<Entry>, IngestError> {
        let mut f = std::fs::File::open(path).map_err(Self::io(path))?;
        // content CIDs only: hash the file where the page cache holds it, with no copy (what is
        // stored must be hashed from a private copy, so stored bytes always match their CIDs)
        if !self.stripes {
            if let Some(map) = crate::mapped::Mapped::of(&f).map_err(Self::io(path))? {
                return Ok(self.slices(Bytes::from_owner(map)));
            }
        }
        self.stream(&mut f, path)
    }

    fn stream(&mut self, f: &mut dyn Read, path: &Path) -> Result<Option<Entry>, IngestError> {
        let mut imp = FileImporter::new(self.profile);
        let mut out = Vec::new();
        loop {
            let (batch, eof) = read_batch(f, self.profile.chunk_size).map_err(Self::io(path))?;
            for c in &batch {
                self.bytes += c.len() as u64;
                (self.progress)(c.len() as u64);
            }
            // the worker encodes while the next batch is read: on a stream that overlap is
            // worth more than encoding in cache
            self.add_chunks(&mut imp, batch, &mut out, false);
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
            self.add_chunks(&mut imp, batch, &mut out, true);
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
    let (entry, bytes, blocks, worker) = walk(source, profile, Some(&target), progress)?;
    let stripes: Vec<Stripe> = worker.stripes.into_iter().map(|(_, s)| s).collect();
    let manifest_cid = match target {
        Target::Store(store) => commit(store, profile, entry.cid, bytes, blocks, &stripes)?,
        Target::HashOnly => {
            let (_, mblocks) = manifest::encode(profile, entry.cid, bytes, blocks, &stripes);
            mblocks.last().map(|b| b.cid).unwrap_or_default()
        }
    };
    Ok(IngestReport {
        root: entry.cid,
        manifest: manifest_cid,
        bytes,
        blocks,
        stripes: stripes.len() as u64,
        stripes_skipped: worker.skipped,
    })
}

/// What [`content_root`] computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentReport {
    /// Root CID (a file's, or a directory's own): the same as [`IngestReport::root`].
    pub root: Cid,
    /// File bytes imported.
    pub bytes: u64,
    /// DAG blocks.
    pub blocks: u64,
}

/// The CIDs of a [`Source`]'s content only, as `cairn put --only-hash` prints them: the DAG is
/// chunked, hashed and built exactly as [`ingest_source`] does, but not erasure-coded, since
/// parity and the manifest that lists it exist only where the data is stored.
pub fn content_root(
    source: Source<'_>,
    profile: &Profile,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ContentReport, IngestError> {
    let (entry, bytes, blocks, _) = walk(source, profile, None, progress)?;
    Ok(ContentReport {
        root: entry.cid,
        bytes,
        blocks,
    })
}

/// Walks `source` into DAG blocks; with a target, groups them into stripes that the writers
/// encode (and store); without, only counts them.
fn walk(
    source: Source<'_>,
    profile: &Profile,
    target: Option<&Target<'_>>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(Entry, u64, u64, WorkerResult), IngestError> {
    let coder = Coder::new(profile.k, profile.m)?;
    let (tx, rx) = sync_channel::<Job>(STRIPE_QUEUE);
    // each writer owns a handle: when the last one stops, the queue closes and the walk stops
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let failed = std::sync::atomic::AtomicBool::new(false);
    let writers = match target {
        Some(Target::Store(_)) => WRITERS,
        Some(Target::HashOnly) => 1,
        None => 0,
    };
    let (walk, worker) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let rx = rx.clone();
                let (coder, target, failed) = (&coder, &target, &failed);
                s.spawn(move || {
                    let target = target.unwrap_or(&Target::HashOnly);
                    encode_and_write(coder, profile, target, rx, failed)
                })
            })
            .collect();
        drop(rx);
        let mut w = Walker {
            profile,
            coder: &coder,
            pending: Vec::new(),
            fused: Default::default(),
            tx,
            seq: 0,
            stripes: target.is_some(),
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
        if w.stripes && !tail.is_empty() {
            let _ = w.send(tail, None);
        }
        let (bytes, blocks) = (w.bytes, w.blocks);
        drop(w); // closes the channel so the writers finish
        let mut all = WorkerResult {
            stripes: Vec::new(),
            skipped: 0,
        };
        let mut first_err = None;
        for h in handles {
            match h.join().unwrap_or_else(|_| {
                Err(IngestError::Store(StoreError::Backend(
                    "encoder thread panicked".into(),
                )))
            }) {
                Ok(r) => {
                    all.stripes.extend(r.stripes);
                    all.skipped += r.skipped;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let worker = match first_err {
            Some(e) => Err(e),
            None => {
                all.stripes.sort_unstable_by_key(|(seq, _)| *seq);
                Ok(all)
            }
        };
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
    Ok((entry, bytes, blocks, worker))
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
