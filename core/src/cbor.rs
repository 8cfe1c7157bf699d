//! A minimal, strict DAG-CBOR codec: unsigned integers, byte and text strings, arrays, maps with
//! text keys, and CID links (tag 42). Enough for the manifest and CAR headers, with limits on
//! size, item counts and nesting so that untrusted bytes cannot make it allocate or recurse
//! without bound.
//!
//! [`walk_path`] and [`links`] read any DAG-CBOR block (the whole IPLD data model) without
//! building values: the HTTP gateway paths through and walks DAG-CBOR documents with them.

use crate::block::cid_from_bytes;
use cid::Cid;
use thiserror::Error;

/// A DAG-CBOR value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Unsigned integer (major type 0).
    Int(u64),
    /// Byte string.
    Bytes(Vec<u8>),
    /// UTF-8 text string.
    Text(String),
    /// Array.
    Array(Vec<Value>),
    /// Map with text keys, in canonical order (shorter keys first, then bytewise).
    Map(Vec<(String, Value)>),
    /// A CID link (tag 42).
    Link(Cid),
}

/// Bytes that are not DAG-CBOR this codec accepts.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CborError {
    /// Ran out of input.
    #[error("truncated DAG-CBOR")]
    Truncated,
    /// A construct outside the supported subset.
    #[error("unsupported DAG-CBOR: {0}")]
    Unsupported(&'static str),
    /// Violates DAG-CBOR's canonical form or the limits.
    #[error("invalid DAG-CBOR: {0}")]
    Invalid(&'static str),
    /// Bytes left after the top-level value.
    #[error("trailing bytes after DAG-CBOR value")]
    Trailing,
}

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 16;

fn head(out: &mut Vec<u8>, major: u8, v: u64) {
    let m = major << 5;
    if v < 24 {
        out.push(m | v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[m | 24, v as u8]);
    } else if v <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

impl Value {
    /// Encodes canonically (map keys sorted as DAG-CBOR requires).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(v) => head(out, 0, *v),
            Value::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Text(s) => {
                head(out, 3, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Array(a) => {
                head(out, 4, a.len() as u64);
                for v in a {
                    v.encode_into(out);
                }
            }
            Value::Map(m) => {
                let mut sorted: Vec<&(String, Value)> = m.iter().collect();
                sorted.sort_by(|a, b| key_order(&a.0, &b.0));
                head(out, 5, m.len() as u64);
                for (k, v) in sorted {
                    head(out, 3, k.len() as u64);
                    out.extend_from_slice(k.as_bytes());
                    v.encode_into(out);
                }
            }
            Value::Link(c) => {
                out.extend_from_slice(&[0xd8, 42]);
                let bytes = c.to_bytes();
                head(out, 2, bytes.len() as u64 + 1);
                out.push(0);
                out.extend_from_slice(&bytes);
            }
        }
    }

    /// Decodes exactly one value spanning all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Value, CborError> {
        let mut d = Decoder { buf, pos: 0 };
        let v = d.value(0)?;
        if d.pos != buf.len() {
            return Err(CborError::Trailing);
        }
        Ok(v)
    }

    /// The value under `key` if this is a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        if self.buf.len() - self.pos < n {
            return Err(CborError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn head(&mut self) -> Result<(u8, u64), CborError> {
        let b = self.take(1)?[0];
        let major = b >> 5;
        let info = b & 0x1f;
        let v = match info {
            0..=23 => u64::from(info),
            24 => {
                let v = u64::from(self.take(1)?[0]);
                if v < 24 {
                    return Err(CborError::Invalid("non-minimal integer"));
                }
                v
            }
            25 => {
                let s = self.take(2)?;
                let v = u64::from(u16::from_be_bytes([s[0], s[1]]));
                if v <= 0xff {
                    return Err(CborError::Invalid("non-minimal integer"));
                }
                v
            }
            26 => {
                let s = self.take(4)?;
                let v = u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
                if v <= 0xffff {
                    return Err(CborError::Invalid("non-minimal integer"));
                }
                v
            }
            27 => {
                let s = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                let v = u64::from_be_bytes(a);
                if v <= 0xffff_ffff {
                    return Err(CborError::Invalid("non-minimal integer"));
                }
                v
            }
            _ => return Err(CborError::Unsupported("indefinite length or reserved info")),
        };
        Ok((major, v))
    }

    fn len(&mut self, v: u64) -> Result<usize, CborError> {
        // every item takes at least one byte, so a count above what is left is a lie
        let left = (self.buf.len() - self.pos) as u64;
        if v > left {
            return Err(CborError::Truncated);
        }
        Ok(v as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::Invalid("nested too deeply"));
        }
        let (major, v) = self.head()?;
        match major {
            0 => Ok(Value::Int(v)),
            2 => {
                let n = self.len(v)?;
                Ok(Value::Bytes(self.take(n)?.to_vec()))
            }
            3 => {
                let n = self.len(v)?;
                let s = self.take(n)?;
                Ok(Value::Text(
                    String::from_utf8(s.to_vec())
                        .map_err(|_| CborError::Invalid("text is not UTF-8"))?,
                ))
            }
            4 => {
                let n = self.len(v)?;
                let mut a = Vec::with_capacity(n);
                for _ in 0..n {
                    a.push(self.value(depth + 1)?);
                }
                Ok(Value::Array(a))
            }
            5 => {
                let n = self.len(v)?;
                let mut m: Vec<(String, Value)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = match self.value(depth + 1)? {
                        Value::Text(k) => k,
                        _ => return Err(CborError::Unsupported("non-text map key")),
                    };
                    if let Some((prev, _)) = m.last() {
                        if key_order(prev, &key) != std::cmp::Ordering::Less {
                            return Err(CborError::Invalid(
                                "map keys not in canonical order or repeated",
                            ));
                        }
                    }
                    let val = self.value(depth + 1)?;
                    m.push((key, val));
                }
                Ok(Value::Map(m))
            }
            6 => {
                if v != 42 {
                    return Err(CborError::Unsupported("tag other than 42"));
                }
                match self.value(depth + 1)? {
                    Value::Bytes(b) if b.first() == Some(&0) => {
                        Ok(Value::Link(cid_from_bytes(&b[1..]).map_err(|_| {
                            CborError::Invalid("tag 42 holds an invalid CID")
                        })?))
                    }
                    _ => Err(CborError::Invalid("tag 42 without 0x00-prefixed bytes")),
                }
            }
            1 => Err(CborError::Unsupported("negative integers")),
            _ => Err(CborError::Unsupported("floats, booleans and null")),
        }
    }
}

