//! Binary Poseidon Merkle trees, natively and as an R1CS gadget. Leaves are hashed under
//! [`Domain::Leaf`], inner nodes under [`Domain::Node`]; a path is bound to its index (a public
//! input in circuits) bit by bit, so an opening cannot be replayed at another position.

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
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MerkleError {
    /// The leaf count is not a power of two (or is zero).
    #[error("a tree needs a power-of-two number of leaves, got {0}")]
    Shape(usize),
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
fn hash_all(domain: Domain, inputs: &[Fr], arity: usize) -> Vec<Fr> {
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

/// A complete tree: `levels[0]` are the hashed leaves, the last level is the root.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    levels: Vec<Vec<Fr>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (raw values; they are hashed as leaves).
    pub fn new(leaves: &[Fr]) -> Result<Self, MerkleError> {
        if leaves.is_empty() || !leaves.len().is_power_of_two() {
            return Err(MerkleError::Shape(leaves.len()));
        }
        let mut levels = vec![hash_all(Domain::Leaf, leaves, 1)];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().map(Vec::as_slice).unwrap_or_default();
            let next = hash_all(Domain::Node, prev, 2);
            levels.push(next);
        }
        Ok(MerkleTree { levels })
    }

    /// The root.
    pub fn root(&self) -> Fr {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
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

/// The root implied by a leaf value, its index and its sibling path.
pub fn root_from_path(leaf: Fr, index: u64, path: &[Fr]) -> Fr {
    let mut cur = hash(Domain::Leaf, &[leaf]);
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
    let mut cur = hash_var(Domain::Leaf, std::slice::from_ref(leaf))?;
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
        // depth 5: leaf hash (237), 5 node hashes (240 each), 2 selects per level, 5 boolean
        // bits, 1 recomposition, 1 root equality
        let cost = cs.num_constraints() - before;
        assert_eq!(cost, 237 + 5 * 240 + 5 * 2 + 5 + 1 + 1, "{cost}");
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
