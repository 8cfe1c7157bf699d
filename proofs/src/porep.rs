//! The seal proof (PoRep): for `k` challenged nodes, the circuit shows that each was labelled
//! from its parents on the public graph and encoded into the replica, against the public
//! `comm_d`, `comm_r` and `replica_id`.
//!
//! Per challenged node `j` (in `1..n`; node 0 has no same-layer parents and is never
//! challenged): the columns (all layers' labels) of `j` and of every parent are opened against
//! `comm_c`; each layer's label of `j` is recomputed from `replica_id`, the layer, `j` and the
//! parents' labels; the data leaf is opened against `comm_d`, the replica leaf against
//! `comm_r_last`, and `replica_j = data_j + label_{L-1, j}` is enforced; once per proof,
//! `comm_r = H_CommR(comm_c, comm_r_last)`.
//!
//! Public inputs, in order: `replica_id`, `comm_d`, `comm_r`, then per challenge `j` and its
//! parent indices (per layer: 6 same-layer parents, then, above layer 0, 8 from the layer
//! below). The verifier derives every one of them from public values ([`public_inputs`]):
//! `j_i = 1 + H_Challenge(replica_id, comm_r, i) mod (n - 1)` and the graph.

use crate::merkle::{index_bits, root_from_path_var, MerkleTree};
use crate::poseidon::{hash, hash_var, Domain};
use crate::sdr::{self, parents, Sealed, SectorParams, BASE_PARENTS, EXP_PARENTS};
use ark_bn254::Fr;
use ark_ff::PrimeField;
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

/// The `i`-th seal challenge: a node in `1..n`.
pub fn seal_challenge(replica_id: Fr, comm_r: Fr, i: u64, nodes: usize) -> usize {
    let h = hash(Domain::Challenge, &[replica_id, comm_r, Fr::from(i)]);
    1 + (h.into_bigint().0[0] % (nodes as u64 - 1)) as usize
}

/// The parent indices of node `j`, in public-input order.
fn parent_indices(p: &SectorParams, j: usize) -> Vec<usize> {
    let mut v = Vec::new();
    for l in 0..p.layers {
        let ps = parents(p, l, j);
        for par in ps.iter().take(BASE_PARENTS) {
            v.push(par.map(|x| x.1).unwrap_or(0));
        }
        if l > 0 {
            for par in ps.iter().skip(BASE_PARENTS) {
                v.push(par.map(|x| x.1).unwrap_or(0));
            }
        }
    }
    v
}

/// Public inputs for a seal proof with `k` challenges.
pub fn public_inputs(
    p: &SectorParams,
    k: usize,
    replica_id: Fr,
    comm_d: Fr,
    comm_r: Fr,
) -> Vec<Fr> {
    let mut v = vec![replica_id, comm_d, comm_r];
    for i in 0..k as u64 {
        let j = seal_challenge(replica_id, comm_r, i, p.nodes);
        v.push(Fr::from(j as u64));
        v.extend(parent_indices(p, j).into_iter().map(|x| Fr::from(x as u64)));
    }
    v
}

/// An opened column: the labels of a node in every layer, and its path in the column tree.
#[derive(Debug, Clone)]
struct ColumnOpening {
    labels: Vec<Fr>,
    path: Vec<Fr>,
}

#[derive(Debug, Clone)]
struct ChallengeWitness {
    node: ColumnOpening,
    parents: Vec<ColumnOpening>,
    data: Fr,
    data_path: Vec<Fr>,
    replica: Fr,
    replica_path: Vec<Fr>,
}

/// The seal circuit.
#[derive(Debug, Clone)]
pub struct SealCircuit {
    params: SectorParams,
    challenges: usize,
    public: Option<Vec<Fr>>,
    comm_c: Option<Fr>,
    comm_r_last: Option<Fr>,
    witness: Vec<Option<ChallengeWitness>>,
}

impl SealCircuit {
    /// A circuit with no values, for key generation.
    pub fn blank(params: SectorParams, challenges: usize) -> Self {
        SealCircuit {
            params,
            challenges,
            public: None,
            comm_c: None,
            comm_r_last: None,
            witness: vec![None; challenges],
        }
    }

    /// The circuit proving that `sealed` (of `data`) was sealed correctly.
    pub fn prove_for(
        params: &SectorParams,
        challenges: usize,
        data: &[u8],
        sealed: &Sealed,
    ) -> Result<Self, sdr::SealError> {
        let labels = sdr::labels(params, sealed.replica_id)?;
        Self::prove_with_labels(params, challenges, data, sealed, &labels)
    }

    /// [`SealCircuit::prove_for`] with the labels sealing already computed (`labels[layer][node]`),
    /// so a node labels each sector once.
    pub fn prove_with_labels(
        params: &SectorParams,
        challenges: usize,
        data: &[u8],
        sealed: &Sealed,
        labels: &[Vec<Fr>],
    ) -> Result<Self, sdr::SealError> {
        let d = sdr::leaves_from_bytes(data, params)?;
        let cols: Vec<Fr> = (0..params.nodes).map(|i| sdr::column(labels, i)).collect();
        let col_tree = MerkleTree::new(&cols)?;
        let d_tree = MerkleTree::new(&d)?;
        let r_tree = MerkleTree::new(&sealed.replica)?;
        let open = |i: usize| -> Result<ColumnOpening, sdr::SealError> {
            Ok(ColumnOpening {
                labels: labels.iter().map(|l| l[i]).collect(),
                path: col_tree.path(i)?,
            })
        };
        let mut witness = Vec::new();
        for c in 0..challenges as u64 {
            let j = seal_challenge(sealed.replica_id, sealed.comm_r, c, params.nodes);
            witness.push(Some(ChallengeWitness {
                node: open(j)?,
                parents: parent_indices(params, j)
                    .into_iter()
                    .map(open)
                    .collect::<Result<_, _>>()?,
                data: d[j],
                data_path: d_tree.path(j)?,
                replica: sealed.replica[j],
                replica_path: r_tree.path(j)?,
            }));
        }
        Ok(SealCircuit {
            params: params.clone(),
            challenges,
            public: Some(public_inputs(
                params,
                challenges,
                sealed.replica_id,
                sealed.comm_d,
                sealed.comm_r,
            )),
            comm_c: Some(sealed.comm_c),
            comm_r_last: Some(sealed.comm_r_last),
            witness,
        })
    }

