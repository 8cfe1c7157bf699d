//! Seal checks: a designated auditor's challenge of how a committed sector was sealed, with
//! challenges seeded by the auditor's fresh nonce.
//!
//! A sector record carries a seal proof whose challenges follow from `replica_id` and
//! `comm_r`, both of the prover's making: a sealer that faked some labels can seal again with
//! another ticket until those challenges miss them (grinding). A seal check asks the same
//! statement again over challenges the prover cannot know while it seals: they come from a
//! nonce the auditor draws after the record is public ([`porep::check_seed`]). Its answer
//! reveals the check's columns and proves them with the seal keys; the auditor signs the
//! verdict, and everyone re-checks it against the sector record. A sector that fails its check
//! is dropped by every node that verifies the record (its blocks no longer count as held by the
//! prover, so repair copies them elsewhere).

use super::*;
use crate::keys::Keys;
use crate::porep;
use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_snark::SNARK;

/// Version byte of an encoded [`SealCheck`].
pub const CHECK_VERSION: u8 = 1;

/// Domain tag of the bytes a prover signs when it answers a seal check.
const ANSWER_DOMAIN: &[u8] = b"cairn seal check answer v1";

/// What a prover answered to a seal check: the proof and revealed labels, or a refusal.
#[derive(Debug, Clone, Copy)]
pub struct CheckAnswered<'a> {
    /// The Groth16 proof (empty for a refusal).
    pub proof: &'a [u8],
    /// The revealed labels of the check's columns.
    pub revealed: &'a [Fr],
    /// The refusal text (when there is no proof).
    pub refusal: &'a str,
}

/// The bytes a prover signs when it answers a seal check: the domain tag, the auditor, the
/// prover, the window, the nonce, the sector and its `comm_r`, then `01`, the proof and the
/// revealed labels, or `02` and the refusal text.
pub fn check_answer_message(
    (auditor, prover): (&[u8], &[u8]),
    window: u64,
    nonce: &[u8; 32],
    (sector, comm_r): (u64, Fr),
    answered: CheckAnswered<'_>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(300 + 32 * answered.revealed.len());
    out.extend_from_slice(ANSWER_DOMAIN);
    put_bytes(&mut out, auditor);
    put_bytes(&mut out, prover);
    out.extend_from_slice(&window.to_le_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sector.to_le_bytes());
    out.extend_from_slice(&fr_bytes(&comm_r));
    if answered.proof.is_empty() {
        out.push(2);
        put_bytes(&mut out, answered.refusal.as_bytes());
    } else {
        out.push(1);
        put_bytes(&mut out, answered.proof);
        put_frs(&mut out, answered.revealed);
    }
    out
}

/// One seal check of one sector, signed by the auditor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealCheck {
    /// Auditor peer id bytes.
    pub auditor: Vec<u8>,
    /// Prover peer id bytes.
    pub prover: Vec<u8>,
    /// Window number.
    pub window: u64,
    /// The auditor's fresh nonce: the challenges' seed.
    pub nonce: [u8; 32],
    /// The checked sector.
    pub sector: u64,
    /// Its `comm_r` (from its record).
    pub comm_r: Fr,
    /// The verdict.
    pub verdict: Verdict,
    /// The auditor's duty for this prover and window.
    pub role: Role,
    /// The proof received (empty when none was).
    pub proof: Vec<u8>,
    /// The revealed labels received.
    pub revealed: Vec<Fr>,
    /// Why, in words (empty on a pass). On a fail without a proof, the prover's own signed
    /// refusal.
    pub reason: String,
    /// The prover's signature over [`SealCheck::answer_message`] (empty on a miss). A fail
    /// must carry it.
    pub answer_sig: Vec<u8>,
    /// The auditor's signature over [`SealCheck::signed_bytes`].
    pub signature: Vec<u8>,
}

