//! Eight BN254 scalar-field elements at a time with AVX-512 IFMA, for hashing eight Merkle
//! nodes of a level (or eight column hashes) at once, and for format 1's Poseidon labelling of
//! eight sectors at once (the benchmark's baseline, [`crate::baseline`]).
//!
//! Eight independent hashes run one per 64-bit lane: eight field elements are one [`F8`], and
//! their Poseidon permutations run side by side ([`Ifma::permute`]).
//!
//! Representation: radix `2^52`, five limbs per lane (one 512-bit register each), in
//! Montgomery form with `R = 2^260`. `vpmadd52luq`/`vpmadd52huq` multiply the low 52 bits of
//! two lanes and add the low or high 52 bits of the 104-bit product to a 64-bit accumulator,
//! so limbs are kept normalized (below `2^52`) wherever they feed a multiplication, while
//! values are only partly reduced: since `R / r ≈ 84.6`, the Montgomery product of `a` and
//! `b` is below `2r` whenever `a·b < R·r`, which holds for any normalized `a` times a constant
//! below `r`, and for squares of values below `9r`. The permutation keeps every S-box input
//! below `6r` (bounds noted where they matter) and folds the two slowly growing lanes of the
//! partial rounds back below `2r` every [`FOLD_EVERY`] rounds. Results are exact: converting
//! back to `Fr` reduces modulo `r`, and the tests compare every lane with the scalar code.
#![allow(unsafe_code)]

use crate::poseidon::{self, Domain, RoundConsts, FULL_ROUNDS, PARTIAL_ROUNDS, WIDTH};
use ark_bn254::{Fr, FrConfig};
use ark_ff::{Field, MontConfig, PrimeField};
use core::arch::x86_64::*;
use std::sync::OnceLock;

/// Lanes per [`F8`].
pub const LANES: usize = 8;
const MASK52: u64 = (1 << 52) - 1;
/// Partial rounds between two folds of lanes 1 and 2 (each partial round adds below `3r` to
/// them: from below `2r`, 16 rounds stay below `50r`, well inside `2^260 ≈ 84.6r`).
const FOLD_EVERY: usize = 16;

/// Eight field elements, one per 64-bit lane (sector `k`'s label, or the `k`-th hash of a
/// batch).
#[derive(Clone, Copy)]
pub struct F8([__m512i; 5]);

/// Proof that the CPU has AVX-512F and AVX-512 IFMA; every operation takes it.
#[derive(Debug, Clone, Copy)]
pub struct Ifma(());

impl Ifma {
    /// The token, if this CPU has AVX-512F and AVX-512 IFMA.
    pub fn detect() -> Option<Ifma> {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512ifma") {
            Some(Ifma(()))
        } else {
            None
        }
    }

    /// Lane `k` of the result is `xs[k]` (lanes past `xs.len()` repeat the last element).
    pub fn from_frs(self, xs: &[Fr]) -> F8 {
        let mut limbs = [[0u64; LANES]; 5];
        let last = xs.last().copied().unwrap_or_default();
        for (k, x) in xs
            .iter()
            .chain(std::iter::repeat(&last))
            .take(LANES)
            .enumerate()
        {
            for (limb, l) in limbs.iter_mut().zip(to_mont52(x)) {
                limb[k] = l;
            }
        }
        F8(limbs.map(lanes_to_vec))
    }

    /// Every lane is `x`.
    pub fn splat(self, x: &Fr) -> F8 {
        F8(to_mont52(x).map(|l| lanes_to_vec([l; LANES])))
    }

    /// Lane `k` as an `Fr`.
    pub fn lane(self, x: &F8, k: usize) -> Fr {
        let limbs = x.0.map(vec_to_lanes);
        let mut v = [0u64; 5];
        for (j, l) in v.iter_mut().enumerate() {
            *l = limbs[j][k % LANES];
        }
        from_mont52(&v)
    }

    /// `a + b` (limbs normalized).
    pub fn add(self, a: &F8, b: &F8) -> F8 {
        // SAFETY: the token exists only if the CPU has AVX-512F and AVX-512 IFMA
        unsafe { add(a, b) }
    }

    /// `a·b`.
    pub fn mul(self, a: &F8, b: &F8) -> F8 {
        // SAFETY: as in `add`
        unsafe { mul(a, b) }
    }

    /// Eight Poseidon permutations side by side: lane `k` of the result is
    /// [`poseidon::permute`] of lane `k` of `state`.
    pub fn permute(self, state: &mut [F8; WIDTH]) {
        // SAFETY: as in `add`
        unsafe { permute(consts(self), state) }
    }

    /// Absorbs `inputs` into `state` as [`poseidon::hash`] does (pairs, a permutation after
    /// each); the output lanes.
    pub fn absorb(self, mut state: [F8; WIDTH], inputs: &[F8]) -> F8 {
        for pair in inputs.chunks(2) {
            state[1] = self.add(&state[1], &pair[0]);
            if let Some(b) = pair.get(1) {
                state[2] = self.add(&state[2], b);
            }
            self.permute(&mut state);
        }
        // back below 2r, so that sums of stored outputs keep the S-box bound
        self.mul(&state[1], &consts(self).one)
    }

    /// [`poseidon::Prefix`] for eight hashes at once: the state after absorbing `first[k]`
    /// in lane `k`, for hashes of `len` inputs under `domain`.
    pub fn prefix(self, domain: Domain, len: usize, first: [&[Fr]; 2]) -> [F8; WIDTH] {
        let mut state = [
            self.splat(&poseidon::initial(domain, len)),
            self.from_frs(first[0]),
            self.from_frs(first[1]),
        ];
        self.permute(&mut state);
        state
    }
}

