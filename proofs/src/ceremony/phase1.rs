//! Phase 1, Powers of Tau (Bowe-Gabizon-Miers 2017, §3): an accumulator of
//! `[tau^i]1` (i < 2n-1), `[tau^i]2` (i < n), `[alpha tau^i]1`, `[beta tau^i]1` (i < n) and
//! `[beta]2`, which each contributor multiplies by fresh secrets `(t, a, b)` and proves with one
//! [`Pok`] per secret. Nothing about a circuit is fixed yet, only the size `n`.

use super::group::{
    generators, merge_pairs, powers, same_ratio, scale_each, Pok, Reader, G1_LEN, G2_LEN, POK_LEN,
};
use super::CeremonyError;
use ark_bn254::{Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::UniformRand;

/// File magic of a phase-1 state.
pub const MAGIC: &[u8; 4] = b"CPT1";
/// Largest accumulator: `n = 2^MAX_POWER`.
pub const MAX_POWER: u32 = 24;

/// The phase-1 accumulator for `n = 2^power`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accumulator {
    /// `log2 n`.
    pub power: u32,
    /// `[tau^i]1`, `2n - 1` of them.
    pub tau_g1: Vec<G1Affine>,
    /// `[tau^i]2`, `n` of them.
    pub tau_g2: Vec<G2Affine>,
    /// `[alpha tau^i]1`, `n`.
    pub alpha_g1: Vec<G1Affine>,
    /// `[beta tau^i]1`, `n`.
    pub beta_g1: Vec<G1Affine>,
    /// `[beta]2`.
    pub beta_g2: G2Affine,
}

/// A contribution's proofs of knowledge of its `t`, `a` and `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution1 {
    /// For `t` (tau).
    pub tau: Pok,
    /// For `a` (alpha).
    pub alpha: Pok,
    /// For `b` (beta).
    pub beta: Pok,
}

impl Accumulator {
    /// The starting accumulator: every secret is 1.
    pub fn initial(power: u32) -> Result<Accumulator, CeremonyError> {
        if power == 0 || power > MAX_POWER {
            return Err(CeremonyError::Shape("phase-1 size"));
        }
        let n = 1usize << power;
        let (g1, g2) = generators();
        Ok(Accumulator {
            power,
            tau_g1: vec![g1; 2 * n - 1],
            tau_g2: vec![g2; n],
            alpha_g1: vec![g1; n],
            beta_g1: vec![g1; n],
            beta_g2: g2,
        })
    }

    /// `n`.
    pub fn n(&self) -> usize {
        1 << self.power
    }

    /// Bytes of the encoding of an accumulator of `2^power`.
    pub fn encoded_len(power: u32) -> usize {
        let n = 1usize << power;
        8 + (2 * n - 1 + 2 * n) * G1_LEN + (n + 1) * G2_LEN
    }

