//! A bounded reader over bytes being decoded: every fixed-size field taken from untrusted
//! input goes through it, so a short message is an error and never a panic or an
//! out-of-bounds read. Each decoder (the wire codecs in `cairn-net`, the audit records in
//! `cairn-proofs`, the fast tier's stored records) maps [`CursorError`] into its own error.

/// Why a [`Cursor`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Fewer bytes are left than the field needs.
    #[error("the bytes end early")]
    Short,
    /// Bytes are left after the last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// A cursor over a byte slice; every read advances it.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CursorError> {
        if self.buf.len() < n {
            return Err(CursorError::Short);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CursorError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CursorError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn u16_le(&mut self) -> Result<u16, CursorError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A big-endian `u32`.
    pub fn u32_be(&mut self) -> Result<u32, CursorError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian `u64`.
    pub fn u64_be(&mut self) -> Result<u64, CursorError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub fn u64_le(&mut self) -> Result<u64, CursorError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Succeeds only when every byte was read.
    pub fn end(self) -> Result<(), CursorError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CursorError::Trailing(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_both_byte_orders_and_refuses_short_or_long_input() {
        let b = [
            1u8, 0, 0, 0, 0, 0, 0, 0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 4, 5, 0, 9,
        ];
        let mut c = Cursor::new(&b);
        assert_eq!(c.u8(), Ok(1));
        assert_eq!(c.u64_be(), Ok(2));
        assert_eq!(c.u64_le(), Ok(3));
        assert_eq!(c.take(1), Ok(&[4u8][..]));
        assert_eq!(c.u16_le(), Ok(5));
        assert_eq!(c.rest(), &[9]);
        assert_eq!(c.end(), Err(CursorError::Trailing(1)));
        let mut c = Cursor::new(&b[..3]);
        assert_eq!(c.u32_be(), Err(CursorError::Short));
        // a refused read leaves the cursor where it was
        assert_eq!(c.rest().len(), 3);
        assert_eq!(c.array::<3>(), Ok([1, 0, 0]));
        assert_eq!(c.end(), Ok(()));
        assert_eq!(Cursor::new(&[]).take(usize::MAX), Err(CursorError::Short));
    }
}
