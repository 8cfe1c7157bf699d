//! BN254 scalar-field arithmetic on raw Montgomery limbs, for the native Poseidon permutation.
//!
//! The representation is arkworks' own: four little-endian 64-bit limbs of `x·2^256 mod r`,
//! always fully reduced, so a [`Limbs`] value and the `Fr` it converts to are the same number.
//! Multiplication is CIOS Montgomery multiplication with the "no-carry" shortcut (the modulus's
//! top limb is below `2^62`, so the running sum never needs a fifth word) written with BMI2's
//! `mulx` and ADX's two independent carry chains (`adcx` on CF, `adox` on OF). arkworks has the
//! same routine behind its `asm` feature, but only when BMI2 and ADX are enabled at compile
//! time for the whole build; here the CPU is asked at run time, and [`Mont::detect`] is the only
//! way to get the token that every operation takes. Without BMI2 and ADX (or off x86-64) the
//! callers use arkworks' portable `Fr` arithmetic instead. Both give bit-identical results
//! (tested here against `Fr` on random and edge-case inputs, and through the permutation).
#![allow(unsafe_code)]

use ark_bn254::{Fr, FrConfig};
use ark_ff::{BigInt, MontConfig, PrimeField};

/// A field element: four little-endian limbs in Montgomery form, fully reduced (`< r`).
pub(crate) type Limbs = [u64; 4];

/// The modulus `r`, then `-r^-1 mod 2^64` (the Montgomery constant), as the assembly reads them.
static MODULUS_AND_INV: [u64; 5] = {
    let m = <FrConfig as MontConfig<4>>::MODULUS.0;
    [m[0], m[1], m[2], m[3], <FrConfig as MontConfig<4>>::INV]
};

/// `2^512 mod r`: Montgomery-multiplying a plain integer by it gives its Montgomery form.
const R2: Limbs = <FrConfig as MontConfig<4>>::R2.0;

/// Proof that this CPU has BMI2 and ADX; every operation takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mont(());

impl Mont {
    /// The token, if this CPU can run the `mulx`/`adcx`/`adox` code.
    pub(crate) fn detect() -> Option<Mont> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("bmi2") && std::is_x86_feature_detected!("adx") {
                return Some(Mont(()));
            }
        }
        None
    }

    /// `a·b` (Montgomery product).
    #[inline(always)]
    pub(crate) fn mul(self, a: &Limbs, b: &Limbs) -> Limbs {
        reduce_once(mul_unreduced(a, b))
    }

    /// `a^2`.
    #[inline(always)]
    pub(crate) fn square(self, a: &Limbs) -> Limbs {
        self.mul(a, a)
    }

    /// `x^5`, the Poseidon S-box.
    #[inline(always)]
    pub(crate) fn pow5(self, x: &Limbs) -> Limbs {
        let x2 = self.square(x);
        let x4 = self.square(&x2);
        self.mul(&x4, x)
    }

    /// `a + b`.
    #[inline(always)]
    pub(crate) fn add(self, a: &Limbs, b: &Limbs) -> Limbs {
        // a, b < r < 2^254, so the sum has no fifth word
        let (s0, c0) = a[0].overflowing_add(b[0]);
        let (s1, c1) = adc(a[1], b[1], c0);
        let (s2, c2) = adc(a[2], b[2], c1);
        let (s3, _) = adc(a[3], b[3], c2);
        reduce_once([s0, s1, s2, s3])
    }

    /// The limbs of `x`.
    pub(crate) fn of_fr(self, x: &Fr) -> Limbs {
        self.mul(&x.into_bigint().0, &R2)
    }

    /// The `Fr` of `x`.
    pub(crate) fn to_fr(self, x: &Limbs) -> Fr {
        Fr::new_unchecked(BigInt(*x))
    }
}

#[inline(always)]
fn adc(a: u64, b: u64, carry: bool) -> (u64, bool) {
    let (s, c1) = a.overflowing_add(b);
    let (s, c2) = s.overflowing_add(carry as u64);
    (s, c1 | c2)
}

#[inline(always)]
fn sbb(a: u64, b: u64, borrow: bool) -> (u64, bool) {
    let (d, b1) = a.overflowing_sub(b);
    let (d, b2) = d.overflowing_sub(borrow as u64);
    (d, b1 | b2)
}

/// `t mod r` for `t < 2r`.
#[inline(always)]
fn reduce_once(t: Limbs) -> Limbs {
    let m = &MODULUS_AND_INV;
    let (d0, b0) = t[0].overflowing_sub(m[0]);
    let (d1, b1) = sbb(t[1], m[1], b0);
    let (d2, b2) = sbb(t[2], m[2], b1);
    let (d3, b3) = sbb(t[3], m[3], b2);
    // branch-free: whether to subtract is data-dependent and unpredictable
    let keep = (b3 as u64).wrapping_neg();
    [
        (t[0] & keep) | (d0 & !keep),
        (t[1] & keep) | (d1 & !keep),
        (t[2] & keep) | (d2 & !keep),
        (t[3] & keep) | (d3 & !keep),
    ]
}