/// Where a path leads inside one DAG-CBOR block (see [`walk_path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The path reaches a link after using `used` segments (0 when the block is itself
    /// nothing but a link).
    Link {
        /// The link's target.
        cid: Cid,
        /// Segments used inside this block.
        used: usize,
    },
    /// Every segment was used and the path ends on a value that is not a link.
    Value,
    /// Segment `index` names nothing (no such map key or array index, or a scalar in the way).
    Missing {
        /// The segment.
        index: usize,
    },
}

/// Follows `segments` (map keys, array indices) from the top of a DAG-CBOR block until they
/// run out or reach a link. Unlike [`Value::decode`], this reads the whole IPLD data model
/// (negative integers, floats, booleans, null) but builds nothing: it skims, with the same
/// nesting limit, so it is as safe on untrusted bytes.
pub fn walk_path(buf: &[u8], segments: &[&str]) -> Result<Step, CborError> {
    let mut s = Skim { buf, pos: 0 };
    let mut used = 0;
    loop {
        let (major, v) = s.head()?;
        if major == 6 && v == 42 {
            return Ok(Step::Link {
                cid: s.link()?,
                used,
            });
        }
        let Some(seg) = segments.get(used) else {
            return Ok(Step::Value);
        };
        match major {
            5 => {
                let mut found = false;
                for _ in 0..s.count(v)? {
                    let (km, kv) = s.head()?;
                    let key = if km == 3 {
                        Some(s.take(s.count(kv)?)?)
                    } else {
                        None
                    };
                    if key.is_none() {
                        s.skip_body(km, kv, 1, &mut None)?;
                    }
                    if key == Some(seg.as_bytes()) {
                        found = true;
                        break;
                    }
                    s.skip(1, &mut None)?;
                }
                if !found {
                    return Ok(Step::Missing { index: used });
                }
            }
            4 => {
                let n = s.count(v)?;
                let Some(i) = seg.parse::<usize>().ok().filter(|i| *i < n) else {
                    return Ok(Step::Missing { index: used });
                };
                for _ in 0..i {
                    s.skip(1, &mut None)?;
                }
            }
            _ => return Ok(Step::Missing { index: used }),
        }
        used += 1;
        if used > MAX_DEPTH * 4 {
            return Err(CborError::Invalid("nested too deeply"));
        }
    }
}

