//! libCacheSim `oracleGeneral` traces, plain or zstd-compressed, read as a stream.
//!
//! Each record is 24 bytes, little-endian: `clock_time: u32`, `obj_id: u64`, `obj_size: u32`,
//! `next_access_vtime: i64` (1-based index of the next request for the same object, -1 if
//! none). Only the offline optimum may look at `next`.

use std::io::{BufReader, Read};
use thiserror::Error;

/// Bytes per record.
pub const RECORD: usize = 24;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// One request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Seconds since the trace start.
    pub time: u32,
    /// Object (shard) id.
    pub id: u64,
    /// Object size in bytes.
    pub size: u32,
    /// 1-based index of the next request for this object, -1 if never (oracle only).
    pub next: i64,
}

impl Request {
    /// Decodes one record.
    pub fn decode(b: &[u8; RECORD]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Request {
            time: u32_at(0),
            id: u64_at(4),
            size: u32_at(12),
            next: u64_at(16) as i64,
        }
    }
}

/// A trace that cannot be read.
#[derive(Debug, Error)]
pub enum TraceError {
    /// The underlying reader or the zstd decoder failed (a corrupt or truncated zstd frame
    /// shows up here).
    #[error("reading trace: {0}")]
    Io(#[from] std::io::Error),
    /// The trace ends inside a record.
    #[error("trace truncated: {bytes} stray bytes after request {index}")]
    Truncated {
        /// Requests read whole.
        index: u64,
        /// Bytes of the partial record.
        bytes: usize,
    },
}

/// Streams requests from a trace in constant memory.
pub struct TraceReader {
    inner: Box<dyn Read>,
    index: u64,
}

impl TraceReader {
    /// Wraps a reader, detecting zstd compression by its magic number.
    pub fn new(r: impl Read + 'static) -> Result<Self, TraceError> {
        let mut r = BufReader::with_capacity(1 << 16, r);
        let mut magic = [0u8; 4];
        let n = read_full(&mut r, &mut magic)?;
        let head = std::io::Cursor::new(magic[..n].to_vec());
        let inner: Box<dyn Read> = if n == 4 && magic == ZSTD_MAGIC {
            Box::new(BufReader::with_capacity(
                1 << 16,
                zstd::stream::read::Decoder::new(head.chain(r))?,
            ))
        } else {
            Box::new(head.chain(r))
        };
        Ok(TraceReader { inner, index: 0 })
    }

    /// The next request, `None` at the end.
    pub fn next_request(&mut self) -> Result<Option<Request>, TraceError> {
        let mut b = [0u8; RECORD];
        let n = read_full(&mut self.inner, &mut b)?;
        match n {
            0 => Ok(None),
            RECORD => {
                self.index += 1;
                Ok(Some(Request::decode(&b)))
            }
            bytes => Err(TraceError::Truncated {
                index: self.index,
                bytes,
            }),
        }
    }
}

impl Iterator for TraceReader {
    type Item = Result<Request, TraceError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_request().transpose()
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Encodes requests as an oracleGeneral trace (tests and synthetic workloads).
pub fn encode(reqs: &[Request]) -> Vec<u8> {
    let mut out = Vec::with_capacity(reqs.len() * RECORD);
    for r in reqs {
        out.extend_from_slice(&r.time.to_le_bytes());
        out.extend_from_slice(&r.id.to_le_bytes());
        out.extend_from_slice(&r.size.to_le_bytes());
        out.extend_from_slice(&r.next.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reqs() -> Vec<Request> {
        (0..100u64)
            .map(|i| Request {
                time: i as u32,
                id: i % 7,
                size: 100 + i as u32,
                next: if i < 93 { i as i64 + 8 } else { -1 },
            })
            .collect()
    }

    #[test]
    fn plain_and_zstd_roundtrip() {
        let plain = encode(&reqs());
        let got: Vec<Request> = TraceReader::new(std::io::Cursor::new(plain.clone()))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, reqs());
        let z = zstd::encode_all(plain.as_slice(), 3).unwrap();
        let got: Vec<Request> = TraceReader::new(std::io::Cursor::new(z))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, reqs());
    }

    #[test]
    fn truncated_and_corrupt_traces_are_clear_errors() {
        let plain = encode(&reqs());
        let cut = &plain[..plain.len() - 5];
        let res: Result<Vec<Request>, TraceError> =
            TraceReader::new(std::io::Cursor::new(cut.to_vec()))
                .unwrap()
                .collect();
        let e = res.unwrap_err();
        assert!(
            matches!(
                e,
                TraceError::Truncated {
                    index: 99,
                    bytes: 19
                }
            ),
            "{e}"
        );
        let mut z = zstd::encode_all(plain.as_slice(), 3).unwrap();
        let mid = z.len() / 2;
        z[mid] ^= 0xff;
        z.truncate(z.len() - 3);
        let res: Result<Vec<Request>, TraceError> =
            TraceReader::new(std::io::Cursor::new(z)).unwrap().collect();
        assert!(res.is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = TraceReader::new(std::io::Cursor::new(bytes)) {
                for x in r.take(100) { let _ = x; }
            }
        }
    }
}
