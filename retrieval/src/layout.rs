//! Writing a download in place: the layout of every file from the DAG's internal nodes, leaves
//! written once at their offsets, and a journal of leaves written so a download resumes.

use crate::cache::BlockCache;
use crate::client::RetrievalError;
use cairn_core::block::RAW;
use cairn_core::dag::{DagError, Kind, Node, MAX_DEPTH};
use cairn_core::dagpb::DagPbError;
use cairn_core::Cid;
use std::collections::{HashMap, HashSet};
use std::io::Write;
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
            match std::fs::create_dir(out) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && out.is_dir() => {}
                Err(e) => return Err(io(out)(e)),
            }
            for (name, child, tsize) in reader.list(cid)? {
                if name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains('/')
                    || name.contains('\0')
                {
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

fn open_file(path: &Path, size: Option<u64>) -> Result<std::fs::File, RetrievalError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io(path))?;
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

/// The record of leaves already written: one CID per line, appended after each write.
pub struct Journal {
    done: HashSet<Cid>,
    file: Mutex<std::fs::File>,
}

impl Journal {
    /// Opens (creating) the journal and reads what it records; a torn last line is ignored.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let done = text
            .lines()
            .filter_map(|l| cairn_core::block::parse_cid(l).ok())
            .collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Journal {
            done,
            file: Mutex::new(file),
        })
    }

    /// Whether a leaf was written.
    pub fn contains(&self, c: &Cid) -> bool {
        self.done.contains(c)
    }

    fn record(&self, c: &Cid) -> std::io::Result<()> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        // a CID's text plus newline in one write, so lines are never interleaved
        f.write_all(format!("{c}\n").as_bytes())
    }
}

/// Writes verified leaves to every place they go, then records them.
pub fn write_leaves(
    targets: &Targets,
    journal: &Journal,
    blocks: Vec<(Cid, Vec<u8>)>,
) -> Result<(), RetrievalError> {
    for (cid, bytes) in blocks {
        for (path, off) in targets.get(&cid).into_iter().flatten() {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path.as_path())
                .map_err(io(path))?;
            f.write_all_at(&bytes, *off).map_err(io(path))?;
        }
        journal.record(&cid).map_err(|source| RetrievalError::Io {
            path: PathBuf::from("journal"),
            source,
        })?;
    }
    Ok(())
}