    /// Appends the encoding: `MAGIC`, `power` (u32 LE), then the points in field order.
    pub fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.power.to_le_bytes());
        for p in self
            .tau_g1
            .iter()
            .chain(&self.alpha_g1)
            .chain(&self.beta_g1)
        {
            super::group::put(out, p);
        }
        for p in &self.tau_g2 {
            super::group::put(out, p);
        }
        super::group::put(out, &self.beta_g2);
    }

    /// Reads an accumulator of `2^power` (every point checked).
    pub fn read(r: &mut Reader<'_>, power: u32) -> Result<Accumulator, CeremonyError> {
        if r.take(4)? != MAGIC {
            return Err(CeremonyError::Malformed("not a phase-1 state".into()));
        }
        if r.u32()? != power || power == 0 || power > MAX_POWER {
            return Err(CeremonyError::Malformed("phase-1 size differs".into()));
        }
        let n = 1usize << power;
        let tau_g1 = r.g1s(2 * n - 1)?;
        let alpha_g1 = r.g1s(n)?;
        let beta_g1 = r.g1s(n)?;
        let tau_g2 = r.g2s(n)?;
        let beta_g2 = r.g2()?;
        Ok(Accumulator {
            power,
            tau_g1,
            tau_g2,
            alpha_g1,
            beta_g1,
            beta_g2,
        })
    }

    /// Multiplies in fresh secrets from the OS; `context` binds the proofs of knowledge to the
    /// transcript so far. The secrets are dropped on return.
    pub fn contribute(&self, context: &[u8]) -> (Accumulator, Contribution1) {
        let mut rng = ark_std::rand::rngs::OsRng;
        let (t, a, b) = (Fr::rand(&mut rng), Fr::rand(&mut rng), Fr::rand(&mut rng));
        self.contribute_with(t, a, b, context)
    }

    /// [`Accumulator::contribute`] with given secrets (tests).
    pub fn contribute_with(
        &self,
        t: Fr,
        a: Fr,
        b: Fr,
        context: &[u8],
    ) -> (Accumulator, Contribution1) {
        let n = self.n();
        let tp = powers(t, 2 * n - 1);
        let at: Vec<Fr> = tp[..n].iter().map(|x| *x * a).collect();
        let bt: Vec<Fr> = tp[..n].iter().map(|x| *x * b).collect();
        let next = Accumulator {
            power: self.power,
            tau_g1: scale_each::<G1Projective>(&self.tau_g1, &tp),
            tau_g2: scale_each::<G2Projective>(&self.tau_g2, &tp[..n]),
            alpha_g1: scale_each::<G1Projective>(&self.alpha_g1, &at),
            beta_g1: scale_each::<G1Projective>(&self.beta_g1, &bt),
            beta_g2: (self.beta_g2 * b).into_affine(),
        };
        let c = Contribution1 {
            tau: Pok::new(t, &[context, b"tau"].concat()),
            alpha: Pok::new(a, &[context, b"alpha"].concat()),
            beta: Pok::new(b, &[context, b"beta"].concat()),
        };
        (next, c)
    }

    /// Checks that `next` is `self` with the secrets `c` proves knowledge of multiplied in.
    pub fn verify_step(
        &self,
        next: &Accumulator,
        c: &Contribution1,
        context: &[u8],
    ) -> Result<(), CeremonyError> {
        let bad = |what: &str| Err(CeremonyError::Invalid(format!("phase 1: {what}")));
        if next.power != self.power {
            return bad("the size changed");
        }
        let Some(tau) = c.tau.check(&[context, b"tau"].concat()) else {
            return bad("the proof of knowledge of tau does not check");
        };
        let Some(alpha) = c.alpha.check(&[context, b"alpha"].concat()) else {
            return bad("the proof of knowledge of alpha does not check");
        };
        let Some(beta) = c.beta.check(&[context, b"beta"].concat()) else {
            return bad("the proof of knowledge of beta does not check");
        };
        if !same_ratio((self.tau_g1[1], next.tau_g1[1]), tau) {
            return bad("tau was not multiplied by the proved secret");
        }
        if !same_ratio((self.alpha_g1[0], next.alpha_g1[0]), alpha) {
            return bad("alpha was not multiplied by the proved secret");
        }
        if !same_ratio((self.beta_g1[0], next.beta_g1[0]), beta) {
            return bad("beta was not multiplied by the proved secret");
        }
        next.check_shape()
    }

    /// Checks the accumulator's own structure: generators first, no zero secret, and every
    /// vector a sequence of powers of the same tau (batched same-ratio checks).
    pub fn check_shape(&self) -> Result<(), CeremonyError> {
        let bad = |what: &str| Err(CeremonyError::Invalid(format!("phase 1: {what}")));
        let n = self.n();
        if self.tau_g1.len() != 2 * n - 1
            || self.tau_g2.len() != n
            || self.alpha_g1.len() != n
            || self.beta_g1.len() != n
        {
            return bad("vector lengths");
        }
        let (g1, g2) = generators();
        if self.tau_g1[0] != g1 || self.tau_g2[0] != g2 {
            return bad("the first powers are not the generators");
        }
        if n < 2 {
            return bad("size below 2");
        }
        if self.tau_g1[1].is_zero() || self.alpha_g1[0].is_zero() || self.beta_g1[0].is_zero() {
            return bad("a secret is zero");
        }
        let tau2 = (g2, self.tau_g2[1]);
        if !same_ratio((g1, self.tau_g1[1]), tau2) {
            return bad("[tau]1 and [tau]2 differ");
        }
        if !same_ratio((g1, self.beta_g1[0]), (g2, self.beta_g2)) {
            return bad("[beta]1 and [beta]2 differ");
        }
        if !same_ratio(merge_pairs::<G1Projective>(&self.tau_g1), tau2) {
            return bad("[tau^i]1 are not successive powers");
        }
        if !same_ratio(
            (g1, self.tau_g1[1]),
            merge_pairs::<G2Projective>(&self.tau_g2),
        ) {
            return bad("[tau^i]2 are not successive powers");
        }
        if !same_ratio(merge_pairs::<G1Projective>(&self.alpha_g1), tau2) {
            return bad("[alpha tau^i]1 are not successive powers");
        }
        if !same_ratio(merge_pairs::<G1Projective>(&self.beta_g1), tau2) {
            return bad("[beta tau^i]1 are not successive powers");
        }
        Ok(())
    }
}

