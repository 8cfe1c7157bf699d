//! The dataset manifest: one DAG-CBOR block naming the root, profile, k, m and the dataset's
//! stripes, which live in DAG-CBOR "page" blocks of at most [`STRIPES_PER_PAGE`] stripes each so
//! that no manifest block exceeds the block size limit however large the dataset.
//!
//! ```text
//! manifest = {"k": k, "m": m, "root": CID, "bytes": file bytes, "pages": [CID], "blocks": DAG
//!             blocks, "profile": name, "version": 1}
//! page     = {"stripes": [{"d": [data CIDs], "l": [true lengths], "p": [parity CIDs]}]}
//! ```
//! See `docs/formats.md` for the byte-level layout.

use crate::block::{Block, DAG_CBOR, MAX_BLOCK_SIZE};
use crate::cbor::{CborError, Value};
use crate::erasure::Stripe;
use crate::profile::Profile;
use cid::Cid;
use thiserror::Error;

/// Stripes per page block: with k + m <= 16 shards a page stays well under 1 MiB.
pub const STRIPES_PER_PAGE: usize = 2048;
/// Manifest format version.
pub const VERSION: u64 = 1;

/// The head block of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Root CID of the dataset (file or directory).
    pub root: Cid,
    /// Import profile name.
    pub profile: String,
    /// Data shards per stripe.
    pub k: u32,
    /// Parity shards per stripe.
    pub m: u32,
    /// Total file bytes in the dataset.
    pub bytes: u64,
    /// Number of DAG blocks (data shards) in the dataset.
    pub blocks: u64,
    /// Page block CIDs, in order.
    pub pages: Vec<Cid>,
}

/// A manifest or page that cannot be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not DAG-CBOR.
    #[error("manifest is not valid DAG-CBOR: {0}")]
    Cbor(#[from] CborError),
    /// A field missing or of the wrong type.
    #[error("manifest field {0:?} is missing or malformed")]
    Field(&'static str),
    /// An unknown version.
    #[error("manifest version {0} is not supported (this build reads version 1)")]
    Version(u64),
    /// Bigger than the block limit.
    #[error("manifest block of {0} bytes exceeds the block size limit")]
    TooLarge(usize),
}

fn links(v: &[Cid]) -> Value {
    Value::Array(v.iter().map(|c| Value::Link(*c)).collect())
}

fn get_links(v: Option<&Value>, f: &'static str) -> Result<Vec<Cid>, ManifestError> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::Link(c) => Ok(*c),
                _ => Err(ManifestError::Field(f)),
            })
            .collect(),
        _ => Err(ManifestError::Field(f)),
    }
}

fn get_int(v: &Value, f: &'static str) -> Result<u64, ManifestError> {
    match v.get(f) {
        Some(Value::Int(i)) => Ok(*i),
        _ => Err(ManifestError::Field(f)),
    }
}

fn decode_value(buf: &[u8]) -> Result<Value, ManifestError> {
    if buf.len() > MAX_BLOCK_SIZE {
        return Err(ManifestError::TooLarge(buf.len()));
    }
    Ok(Value::decode(buf)?)
}

/// Encodes a dataset's stripes as page blocks plus the manifest head block (returned last).
pub fn encode(
    profile: &Profile,
    root: Cid,
    bytes: u64,
    blocks: u64,
    stripes: &[Stripe],
) -> (Manifest, Vec<Block>) {
    let hash = profile.hash;
    let mut out = Vec::new();
    for page in stripes.chunks(STRIPES_PER_PAGE) {
        let v = Value::Map(vec![(
            "stripes".into(),
            Value::Array(
                page.iter()
                    .map(|s| {
                        Value::Map(vec![
                            ("d".into(), links(&s.data)),
                            (
                                "l".into(),
                                Value::Array(s.lens.iter().map(|l| Value::Int(*l)).collect()),
                            ),
                            ("p".into(), links(&s.parity)),
                        ])
                    })
                    .collect(),
            ),
        )]);
        out.push(Block::new(hash, DAG_CBOR, v.encode()));
    }
    let manifest = Manifest {
        root,
        profile: profile.name.to_string(),
        k: profile.k as u32,
        m: profile.m as u32,
        bytes,
        blocks,
        pages: out.iter().map(|b| b.cid).collect(),
    };
    out.push(Block::new(hash, DAG_CBOR, manifest.to_value().encode()));
    (manifest, out)
}

