//! What storage nodes exchange and record about proofs (design §3, "Audits"), pure compute:
//!
//! - [`NetParams`]: the sector shape and proof parameters of a network, with its development
//!   keys ([`NetParams::seal_keys`], [`NetParams::post_keys`]);
//! - [`SectorRecord`]: a prover's public commitment to one sealed sector, with its seal proof;
//! - [`AuditRecord`]: an auditor's signed verdict on one prover's window;
//! - [`LogEntry`]: one link of the hash-chained audit log, and [`verify_log`], which re-checks a
//!   whole log end to end (chain, signatures, seal proofs, window proofs).
//!
//! Signatures are made and checked by the caller (the network crate owns identities); this
//! module only fixes the bytes that are signed. Every decoder takes untrusted bytes and returns
//! [`AuditError`] on anything malformed, never panics. The byte layouts are in `docs/formats.md`.

use crate::keys::{load_or_setup, KeyError, Keys};
use crate::porep::{self, SealCircuit};
use crate::post::{self, PostCircuit, Shape};
use crate::sdr::{self, Sealed, SectorParams};
use ark_bn254::{Bn254, Fr};
use ark_ff::{BigInteger, PrimeField};
use ark_groth16::{Groth16, Proof};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use ark_snark::SNARK;
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

/// Format version of every record here.
pub const RECORD_VERSION: u8 = 1;
/// Bytes of a compressed Groth16 proof on BN254.
pub const PROOF_LEN: usize = 128;
/// Longest peer id accepted (an ed25519 peer id is 38 bytes).
pub const MAX_PEER_ID: usize = 64;
/// Longest signature accepted (ed25519: 64).
pub const MAX_SIGNATURE: usize = 128;
/// Most sectors one audit may cover.
pub const MAX_AUDIT_SECTORS: usize = 16;
/// Longest reason text in an audit record.
pub const MAX_REASON: usize = 256;
/// Longest log entry body.
pub const MAX_ENTRY_BODY: usize = 4096;
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

/// The graph seed of format version 1 (fixed: every node must label on the same graph).
pub fn graph_seed() -> [u8; 32] {
    *blake3::hash(b"cairn sdr-lite graph v1").as_bytes()
}

/// A network's proof parameters: every node of a network must use the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetParams {
    /// Sector size in bytes (a power of two, at least 64).
    pub sector_size: usize,
    /// Labelling layers.
    pub layers: usize,
    /// PoSt challenges per sector.
    pub challenges: usize,
    /// Sectors per PoSt proof.
    pub batch: usize,
    /// Seal (PoRep) challenges per proof.
    pub seal_challenges: usize,
}

impl NetParams {
    /// Checks the shape.
    pub fn check(&self) -> Result<(), AuditError> {
        if self.sector_size < 64
            || !self.sector_size.is_power_of_two()
            || self.sector_size > 1 << 30
        {
            return Err(AuditError::Field("sector size"));
        }
        if self.layers == 0 || self.layers > 16 {
            return Err(AuditError::Field("layers"));
        }
        if self.challenges == 0 || self.challenges > 64 {
            return Err(AuditError::Field("challenges"));
        }
        if self.batch == 0 || self.batch > MAX_AUDIT_SECTORS {
            return Err(AuditError::Field("batch"));
        }
        if self.seal_challenges == 0 || self.seal_challenges > 16 {
            return Err(AuditError::Field("seal challenges"));
        }
        Ok(())
    }

    /// The sector parameters.
    pub fn sector(&self) -> SectorParams {
        SectorParams {
            nodes: self.sector_size / 32,
            layers: self.layers,
            graph_seed: graph_seed(),
        }
    }

    /// The PoSt circuit shape.
    pub fn post_shape(&self) -> Shape {
        Shape {
            sectors: self.batch,
            depth: (self.sector_size / 32).trailing_zeros() as usize,
            challenges: self.challenges,
        }
    }

