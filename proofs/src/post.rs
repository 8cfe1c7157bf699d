//! Windowed proof of spacetime: for a batch of sectors, `c` leaves per sector, challenged by
//! `H_Challenge(seed, sector, i) mod n` with `seed = H_Challenge(nonce, window)`, are opened
//! against `comm_r_last`, and `comm_r = H_CommR(comm_c, comm_r_last)` is checked.
//!
//! Public inputs, in order: for each sector, `comm_r`, then its `c` challenge indices. The
//! verifier recomputes the indices from the auditor's nonce, the window and the sector ids
//! ([`public_inputs`]); they are inputs, never part of the circuit's shape, so one key serves
//! every window. Witness: `comm_c`, `comm_r_last`, and per challenge the replica leaf and its
//! path.

use crate::merkle::{index_bits, root_from_path_var, MerkleError, MerkleTree, TopLevels};
use crate::poseidon::{hash_var, Domain};
use crate::sdr::{challenge, post_seed, Sealed};
use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField};
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use thiserror::Error;

/// Default challenges per sector.
pub const DEFAULT_CHALLENGES: usize = 10;

/// Proving failures.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PostError {
    /// The batch does not match the circuit's shape.
    #[error("expected {want} sectors of depth {depth}, got {got}")]
    Shape {
        /// Sectors in the circuit.
        want: usize,
        /// Depth of each tree.
        depth: usize,
        /// Sectors given.
        got: usize,
    },
    /// A replica leaf could not be opened (the stored replica or its tree changed).
    #[error("opening a replica leaf: {0}")]
    Open(MerkleError),
}

/// A sealed sector as a window proof needs it: its commitments, and openings of its replica's
/// leaves (the leaf and its path to `comm_r_last`).
pub trait Openable {
    /// `(comm_c, comm_r_last, comm_r)`.
    fn commitments(&self) -> (Fr, Fr, Fr);
    /// Leaves of the replica.
    fn leaves(&self) -> usize;
    /// Leaf `i` and its path.
    fn open(&self, i: usize) -> Result<(Fr, Vec<Fr>), MerkleError>;
}

/// A sealed sector with its replica's whole tree.
struct WithTree<'a>(&'a Sealed, &'a MerkleTree);

impl Openable for WithTree<'_> {
    fn commitments(&self) -> (Fr, Fr, Fr) {
        (self.0.comm_c, self.0.comm_r_last, self.0.comm_r)
    }
    fn leaves(&self) -> usize {
        if self.1.depth() + 1 < usize::BITS as usize && self.0.replica.len() == 1 << self.1.depth()
        {
            self.0.replica.len()
        } else {
            0
        }
    }
    fn open(&self, i: usize) -> Result<(Fr, Vec<Fr>), MerkleError> {
        let leaf = self.0.replica.get(i).copied().ok_or(MerkleError::Index {
            index: i,
            len: self.0.replica.len(),
        })?;
        Ok((leaf, self.1.path(i)?))
    }
}

/// How much of a replica's tree a node keeps: the levels from [`KEPT_FROM`] up
/// ([`TopLevels`]), 1/1024 of the tree; an opening rebuilds one 1,024-leaf subtree (1,023
/// permutations) from the replica.
pub const KEPT_FROM: usize = 10;

/// A sealed sector as a node stores it: the replica's bytes (32 per leaf, little-endian,
/// canonical) and the top of its tree.
#[derive(Debug, Clone)]
pub struct StoredReplica {
    /// `comm_c`.
    pub comm_c: Fr,
    /// `comm_r_last` (the root of `tops`).
    pub comm_r_last: Fr,
    /// `comm_r`.
    pub comm_r: Fr,
    /// The replica, 32 bytes per leaf.
    pub replica: Vec<u8>,
    /// The replica tree's levels from [`KEPT_FROM`] (or its depth) up.
    pub tops: TopLevels,
}

impl StoredReplica {
    /// How a node stores a sealed sector's replica: the replica (32 bytes per leaf,
    /// little-endian) then `tops` encoded ([`TopLevels::encode`]).
    pub fn value(replica: &[Fr], tops: &TopLevels) -> Vec<u8> {
        let tops = tops.encode();
        let mut out = Vec::with_capacity(replica.len() * 32 + tops.len());
        for x in replica {
            out.extend_from_slice(&x.into_bigint().to_bytes_le());
        }
        out.extend_from_slice(&tops);
        out
    }

