//! The audit protocol's messages between auditor and prover.

use super::*;
use ark_bn254::Fr;

/// Most sector records in one [`AuditResponse::Sectors`] page.
pub const MAX_SECTORS_PAGE: usize = 32;
/// Most encoded bytes of the records of one [`AuditResponse::Sectors`] page (the answer must
/// fit an application message, 12 KiB): a page ends early rather than grow past it, and holds
/// at least one record.
pub const MAX_SECTORS_PAGE_BYTES: usize = 11 << 10;

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
        /// Data leaves of the first sector to open with the proof (at most [`MAX_OPENINGS`]).
        open: Vec<u64>,
    },
    /// List your sector records with numbers from `from` on.
    Sectors {
        /// First sector number.
        from: u64,
    },
    /// Prove the sealing of `sector` again, over challenges seeded by `nonce` (a seal check,
    /// [`SealCheck`]).
    Check {
        /// Window number.
        window: u64,
        /// The auditor's fresh nonce.
        nonce: [u8; 32],
        /// The sector.
        sector: u64,
    },
}

/// A prover's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditResponse {
    /// The window proof and the openings asked for, signed by the prover over
    /// [`answer_message`].
    Proof {
        /// The proof.
        proof: [u8; PROOF_LEN],
        /// The asked leaves of the first sector, in the order asked.
        openings: Vec<Opening>,
        /// The prover's signature.
        signature: Vec<u8>,
    },
    /// A refusal the prover stands by (a sector it committed to and no longer holds), signed
    /// over [`answer_message`] with an empty proof. Load shedding ("busy", a rate limit) is an
    /// unsigned control error instead: it says nothing about the prover's data.
    Refused {
        /// Why, at most [`MAX_REASON`] bytes.
        reason: String,
        /// The prover's signature.
        signature: Vec<u8>,
    },
    /// Up to [`MAX_SECTORS_PAGE`] sector records, by number.
    Sectors(Vec<SectorRecord>),
    /// A seal check's answer, signed by the prover over [`check_answer_message`] (a refusal
    /// is [`AuditResponse::Refused`], signed over the same message with an empty proof).
    Checked {
        /// The Groth16 proof.
        proof: [u8; PROOF_LEN],
        /// The revealed labels of the check's columns.
        revealed: Vec<Fr>,
        /// The prover's signature.
        signature: Vec<u8>,
    },
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
                open,
            } => {
                out.push(1);
                out.extend_from_slice(&window.to_le_bytes());
                out.extend_from_slice(nonce);
                put_u64s(&mut out, sectors);
                put_u64s(&mut out, open);
            }
            AuditRequest::Sectors { from } => {
                out.push(2);
                out.extend_from_slice(&from.to_le_bytes());
            }
            AuditRequest::Check {
                window,
                nonce,
                sector,
            } => {
                out.push(3);
                out.extend_from_slice(&window.to_le_bytes());
                out.extend_from_slice(nonce);
                out.extend_from_slice(&sector.to_le_bytes());
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
                let open = read_leaves(&mut r)?;
                AuditRequest::Prove {
                    window,
                    nonce,
                    sectors,
                    open,
                }
            }
            2 => AuditRequest::Sectors { from: r.u64()? },
            3 => AuditRequest::Check {
                window: r.u64()?,
                nonce: r.b32()?,
                sector: r.u64()?,
            },
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
            AuditResponse::Proof {
                proof,
                openings,
                signature,
            } => {
                out.push(1);
                out.extend_from_slice(proof);
                put_openings(&mut out, openings);
                put_bytes(&mut out, signature);
            }
            AuditResponse::Refused { reason, signature } => {
                out.push(3);
                put_bytes(&mut out, reason.as_bytes());
                put_bytes(&mut out, signature);
            }
            AuditResponse::Sectors(v) => {
                out.push(2);
                out.push(v.len() as u8);
                for s in v {
                    put_bytes(&mut out, &s.encode());
                }
            }
            AuditResponse::Checked {
                proof,
                revealed,
                signature,
            } => {
                out.push(4);
                out.extend_from_slice(proof);
                out.extend_from_slice(&(revealed.len().min(MAX_REVEALED) as u16).to_le_bytes());
                for x in revealed.iter().take(MAX_REVEALED) {
                    out.extend_from_slice(&fr_bytes(x));
                }
                put_bytes(&mut out, signature);
            }
        }
        out
    }

    /// Decodes untrusted bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::versioned(buf)?;
        let resp = match r.u8()? {
            1 => {
                let mut proof = [0u8; PROOF_LEN];
                proof.copy_from_slice(r.take(PROOF_LEN)?);
                let openings = read_openings(&mut r)?;
                let signature = r.bytes(MAX_SIGNATURE, "signature length")?.to_vec();
                AuditResponse::Proof {
                    proof,
                    openings,
                    signature,
                }
            }
            3 => {
                let reason = std::str::from_utf8(r.bytes(MAX_REASON, "reason length")?)
                    .map_err(|_| AuditError::Field("reason is not UTF-8"))?
                    .to_string();
                let signature = r.bytes(MAX_SIGNATURE, "signature length")?.to_vec();
                AuditResponse::Refused { reason, signature }
            }
            2 => {
                let n = r.u8()? as usize;
                if n > MAX_SECTORS_PAGE {
                    return Err(AuditError::Field("sector page size"));
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(SectorRecord::decode(
                        r.bytes(MAX_ENTRY_BODY, "sector record length")?,
                    )?);
                }
                AuditResponse::Sectors(v)
            }
            4 => {
                let mut proof = [0u8; PROOF_LEN];
                proof.copy_from_slice(r.take(PROOF_LEN)?);
                let revealed = read_frs(&mut r)?;
                let signature = r.bytes(MAX_SIGNATURE, "signature length")?.to_vec();
                AuditResponse::Checked {
                    proof,
                    revealed,
                    signature,
                }
            }
            _ => return Err(AuditError::Field("response kind")),
        };
        r.end()?;
        Ok(resp)
    }
}