impl Contribution1 {
    /// Appends the encoding (three proofs of knowledge).
    pub fn put(&self, out: &mut Vec<u8>) {
        self.tau.put(out);
        self.alpha.put(out);
        self.beta.put(out);
    }

    /// Bytes of the encoding.
    pub const LEN: usize = 3 * POK_LEN;

    /// Reads one.
    pub fn read(r: &mut Reader<'_>) -> Result<Contribution1, CeremonyError> {
        Ok(Contribution1 {
            tau: Pok::read(r)?,
            alpha: Pok::read(r)?,
            beta: Pok::read(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_verify_and_tampering_is_caught() {
        // a single power has no tau to check: refused, as is any size above the maximum
        assert!(Accumulator::initial(0).is_err());
        assert!(Accumulator::read(&mut Reader::new(b"CPT1\0\0\0\0"), 0).is_err());
        let a0 = Accumulator::initial(3).unwrap();
        a0.check_shape().unwrap();
        let (a1, c1) = a0.contribute(b"ctx1");
        a0.verify_step(&a1, &c1, b"ctx1").unwrap();
        let (a2, c2) = a1.contribute(b"ctx2");
        a1.verify_step(&a2, &c2, b"ctx2").unwrap();
        // the encoding round-trips at its stated length
        let mut enc = Vec::new();
        a2.put(&mut enc);
        assert_eq!(enc.len(), Accumulator::encoded_len(3));
        let back = Accumulator::read(&mut Reader::new(&enc), 3).unwrap();
        assert_eq!(back, a2);
        // another context (a replayed contribution), a skipped step, a broken power
        assert!(a1.verify_step(&a2, &c2, b"ctx1").is_err());
        assert!(a0.verify_step(&a2, &c2, b"ctx2").is_err());
        let mut bad = a2.clone();
        bad.tau_g1[5] = (bad.tau_g1[5] + bad.tau_g1[1]).into_affine();
        assert!(a1.verify_step(&bad, &c2, b"ctx2").is_err());
        let mut bad = a2.clone();
        bad.beta_g2 = (bad.beta_g2 + bad.tau_g2[1]).into_affine();
        assert!(a1.verify_step(&bad, &c2, b"ctx2").is_err());
        // a zero secret is refused
        let (z, cz) = a1.contribute_with(Fr::from(0u64), Fr::from(2u64), Fr::from(3u64), b"c");
        assert!(a1.verify_step(&z, &cz, b"c").is_err());
    }
}