    /// Reads a stored value ([`StoredReplica::value`]) of a sector of `leaves` leaves whose
    /// commitments are `(comm_c, comm_r_last, comm_r)`; `None` unless its shape is right and its
    /// kept levels end at `comm_r_last`.
    pub fn from_value(
        mut value: Vec<u8>,
        leaves: usize,
        (comm_c, comm_r_last, comm_r): (Fr, Fr, Fr),
    ) -> Option<Self> {
        if leaves == 0 || !leaves.is_power_of_two() || value.len() < leaves.checked_mul(32)? {
            return None;
        }
        let h = KEPT_FROM.min(leaves.trailing_zeros() as usize);
        let tops = TopLevels::decode(&value[leaves * 32..], leaves, h)?;
        if tops.root() != comm_r_last {
            return None;
        }
        value.truncate(leaves * 32);
        Some(StoredReplica {
            comm_c,
            comm_r_last,
            comm_r,
            replica: value,
            tops,
        })
    }
}

impl Openable for StoredReplica {
    fn commitments(&self) -> (Fr, Fr, Fr) {
        (self.comm_c, self.comm_r_last, self.comm_r)
    }
    fn leaves(&self) -> usize {
        self.replica.len() / 32
    }
    fn open(&self, i: usize) -> Result<(Fr, Vec<Fr>), MerkleError> {
        let h = self.tops.h();
        let start = (i >> h << h) * 32;
        let len = self.leaves();
        let bytes = self
            .replica
            .get(start..start + (32 << h))
            .ok_or(MerkleError::Index { index: i, len })?;
        let sub: Vec<Fr> = bytes
            .chunks_exact(32)
            .map(Fr::from_le_bytes_mod_order)
            .collect();
        let path = self.tops.path(i, &sub)?;
        Ok((sub[i & ((1 << h) - 1)], path))
    }
}

/// The shape a key is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Sectors per proof.
    pub sectors: usize,
    /// Leaves per sector = 2^depth.
    pub depth: usize,
    /// Challenges per sector.
    pub challenges: usize,
}

/// One sector's witness.
#[derive(Debug, Clone)]
pub struct SectorWitness {
    /// `comm_c`.
    pub comm_c: Fr,
    /// `comm_r_last`.
    pub comm_r_last: Fr,
    /// Per challenge: the replica leaf and its path.
    pub openings: Vec<(Fr, Vec<Fr>)>,
}

/// The PoSt circuit (values `None` for key generation).
#[derive(Debug, Clone)]
pub struct PostCircuit {
    shape: Shape,
    /// Per sector: comm_r and challenge indices (public).
    public: Vec<Option<(Fr, Vec<u64>)>>,
    witness: Vec<Option<SectorWitness>>,
}

impl PostCircuit {
    /// A circuit with no values, for key generation.
    pub fn blank(shape: Shape) -> Self {
        PostCircuit {
            shape,
            public: vec![None; shape.sectors],
            witness: vec![None; shape.sectors],
        }
    }

