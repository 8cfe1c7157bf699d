//! UnixFS DAG building, bit-identical to `ipfs-unixfs-importer` and kubo for the same profile.
//!
//! Files are imported by a streaming [`FileImporter`]: feed it fixed-size chunks in order and it
//! emits blocks in DAG order (each leaf, then every internal node as soon as it is complete), so
//! memory stays bounded by one pending group of links per tree level. Directories are built from
//! their already-imported children by [`build_directory`], which switches to a HAMT shard above
//! the profile's threshold exactly where the reference importer does.

use crate::block::{Block, DAG_PB, RAW};
use crate::dagpb::{PbLink, PbNode};
use crate::hamt;
use crate::profile::{Profile, ShardSplit};
use crate::unixfs::{DataType, UnixFsData};
use crate::varint;
use bytes::Bytes;
use cid::Cid;
use rayon::prelude::*;
use thiserror::Error;

/// The root of an imported file, directory or symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Root CID.
    pub cid: Cid,
    /// Cumulative size of all blocks of the DAG (the `Tsize` a parent link records).
    pub tsize: u64,
    /// File bytes (0 for directories and symlinks).
    pub filesize: u64,
}

#[derive(Debug, Clone, Copy)]
struct Child {
    cid: Cid,
    tsize: u64,
    filesize: u64,
}

/// A directory that cannot be built.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ImportError {
    /// Two entries with one name.
    #[error("duplicate name {0:?} in directory")]
    DuplicateName(String),
    /// A name UnixFS cannot hold.
    #[error("invalid file name {0:?}: empty, '.', '..' or containing '/'")]
    BadName(String),
}

/// Streaming importer for one file (balanced layout, raw leaves).
pub struct FileImporter<'p> {
    profile: &'p Profile,
    levels: Vec<Vec<Child>>,
    leaves: u64,
}

impl<'p> FileImporter<'p> {
    /// Starts a file.
    pub fn new(profile: &'p Profile) -> Self {
        FileImporter {
            profile,
            levels: vec![Vec::new()],
            leaves: 0,
        }
    }

    /// Adds chunks (each exactly `chunk_size` bytes except possibly the file's last one),
    /// hashing them in parallel, and appends the leaf blocks and any internal nodes completed
    /// by them to `out`, in DAG order.
    pub fn add_chunks(&mut self, chunks: Vec<Bytes>, out: &mut Vec<Block>) {
        let hash = self.profile.hash;
        let leaves: Vec<Block> = if chunks.len() > 1 {
            chunks
                .into_par_iter()
                .map(|c| Block::new(hash, RAW, c))
                .collect()
        } else {
            chunks
                .into_iter()
                .map(|c| Block::new(hash, RAW, c))
                .collect()
        };
        for leaf in leaves {
            self.add_leaf(leaf, out);
        }
    }

    /// How many more leaves can be added before the next one completes an internal node:
    /// after that many, [`FileImporter::add_leaf`] also emits the node (and any above it).
    pub fn leaves_before_node(&self) -> usize {
        self.profile.max_links.max(2) - self.levels[0].len()
    }

