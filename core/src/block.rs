//! Blocks, hash functions and CIDs.

use bytes::Bytes;
use cid::Cid;
use multihash::Multihash;
use sha2::Digest;
use thiserror::Error;

/// Multicodec code of raw leaves.
pub const RAW: u64 = 0x55;
/// Multicodec code of dag-pb nodes.
pub const DAG_PB: u64 = 0x70;
/// Multicodec code of DAG-CBOR (the manifest).
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of blake3 (32-byte digest).
pub const BLAKE3: u64 = 0x1e;

/// Largest block Cairn stores, reads or accepts from anyone (4 MiB): four times the largest
/// chunk any profile makes, which leaves room for big directory and manifest nodes while
/// bounding what a single untrusted block can make us allocate.
pub const MAX_BLOCK_SIZE: usize = 4 << 20;

/// The hash function of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// sha2-256 (multihash 0x12), the IPFS default.
    Sha2_256,
    /// blake3 with a 32-byte digest (multihash 0x1e), Cairn's default.
    Blake3,
}

impl HashAlg {
    /// The multihash code.
    pub fn code(self) -> u64 {
        match self {
            HashAlg::Sha2_256 => SHA2_256,
            HashAlg::Blake3 => BLAKE3,
        }
    }

    /// The hash function with this multihash code, if Cairn supports it.
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            SHA2_256 => Some(HashAlg::Sha2_256),
            BLAKE3 => Some(HashAlg::Blake3),
            _ => None,
        }
    }

    /// 32-byte digest of `data`.
    pub fn digest(self, data: &[u8]) -> [u8; 32] {
        match self {
            HashAlg::Sha2_256 => sha2::Sha256::digest(data).into(),
            HashAlg::Blake3 => *blake3::hash(data).as_bytes(),
        }
    }

    /// CIDv1 of `data` under `codec`.
    pub fn cid(self, codec: u64, data: &[u8]) -> Cid {
        self.cid_of_digest(codec, &self.digest(data))
    }

    /// CIDv1 under `codec` of bytes whose digest is `digest`.
    fn cid_of_digest(self, codec: u64, digest: &[u8; 32]) -> Cid {
        // A 32-byte digest always fits a 64-byte multihash.
        let mh = Multihash::<64>::wrap(self.code(), digest).unwrap_or_default();
        Cid::new_v1(codec, mh)
    }

    /// An incremental hasher: bytes fed in pieces give the same CID as [`HashAlg::cid`] of all
    /// of them.
    pub fn hasher(self) -> Hasher {
        match self {
            HashAlg::Sha2_256 => Hasher::Sha2_256(sha2::Sha256::new()),
            HashAlg::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
        }
    }
}

/// An incremental [`HashAlg`] (see [`HashAlg::hasher`]). blake3 keeps its full SIMD speed
/// when every piece but the last is a whole power-of-two number of 1 KiB chunks at an offset
/// that is a multiple of it.
#[derive(Clone)]
pub enum Hasher {
    /// sha2-256.
    Sha2_256(sha2::Sha256),
    /// blake3.
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha2_256(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    /// The CIDv1 under `codec` of everything fed.
    pub fn cid(self, codec: u64) -> Cid {
        match self {
            Hasher::Sha2_256(h) => HashAlg::Sha2_256.cid_of_digest(codec, &h.finalize().into()),
            Hasher::Blake3(h) => HashAlg::Blake3.cid_of_digest(codec, h.finalize().as_bytes()),
        }
    }
}

/// A CID that could not be parsed or is not one Cairn accepts.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CidError {
    /// Not a valid CID string or byte string.
    #[error("invalid CID {input:?}: {reason}")]
    Invalid {
        /// What was given (truncated to 100 characters).
        input: String,
        /// What the parser said.
        reason: String,
    },
    /// A valid CID whose hash function Cairn cannot verify.
    #[error(
        "CID {0} uses hash function 0x{1:x}, which Cairn does not verify (sha2-256 or blake3 only)"
    )]
    UnsupportedHash(Cid, u64),
}

/// Parses a CID string (CIDv1 multibase, or a CIDv0 `Qm...`) and checks that Cairn can verify it.
pub fn parse_cid(s: &str) -> Result<Cid, CidError> {
    let cid = Cid::try_from(s).map_err(|e| CidError::Invalid {
        input: s.chars().take(100).collect(),
        reason: e.to_string(),
    })?;
    check_cid(cid)
}

/// Parses a binary CID that must span all of `bytes`.
pub fn cid_from_bytes(bytes: &[u8]) -> Result<Cid, CidError> {
    let cid = Cid::try_from(bytes).map_err(|e| CidError::Invalid {
        input: format!("{} bytes", bytes.len()),
        reason: e.to_string(),
    })?;
    // the cid crate stops at the end of the digest; anything after it is not part of a CID
    if cid.encoded_len() != bytes.len() {
        return Err(CidError::Invalid {
            input: format!("{} bytes", bytes.len()),
            reason: format!("{} bytes after the CID", bytes.len() - cid.encoded_len()),
        });
    }
    check_cid(cid)
}

