//! The random beacon that ends each phase (BGM17 §3.3): a last contribution whose secrets
//! everyone recomputes from a public random value announced before it was known (a drand
//! round, a block hash), hashed `2^e` times with SHA-256 first so that whoever contributed last
//! cannot try many states and keep one whose beacon output suits them. Its step is verified
//! like any contribution, and also shown to use exactly the derived secrets.

use super::CeremonyError;
use ark_bn254::{Fr, G2Affine};
use ark_ec::CurveGroup;
use ark_ff::{PrimeField, Zero};
use sha2::{Digest, Sha256};

/// Largest beacon value, in bytes.
pub const MAX_VALUE: usize = 256;
/// Largest iteration exponent (`2^40` SHA-256 iterations is hours).
pub const MAX_EXP: u32 = 40;

/// A beacon: the public value and the iteration exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    /// The public random value.
    pub value: Vec<u8>,
    /// SHA-256 is iterated `2^exp` times over it.
    pub exp: u32,
}

impl Beacon {
    /// Checks the bounds.
    pub fn new(value: Vec<u8>, exp: u32) -> Result<Beacon, CeremonyError> {
        if value.is_empty() || value.len() > MAX_VALUE {
            return Err(CeremonyError::State(format!(
                "a beacon value has 1 to {MAX_VALUE} bytes"
            )));
        }
        if exp > MAX_EXP {
            return Err(CeremonyError::State(format!(
                "the iteration exponent is at most {MAX_EXP}"
            )));
        }
        Ok(Beacon { value, exp })
    }

    /// The file text: `cairn-beacon 1`, `value <hex>`, `iterations_exp <e>`.
    pub fn encode(&self) -> String {
        let hex: String = self.value.iter().map(|b| format!("{b:02x}")).collect();
        format!("cairn-beacon 1\nvalue {hex}\niterations_exp {}\n", self.exp)
    }

    /// Parses the file text (untrusted).
    pub fn decode(text: &str) -> Result<Beacon, CeremonyError> {
        let bad = |why: &str| CeremonyError::Malformed(format!("beacon file: {why}"));
        let mut lines = text.lines();
        if lines.next() != Some("cairn-beacon 1") {
            return Err(bad("not a cairn-beacon 1 file"));
        }
        let hex = lines
            .next()
            .and_then(|l| l.strip_prefix("value "))
            .ok_or_else(|| bad("expected value"))?;
        let exp = lines
            .next()
            .and_then(|l| l.strip_prefix("iterations_exp "))
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| bad("expected iterations_exp"))?;
        if lines.next().is_some() || hex.len() % 2 != 0 {
            return Err(bad("trailing text or odd hex"));
        }
        let value = crate::audit::from_hex(hex).ok_or_else(|| bad("value is not hex"))?;
        Beacon::new(value, exp).map_err(|e| bad(&e.to_string()))
    }

    /// `SHA-256^(2^exp)(SHA-256(value))`.
    pub fn seed(&self) -> [u8; 32] {
        let mut h: [u8; 32] = Sha256::digest(&self.value).into();
        for _ in 0..(1u64 << self.exp) {
            h = Sha256::digest(h).into();
        }
        h
    }

    /// The secret named `label` (`tau`, `alpha`, `beta`, `delta seal`, ...) from `seed`:
    /// 64 bytes of blake3's XOF over the seed and label, reduced mod r (never zero).
    pub fn secret(seed: &[u8; 32], label: &str) -> Fr {
        let mut counter = 0u32;
        loop {
            let mut h = blake3::Hasher::new_derive_key("cairn ceremony beacon secret v1");
            h.update(seed);
            h.update(label.as_bytes());
            h.update(&counter.to_le_bytes());
            let mut wide = [0u8; 64];
            h.finalize_xof().fill(&mut wide);
            let x = Fr::from_le_bytes_mod_order(&wide);
            if !x.is_zero() {
                return x;
            }
            counter += 1;
        }
    }
}

/// Whether a proof of knowledge's pair `(r, [x]r)` is for exactly `x`.
pub fn proves(pair: (G2Affine, G2Affine), x: Fr) -> bool {
    (pair.0 * x).into_affine() == pair.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacon_files_round_trip_and_bad_ones_are_refused() {
        let b = Beacon::new(vec![0xab, 0x01], 3).unwrap();
        assert_eq!(Beacon::decode(&b.encode()).unwrap(), b);
        for bad in [
            "",
            "cairn-beacon 2\nvalue ab\niterations_exp 1\n",
            "cairn-beacon 1\nvalue zz\niterations_exp 1\n",
            "cairn-beacon 1\nvalue \u{e9}\niterations_exp 1\n",
            "cairn-beacon 1\nvalue abc\niterations_exp 1\n",
            "cairn-beacon 1\nvalue \niterations_exp 1\n",
            "cairn-beacon 1\nvalue ab\niterations_exp 99\n",
            "cairn-beacon 1\nvalue ab\niterations_exp 1\nmore\n",
        ] {
            assert!(Beacon::decode(bad).is_err(), "{bad:?}");
        }
        // the seed depends on the value and the iterations; secrets on the label
        let s = b.seed();
        assert_ne!(s, Beacon::new(vec![0xab, 0x02], 3).unwrap().seed());
        assert_ne!(s, Beacon::new(vec![0xab, 0x01], 4).unwrap().seed());
        assert_ne!(Beacon::secret(&s, "tau"), Beacon::secret(&s, "alpha"));
        assert_eq!(Beacon::secret(&s, "tau"), Beacon::secret(&s, "tau"));
    }
}
