//! What storage nodes exchange and record about proofs (design §3, "Audits"), pure compute:
//!
//! - [`NetParams`]: the sector shape and proof parameters of a network, with its development
//!   keys ([`NetParams::seal_keys`], [`NetParams::post_keys`]);
//! - [`SectorRecord`]: a prover's public commitment to one sealed sector, with its seal proof;
//! - [`AuditRecord`]: an auditor's signed verdict on one prover's window;
//! - [`Retirement`]: a prover's signed retirement of a sector it no longer keeps;
//! - [`SealCheck`]: an auditor's signed verdict on a seal check, a sector's seal proved again
//!   over challenges seeded by the auditor's nonce (the prover cannot grind them);
//! - [`LogEntry`]: one link of the hash-chained audit log, and [`verify_log`], which re-checks a
//!   whole log end to end (chain, signatures, seal proofs, window proofs).
//!
//! Signatures are made and checked by the caller (the network crate owns identities); this
//! module only fixes the bytes that are signed. Every decoder takes untrusted bytes and returns
//! [`AuditError`] on anything malformed, never panics. The byte layouts are in `docs/formats.md`.

mod check;
mod codec;
mod log;
mod messages;
mod params;
mod pieces;
mod records;
mod retire;

pub use check::*;
pub use codec::*;
pub use log::*;
pub use messages::*;
pub use params::*;
pub use pieces::*;
pub use records::*;
pub use retire::*;

#[cfg(test)]
mod tests {
    use super::*;

    use ark_bn254::Fr;

    fn audit() -> AuditRecord {
        AuditRecord {
            auditor: vec![1; 38],
            prover: vec![2; 38],
            window: 9,
            nonce: [3; 32],
            sectors: vec![(0, Fr::from(5u64)), (1, Fr::from(6u64))],
            open: vec![3, 9],
            piece: 1,
            openings: vec![
                Opening {
                    leaf: 3,
                    value: Fr::from(7u64),
                    path: vec![Fr::from(8u64); 7],
                },
                Opening {
                    leaf: 9,
                    value: Fr::from(9u64),
                    path: vec![Fr::from(10u64); 7],
                },
            ],
            verdict: Verdict::Fail,
            role: Role::Primary,
            proof: vec![],
            reason: "sector 1 is not held here".into(),
            answer_sig: vec![8; 64],
            signature: vec![4; 64],
        }
    }

    /// A network's shape is refused when its longest sector record would not fit a log entry
    /// (and so a sector page): the revealed labels grow with challenges x columns x layers.
    #[test]
    fn shapes_whose_records_do_not_fit_are_refused() {
        let net = |layers, seal_challenges| NetParams {
            sector_size: 64 << 20,
            layers,
            challenges: 10,
            batch: 2,
            seal_challenges,
        };
        // (layers, seal challenges, fits): 5,567 bytes besides 32 per revealed label
        for (l, k, fits) in [
            (1, 4, true),
            (2, 2, true),
            (2, 4, true),
            (2, 5, false),
            (3, 1, true),
            (3, 2, false),
        ] {
            assert_eq!(
                net(l, k).check().is_ok(),
                fits,
                "{l} layers, {k} challenges"
            );
        }
        assert_eq!(SectorRecord::max_len(84), 8_255);
        assert!(SectorRecord::max_len(84) <= MAX_ENTRY_BODY);
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
            pieces: vec![
                Piece {
                    cid: vec![1; 36],
                    offset: 0,
                    len: 60,
                },
                Piece {
                    cid: vec![2; 36],
                    offset: 7,
                    len: 40,
                },
            ],
            comm_d: Fr::from(1u64),
            comm_r: Fr::from(2u64),
            seal_proof: [0; PROOF_LEN],
            revealed: vec![Fr::from(5u64), Fr::from(6u64)],
        };
        assert_eq!(SectorRecord::decode(&s.encode()).unwrap(), s);
        let e = s.encode();
        for n in 0..e.len() {
            assert!(SectorRecord::decode(&e[..n]).is_err(), "prefix {n}");
        }
        let mut bad = s.encode();
        // a revealed label := the modulus' bytes (not canonical)
        let at = bad.len() - 32;
        bad[at..].copy_from_slice(&[0xff; 32]);
        assert!(SectorRecord::decode(&bad).is_err());
        let mut bad = s.encode();
        // comm_r := the modulus' bytes (not canonical)
        let at = bad.len() - 2 - 2 * 32 - PROOF_LEN - 32;
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
                open: vec![1, 2],
            },
            AuditRequest::Sectors { from: 9 },
        ] {
            assert_eq!(AuditRequest::decode(&req.encode()).unwrap(), req);
        }
        for resp in [
            AuditResponse::Proof {
                proof: [5; PROOF_LEN],
                openings: audit().openings,
                signature: vec![6; 64],
            },
            AuditResponse::Refused {
                reason: "sector 4 is not held here".into(),
                signature: vec![6; 64],
            },
            AuditResponse::Sectors(vec![s.clone(); 8]),
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

    #[test]
    fn a_fail_must_carry_the_provers_signed_answer() {
        let mut a = audit();
        a.answer_sig.clear();
        assert!(AuditRecord::decode(&a.encode()).is_err());
        a.verdict = Verdict::Missed;
        assert!(AuditRecord::decode(&a.encode()).is_ok());
        // an unknown role tag is malformed
        let mut e = audit().encode();
        let at = e.len() - (2 + 64) - (2 + 64) - (2 + audit().reason.len()) - 2 - 1;
        assert_eq!(e[at], Role::Primary.tag());
        e[at] = 9;
        assert!(AuditRecord::decode(&e).is_err());
    }

    #[test]
    fn the_answer_message_binds_every_field() {
        let a = audit();
        let base = a.answer_message();
        let mut variants = Vec::new();
        let mut b = a.clone();
        b.auditor[0] ^= 1;
        variants.push(b);
        let mut b = a.clone();
        b.window += 1;
        variants.push(b);
        let mut b = a.clone();
        b.nonce[0] ^= 1;
        variants.push(b);
        let mut b = a.clone();
        b.sectors[0].0 += 1;
        variants.push(b);
        let mut b = a.clone();
        b.reason.push('!');
        variants.push(b);
        let mut b = a.clone();
        b.proof = vec![1; PROOF_LEN];
        variants.push(b);
        let mut b = a.clone();
        b.open[0] += 1;
        variants.push(b);
        let mut with_proof = a.clone();
        with_proof.proof = vec![1; PROOF_LEN];
        let mut b = with_proof.clone();
        b.openings[1].path[3] = Fr::from(11u64);
        assert_ne!(b.answer_message(), with_proof.answer_message());
        b = with_proof.clone();
        b.openings[0].value = Fr::from(12u64);
        assert_ne!(b.answer_message(), with_proof.answer_message());
        for v in variants {
            assert_ne!(v.answer_message(), base, "{v:?}");
        }
        // what the auditor adds (verdict, role, its signature) is not part of it
        let mut b = a.clone();
        b.role = Role::Confirmer;
        b.signature = vec![];
        assert_eq!(b.answer_message(), base);
    }
}
