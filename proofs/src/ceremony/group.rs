//! Group arithmetic the ceremony is built from: hashing to G2, the same-ratio pairing check
//! and its batched form over a vector of powers, an inverse FFT over group elements (powers of
//! tau to the Lagrange basis), and the fixed-size point codec of transcript files.

use super::CeremonyError;
use ark_bn254::{Bn254, Fq, Fq2, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::scalar_mul::glv::GLVConfig;
use ark_ec::short_weierstrass::Projective;
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup, VariableBaseMSM};
use ark_ff::{Field, One, PrimeField, UniformRand, Zero};
use ark_poly::{EvaluationDomain, Radix2EvaluationDomain};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Bytes of an uncompressed G1 point.
pub const G1_LEN: usize = 64;
/// Bytes of an uncompressed G2 point.
pub const G2_LEN: usize = 128;

/// A point of G2 whose discrete logarithm nobody knows, derived from `tag` (try-and-increment
/// on the x coordinate, then the cofactor cleared).
pub fn hash_to_g2(tag: &[u8]) -> G2Affine {
    let mut counter = 0u64;
    loop {
        let mut h = Sha256::new();
        h.update(b"cairn ceremony hash to G2 v1");
        h.update(counter.to_le_bytes());
        h.update(tag);
        let seed = h.finalize();
        let mut xof = blake3::Hasher::new();
        xof.update(&seed);
        let mut wide = [0u8; 128];
        xof.finalize_xof().fill(&mut wide);
        let x = Fq2::new(
            Fq::from_le_bytes_mod_order(&wide[..64]),
            Fq::from_le_bytes_mod_order(&wide[64..]),
        );
        if let Some(p) = G2Affine::get_point_from_x_unchecked(x, seed[0] & 1 == 1) {
            let q = p.clear_cofactor();
            if !q.is_zero() {
                return q;
            }
        }
        counter += 1;
    }
}

/// `e(a.0, b.1) == e(a.1, b.0)`: the pair `a` in G1 has the same ratio as the pair `b` in G2.
pub fn same_ratio(a: (G1Affine, G1Affine), b: (G2Affine, G2Affine)) -> bool {
    let lhs = Bn254::multi_pairing([a.0, (-a.1.into_group()).into_affine()], [b.1, b.0]);
    lhs.is_zero()
}

/// For powers `v` (each the previous times one secret), a random linear combination of
/// `v[..n-1]` and the same one of `v[1..]`: one same-ratio check on the pair checks every
/// consecutive pair, except with probability about 1/|Fr|.
pub fn merge_pairs<G>(v: &[G::Affine]) -> (G::Affine, G::Affine)
where
    G: CurveGroup<ScalarField = Fr> + VariableBaseMSM<MulBase = G::Affine>,
{
    if v.len() < 2 {
        return (G::Affine::zero(), G::Affine::zero());
    }
    let mut rng = ark_std::rand::rngs::OsRng;
    let r: Vec<Fr> = (0..v.len() - 1).map(|_| Fr::rand(&mut rng)).collect();
    let a = G::msm_unchecked(&v[..v.len() - 1], &r);
    let b = G::msm_unchecked(&v[1..], &r);
    (a.into_affine(), b.into_affine())
}

/// A random linear combination of `x` and the same one of `y` (equal lengths).
pub fn merge_two<G: CurveGroup<ScalarField = Fr> + VariableBaseMSM<MulBase = G::Affine>>(
    x: &[G::Affine],
    y: &[G::Affine],
) -> (G::Affine, G::Affine) {
    let mut rng = ark_std::rand::rngs::OsRng;
    let r: Vec<Fr> = (0..x.len()).map(|_| Fr::rand(&mut rng)).collect();
    (
        G::msm_unchecked(x, &r).into_affine(),
        G::msm_unchecked(y, &r).into_affine(),
    )
}

/// Scalar multiplication by the fastest method each group has (GLV: arkworks uses it for G1
/// by default but not for G2).
pub trait Scale: CurveGroup<ScalarField = Fr> {
    /// `self * s`.
    fn times(&self, s: &Fr) -> Self;
}

impl<P: GLVConfig<ScalarField = Fr>> Scale for Projective<P> {
    fn times(&self, s: &Fr) -> Self {
        P::glv_mul_projective(*self, *s)
    }
}

/// `p[i] * s[i]` for every `i`, normalized.
pub fn scale_each<G: Scale>(p: &[G::Affine], s: &[Fr]) -> Vec<G::Affine> {
    let proj: Vec<G> = p
        .par_iter()
        .zip(s)
        .map(|(p, s)| p.into_group().times(s))
        .collect();
    G::normalize_batch(&proj)
}

