//! Unsigned LEB128 varints as used by protobuf, multiformats and CAR.

use thiserror::Error;

/// A varint that could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    #[error("truncated varint")]
    Truncated,
    /// More than 10 bytes, or a value above `u64::MAX`.
    #[error("varint overflows 64 bits")]
    Overflow,
}

/// Appends `v` as an unsigned varint.
pub fn write(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encoded length of `v` in bytes.
pub fn len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a varint from the start of `buf`; returns the value and the bytes consumed.
pub fn read(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i == 9 && b > 1 {
            return Err(VarintError::Overflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
        if i == 9 {
            return Err(VarintError::Overflow);
        }
    }
    Err(VarintError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let mut b = Vec::new();
        write(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        assert_eq!(read(&b), Ok((300, 2)));
        assert_eq!(read(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(read(&[0xff; 11]), Err(VarintError::Overflow));
        assert_eq!(len(0), 1);
        assert_eq!(len(127), 1);
        assert_eq!(len(128), 2);
        assert_eq!(len(u64::MAX), 10);
    }

    proptest! {
        #[test]
        fn roundtrip(v: u64) {
            let mut b = Vec::new();
            write(&mut b, v);
            prop_assert_eq!(b.len(), len(v));
            prop_assert_eq!(read(&b), Ok((v, b.len())));
        }

        #[test]
        fn never_panics(bytes: Vec<u8>) {
            let _ = read(&bytes);
        }
    }
}