    /// Development seal keys, cached in `dir`.
    pub fn seal_keys(&self, dir: &Path) -> Result<Keys, KeyError> {
        let p = self.sector();
        let name = format!("seal-n{}-l{}-c{}", p.nodes, p.layers, self.seal_challenges);
        let k = self.seal_challenges;
        load_or_setup(dir, &name, DEV_SETUP_SEED, move || SealCircuit::blank(p, k))
    }

    /// Development PoSt keys, cached in `dir`.
    pub fn post_keys(&self, dir: &Path) -> Result<Keys, KeyError> {
        let shape = self.post_shape();
        let name = format!(
            "post-s{}-d{}-c{}",
            shape.sectors, shape.depth, shape.challenges
        );
        load_or_setup(dir, &name, DEV_SETUP_SEED, move || {
            PostCircuit::blank(shape)
        })
    }
}

/// Seals `data` as `prover`'s sector `sector` with `ticket` and proves the seal: the sealed
/// sector (kept by the prover) and its public record.
pub fn seal_sector(
    params: &NetParams,
    seal_keys: &Keys,
    prover: &[u8],
    sector: u64,
    ticket: [u8; 32],
    data: &[u8],
) -> Result<(Sealed, SectorRecord), AuditError> {
    let mut out = seal_sectors(params, seal_keys, prover, &[(sector, ticket, data)])?;
    out.pop()
        .ok_or_else(|| AuditError::Prove("no sector sealed".into()))
}

/// [`seal_sector`] for several sectors `(sector, ticket, data)` at once: they are labelled
/// together ([`label_sectors`]), then each seal is proved ([`prove_seal`]). The results are
/// in order.
pub fn seal_sectors(
    params: &NetParams,
    seal_keys: &Keys,
    prover: &[u8],
    sectors: &[(u64, [u8; 32], &[u8])],
) -> Result<Vec<(Sealed, SectorRecord)>, AuditError> {
    let mut out = Vec::with_capacity(sectors.len());
    for (s, (sealed, labels)) in sectors.iter().zip(label_sectors(params, prover, sectors)?) {
        let record = prove_seal(params, seal_keys, prover, s, &sealed, labels)?;
        out.push((sealed, record));
    }
    Ok(out)
}

/// Seals `sectors` `(sector, ticket, data)` as `prover`'s, labelled together
/// ([`sdr::labels_many`], eight at a time where the CPU allows): each sealed sector with the
/// labels its seal proof needs, in order.
pub fn label_sectors(
    params: &NetParams,
    prover: &[u8],
    sectors: &[(u64, [u8; 32], &[u8])],
) -> Result<Vec<sdr::SealedWithLabels>, AuditError> {
    params.check()?;
    let node = node_id(prover);
    let inputs: Vec<sdr::SealInput<'_>> = sectors
        .iter()
        .map(|(sector, ticket, data)| sdr::SealInput {
            data,
            node,
            sector: *sector,
            ticket: *ticket,
        })
        .collect();
    sdr::seal_many_keeping_labels(&params.sector(), &inputs)
        .map_err(|e| AuditError::Prove(e.to_string()))
}

/// Proves the seal of `sector` `(sector, ticket, data)`, sealed as `sealed` with `labels`
/// (consumed: they are the largest part of sealing's memory): its public record.
pub fn prove_seal(
    params: &NetParams,
    seal_keys: &Keys,
    prover: &[u8],
    sector: &(u64, [u8; 32], &[u8]),
    sealed: &Sealed,
    labels: Vec<Vec<Fr>>,
) -> Result<SectorRecord, AuditError> {
    let &(id, ticket, data) = sector;
    let p = params.sector();
    let circuit = SealCircuit::prove_with_labels(&p, params.seal_challenges, data, sealed, &labels)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    drop(labels);
    let proof = Groth16::<Bn254>::prove(&seal_keys.pk, circuit, &mut ark_std::rand::rngs::OsRng)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    Ok(SectorRecord {
        prover: prover.to_vec(),
        sector: id,
        sector_size: params.sector_size as u64,
        layers: params.layers as u8,
        data_len: data.len() as u64,
        ticket,
        comm_d: sealed.comm_d,
        comm_r: sealed.comm_r,
        seal_proof: encode_proof(&proof),
    })
}

