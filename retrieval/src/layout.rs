//! Writing a download in place: the layout of every file from the DAG's internal nodes, leaves
//! written once at their offsets, and a journal of leaves written so a download resumes.
//!
//! # What survives a power loss
//!
//! A download is trusted leaf by leaf, and the tree is moved into place only when every leaf is
//! trusted ([`finish`]). A leaf is trusted in exactly two ways:
//!
//! 1. This run wrote it: its bytes were verified against its CID in memory, written to every
//!    place they go, and those files were synced (`File::sync_data`, once per file per batch)
//!    before the journal line naming it was appended ([`write_leaves`]). So no line this code
//!    writes names data that a power loss can still take away.
//! 2. An earlier run's journal names it, and its bytes read back from every place they go
//!    verify against its CID ([`Journal::check`]). A named leaf that does not verify is fetched
//!    again, not trusted.
//!
//! Why read back what the journal names, when (1) already syncs before journaling: a line is
//! only as good as the run that wrote it. Journals left by versions that did not sync first
//! may be on disk; the files and directories [`plan`] creates (their names and sizes) are only
//! synced by [`finish`], so a power loss can drop a file whose leaves are journaled, and the
//! next run recreates it full of zeros; and anything else may damage the partial tree between
//! runs. The read-back costs one read of what earlier runs wrote, once per resume. Leaves this
//! run writes are not read back: a read right after the write comes from the page cache and
//! proves nothing about the disk; what makes them durable is the sync, which returned before
//! they were trusted.
//!
//! [`finish`] then syncs the journal, every file and directory of the tree (inline data and
//! file sizes written by [`plan`] included), renames the tree into place and syncs the
//! directory holding it, so the rename itself survives a power loss.

use crate::cache::BlockCache;
use crate::error::RetrievalError;
use cairn_core::block::RAW;
use cairn_core::dag::{safe_name, DagError, Kind, Node, MAX_DEPTH};
use cairn_core::dagpb::DagPbError;
use cairn_core::Cid;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where each leaf goes: (file, byte offset), possibly several places (identical chunks).
pub type Targets = HashMap<Cid, Vec<(Arc<PathBuf>, u64)>>;

