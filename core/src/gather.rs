//! The k-of-n gather of one stripe: which shards to ask for next, and when enough are here to
//! decode the rest.
//!
//! [`Gather`] is a pure state machine (no I/O, no clock): a caller asks [`Gather::next_batch`] which
//! shards to fetch, fetches them however it likes (concurrently, from several holders),
//! verifies each against its CID, hands every answer to [`Gather::offer`] (`None` when no
//! holder gave it), and repeats until `next_batch` returns `None`; then [`Gather::finish`] decodes
//! what is missing. The order of requests is fixed:
//!
//! 1. the *wanted* shards themselves (what the caller needs), all in one batch;
//! 2. if any of them is missing, the other shards, **parity first** (parity is never wanted by
//!    readers, so it is the shard least likely to be already known missing), then data, in
//!    batches of exactly as many as are still needed to reach `k`.
//!
//! A short last stripe (fewer than `k` data shards) counts its missing data shards as present
//! zeros, as [`Coder::reconstruct`] does. Shards the caller knows are lost
//! ([`Gather::lost`]) are never asked for.

use crate::erasure::{Coder, ErasureError, Stripe};

/// The gather of one stripe (see the module docs).
#[derive(Debug, Clone)]
pub struct Gather {
    k: usize,
    n_data: usize,
    shards: Vec<Option<Vec<u8>>>,
    asked: Vec<bool>,
    wanted: Vec<usize>,
    first_done: bool,
}

impl Gather {
    /// A gather for a stripe of `n_data` data shards and `m` parity shards, coded `k + m`,
    /// whose caller needs shards `wanted` (indices into data then parity; duplicates and
    /// indices past the stripe are dropped).
    pub fn new(k: usize, m: usize, n_data: usize, wanted: &[usize]) -> Result<Self, ErasureError> {
        if k == 0 || n_data == 0 || n_data > k {
            return Err(ErasureError::BadStripe("data shard count not in 1..=k"));
        }
        let n = n_data + m;
        let mut w: Vec<usize> = wanted.iter().copied().filter(|&i| i < n).collect();
        w.sort_unstable();
        w.dedup();
        Ok(Gather {
            k,
            n_data,
            shards: vec![None; n],
            asked: vec![false; n],
            wanted: w,
            first_done: false,
        })
    }

    /// A gather for `stripe` as coded by `coder`.
    pub fn for_stripe(
        coder: &Coder,
        stripe: &Stripe,
        wanted: &[usize],
    ) -> Result<Self, ErasureError> {
        coder.check(stripe)?;
        Self::new(coder.k(), coder.m(), stripe.data.len(), wanted)
    }

    /// Marks shard `i` as known lost: it is never asked for.
    pub fn lost(&mut self, i: usize) {
        if let Some(a) = self.asked.get_mut(i) {
            *a = true;
        }
    }

    /// The shards the caller wants, in index order.
    pub fn wanted(&self) -> &[usize] {
        &self.wanted
    }

    /// Shards present, counting a short stripe's missing data shards as present zeros.
    pub fn have(&self) -> usize {
        self.shards.iter().filter(|s| s.is_some()).count() + (self.k - self.n_data)
    }

    /// Whether every wanted shard is here (no decoding needed).
    pub fn complete(&self) -> bool {
        self.wanted.iter().all(|&i| self.shards[i].is_some())
    }

    /// Wanted shards not here, which [`Gather::finish`] decodes.
    pub fn missing_wanted(&self) -> usize {
        self.wanted
            .iter()
            .filter(|&&i| self.shards[i].is_none())
            .count()
    }