/// Proves window `window` for `nonce` over `sectors` (exactly `params.batch` of them, a sector
/// may repeat): the 128-byte proof.
pub fn prove_window(
    params: &NetParams,
    post_keys: &Keys,
    nonce: &[u8; 32],
    window: u64,
    sectors: &[(u64, &Sealed)],
) -> Result<[u8; PROOF_LEN], AuditError> {
    let circuit = PostCircuit::prove_for(params.post_shape(), nonce, window, sectors)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    let proof = Groth16::<Bn254>::prove(&post_keys.pk, circuit, &mut ark_std::rand::rngs::OsRng)
        .map_err(|e| AuditError::Prove(e.to_string()))?;
    Ok(encode_proof(&proof))
}

/// The 32-byte node identifier sealed into `replica_id`: blake3 of the peer id bytes.
pub fn node_id(peer: &[u8]) -> [u8; 32] {
    *blake3::hash(peer).as_bytes()
}

/// Lower-case hex of bytes (how records appear in JSON).
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes from hex, `None` if it is not an even number of hex digits.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
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

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader past the leading format version, which must be [`RECORD_VERSION`].
    fn versioned(buf: &'a [u8]) -> Result<Self, AuditError> {
        let mut r = Reader { buf };
        let v = r.u8()?;
        if v != RECORD_VERSION {
            return Err(AuditError::Version(v));
        }
        Ok(r)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AuditError> {
        if self.buf.len() < n {
            return Err(AuditError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, AuditError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, AuditError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn u16(&mut self) -> Result<u16, AuditError> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(b))
    }
    fn b32(&mut self) -> Result<[u8; 32], AuditError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32)?);
        Ok(b)
    }
    fn fr(&mut self) -> Result<Fr, AuditError> {
        fr_from_bytes(&self.b32()?)
    }
    fn bytes(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], AuditError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(AuditError::Field(what));
        }
        self.take(n)
    }
    fn end(self) -> Result<(), AuditError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(AuditError::Trailing(self.buf.len()))
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// A prover's public commitment to one sealed sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorRecord {
    /// The prover's peer id bytes.
    pub prover: Vec<u8>,
    /// Sector number (unique per prover).
    pub sector: u64,
    /// Sector size in bytes.
    pub sector_size: u64,
    /// Labelling layers.
    pub layers: u8,
    /// Data bytes in the sector.
    pub data_len: u64,
    /// The sealing ticket (part of `replica_id`).
    pub ticket: [u8; 32],
    /// Root over the data leaves.
    pub comm_d: Fr,
    /// `H(comm_c, comm_r_last)`.
    pub comm_r: Fr,
    /// The seal proof.
    pub seal_proof: [u8; PROOF_LEN],
}

impl SectorRecord {
    /// The replica id the seal proof is checked against (derived, never taken from the prover).
    pub fn replica_id(&self) -> Fr {
        sdr::replica_id(
            &node_id(&self.prover),
            self.sector,
            &self.ticket,
            self.comm_d,
        )
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(300);
        out.push(RECORD_VERSION);
        put_bytes(&mut out, &self.prover);
        out.extend_from_slice(&self.sector.to_le_bytes());
        out.extend_from_slice(&self.sector_size.to_le_bytes());
        out.push(self.layers);
        out.extend_from_slice(&self.data_len.to_le_bytes());
        out.extend_from_slice(&self.ticket);
        out.extend_from_slice(&fr_bytes(&self.comm_d));
        out.extend_from_slice(&fr_bytes(&self.comm_r));
        out.extend_from_slice(&self.seal_proof);
        out
    }

