//! A minimal, strict DAG-CBOR codec: unsigned integers, byte and text strings, arrays, maps with
//! text keys, and CID links (tag 42). Enough for the manifest and CAR headers, with limits on
//! size, item counts and nesting so that untrusted bytes cannot make it allocate or recurse
//! without bound.

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
        }
    }
}
