//! The wire's building blocks: its error type, a reader of varints and CIDs over a
//! [`Cursor`], and the matching writers.

use cairn_core::block::cid_from_bytes;
use cairn_core::cursor::{Cursor, CursorError};
use cairn_core::{varint, Cid};
use thiserror::Error;

/// Longest CID accepted on the wire (CIDv1 with a 64-byte digest is 68 bytes).
pub const MAX_CID_LEN: usize = 128;

/// A malformed or oversized message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The message ended early.
    #[error("message truncated")]
    Truncated,
    /// Bytes after the end of the message.
    #[error("{0} trailing bytes after message")]
    Trailing(usize),
    /// An unknown message tag.
    #[error("unknown message tag {0:#04x}")]
    Tag(u8),
    /// Bytes that are not a peer id.
    #[error("not a peer id")]
    PeerId,
    /// A count or length above its limit.
    #[error("{what} is {got}, above the limit {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The value on the wire.
        got: u64,
        /// The limit.
        limit: u64,
    },
    /// A CID that does not parse.
    #[error("invalid CID on the wire")]
    Cid,
    /// A varint with redundant bytes (every message has exactly one encoding).
    #[error("non-minimal varint")]
    NonMinimal,
    /// Error text that is not UTF-8.
    #[error("error text is not UTF-8")]
    Utf8,
    /// The stream failed.
    #[error("stream: {0}")]
    Io(String),
}

/// A cursor over a message being decoded: [`Cursor`] plus the wire's varints and CIDs.
pub(super) struct Reader<'a> {
    c: Cursor<'a>,
}

impl From<CursorError> for WireError {
    fn from(e: CursorError) -> Self {
        match e {
            CursorError::Short => WireError::Truncated,
            CursorError::Trailing(n) => WireError::Trailing(n),
        }
    }
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader {
            c: Cursor::new(buf),
        }
    }
    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.c.u8()?)
    }
    pub(super) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(self.c.u64_be()?)
    }
    pub(super) fn varint(&mut self, what: &'static str, limit: u64) -> Result<u64, WireError> {
        let (v, n) = varint::read(self.c.rest()).map_err(|_| WireError::Truncated)?;
        if n != varint::len(v) {
            return Err(WireError::NonMinimal);
        }
        self.c.take(n)?;
        if v > limit {
            return Err(WireError::TooLarge {
                what,
                got: v,
                limit,
            });
        }
        Ok(v)
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        Ok(self.c.take(n)?)
    }
    pub(super) fn cid(&mut self) -> Result<Cid, WireError> {
        let n = self.varint("CID length", MAX_CID_LEN as u64)? as usize;
        cid_from_bytes(self.take(n)?).map_err(|_| WireError::Cid)
    }
    pub(super) fn end(self) -> Result<(), WireError> {
        Ok(self.c.end()?)
    }
}

pub(super) fn put_cid(out: &mut Vec<u8>, cid: &Cid) {
    let b = cid.to_bytes();
    varint::write(out, b.len() as u64);
    out.extend_from_slice(&b);
}

pub(super) fn too_large(what: &'static str, got: usize, limit: usize) -> WireError {
    WireError::TooLarge {
        what,
        got: got as u64,
        limit: limit as u64,
    }
}