impl Manifest {
    fn to_value(&self) -> Value {
        Value::Map(vec![
            ("k".into(), Value::Int(self.k.into())),
            ("m".into(), Value::Int(self.m.into())),
            ("root".into(), Value::Link(self.root)),
            ("bytes".into(), Value::Int(self.bytes)),
            ("pages".into(), links(&self.pages)),
            ("blocks".into(), Value::Int(self.blocks)),
            ("profile".into(), Value::Text(self.profile.clone())),
            ("version".into(), Value::Int(VERSION)),
        ])
    }

    /// Decodes a manifest head block.
    pub fn decode(buf: &[u8]) -> Result<Self, ManifestError> {
        let v = decode_value(buf)?;
        let version = get_int(&v, "version")?;
        if version != VERSION {
            return Err(ManifestError::Version(version));
        }
        let small = |f| -> Result<u32, ManifestError> {
            let x = get_int(&v, f)?;
            if x == 0 || x > 256 {
                return Err(ManifestError::Field(f));
            }
            Ok(x as u32)
        };
        let (k, m) = (small("k")?, small("m")?);
        if k + m > 256 {
            return Err(ManifestError::Field("k"));
        }
        Ok(Manifest {
            root: match v.get("root") {
                Some(Value::Link(c)) => *c,
                _ => return Err(ManifestError::Field("root")),
            },
            profile: match v.get("profile") {
                Some(Value::Text(t)) if t.len() <= 64 => t.clone(),
                _ => return Err(ManifestError::Field("profile")),
            },
            k,
            m,
            bytes: get_int(&v, "bytes")?,
            blocks: get_int(&v, "blocks")?,
            pages: get_links(v.get("pages"), "pages")?,
        })
    }
}

/// Decodes a page block into its stripes. Shape only: check each stripe against the coder.
pub fn decode_page(buf: &[u8]) -> Result<Vec<Stripe>, ManifestError> {
    let v = decode_value(buf)?;
    let Some(Value::Array(items)) = v.get("stripes") else {
        return Err(ManifestError::Field("stripes"));
    };
    if items.len() > STRIPES_PER_PAGE {
        return Err(ManifestError::Field("stripes"));
    }
    items
        .iter()
        .map(|s| {
            let lens = match s.get("l") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| match x {
                        Value::Int(i) => Ok(*i),
                        _ => Err(ManifestError::Field("l")),
                    })
                    .collect::<Result<Vec<u64>, _>>()?,
                _ => return Err(ManifestError::Field("l")),
            };
            Ok(Stripe {
                data: get_links(s.get("d"), "d")?,
                lens,
                parity: get_links(s.get("p"), "p")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{HashAlg, RAW};
    use proptest::prelude::*;

    fn cid(i: u32) -> Cid {
        HashAlg::Blake3.cid(RAW, &i.to_le_bytes())
    }

    #[test]
    fn roundtrip_across_pages() {
        let stripes: Vec<Stripe> = (0..(STRIPES_PER_PAGE as u32 + 3))
            .map(|i| Stripe {
                data: vec![cid(i), cid(i + 1)],
                lens: vec![5, 7],
                parity: vec![cid(i + 2), cid(i + 3)],
            })
            .collect();
        let (m, blocks) = encode(&Profile::cairn_v1(), cid(9), 99, 7, &stripes);
        assert_eq!(blocks.len(), 3);
        assert_eq!(Manifest::decode(&blocks[2].data).unwrap(), m);
        let mut back = decode_page(&blocks[0].data).unwrap();
        back.extend(decode_page(&blocks[1].data).unwrap());
        assert_eq!(back, stripes);
        assert!(blocks.iter().all(|b| b.data.len() < MAX_BLOCK_SIZE));
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert!(Manifest::decode(&Value::Int(1).encode()).is_err());
        let v = Value::Map(vec![("version".into(), Value::Int(2))]);
        assert_eq!(
            Manifest::decode(&v.encode()),
            Err(ManifestError::Version(2))
        );
        assert!(decode_page(&Value::Map(vec![]).encode()).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Manifest::decode(&bytes);
            let _ = decode_page(&bytes);
        }
    }
}