    /// Adds one already-hashed raw leaf block.
    pub fn add_leaf(&mut self, leaf: Block, out: &mut Vec<Block>) {
        let len = leaf.data.len() as u64;
        self.levels[0].push(Child {
            cid: leaf.cid,
            tsize: len,
            filesize: len,
        });
        self.leaves += 1;
        out.push(leaf);
        let mut level = 0;
        while self.levels[level].len() >= self.profile.max_links.max(2) {
            let group = std::mem::take(&mut self.levels[level]);
            let parent = self.file_node(&group, out);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }

    fn file_node(&self, children: &[Child], out: &mut Vec<Block>) -> Child {
        let mut data = UnixFsData::new(DataType::File);
        data.blocksizes = children.iter().map(|c| c.filesize).collect();
        let filesize = data.blocksizes.iter().sum();
        data.filesize = Some(filesize);
        let node = PbNode {
            links: children
                .iter()
                .map(|c| PbLink {
                    hash: c.cid,
                    name: Some(String::new()),
                    tsize: Some(c.tsize),
                })
                .collect(),
            data: Some(data.encode()),
        };
        let block = Block::new(self.profile.hash, DAG_PB, node.encode());
        let tsize = block.data.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
        let child = Child {
            cid: block.cid,
            tsize,
            filesize,
        };
        out.push(block);
        child
    }

    /// Completes the file: emits the remaining internal nodes and returns the root.
    /// A file of one chunk is its own root (a raw block); an empty file is the empty raw block.
    pub fn finish(mut self, out: &mut Vec<Block>) -> Entry {
        if self.leaves == 0 {
            let leaf = Block::new(self.profile.hash, RAW, Bytes::new());
            let e = Entry {
                cid: leaf.cid,
                tsize: 0,
                filesize: 0,
            };
            out.push(leaf);
            return e;
        }
        if self.leaves == 1 {
            let c = self.levels[0][0];
            return Entry {
                cid: c.cid,
                tsize: c.tsize,
                filesize: c.filesize,
            };
        }
        let mut level = 0;
        loop {
            let top = self.levels.len() - 1;
            if level == top && self.levels[level].len() == 1 {
                let c = self.levels[level][0];
                return Entry {
                    cid: c.cid,
                    tsize: c.tsize,
                    filesize: c.filesize,
                };
            }
            if !self.levels[level].is_empty() {
                let group = std::mem::take(&mut self.levels[level]);
                let parent = self.file_node(&group, out);
                if level == top {
                    self.levels.push(Vec::new());
                }
                self.levels[level + 1].push(parent);
            }
            level += 1;
        }
    }
}

/// Imports a whole in-memory buffer as one file (tests, small inputs).
pub fn import_bytes(profile: &Profile, bytes: &[u8], out: &mut Vec<Block>) -> Entry {
    let mut f = FileImporter::new(profile);
    let chunks: Vec<Bytes> = bytes
        .chunks(profile.chunk_size)
        .map(Bytes::copy_from_slice)
        .collect();
    f.add_chunks(chunks, out);
    f.finish(out)
}

/// A UnixFS symlink node pointing at `target`.
pub fn symlink(profile: &Profile, target: &str, out: &mut Vec<Block>) -> Entry {
    let mut data = UnixFsData::new(DataType::Symlink);
    data.data = target.as_bytes().to_vec();
    let node = PbNode {
        links: vec![],
        data: Some(data.encode()),
    };
    let block = Block::new(profile.hash, DAG_PB, node.encode());
    let e = Entry {
        cid: block.cid,
        tsize: block.data.len() as u64,
        filesize: 0,
    };
    out.push(block);
    e
}

/// A child of a directory being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Name in the directory (UTF-8, no '/').
    pub name: String,
    /// The child's root.
    pub entry: Entry,
    /// Whether the child counts towards the directory's size estimate when deciding to shard.
    /// The reference importer counts files, symlinks and *empty* directories, but not
    /// directories with content (their CID is not known yet when it decides); set this the
    /// same way to get the same CIDs.
    pub counts_in_estimate: bool,
}

fn link_serialized_size(name_len: usize, cid_len: usize, tsize: u64) -> usize {
    let mut l = 1 + varint::len(cid_len as u64) + cid_len;
    l += 1 + varint::len(name_len as u64) + name_len;
    l += 1 + varint::len(tsize);
    1 + varint::len(l as u64) + l
}

/// The reference importer's size estimate of a flat directory.
fn estimate(profile: &Profile, entries: &[DirEntry]) -> usize {
    let counted = entries.iter().filter(|e| e.counts_in_estimate);
    match profile.shard_split {
        ShardSplit::LinksBytes => counted
            .map(|e| e.name.len() + e.entry.cid.encoded_len())
            .sum(),
        // 4 = the encoded `Data` field {Type: Directory} with no mode or mtime.
        ShardSplit::BlockBytes => {
            4 + counted
                .map(|e| {
                    link_serialized_size(e.name.len(), e.entry.cid.encoded_len(), e.entry.tsize)
                })
                .sum::<usize>()
        }
    }
}

/// Builds a directory from its children; appends its blocks to `out` (sub-shards first).
pub fn build_directory(
    profile: &Profile,
    mut entries: Vec<DirEntry>,
    out: &mut Vec<Block>,
) -> Result<Entry, ImportError> {
    for e in &entries {
        if e.name.is_empty() || e.name == "." || e.name == ".." || e.name.contains('/') {
            return Err(ImportError::BadName(e.name.clone()));
        }
    }
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for w in entries.windows(2) {
        if w[0].name == w[1].name {
            return Err(ImportError::DuplicateName(w[0].name.clone()));
        }
    }
    if estimate(profile, &entries) > profile.shard_threshold {
        return Ok(build_hamt(profile, &entries, out));
    }
    let node = PbNode {
        links: entries
            .iter()
            .map(|e| PbLink {
                hash: e.entry.cid,
                name: Some(e.name.clone()),
                tsize: Some(e.entry.tsize),
            })
            .collect(),
        data: Some(UnixFsData::new(DataType::Directory).encode()),
    };
    let block = Block::new(profile.hash, DAG_PB, node.encode());
    let tsize = block.data.len() as u64 + entries.iter().map(|e| e.entry.tsize).sum::<u64>();
    let e = Entry {
        cid: block.cid,
        tsize,
        filesize: 0,
    };
    out.push(block);
    Ok(e)
}

