//! The seal proof (PoRep), format 2: for `k` challenged nodes, that each was labelled from its
//! parents on the public graph and encoded into the replica, against the public `comm_d`,
//! `comm_r` and `replica_id`. It has two parts:
//!
//! - **The revealed columns** ([`reveal`]): per challenge `j`, the labels in every layer of `j`
//!   and of each of its parents (in [`parent_indices`] order), `k × C × L` field elements with
//!   `C = 1 + 6L + 8(L-1)` columns per challenge. The verifier recomputes every label of `j`
//!   from its parents' revealed labels with SHA-256 ([`check_revealed`]); SHA-256 is fast
//!   natively and costly in a circuit, so it stays out of the circuit.
//! - **A Groth16 proof** ([`SealCircuit`]) that the revealed labels are exactly the columns
//!   committed in `comm_c` at those indices (each column hashed and opened), that the data leaf
//!   at `j` opens against `comm_d` and the replica leaf against `comm_r_last`, that
//!   `replica_j = data_j + label_{L-1, j}`, and that `comm_r = H_CommR(comm_c, comm_r_last)`.
//!   The indices and labels enter as one public input, their Poseidon digest
//!   `H_Reveal(j, parent indices, labels, ...)` ([`digest`]), which the verifier computes from
//!   the indices it derived and the labels it checked.
//!
//! Public inputs, in order: `replica_id`, `comm_d`, `comm_r`, the digest. Challenges:
//! `j_i = 1 + H_Challenge(replica_id, comm_r, i) mod (n - 1)` for the proof a sector record
//! carries (node 0 has no parents and is never challenged), and
//! `j_i = 1 + H_Challenge(replica_id, comm_r, i, seed) mod (n - 1)` for a *seal check*, whose
//! `seed` ([`check_seed`]) comes from an auditor's nonce drawn after the record was public, so
//! the prover cannot grind those challenges by sealing again. The proof's cost depends on `k`,
//! `L` and the tree depth only, never on the sector's size otherwise.

use crate::merkle::{index_bits, root_from_path_var};
use crate::poseidon::{hash, hash_var, Domain};
use crate::sdr::{self, fr_label, label, parents, SealWork, Sealed, SectorParams};
use crate::sdr::{BASE_PARENTS, EXP_PARENTS};
use ark_bn254::Fr;
use ark_ff::PrimeField;
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use thiserror::Error;

/// Why revealed columns are refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RevealError {
    /// Not `k × C × L` labels.
    #[error("{got} revealed labels, the parameters need {want}")]
    Length {
        /// Labels given.
        got: usize,
        /// Labels needed.
        want: usize,
    },
    /// A challenged node's label is not the SHA-256 of its parents' revealed labels.
    #[error("challenge {challenge}: the layer-{layer} label of node {node} does not follow from its parents")]
    Label {
        /// The challenge number.
        challenge: usize,
        /// The node.
        node: usize,
        /// The layer.
        layer: usize,
    },
}

/// The `i`-th seal challenge of a sector record's own proof: a node in `1..n`.
pub fn seal_challenge(replica_id: Fr, comm_r: Fr, i: u64, nodes: usize) -> usize {
    challenge(replica_id, comm_r, None, i, nodes)
}

/// The `i`-th challenge of a seal check seeded by `seed` ([`check_seed`]): a node in `1..n`.
pub fn check_challenge(replica_id: Fr, comm_r: Fr, seed: Fr, i: u64, nodes: usize) -> usize {
    challenge(replica_id, comm_r, Some(seed), i, nodes)
}

/// The seed of a seal check from the auditor's nonce: `blake3` in key-derivation mode
/// (context `"cairn seal check v1"`) over the nonce, read little-endian and reduced mod `r`.
pub fn check_seed(nonce: &[u8; 32]) -> Fr {
    Fr::from_le_bytes_mod_order(&blake3::derive_key("cairn seal check v1", nonce))
}

fn challenge(replica_id: Fr, comm_r: Fr, seed: Option<Fr>, i: u64, nodes: usize) -> usize {
    let h = match seed {
        None => hash(Domain::Challenge, &[replica_id, comm_r, Fr::from(i)]),
        Some(s) => hash(Domain::Challenge, &[replica_id, comm_r, Fr::from(i), s]),
    };
    1 + (h.into_bigint().0[0] % (nodes as u64 - 1)) as usize
}

