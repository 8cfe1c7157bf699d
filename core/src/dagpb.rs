//! The dag-pb codec (multicodec 0x70), byte-compatible with `@ipld/dag-pb` and go-codec-dagpb.
//!
//! ```text
//! PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }   // Links are written first
//! PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
//! ```

use crate::block::{cid_from_bytes, MAX_BLOCK_SIZE};
use crate::varint;
use cid::Cid;
use thiserror::Error;

/// A link from a dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    /// The target's CID.
    pub hash: Cid,
    /// The link name (written even when empty, as the reference importers do).
    pub name: Option<String>,
    /// Cumulative byte size of the target DAG.
    pub tsize: Option<u64>,
}

/// A dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PbNode {
    /// Links, in their encoded order.
    pub links: Vec<PbLink>,
    /// The opaque data (UnixFS `Data` message for UnixFS nodes).
    pub data: Option<Vec<u8>>,
}

/// A dag-pb block that could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DagPbError {
    /// Bigger than [`MAX_BLOCK_SIZE`].
    #[error("dag-pb node of {0} bytes exceeds the block size limit")]
    TooLarge(usize),
    /// Bad protobuf framing.
    #[error("malformed dag-pb: {0}")]
    Malformed(&'static str),
    /// A link without a hash, or with a hash that is not a CID.
    #[error("dag-pb link {index} has an invalid hash: {reason}")]
    BadLink {
        /// Position of the link.
        index: usize,
        /// What was wrong.
        reason: String,
    },
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    varint::write(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

impl PbLink {
    fn encode(&self, out: &mut Vec<u8>) {
        put_bytes(out, 0x0a, &self.hash.to_bytes());
        if let Some(name) = &self.name {
            put_bytes(out, 0x12, name.as_bytes());
        }
        if let Some(t) = self.tsize {
            out.push(0x18);
            varint::write(out, t);
        }
    }
}

impl PbNode {
    /// Encodes the node. Links are written in the order given: callers sort them
    /// (the importers do, by name bytes) before encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            16 + self.links.len() * 48 + self.data.as_ref().map_or(0, |d| d.len()),
        );
        let mut link_buf = Vec::with_capacity(64);
        for l in &self.links {
            link_buf.clear();
            l.encode(&mut link_buf);
            put_bytes(&mut out, 0x12, &link_buf);
        }
        if let Some(d) = &self.data {
            put_bytes(&mut out, 0x0a, d);
        }
        out
    }

    /// Decodes a node, refusing anything the dag-pb spec forbids (unknown fields, wrong wire
    /// types, links without hashes, duplicate `Data`).
    pub fn decode(buf: &[u8]) -> Result<PbNode, DagPbError> {
        if buf.len() > MAX_BLOCK_SIZE {
            return Err(DagPbError::TooLarge(buf.len()));
        }
        let mut node = PbNode::default();
        let mut r = Reader { buf, pos: 0 };
        while !r.done() {
            let tag = r.varint()?;
            match tag {
                0x12 => {
                    if node.data.is_some() {
                        return Err(DagPbError::Malformed("link after data"));
                    }
                    let bytes = r.bytes()?;
                    let index = node.links.len();
                    node.links.push(decode_link(bytes, index)?);
                }
                0x0a => {
                    if node.data.is_some() {
                        return Err(DagPbError::Malformed("duplicate data field"));
                    }
                    node.data = Some(r.bytes()?.to_vec());
                }
                _ => return Err(DagPbError::Malformed("unknown field in PBNode")),
            }
        }
        Ok(node)
    }
}

fn decode_link(buf: &[u8], index: usize) -> Result<PbLink, DagPbError> {
    let mut r = Reader { buf, pos: 0 };
    let mut hash = None;
    let mut name = None;
    let mut tsize = None;
    let mut last = 0;
    while !r.done() {
        let tag = r.varint()?;
        let field = tag >> 3;
        if field <= last {
            return Err(DagPbError::Malformed(
                "PBLink fields out of order or repeated",
            ));
        }
        last = field;
        match tag {
            0x0a => {
                let b = r.bytes()?;
                hash = Some(cid_from_bytes(b).map_err(|e| DagPbError::BadLink {
                    index,
                    reason: e.to_string(),
                })?);
            }
            0x12 => {
                let b = r.bytes()?;
                name = Some(
                    String::from_utf8(b.to_vec())
                        .map_err(|_| DagPbError::Malformed("link name is not UTF-8"))?,
                );
            }
            0x18 => tsize = Some(r.varint()?),
            _ => return Err(DagPbError::Malformed("unknown field in PBLink")),
        }
    }
    let hash = hash.ok_or(DagPbError::BadLink {
        index,
        reason: "missing hash".into(),
    })?;
    Ok(PbLink { hash, name, tsize })
}

/// A bounds-checked protobuf reader shared by the dag-pb and UnixFS decoders.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DagPbError> {
        let (v, n) =
            varint::read(&self.buf[self.pos..]).map_err(|_| DagPbError::Malformed("bad varint"))?;
        self.pos += n;
        Ok(v)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DagPbError> {
        let len = self.varint()?;
        let rest = self.buf.len() - self.pos;
        if len > rest as u64 {
            return Err(DagPbError::Malformed("length runs past the end"));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{HashAlg, RAW};
    use proptest::prelude::*;

    fn link(name: Option<&str>, t: Option<u64>) -> PbLink {
        PbLink {
            hash: HashAlg::Sha2_256.cid(RAW, name.unwrap_or("x").as_bytes()),
            name: name.map(str::to_string),
            tsize: t,
        }
    }

    #[test]
    fn empty_directory_node_matches_reference() {
        // The empty UnixFS directory: Data = {Type: Directory} = 08 01.
        let n = PbNode {
            links: vec![],
            data: Some(vec![8, 1]),
        };
        assert_eq!(n.encode(), [0x0a, 0x02, 0x08, 0x01]);
        assert_eq!(
            HashAlg::Sha2_256
                .cid(crate::block::DAG_PB, &n.encode())
                .to_string(),
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(PbNode::decode(&[0x12, 0x05, 0x0a]).is_err());
        assert!(PbNode::decode(&[0x1a, 0x00]).is_err());
        assert!(PbNode::decode(&[0x12, 0x00]).is_err()); // link without hash
        assert!(PbNode::decode(&[0x0a, 0x00, 0x0a, 0x00]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(names in proptest::collection::vec(proptest::option::of("[a-z\u{e9}]{0,8}"), 0..5),
                     tsize in proptest::option::of(any::<u64>()),
                     data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
            let node = PbNode {
                links: names.iter().map(|n| link(n.as_deref(), tsize)).collect(),
                data,
            };
            prop_assert_eq!(PbNode::decode(&node.encode()).unwrap(), node);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = PbNode::decode(&bytes);
        }
    }
}
