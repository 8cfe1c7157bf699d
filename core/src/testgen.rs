//! The seeded byte generator behind every generated fixture: `fixtures/reference/gen.mjs`
//! implements the same xorshift32 stream, so Rust tests, benchmarks and the demo can recreate
//! exactly the inputs the reference importer was run on.

/// A xorshift32 byte stream of a given length.
pub struct Gen {
    x: u32,
    left: u64,
}

impl Gen {
    /// The stream for `seed`, `len` bytes long.
    pub fn new(seed: u64, len: u64) -> Self {
        let mut x = (seed as u32).wrapping_mul(2654435761).wrapping_add(1);
        if x == 0 {
            x = 1;
        }
        Gen { x, left: len }
    }

    /// The next `size` bytes (fewer at the end; `None` when done). `size` must be a multiple of
    /// 4 except for the last call, or the stream shifts.
    pub fn next_chunk(&mut self, size: usize) -> Option<Vec<u8>> {
        if self.left == 0 {
            return None;
        }
        let n = (size as u64).min(self.left) as usize;
        let mut out = Vec::with_capacity(n + 4);
        while out.len() < n {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 17;
            self.x ^= self.x << 5;
            out.extend_from_slice(&self.x.to_le_bytes());
        }
        out.truncate(n);
        self.left -= n as u64;
        Some(out)
    }

    /// All of a short stream at once.
    pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
        Gen::new(seed, len as u64)
            .next_chunk(len)
            .unwrap_or_default()
    }
}
