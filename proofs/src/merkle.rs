//! Binary Poseidon Merkle trees, natively and as an R1CS gadget. The leaves are the field
//! elements themselves (not hashed: every tree has a fixed depth, known to the verifier and
//! the circuit, so an inner node cannot pass for a leaf), inner nodes are hashed under
//! [`Domain::Node`]; a path is bound to its index (a public input in circuits) bit by bit, so
//! an opening cannot be replayed at another position.

use crate::poseidon::{hash, hash_var, Domain};
use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, BigInteger, PrimeField};
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::boolean::Boolean;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::select::CondSelectGadget;
use ark_r1cs_std::GR1CSVar;
use ark_relations::gr1cs::SynthesisError;
use thiserror::Error;

/// Tree failures.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum MerkleError {
    /// The leaf count is not a power of two (or is zero).
    #[error("a tree needs a power-of-two number of leaves, got {0}")]
    Shape(usize),
    /// A subtree does not hash to the node kept for it.
    #[error("subtree {0} does not match the kept tree")]
    Subtree(usize),
    /// The index is past the last leaf.
    #[error("leaf {index} of {len}")]
    Index {
        /// Asked.
        index: usize,
        /// Leaves.
        len: usize,
    },
}

/// `hash(domain, group)` of every `arity`-element group of `inputs` (arity 1 or 2), in order.
/// Large levels are split over the current rayon pool (a node's sealing pool has one
/// low-priority thread), and on CPUs with AVX-512 IFMA eight hashes run at once, one per lane
/// ([`crate::ifma`]); the result is the same either way (tested).
pub(crate) fn hash_all(domain: Domain, inputs: &[Fr], arity: usize) -> Vec<Fr> {
    use rayon::prelude::*;
    const PAR: usize = 1 << 12;
    const TASK: usize = 1 << 9;
    if inputs.len() >= PAR {
        inputs
            .par_chunks(TASK * arity)
            .flat_map_iter(|c| hash_groups(domain, c, arity))
            .collect()
    } else {
        hash_groups(domain, inputs, arity)
    }
}

fn hash_groups(domain: Domain, inputs: &[Fr], arity: usize) -> Vec<Fr> {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = crate::ifma::Ifma::detect() {
        if arity <= 2 {
            let lanes = crate::ifma::LANES * arity;
            return inputs
                .chunks(lanes)
                .flat_map(|c| hash_lanes(t, domain, c, arity))
                .collect();
        }
    }
    inputs.chunks(arity).map(|g| hash(domain, g)).collect()
}

/// Up to eight groups of `arity` (1 or 2) inputs hashed at once: the sponge's single
/// permutation over `[domain + 256·arity, first, second or 0]`.
#[cfg(target_arch = "x86_64")]
fn hash_lanes(t: crate::ifma::Ifma, domain: Domain, inputs: &[Fr], arity: usize) -> Vec<Fr> {
    let n = inputs.len() / arity;
    let first: Vec<Fr> = inputs.iter().step_by(arity).copied().collect();
    let second: Vec<Fr> = if arity == 2 {
        inputs.iter().skip(1).step_by(2).copied().collect()
    } else {
        vec![Fr::ZERO]
    };
    let mut state = [
        t.splat(&crate::poseidon::initial(domain, arity)),
        t.from_frs(&first),
        t.from_frs(&second),
    ];
    t.permute(&mut state);
    (0..n).map(|k| t.lane(&state[1], k)).collect()
}

/// The single node of the last level (the root), or zero for no levels.
fn top_of(levels: &[Vec<Fr>]) -> Fr {
    levels
        .last()
        .and_then(|l| l.first())
        .copied()
        .unwrap_or_default()
}

