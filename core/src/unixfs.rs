//! The UnixFS v1 `Data` message carried in dag-pb nodes.
//!
//! Field order and presence follow `ipfs-unixfs` exactly: `Type`(1), `Data`(2, omitted when
//! empty), `filesize`(3, files only), `blocksizes`(4, repeated, not packed), `hashType`(5),
//! `fanout`(6). Cairn never writes `mode`(7) or `mtime`(8) but accepts them.

use crate::dagpb::{DagPbError, Reader};
use crate::varint;

/// UnixFS node types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Raw data (legacy leaves).
    Raw = 0,
    /// A directory.
    Directory = 1,
    /// A file (or a file's internal node).
    File = 2,
    /// Metadata (unused).
    Metadata = 3,
    /// A symbolic link; `data` is the target.
    Symlink = 4,
    /// A HAMT shard of a large directory.
    HamtShard = 5,
}

impl DataType {
    fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => DataType::Raw,
            1 => DataType::Directory,
            2 => DataType::File,
            3 => DataType::Metadata,
            4 => DataType::Symlink,
            5 => DataType::HamtShard,
            _ => return None,
        })
    }
}

/// A decoded UnixFS `Data` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFsData {
    /// Node type.
    pub kind: DataType,
    /// Inline data (file bytes, symlink target, HAMT bitfield).
    pub data: Vec<u8>,
    /// Total file size (files and raw only).
    pub filesize: Option<u64>,
    /// File bytes under each link.
    pub blocksizes: Vec<u64>,
    /// HAMT hash function (0x22 = murmur3-x64-64).
    pub hash_type: Option<u64>,
    /// HAMT fanout.
    pub fanout: Option<u64>,
}

impl UnixFsData {
    /// A data message of `kind` with every other field empty.
    pub fn new(kind: DataType) -> Self {
        UnixFsData {
            kind,
            data: Vec::new(),
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
        }
    }

    /// Encodes as `ipfs-unixfs` does.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.data.len() + self.blocksizes.len() * 4);
        out.push(0x08);
        varint::write(&mut out, self.kind as u64);
        if !self.data.is_empty() {
            out.push(0x12);
            varint::write(&mut out, self.data.len() as u64);
            out.extend_from_slice(&self.data);
        }
        if let Some(s) = self.filesize {
            out.push(0x18);
            varint::write(&mut out, s);
        }
        for b in &self.blocksizes {
            out.push(0x20);
            varint::write(&mut out, *b);
        }
        if let Some(h) = self.hash_type {
            out.push(0x28);
            varint::write(&mut out, h);
        }
        if let Some(f) = self.fanout {
            out.push(0x30);
            varint::write(&mut out, f);
        }
        out
    }

    /// Decodes a `Data` message.
    pub fn decode(buf: &[u8]) -> Result<Self, DagPbError> {
        let mut r = Reader { buf, pos: 0 };
        let mut kind = None;
        let mut d = UnixFsData::new(DataType::Raw);
        while !r.done() {
            let tag = r.varint()?;
            match tag {
                0x08 => {
                    kind = Some(
                        DataType::from_u64(r.varint()?)
                            .ok_or(DagPbError::Malformed("unknown UnixFS type"))?,
                    )
                }
                0x12 => d.data = r.bytes()?.to_vec(),
                0x18 => d.filesize = Some(r.varint()?),
                0x20 => d.blocksizes.push(r.varint()?),
                0x22 => {
                    // packed blocksizes
                    let packed = r.bytes()?;
                    let mut p = Reader {
                        buf: packed,
                        pos: 0,
                    };
                    while !p.done() {
                        d.blocksizes.push(p.varint()?);
                    }
                }
                0x28 => d.hash_type = Some(r.varint()?),
                0x30 => d.fanout = Some(r.varint()?),
                0x38 => {
                    r.varint()?;
                }
                0x42 => {
                    r.bytes()?;
                }
                _ => return Err(DagPbError::Malformed("unknown field in UnixFS Data")),
            }
        }
        d.kind = kind.ok_or(DagPbError::Malformed("UnixFS Data without Type"))?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn directory_is_two_bytes() {
        assert_eq!(UnixFsData::new(DataType::Directory).encode(), [8, 1]);
    }

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..16), fs in proptest::option::of(any::<u64>()),
                     bs in proptest::collection::vec(any::<u64>(), 0..6)) {
            let d = UnixFsData { kind: DataType::File, data, filesize: fs, blocksizes: bs, hash_type: None, fanout: None };
            prop_assert_eq!(UnixFsData::decode(&d.encode()).unwrap(), d);
        }
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = UnixFsData::decode(&bytes);
        }
    }
}
