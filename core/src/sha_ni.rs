//! SHA-256 of several equal-length messages at once with the SHA-NI instructions.
//!
//! One SHA-256 stream is bound by the latency of `sha256rnds2`: each pair of rounds waits on
//! the one before. Independent messages interleaved fill those waits: `put --only-hash` of
//! 2 GiB with the sha2-256 profile took 0.64-0.69 s with the `sha2` crate (`cairn bench
//! ingest` medians), 0.61 s with two lanes per task and 0.46 s with four (`farm-bench`
//! medians of 7, the two alternated).
//! The round structure is the one of the `sha2` crate's SHA-NI backend (MIT/Apache-2.0),
//! written for `N` lanes; tests compare every digest with the `sha2` crate's. CPUs without
//! SHA-NI hash each message with the `sha2` crate.

#![allow(unsafe_code)]

/// The SHA-256 round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The initial hash value.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Whether this CPU can run the two-lane kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The final blocks of a message of `len` bytes whose last `tail.len()` (< 64) bytes are
/// `tail`: the tail, 0x80, zeros, and the length in bits, big-endian (one or two blocks).
fn padding(tail: &[u8], len: u64) -> ([[u8; 64]; 2], usize) {
    let mut b = [[0u8; 64]; 2];
    let mut flat = [0u8; 128];
    flat[..tail.len()].copy_from_slice(tail);
    flat[tail.len()] = 0x80;
    let n = if tail.len() < 56 { 1 } else { 2 };
    flat[n * 64 - 8..n * 64].copy_from_slice(&(len * 8).to_be_bytes());
    b[0].copy_from_slice(&flat[..64]);
    b[1].copy_from_slice(&flat[64..]);
    (b, n)
}

/// SHA-256 of each of `m`, messages of one length; `None` when their lengths differ or this
/// CPU lacks SHA-NI (callers then hash each on its own).
pub fn sha256_lanes<const N: usize>(m: [&[u8]; N]) -> Option<[[u8; 32]; N]> {
    let len = m.first()?.len();
    if m.iter().any(|x| x.len() != len) || !available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let whole = len / 64 * 64;
        let mut s = [H0; N];
        // SAFETY: the CPU has SHA-NI, SSSE3 and SSE4.1 (checked above); every message holds
        // `whole` bytes, a multiple of 64.
        unsafe { x86::blocks(&mut s, m.map(|x| &x[..whole])) };
        let tails = m.map(|x| padding(&x[whole..], len as u64));
        let n = tails[0].1;
        let flat = tails.map(|(p, _)| p.concat());
        // SAFETY: as above; every padded tail is `n` blocks.
        unsafe { x86::blocks(&mut s, std::array::from_fn(|l| &flat[l][..n * 64])) };
        Some(s.map(|st| {
            let mut d = [0u8; 32];
            for (i, w) in st.iter().enumerate() {
                d[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
            }
            d
        }))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::K;
    use std::arch::x86_64::*;

    /// One lane's state in the SHA-NI layout (ABEF, CDGH).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load(s: &[u32; 8]) -> (__m128i, __m128i) {
        // SAFETY: `s` holds 8 u32, two unaligned 16-byte loads.
        let (dcba, efgh) = unsafe {
            let p = s.as_ptr() as *const __m128i;
            (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)))
        };
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(efgh, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    /// Back from the SHA-NI layout.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn store(s: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgef = _mm_alignr_epi8(dchg, feba, 8);
        // SAFETY: `s` holds 8 u32, two unaligned 16-byte stores.
        unsafe {
            let p = s.as_mut_ptr() as *mut __m128i;
            _mm_storeu_si128(p, dcba);
            _mm_storeu_si128(p.add(1), hgef);
        }
    }

    /// Compresses the 64-byte blocks of `m[i]` into `s[i]` for every lane `i`, the lanes'
    /// rounds interleaved. Every message has the same length, a multiple of 64.
    ///
    /// # Safety
    /// The CPU must have SHA-NI, SSSE3 and SSE4.1.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn blocks<const N: usize>(s: &mut [[u32; 8]; N], m: [&[u8]; N]) {
        let mask = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        let mut abef = [_mm_setzero_si128(); N];
        let mut cdgh = [_mm_setzero_si128(); N];
        for l in 0..N {
            (abef[l], cdgh[l]) = load(&s[l]);
        }
        let blocks = m[0].len() / 64;
        for blk in 0..blocks {
            let (save_a, save_c) = (abef, cdgh);
            let mut w = [[_mm_setzero_si128(); 4]; N];
            for l in 0..N {
                // SAFETY: every message holds `blocks` 64-byte blocks: four unaligned 16-byte
                // loads from block `blk`.
                let p = unsafe { m[l].as_ptr().add(64 * blk) } as *const __m128i;
                for (i, wi) in w[l].iter_mut().enumerate() {
                    // SAFETY: as above, `i` < 4.
                    *wi = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(p.add(i)) }, mask);
                }
            }
            for r in 0..16 {
                // SAFETY: K holds 64 u32; 4 * r + 4 <= 64.
                let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * r) as *const __m128i) };
                let mut t = [_mm_setzero_si128(); N];
                for l in 0..N {
                    if r >= 4 {
                        // the message schedule: w[r] from w[r-4..r] (kept in a ring of four)
                        let wl = &w[l];
                        let t1 = _mm_sha256msg1_epu32(wl[r % 4], wl[(r + 1) % 4]);
                        let t2 = _mm_alignr_epi8(wl[(r + 3) % 4], wl[(r + 2) % 4], 4);
                        w[l][r % 4] = _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), wl[(r + 3) % 4]);
                    }
                    t[l] = _mm_add_epi32(w[l][r % 4], k);
                }
                for l in 0..N {
                    cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], t[l]);
                }
                for l in 0..N {
                    abef[l] =
                        _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(t[l], 0x0E));
                }
            }
            for l in 0..N {
                abef[l] = _mm_add_epi32(abef[l], save_a[l]);
                cdgh[l] = _mm_add_epi32(cdgh[l], save_c[l]);
            }
        }
        for l in 0..N {
            store(&mut s[l], abef[l], cdgh[l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn pairs_match_the_sha2_crate_at_every_tail_length() {
        if !available() {
            return;
        }
        let data: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let lens = (0..200usize).chain([255, 256, 1000, 4095, 4096, 4097, 9_999]);
        for len in lens {
            let (a, b) = (&data[..len], &data[7..7 + len]);
            let c = &data[11..11 + len];
            let d = &data[300..300 + len];
            let want = [a, b, c, d].map(|x| -> [u8; 32] { sha2::Sha256::digest(x).into() });
            assert_eq!(
                sha256_lanes([a, b]).unwrap(),
                [want[0], want[1]],
                "length {len}"
            );
            assert_eq!(sha256_lanes([a, b, c, d]).unwrap(), want, "length {len}");
            assert_eq!(sha256_lanes([c]).unwrap(), [want[2]], "length {len}");
        }
        assert!(
            sha256_lanes([&b"ab"[..], b"abc"]).is_none(),
            "unequal lengths"
        );
    }
}
