//! Shared by every record: limits, errors, hex and field-element helpers, proof bytes, the bounded reader.

use ark_bn254::{Bn254, Fr};
use ark_ff::{BigInteger, PrimeField};
use ark_groth16::Proof;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use cairn_core::cursor::{Cursor, CursorError};
use thiserror::Error;

/// Format version of every record and message here (3: sealing format 2, sector records
/// reveal the seal proof's columns; 2 listed pieces and carried openings), except the log
/// entry's framing ([`LOG_VERSION`]).
pub const RECORD_VERSION: u8 = 3;
/// Format version of a log entry's framing (its body is a record of [`RECORD_VERSION`]; a
/// body of an older version stays in the chain but is no longer read).
pub const LOG_VERSION: u8 = 1;
/// Bytes of a compressed Groth16 proof on BN254.
pub const PROOF_LEN: usize = 128;
/// Most labels a sector record reveals (16 challenges of 16 layers need 55,552).
pub const MAX_REVEALED: usize = u16::MAX as usize;
/// Longest peer id accepted (an ed25519 peer id is 38 bytes).
pub const MAX_PEER_ID: usize = 64;
/// Longest signature accepted (ed25519: 64).
pub const MAX_SIGNATURE: usize = 128;
/// Most sectors one audit may cover.
pub const MAX_AUDIT_SECTORS: usize = 16;
/// Longest reason text in an audit record.
pub const MAX_REASON: usize = 256;
/// Longest log entry body: a sector record of the longest shape that
/// [`NetParams::check`](super::NetParams::check) allows
/// ([`SectorRecord::max_len`](super::SectorRecord::max_len)) fits, and so does one sector page
/// of [`MAX_SECTORS_PAGE_BYTES`](super::MAX_SECTORS_PAGE_BYTES) in an application message.
pub const MAX_ENTRY_BODY: usize = 11 << 10;
/// Seed of the development key setup (never for production: that needs a ceremony).
pub const DEV_SETUP_SEED: u64 = 0xCA12_0001;

/// Decoding and verification failures.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuditError {
    /// The bytes end early.
    #[error("record truncated")]
    Truncated,
    /// Bytes are left after the record.
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
    /// An unknown version.
    #[error("record version {0} is not supported")]
    Version(u8),
    /// A field is out of range or malformed.
    #[error("malformed record: {0}")]
    Field(&'static str),
    /// Sealing or proving failed.
    #[error("proving failed: {0}")]
    Prove(String),
}

/// The 32-byte node identifier sealed into `replica_id`: blake3 of the peer id bytes.
pub fn node_id(peer: &[u8]) -> [u8; 32] {
    *blake3::hash(peer).as_bytes()
}

/// Lower-case hex of bytes (how records appear in JSON).
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes from hex (either case), `None` if it is not an even number of hex digits (a sign
/// such as `+`, which `u8::from_str_radix` would take, is refused).
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A field element as 32 little-endian bytes.
pub fn fr_bytes(x: &Fr) -> [u8; 32] {
    let mut out = [0u8; 32];
    let b = x.into_bigint().to_bytes_le();
    out[..b.len().min(32)].copy_from_slice(&b[..b.len().min(32)]);
    out
}

/// A field element from 32 canonical little-endian bytes.
pub fn fr_from_bytes(b: &[u8; 32]) -> Result<Fr, AuditError> {
    let x = Fr::from_le_bytes_mod_order(b);
    if fr_bytes(&x) != *b {
        return Err(AuditError::Field("field element not canonical"));
    }
    Ok(x)
}

/// Encodes a proof (compressed, 128 bytes).
pub fn encode_proof(p: &Proof<Bn254>) -> [u8; PROOF_LEN] {
    let mut v = Vec::with_capacity(PROOF_LEN);
    // serializing a valid proof into a Vec cannot fail
    let _ = p.serialize_compressed(&mut v);
    let mut out = [0u8; PROOF_LEN];
    out[..v.len().min(PROOF_LEN)].copy_from_slice(&v[..v.len().min(PROOF_LEN)]);
    out
}

/// Decodes untrusted proof bytes (points checked to be on the curve and in the subgroup).
pub fn decode_proof(b: &[u8]) -> Result<Proof<Bn254>, AuditError> {
    if b.len() != PROOF_LEN {
        return Err(AuditError::Field("proof length"));
    }
    Proof::<Bn254>::deserialize_compressed(b).map_err(|_| AuditError::Field("proof points"))
}

/// The records' reader: [`Cursor`] (little-endian fields) plus field elements and
/// length-prefixed byte strings.
pub(super) struct Reader<'a> {
    c: Cursor<'a>,
}

impl From<CursorError> for AuditError {
    fn from(e: CursorError) -> Self {
        match e {
            CursorError::Short => AuditError::Truncated,
            CursorError::Trailing(n) => AuditError::Trailing(n),
        }
    }
}

impl<'a> Reader<'a> {
    /// A reader past the leading format version, which must be [`RECORD_VERSION`].
    pub(super) fn versioned(buf: &'a [u8]) -> Result<Self, AuditError> {
        Self::with_version(buf, RECORD_VERSION)
    }

    /// A reader past the leading format version, which must be `version`.
    pub(super) fn with_version(buf: &'a [u8], version: u8) -> Result<Self, AuditError> {
        let mut r = Reader {
            c: Cursor::new(buf),
        };
        let v = r.u8()?;
        if v != version {
            return Err(AuditError::Version(v));
        }
        Ok(r)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], AuditError> {
        Ok(self.c.take(n)?)
    }
    pub(super) fn u8(&mut self) -> Result<u8, AuditError> {
        Ok(self.c.u8()?)
    }
    pub(super) fn u64(&mut self) -> Result<u64, AuditError> {
        Ok(self.c.u64_le()?)
    }
    pub(super) fn u16(&mut self) -> Result<u16, AuditError> {
        Ok(self.c.u16_le()?)
    }
    pub(super) fn b32(&mut self) -> Result<[u8; 32], AuditError> {
        Ok(self.c.array()?)
    }
    pub(super) fn fr(&mut self) -> Result<Fr, AuditError> {
        fr_from_bytes(&self.b32()?)
    }
    pub(super) fn bytes(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], AuditError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(AuditError::Field(what));
        }
        self.take(n)
    }
    pub(super) fn end(self) -> Result<(), AuditError> {
        Ok(self.c.end()?)
    }
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}