enum Slot {
    Leaf(usize),
    Bucket(Box<Bucket>),
}

struct Bucket {
    slots: Vec<Option<Slot>>,
}

impl Bucket {
    fn new() -> Self {
        Bucket {
            slots: (0..256).map(|_| None).collect(),
        }
    }

    fn insert(&mut self, entries: &[DirEntry], idx: usize, depth: usize) {
        let pos = hamt::index_at(entries[idx].name.as_bytes(), depth);
        match self.slots[pos].take() {
            None => self.slots[pos] = Some(Slot::Leaf(idx)),
            Some(Slot::Leaf(other)) => {
                let mut b = Bucket::new();
                b.insert(entries, other, depth + 1);
                b.insert(entries, idx, depth + 1);
                self.slots[pos] = Some(Slot::Bucket(Box::new(b)));
            }
            Some(Slot::Bucket(mut b)) => {
                b.insert(entries, idx, depth + 1);
                self.slots[pos] = Some(Slot::Bucket(b));
            }
        }
    }

    fn flush(&self, profile: &Profile, entries: &[DirEntry], out: &mut Vec<Block>) -> Entry {
        let mut links = Vec::new();
        let mut occupied = [false; 256];
        let mut children_size = 0u64;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            occupied[i] = true;
            let label = format!("{i:02X}");
            let (name, entry) = match slot {
                Slot::Leaf(idx) => (
                    format!("{label}{}", entries[*idx].name),
                    entries[*idx].entry,
                ),
                Slot::Bucket(b) => (label, b.flush(profile, entries, out)),
            };
            children_size += entry.tsize;
            links.push(PbLink {
                hash: entry.cid,
                name: Some(name),
                tsize: Some(entry.tsize),
            });
        }
        let mut data = UnixFsData::new(DataType::HamtShard);
        data.data = hamt::bitfield(&occupied);
        data.hash_type = Some(hamt::HAMT_HASH_CODE);
        data.fanout = Some(256);
        let node = PbNode {
            links,
            data: Some(data.encode()),
        };
        let block = Block::new(profile.hash, DAG_PB, node.encode());
        let e = Entry {
            cid: block.cid,
            tsize: block.data.len() as u64 + children_size,
            filesize: 0,
        };
        out.push(block);
        e
    }
}

fn build_hamt(profile: &Profile, entries: &[DirEntry], out: &mut Vec<Block>) -> Entry {
    let mut root = Bucket::new();
    for i in 0..entries.len() {
        root.insert(entries, i, 0);
    }
    root.flush(profile, entries, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid_of(profile: &Profile, bytes: &[u8]) -> (Entry, Vec<Block>) {
        let mut out = Vec::new();
        let e = import_bytes(profile, bytes, &mut out);
        (e, out)
    }

    #[test]
    fn foo_blake3() {
        let (e, blocks) = cid_of(&Profile::cairn_v1(), b"foo\n");
        assert_eq!(
            e.cid.to_string(),
            "bafkr4icj3sdq34o6p7lapfgoxtset5om3lsxll72uz5cjnrkzmb6aoo3si"
        );
        assert_eq!(blocks.len(), 1);
    }

    #[test]
    fn streaming_equals_whole_buffer() {
        let mut p = Profile::kubo_legacy();
        p.chunk_size = 4;
        p.max_links = 3;
        let data: Vec<u8> = (0..200u8).collect();
        let (whole, _) = cid_of(&p, &data);
        let mut f = FileImporter::new(&p);
        let mut out = Vec::new();
        for c in data.chunks(4) {
            f.add_chunks(vec![Bytes::copy_from_slice(c)], &mut out);
        }
        assert_eq!(f.finish(&mut out), whole);
        // every link target is emitted before the node that links to it
        let mut seen = std::collections::HashSet::new();
        for b in &out {
            if b.cid.codec() == DAG_PB {
                for l in PbNode::decode(&b.data).unwrap().links {
                    assert!(seen.contains(&l.hash));
                }
            }
            seen.insert(b.cid);
        }
    }

    #[test]
    fn duplicate_and_bad_names_rejected() {
        let p = Profile::cairn_v1();
        let (e, _) = cid_of(&p, b"x");
        let d = |n: &str| DirEntry {
            name: n.into(),
            entry: e,
            counts_in_estimate: true,
        };
        let mut out = Vec::new();
        assert_eq!(
            build_directory(&p, vec![d("a"), d("a")], &mut out),
            Err(ImportError::DuplicateName("a".into()))
        );
        assert!(matches!(
            build_directory(&p, vec![d("a/b")], &mut out),
            Err(ImportError::BadName(_))
        ));
    }
}