// t += x·rdx for the four words x at `src` (t is five registers, low to high): the low halves
// on the OF chain, the high halves on the CF chain; rax is zero and CF and OF are clear.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
macro_rules! mul_add {
    ($src:literal, $t0:literal, $t1:literal, $t2:literal, $t3:literal, $t4:literal) => {
        concat!(
            "mulx {hi}, {lo}, qword ptr [", $src, "]\n",
            "adox ", $t0, ", {lo}\n", "adcx ", $t1, ", {hi}\n",
            "mulx {hi}, {lo}, qword ptr [", $src, " + 8]\n",
            "adox ", $t1, ", {lo}\n", "adcx ", $t2, ", {hi}\n",
            "mulx {hi}, {lo}, qword ptr [", $src, " + 16]\n",
            "adox ", $t2, ", {lo}\n", "adcx ", $t3, ", {hi}\n",
            "mulx {hi}, {lo}, qword ptr [", $src, " + 24]\n",
            "adox ", $t3, ", {lo}\n", "adcx ", $t4, ", {hi}\n",
            "adox ", $t4, ", rax\n",
        )
    };
}

// t = (t + m·r) / 2^64 with m = t[0]·inv mod 2^64 (t[0] becomes zero and is dropped).
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
macro_rules! reduce_step {
    ($t0:literal, $t1:literal, $t2:literal, $t3:literal, $t4:literal) => {
        concat!(
            "mov rdx, qword ptr [{q} + 32]\n",
            "imul rdx, ", $t0, "\n",
            "test eax, eax\n", // clears CF and OF (rax is zero)
            mul_add!("{q}", $t0, $t1, $t2, $t3, $t4),
        )
    };
}

// One CIOS step for limb `b[i]` (i > 0): t += a·b[i] (five words), then t = (t + m·r) / 2^64
// with m = t[0]·inv, which zeroes the low word; the five registers rotate by one per step.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
macro_rules! cios_step {
    ($off:literal, $t0:literal, $t1:literal, $t2:literal, $t3:literal, $t4:literal) => {
        concat!(
            "mov rdx, qword ptr [{b} + ", $off, "]\n",
            "xor ", $t4, ", ", $t4, "\n", // also clears CF and OF
            mul_add!("{a}", $t0, $t1, $t2, $t3, $t4),
            reduce_step!($t0, $t1, $t2, $t3, $t4),
        )
    };
}

/// The Montgomery product `a·b·2^-256 mod r`, in `[0, 2r)`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn mul_unreduced(a: &Limbs, b: &Limbs) -> Limbs {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: only reached through a `Mont` token, which `Mont::detect` hands out only when the
    // CPU has BMI2 (`mulx`) and ADX (`adcx`, `adox`). The assembly reads 4 words behind `a`
    // and `b` and 5 behind `q`, all live arrays of at least that size, writes only the
    // registers declared below, and touches neither the stack nor memory.
    unsafe {
        core::arch::asm!(
            // t = a * b[0] on the CF chain
            "xor eax, eax",
            "mov rdx, qword ptr [{b}]",
            "mulx {t1}, {t0}, qword ptr [{a}]",
            "mulx {t2}, {lo}, qword ptr [{a} + 8]",
            "adcx {t1}, {lo}",
            "mulx {t3}, {lo}, qword ptr [{a} + 16]",
            "adcx {t2}, {lo}",
            "mulx {t4}, {lo}, qword ptr [{a} + 24]",
            "adcx {t3}, {lo}",
            "adcx {t4}, rax",
            reduce_step!("{t0}", "{t1}", "{t2}", "{t3}", "{t4}"),
            cios_step!("8", "{t1}", "{t2}", "{t3}", "{t4}", "{t0}"),
            cios_step!("16", "{t2}", "{t3}", "{t4}", "{t0}", "{t1}"),
            cios_step!("24", "{t3}", "{t4}", "{t0}", "{t1}", "{t2}"),
            // the result is in t4, t0, t1, t2 (low to high)
            a = in(reg) a.as_ptr(),
            b = in(reg) b.as_ptr(),
            q = in(reg) MODULUS_AND_INV.as_ptr(),
            t0 = out(reg) r1,
            t1 = out(reg) r2,
            t2 = out(reg) r3,
            t3 = out(reg) _,
            t4 = out(reg) r0,
            lo = out(reg) _,
            hi = out(reg) _,
            out("rax") _,
            out("rdx") _,
            options(pure, readonly, nostack),
        );
    }
    [r0, r1, r2, r3]
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn mul_unreduced(_a: &Limbs, _b: &Limbs) -> Limbs {
    // `Mont::detect` never hands out a token off x86-64, so this is never reached
    [0; 4]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{Field, UniformRand};
    use ark_std::rand::{rngs::StdRng, SeedableRng};

    fn edge_cases() -> Vec<Fr> {
        vec![
            Fr::from(0u64),
            Fr::from(1u64),
            Fr::from(2u64),
            -Fr::from(1u64),
            -Fr::from(2u64),
            Fr::from(u64::MAX),
            Fr::from(2u64).pow([200u64]),
            -Fr::from(2u64).pow([253u64]),
        ]
    }

    #[test]
    fn arithmetic_matches_arkworks() {
        let Some(m) = Mont::detect() else {
            eprintln!("no BMI2/ADX on this CPU: the portable path is the only one in use");
            return;
        };
        let mut rng = StdRng::seed_from_u64(7);
        let mut xs = edge_cases();
        xs.extend((0..200).map(|_| Fr::rand(&mut rng)));
        for x in &xs {
            let lx = m.of_fr(x);
            assert_eq!(m.to_fr(&lx), *x, "round trip");
            assert_eq!(m.to_fr(&m.square(&lx)), x.square());
            assert_eq!(m.to_fr(&m.pow5(&lx)), x.pow([5u64]));
            for y in &xs[..20] {
                let ly = m.of_fr(y);
                assert_eq!(m.to_fr(&m.mul(&lx, &ly)), *x * y, "{x} * {y}");
                assert_eq!(m.to_fr(&m.add(&lx, &ly)), *x + y, "{x} + {y}");
            }
        }
    }
}