fn check_cid(cid: Cid) -> Result<Cid, CidError> {
    let code = cid.hash().code();
    if HashAlg::from_code(code).is_none() || cid.hash().size() != 32 {
        return Err(CidError::UnsupportedHash(cid, code));
    }
    Ok(cid)
}

#[cfg(test)]
mod cid_bytes_tests {
    use super::*;

    #[test]
    fn trailing_bytes_after_a_binary_cid_are_rejected() {
        // regression (fuzz wire_decode): 16 extra bytes were silently ignored
        let c = HashAlg::Blake3.cid(RAW, b"x");
        let mut b = c.to_bytes();
        assert_eq!(cid_from_bytes(&b).unwrap(), c);
        b.extend_from_slice(&[0xe5; 16]);
        assert!(cid_from_bytes(&b).is_err());
    }
}

/// A block: bytes and the CID that names them.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's CID.
    pub cid: Cid,
    /// The block's bytes (reference-counted: slicing a chunk out of a buffer copies nothing).
    pub data: Bytes,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({}, {} bytes)", self.cid, self.data.len())
    }
}

/// A block whose bytes do not hash to its CID.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The hash does not match.
    #[error("block {0} does not match its CID (corrupted or forged bytes)")]
    Mismatch(Cid),
    /// The CID's hash function is not one Cairn verifies.
    #[error("block {0}: unsupported hash function 0x{1:x}")]
    UnsupportedHash(Cid, u64),
    /// The block is larger than [`MAX_BLOCK_SIZE`].
    #[error("block {0} is {1} bytes, above the {MAX_BLOCK_SIZE}-byte limit")]
    TooLarge(Cid, usize),
}

impl Block {
    /// Makes a block, computing its CID.
    pub fn new(hash: HashAlg, codec: u64, data: impl Into<Bytes>) -> Self {
        let data = data.into();
        let cid = hash.cid(codec, &data);
        Block { cid, data }
    }

    /// `N` blocks of one hash and codec. With sha2-256, messages of one length are hashed
    /// together on CPUs with SHA-NI (`N` streams of rounds in flight; `sha_ni`), else one by
    /// one.
    pub fn many<const N: usize>(hash: HashAlg, codec: u64, data: [Bytes; N]) -> [Block; N] {
        if hash == HashAlg::Sha2_256 {
            if let Some(d) = crate::sha_ni::sha256_lanes::<N>(std::array::from_fn(|i| &data[i][..]))
            {
                let mut i = 0;
                return data.map(|data| {
                    let cid = hash.cid_of_digest(codec, &d[i]);
                    i += 1;
                    Block { cid, data }
                });
            }
        }
        data.map(|d| Block::new(hash, codec, d))
    }

    /// Checks that `data` hashes to `cid`.
    pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), VerifyError> {
        if data.len() > MAX_BLOCK_SIZE {
            return Err(VerifyError::TooLarge(*cid, data.len()));
        }
        let code = cid.hash().code();
        let alg = HashAlg::from_code(code).ok_or(VerifyError::UnsupportedHash(*cid, code))?;
        if cid.hash().digest() != alg.digest(data) {
            return Err(VerifyError::Mismatch(*cid));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubo_blake3_vector_for_foo() {
        // kubo: `echo foo | ipfs add --cid-version=1 --raw-leaves --hash=blake3`
        let cid = HashAlg::Blake3.cid(RAW, b"foo\n");
        assert_eq!(
            cid.to_string(),
            "bafkr4icj3sdq34o6p7lapfgoxtset5om3lsxll72uz5cjnrkzmb6aoo3si"
        );
    }

    #[test]
    fn empty_raw_sha256() {
        assert_eq!(
            HashAlg::Sha2_256.cid(RAW, b"").to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
    }

    #[test]
    fn bad_cid_strings_are_errors() {
        for s in [
            "",
            "b",
            "bafy",
            "Qm",
            "zzzz",
            "bafkr4icj3sdq34o6p7lapfgoxtset5om3lsxll72uz5cjnrkzmb6aoo3s\u{e9}",
        ] {
            assert!(parse_cid(s).is_err(), "{s}");
        }
        // identity-hashed CIDs are valid CIDs but not verifiable here
        let id = Cid::new_v1(RAW, Multihash::<64>::wrap(0, b"hi").unwrap());
        assert!(matches!(
            parse_cid(&id.to_string()),
            Err(CidError::UnsupportedHash(..))
        ));
    }

    #[test]
    fn verify_detects_mismatch() {
        let b = Block::new(HashAlg::Blake3, RAW, b"abc".to_vec());
        assert!(Block::verify(&b.cid, b"abc").is_ok());
        assert_eq!(
            Block::verify(&b.cid, b"abd"),
            Err(VerifyError::Mismatch(b.cid))
        );
    }
}