fn lanes_to_vec(l: [u64; LANES]) -> __m512i {
    // SAFETY: both are 64 bytes of plain integers; every bit pattern is valid for either
    unsafe { core::mem::transmute::<[u64; LANES], __m512i>(l) }
}

fn vec_to_lanes(v: __m512i) -> [u64; LANES] {
    // SAFETY: as in `lanes_to_vec`
    unsafe { core::mem::transmute::<__m512i, [u64; LANES]>(v) }
}

/// `2^260 mod r` and its inverse, as `Fr`.
fn r260() -> &'static (Fr, Fr) {
    static R: OnceLock<(Fr, Fr)> = OnceLock::new();
    R.get_or_init(|| {
        let r = Fr::from(2u64).pow([260u64]);
        (r, r.inverse().unwrap_or_default())
    })
}

/// The five 52-bit limbs of `x·2^260 mod r`.
fn to_mont52(x: &Fr) -> [u64; 5] {
    split52(&(*x * r260().0).into_bigint().0)
}

fn split52(w: &[u64; 4]) -> [u64; 5] {
    [
        w[0] & MASK52,
        ((w[0] >> 52) | (w[1] << 12)) & MASK52,
        ((w[1] >> 40) | (w[2] << 24)) & MASK52,
        ((w[2] >> 28) | (w[3] << 36)) & MASK52,
        w[3] >> 16,
    ]
}

/// The `Fr` whose Montgomery form (radix 2^52, `R = 2^260`) is `v` (any value below `2^260`).
fn from_mont52(v: &[u64; 5]) -> Fr {
    let mut bytes = [0u8; 40];
    let mut acc: u128 = 0;
    let mut bits = 0;
    let mut out = 0;
    for l in v {
        acc |= u128::from(*l) << bits;
        bits += 52;
        while bits >= 8 {
            bytes[out] = acc as u8;
            acc >>= 8;
            bits -= 8;
            out += 1;
        }
    }
    bytes[out] = acc as u8;
    Fr::from_le_bytes_mod_order(&bytes) * r260().1
}

/// Broadcast constants: the modulus, Montgomery's `-r^-1 mod 2^52`, one, and the
/// permutation's round constants and matrices.
struct Consts {
    modulus: [__m512i; 5],
    inv: __m512i,
    mask: __m512i,
    one: F8,
    round: RoundConsts<F8>,
}

fn consts(t: Ifma) -> &'static Consts {
    static C: OnceLock<Consts> = OnceLock::new();
    C.get_or_init(|| {
        let m = split52(&<FrConfig as MontConfig<4>>::MODULUS.0);
        let inv = <FrConfig as MontConfig<4>>::INV & MASK52;
        Consts {
            modulus: m.map(|l| lanes_to_vec([l; LANES])),
            inv: lanes_to_vec([inv; LANES]),
            mask: lanes_to_vec([MASK52; LANES]),
            one: t.splat(&Fr::ONE),
            round: poseidon::round_consts(|x| t.splat(x)),
        }
    })
}

/// Carries every limb's bits above 52 into the next limb.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn normalize(mut z: [__m512i; 5], mask: __m512i) -> F8 {
    for j in 0..4 {
        z[j + 1] = _mm512_add_epi64(z[j + 1], _mm512_srli_epi64::<52>(z[j]));
        z[j] = _mm512_and_si512(z[j], mask);
    }
    F8(z)
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn add(a: &F8, b: &F8) -> F8 {
    let z = core::array::from_fn(|j| _mm512_add_epi64(a.0[j], b.0[j]));
    normalize(z, lanes_to_vec([MASK52; LANES]))
}

/// `z += a·b` (the 520-bit product, in ten 64-bit accumulators).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_acc(z: &mut [__m512i; 10], a: &F8, b: &F8) {
    for i in 0..5 {
        for j in 0..5 {
            z[i + j] = _mm512_madd52lo_epu64(z[i + j], a.0[i], b.0[j]);
            z[i + j + 1] = _mm512_madd52hi_epu64(z[i + j + 1], a.0[i], b.0[j]);
        }
    }
}