/// The parent indices of node `j` whose columns are opened: per layer `l`, its 6 same-layer
/// parents, then (above layer 0) its 8 parents in layer `l - 1`.
pub fn parent_indices(p: &SectorParams, j: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(columns_per_challenge(p) - 1);
    for l in 0..p.layers {
        let ps = parents(p, l, j);
        let take = if l > 0 {
            BASE_PARENTS + EXP_PARENTS
        } else {
            BASE_PARENTS
        };
        v.extend(ps.iter().take(take).map(|par| par.map_or(0, |x| x.1)));
    }
    v
}

/// Columns opened per challenge: the node and its parents, `1 + 6L + 8(L-1)`.
pub fn columns_per_challenge(p: &SectorParams) -> usize {
    1 + BASE_PARENTS * p.layers + EXP_PARENTS * p.layers.saturating_sub(1)
}

/// Labels revealed by a seal proof with `k` challenges.
pub fn revealed_len(p: &SectorParams, k: usize) -> usize {
    k * columns_per_challenge(p) * p.layers
}

/// The `k` challenges and, per challenge, the opened column indices (the node first).
fn opened(
    p: &SectorParams,
    k: usize,
    replica_id: Fr,
    comm_r: Fr,
    seed: Option<Fr>,
) -> Vec<Vec<usize>> {
    (0..k as u64)
        .map(|i| {
            let j = challenge(replica_id, comm_r, seed, i, p.nodes);
            let mut idx = vec![j];
            idx.extend(parent_indices(p, j));
            idx
        })
        .collect()
}

/// The labels a seal proof reveals, from what sealing kept.
pub fn reveal(p: &SectorParams, k: usize, sealed: &Sealed, work: &SealWork) -> Vec<Fr> {
    reveal_for(p, k, sealed, work, None)
}

fn reveal_for(
    p: &SectorParams,
    k: usize,
    sealed: &Sealed,
    work: &SealWork,
    seed: Option<Fr>,
) -> Vec<Fr> {
    let mut out = Vec::with_capacity(revealed_len(p, k));
    for idx in opened(p, k, sealed.replica_id, sealed.comm_r, seed) {
        for i in idx {
            out.extend(work.labels.iter().map(|layer| layer[i]));
        }
    }
    out
}

/// `H_Reveal` over, per challenge, its node, its parent indices and its revealed labels.
pub fn digest(p: &SectorParams, k: usize, replica_id: Fr, comm_r: Fr, revealed: &[Fr]) -> Fr {
    digest_for(p, k, replica_id, comm_r, None, revealed)
}

fn digest_for(
    p: &SectorParams,
    k: usize,
    replica_id: Fr,
    comm_r: Fr,
    seed: Option<Fr>,
    revealed: &[Fr],
) -> Fr {
    let per = columns_per_challenge(p) * p.layers;
    let mut all = Vec::with_capacity(revealed.len() + k * columns_per_challenge(p));
    for (c, idx) in opened(p, k, replica_id, comm_r, seed)
        .into_iter()
        .enumerate()
    {
        all.extend(idx.into_iter().map(|i| Fr::from(i as u64)));
        all.extend(revealed.iter().skip(c * per).take(per));
    }
    hash(Domain::Reveal, &all)
}

/// Checks revealed labels: for every challenge `j` and layer `l`, the revealed label of `j`
/// is the SHA-256 label of its parents' revealed labels. Returns their [`digest`].
pub fn check_revealed(
    p: &SectorParams,
    k: usize,
    replica_id: Fr,
    comm_r: Fr,
    revealed: &[Fr],
) -> Result<Fr, RevealError> {
    check_revealed_for(p, k, replica_id, comm_r, None, revealed)
}