    /// The circuit for proving window `window` against `nonce` for `sectors` (id, sealed
    /// sector); builds each replica's Merkle tree (see [`PostCircuit::prove_with_trees`]).
    pub fn prove_for(
        shape: Shape,
        nonce: &[u8; 32],
        window: u64,
        sectors: &[(u64, &Sealed)],
    ) -> Result<Self, PostError> {
        let bad = PostError::Shape {
            want: shape.sectors,
            depth: shape.depth,
            got: sectors.len(),
        };
        let trees = sectors
            .iter()
            .map(|(_, s)| MerkleTree::new(&s.replica).map_err(|_| bad.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let with: Vec<(u64, &Sealed, &MerkleTree)> = sectors
            .iter()
            .zip(&trees)
            .map(|((id, s), t)| (*id, *s, t))
            .collect();
        Self::prove_with_trees(shape, nonce, window, &with)
    }

    /// [`PostCircuit::prove_for`] with each replica's tree already built (a prover keeps them
    /// from sealing): only the challenged paths are read.
    pub fn prove_with_trees(
        shape: Shape,
        nonce: &[u8; 32],
        window: u64,
        sectors: &[(u64, &Sealed, &MerkleTree)],
    ) -> Result<Self, PostError> {
        let with: Vec<(u64, WithTree<'_>)> = sectors
            .iter()
            .map(|(id, s, t)| (*id, WithTree(s, t)))
            .collect();
        let refs: Vec<(u64, &dyn Openable)> = with
            .iter()
            .map(|(id, w)| (*id, w as &dyn Openable))
            .collect();
        Self::prove_with(shape, nonce, window, &refs)
    }

    /// [`PostCircuit::prove_for`] for any sectors that open their replica leaves (a node's
    /// stored sectors: [`StoredReplica`]).
    pub fn prove_with(
        shape: Shape,
        nonce: &[u8; 32],
        window: u64,
        sectors: &[(u64, &dyn Openable)],
    ) -> Result<Self, PostError> {
        let bad = PostError::Shape {
            want: shape.sectors,
            depth: shape.depth,
            got: sectors.len(),
        };
        if sectors.len() != shape.sectors
            || sectors.iter().any(|(_, s)| s.leaves() != 1 << shape.depth)
        {
            return Err(bad);
        }
        let seed = post_seed(nonce, window);
        let mut public = Vec::new();
        let mut witness = Vec::new();
        for (id, s) in sectors {
            let idx: Vec<u64> = (0..shape.challenges as u64)
                .map(|i| challenge(seed, *id, i, 1 << shape.depth) as u64)
                .collect();
            let openings = idx
                .iter()
                .map(|&i| s.open(i as usize).map_err(PostError::Open))
                .collect::<Result<Vec<_>, PostError>>()?;
            let (comm_c, comm_r_last, comm_r) = s.commitments();
            public.push(Some((comm_r, idx)));
            witness.push(Some(SectorWitness {
                comm_c,
                comm_r_last,
                openings,
            }));
        }
        Ok(PostCircuit {
            shape,
            public,
            witness,
        })
    }

    /// Replaces a sector's witness (tests use this to play a cheating prover).
    pub fn with_witness(mut self, sector: usize, w: SectorWitness) -> Self {
        if let Some(slot) = self.witness.get_mut(sector) {
            *slot = Some(w);
        }
        self
    }

    /// The witness of a sector, if set.
    pub fn witness(&self, sector: usize) -> Option<&SectorWitness> {
        self.witness.get(sector).and_then(Option::as_ref)
    }
}

/// The public inputs a verifier computes for window `window`, nonce `nonce` and the sectors'
/// `(id, comm_r)`.
pub fn public_inputs(
    shape: Shape,
    nonce: &[u8; 32],
    window: u64,
    sectors: &[(u64, Fr)],
) -> Vec<Fr> {
    let seed = post_seed(nonce, window);
    let mut v = Vec::new();
    for (id, comm_r) in sectors {
        v.push(*comm_r);
        for i in 0..shape.challenges as u64 {
            v.push(Fr::from(challenge(seed, *id, i, 1 << shape.depth) as u64));
        }
    }
    v
}

impl ConstraintSynthesizer<Fr> for PostCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let miss = || SynthesisError::AssignmentMissing;
        for s in 0..self.shape.sectors {
            let public = self.public.get(s).cloned().flatten();
            let witness = self.witness.get(s).cloned().flatten();
            let comm_r =
                FpVar::new_input(cs.clone(), || public.as_ref().map(|p| p.0).ok_or(miss()))?;
            let idx_vars = (0..self.shape.challenges)
                .map(|i| {
                    FpVar::new_input(cs.clone(), || {
                        public
                            .as_ref()
                            .and_then(|p| p.1.get(i))
                            .map(|&x| Fr::from(x))
                            .ok_or(miss())
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let comm_c = FpVar::new_witness(cs.clone(), || {
                witness.as_ref().map(|w| w.comm_c).ok_or(miss())
            })?;
            let comm_r_last = FpVar::new_witness(cs.clone(), || {
                witness.as_ref().map(|w| w.comm_r_last).ok_or(miss())
            })?;
            hash_var(Domain::CommR, &[comm_c, comm_r_last.clone()])?.enforce_equal(&comm_r)?;
            for (i, index) in idx_vars.iter().enumerate() {
                let opening = witness.as_ref().and_then(|w| w.openings.get(i));
                let leaf = FpVar::new_witness(cs.clone(), || opening.map(|o| o.0).ok_or(miss()))?;
                let path = (0..self.shape.depth)
                    .map(|l| {
                        FpVar::new_witness(cs.clone(), || {
                            opening.and_then(|o| o.1.get(l).copied()).ok_or(miss())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let bits = index_bits(index, self.shape.depth)?;
                root_from_path_var(&leaf, &bits, &path)?.enforce_equal(&comm_r_last)?;
            }
        }
        Ok(())
    }
}