/// Montgomery reduction: `z / 2^260 mod r`, below `z / 2^260 + r`, limbs normalized.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn redc(mut z: [__m512i; 10], c: &Consts) -> F8 {
    let zero = _mm512_setzero_si512();
    for i in 0..5 {
        if i > 0 {
            z[i] = _mm512_add_epi64(z[i], _mm512_srli_epi64::<52>(z[i - 1]));
        }
        let m = _mm512_madd52lo_epu64(zero, z[i], c.inv);
        for j in 0..5 {
            z[i + j] = _mm512_madd52lo_epu64(z[i + j], m, c.modulus[j]);
            z[i + j + 1] = _mm512_madd52hi_epu64(z[i + j + 1], m, c.modulus[j]);
        }
    }
    z[5] = _mm512_add_epi64(z[5], _mm512_srli_epi64::<52>(z[4]));
    normalize([z[5], z[6], z[7], z[8], z[9]], c.mask)
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul(a: &F8, b: &F8) -> F8 {
    let c = consts(Ifma(()));
    mul_c(a, b, c)
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_c(a: &F8, b: &F8, c: &Consts) -> F8 {
    let mut z = [_mm512_setzero_si512(); 10];
    mul_acc(&mut z, a, b);
    redc(z, c)
}

/// `x^5` for `x < 9r` (so that `x^2 < R·r`); below `2r`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn pow5(x: &F8, c: &Consts) -> F8 {
    let x2 = mul_c(x, x, c);
    let x4 = mul_c(&x2, &x2, c);
    mul_c(&x4, x, c)
}

/// `x · row` with one reduction for the three products (`row` entries below `r`).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn dot(x: &[F8; WIDTH], row: &[F8; WIDTH], c: &Consts) -> F8 {
    let mut z = [_mm512_setzero_si512(); 10];
    for (a, b) in x.iter().zip(row) {
        mul_acc(&mut z, a, b);
    }
    redc(z, c)
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn full_round(s: &mut [F8; WIDTH], ark: &[F8; WIDTH], mds: &[[F8; WIDTH]; WIDTH], c: &Consts) {
    // s < 5r on entry (from a dot product or an absorbed input), so s + ark < 6r
    for (x, k) in s.iter_mut().zip(ark) {
        *x = pow5(&add(x, k), c);
    }
    let old = *s;
    for (x, row) in s.iter_mut().zip(mds) {
        *x = dot(&old, row, c);
    }
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn permute(c: &Consts, s: &mut [F8; WIDTH]) {
    let half = FULL_ROUNDS / 2;
    for ark in &c.round.ark[..half] {
        full_round(s, ark, &c.round.mds, c);
    }
    for (x, k) in s.iter_mut().zip(&c.round.partial[0]) {
        *x = add(x, k);
    }
    s[0] = pow5(&s[0], c);
    let old = *s;
    for (x, row) in s.iter_mut().zip(&c.round.first) {
        *x = dot(&old, row, c);
    }
    for (n, (k, (row, col))) in c.round.partial[1..].iter().zip(&c.round.sparse).enumerate() {
        if n % FOLD_EVERY == FOLD_EVERY - 1 {
            s[1] = mul_c(&s[1], &c.one, c);
            s[2] = mul_c(&s[2], &c.one, c);
        }
        let x0 = pow5(&add(&s[0], &k[0]), c);
        let u1 = add(&s[1], &k[1]);
        let u2 = add(&s[2], &k[2]);
        s[0] = dot(&[x0, u1, u2], row, c);
        s[1] = add(&u1, &mul_c(&x0, &col[0], c));
        s[2] = add(&u2, &mul_c(&x0, &col[1], c));
    }
    s[1] = mul_c(&s[1], &c.one, c);
    s[2] = mul_c(&s[2], &c.one, c);
    for ark in &c.round.ark[half + PARTIAL_ROUNDS..] {
        full_round(s, ark, &c.round.mds, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{AdditiveGroup, UniformRand};
    use ark_std::rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn lanes_match_the_scalar_field() {
        let Some(t) = Ifma::detect() else {
            eprintln!("no AVX-512 IFMA on this CPU: labelling runs one sector at a time");
            return;
        };
        let mut rng = StdRng::seed_from_u64(3);
        for round in 0..50 {
            let mut a: Vec<Fr> = (0..LANES).map(|_| Fr::rand(&mut rng)).collect();
            let b: Vec<Fr> = (0..LANES).map(|_| Fr::rand(&mut rng)).collect();
            if round == 0 {
                a = vec![
                    Fr::ZERO,
                    Fr::ONE,
                    -Fr::ONE,
                    Fr::from(2u64),
                    -Fr::from(2u64),
                    Fr::from(u64::MAX),
                    Fr::ONE,
                    Fr::ZERO,
                ];
            }
            let (va, vb) = (t.from_frs(&a), t.from_frs(&b));
            let prod = t.mul(&va, &vb);
            let sum = t.add(&va, &vb);
            for k in 0..LANES {
                assert_eq!(t.lane(&va, k), a[k]);
                assert_eq!(t.lane(&prod, k), a[k] * b[k]);
                assert_eq!(t.lane(&sum, k), a[k] + b[k]);
            }
            let mut s = [t.from_frs(&a), t.from_frs(&b), t.from_frs(&a[1..])];
            t.permute(&mut s);
            for k in 0..LANES {
                let mut want = [a[k], b[k], a[(k + 1).min(LANES - 1)]];
                poseidon::permute(&mut want);
                for w in 0..WIDTH {
                    assert_eq!(t.lane(&s[w], k), want[w], "lane {k} word {w}");
                }
            }
        }
    }
}