/// A complete tree: `levels[0]` are the leaves, the last level is the root.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    levels: Vec<Vec<Fr>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves`.
    pub fn new(leaves: &[Fr]) -> Result<Self, MerkleError> {
        Self::from_leaves(leaves.to_vec())
    }

    /// Builds the tree over `leaves`, kept as its first level.
    pub fn from_leaves(leaves: Vec<Fr>) -> Result<Self, MerkleError> {
        if leaves.is_empty() || !leaves.len().is_power_of_two() {
            return Err(MerkleError::Shape(leaves.len()));
        }
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().map(Vec::as_slice).unwrap_or_default();
            let next = hash_all(Domain::Node, prev, 2);
            levels.push(next);
        }
        Ok(MerkleTree { levels })
    }

    /// The root.
    pub fn root(&self) -> Fr {
        top_of(&self.levels)
    }

    /// The leaves.
    pub fn leaves(&self) -> &[Fr] {
        &self.levels[0]
    }

    /// Levels below the root.
    pub fn depth(&self) -> usize {
        self.levels.len() - 1
    }

    /// The sibling path of leaf `index`, bottom up.
    pub fn path(&self, index: usize) -> Result<Vec<Fr>, MerkleError> {
        let len = self.levels[0].len();
        if index >= len {
            return Err(MerkleError::Index { index, len });
        }
        let mut i = index;
        let mut out = Vec::with_capacity(self.depth());
        for level in &self.levels[..self.depth()] {
            out.push(level[i ^ 1]);
            i >>= 1;
        }
        Ok(out)
    }
}

/// The levels of a tree from level `h` up (level 0 being the leaves): what a prover keeps of a
/// replica's tree, `2^-h` of the tree's size. An opening rebuilds the `2^h`-leaf subtree of
/// its leaf from the replica and takes the rest of the path from here ([`TopLevels::path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopLevels {
    h: usize,
    levels: Vec<Vec<Fr>>,
}

impl MerkleTree {
    /// The levels from `h` up (`h` at most the depth).
    pub fn top(&self, h: usize) -> TopLevels {
        let h = h.min(self.depth());
        TopLevels {
            h,
            levels: self.levels[h..].to_vec(),
        }
    }
}

impl TopLevels {
    /// The level the kept levels start at.
    pub fn h(&self) -> usize {
        self.h
    }

    /// Field elements kept, for a tree of `leaves` leaves from level `h` (`h` at most its depth).
    pub fn count(leaves: usize, h: usize) -> usize {
        let mut n = leaves >> h;
        let mut total = 0;
        while n >= 1 {
            total += n;
            if n == 1 {
                break;
            }
            n >>= 1;
        }
        total
    }

    /// The kept levels, bottom up, 32 bytes (little-endian, canonical) per element.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 * self.levels.iter().map(Vec::len).sum::<usize>());
        for x in self.levels.iter().flatten() {
            out.extend_from_slice(&x.into_bigint().to_bytes_le());
        }
        out
    }

    /// Decodes the levels from `h` up of a tree of `leaves` leaves; `None` unless `bytes` is
    /// exactly that, canonical.
    pub fn decode(bytes: &[u8], leaves: usize, h: usize) -> Option<Self> {
        if leaves == 0 || !leaves.is_power_of_two() || h > leaves.trailing_zeros() as usize {
            return None;
        }
        if bytes.len() != 32 * Self::count(leaves, h) {
            return None;
        }
        let mut xs = bytes.chunks_exact(32).map(|c| {
            let x = Fr::from_le_bytes_mod_order(c);
            (x.into_bigint().to_bytes_le() == c).then_some(x)
        });
        let mut levels = Vec::new();
        let mut n = leaves >> h;
        loop {
            levels.push(
                (0..n)
                    .map(|_| xs.next().flatten())
                    .collect::<Option<Vec<_>>>()?,
            );
            if n == 1 {
                break;
            }
            n >>= 1;
        }
        Some(TopLevels { h, levels })
    }

    /// The root.
    pub fn root(&self) -> Fr {
        top_of(&self.levels)
    }

    /// The path of leaf `index`, given the `2^h` leaves of its subtree (leaves
    /// `index >> h << h` on). Errors when the subtree does not hash to the kept node (the
    /// replica on disk changed) or the index is out of range.
    pub fn path(&self, index: usize, subtree: &[Fr]) -> Result<Vec<Fr>, MerkleError> {
        let top = index >> self.h;
        let len = self.levels.first().map_or(0, Vec::len) << self.h;
        if index >= len || subtree.len() != 1 << self.h {
            return Err(MerkleError::Index { index, len });
        }
        let sub = MerkleTree::new(subtree)?;
        if sub.root() != self.levels[0][top] {
            return Err(MerkleError::Subtree(top));
        }
        let mut out = sub.path(index & ((1 << self.h) - 1))?;
        let mut i = top;
        for level in &self.levels[..self.levels.len() - 1] {
            out.push(level[i ^ 1]);
            i >>= 1;
        }
        Ok(out)
    }
}

