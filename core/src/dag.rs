//! Reading UnixFS DAGs: decoding nodes, resolving paths, listing (flat and HAMT) directories,
//! streaming file bytes and walking every block. Pure: blocks come from a caller's fetch
//! function, which is expected to verify them against their CIDs.

use crate::block::{DAG_PB, RAW};
use crate::dagpb::{DagPbError, PbNode};
use crate::unixfs::{DataType, UnixFsData};
use cid::Cid;
use thiserror::Error;

/// Failure of a fetch function.
pub type FetchError = Box<dyn std::error::Error + Send + Sync>;

/// Deepest DAG walked (UnixFS files of 1024-link nodes reach 2^60 bytes by depth 6; directory
/// nesting is bounded too so a malicious DAG cannot exhaust the stack).
pub const MAX_DEPTH: usize = 256;

/// DAG reading failures.
#[derive(Debug, Error)]
pub enum DagError {
    /// The fetch function failed.
    #[error("{0}")]
    Fetch(FetchError),
    /// A block is not a valid node.
    #[error("block {cid} is not a valid UnixFS node")]
    Decode {
        /// The block.
        cid: Cid,
        /// Why.
        source: DagPbError,
    },
    /// A codec Cairn does not read as UnixFS.
    #[error("block {0} has codec 0x{1:x}, not raw or dag-pb")]
    Codec(Cid, u64),
    /// No such path.
    #[error("no entry {name:?} under {parent}")]
    NotFound {
        /// The directory.
        parent: Cid,
        /// The missing name.
        name: String,
    },
    /// A path through something that is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(Cid),
    /// A directory where a file was expected.
    #[error("{0} is a directory, not a file")]
    IsADirectory(Cid),
    /// Nesting beyond [`MAX_DEPTH`].
    #[error("DAG deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Inconsistent sizes in a file node.
    #[error("file node {0} is inconsistent (blocksizes do not match links)")]
    Inconsistent(Cid),
    /// The output sink failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// A decoded UnixFS node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A raw leaf (its bytes are file bytes).
    Raw(Vec<u8>),
    /// A file node: inline bytes, then its children (CID, file bytes under it).
    File {
        /// Inline data (before the children's bytes).
        data: Vec<u8>,
        /// Children and their file sizes.
        children: Vec<(Cid, u64)>,
        /// Total file size.
        size: u64,
    },
    /// A directory: (name, CID, tsize) per entry.
    Directory(Vec<(String, Cid, u64)>),
    /// A HAMT shard: (link name, CID, tsize) per link; names of 2 characters are sub-shards.
    Hamt(Vec<(String, Cid, u64)>),
    /// A symlink and its target.
    Symlink(String),
}

/// What kind of thing a CID is, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
}

impl Node {
    /// Decodes the block `bytes` of `cid`.
    pub fn decode(cid: &Cid, bytes: Vec<u8>) -> Result<Node, DagError> {
        match cid.codec() {
            RAW => Ok(Node::Raw(bytes)),
            DAG_PB => {
                let de = |source| DagError::Decode { cid: *cid, source };
                let pb = PbNode::decode(&bytes).map_err(de)?;
                let data = UnixFsData::decode(pb.data.as_deref().unwrap_or(&[])).map_err(de)?;
                let links = |pb: PbNode| -> Vec<(String, Cid, u64)> {
                    pb.links
                        .into_iter()
                        .map(|l| (l.name.unwrap_or_default(), l.hash, l.tsize.unwrap_or(0)))
                        .collect()
                };
                match data.kind {
                    DataType::File | DataType::Raw => {
                        if data.blocksizes.len() != pb.links.len() {
                            return Err(DagError::Inconsistent(*cid));
                        }
                        let children: Vec<(Cid, u64)> = pb
                            .links
                            .iter()
                            .map(|l| l.hash)
                            .zip(data.blocksizes.iter().copied())
                            .collect();
                        let size = data.data.len() as u64
                            + children.iter().map(|c| c.1).fold(0u64, u64::saturating_add);
                        Ok(Node::File {
                            data: data.data,
                            children,
                            size,
                        })
                    }
                    DataType::Directory => Ok(Node::Directory(links(pb))),
                    DataType::HamtShard => {
                        if data.fanout != Some(256) {
                            return Err(de(DagPbError::Malformed("HAMT fanout other than 256")));
                        }
                        Ok(Node::Hamt(links(pb)))
                    }
                    DataType::Symlink => Ok(Node::Symlink(
                        String::from_utf8_lossy(&data.data).into_owned(),
                    )),
                    DataType::Metadata => Err(de(DagPbError::Malformed(
                        "metadata nodes are not supported",
                    ))),
                }
            }
            other => Err(DagError::Codec(*cid, other)),
        }
    }

