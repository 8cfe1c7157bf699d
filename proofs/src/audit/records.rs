//! Sector records (a prover's commitment to a sealed sector) and audit records (an auditor's signed verdict).

use super::*;
use crate::keys::Keys;
use crate::porep::{self};
use crate::post::{self};
use crate::sdr::{self};
use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_snark::SNARK;

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
    /// The prover's random sealing ticket: `replica_id` is derived from it bound to `pieces`
    /// ([`bound_ticket`]).
    pub ticket: [u8; 32],
    /// The blocks the sector's data holds, in order (their lengths add up to at most
    /// `data_len`; a sector sealed from other bytes lists none).
    pub pieces: Vec<Piece>,
    /// Root over the data leaves.
    pub comm_d: Fr,
    /// `H(comm_c, comm_r_last)`.
    pub comm_r: Fr,
    /// The seal proof's Groth16 part.
    pub seal_proof: [u8; PROOF_LEN],
    /// The seal proof's revealed labels ([`porep::reveal`]): per challenge, the columns of the
    /// challenged node and of its parents.
    pub revealed: Vec<Fr>,
}

impl SectorRecord {
    /// The longest encoding of a record revealing `revealed` labels: the longest prover id,
    /// [`MAX_PIECES`] pieces of the longest CIDs.
    pub const fn max_len(revealed: usize) -> usize {
        1 + (2 + MAX_PEER_ID)
            + 8
            + 8
            + 1
            + 8
            + 32
            + 1
            + MAX_PIECES * (2 + MAX_CID + 8 + 8)
            + 32
            + 32
            + PROOF_LEN
            + 2
            + 32 * revealed
    }

    /// The replica id the seal proof is checked against (derived, never taken from the prover).
    pub fn replica_id(&self) -> Fr {
        sdr::replica_id(
            &node_id(&self.prover),
            self.sector,
            &bound_ticket(&self.ticket, &self.pieces),
            self.comm_d,
        )
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(300 + self.pieces.len() * 56);
        out.push(RECORD_VERSION);
        put_bytes(&mut out, &self.prover);
        out.extend_from_slice(&self.sector.to_le_bytes());
        out.extend_from_slice(&self.sector_size.to_le_bytes());
        out.push(self.layers);
        out.extend_from_slice(&self.data_len.to_le_bytes());
        out.extend_from_slice(&self.ticket);
        put_pieces(&mut out, &self.pieces);
        out.extend_from_slice(&fr_bytes(&self.comm_d));
        out.extend_from_slice(&fr_bytes(&self.comm_r));
        out.extend_from_slice(&self.seal_proof);
        out.extend_from_slice(&(self.revealed.len().min(MAX_REVEALED) as u16).to_le_bytes());
        for x in self.revealed.iter().take(MAX_REVEALED) {
            out.extend_from_slice(&fr_bytes(x));
        }
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
        let pieces = read_pieces(&mut r, data_len)?;
        let comm_d = r.fr()?;
        let comm_r = r.fr()?;
        let mut seal_proof = [0u8; PROOF_LEN];
        seal_proof.copy_from_slice(r.take(PROOF_LEN)?);
        let n = r.u16()? as usize;
        let revealed = (0..n).map(|_| r.fr()).collect::<Result<Vec<_>, _>>()?;
        r.end()?;
        Ok(SectorRecord {
            prover,
            sector,
            sector_size,
            layers,
            data_len,
            ticket,
            pieces,
            comm_d,
            comm_r,
            seal_proof,
            revealed,
        })
    }

    /// Whether the seal proof verifies for this record under `params` and its seal keys.
    pub fn verify_seal(&self, params: &NetParams, keys: &Keys) -> Result<bool, AuditError> {
        if self.sector_size != params.sector_size as u64 || self.layers as usize != params.layers {
            return Err(AuditError::Field("sector shape differs from the network's"));
        }
        let proof = decode_proof(&self.seal_proof)?;
        let rid = self.replica_id();
        // the labels first (SHA-256, natively), then the proof that they are the committed ones
        let Ok(digest) = porep::check_revealed(
            &params.sector(),
            params.seal_challenges,
            rid,
            self.comm_r,
            &self.revealed,
        ) else {
            return Ok(false);
        };
        let inputs = porep::public_inputs(rid, self.comm_d, self.comm_r, digest);
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
    /// The wire tag.
    pub fn tag(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Missed => 2,
        }
    }