    /// Changes one label of the first challenge's first parent (tests play a cheater).
    pub fn tamper_parent_label(mut self) -> Self {
        if let Some(Some(w)) = self.witness.first_mut() {
            if let Some(p) = w.parents.first_mut() {
                p.labels[0] += Fr::from(1u64);
            }
        }
        self
    }

    /// Changes `comm_c` (tests play a cheater).
    pub fn tamper_comm_c(mut self) -> Self {
        self.comm_c = self.comm_c.map(|c| c + Fr::from(1u64));
        self
    }
}

fn depth(p: &SectorParams) -> usize {
    p.nodes.trailing_zeros() as usize
}

impl ConstraintSynthesizer<Fr> for SealCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let miss = || SynthesisError::AssignmentMissing;
        let p = &self.params;
        let dep = depth(p);
        let mut next_public = 0usize;
        let public = self.public.clone();
        let mut input = |cs: &ConstraintSystemRef<Fr>| {
            let i = next_public;
            next_public += 1;
            FpVar::new_input(cs.clone(), || {
                public
                    .as_ref()
                    .and_then(|v| v.get(i).copied())
                    .ok_or(miss())
            })
        };
        let replica_id = input(&cs)?;
        let comm_d = input(&cs)?;
        let comm_r = input(&cs)?;
        let comm_c = FpVar::new_witness(cs.clone(), || self.comm_c.ok_or(miss()))?;
        let comm_r_last = FpVar::new_witness(cs.clone(), || self.comm_r_last.ok_or(miss()))?;
        hash_var(Domain::CommR, &[comm_c.clone(), comm_r_last.clone()])?.enforce_equal(&comm_r)?;
        let witness = |cs: &ConstraintSystemRef<Fr>, v: Option<Fr>| {
            FpVar::new_witness(cs.clone(), || v.ok_or(miss()))
        };
        // a column opened at a public index: its labels, checked against comm_c
        let open_column = |cs: &ConstraintSystemRef<Fr>,
                           index: &FpVar<Fr>,
                           col: Option<&ColumnOpening>|
         -> Result<Vec<FpVar<Fr>>, SynthesisError> {
            let labels = (0..p.layers)
                .map(|l| witness(cs, col.and_then(|c| c.labels.get(l).copied())))
                .collect::<Result<Vec<_>, _>>()?;
            let path = (0..dep)
                .map(|l| witness(cs, col.and_then(|c| c.path.get(l).copied())))
                .collect::<Result<Vec<_>, _>>()?;
            let leaf = hash_var(Domain::Column, &labels)?;
            // the column tree hashes the column value as its leaf
            let bits = index_bits(index, dep)?;
            root_from_path_var(&leaf, &bits, &path)?.enforce_equal(&comm_c)?;
            Ok(labels)
        };
        for c in 0..self.challenges {
            let w = self.witness.get(c).cloned().flatten();
            let j = input(&cs)?;
            let node = open_column(&cs, &j, w.as_ref().map(|w| &w.node))?;
            let mut slot = 0usize;
            for l in 0..p.layers {
                let mut parent_labels = Vec::with_capacity(BASE_PARENTS + EXP_PARENTS);
                let n_par = if l > 0 {
                    BASE_PARENTS + EXP_PARENTS
                } else {
                    BASE_PARENTS
                };
                for k in 0..n_par {
                    let idx = input(&cs)?;
                    let col = open_column(&cs, &idx, w.as_ref().and_then(|w| w.parents.get(slot)))?;
                    slot += 1;
                    // same-layer parents give their layer-l label, the others layer l-1
                    parent_labels.push(if k < BASE_PARENTS {
                        col[l].clone()
                    } else {
                        col[l - 1].clone()
                    });
                }
                if l == 0 {
                    parent_labels.extend((0..EXP_PARENTS).map(|_| FpVar::Constant(Fr::from(0u64))));
                }
                let mut inputs = vec![
                    replica_id.clone(),
                    FpVar::Constant(Fr::from(l as u64)),
                    j.clone(),
                ];
                inputs.extend(parent_labels);
                hash_var(Domain::Label, &inputs)?.enforce_equal(&node[l])?;
            }
            // data and replica leaves at j, and the encoding
            let data = witness(&cs, w.as_ref().map(|w| w.data))?;
            let data_path = (0..dep)
                .map(|l| witness(&cs, w.as_ref().and_then(|w| w.data_path.get(l).copied())))
                .collect::<Result<Vec<_>, _>>()?;
            let replica = witness(&cs, w.as_ref().map(|w| w.replica))?;
            let replica_path = (0..dep)
                .map(|l| witness(&cs, w.as_ref().and_then(|w| w.replica_path.get(l).copied())))
                .collect::<Result<Vec<_>, _>>()?;
            let bits = index_bits(&j, dep)?;
            root_from_path_var(&data, &bits, &data_path)?.enforce_equal(&comm_d)?;
            root_from_path_var(&replica, &bits, &replica_path)?.enforce_equal(&comm_r_last)?;
            (data + &node[p.layers - 1]).enforce_equal(&replica)?;
        }
        Ok(())
    }
}