impl SealCheck {
    /// The bytes the auditor signs: the encoding without the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(400 + 32 * self.revealed.len());
        out.push(CHECK_VERSION);
        put_bytes(&mut out, &self.auditor);
        put_bytes(&mut out, &self.prover);
        out.extend_from_slice(&self.window.to_le_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.sector.to_le_bytes());
        out.extend_from_slice(&fr_bytes(&self.comm_r));
        out.push(self.verdict.tag());
        out.push(self.role.tag());
        put_bytes(&mut out, &self.proof);
        put_frs(&mut out, &self.revealed);
        put_bytes(&mut out, self.reason.as_bytes());
        put_bytes(&mut out, &self.answer_sig);
        out
    }

    /// The prover's answer as it signed it ([`check_answer_message`]).
    pub fn answer_message(&self) -> Vec<u8> {
        check_answer_message(
            (&self.auditor, &self.prover),
            self.window,
            &self.nonce,
            (self.sector, self.comm_r),
            CheckAnswered {
                proof: &self.proof,
                revealed: &self.revealed,
                refusal: &self.reason,
            },
        )
    }

    /// Encodes the check with its signature (`docs/formats.md`, "Seal check").
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        put_bytes(&mut out, &self.signature);
        out
    }

    /// Decodes untrusted bytes (signatures are not checked here).
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::with_version(buf, CHECK_VERSION)?;
        let auditor = r.bytes(MAX_PEER_ID, "auditor id length")?.to_vec();
        let prover = r.bytes(MAX_PEER_ID, "prover id length")?.to_vec();
        let window = r.u64()?;
        let nonce = r.b32()?;
        let sector = r.u64()?;
        let comm_r = r.fr()?;
        let verdict = Verdict::from_tag(r.u8()?).ok_or(AuditError::Field("verdict"))?;
        let role = Role::from_tag(r.u8()?).ok_or(AuditError::Field("role"))?;
        let proof = r.bytes(PROOF_LEN, "proof length")?.to_vec();
        if verdict == Verdict::Pass && proof.len() != PROOF_LEN {
            return Err(AuditError::Field("a pass without a proof"));
        }
        let revealed = read_frs(&mut r)?;
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
        Ok(SealCheck {
            auditor,
            prover,
            window,
            nonce,
            sector,
            comm_r,
            verdict,
            role,
            proof,
            revealed,
            reason,
            answer_sig,
            signature,
        })
    }

    /// Whether the carried answer proves the sector's sealing over this check's challenges:
    /// the revealed labels follow from their parents (SHA-256, natively), and the proof shows
    /// they are the committed columns, against the sector's record (`replica_id` derived from
    /// it, `comm_d`; `self.comm_r` must be its `comm_r`). `false` when there is no proof.
    pub fn answer_verifies(&self, params: &NetParams, keys: &Keys, record: &SectorRecord) -> bool {
        if record.comm_r != self.comm_r
            || record.sector != self.sector
            || record.prover != self.prover
            || record.sector_size != params.sector_size as u64
            || record.layers as usize != params.layers
        {
            return false;
        }
        let sector = (record.replica_id(), record.comm_d, record.comm_r);
        verify_check(
            params,
            keys,
            sector,
            &self.nonce,
            &self.proof,
            &self.revealed,
        )
    }
}

/// Whether `proof` and `revealed` answer a seal check seeded by `nonce` of the sector whose
/// record gives `(replica_id, comm_d, comm_r)` ([`SectorRecord::replica_id`]).
pub fn verify_check(
    params: &NetParams,
    keys: &Keys,
    (replica_id, comm_d, comm_r): (Fr, Fr, Fr),
    nonce: &[u8; 32],
    proof: &[u8],
    revealed: &[Fr],
) -> bool {
    let Ok(proof) = decode_proof(proof) else {
        return false;
    };
    let Ok(digest) = porep::check_revealed_for(
        &params.sector(),
        params.seal_challenges,
        replica_id,
        comm_r,
        Some(porep::check_seed(nonce)),
        revealed,
    ) else {
        return false;
    };
    let inputs = porep::public_inputs(replica_id, comm_d, comm_r, digest);
    Groth16::<Bn254>::verify_with_processed_vk(&keys.pvk, &inputs, &proof).unwrap_or(false)
}

fn put_frs(out: &mut Vec<u8>, v: &[Fr]) {
    out.extend_from_slice(&(v.len().min(MAX_REVEALED) as u16).to_le_bytes());
    for x in v.iter().take(MAX_REVEALED) {
        out.extend_from_slice(&fr_bytes(x));
    }
}