    /// The next shards to fetch, or `None` when there is nothing more worth asking for: every
    /// wanted shard is here, `k` shards are here, or every shard has been asked for.
    pub fn next_batch(&mut self) -> Option<Vec<usize>> {
        if self.complete() {
            return None;
        }
        if !self.first_done {
            self.first_done = true;
            let batch: Vec<usize> = self
                .wanted
                .iter()
                .copied()
                .filter(|&i| !self.asked[i] && self.shards[i].is_none())
                .collect();
            if !batch.is_empty() {
                return Some(self.ask(batch));
            }
        }
        let have = self.have();
        if have >= self.k {
            return None;
        }
        let need = self.k - have;
        let batch: Vec<usize> = (self.n_data..self.shards.len())
            .chain(0..self.n_data)
            .filter(|&i| !self.asked[i] && self.shards[i].is_none())
            .take(need)
            .collect();
        if batch.is_empty() {
            None
        } else {
            Some(self.ask(batch))
        }
    }

    fn ask(&mut self, batch: Vec<usize>) -> Vec<usize> {
        for &i in &batch {
            self.asked[i] = true;
        }
        batch
    }

    /// Records the answer for shard `i`: its verified bytes, or `None` when no holder gave it.
    /// An answer for an index past the stripe is ignored.
    pub fn offer(&mut self, i: usize, shard: Option<Vec<u8>>) {
        if let Some(slot) = self.shards.get_mut(i) {
            self.asked[i] = true;
            if shard.is_some() {
                *slot = shard;
            }
        }
    }

    /// Every shard slot as gathered, data then parity, without decoding.
    pub fn into_shards(self) -> Vec<Option<Vec<u8>>> {
        self.shards
    }