/// The planned output.
#[derive(Debug, Default)]
pub struct Layout {
    /// Total file bytes.
    pub bytes: u64,
    /// Leaf destinations.
    pub leaves: Targets,
    /// The dataset is a single raw block, whose size is only known once it is fetched.
    pub raw_root: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RetrievalError + '_ {
    move |source| RetrievalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the tree under `out` (directories, symlinks, files at full size; kept as they are
/// when resuming) from the internal nodes in `cache`, and returns where every leaf goes.
pub fn plan(cache: &BlockCache, root: &Cid, out: &Path) -> Result<Layout, RetrievalError> {
    let mut l = Layout::default();
    let mut reader = cache.reader();
    place(&mut reader, root, out, &mut l, 0, None)?;
    Ok(l)
}

fn unsafe_name(cid: &Cid) -> RetrievalError {
    DagError::Decode {
        cid: *cid,
        source: DagPbError::Malformed("unsafe entry name"),
    }
    .into()
}

fn place<F>(
    reader: &mut cairn_core::dag::DagReader<F>,
    cid: &Cid,
    out: &Path,
    l: &mut Layout,
    depth: usize,
    size_hint: Option<u64>,
) -> Result<(), RetrievalError>
where
    F: FnMut(&Cid) -> Result<Vec<u8>, cairn_core::dag::FetchError>,
{
    if depth > MAX_DEPTH {
        return Err(DagError::TooDeep.into());
    }
    if cid.codec() == RAW {
        // a file of one raw block; its size is the block's, which the directory entry that
        // links it records (a raw root has none: it is counted when written)
        open_file(out, size_hint)?;
        l.bytes += size_hint.unwrap_or(0);
        if size_hint.is_none() {
            l.raw_root = true;
        }
        l.leaves
            .entry(*cid)
            .or_default()
            .push((Arc::new(out.to_path_buf()), 0));
        return Ok(());
    }
    let node = reader.node(cid)?;
    match node.kind() {
        Kind::File => {
            let Node::File { size, .. } = &node else {
                return Ok(());
            };
            let f = open_file(out, Some(*size))?;
            let path = Arc::new(out.to_path_buf());
            let bytes = file_leaves(reader, &node, &f, &path, 0, l, depth)?;
            l.bytes += bytes;
        }
        Kind::Directory => {
            // resuming: a directory this run made before is kept; anything else there (a
            // symlink to a directory included) is an error, never followed
            match std::fs::create_dir(out) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && out.symlink_metadata().is_ok_and(|m| m.file_type().is_dir()) => {}
                Err(e) => return Err(io(out)(e)),
            }
            for (name, child, tsize) in reader.list(cid)? {
                if !safe_name(&name) {
                    return Err(unsafe_name(cid));
                }
                let hint = (child.codec() == RAW).then_some(tsize);
                place(reader, &child, &out.join(&name), l, depth + 1, hint)?;
            }
        }
        Kind::Symlink => {
            if let Node::Symlink(target) = node {
                if out.symlink_metadata().is_err() {
                    std::os::unix::fs::symlink(&target, out).map_err(io(out))?;
                }
            }
        }
    }
    Ok(())
}

/// Opens a file for writing without following a symlink at `path` (`O_NOFOLLOW`: a link
/// there is an error, never written through).
fn open_nofollow(path: &Path, create: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn open_file(path: &Path, size: Option<u64>) -> Result<std::fs::File, RetrievalError> {
    let f = open_nofollow(path, true).map_err(io(path))?;
    if !f.metadata().map_err(io(path))?.file_type().is_file() {
        return Err(io(path)(std::io::Error::other("not a regular file")));
    }
    if let Some(n) = size {
        if f.metadata().map_err(io(path))?.len() != n {
            f.set_len(n).map_err(io(path))?;
        }
    }
    Ok(f)
}

/// Records the leaves under a file node starting at `base`; writes inline data. Returns the
/// bytes under the node.
fn file_leaves<F>(
    reader: &mut cairn_core::dag::DagReader<F>,
    node: &Node,
    f: &std::fs::File,
    path: &Arc<PathBuf>,
    base: u64,
    l: &mut Layout,
    depth: usize,
) -> Result<u64, RetrievalError>
where
    F: FnMut(&Cid) -> Result<Vec<u8>, cairn_core::dag::FetchError>,
{
    if depth > MAX_DEPTH {
        return Err(DagError::TooDeep.into());
    }
    let Node::File { data, children, .. } = node else {
        return Ok(0);
    };
    if !data.is_empty() {
        f.write_all_at(data, base).map_err(io(path))?;
    }
    let mut off = base + data.len() as u64;
    for (child, csize) in children {
        if child.codec() == RAW {
            l.leaves
                .entry(*child)
                .or_default()
                .push((path.clone(), off));
        } else {
            let n = reader.node(child)?;
            file_leaves(reader, &n, f, path, off, l, depth + 1)?;
        }
        off += csize;
    }
    Ok(off - base)
}

/// The record of leaves already written: one CID per line, appended after each batch of leaves
/// is written and synced (see the module docs for what a line is trusted for).
pub struct Journal {
    /// The leaves the journal named when it was opened: written by earlier runs.
    named: HashSet<Cid>,
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    file: File,
    /// Leaves written and synced by this run, or named and verified on disk by this run.
    trusted: HashSet<Cid>,
}

impl Journal {
    /// Opens (creating) the journal and reads what it records; a torn last line is ignored.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        // lossy: a power loss can leave garbage or zeros at the end; such lines do not parse
        let named = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| cairn_core::block::parse_cid(l).ok())
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if bytes.last().is_some_and(|b| *b != b'\n') {
            // end the torn line, so that it does not swallow the next one
            file.write_all(b"\n")?;
        }
        Ok(Journal {
            named,
            path: path.to_path_buf(),
            state: Mutex::new(State {
                file,
                trusted: HashSet::new(),
            }),
        })
    }

    /// Whether the journal named the leaf when it was opened (an earlier run wrote it). Such a
    /// leaf is only trusted once [`Journal::check`] has verified its bytes on disk.
    pub fn contains(&self, c: &Cid) -> bool {
        self.named.contains(c)
    }

    /// Whether the leaf counts as written: written and synced by this run, or named by the
    /// journal and verified on disk by [`Journal::check`].
    pub fn trusted(&self, c: &Cid) -> bool {
        self.state().is_ok_and(|s| s.trusted.contains(c))
    }