/// [`check_revealed`] for a seal check's challenges (`seed`: [`check_seed`] of the auditor's
/// nonce; `None`: the record's own challenges).
pub fn check_revealed_for(
    p: &SectorParams,
    k: usize,
    replica_id: Fr,
    comm_r: Fr,
    seed: Option<Fr>,
    revealed: &[Fr],
) -> Result<Fr, RevealError> {
    let want = revealed_len(p, k);
    if revealed.len() != want || p.nodes < 2 || p.layers == 0 {
        return Err(RevealError::Length {
            got: revealed.len(),
            want,
        });
    }
    let rid = fr_label(&replica_id);
    let per = columns_per_challenge(p) * p.layers;
    for (c, idx) in opened(p, k, replica_id, comm_r, seed)
        .into_iter()
        .enumerate()
    {
        let cols = &revealed[c * per..(c + 1) * per];
        let at = |col: usize, layer: usize| fr_label(&cols[col * p.layers + layer]);
        let mut slot = 1usize;
        for l in 0..p.layers {
            let mut par = [[0u8; 32]; BASE_PARENTS + EXP_PARENTS];
            for (k, x) in par.iter_mut().enumerate().take(BASE_PARENTS) {
                *x = at(slot + k, l);
            }
            slot += BASE_PARENTS;
            if l > 0 {
                for (k, x) in par.iter_mut().enumerate().skip(BASE_PARENTS) {
                    *x = at(slot + k - BASE_PARENTS, l - 1);
                }
                slot += EXP_PARENTS;
            }
            if label(&rid, l, idx[0], &par) != at(0, l) {
                return Err(RevealError::Label {
                    challenge: c,
                    node: idx[0],
                    layer: l,
                });
            }
        }
    }
    Ok(digest_for(p, k, replica_id, comm_r, seed, revealed))
}

/// Public inputs of a seal proof whose revealed labels have digest `digest`.
pub fn public_inputs(replica_id: Fr, comm_d: Fr, comm_r: Fr, digest: Fr) -> Vec<Fr> {
    vec![replica_id, comm_d, comm_r, digest]
}

/// An opened column: its index, the labels of the node in every layer, and its path in the
/// column tree.
#[derive(Debug, Clone)]
struct ColumnOpening {
    index: usize,
    labels: Vec<Fr>,
    path: Vec<Fr>,
}

#[derive(Debug, Clone)]
struct ChallengeWitness {
    columns: Vec<ColumnOpening>,
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
    public: Option<[Fr; 4]>,
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

    /// The circuit proving that `sealed` was sealed correctly, from the labels and trees
    /// sealing kept, and the labels it reveals ([`reveal`]).
    pub fn prove_with_work(
        params: &SectorParams,
        challenges: usize,
        sealed: &Sealed,
        work: &SealWork,
    ) -> Result<(Self, Vec<Fr>), sdr::SealError> {
        Self::prove_for(params, challenges, sealed, work, None)
    }

    /// The circuit answering a seal check seeded by `seed` ([`check_seed`]), and the labels
    /// it reveals: the same statement as [`SealCircuit::prove_with_work`] over the check's
    /// challenges (the same keys prove and verify both).
    pub fn prove_check(
        params: &SectorParams,
        challenges: usize,
        sealed: &Sealed,
        work: &SealWork,
        seed: Fr,
    ) -> Result<(Self, Vec<Fr>), sdr::SealError> {
        Self::prove_for(params, challenges, sealed, work, Some(seed))
    }

    fn prove_for(
        params: &SectorParams,
        challenges: usize,
        sealed: &Sealed,
        work: &SealWork,
        seed: Option<Fr>,
    ) -> Result<(Self, Vec<Fr>), sdr::SealError> {
        let open = |i: usize| -> Result<ColumnOpening, sdr::SealError> {
            Ok(ColumnOpening {
                index: i,
                labels: work.labels.iter().map(|l| l[i]).collect(),
                path: work.columns.path(i)?,
            })
        };
        let mut witness = Vec::with_capacity(challenges);
        for idx in opened(params, challenges, sealed.replica_id, sealed.comm_r, seed) {
            let j = idx[0];
            witness.push(Some(ChallengeWitness {
                columns: idx.into_iter().map(open).collect::<Result<_, _>>()?,
                data: work.data.leaves()[j],
                data_path: work.data.path(j)?,
                replica: work.replica.leaves()[j],
                replica_path: work.replica.path(j)?,
            }));
        }
        let revealed = reveal_for(params, challenges, sealed, work, seed);
        let d = digest_for(
            params,
            challenges,
            sealed.replica_id,
            sealed.comm_r,
            seed,
            &revealed,
        );
        let circuit = SealCircuit {
            params: params.clone(),
            challenges,
            public: Some([sealed.replica_id, sealed.comm_d, sealed.comm_r, d]),
            comm_c: Some(sealed.comm_c),
            comm_r_last: Some(sealed.comm_r_last),
            witness,
        };
        Ok((circuit, revealed))
    }

