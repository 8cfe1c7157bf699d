//! Sector retirements: a prover's signed statement that it no longer keeps one of its sealed
//! sectors (its blocks were collected or moved away), so auditors stop challenging it and the
//! prover stops counting as the holder of the blocks it lists.
//!
//! A retirement is the prover's own word and costs it the claim: the blocks the sector lists
//! no longer count as held by it, so repair makes their copies elsewhere. An auditor honours a
//! retirement only from the moment it has one: an audit already asked is judged as before, so
//! a prover cannot retire a sector when a challenge finds it lost (docs/threat-model.md).

use super::*;
use ark_bn254::Fr;

/// Version byte of an encoded [`Retirement`].
pub const RETIRE_VERSION: u8 = 1;

/// Domain tag of the bytes a prover signs to retire a sector.
const RETIRE_DOMAIN: &[u8] = b"cairn sector retirement v1";

/// A prover's signed retirement of one of its sealed sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The prover's peer id bytes.
    pub prover: Vec<u8>,
    /// The retired sector's number.
    pub sector: u64,
    /// Its `comm_r`: a retirement names one commitment, never a later sector of that number.
    pub comm_r: Fr,
    /// The prover's window when it retired the sector (its own clock: informative only, an
    /// auditor goes by when it received the retirement).
    pub window: u64,
    /// The prover's signature over [`Retirement::signed_bytes`].
    pub signature: Vec<u8>,
}

impl Retirement {
    /// The bytes the prover signs: the domain tag, then the encoding without the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RETIRE_DOMAIN.len() + 96);
        out.extend_from_slice(RETIRE_DOMAIN);
        self.put_fields(&mut out);
        out
    }

    fn put_fields(&self, out: &mut Vec<u8>) {
        out.push(RETIRE_VERSION);
        put_bytes(out, &self.prover);
        out.extend_from_slice(&self.sector.to_le_bytes());
        out.extend_from_slice(&fr_bytes(&self.comm_r));
        out.extend_from_slice(&self.window.to_le_bytes());
    }

    /// Encodes the retirement (`docs/formats.md`, "Sector retirement").
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.prover.len() + self.signature.len());
        self.put_fields(&mut out);
        put_bytes(&mut out, &self.signature);
        out
    }

    /// Decodes untrusted bytes.
    pub fn decode(buf: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::with_version(buf, RETIRE_VERSION)?;
        let prover = r.bytes(MAX_PEER_ID, "prover id length")?.to_vec();
        let sector = r.u64()?;
        let comm_r = r.fr()?;
        let window = r.u64()?;
        let signature = r.bytes(MAX_SIGNATURE, "signature length")?.to_vec();
        r.end()?;
        Ok(Retirement {
            prover,
            sector,
            comm_r,
            window,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn retirement() -> Retirement {
        Retirement {
            prover: vec![2; 38],
            sector: 77,
            comm_r: Fr::from(5u64),
            window: 9,
            signature: vec![4; 64],
        }
    }

    #[test]
    fn retirements_round_trip_and_the_signature_covers_every_field() {
        let r = retirement();
        assert_eq!(Retirement::decode(&r.encode()).unwrap(), r);
        let base = r.signed_bytes();
        assert!(base.starts_with(RETIRE_DOMAIN));
        for change in [
            |r: &mut Retirement| r.prover[0] ^= 1,
            |r: &mut Retirement| r.sector += 1,
            |r: &mut Retirement| r.comm_r += Fr::from(1u64),
            |r: &mut Retirement| r.window += 1,
        ] {
            let mut other = r.clone();
            change(&mut other);
            assert_ne!(other.signed_bytes(), base);
        }
        // the signature is not part of what is signed
        let mut other = r.clone();
        other.signature = vec![5; 64];
        assert_eq!(other.signed_bytes(), base);
    }

    #[test]
    fn malformed_retirements_are_refused() {
        let good = retirement().encode();
        // (bytes, what is wrong)
        let mut version = good.clone();
        version[0] = 2;
        let mut trailing = good.clone();
        trailing.push(0);
        let mut long_id = vec![RETIRE_VERSION];
        long_id.extend_from_slice(&((MAX_PEER_ID + 1) as u16).to_le_bytes());
        long_id.extend(vec![0; MAX_PEER_ID + 1]);
        let mut bad_fr = good.clone();
        // comm_r sits after version, id length and id, and the sector number
        let at = 1 + 2 + 38 + 8;
        bad_fr[at..at + 32].copy_from_slice(&[0xff; 32]);
        for (bytes, why) in [
            (vec![], "empty"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            (version, "version"),
            (trailing, "trailing"),
            (long_id, "id too long"),
            (bad_fr, "comm_r not canonical"),
        ] {
            assert!(Retirement::decode(&bytes).is_err(), "{why}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_error(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Retirement::decode(&bytes);
        }

        #[test]
        fn encodings_round_trip(
            prover in proptest::collection::vec(any::<u8>(), 0..=MAX_PEER_ID),
            sector in any::<u64>(),
            c in any::<u64>(),
            window in any::<u64>(),
            signature in proptest::collection::vec(any::<u8>(), 0..=MAX_SIGNATURE),
        ) {
            let r = Retirement { prover, sector, comm_r: Fr::from(c), window, signature };
            prop_assert_eq!(Retirement::decode(&r.encode()).unwrap(), r);
        }
    }
}