    fn state(&self) -> std::io::Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))
    }

    fn io(&self) -> impl FnOnce(std::io::Error) -> RetrievalError + '_ {
        io(&self.path)
    }

    /// Appends `cids` and trusts them. The caller has synced their bytes.
    fn record(&self, cids: &[Cid]) -> Result<(), RetrievalError> {
        let text: String = cids.iter().map(|c| format!("{c}\n")).collect();
        let mut s = self.state().map_err(self.io())?;
        // the batch in one write under the lock, so lines are never interleaved
        s.file.write_all(text.as_bytes()).map_err(self.io())?;
        s.trusted.extend(cids.iter().copied());
        Ok(())
    }

    /// Reads back, from every place it goes, each leaf of `cids` that the journal named when
    /// opened, and verifies it against its CID (`lens`: each leaf's length). Verified leaves
    /// become trusted; the named leaves that do not verify (zeroed, torn, missing, or of unknown
    /// length) are returned, to be fetched again. Leaves the journal did not name are skipped.
    pub fn check(
        &self,
        targets: &Targets,
        lens: &HashMap<Cid, u64>,
        cids: &[Cid],
    ) -> Result<Vec<Cid>, RetrievalError> {
        let mut files: HashMap<Arc<PathBuf>, Option<File>> = HashMap::new();
        let mut buf = Vec::new();
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for cid in cids.iter().filter(|c| self.named.contains(c)) {
            let ok = match lens.get(cid) {
                Some(&len) if len <= cairn_core::MAX_BLOCK_SIZE as u64 => {
                    buf.resize(len as usize, 0);
                    let mut ok = true;
                    for (path, off) in targets.get(cid).into_iter().flatten() {
                        if !read_back(&mut files, path, *off, &mut buf)?
                            || cairn_core::Block::verify(cid, &buf).is_err()
                        {
                            ok = false;
                            break;
                        }
                    }
                    ok
                }
                // a length no block has: the manifest is wrong, so let the fetch decide
                _ => false,
            };
            if ok {
                good.push(*cid);
            } else {
                bad.push(*cid);
            }
        }
        self.state().map_err(self.io())?.trusted.extend(good);
        Ok(bad)
    }

    /// Syncs the journal file.
    fn sync(&self) -> Result<(), RetrievalError> {
        self.state()
            .map_err(self.io())?
            .file
            .sync_data()
            .map_err(self.io())
    }
}

/// Reads `buf.len()` bytes of `path` at `off` into `buf`; false if the file is missing or
/// shorter (what a lost write leaves), an error for any other I/O failure.
fn read_back(
    files: &mut HashMap<Arc<PathBuf>, Option<File>>,
    path: &Arc<PathBuf>,
    off: u64,
    buf: &mut [u8],
) -> Result<bool, RetrievalError> {
    let f = match files.get(path) {
        Some(f) => f,
        None => {
            let f = match File::open(path.as_path()) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(io(path)(e)),
            };
            files.entry(path.clone()).or_insert(f)
        }
    };
    let Some(f) = f else {
        return Ok(false);
    };
    match f.read_exact_at(buf, off) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes verified leaves to every place they go, syncs the files written, then records the
/// leaves in the journal (never before their bytes are durable).
pub fn write_leaves(
    targets: &Targets,
    journal: &Journal,
    blocks: Vec<(Cid, Vec<u8>)>,
) -> Result<(), RetrievalError> {
    // one handle, and one sync, per file the batch touches
    let mut files: HashMap<Arc<PathBuf>, File> = HashMap::new();
    for (cid, bytes) in &blocks {
        for (path, off) in targets.get(cid).into_iter().flatten() {
            let f = match files.get(path) {
                Some(f) => f,
                None => {
                    let f = open_nofollow(path, false).map_err(io(path))?;
                    files.entry(path.clone()).or_insert(f)
                }
            };
            f.write_all_at(bytes, *off).map_err(io(path))?;
        }
    }
    for (path, f) in &files {
        f.sync_data().map_err(io(path))?;
    }
    let cids: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
    journal.record(&cids)
}

/// Moves the finished tree `partial` to `out`, durably: refuses unless every leaf of `targets`
/// is trusted by `journal` (see the module docs), then syncs the journal, every file and
/// directory under `partial`, renames it to `out`, and syncs the directory holding `out`.
pub fn finish(
    targets: &Targets,
    journal: &Journal,
    partial: &Path,
    out: &Path,
) -> Result<(), RetrievalError> {
    for (cid, places) in targets {
        if !journal.trusted(cid) {
            let path = places
                .first()
                .map(|(p, _)| p.to_path_buf())
                .unwrap_or_else(|| partial.to_path_buf());
            return Err(RetrievalError::Unverified { cid: *cid, path });
        }
    }
    journal.sync()?;
    sync_tree(partial)?;
    std::fs::rename(partial, out).map_err(io(out))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_path(parent)
}

