//! RS parity with the GFNI instruction `vgf2p8affineqb` on AVX-512: multiplying a byte by a
//! constant of GF(2^8) is a linear map over GF(2)^8, i.e. an 8x8 bit matrix, which one
//! instruction applies to 64 bytes at once, for any field polynomial. The coefficients are the
//! ones `reed-solomon-erasure` uses, read off its own encoder, so the parity is bit-identical
//! to it (checked by tests); CPUs without GFNI use `reed-solomon-erasure` directly.

#![allow(unsafe_code)]

/// The 8x8 bit matrix (in `vgf2p8affineqb` layout) of multiplication by `c`, given `mul`, the
/// field multiplication.
pub(crate) fn affine_matrix(c: u8, mul: impl Fn(u8, u8) -> u8) -> u64 {
    let mut m = 0u64;
    for i in 0..8 {
        let mut row = 0u8;
        for j in 0..8 {
            if (mul(c, 1 << j) >> i) & 1 == 1 {
                row |= 1 << j;
            }
        }
        m |= u64::from(row) << (8 * (7 - i));
    }
    m
}

/// Whether this CPU can run [`encode`].
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("gfni")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `parity[r] = XOR_d coef[r][d] * data[d]` over the first `len - len % 64` bytes; returns how
/// many bytes it did. Callers finish the tail with scalar code.
///
/// Callers must check [`available`] first; every slice must be at least `len` long.
#[cfg(target_arch = "x86_64")]
pub(crate) fn encode(
    data: &[&[u8]],
    parity: &mut [&mut [u8]],
    mats: &[Vec<u64>],
    len: usize,
) -> usize {
    if !available() {
        return 0;
    }
    assert!(data.iter().all(|d| d.len() >= len) && parity.iter().all(|p| p.len() >= len));
    assert!(mats.len() == parity.len() && mats.iter().all(|r| r.len() == data.len()));
    // SAFETY: the features were detected above and the asserts bound every access by `len`.
    unsafe { encode_avx512(data, parity, mats, len) }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn encode(_: &[&[u8]], _: &mut [&mut [u8]], _: &[Vec<u64>], _: usize) -> usize {
    0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "gfni,avx512f,avx512bw")]
unsafe fn encode_avx512(
    data: &[&[u8]],
    parity: &mut [&mut [u8]],
    mats: &[Vec<u64>],
    len: usize,
) -> usize {
    use std::arch::x86_64::*;
    let full = len - len % 64;
    if data.len() == 4 && parity.len() == 2 {
        // the default RS(4,2): every pointer and matrix in a register, each data vector loaded
        // once for both parity rows (about a third of the general loop's instructions)
        let m: [[__m512i; 4]; 2] = core::array::from_fn(|r| {
            core::array::from_fn(|d| _mm512_set1_epi64(mats[r][d] as i64))
        });
        let src: [*const u8; 4] = core::array::from_fn(|d| data[d].as_ptr());
        let (p0, p1) = match parity {
            [a, b] => (a.as_mut_ptr(), b.as_mut_ptr()),
            _ => return 0,
        };
        let mut off = 0;
        while off < full {
            let mut a0 = _mm512_setzero_si512();
            let mut a1 = _mm512_setzero_si512();
            for d in 0..4 {
                // SAFETY: off + 64 <= full <= every data slice's length
                let x = unsafe { _mm512_loadu_si512(src[d].add(off) as *const _) };
                a0 = _mm512_xor_si512(a0, _mm512_gf2p8affine_epi64_epi8::<0>(x, m[0][d]));
                a1 = _mm512_xor_si512(a1, _mm512_gf2p8affine_epi64_epi8::<0>(x, m[1][d]));
            }
            // SAFETY: off + 64 <= full <= both parity slices' lengths
            unsafe {
                _mm512_storeu_si512(p0.add(off) as *mut _, a0);
                _mm512_storeu_si512(p1.add(off) as *mut _, a1);
            }
            off += 64;
        }
        return full;
    }
    let mut off = 0;
    while off < full {
        for (r, p) in parity.iter_mut().enumerate() {
            let mut acc = _mm512_setzero_si512();
            for (d, src) in data.iter().enumerate() {
                // SAFETY: off + 64 <= full <= src.len()
                let x = unsafe { _mm512_loadu_si512(src.as_ptr().add(off) as *const _) };
                let a = _mm512_set1_epi64(mats[r][d] as i64);
                acc = _mm512_xor_si512(acc, _mm512_gf2p8affine_epi64_epi8::<0>(x, a));
            }
            // SAFETY: off + 64 <= full <= p.len()
            unsafe { _mm512_storeu_si512(p.as_mut_ptr().add(off) as *mut _, acc) };
        }
        off += 64;
    }
    full
}