/// `x^0, x^1, ..., x^(n-1)`.
pub fn powers(x: Fr, n: usize) -> Vec<Fr> {
    let mut out = Vec::with_capacity(n);
    let mut acc = Fr::one();
    for _ in 0..n {
        out.push(acc);
        acc *= x;
    }
    out
}

/// The inverse FFT over group elements on the radix-2 domain of `v.len()` (a power of two):
/// from `[tau^i] G` it gives `[L_j(tau)] G`, the Lagrange basis of that domain at tau.
pub fn ifft<G: Scale>(v: &[G::Affine]) -> Result<Vec<G::Affine>, CeremonyError> {
    let n = v.len();
    let domain = Radix2EvaluationDomain::<Fr>::new(n)
        .filter(|d| d.size() == n)
        .ok_or(CeremonyError::Shape("a domain of that size"))?;
    let mut a: Vec<G> = v.iter().map(|p| p.into_group()).collect();
    let bits = n.trailing_zeros();
    if n > 1 {
        for i in 0..n {
            let j = i.reverse_bits() >> (usize::BITS - bits);
            if i < j {
                a.swap(i, j);
            }
        }
    }
    let w_inv = domain.group_gen_inv();
    let mut m = 1;
    while m < n {
        let w_m = w_inv.pow([(n / (2 * m)) as u64]);
        let tw = powers(w_m, m);
        a.par_chunks_mut(2 * m).for_each(|chunk| {
            let (lo, hi) = chunk.split_at_mut(m);
            lo.par_iter_mut()
                .zip(hi.par_iter_mut())
                .zip(tw.par_iter())
                .for_each(|((u, v), w)| {
                    let t = if w.is_one() { *v } else { v.times(w) };
                    *v = *u - t;
                    *u += t;
                });
        });
        m *= 2;
    }
    let n_inv = domain.size_inv();
    a.par_iter_mut().for_each(|p| *p *= n_inv);
    Ok(G::normalize_batch(&a))
}

/// Appends a point, uncompressed (arkworks' layout: coordinates little-endian, flags in the
/// top bits of the last byte).
pub fn put<P: CanonicalSerialize>(out: &mut Vec<u8>, p: &P) {
    // writing into a Vec cannot fail
    let _ = p.serialize_uncompressed(out);
}

/// Reads fixed-size points from untrusted bytes, each checked to be on the curve and in the
/// prime-order subgroup.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CeremonyError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or(CeremonyError::Malformed("file ends early".into()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, CeremonyError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` points of G1 (checked in parallel).
    pub fn g1s(&mut self, n: usize) -> Result<Vec<G1Affine>, CeremonyError> {
        let b = self.take(n.checked_mul(G1_LEN).ok_or(CeremonyError::Shape("count"))?)?;
        b.par_chunks(G1_LEN)
            .map(|c| G1Affine::deserialize_uncompressed(c).map_err(|e| malformed("G1 point", e)))
            .collect()
    }

    /// `n` points of G2 (checked in parallel).
    pub fn g2s(&mut self, n: usize) -> Result<Vec<G2Affine>, CeremonyError> {
        let b = self.take(n.checked_mul(G2_LEN).ok_or(CeremonyError::Shape("count"))?)?;
        b.par_chunks(G2_LEN)
            .map(|c| G2Affine::deserialize_uncompressed(c).map_err(|e| malformed("G2 point", e)))
            .collect()
    }

    /// One point of G1.
    pub fn g1(&mut self) -> Result<G1Affine, CeremonyError> {
        Ok(self.g1s(1)?[0])
    }

    /// One point of G2.
    pub fn g2(&mut self) -> Result<G2Affine, CeremonyError> {
        Ok(self.g2s(1)?[0])
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), CeremonyError> {
        if self.pos != self.bytes.len() {
            return Err(CeremonyError::Malformed(format!(
                "{} bytes past the end",
                self.bytes.len() - self.pos
            )));
        }
        Ok(())
    }
}

fn malformed(what: &str, e: impl std::fmt::Display) -> CeremonyError {
    CeremonyError::Malformed(format!("{what}: {e}"))
}