/// Syncs every regular file and directory under `root` (symlinks are entries of their
/// directory, synced with it).
fn sync_tree(root: &Path) -> Result<(), RetrievalError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = p.symlink_metadata().map_err(io(&p))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).map_err(io(&p))? {
                stack.push(e.map_err(io(&p))?.path());
            }
            sync_path(&p)?;
        } else if meta.is_file() {
            sync_path(&p)?;
        }
    }
    Ok(())
}

/// Opens a file or directory read-only and syncs it (`fsync`).
fn sync_path(p: &Path) -> Result<(), RetrievalError> {
    File::open(p).map_err(io(p))?.sync_all().map_err(io(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::importer::import_bytes;
    use cairn_core::profile::Profile;
    use cairn_core::testgen::Gen;

    /// 4 KiB chunks and 3 links per node: a few KiB make a DAG of several levels.
    fn profile() -> Profile {
        Profile {
            chunk_size: 4096,
            max_links: 3,
            ..Profile::cairn_v1()
        }
    }

    /// Eight full chunks and a short tail, the first and fourth the same leaf (one CID, two
    /// offsets): 9 leaves, 8 CIDs, three levels of nodes.
    fn source() -> Vec<u8> {
        let mut data = Gen::bytes(7, 8 * 4096 + 100);
        let first = data[..4096].to_vec();
        data[3 * 4096..4 * 4096].copy_from_slice(&first);
        data
    }

    struct Run {
        dir: tempfile::TempDir,
        data: Vec<u8>,
        /// Leaves by CID.
        leaves: HashMap<Cid, Vec<u8>>,
        lens: HashMap<Cid, u64>,
        cache: BlockCache,
        root: Cid,
    }

    impl Run {
        fn new() -> Run {
            let dir = tempfile::tempdir().unwrap();
            let data = source();
            let mut blocks = Vec::new();
            let root = import_bytes(&profile(), &data, &mut blocks).cid;
            let cache = BlockCache::open(&dir.path().join("blocks")).unwrap();
            let mut leaves = HashMap::new();
            for b in blocks {
                if b.cid.codec() == RAW {
                    leaves.insert(b.cid, b.data.to_vec());
                } else {
                    cache.put(&b.cid, &b.data).unwrap();
                }
            }
            let lens = leaves.iter().map(|(c, b)| (*c, b.len() as u64)).collect();
            Run {
                dir,
                data,
                leaves,
                lens,
                cache,
                root,
            }
        }

        fn partial(&self) -> PathBuf {
            self.dir.path().join("out.cairn-partial")
        }

        fn out(&self) -> PathBuf {
            self.dir.path().join("out")
        }

        /// What a run starts with: the layout (files created) and the journal.
        fn start(&self) -> (Layout, Journal) {
            let l = plan(&self.cache, &self.root, &self.partial()).unwrap();
            let j = Journal::open(&self.dir.path().join("blocks/done")).unwrap();
            (l, j)
        }

        fn blocks(&self, cids: &[Cid]) -> Vec<(Cid, Vec<u8>)> {
            cids.iter().map(|c| (*c, self.leaves[c].clone())).collect()
        }
    }

    #[test]
    fn layout_places_every_leaf() {
        let run = Run::new();
        let (l, _) = run.start();
        assert_eq!(l.bytes, run.data.len() as u64);
        assert_eq!(l.leaves.len(), 8);
        assert_eq!(l.leaves.values().map(Vec::len).sum::<usize>(), 9);
    }

    #[test]
    fn journaled_leaf_zeroed_on_disk_is_refetched_on_resume() {
        let run = Run::new();
        // run 1 writes and journals every leaf, then "loses power" before the rename
        let (l, j) = run.start();
        let all: Vec<Cid> = l.leaves.keys().copied().collect();
        write_leaves(&l.leaves, &j, run.blocks(&all)).unwrap();
        drop(j);
        // the write of the repeated leaf's second copy (chunk 3) never reached the disk
        let lost = l
            .leaves
            .iter()
            .find(|(_, p)| p.len() == 2)
            .map(|(c, _)| *c)
            .unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(run.partial())
            .unwrap();
        f.write_all_at(&[0; 4096], 3 * 4096).unwrap();
        // run 2: the journal names every leaf, but only the intact ones are trusted
        let (l, j) = run.start();
        assert!(all.iter().all(|c| j.contains(c)));
        assert!(all.iter().all(|c| !j.trusted(c)));
        let bad = j.check(&l.leaves, &run.lens, &all).unwrap();
        assert_eq!(bad, vec![lost]);
        assert!(all.iter().all(|c| j.trusted(c) == (*c != lost)));
        // fetched again, the download completes with the source bytes
        write_leaves(&l.leaves, &j, run.blocks(&bad)).unwrap();
        finish(&l.leaves, &j, &run.partial(), &run.out()).unwrap();
        assert_eq!(std::fs::read(run.out()).unwrap(), run.data);
        assert!(!run.partial().exists());
    }

    #[test]
    fn corrupted_leaf_is_not_renamed_into_place() {
        let run = Run::new();
        let (l, j) = run.start();
        let all: Vec<Cid> = l.leaves.keys().copied().collect();
        write_leaves(&l.leaves, &j, run.blocks(&all)).unwrap();
        drop(j);
        // one byte of the last (short) leaf flipped on disk
        let at = run.data.len() as u64 - 1;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(run.partial())
            .unwrap();
        f.write_all_at(&[run.data[at as usize] ^ 1], at).unwrap();
        let tail = l
            .leaves
            .iter()
            .find(|(_, p)| p.iter().any(|(_, off)| *off == 8 * 4096))
            .map(|(c, _)| *c)
            .unwrap();
        let (l, j) = run.start();
        // unchecked journal lines are not enough to finish
        let e = finish(&l.leaves, &j, &run.partial(), &run.out()).unwrap_err();
        assert!(matches!(e, RetrievalError::Unverified { .. }), "{e}");
        assert!(!run.out().exists());
        // checked: every leaf but the corrupted one is trusted, and it still stops the rename
        assert_eq!(j.check(&l.leaves, &run.lens, &all).unwrap(), vec![tail]);
        let e = finish(&l.leaves, &j, &run.partial(), &run.out()).unwrap_err();
        match e {
            RetrievalError::Unverified { cid, path } => {
                assert_eq!(cid, tail);
                assert_eq!(path, run.partial());
            }
            e => panic!("unexpected error {e}"),
        }
        assert!(!run.out().exists());
        assert!(run.partial().exists());
    }

    #[test]
    fn journaled_leaves_of_a_lost_file_are_all_refetched() {
        let run = Run::new();
        let (l, j) = run.start();
        let all: Vec<Cid> = l.leaves.keys().copied().collect();
        write_leaves(&l.leaves, &j, run.blocks(&all)).unwrap();
        drop(j);
        // the file's directory entry was never synced: it is gone, the journal is not
        std::fs::remove_file(run.partial()).unwrap();
        let (l, j) = run.start();
        let mut bad = j.check(&l.leaves, &run.lens, &all).unwrap();
        bad.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(bad, want);
        write_leaves(&l.leaves, &j, run.blocks(&bad)).unwrap();
        finish(&l.leaves, &j, &run.partial(), &run.out()).unwrap();
        assert_eq!(std::fs::read(run.out()).unwrap(), run.data);
    }

    #[test]
    fn leaf_of_unknown_or_impossible_length_is_not_trusted() {
        let run = Run::new();
        let (l, j) = run.start();
        let all: Vec<Cid> = l.leaves.keys().copied().collect();
        write_leaves(&l.leaves, &j, run.blocks(&all)).unwrap();
        drop(j);
        let (l, j) = run.start();
        let (a, b) = (all[0], all[1]);
        let mut lens = run.lens.clone();
        lens.remove(&a);
        lens.insert(b, u64::MAX);
        let mut bad = j.check(&l.leaves, &lens, &all).unwrap();
        bad.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(bad, want);
    }

    #[test]
    fn torn_journal_line_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("done");
        let run = Run::new();
        let mut cids: Vec<Cid> = run.leaves.keys().copied().collect();
        cids.sort();
        // a complete line, then half of one (the write torn by a power loss)
        let torn = cids[1].to_string();
        std::fs::write(&path, format!("{}\n{}", cids[0], &torn[..torn.len() / 2])).unwrap();
        let j = Journal::open(&path).unwrap();
        assert!(j.contains(&cids[0]) && !j.contains(&cids[1]));
        j.record(&cids[2..4]).unwrap();
        j.sync().unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert!(j.contains(&cids[0]) && j.contains(&cids[2]) && j.contains(&cids[3]));
        assert!(!j.contains(&cids[1]));
    }

    #[test]
    fn unreadable_journal_is_an_error_not_an_empty_journal() {
        let dir = tempfile::tempdir().unwrap();
        // a directory where the journal should be: reading fails with something other than
        // "not found", which must not be taken for "nothing written yet"
        assert!(Journal::open(dir.path()).is_err());
    }
}
