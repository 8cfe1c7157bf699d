//! CAR v1 (Content Addressable aRchive) encoding and a streaming, verifying reader.
//!
//! ```text
//! car     = varint(len(header)) header section*
//! header  = DAG-CBOR {"roots": [CID], "version": 1}
//! section = varint(len(cid) + len(block)) cid block
//! ```

use crate::block::{Block, VerifyError, MAX_BLOCK_SIZE};
use crate::cbor::{CborError, Value};
use crate::varint;
use cid::Cid;
use std::io::Read;
use thiserror::Error;

/// Largest header accepted (1 MiB: room for thousands of roots).
pub const MAX_HEADER_SIZE: usize = 1 << 20;

/// A CAR that cannot be read.
#[derive(Debug, Error)]
pub enum CarError {
    /// The underlying reader failed.
    #[error("reading CAR: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended inside a header or section.
    #[error("truncated CAR: {0}")]
    Truncated(&'static str),
    /// The header is not a CAR v1 header.
    #[error("bad CAR header: {0}")]
    Header(String),
    /// A section is malformed.
    #[error("bad CAR section at byte {offset}: {reason}")]
    Section {
        /// Offset of the section.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A block does not match its CID.
    #[error("CAR block failed verification: {0}")]
    Verify(#[from] VerifyError),
}

/// Encodes a CAR v1 header for `roots`.
pub fn header(roots: &[Cid]) -> Vec<u8> {
    let v = Value::Map(vec![
        (
            "roots".into(),
            Value::Array(roots.iter().map(|c| Value::Link(*c)).collect()),
        ),
        ("version".into(), Value::Int(1)),
    ]);
    let body = v.encode();
    let mut out = Vec::with_capacity(body.len() + 4);
    varint::write(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

/// Appends one block's section to `out`.
pub fn section(block: &Block, out: &mut Vec<u8>) {
    let cid = block.cid.to_bytes();
    varint::write(out, (cid.len() + block.data.len()) as u64);
    out.extend_from_slice(&cid);
    out.extend_from_slice(&block.data);
}

/// Streams a CAR: parses the header on creation, then yields verified blocks.
pub struct CarReader<R: Read> {
    r: R,
    roots: Vec<Cid>,
    offset: u64,
}

fn read_varint<R: Read>(r: &mut R, offset: &mut u64) -> Result<Option<u64>, CarError> {
    let mut buf = [0u8; 10];
    for i in 0..10 {
        let mut b = [0u8; 1];
        let n = r.read(&mut b)?;
        if n == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(CarError::Truncated("inside a length prefix"));
        }
        buf[i] = b[0];
        *offset += 1;
        if b[0] & 0x80 == 0 {
            return varint::read(&buf[..=i])
                .map(|(v, _)| Some(v))
                .map_err(|_| CarError::Truncated("bad varint"));
        }
    }
    Err(CarError::Truncated("varint longer than 10 bytes"))
}

fn read_exact<R: Read>(r: &mut R, len: usize, what: &'static str) -> Result<Vec<u8>, CarError> {
    let mut buf = Vec::with_capacity(len.min(1 << 20));
    r.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(CarError::Truncated(what));
    }
    Ok(buf)
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header.
    pub fn new(mut r: R) -> Result<Self, CarError> {
        let mut offset = 0;
        let len = read_varint(&mut r, &mut offset)?.ok_or(CarError::Truncated("empty file"))?;
        if len == 0 || len as usize > MAX_HEADER_SIZE {
            return Err(CarError::Header(format!(
                "header length {len} out of range"
            )));
        }
        let body = read_exact(&mut r, len as usize, "inside the header")?;
        offset += len;
        let v = Value::decode(&body).map_err(|e: CborError| CarError::Header(e.to_string()))?;
        match v.get("version") {
            Some(Value::Int(1)) => {}
            _ => return Err(CarError::Header("not a CAR v1 (version must be 1)".into())),
        }
        let roots = match v.get("roots") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x {
                    Value::Link(c) => Ok(*c),
                    _ => Err(CarError::Header("roots must be CIDs".into())),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(CarError::Header("missing roots".into())),
        };
        Ok(CarReader { r, roots, offset })
    }

    /// The roots named by the header.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next block, verified against its CID; `None` at a clean end of file.
    pub fn next_block(&mut self) -> Result<Option<Block>, CarError> {
        let start = self.offset;
        let Some(len) = read_varint(&mut self.r, &mut self.offset)? else {
            return Ok(None);
        };
        let bad = |reason: String| CarError::Section {
            offset: start,
            reason,
        };
        if len == 0 || len as usize > MAX_BLOCK_SIZE + 128 {
            return Err(bad(format!("section length {len} out of range")));
        }
        let body = read_exact(&mut self.r, len as usize, "inside a block section")?;
        self.offset += len;
        let mut cur = std::io::Cursor::new(body.as_slice());
        let cid = Cid::read_bytes(&mut cur).map_err(|e| bad(format!("invalid CID: {e}")))?;
        let at = cur.position() as usize;
        let data = bytes::Bytes::from(body).slice(at..);
        Block::verify(&cid, &data)?;
        Ok(Some(Block { cid, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{HashAlg, RAW};

    fn car(blocks: &[Block]) -> Vec<u8> {
        let mut out = header(&[blocks[0].cid]);
        for b in blocks {
            section(b, &mut out);
        }
        out
    }

    #[test]
    fn roundtrip_and_tamper() {
        let bs: Vec<Block> = (0..3u8)
            .map(|i| Block::new(HashAlg::Blake3, RAW, vec![i; 100]))
            .collect();
        let bytes = car(&bs);
        let mut r = CarReader::new(bytes.as_slice()).unwrap();
        assert_eq!(r.roots(), &[bs[0].cid]);
        let mut got = Vec::new();
        while let Some(b) = r.next_block().unwrap() {
            got.push(b);
        }
        assert_eq!(got, bs);

        // tampered byte in the last block
        let mut t = bytes.clone();
        let n = t.len();
        t[n - 1] ^= 0xff;
        let mut r = CarReader::new(t.as_slice()).unwrap();
        r.next_block().unwrap();
        r.next_block().unwrap();
        assert!(matches!(r.next_block(), Err(CarError::Verify(_))));

        // truncated anywhere: an error, never a panic, never a bad block
        for cut in 0..bytes.len() {
            let res = CarReader::new(&bytes[..cut]).and_then(|mut r| {
                let mut n = 0;
                while r.next_block()?.is_some() {
                    n += 1;
                }
                Ok(n)
            });
            if let Ok(n) = res {
                assert!(n < 3 || cut == bytes.len());
            }
        }
    }
}