    /// The kind of entry this node roots.
    pub fn kind(&self) -> Kind {
        match self {
            Node::Raw(_) | Node::File { .. } => Kind::File,
            Node::Directory(_) | Node::Hamt(_) => Kind::Directory,
            Node::Symlink(_) => Kind::Symlink,
        }
    }
}

/// Whether a directory entry name may be written to disk as one path component: not empty,
/// not `.` or `..`, and without `/` or NUL (names come from the DAG, which may be hostile).
pub fn safe_name(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0'))
}

/// Reads DAGs through a fetch function.
pub struct DagReader<F> {
    fetch: F,
}

impl<F> DagReader<F>
where
    F: FnMut(&Cid) -> Result<Vec<u8>, FetchError>,
{
    /// A reader over `fetch`, which returns a block's verified bytes.
    pub fn new(fetch: F) -> Self {
        DagReader { fetch }
    }

    /// Fetches and decodes a node.
    pub fn node(&mut self, cid: &Cid) -> Result<Node, DagError> {
        let bytes = (self.fetch)(cid).map_err(DagError::Fetch)?;
        Node::decode(cid, bytes)
    }

    /// Entries of a directory (flat or HAMT-sharded), sorted by name: (name, CID, tsize). A
    /// directory that lists one name twice (in a flat node, or across a HAMT's shards) is a
    /// decode error naming the directory: no reader ever has to pick one of the two.
    pub fn list(&mut self, dir: &Cid) -> Result<Vec<(String, Cid, u64)>, DagError> {
        let mut out = Vec::new();
        match self.node(dir)? {
            Node::Directory(e) => out = e,
            Node::Hamt(links) => self.hamt_entries(links, 0, &mut out)?,
            _ => return Err(DagError::NotADirectory(*dir)),
        }
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if out.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(DagError::Decode {
                cid: *dir,
                source: DagPbError::Malformed("duplicate entry name"),
            });
        }
        Ok(out)
    }

    fn hamt_entries(
        &mut self,
        links: Vec<(String, Cid, u64)>,
        depth: usize,
        out: &mut Vec<(String, Cid, u64)>,
    ) -> Result<(), DagError> {
        if depth > MAX_DEPTH {
            return Err(DagError::TooDeep);
        }
        for (name, cid, tsize) in links {
            if name.len() == 2 {
                match self.node(&cid)? {
                    Node::Hamt(sub) => self.hamt_entries(sub, depth + 1, out)?,
                    _ => return Err(DagError::NotADirectory(cid)),
                }
            } else if let Some(n) = name.get(2..) {
                out.push((n.to_string(), cid, tsize));
            } else {
                return Err(DagError::Decode {
                    cid,
                    source: DagPbError::Malformed("HAMT link name is not 2 hex digits + name"),
                });
            }
        }
        Ok(())
    }

    /// Follows a `/`-separated path from `root`.
    pub fn resolve(&mut self, root: &Cid, path: &str) -> Result<Cid, DagError> {
        let mut cur = *root;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let entries = self.list(&cur)?;
            cur = entries
                .into_iter()
                .find(|(n, _, _)| n == part)
                .map(|(_, c, _)| c)
                .ok_or_else(|| DagError::NotFound {
                    parent: cur,
                    name: part.to_string(),
                })?;
        }
        Ok(cur)
    }

    /// Streams the bytes of the file rooted at `cid` into `out`, one block at a time.
    pub fn read_file(&mut self, cid: &Cid, out: &mut dyn std::io::Write) -> Result<u64, DagError> {
        self.read_file_at(cid, out, 0)
    }

    fn read_file_at(
        &mut self,
        cid: &Cid,
        out: &mut dyn std::io::Write,
        depth: usize,
    ) -> Result<u64, DagError> {
        if depth > MAX_DEPTH {
            return Err(DagError::TooDeep);
        }
        match self.node(cid)? {
            Node::Raw(b) => {
                out.write_all(&b)?;
                Ok(b.len() as u64)
            }
            Node::File { data, children, .. } => {
                out.write_all(&data)?;
                let mut n = data.len() as u64;
                for (c, size) in children {
                    let got = self.read_file_at(&c, out, depth + 1)?;
                    if got != size {
                        return Err(DagError::Inconsistent(*cid));
                    }
                    n += got;
                }
                Ok(n)
            }
            Node::Directory(_) | Node::Hamt(_) => Err(DagError::IsADirectory(*cid)),
            Node::Symlink(_) => Err(DagError::IsADirectory(*cid)),
        }
    }

    /// Visits every block CID of the DAG under `root` once (parents before children). Blocks
    /// shared by several parents are visited and descended into only the first time, so a DAG
    /// built to repeat one subtree exponentially often costs no more than its distinct blocks.
    pub fn walk(&mut self, root: &Cid, visit: &mut dyn FnMut(&Cid)) -> Result<(), DagError> {
        let mut seen = std::collections::HashSet::new();
        self.walk_at(root, visit, &mut seen, 0)
    }

    fn walk_at(
        &mut self,
        cid: &Cid,
        visit: &mut dyn FnMut(&Cid),
        seen: &mut std::collections::HashSet<Cid>,
        depth: usize,
    ) -> Result<(), DagError> {
        if depth > MAX_DEPTH {
            return Err(DagError::TooDeep);
        }
        if !seen.insert(*cid) {
            return Ok(());
        }
        visit(cid);
        if cid.codec() == RAW {
            return Ok(());
        }
        let children: Vec<Cid> = match self.node(cid)? {
            Node::Raw(_) | Node::Symlink(_) => vec![],
            Node::File { children, .. } => children.into_iter().map(|c| c.0).collect(),
            Node::Directory(e) | Node::Hamt(e) => e.into_iter().map(|e| e.1).collect(),
        };
        for c in children {
            self.walk_at(&c, visit, seen, depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::importer::{build_directory, import_bytes, DirEntry};
    use crate::profile::Profile;
    use std::collections::HashMap;

    fn store(blocks: &[crate::Block]) -> HashMap<Cid, Vec<u8>> {
        blocks.iter().map(|b| (b.cid, b.data.to_vec())).collect()
    }

    #[test]
    fn read_list_resolve_walk() {
        let mut p = Profile::cairn_v1();
        p.chunk_size = 10;
        p.max_links = 3;
        p.shard_threshold = 200; // force a HAMT quickly
        let mut blocks = Vec::new();
        let content: Vec<u8> = (0..255u8).collect();
        let f = import_bytes(&p, &content, &mut blocks);
        let entries: Vec<DirEntry> = (0..40)
            .map(|i| DirEntry {
                name: format!("f{i}"),
                entry: f,
                counts_in_estimate: true,
            })
            .collect();
        let d = build_directory(&p, entries, &mut blocks).unwrap();
        let map = store(&blocks);
        let mut r = DagReader::new(|c: &Cid| map.get(c).cloned().ok_or_else(|| "missing".into()));
        assert!(matches!(r.node(&d.cid).unwrap(), Node::Hamt(_)));
        let listing = r.list(&d.cid).unwrap();
        assert_eq!(listing.len(), 40);
        let target = r.resolve(&d.cid, "/f17").unwrap();
        assert_eq!(target, f.cid);
        let mut out = Vec::new();
        assert_eq!(r.read_file(&target, &mut out).unwrap(), 255);
        assert_eq!(out, content);
        assert!(matches!(
            r.resolve(&d.cid, "nope"),
            Err(DagError::NotFound { .. })
        ));
        assert!(matches!(
            r.read_file(&d.cid, &mut out),
            Err(DagError::IsADirectory(_))
        ));
        // 40 entries share one file DAG: it is walked once
        let mut n = 0;
        r.walk(&d.cid, &mut |_| n += 1).unwrap();
        let file_blocks = blocks
            .iter()
            .filter(|b| b.cid.codec() == crate::block::RAW)
            .count();
        assert!(n > file_blocks && n < 40 + file_blocks, "{n}");
    }

    #[test]
    fn a_directory_listing_one_name_twice_is_refused_and_names_it() {
        use crate::block::{Block, HashAlg, DAG_PB, RAW};
        use crate::dagpb::{PbLink, PbNode};
        use crate::unixfs::{DataType, UnixFsData};
        let file = Block::new(HashAlg::Blake3, RAW, b"x".to_vec());
        let link = |name: &str| PbLink {
            hash: file.cid,
            name: Some(name.to_string()),
            tsize: Some(1),
        };
        let dir = |names: &[&str]| {
            let node = PbNode {
                links: names.iter().map(|n| link(n)).collect(),
                data: Some(UnixFsData::new(DataType::Directory).encode()),
            };
            Block::new(HashAlg::Blake3, DAG_PB, node.encode())
        };
        let (good, twice) = (dir(&["a", "x"]), dir(&["x", "x"]));
        let map = store(&[file.clone(), good.clone(), twice.clone()]);
        let mut r = DagReader::new(|c: &Cid| map.get(c).cloned().ok_or_else(|| "missing".into()));
        assert_eq!(r.list(&good.cid).unwrap().len(), 2);
        match r.list(&twice.cid) {
            Err(DagError::Decode { cid, .. }) => assert_eq!(cid, twice.cid),
            other => panic!("a duplicate name must be refused: {other:?}"),
        }
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(safe_name("train-000.tar") && safe_name("..."));
    }
}