/// A proof of knowledge of a secret `x`: a random G1 pair `(s, s x)` and `r x` for the point
/// `r` hashed from the transcript so far and that pair, so the contributor must know `x` (and
/// cannot reuse or cancel an earlier contribution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pok {
    /// `s` G1, random.
    pub s: G1Affine,
    /// `s x` G1.
    pub sx: G1Affine,
    /// `r x` G2, with `r = hash_to_g2(context, s, sx)`.
    pub rx: G2Affine,
}

/// Bytes of an encoded [`Pok`].
pub const POK_LEN: usize = 2 * G1_LEN + G2_LEN;

impl Pok {
    /// Makes the proof for secret `x` in `context`.
    pub fn new(x: Fr, context: &[u8]) -> Pok {
        let mut rng = ark_std::rand::rngs::OsRng;
        let s = (G1Projective::generator() * Fr::rand(&mut rng)).into_affine();
        let sx = (s * x).into_affine();
        let r = Self::r(context, &s, &sx);
        Pok {
            s,
            sx,
            rx: (r * x).into_affine(),
        }
    }

    fn r(context: &[u8], s: &G1Affine, sx: &G1Affine) -> G2Affine {
        let mut tag = context.to_vec();
        put(&mut tag, s);
        put(&mut tag, sx);
        hash_to_g2(&tag)
    }

    /// Checks the proof in `context`: the pair `(r, r x)` it proves knowledge of, or `None`.
    pub fn check(&self, context: &[u8]) -> Option<(G2Affine, G2Affine)> {
        if self.s.is_zero() || self.sx.is_zero() {
            return None;
        }
        let r = Self::r(context, &self.s, &self.sx);
        same_ratio((self.s, self.sx), (r, self.rx)).then_some((r, self.rx))
    }

    /// Appends the encoding.
    pub fn put(&self, out: &mut Vec<u8>) {
        put(out, &self.s);
        put(out, &self.sx);
        put(out, &self.rx);
    }

    /// Reads one.
    pub fn read(r: &mut Reader<'_>) -> Result<Pok, CeremonyError> {
        Ok(Pok {
            s: r.g1()?,
            sx: r.g1()?,
            rx: r.g2()?,
        })
    }
}

/// The G1 and G2 generators.
pub fn generators() -> (G1Affine, G2Affine) {
    (
        G1Projective::generator().into_affine(),
        G2Projective::generator().into_affine(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_ifft_gives_the_lagrange_basis_at_tau() {
        let tau = Fr::from(123_456_789u64);
        for n in [1usize, 2, 8, 32] {
            let g = G1Projective::generator();
            let pw: Vec<G1Affine> = powers(tau, n)
                .iter()
                .map(|t| (g * t).into_affine())
                .collect();
            let got = ifft::<G1Projective>(&pw).unwrap();
            let d = Radix2EvaluationDomain::<Fr>::new(n).unwrap();
            let want: Vec<G1Affine> = d
                .evaluate_all_lagrange_coefficients(tau)
                .iter()
                .map(|l| (g * l).into_affine())
                .collect();
            assert_eq!(got, want, "n = {n}");
        }
    }

    #[test]
    fn same_ratio_and_merged_pairs_catch_a_broken_power() {
        let (g1, g2) = generators();
        let t = Fr::from(7u64);
        let tg2 = (g2 * t).into_affine();
        let mut v: Vec<G1Affine> = powers(t, 16)
            .iter()
            .map(|x| (g1 * x).into_affine())
            .collect();
        assert!(same_ratio(merge_pairs::<G1Projective>(&v), (g2, tg2)));
        v[9] = (v[9] + g1).into_affine();
        assert!(!same_ratio(merge_pairs::<G1Projective>(&v), (g2, tg2)));
    }

    #[test]
    fn a_pok_binds_its_context_and_its_secret() {
        let x = Fr::from(99u64);
        let p = Pok::new(x, b"ctx");
        let (r, rx) = p.check(b"ctx").unwrap();
        assert_eq!((r * x).into_affine(), rx);
        assert!(p.check(b"other").is_none());
        let mut bad = p;
        bad.rx = (bad.rx + r).into_affine();
        assert!(bad.check(b"ctx").is_none());
        let mut enc = Vec::new();
        p.put(&mut enc);
        assert_eq!(enc.len(), POK_LEN);
        assert_eq!(Pok::read(&mut Reader::new(&enc)).unwrap(), p);
        assert!(Pok::read(&mut Reader::new(&enc[..100])).is_err());
        enc[5] ^= 0xff;
        assert!(
            Pok::read(&mut Reader::new(&enc)).is_err()
                || Pok::read(&mut Reader::new(&enc)).unwrap() != p
        );
    }
}
