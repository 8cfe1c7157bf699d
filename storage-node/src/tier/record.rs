//! The fast tier's records: a promotion (table `promotions`) and a copy kept for a peer
//! (table `cache_index`), byte by byte in docs/formats.md.

use cairn_core::cursor::Cursor;
use cairn_net::PeerId;

/// Record format version of `promoted` and `cache_index` values.
const RECORD_VERSION: u8 = 1;

/// A shard this node promoted (table `promoted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    /// The fast peer holding the copy.
    pub peer: PeerId,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Bytes.
    pub size: u64,
    /// Reads of the copy the peer reported so far.
    pub reads_seen: u32,
}

/// A promoted copy kept here for a peer (table `cache_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheEntry {
    /// The peer that promoted it.
    pub promoter: PeerId,
    /// When it arrived, ms since the Unix epoch.
    pub at_ms: u64,
    /// Bytes.
    pub size: u64,
}

/// A malformed stored record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {0} record")]
pub struct RecordError(&'static str);

fn put_peer(out: &mut Vec<u8>, p: &PeerId) {
    let b = p.to_bytes();
    out.push(b.len() as u8);
    out.extend_from_slice(&b);
}

/// A [`Cursor`] over one record; any refusal names the record.
struct Fields<'a>(Cursor<'a>, &'static str);

impl<'a> Fields<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Self {
        Fields(Cursor::new(b), what)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        self.0.take(n).map_err(|_| RecordError(self.1))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        self.0.u64_be().map_err(|_| RecordError(self.1))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        self.0.u32_be().map_err(|_| RecordError(self.1))
    }
    fn head(&mut self) -> Result<PeerId, RecordError> {
        if self.take(1)? != [RECORD_VERSION] {
            return Err(RecordError(self.1));
        }
        let n = self.take(1)?[0] as usize;
        let b = self.take(n)?;
        match PeerId::from_bytes(b) {
            // one encoding per record
            Ok(p) if p.to_bytes() == b => Ok(p),
            _ => Err(RecordError(self.1)),
        }
    }
    fn end(self) -> Result<(), RecordError> {
        self.0.end().map_err(|_| RecordError(self.1))
    }
}

impl Promotion {
    /// `version (1) | peer length (1) | peer id | at_ms (u64 BE) | size (u64 BE) |
    /// reads_seen (u32 BE)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![RECORD_VERSION];
        put_peer(&mut v, &self.peer);
        v.extend_from_slice(&self.at_ms.to_be_bytes());
        v.extend_from_slice(&self.size.to_be_bytes());
        v.extend_from_slice(&self.reads_seen.to_be_bytes());
        v
    }

    /// Decodes [`Promotion::encode`]'s bytes; anything else is an error.
    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        let mut c = Fields::new(b, "promotion");
        let p = Promotion {
            peer: c.head()?,
            at_ms: c.u64()?,
            size: c.u64()?,
            reads_seen: c.u32()?,
        };
        c.end()?;
        Ok(p)
    }
}

impl CacheEntry {
    /// `version (1) | peer length (1) | promoter peer id | at_ms (u64 BE) | size (u64 BE)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![RECORD_VERSION];
        put_peer(&mut v, &self.promoter);
        v.extend_from_slice(&self.at_ms.to_be_bytes());
        v.extend_from_slice(&self.size.to_be_bytes());
        v
    }

    /// Decodes [`CacheEntry::encode`]'s bytes; anything else is an error.
    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        let mut c = Fields::new(b, "cache");
        let e = CacheEntry {
            promoter: c.head()?,
            at_ms: c.u64()?,
            size: c.u64()?,
        };
        c.end()?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_every_malformation() {
        let peer = PeerId::random();
        let p = Promotion {
            peer,
            at_ms: 7,
            size: 1 << 20,
            reads_seen: 42,
        };
        let e = p.encode();
        assert_eq!(Promotion::decode(&e), Ok(p));
        for n in 0..e.len() {
            assert!(Promotion::decode(&e[..n]).is_err(), "prefix {n}");
        }
        let mut long = e.clone();
        long.push(0);
        assert!(Promotion::decode(&long).is_err());
        let mut v2 = e.clone();
        v2[0] = 2;
        assert!(Promotion::decode(&v2).is_err());
        let c = CacheEntry {
            promoter: peer,
            at_ms: u64::MAX,
            size: 0,
        };
        let e = c.encode();
        assert_eq!(CacheEntry::decode(&e), Ok(c));
        for n in 0..e.len() {
            assert!(CacheEntry::decode(&e[..n]).is_err(), "prefix {n}");
        }
        assert!(CacheEntry::decode(&[1, 3, 0, 0, 0]).is_err());
    }
}