/// Every link (tag 42) in a DAG-CBOR block, in document order. Reads the whole IPLD data
/// model, like [`walk_path`].
pub fn links(buf: &[u8]) -> Result<Vec<Cid>, CborError> {
    let mut s = Skim { buf, pos: 0 };
    let mut out = Some(Vec::new());
    s.skip(0, &mut out)?;
    if s.pos != buf.len() {
        return Err(CborError::Trailing);
    }
    Ok(out.unwrap_or_default())
}

/// A reader that steps over CBOR items without building values.
struct Skim<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Skim<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        if self.buf.len() - self.pos < n {
            return Err(CborError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Major type and argument (for major 7: the simple value, or the float's bits).
    fn head(&mut self) -> Result<(u8, u64), CborError> {
        let b = self.take(1)?[0];
        let (major, info) = (b >> 5, b & 0x1f);
        let n = match info {
            0..=23 => return Ok((major, u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err(CborError::Unsupported("indefinite length or reserved info")),
        };
        let v = self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        Ok((major, v))
    }

    /// A count of items or bytes, refused when more than the bytes left could hold.
    fn count(&self, v: u64) -> Result<usize, CborError> {
        if v > (self.buf.len() - self.pos) as u64 {
            return Err(CborError::Truncated);
        }
        Ok(v as usize)
    }

    /// The CID of a tag 42 whose head was just read.
    fn link(&mut self) -> Result<Cid, CborError> {
        let (major, v) = self.head()?;
        if major != 2 {
            return Err(CborError::Invalid("tag 42 without 0x00-prefixed bytes"));
        }
        let n = self.count(v)?;
        match self.take(n)? {
            [0, cid @ ..] => {
                cid_from_bytes(cid).map_err(|_| CborError::Invalid("tag 42 holds an invalid CID"))
            }
            _ => Err(CborError::Invalid("tag 42 without 0x00-prefixed bytes")),
        }
    }

    fn skip(&mut self, depth: usize, links: &mut Option<Vec<Cid>>) -> Result<(), CborError> {
        let (major, v) = self.head()?;
        self.skip_body(major, v, depth, links)
    }

    fn skip_body(
        &mut self,
        major: u8,
        v: u64,
        depth: usize,
        links: &mut Option<Vec<Cid>>,
    ) -> Result<(), CborError> {
        if depth > MAX_DEPTH * 4 {
            return Err(CborError::Invalid("nested too deeply"));
        }
        match major {
            0 | 1 | 7 => Ok(()),
            2 | 3 => {
                let n = self.count(v)?;
                self.take(n).map(|_| ())
            }
            4 | 5 => {
                let items = self
                    .count(v)?
                    .saturating_mul(if major == 5 { 2 } else { 1 });
                for _ in 0..items {
                    self.skip(depth + 1, links)?;
                }
                Ok(())
            }
            6 if v == 42 => {
                let cid = self.link()?;
                if let Some(l) = links {
                    l.push(cid);
                }
                Ok(())
            }
            _ => Err(CborError::Unsupported("tag other than 42")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{HashAlg, RAW};
    use proptest::prelude::*;

    #[test]
    fn canonical_key_order() {
        let v = Value::Map(vec![
            ("version".into(), Value::Int(1)),
            ("roots".into(), Value::Array(vec![])),
        ]);
        // {"roots": [], "version": 1}: "roots" (5) sorts before "version" (7)
        assert_eq!(
            v.encode(),
            [
                0xa2, 0x65, b'r', b'o', b'o', b't', b's', 0x80, 0x67, b'v', b'e', b'r', b's', b'i',
                b'o', b'n', 0x01
            ]
        );
    }

    #[test]
    fn rejects_non_canonical() {
        assert!(Value::decode(&[0x18, 0x05]).is_err()); // non-minimal int
        assert!(Value::decode(&[0x9f]).is_err()); // indefinite array
        assert!(Value::decode(&[0x01, 0x02]).is_err()); // trailing
        assert!(Value::decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        // huge count
    }

    #[test]
    fn paths_and_links_through_the_whole_data_model() {
        let a = HashAlg::Sha2_256.cid(RAW, b"a");
        let b = HashAlg::Sha2_256.cid(RAW, b"b");
        let link = |c: &Cid| {
            let mut v = vec![0xd8, 42];
            let bytes = c.to_bytes();
            head(&mut v, 2, bytes.len() as u64 + 1);
            v.push(0);
            v.extend_from_slice(&bytes);
            v
        };
        // {"cats": false, "n": -2, "f": 1.5, "files": {"single": a, "list": [null, b]}}
        let mut doc = vec![0xa4];
        for (k, val) in [
            ("cats", vec![0xf4]),
            ("n", vec![0x21]),
            ("f", vec![0xf9, 0x3e, 0x00]),
        ] {
            head(&mut doc, 3, k.len() as u64);
            doc.extend_from_slice(k.as_bytes());
            doc.extend_from_slice(&val);
        }
        doc.extend_from_slice(&[0x65]);
        doc.extend_from_slice(b"files");
        doc.push(0xa2);
        doc.extend_from_slice(&[0x66]);
        doc.extend_from_slice(b"single");
        doc.extend_from_slice(&link(&a));
        doc.extend_from_slice(&[0x64]);
        doc.extend_from_slice(b"list");
        doc.extend_from_slice(&[0x82, 0xf6]);
        doc.extend_from_slice(&link(&b));
        // the strict decoder refuses booleans; the skimmer reads them
        assert!(Value::decode(&doc).is_err());
        assert_eq!(links(&doc).unwrap(), vec![a, b]);
        for (path, want) in [
            (&["files", "single"][..], Step::Link { cid: a, used: 2 }),
            (&["files", "list", "1"][..], Step::Link { cid: b, used: 3 }),
            (
                &["files", "single", "deeper"][..],
                Step::Link { cid: a, used: 2 },
            ),
            (&["files"][..], Step::Value),
            (&[][..], Step::Value),
            (&["cats", "x"][..], Step::Missing { index: 1 }),
            (&["nope"][..], Step::Missing { index: 0 }),
            (&["files", "list", "2"][..], Step::Missing { index: 2 }),
            (&["files", "list", "x"][..], Step::Missing { index: 2 }),
        ] {
            assert_eq!(walk_path(&doc, path).unwrap(), want, "{path:?}");
        }
        assert_eq!(
            walk_path(&link(&a), &["x"]).unwrap(),
            Step::Link { cid: a, used: 0 }
        );
        // truncated anywhere: an error, never a panic
        for cut in 0..doc.len() {
            assert!(links(&doc[..cut]).is_err());
            let _ = walk_path(&doc[..cut], &["files", "list", "1"]);
        }
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let cid = any::<Vec<u8>>().prop_map(|b| Value::Link(HashAlg::Blake3.cid(RAW, &b)));
        let leaf = prop_oneof![
            any::<u64>().prop_map(Value::Int),
            any::<Vec<u8>>().prop_map(Value::Bytes),
            "[a-z]{0,6}".prop_map(Value::Text),
            cid,
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,5}", inner, 0..4).prop_map(|m| {
                    let mut v: Vec<(String, Value)> = m.into_iter().collect();
                    v.sort_by(|a, b| key_order(&a.0, &b.0));
                    Value::Map(v)
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn roundtrip(v in arb_value()) {
            prop_assert_eq!(Value::decode(&v.encode()).unwrap(), v);
        }
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Value::decode(&bytes);
            let _ = links(&bytes);
            let _ = walk_path(&bytes, &["a", "0"]);
        }
    }
}