    /// Decodes what is missing (only when a wanted shard is) and returns every shard slot,
    /// data then parity; wanted shards are all `Some` on success. Fails with
    /// [`ErasureError::TooFewShards`] when fewer than `k` are here, or with the coder's error
    /// when a shard does not decode to its CID.
    pub fn finish(
        mut self,
        coder: &Coder,
        stripe: &Stripe,
    ) -> Result<Vec<Option<Vec<u8>>>, ErasureError> {
        if !self.complete() {
            coder.reconstruct(stripe, &mut self.shards)?;
        }
        Ok(self.shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Block, HashAlg, RAW};

    fn stripe(k: usize, m: usize, lens: &[usize]) -> (Coder, Stripe, Vec<Vec<u8>>) {
        let c = Coder::new(k, m).unwrap();
        let bs: Vec<Block> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                Block::new(
                    HashAlg::Blake3,
                    RAW,
                    (0..n).map(|j| (i * 7 + j) as u8).collect::<Vec<u8>>(),
                )
            })
            .collect();
        let refs: Vec<&Block> = bs.iter().collect();
        let (s, parity) = c.encode(HashAlg::Blake3, &refs).unwrap();
        let all = bs
            .iter()
            .chain(parity.iter())
            .map(|b| b.data.to_vec())
            .collect();
        (c, s, all)
    }

    /// The batches asked for, the decode's result and every shard's true bytes.
    type Outcome = (
        Vec<Vec<usize>>,
        Result<Vec<Option<Vec<u8>>>, ErasureError>,
        Vec<Vec<u8>>,
    );

    /// Runs a gather against holders that have the shards in `present`; returns the batches
    /// asked for and the outcome.
    fn run(
        k: usize,
        m: usize,
        lens: &[usize],
        wanted: &[usize],
        lost: &[usize],
        present: &[usize],
    ) -> Outcome {
        let (c, s, all) = stripe(k, m, lens);
        let mut g = Gather::for_stripe(&c, &s, wanted).unwrap();
        for &i in lost {
            g.lost(i);
        }
        let mut batches = Vec::new();
        while let Some(b) = g.next_batch() {
            for &i in &b {
                g.offer(i, present.contains(&i).then(|| all[i].clone()));
            }
            batches.push(b);
            assert!(batches.len() <= k + m, "the gather must end");
        }
        (batches, g.finish(&c, &s), all)
    }

    #[test]
    fn table() {
        // (k, m, data lens, wanted, known lost, present at holders, batches, decodes ok)
        type Case = (
            usize,
            usize,
            &'static [usize],
            &'static [usize],
            &'static [usize],
            &'static [usize],
            &'static [&'static [usize]],
            bool,
        );
        let cases: &[Case] = &[
            // every wanted shard answers: one batch, no decode
            (
                4,
                2,
                &[9, 9, 9, 9],
                &[0, 1, 2, 3],
                &[],
                &[0, 1, 2, 3],
                &[&[0, 1, 2, 3]],
                true,
            ),
            // one wanted shard lost: one more, parity first
            (
                4,
                2,
                &[9, 9, 9, 9],
                &[0, 1, 2, 3],
                &[],
                &[0, 1, 3, 4, 5],
                &[&[0, 1, 2, 3], &[4]],
                true,
            ),
            // two lost, the first parity too: parity, then the other parity
            (
                4,
                2,
                &[9, 9, 9, 9],
                &[0, 1, 2, 3],
                &[],
                &[0, 1, 5],
                &[&[0, 1, 2, 3], &[4, 5]],
                false,
            ),
            // wanting one shard that is gone: fetch k of the rest, parity first
            (
                4,
                2,
                &[9, 9, 9, 9],
                &[2],
                &[],
                &[0, 1, 3, 4, 5],
                &[&[2], &[4, 5, 0, 1]],
                true,
            ),
            // a short stripe counts its missing data shards as zeros
            (4, 2, &[9, 3], &[0, 1], &[], &[1, 2], &[&[0, 1], &[2]], true),
            // repair: the lost shards are wanted and never asked for
            (
                4,
                2,
                &[9, 9, 9, 9],
                &[1, 5],
                &[1, 5],
                &[0, 2, 3, 4],
                &[&[4, 0, 2, 3]],
                true,
            ),
            // repair with a holder silent: asks the next, until every shard was tried
            (
                3,
                3,
                &[9, 9, 9],
                &[0],
                &[0],
                &[1, 2, 4],
                &[&[3, 4, 5], &[1, 2]],
                true,
            ),
            // nothing anywhere: every shard asked once, then too few
            (2, 1, &[5, 5], &[0, 1], &[], &[], &[&[0, 1], &[2]], false),
            // wanted indices past the stripe and duplicates are dropped
            (2, 1, &[5, 5], &[1, 1, 9], &[], &[1], &[&[1]], true),
        ];
        for (n, &(k, m, lens, wanted, lost, present, batches, ok)) in cases.iter().enumerate() {
            let (got, out, all) = run(k, m, lens, wanted, lost, present);
            let want: Vec<Vec<usize>> = batches.iter().map(|b| b.to_vec()).collect();
            assert_eq!(got, want, "case {n}: batches");
            match out {
                Ok(shards) => {
                    assert!(ok, "case {n}: decoded but should not");
                    for &i in wanted.iter().filter(|&&i| i < all.len()) {
                        assert_eq!(
                            shards[i].as_deref(),
                            Some(&all[i][..]),
                            "case {n}: shard {i}"
                        );
                    }
                }
                Err(e) => {
                    assert!(!ok, "case {n}: {e}");
                    assert!(
                        matches!(e, ErasureError::TooFewShards { .. }),
                        "case {n}: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_lying_shard_fails_the_decode() {
        let (c, s, mut all) = stripe(2, 2, &[8, 8]);
        all[2][0] ^= 1;
        let mut g = Gather::for_stripe(&c, &s, &[0]).unwrap();
        while let Some(b) = g.next_batch() {
            for i in b {
                g.offer(i, (i != 0).then(|| all[i].clone()));
            }
        }
        assert!(matches!(g.finish(&c, &s), Err(ErasureError::Mismatch(_))));
    }

    #[test]
    fn rejects_a_stripe_that_does_not_fit() {
        assert!(Gather::new(2, 1, 3, &[0]).is_err());
        assert!(Gather::new(2, 1, 0, &[0]).is_err());
        assert!(Gather::new(0, 1, 0, &[0]).is_err());
    }
}
