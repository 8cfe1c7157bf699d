//! HAMT-sharded UnixFS directories: the murmur3 hash and the bucket tree, laid out exactly as
//! `ipfs-unixfs-importer` (and boxo) do, fanout 256.

/// Multicodec of the HAMT hash (murmur3-x64-64).
pub const HAMT_HASH_CODE: u64 = 0x22;
/// Bits of hash consumed per level (fanout 256).
pub const FANOUT_BITS: u32 = 8;

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    k
}

/// MurmurHash3 x64 128-bit with seed 0, as 16 bytes (h1 then h2, each big-endian, as
/// `@multiformats/murmur3` and go-murmur3 print them).
pub fn murmur3_x64_128(data: &[u8]) -> [u8; 16] {
    const C1: u64 = 0x87c37b91114253d5;
    const C2: u64 = 0x4cf5ad432745937f;
    let (mut h1, mut h2) = (0u64, 0u64);
    let nblocks = data.len() / 16;
    for i in 0..nblocks {
        let b = &data[i * 16..i * 16 + 16];
        let mut k1 = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let mut k2 = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dce729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x38495ab5);
    }
    let tail = &data[nblocks * 16..];
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, &b) in tail.iter().enumerate() {
        if i < 8 {
            k1 |= u64::from(b) << (8 * i);
        } else {
            k2 |= u64::from(b) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&h1.to_be_bytes());
    out[8..].copy_from_slice(&h2.to_be_bytes());
    out
}

/// The index of `name` at HAMT `depth`: byte `depth` of the "infinite" hash, which is the
/// first 8 bytes of murmur3 of the name, then of `name || [1]`, `name || [2]`, ... once
/// those are used up (the hamt-sharding package's rule).
pub fn index_at(name: &[u8], depth: usize) -> usize {
    let round = depth / 8;
    let digest = if round == 0 {
        murmur3_x64_128(name)
    } else {
        let mut v = name.to_vec();
        v.push(round as u8);
        murmur3_x64_128(&v)
    };
    digest[depth % 8] as usize
}

/// The HAMT bitfield of occupied slots: the integer `sum(1 << i)` as minimal big-endian bytes.
pub fn bitfield(occupied: &[bool; 256]) -> Vec<u8> {
    let mut bytes = [0u8; 32];
    for (i, &on) in occupied.iter().enumerate() {
        if on {
            bytes[31 - i / 8] |= 1 << (i % 8);
        }
    }
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(32);
    bytes[first..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_known_answers() {
        // Reference values from @multiformats/murmur3 (murmur3-x64-128, seed 0).
        assert_eq!(murmur3_x64_128(b""), [0u8; 16]);
        let h = murmur3_x64_128(b"hello");
        assert_eq!(hex(&h), "cbd8a7b341bd9b025b1e906a48ae1d19");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn bitfield_matches_sparse_array() {
        let mut occ = [false; 256];
        occ[0] = true;
        assert_eq!(bitfield(&occ), [1]);
        occ[8] = true;
        occ[0] = false;
        assert_eq!(bitfield(&occ), [1, 0]);
        occ[255] = true;
        let b = bitfield(&occ);
        assert_eq!(b.len(), 32);
        assert_eq!(b[0], 0x80);
    }
}
