//! A byte-capacity object store that can draw random residents in O(1): what sampling-based
//! eviction (LHD, the learned engine) needs.

use std::collections::HashMap;

/// A small, seeded xorshift64* generator (policies must be reproducible run to run).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Heap bytes of a `HashMap<K, V>` with `cap` slots (hashbrown: one entry plus one control
/// byte per slot), for footprint reports.
pub fn map_bytes<K, V>(cap: usize) -> usize {
    cap * (std::mem::size_of::<(K, V)>() + 1)
}

/// Residents in a dense vector plus an id index.
#[derive(Debug, Default)]
pub struct Sampled {
    /// Capacity in bytes.
    pub cap: u64,
    /// Bytes held.
    pub used: u64,
    ids: Vec<u64>,
    sizes: Vec<u32>,
    index: HashMap<u64, usize>,
}

impl Sampled {
    /// An empty store of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Sampled {
            cap,
            ..Default::default()
        }
    }

    /// Whether `id` is resident.
    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    /// Heap bytes this store uses.
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * 8
            + self.sizes.capacity() * 4
            + map_bytes::<u64, usize>(self.index.capacity())
    }

    /// Residents.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is resident.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds a resident (the caller made room).
    pub fn insert(&mut self, id: u64, size: u32) {
        if self.index.contains_key(&id) {
            return;
        }
        self.index.insert(id, self.ids.len());
        self.ids.push(id);
        self.sizes.push(size);
        self.used += u64::from(size);
    }

    /// Removes a resident.
    pub fn remove(&mut self, id: u64) {
        let Some(i) = self.index.remove(&id) else {
            return;
        };
        self.used -= u64::from(self.sizes[i]);
        self.ids.swap_remove(i);
        self.sizes.swap_remove(i);
        if i < self.ids.len() {
            self.index.insert(self.ids[i], i);
        }
    }

    /// A random resident (id, size).
    pub fn sample(&self, rng: &mut Rng) -> Option<(u64, u32)> {
        if self.ids.is_empty() {
            return None;
        }
        let i = rng.below(self.ids.len());
        Some((self.ids[i], self.sizes[i]))
    }

    /// Whether `size` more bytes fit without eviction.
    pub fn fits(&self, size: u32) -> bool {
        self.used + u64::from(size) <= self.cap
    }
}