    /// Decodes untrusted bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::versioned(buf)?;
        let prover = r.bytes(MAX_PEER_ID, "prover id length")?.to_vec();
        let sector = r.u64()?;
        let sector_size = r.u64()?;
        if sector_size < 64 || !sector_size.is_power_of_two() || sector_size > 1 << 30 {
            return Err(AuditError::Field("sector size"));
        }
        let layers = r.u8()?;
        let data_len = r.u64()?;
        if data_len > sector_size / 32 * sdr::BYTES_PER_LEAF as u64 {
            return Err(AuditError::Field("data length exceeds the sector"));
        }
        let ticket = r.b32()?;
        let comm_d = r.fr()?;
        let comm_r = r.fr()?;
        let mut seal_proof = [0u8; PROOF_LEN];
        seal_proof.copy_from_slice(r.take(PROOF_LEN)?);
        r.end()?;
        Ok(SectorRecord {
            prover,
            sector,
            sector_size,
            layers,
            data_len,
            ticket,
            comm_d,
            comm_r,
            seal_proof,
        })
    }

    /// Whether the seal proof verifies for this record under `params` and its seal keys.
    pub fn verify_seal(&self, params: &NetParams, keys: &Keys) -> Result<bool, AuditError> {
        if self.sector_size != params.sector_size as u64 || self.layers as usize != params.layers {
            return Err(AuditError::Field("sector shape differs from the network's"));
        }
        let proof = decode_proof(&self.seal_proof)?;
        let inputs = porep::public_inputs(
            &params.sector(),
            params.seal_challenges,
            self.replica_id(),
            self.comm_d,
            self.comm_r,
        );
        Ok(Groth16::<Bn254>::verify_with_processed_vk(&keys.pvk, &inputs, &proof).unwrap_or(false))
    }
}

/// An auditor's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The proof verified.
    Pass,
    /// The prover answered, but with no proof or one that does not verify.
    Fail,
    /// The prover did not answer in time.
    Missed,
}

impl Verdict {
    fn tag(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Missed => 2,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Missed => "missed",
        }
    }
}

/// One audit of one prover's window, signed by the auditor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Auditor peer id bytes.
    pub auditor: Vec<u8>,
    /// Prover peer id bytes.
    pub prover: Vec<u8>,
    /// Window number.
    pub window: u64,
    /// The auditor's fresh nonce.
    pub nonce: [u8; 32],
    /// Challenged sectors and their `comm_r`, in proof order.
    pub sectors: Vec<(u64, Fr)>,
    /// The verdict.
    pub verdict: Verdict,
    /// The proof received (empty when none was).
    pub proof: Vec<u8>,
    /// Why, in words (empty on a pass).
    pub reason: String,
    /// The auditor's signature over [`AuditRecord::signed_bytes`].
    pub signature: Vec<u8>,
}

impl AuditRecord {
    /// The bytes the auditor signs: the encoding without the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.push(RECORD_VERSION);
        put_bytes(&mut out, &self.auditor);
        put_bytes(&mut out, &self.prover);
        out.extend_from_slice(&self.window.to_le_bytes());
        out.extend_from_slice(&self.nonce);
        out.push(self.sectors.len() as u8);
        for (id, c) in &self.sectors {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&fr_bytes(c));
        }
        out.push(self.verdict.tag());
        put_bytes(&mut out, &self.proof);
        put_bytes(&mut out, self.reason.as_bytes());
        out
    }

    /// Encodes the record with its signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        put_bytes(&mut out, &self.signature);
        out
    }

    /// Decodes untrusted bytes (the signature is not checked here).
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::versioned(buf)?;
        let auditor = r.bytes(MAX_PEER_ID, "auditor id length")?.to_vec();
        let prover = r.bytes(MAX_PEER_ID, "prover id length")?.to_vec();
        let window = r.u64()?;
        let nonce = r.b32()?;
        let n = r.u8()? as usize;
        if n == 0 || n > MAX_AUDIT_SECTORS {
            return Err(AuditError::Field("sector count"));
        }
        let mut sectors = Vec::with_capacity(n);
        for _ in 0..n {
            sectors.push((r.u64()?, r.fr()?));
        }
        let verdict = match r.u8()? {
            0 => Verdict::Pass,
            1 => Verdict::Fail,
            2 => Verdict::Missed,
            _ => return Err(AuditError::Field("verdict")),
        };
        let proof = r.bytes(PROOF_LEN, "proof length")?.to_vec();
        if verdict == Verdict::Pass && proof.len() != PROOF_LEN {
            return Err(AuditError::Field("a pass without a proof"));
        }
        let reason = std::str::from_utf8(r.bytes(MAX_REASON, "reason length")?)
            .map_err(|_| AuditError::Field("reason is not UTF-8"))?
            .to_string();
        let signature = r.bytes(MAX_SIGNATURE, "signature length")?.to_vec();
        r.end()?;
        Ok(AuditRecord {
            auditor,
            prover,
            window,
            nonce,
            sectors,
            verdict,
            proof,
            reason,
            signature,
        })
    }

    /// Whether the carried proof verifies for this record's window, nonce and sectors
    /// (`false` when there is no proof or it is malformed).
    pub fn proof_verifies(&self, params: &NetParams, keys: &Keys) -> bool {
        let Ok(proof) = decode_proof(&self.proof) else {
            return false;
        };
        if self.sectors.len() != params.batch {
            return false;
        }
        let inputs =
            post::public_inputs(params.post_shape(), &self.nonce, self.window, &self.sectors);
        Groth16::<Bn254>::verify_with_processed_vk(&keys.pvk, &inputs, &proof).unwrap_or(false)
    }
}