/// The root implied by a leaf value, its index and its sibling path.
pub fn root_from_path(leaf: Fr, index: u64, path: &[Fr]) -> Fr {
    let mut cur = leaf;
    for (level, sib) in path.iter().enumerate() {
        cur = if index >> level & 1 == 1 {
            hash(Domain::Node, &[*sib, cur])
        } else {
            hash(Domain::Node, &[cur, *sib])
        };
    }
    cur
}

/// Whether `path` opens `leaf` at `index` under `root`.
pub fn verify(root: Fr, leaf: Fr, index: u64, path: &[Fr]) -> bool {
    path.len() < 64 && index >> path.len() == 0 && root_from_path(leaf, index, path) == root
}

/// Splits `index` into `depth` little-endian bits and enforces that they recompose to it
/// (so the bits, and with them the path's left/right choices, are bound to the index).
pub fn index_bits(index: &FpVar<Fr>, depth: usize) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    let value = index.value().ok();
    let bits: Vec<Boolean<Fr>> = (0..depth)
        .map(|i| {
            Boolean::new_witness(index.cs(), || {
                let v = value.ok_or(SynthesisError::AssignmentMissing)?;
                let limbs = v.into_bigint();
                Ok(limbs.get_bit(i))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut acc = FpVar::<Fr>::zero();
    let mut pow = Fr::from(1u64);
    for b in &bits {
        acc += FpVar::from(b.clone()) * pow;
        pow.double_in_place();
    }
    acc.enforce_equal(index)?;
    Ok(bits)
}

/// The root implied by a leaf, index bits and a sibling path, as constraints.
pub fn root_from_path_var(
    leaf: &FpVar<Fr>,
    bits: &[Boolean<Fr>],
    path: &[FpVar<Fr>],
) -> Result<FpVar<Fr>, SynthesisError> {
    let mut cur = leaf.clone();
    for (bit, sib) in bits.iter().zip(path) {
        let left = FpVar::conditionally_select(bit, sib, &cur)?;
        let right = FpVar::conditionally_select(bit, &cur, sib)?;
        cur = hash_var(Domain::Node, &[left, right])?;
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_relations::gr1cs::ConstraintSystem;

    fn leaves(n: u64) -> Vec<Fr> {
        (0..n).map(|i| Fr::from(i * 31 + 7)).collect()
    }

    #[test]
    fn levels_hashed_in_lanes_equal_one_by_one() {
        // counts below, at and above a batch of eight lanes, and past the parallel split
        for n in [1u64, 3, 8, 9, 17, 5000] {
            let xs: Vec<Fr> = leaves(2 * n).iter().map(|x| *x * x - Fr::from(n)).collect();
            let leaf_hashes: Vec<Fr> = xs.iter().map(|x| hash(Domain::Leaf, &[*x])).collect();
            assert_eq!(hash_all(Domain::Leaf, &xs, 1), leaf_hashes, "{n} leaves");
            let nodes: Vec<Fr> = xs.chunks(2).map(|p| hash(Domain::Node, p)).collect();
            assert_eq!(hash_all(Domain::Node, &xs, 2), nodes, "{n} nodes");
        }
    }

    #[test]
    fn native_paths_verify_and_bind_the_index() {
        let t = MerkleTree::new(&leaves(16)).unwrap();
        for i in 0..16u64 {
            let p = t.path(i as usize).unwrap();
            assert!(verify(t.root(), leaves(16)[i as usize], i, &p));
            assert!(!verify(t.root(), leaves(16)[i as usize], i ^ 1, &p));
            assert!(!verify(
                t.root(),
                leaves(16)[i as usize] + Fr::from(1u64),
                i,
                &p
            ));
            assert!(!verify(t.root(), leaves(16)[i as usize], i + 16, &p));
        }
        assert_eq!(
            MerkleTree::new(&leaves(3)).unwrap_err(),
            MerkleError::Shape(3)
        );
        assert!(t.path(16).is_err());
    }

    #[test]
    fn kept_top_levels_give_the_full_trees_paths() {
        for (n, h) in [(64u64, 3usize), (64, 0), (64, 6), (8, 10), (1 << 12, 10)] {
            let xs = leaves(n);
            let t = MerkleTree::new(&xs).unwrap();
            let top = t.top(h);
            let h = top.h();
            let bytes = top.encode();
            assert_eq!(bytes.len(), 32 * TopLevels::count(n as usize, h));
            let back = TopLevels::decode(&bytes, n as usize, h).unwrap();
            assert_eq!(back, top);
            assert_eq!(back.root(), t.root());
            for i in [0usize, 1, 5, n as usize - 1] {
                let start = i >> h << h;
                let sub = &xs[start..start + (1 << h)];
                assert_eq!(
                    back.path(i, sub).unwrap(),
                    t.path(i).unwrap(),
                    "{n} {h} {i}"
                );
            }
            // a changed leaf in the subtree is caught
            let mut sub = xs[..1 << h].to_vec();
            sub[0] += Fr::from(1u64);
            assert!(back.path(0, &sub).is_err());
            // wrong lengths and non-canonical bytes do not decode
            assert!(TopLevels::decode(&bytes[1..], n as usize, h).is_none());
            assert!(TopLevels::decode(&bytes, n as usize, 200).is_none());
            let mut bad = bytes.clone();
            bad[..32].copy_from_slice(&[0xff; 32]);
            assert!(TopLevels::decode(&bad, n as usize, h).is_none());
        }
    }

    #[test]
    fn circuit_agrees_with_native_and_cost_is_pinned() {
        let t = MerkleTree::new(&leaves(32)).unwrap();
        let i = 13u64;
        let p = t.path(i as usize).unwrap();
        let cs = ConstraintSystem::<Fr>::new_ref();
        let leaf = FpVar::new_witness(cs.clone(), || Ok(leaves(32)[i as usize])).unwrap();
        let index = FpVar::new_input(cs.clone(), || Ok(Fr::from(i))).unwrap();
        let root = FpVar::new_input(cs.clone(), || Ok(t.root())).unwrap();
        let path: Vec<FpVar<Fr>> = p
            .iter()
            .map(|s| FpVar::new_witness(cs.clone(), || Ok(*s)).unwrap())
            .collect();
        let before = cs.num_constraints();
        let bits = index_bits(&index, 5).unwrap();
        let got = root_from_path_var(&leaf, &bits, &path).unwrap();
        got.enforce_equal(&root).unwrap();
        assert_eq!(got.value().unwrap(), t.root());
        assert!(cs.is_satisfied().unwrap());
        // depth 5: 5 node hashes (240 each), 2 selects per level, 5 boolean bits, 1
        // recomposition, 1 root equality
        let cost = cs.num_constraints() - before;
        assert_eq!(cost, 5 * 240 + 5 * 2 + 5 + 1 + 1, "{cost}");
    }

    #[test]
    fn circuit_rejects_a_wrong_index_leaf_or_path() {
        let t = MerkleTree::new(&leaves(8)).unwrap();
        let p = t.path(3).unwrap();
        let cases: [(u64, Fr, usize); 3] = [
            (2, leaves(8)[3], usize::MAX),                  // wrong index
            (3, leaves(8)[3] + Fr::from(1u64), usize::MAX), // wrong leaf
            (3, leaves(8)[3], 1),                           // wrong sibling at level 1
        ];
        for (idx, leaf_v, bad) in cases {
            let cs = ConstraintSystem::<Fr>::new_ref();
            let leaf = FpVar::new_witness(cs.clone(), || Ok(leaf_v)).unwrap();
            let index = FpVar::new_input(cs.clone(), || Ok(Fr::from(idx))).unwrap();
            let root = FpVar::new_input(cs.clone(), || Ok(t.root())).unwrap();
            let path: Vec<FpVar<Fr>> = p
                .iter()
                .enumerate()
                .map(|(l, s)| {
                    let v = if l == bad { *s + Fr::from(1u64) } else { *s };
                    FpVar::new_witness(cs.clone(), || Ok(v)).unwrap()
                })
                .collect();
            let bits = index_bits(&index, 3).unwrap();
            root_from_path_var(&leaf, &bits, &path)
                .unwrap()
                .enforce_equal(&root)
                .unwrap();
            assert!(!cs.is_satisfied().unwrap(), "index {idx}, bad level {bad}");
        }
    }
}