    /// The verdict of a wire tag.
    pub fn from_tag(t: u8) -> Option<Verdict> {
        match t {
            0 => Some(Verdict::Pass),
            1 => Some(Verdict::Fail),
            2 => Some(Verdict::Missed),
            _ => None,
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

/// Why an auditor audited: its duty for the prover in that window.
///
/// Every window, each prover has a *primary* auditor and, in a ring of three or more provers, a
/// *confirming* auditor, both derived from the window number and the set of provers (the node
/// crate's schedule). Only their verdicts count; any other audit (an operator's by hand) is
/// `Manual`: shown to whoever asked, never gossiped, never counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Not a designated auditor of the prover in the window.
    Manual,
    /// The window's primary auditor of the prover.
    Primary,
    /// The window's confirming auditor: it audits after the primary reports a miss.
    Confirmer,
}

impl Role {
    /// The wire tag.
    pub fn tag(self) -> u8 {
        match self {
            Role::Manual => 0,
            Role::Primary => 1,
            Role::Confirmer => 2,
        }
    }

    /// The role of a wire tag.
    pub fn from_tag(t: u8) -> Option<Role> {
        match t {
            0 => Some(Role::Manual),
            1 => Some(Role::Primary),
            2 => Some(Role::Confirmer),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Manual => "manual",
            Role::Primary => "primary",
            Role::Confirmer => "confirmer",
        }
    }
}

/// What a prover answered to a window proof request: its proof and openings, or a refusal.
#[derive(Debug, Clone, Copy)]
pub struct Answered<'a> {
    /// The proof (empty for a refusal).
    pub proof: &'a [u8],
    /// The leaves opened with it.
    pub openings: &'a [Opening],
    /// The refusal text (when there is no proof).
    pub refusal: &'a str,
}

/// The bytes a prover signs when it answers a window proof request: a domain tag, the auditor,
/// the prover, the window, the nonce, the sector numbers and the leaves asked for, then `01`,
/// the proof and the openings, or `02` and the refusal text. A signed answer is what makes a
/// `Fail` checkable by everyone: the auditor cannot invent a bad proof, a bad opening or a
/// refusal the prover did not give.
pub fn answer_message(
    auditor: &[u8],
    prover: &[u8],
    window: u64,
    nonce: &[u8; 32],
    sectors: &[u64],
    open: &[u64],
    answered: Answered<'_>,
) -> Vec<u8> {
    let Answered {
        proof,
        openings,
        refusal,
    } = answered;
    let mut out = Vec::with_capacity(400);
    out.extend_from_slice(b"cairn window answer v2");
    put_bytes(&mut out, auditor);
    put_bytes(&mut out, prover);
    out.extend_from_slice(&window.to_le_bytes());
    out.extend_from_slice(nonce);
    put_u64s(&mut out, sectors);
    put_u64s(&mut out, open);
    if proof.is_empty() {
        out.push(2);
        put_bytes(&mut out, refusal.as_bytes());
    } else {
        out.push(1);
        put_bytes(&mut out, proof);
        put_openings(&mut out, openings);
    }
    out
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
    /// Data leaves of the first sector asked to be opened (at most [`MAX_OPENINGS`]).
    pub open: Vec<u64>,
    /// The piece of the first sector's record the opened leaves were drawn from: their bytes
    /// must equal its block's.
    pub piece: u8,
    /// The openings received, in the order asked (empty when none were).
    pub openings: Vec<Opening>,
    /// The verdict.
    pub verdict: Verdict,
    /// The auditor's duty for this prover and window.
    pub role: Role,
    /// The proof received (empty when none was).
    pub proof: Vec<u8>,
    /// Why, in words (empty on a pass). On a fail without a proof, the prover's own signed
    /// refusal.
    pub reason: String,
    /// The prover's signature over [`AuditRecord::answer_message`] (empty when the prover gave
    /// no signed answer: a miss). A fail must carry it.
    pub answer_sig: Vec<u8>,
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
        put_u64s(&mut out, &self.open);
        out.push(self.piece);
        put_openings(&mut out, &self.openings);
        out.push(self.verdict.tag());
        out.push(self.role.tag());
        put_bytes(&mut out, &self.proof);
        put_bytes(&mut out, self.reason.as_bytes());
        put_bytes(&mut out, &self.answer_sig);
        out
    }

    /// The prover's answer as it signed it ([`answer_message`]): the carried proof and
    /// openings, or when there is no proof, the reason as the prover's refusal.
    pub fn answer_message(&self) -> Vec<u8> {
        let ids: Vec<u64> = self.sectors.iter().map(|s| s.0).collect();
        answer_message(
            &self.auditor,
            &self.prover,
            self.window,
            &self.nonce,
            &ids,
            &self.open,
            Answered {
                proof: &self.proof,
                openings: &self.openings,
                refusal: &self.reason,
            },
        )
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
        let open = read_leaves(&mut r)?;
        let piece = r.u8()?;
        let openings = read_openings(&mut r)?;
        let verdict = Verdict::from_tag(r.u8()?).ok_or(AuditError::Field("verdict"))?;
        let role = Role::from_tag(r.u8()?).ok_or(AuditError::Field("role"))?;
        let proof = r.bytes(PROOF_LEN, "proof length")?.to_vec();
        if verdict == Verdict::Pass && proof.len() != PROOF_LEN {
            return Err(AuditError::Field("a pass without a proof"));
        }
        let reason = std::str::from_utf8(r.bytes(MAX_REASON, "reason length")?)
            .map_err(|_| AuditError::Field("reason is not UTF-8"))?
            .to_string();
        let answer_sig = r.bytes(MAX_SIGNATURE, "answer signature length")?.to_vec();
        if verdict == Verdict::Fail && answer_sig.is_empty() {
            return Err(AuditError::Field(
                "a fail without the prover's signed answer",
            ));
        }
        let signature = r.bytes(MAX_SIGNATURE, "signature length")?.to_vec();
        r.end()?;
        Ok(AuditRecord {
            auditor,
            prover,
            window,
            nonce,
            sectors,
            open,
            piece,
            openings,
            verdict,
            role,
            proof,
            reason,
            answer_sig,
            signature,
        })
    }

    /// Whether every asked leaf was opened, in order, with a path to `comm_d` (the first
    /// sector's, from its record) in a tree of the network's depth. The bytes are checked
    /// against the block by [`Opening::matches`], by whoever has the block.
    pub fn openings_verify(&self, params: &NetParams, comm_d: Fr) -> bool {
        let depth = (params.sector_size / 32).trailing_zeros() as usize;
        self.openings.len() == self.open.len()
            && self
                .openings
                .iter()
                .zip(&self.open)
                .all(|(o, l)| o.leaf == *l && o.verifies(comm_d, depth))
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
