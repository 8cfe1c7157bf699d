//! DHT records Cairn stores in Kademlia, and their validation.
//!
//! Two kinds, both checked before a node stores or serves them (design §2):
//!
//! - **provider records**: key = the CID's bytes, provider = a node holding that block. The key
//!   must parse as a CID ([`validate_provider_key`]).
//! - **manifest records**: key = `/cairn/root/` + root CID bytes, value = varint length +
//!   manifest CID bytes + the manifest head block. The value is self-certifying: the block must
//!   hash to the manifest CID, decode as a manifest, and name the key's root
//!   ([`validate_manifest_record`]). A peer cannot point a root at someone else's manifest.

use bytes::Bytes;
use cairn_core::block::{cid_from_bytes, Block, DAG_CBOR};
use cairn_core::manifest::Manifest;
use cairn_core::{varint, Cid};
use thiserror::Error;

/// Prefix of manifest record keys.
pub const MANIFEST_KEY_PREFIX: &[u8] = b"/cairn/root/";
/// Largest record value accepted: a manifest head lists one page CID per 2,048 stripes, so
/// 64 KiB covers datasets of about 2 TiB at the default profile.
pub const MAX_RECORD_VALUE: usize = 64 << 10;

/// Why a record was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    /// The key is not what this kind of record uses.
    #[error("record key is not a Cairn key")]
    Key,
    /// The value is larger than [`MAX_RECORD_VALUE`].
    #[error("record value of {0} bytes is above the limit")]
    TooLarge(usize),
    /// The value is malformed.
    #[error("record value is malformed")]
    Malformed,
    /// The manifest bytes do not hash to the manifest CID.
    #[error("manifest block does not match its CID")]
    Hash,
    /// The manifest names another root.
    #[error("manifest names root {found}, the record key names {expected}")]
    WrongRoot {
        /// Root in the key.
        expected: Cid,
        /// Root in the manifest.
        found: Cid,
    },
}

/// Kademlia key of a root's manifest record.
pub fn manifest_key(root: &Cid) -> Vec<u8> {
    let mut k = MANIFEST_KEY_PREFIX.to_vec();
    k.extend_from_slice(&root.to_bytes());
    k
}

/// Record value for a manifest head block.
pub fn encode_manifest_record(manifest_cid: &Cid, head: &[u8]) -> Vec<u8> {
    let c = manifest_cid.to_bytes();
    let mut v = Vec::with_capacity(c.len() + head.len() + 2);
    varint::write(&mut v, c.len() as u64);
    v.extend_from_slice(&c);
    v.extend_from_slice(head);
    v
}

/// A validated manifest record.
#[derive(Debug, Clone)]
pub struct ManifestRecord {
    /// The root it is for.
    pub root: Cid,
    /// The manifest head block, verified against its CID.
    pub head: Block,
    /// The decoded head.
    pub manifest: Manifest,
}

/// Checks a manifest record completely; see the module docs.
pub fn validate_manifest_record(key: &[u8], value: &[u8]) -> Result<ManifestRecord, RecordError> {
    let root = key
        .strip_prefix(MANIFEST_KEY_PREFIX)
        .and_then(|c| cid_from_bytes(c).ok())
        .ok_or(RecordError::Key)?;
    if value.len() > MAX_RECORD_VALUE {
        return Err(RecordError::TooLarge(value.len()));
    }
    let (n, used) = varint::read(value).map_err(|_| RecordError::Malformed)?;
    if used != varint::len(n) {
        return Err(RecordError::Malformed);
    }
    let rest = &value[used..];
    let n = usize::try_from(n).map_err(|_| RecordError::Malformed)?;
    if n > rest.len() {
        return Err(RecordError::Malformed);
    }
    let mcid = cid_from_bytes(&rest[..n]).map_err(|_| RecordError::Malformed)?;
    if mcid.codec() != DAG_CBOR {
        return Err(RecordError::Malformed);
    }
    let head = &rest[n..];
    Block::verify(&mcid, head).map_err(|_| RecordError::Hash)?;
    let manifest = Manifest::decode(head).map_err(|_| RecordError::Malformed)?;
    if manifest.root != root {
        return Err(RecordError::WrongRoot {
            expected: root,
            found: manifest.root,
        });
    }
    Ok(ManifestRecord {
        root,
        head: Block {
            cid: mcid,
            data: Bytes::copy_from_slice(head),
        },
        manifest,
    })
}

/// Checks a provider record key: it must be a CID.
pub fn validate_provider_key(key: &[u8]) -> Result<Cid, RecordError> {
    cid_from_bytes(key).map_err(|_| RecordError::Key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::block::{HashAlg, RAW};
    use cairn_core::erasure::Stripe;
    use cairn_core::manifest;
    use cairn_core::profile::Profile;

    fn sample() -> (Cid, Block) {
        let root = HashAlg::Blake3.cid(RAW, b"root");
        let stripe = Stripe {
            data: vec![root],
            lens: vec![4],
            parity: vec![
                HashAlg::Blake3.cid(RAW, b"p1"),
                HashAlg::Blake3.cid(RAW, b"p2"),
            ],
        };
        let p = Profile::cairn_v1().with_stripe(1, 2).unwrap();
        let (_, blocks) = manifest::encode(&p, root, 4, 1, &[stripe]);
        (root, blocks.last().unwrap().clone())
    }

    #[test]
    fn valid_record_round_trips() {
        let (root, head) = sample();
        let v = encode_manifest_record(&head.cid, &head.data);
        let r = validate_manifest_record(&manifest_key(&root), &v).unwrap();
        assert_eq!(r.head.cid, head.cid);
        assert_eq!(r.manifest.root, root);
    }

    #[test]
    fn forged_records_are_rejected() {
        let (root, head) = sample();
        let other = HashAlg::Blake3.cid(RAW, b"other");
        let v = encode_manifest_record(&head.cid, &head.data);
        // pointing another root at this manifest
        assert!(matches!(
            validate_manifest_record(&manifest_key(&other), &v),
            Err(RecordError::WrongRoot { .. })
        ));
        // a flipped byte in the manifest
        let mut bad = v.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert_eq!(
            validate_manifest_record(&manifest_key(&root), &bad).unwrap_err(),
            RecordError::Hash
        );
        // wrong key kind, truncation, oversize
        assert_eq!(
            validate_manifest_record(&root.to_bytes(), &v).unwrap_err(),
            RecordError::Key
        );
        assert_eq!(
            validate_manifest_record(&manifest_key(&root), &v[..3]).unwrap_err(),
            RecordError::Malformed
        );
        let huge = vec![0u8; MAX_RECORD_VALUE + 1];
        assert_eq!(
            validate_manifest_record(&manifest_key(&root), &huge).unwrap_err(),
            RecordError::TooLarge(MAX_RECORD_VALUE + 1)
        );
        assert_eq!(
            validate_provider_key(b"nope").unwrap_err(),
            RecordError::Key
        );
        assert_eq!(validate_provider_key(&root.to_bytes()).unwrap(), root);
    }
}
