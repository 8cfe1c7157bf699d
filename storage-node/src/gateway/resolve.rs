//! Resolving a content path to its target block: through UnixFS directories (flat ones by
//! name, HAMT-sharded ones by hashing the name, fetching only the shards on the way) and
//! DAG-CBOR documents (map keys and array indices up to a link). Symlinks are never followed.

use super::error::GatewayError;
use super::params::ContentPath;
use super::source::{fetch, BlockSource};
use bytes::Bytes;
use cairn_core::block::{DAG_CBOR, DAG_PB, RAW};
use cairn_core::cbor::{self, Step};
use cairn_core::dag::{DagError, Node};
use cairn_core::hamt;
use cid::Cid;

/// Deepest HAMT walked while looking a name up (each level uses 8 bits of the name's hash; 64
/// levels is far more than any real directory needs).
pub const MAX_HAMT_DEPTH: usize = 64;

/// A resolved content path.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The blocks needed to verify the path, in walk order: the root, HAMT shards on the way,
    /// each segment's block, up to (not including) the target.
    pub trail: Vec<(Cid, Bytes)>,
    /// `X-Ipfs-Roots`: the root, then the CID each path segment resolved to.
    pub roots: Vec<Cid>,
    /// The block the path names.
    pub target: Cid,
    /// Its bytes.
    pub block: Bytes,
}

/// Decodes a UnixFS (dag-pb or raw) block.
pub fn decode(cid: &Cid, bytes: &Bytes) -> Result<Node, GatewayError> {
    Node::decode(cid, bytes.to_vec()).map_err(|source| GatewayError::Decode { cid: *cid, source })
}

/// Resolves `path` through `src`. A root block that cannot be had is
/// [`GatewayError::RootNotFound`]; any later block, [`GatewayError::BlockUnavailable`].
pub async fn resolve<S: BlockSource>(
    src: &S,
    path: &ContentPath,
) -> Result<Resolved, GatewayError> {
    let root = path.root;
    let mut cur = root;
    let mut block = fetch(src, &root).await.map_err(|e| match e {
        GatewayError::BlockUnavailable(c) if c == root => GatewayError::RootNotFound(root),
        e => e,
    })?;
    let mut trail = Vec::new();
    let mut roots = vec![root];
    let segs = &path.segments;
    let mut i = 0;
    while i < segs.len() {
        trail.push((cur, block.clone()));
        let not_traversable = |reason| GatewayError::NotTraversable {
            cid: cur,
            name: segs[i].clone(),
            reason,
        };
        let next = match cur.codec() {
            DAG_PB => {
                let node = decode(&cur, &block)?;
                let next = lookup(src, &cur, node, &segs[i], &mut trail).await?;
                roots.push(next);
                i += 1;
                next
            }
            RAW => return Err(not_traversable("a raw block (file bytes)")),
            DAG_CBOR => {
                let rest: Vec<&str> = segs[i..].iter().map(String::as_str).collect();
                let step = cbor::walk_path(&block, &rest)
                    .map_err(|source| GatewayError::Cbor { cid: cur, source })?;
                match step {
                    Step::Link { cid, used } => {
                        // the segments inside this block all resolve to it; the last to the link
                        let used = used.max(1);
                        roots.extend(std::iter::repeat_n(cur, used - 1));
                        roots.push(cid);
                        i += used;
                        cid
                    }
                    Step::Value => {
                        return Err(GatewayError::Unsupported(format!(
                        "the path ends inside DAG-CBOR block {cur}; only whole blocks are served"
                    )))
                    }
                    Step::Missing { index } => {
                        return Err(GatewayError::NoSuchEntry {
                            parent: cur,
                            name: segs[i + index].clone(),
                        })
                    }
                }
            }
            other => {
                return Err(GatewayError::Unsupported(format!(
                    "pathing through codec 0x{other:x} ({cur})"
                )))
            }
        };
        block = fetch(src, &next).await?;
        cur = next;
    }
    Ok(Resolved {
        trail,
        roots,
        target: cur,
        block,
    })
}

/// The CID of entry `name` in the UnixFS node `node` (block `cid`). HAMT shards fetched on the
/// way are appended to `trail`. A file, symlink or missing name is an error.
pub async fn lookup<S: BlockSource>(
    src: &S,
    cid: &Cid,
    node: Node,
    name: &str,
    trail: &mut Vec<(Cid, Bytes)>,
) -> Result<Cid, GatewayError> {
    let missing = || GatewayError::NoSuchEntry {
        parent: *cid,
        name: name.to_string(),
    };
    let not_traversable = |reason| GatewayError::NotTraversable {
        cid: *cid,
        name: name.to_string(),
        reason,
    };
    let mut links = match node {
        Node::Directory(entries) => {
            return entries
                .into_iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, c, _)| c)
                .ok_or_else(missing)
        }
        Node::Hamt(links) => links,
        Node::Raw(_) | Node::File { .. } => return Err(not_traversable("a file")),
        Node::Symlink(_) => return Err(not_traversable("a symlink (never followed)")),
    };
    for depth in 0..MAX_HAMT_DEPTH {
        let slot = hamt::index_at(name.as_bytes(), depth);
        let hit = links.iter().find(|(n, _, _)| {
            n.get(..2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .is_some_and(|p| usize::from(p) == slot)
        });
        let Some((link_name, child, _)) = hit else {
            return Err(missing());
        };
        let child = *child;
        if link_name.len() > 2 {
            return if &link_name[2..] == name {
                Ok(child)
            } else {
                Err(missing())
            };
        }
        let shard = fetch(src, &child).await?;
        links = match decode(&child, &shard)? {
            Node::Hamt(l) => l,
            _ => {
                return Err(GatewayError::Decode {
                    cid: child,
                    source: DagError::NotADirectory(child),
                })
            }
        };
        trail.push((child, shard));
    }
    Err(GatewayError::Decode {
        cid: *cid,
        source: DagError::TooDeep,
    })
}