    /// Changes one label of the first challenge's first parent column (tests play a cheater
    /// whose opening does not match `comm_c`).
    pub fn tamper_parent_label(mut self) -> Self {
        if let Some(Some(w)) = self.witness.first_mut() {
            if let Some(p) = w.columns.get_mut(1) {
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

impl ConstraintSynthesizer<Fr> for SealCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let miss = || SynthesisError::AssignmentMissing;
        let p = &self.params;
        let dep = p.nodes.trailing_zeros() as usize;
        let public = self.public;
        let input = |i: usize| FpVar::new_input(cs.clone(), || public.map(|v| v[i]).ok_or(miss()));
        let replica_id = input(0)?;
        let comm_d = input(1)?;
        let comm_r = input(2)?;
        let digest = input(3)?;
        // replica_id is bound to the proof as an input; the labels were checked outside
        let _ = replica_id;
        let comm_c = FpVar::new_witness(cs.clone(), || self.comm_c.ok_or(miss()))?;
        let comm_r_last = FpVar::new_witness(cs.clone(), || self.comm_r_last.ok_or(miss()))?;
        hash_var(Domain::CommR, &[comm_c.clone(), comm_r_last.clone()])?.enforce_equal(&comm_r)?;
        let witness = |v: Option<Fr>| FpVar::new_witness(cs.clone(), || v.ok_or(miss()));
        let path_vars = |path: Option<&Vec<Fr>>| {
            (0..dep)
                .map(|l| witness(path.and_then(|p| p.get(l).copied())))
                .collect::<Result<Vec<_>, _>>()
        };
        let columns = columns_per_challenge(p);
        let mut all = Vec::new();
        for c in 0..self.challenges {
            let w = self.witness.get(c).cloned().flatten();
            let mut indices = Vec::with_capacity(columns);
            let mut labels = Vec::with_capacity(columns * p.layers);
            let mut node_bits = Vec::new();
            let mut last_label = None;
            for m in 0..columns {
                let col = w.as_ref().and_then(|w| w.columns.get(m));
                let index = witness(col.map(|c| Fr::from(c.index as u64)))?;
                let ls = (0..p.layers)
                    .map(|l| witness(col.and_then(|c| c.labels.get(l).copied())))
                    .collect::<Result<Vec<_>, _>>()?;
                let path = path_vars(col.map(|c| &c.path))?;
                let leaf = hash_var(Domain::Column, &ls)?;
                let bits = index_bits(&index, dep)?;
                root_from_path_var(&leaf, &bits, &path)?.enforce_equal(&comm_c)?;
                if m == 0 {
                    node_bits = bits;
                    last_label = ls.last().cloned();
                }
                indices.push(index);
                labels.extend(ls);
            }
            // data and replica leaves at the challenged node, and the encoding
            let data = witness(w.as_ref().map(|w| w.data))?;
            let data_path = path_vars(w.as_ref().map(|w| &w.data_path))?;
            let replica = witness(w.as_ref().map(|w| w.replica))?;
            let replica_path = path_vars(w.as_ref().map(|w| &w.replica_path))?;
            root_from_path_var(&data, &node_bits, &data_path)?.enforce_equal(&comm_d)?;
            root_from_path_var(&replica, &node_bits, &replica_path)?.enforce_equal(&comm_r_last)?;
            (data + last_label.ok_or(miss())?).enforce_equal(&replica)?;
            all.extend(indices);
            all.extend(labels);
        }
        hash_var(Domain::Reveal, &all)?.enforce_equal(&digest)?;
        Ok(())
    }
}
