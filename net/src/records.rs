//! DHT records Cairn stores in Kademlia, and their validation.
//!
//! Two kinds, both checked before a node stores or serves them (design §2):
//!
//! - **provider records**: key = the CID's bytes, provider = a node holding that block. The key
//!   must parse as a CID ([`validate_provider_key`]).
//! - **manifest records**: key = `/cairn/root/` + root CID bytes, value = version `02`, the
//!   publishing node's peer id and its signature over [`signed_message`] (root and manifest
//!   CID), varint length + manifest CID bytes, then the manifest head block
//!   ([`encode_manifest_record`]). The value is self-certifying: the block must hash to the
//!   manifest CID, decode as a manifest, and name the key's root, and the signature must be the
//!   publisher's ([`validate_manifest_record`]). A peer cannot point a root at someone else's
//!   manifest, and whoever publishes a manifest that does not describe the root's DAG signed
//!   it: retrieval checks each candidate against the DAG and uses one that holds.

use crate::identity;
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

/// Distinct manifest records of one root a query collects at most.
pub const MAX_CANDIDATES: usize = 32;
/// Format version of manifest record values.
pub const RECORD_VERSION: u8 = 2;
/// Longest publisher peer id accepted (ed25519 ids are 38 bytes).
const MAX_PEER_ID: usize = 64;
/// Longest signature accepted (ed25519: 64 bytes).
const MAX_SIGNATURE: usize = 128;

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
    /// The publisher's signature does not verify.
    #[error("manifest record signature is not its publisher's")]
    Signature,
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

/// The bytes a publisher signs: a domain tag, the root CID and the manifest CID, each with a
/// varint length.
pub fn signed_message(root: &Cid, manifest_cid: &Cid) -> Vec<u8> {
    let mut m = b"cairn manifest record v1".to_vec();
    for c in [root.to_bytes(), manifest_cid.to_bytes()] {
        varint::write(&mut m, c.len() as u64);
        m.extend_from_slice(&c);
    }
    m
}

fn put16(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// Record value for `root`'s manifest head block, signed by `publisher`.
pub fn encode_manifest_record(
    root: &Cid,
    manifest_cid: &Cid,
    head: &[u8],
    publisher: &libp2p::identity::Keypair,
) -> Vec<u8> {
    let id = publisher.public().to_peer_id().to_bytes();
    let sig = identity::sign(publisher, &signed_message(root, manifest_cid));
    let c = manifest_cid.to_bytes();
    let mut v = Vec::with_capacity(c.len() + head.len() + id.len() + sig.len() + 8);
    v.push(RECORD_VERSION);
    put16(&mut v, &id);
    put16(&mut v, &sig);
    varint::write(&mut v, c.len() as u64);
    v.extend_from_slice(&c);
    v.extend_from_slice(head);
    v
}

/// Splits `n` bytes (`u16` length first, at most `max`) off the front of `v`.
fn take16<'a>(v: &mut &'a [u8], max: usize) -> Result<&'a [u8], RecordError> {
    if v.len() < 2 {
        return Err(RecordError::Malformed);
    }
    let n = u16::from_le_bytes([v[0], v[1]]) as usize;
    if n > max || v.len() < 2 + n {
        return Err(RecordError::Malformed);
    }
    let out = &v[2..2 + n];
    *v = &v[2 + n..];
    Ok(out)
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
    /// The publishing node's peer id bytes (its signature over [`signed_message`] verified).
    pub publisher: Vec<u8>,
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
    let Some((&RECORD_VERSION, mut value)) = value.split_first() else {
        return Err(RecordError::Malformed);
    };
    let publisher = take16(&mut value, MAX_PEER_ID)?.to_vec();
    let signature = take16(&mut value, MAX_SIGNATURE)?;
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
    if !identity::verify_signature(&publisher, &signed_message(&root, &mcid), signature) {
        return Err(RecordError::Signature);
    }
    Ok(ManifestRecord {
        publisher,
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
        let key = libp2p::identity::Keypair::generate_ed25519();
        let v = encode_manifest_record(&root, &head.cid, &head.data, &key);
        let r = validate_manifest_record(&manifest_key(&root), &v).unwrap();
        assert_eq!(r.head.cid, head.cid);
        assert_eq!(r.manifest.root, root);
        assert_eq!(r.publisher, key.public().to_peer_id().to_bytes());
    }

    #[test]
    fn a_record_must_carry_its_publishers_signature() {
        let (root, head) = sample();
        let key = libp2p::identity::Keypair::generate_ed25519();
        let other = libp2p::identity::Keypair::generate_ed25519();
        let good = encode_manifest_record(&root, &head.cid, &head.data, &key);
        // another node's signature under this publisher's id
        let forged = encode_manifest_record(&root, &head.cid, &head.data, &other);
        let id = key.public().to_peer_id().to_bytes();
        let mut swapped = good[..3].to_vec();
        swapped.extend_from_slice(&id);
        swapped.extend_from_slice(&forged[3 + id.len()..]);
        assert_eq!(
            validate_manifest_record(&manifest_key(&root), &swapped).unwrap_err(),
            RecordError::Signature
        );
        // a flipped signature byte
        let mut bad = good.clone();
        bad[3 + id.len() + 2] ^= 1;
        assert_eq!(
            validate_manifest_record(&manifest_key(&root), &bad).unwrap_err(),
            RecordError::Signature
        );
        // an old (version 1) or unknown version
        let mut old = good.clone();
        old[0] = 1;
        assert_eq!(
            validate_manifest_record(&manifest_key(&root), &old).unwrap_err(),
            RecordError::Malformed
        );
    }

    #[test]
    fn forged_records_are_rejected() {
        let (root, head) = sample();
        let other = HashAlg::Blake3.cid(RAW, b"other");
        let key = libp2p::identity::Keypair::generate_ed25519();
        let v = encode_manifest_record(&root, &head.cid, &head.data, &key);
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