/// Most sector records in one [`AuditResponse::Sectors`] page.
pub const MAX_SECTORS_PAGE: usize = 32;

/// What an auditor asks a prover (carried in the network's application messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditRequest {
    /// Prove `window` for `nonce` over these sectors, in this order.
    Prove {
        /// Window number.
        window: u64,
        /// The auditor's fresh nonce.
        nonce: [u8; 32],
        /// Sector numbers (1 to [`MAX_AUDIT_SECTORS`]).
        sectors: Vec<u64>,
    },
    /// List your sector records with numbers from `from` on.
    Sectors {
        /// First sector number.
        from: u64,
    },
}

/// A prover's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditResponse {
    /// The window proof.
    Proof([u8; PROOF_LEN]),
    /// Up to [`MAX_SECTORS_PAGE`] sector records, by number.
    Sectors(Vec<SectorRecord>),
}

impl AuditRequest {
    /// Encodes the request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RECORD_VERSION];
        match self {
            AuditRequest::Prove {
                window,
                nonce,
                sectors,
            } => {
                out.push(1);
                out.extend_from_slice(&window.to_le_bytes());
                out.extend_from_slice(nonce);
                out.push(sectors.len() as u8);
                for s in sectors {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            AuditRequest::Sectors { from } => {
                out.push(2);
                out.extend_from_slice(&from.to_le_bytes());
            }
        }
        out
    }

    /// Decodes untrusted bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::versioned(buf)?;
        let req = match r.u8()? {
            1 => {
                let window = r.u64()?;
                let nonce = r.b32()?;
                let n = r.u8()? as usize;
                if n == 0 || n > MAX_AUDIT_SECTORS {
                    return Err(AuditError::Field("sector count"));
                }
                let sectors = (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?;
                AuditRequest::Prove {
                    window,
                    nonce,
                    sectors,
                }
            }
            2 => AuditRequest::Sectors { from: r.u64()? },
            _ => return Err(AuditError::Field("request kind")),
        };
        r.end()?;
        Ok(req)
    }
}

impl AuditResponse {
    /// Encodes the response.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RECORD_VERSION];
        match self {
            AuditResponse::Proof(p) => {
                out.push(1);
                out.extend_from_slice(p);
            }
            AuditResponse::Sectors(v) => {
                out.push(2);
                out.push(v.len() as u8);
                for s in v {
                    put_bytes(&mut out, &s.encode());
                }
            }
        }
        out
    }