pub(super) fn read_frs(r: &mut Reader<'_>) -> Result<Vec<Fr>, AuditError> {
    let n = r.u16()? as usize;
    (0..n).map(|_| r.fr()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check() -> SealCheck {
        SealCheck {
            auditor: vec![1; 38],
            prover: vec![2; 38],
            window: 9,
            nonce: [3; 32],
            sector: 4,
            comm_r: Fr::from(5u64),
            verdict: Verdict::Fail,
            role: Role::Primary,
            proof: vec![6; PROOF_LEN],
            revealed: vec![Fr::from(7u64), Fr::from(8u64)],
            reason: "the revealed labels do not follow from their parents".into(),
            answer_sig: vec![9; 64],
            signature: vec![10; 64],
        }
    }

    #[test]
    fn checks_round_trip_and_signatures_cover_every_field() {
        let c = check();
        assert_eq!(SealCheck::decode(&c.encode()).unwrap(), c);
        let (signed, answer) = (c.signed_bytes(), c.answer_message());
        assert!(answer.starts_with(ANSWER_DOMAIN));
        let changes: [fn(&mut SealCheck); 8] = [
            |c| c.auditor[0] ^= 1,
            |c| c.prover[0] ^= 1,
            |c| c.window += 1,
            |c| c.nonce[0] ^= 1,
            |c| c.sector += 1,
            |c| c.comm_r += Fr::from(1u64),
            |c| c.proof[0] ^= 1,
            |c| c.revealed[1] += Fr::from(1u64),
        ];
        for (n, change) in changes.iter().enumerate() {
            let mut other = check();
            change(&mut other);
            assert_ne!(other.signed_bytes(), signed, "change {n}");
            assert_ne!(other.answer_message(), answer, "change {n}");
        }
        // what the auditor adds (verdict, role, signatures) is not part of the prover's answer
        let mut other = check();
        other.verdict = Verdict::Missed;
        other.role = Role::Confirmer;
        other.signature.clear();
        assert_eq!(other.answer_message(), answer);
        assert_ne!(other.signed_bytes(), signed);
        // a refusal signs its text instead of a proof
        let mut refused = check();
        refused.proof.clear();
        let mut other = refused.clone();
        other.reason.push('!');
        assert_ne!(other.answer_message(), refused.answer_message());
    }

    #[test]
    fn malformed_checks_are_refused() {
        let good = check().encode();
        let mut version = good.clone();
        version[0] = 2;
        let mut trailing = good.clone();
        trailing.push(0);
        let mut bad_fr = good.clone();
        // comm_r sits after the version, both ids, the window, the nonce and the sector
        let at = 1 + 2 * (2 + 38) + 8 + 32 + 8;
        bad_fr[at..at + 32].copy_from_slice(&[0xff; 32]);
        let mut bad_verdict = good.clone();
        bad_verdict[at + 32] = 7;
        let mut pass_without_proof = check();
        pass_without_proof.verdict = Verdict::Pass;
        pass_without_proof.proof.clear();
        let mut fail_unsigned = check();
        fail_unsigned.answer_sig.clear();
        for (bytes, why) in [
            (vec![], "empty"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            (version, "version"),
            (trailing, "trailing"),
            (bad_fr, "comm_r not canonical"),
            (bad_verdict, "verdict"),
            (pass_without_proof.encode(), "a pass without a proof"),
            (fail_unsigned.encode(), "a fail without the prover's answer"),
        ] {
            assert!(SealCheck::decode(&bytes).is_err(), "{why}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_error(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = SealCheck::decode(&bytes);
        }

        #[test]
        fn encodings_round_trip(
            window in any::<u64>(),
            sector in any::<u64>(),
            labels in proptest::collection::vec(any::<u64>(), 0..100),
            reason in "[a-z ]{0,40}",
            missed in any::<bool>(),
        ) {
            let mut c = check();
            c.window = window;
            c.sector = sector;
            c.revealed = labels.into_iter().map(Fr::from).collect();
            c.reason = reason;
            if missed {
                c.verdict = Verdict::Missed;
                c.answer_sig.clear();
                c.proof.clear();
            }
            prop_assert_eq!(SealCheck::decode(&c.encode()).unwrap(), c);
        }
    }
}