    /// Decodes untrusted bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::versioned(buf)?;
        let resp = match r.u8()? {
            1 => {
                let mut p = [0u8; PROOF_LEN];
                p.copy_from_slice(r.take(PROOF_LEN)?);
                AuditResponse::Proof(p)
            }
            2 => {
                let n = r.u8()? as usize;
                if n > MAX_SECTORS_PAGE {
                    return Err(AuditError::Field("sector page size"));
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(SectorRecord::decode(
                        r.bytes(1024, "sector record length")?,
                    )?);
                }
                AuditResponse::Sectors(v)
            }
            _ => return Err(AuditError::Field("response kind")),
        };
        r.end()?;
        Ok(resp)
    }
}

/// What a log entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A [`SectorRecord`] this node verified.
    Sector,
    /// An [`AuditRecord`] (this node's own or received by gossip).
    Audit,
}

/// One link of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Position, from 0.
    pub seq: u64,
    /// Hash of the previous entry (zeros for the first).
    pub prev: [u8; 32],
    /// What the body is.
    pub kind: EntryKind,
    /// The encoded record.
    pub body: Vec<u8>,
}

impl LogEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 48);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.prev);
        out.push(match self.kind {
            EntryKind::Sector => 1,
            EntryKind::Audit => 2,
        });
        put_bytes(&mut out, &self.body);
        out
    }

    /// Decodes untrusted bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::versioned(buf)?;
        let seq = r.u64()?;
        let prev = r.b32()?;
        let kind = match r.u8()? {
            1 => EntryKind::Sector,
            2 => EntryKind::Audit,
            _ => return Err(AuditError::Field("entry kind")),
        };
        let body = r.bytes(MAX_ENTRY_BODY, "entry body length")?.to_vec();
        r.end()?;
        Ok(LogEntry {
            seq,
            prev,
            kind,
            body,
        })
    }

    /// This entry's hash: blake3 of a domain tag and the encoding.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"cairn audit log v1");
        h.update(&self.encode());
        *h.finalize().as_bytes()
    }
}

/// What re-verifying a log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    /// Entries checked.
    pub entries: u64,
    /// Sector records whose seal proof verified.
    pub sectors: u64,
    /// Passes whose proof verified.
    pub passes: u64,
    /// Fails that carried a proof, re-checked to be invalid.
    pub fails_rechecked: u64,
    /// Fails and misses without a proof: signed claims that cannot be re-checked.
    pub claims: u64,
    /// Problems, each with the entry's position (empty: the log verifies).
    pub problems: Vec<String>,
}

/// Checks a signature: `(signer peer id bytes, message, signature) -> valid`.
pub type SignatureCheck = dyn Fn(&[u8], &[u8], &[u8]) -> bool;

/// Re-verifies a whole log: consecutive positions, the hash chain, every sector record's seal
/// proof, every audit record's signature (`sig_ok(peer, message, signature)`), that audited
/// sectors were committed with the same `comm_r`, and every carried proof.
pub fn verify_log(
    entries: &[LogEntry],
    params: &NetParams,
    seal_keys: &Keys,
    post_keys: &Keys,
    sig_ok: &SignatureCheck,
) -> LogReport {
    let mut rep = LogReport::default();
    let mut prev = [0u8; 32];
    let mut committed: HashMap<(Vec<u8>, u64), Fr> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        rep.entries += 1;
        if e.seq != i as u64 {
            rep.problems
                .push(format!("entry {i}: position {} out of order", e.seq));
        }
        if e.prev != prev {
            rep.problems
                .push(format!("entry {i}: does not chain to the entry before"));
        }
        prev = e.hash();
        match e.kind {
            EntryKind::Sector => match SectorRecord::decode(&e.body) {
                Err(err) => rep.problems.push(format!("entry {i}: {err}")),
                Ok(s) => match s.verify_seal(params, seal_keys) {
                    Ok(true) => {
                        rep.sectors += 1;
                        committed.insert((s.prover.clone(), s.sector), s.comm_r);
                    }
                    Ok(false) => rep.problems.push(format!(
                        "entry {i}: seal proof of sector {} invalid",
                        s.sector
                    )),
                    Err(err) => rep.problems.push(format!("entry {i}: {err}")),
                },
            },
            EntryKind::Audit => match AuditRecord::decode(&e.body) {
                Err(err) => rep.problems.push(format!("entry {i}: {err}")),
                Ok(a) => {
                    if !sig_ok(&a.auditor, &a.signed_bytes(), &a.signature) {
                        rep.problems
                            .push(format!("entry {i}: auditor signature invalid"));
                        continue;
                    }
                    let unknown = a
                        .sectors
                        .iter()
                        .any(|(id, c)| committed.get(&(a.prover.clone(), *id)) != Some(c));
                    if unknown {
                        rep.problems.push(format!(
                            "entry {i}: audits a sector with no matching commitment earlier in the log"
                        ));
                        continue;
                    }
                    let ok = a.proof_verifies(params, post_keys);
                    match (a.verdict, a.proof.is_empty()) {
                        (Verdict::Pass, _) if ok => rep.passes += 1,
                        (Verdict::Pass, _) => rep
                            .problems
                            .push(format!("entry {i}: a pass whose proof does not verify")),
                        (_, false) if !ok => rep.fails_rechecked += 1,
                        (_, false) => rep
                            .problems
                            .push(format!("entry {i}: a fail whose proof verifies")),
                        (_, true) => rep.claims += 1,
                    }
                }
            },
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit() -> AuditRecord {
        AuditRecord {
            auditor: vec![1; 38],
            prover: vec![2; 38],
            window: 9,
            nonce: [3; 32],
            sectors: vec![(0, Fr::from(5u64)), (1, Fr::from(6u64))],
            verdict: Verdict::Fail,
            proof: vec![],
            reason: "no answer".into(),
            signature: vec![4; 64],
        }
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let a = audit();
        let e = a.encode();
        assert_eq!(AuditRecord::decode(&e).unwrap(), a);
        for n in 0..e.len() {
            assert!(AuditRecord::decode(&e[..n]).is_err(), "prefix {n}");
        }
        let mut long = e.clone();
        long.push(0);
        assert_eq!(AuditRecord::decode(&long), Err(AuditError::Trailing(1)));
        let s = SectorRecord {
            prover: vec![2; 38],
            sector: 3,
            sector_size: 4096,
            layers: 2,
            data_len: 100,
            ticket: [7; 32],
            comm_d: Fr::from(1u64),
            comm_r: Fr::from(2u64),
            seal_proof: [0; PROOF_LEN],
        };
        assert_eq!(SectorRecord::decode(&s.encode()).unwrap(), s);
        let mut bad = s.encode();
        // comm_r := the modulus' bytes (not canonical)
        let at = bad.len() - PROOF_LEN - 32;
        bad[at..at + 32].copy_from_slice(&[0xff; 32]);
        assert!(SectorRecord::decode(&bad).is_err());
        let le = LogEntry {
            seq: 4,
            prev: [9; 32],
            kind: EntryKind::Audit,
            body: e,
        };
        assert_eq!(LogEntry::decode(&le.encode()).unwrap(), le);
        assert!(LogEntry::decode(&[1, 2, 3]).is_err());
        for req in [
            AuditRequest::Prove {
                window: 3,
                nonce: [1; 32],
                sectors: vec![4, 4],
            },
            AuditRequest::Sectors { from: 9 },
        ] {
            assert_eq!(AuditRequest::decode(&req.encode()).unwrap(), req);
        }
        for resp in [
            AuditResponse::Proof([5; PROOF_LEN]),
            AuditResponse::Sectors(vec![s.clone(); MAX_SECTORS_PAGE]),
        ] {
            let e = resp.encode();
            assert!(e.len() <= 12 << 10);
            assert_eq!(AuditResponse::decode(&e).unwrap(), resp);
        }
        assert!(decode_proof(&[0u8; PROOF_LEN]).is_err() || decode_proof(&[0u8; 5]).is_err());
    }

    #[test]
    fn a_pass_must_carry_a_proof() {
        let mut a = audit();
        a.verdict = Verdict::Pass;
        assert!(AuditRecord::decode(&a.encode()).is_err());
    }
}
