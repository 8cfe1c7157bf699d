//! Format 1's sealing, kept only as `cairn bench proofs`' baseline ("today's design" of
//! issue 18): labels are Poseidon sponges over (`replica_id`, layer, node, the 14 parent
//! labels), about 10 us each natively even eight sectors at a time, and the seal circuit
//! recomputes every challenged label in the circuit. The graph, the trees and the encoding
//! are format 2's ([`crate::sdr`]), so the baseline measured is, if anything, faster than
//! format 1 was. Nodes never seal or verify with it.

use crate::merkle::{index_bits, root_from_path_var};
use crate::mont::Mont;
use crate::poseidon::{absorb_limbs, hash, hash_var, prefix_limbs, Domain, Prefix};
use crate::sdr::{
    self, label_graph, parents, SealError, SealWork, Sealed, SectorParams, BASE_PARENTS,
    EXP_PARENTS,
};
use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, PrimeField};
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};

/// Seals like format 1: Poseidon labels, then format 2's commitments.
pub fn seal_poseidon(
    p: &SectorParams,
    data: &[u8],
    node: &[u8; 32],
    sector: u64,
    ticket: &[u8; 32],
) -> Result<(Sealed, SealWork), SealError> {
    sdr::seal_labelled_by(p, data, (node, sector, ticket), labels_poseidon)
}

/// All labels, `labels[layer][node]`, with format 1's Poseidon label function.
pub fn labels_poseidon(p: &SectorParams, replica_id: Fr) -> Result<Vec<Vec<Fr>>, SealError> {
    // every label of a layer starts with (replica_id, layer): that pair is absorbed once per
    // layer, and each label absorbs its node index and parents from there
    let n = 3 + BASE_PARENTS + EXP_PARENTS;
    let first = |l: usize| [replica_id, Fr::from(l as u64)];
    if let Some(m) = Mont::detect() {
        // on Montgomery limbs throughout, converted to `Fr` once at the end
        let zero = [0u64; 4];
        let labels = label_graph(
            p,
            zero,
            |_, i| [zero, zero, m.of_fr(&Fr::from(i as u64))],
            |l| prefix_limbs(m, Domain::Label, n, first(l)),
            |state, _, _, x| absorb_limbs(m, *state, &x[2..]),
        )?;
        return Ok(labels
            .into_iter()
            .map(|layer| layer.iter().map(|x| m.to_fr(x)).collect())
            .collect());
    }
    label_graph(
        p,
        Fr::ZERO,
        |l, i| [replica_id, Fr::from(l as u64), Fr::from(i as u64)],
        |l| Prefix::new(Domain::Label, n, first(l)),
        |prefix, _, _, x| prefix.hash(&x[2..]),
    )
}

/// [`labels_poseidon`] of several sectors on the same graph (one per `replica_id`), in the same order.
/// On CPUs with AVX-512 IFMA eight sectors are labelled at once, one per vector lane
/// ([`crate::ifma`]), which is several times the throughput of labelling them one by one;
/// elsewhere this is [`labels_poseidon`] per sector.
pub fn labels_many(p: &SectorParams, replica_ids: &[Fr]) -> Result<Vec<Vec<Vec<Fr>>>, SealError> {
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = crate::ifma::Ifma::detect() {
        if replica_ids.len() > 1 {
            let mut out = Vec::with_capacity(replica_ids.len());
            for batch in replica_ids.chunks(crate::ifma::LANES) {
                out.extend(labels_lanes(t, p, batch)?);
            }
            return Ok(out);
        }
    }
    replica_ids.iter().map(|r| labels_poseidon(p, *r)).collect()
}

/// Up to eight sectors' labels, one per lane.
#[cfg(target_arch = "x86_64")]
fn labels_lanes(
    t: crate::ifma::Ifma,
    p: &SectorParams,
    replica_ids: &[Fr],
) -> Result<Vec<Vec<Vec<Fr>>>, SealError> {
    let n = 3 + BASE_PARENTS + EXP_PARENTS;
    let zero = t.splat(&Fr::ZERO);
    let labels = label_graph(
        p,
        zero,
        |_, i| [zero, zero, t.splat(&Fr::from(i as u64))],
        |l| t.prefix(Domain::Label, n, [replica_ids, &[Fr::from(l as u64)]]),
        |state, _, _, x| t.absorb(*state, &x[2..]),
    )?;
    Ok((0..replica_ids.len())
        .map(|k| {
            labels
                .iter()
                .map(|layer| layer.iter().map(|x| t.lane(x, k)).collect())
                .collect()
        })
        .collect())
}

/// [`labels_poseidon`] with `label_hash` computing `H_Label` over a label's inputs (`replica_id`, layer,
/// node, the 14 parent labels): benchmarks run the same labelling with another Poseidon
/// implementation.
pub fn labels_with(
    p: &SectorParams,
    replica_id: Fr,
    label_hash: &mut dyn FnMut(&[Fr]) -> Fr,
) -> Result<Vec<Vec<Fr>>, SealError> {
    label_graph(
        p,
        Fr::ZERO,
        |l, i| [replica_id, Fr::from(l as u64), Fr::from(i as u64)],
        |_| (),
        |_, _, _, x| label_hash(x),
    )
}

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
pub struct BaselineSealCircuit {
    params: SectorParams,
    challenges: usize,
    public: Option<Vec<Fr>>,
    comm_c: Option<Fr>,
    comm_r_last: Option<Fr>,
    witness: Vec<Option<ChallengeWitness>>,
}

impl BaselineSealCircuit {
    /// A circuit with no values, for key generation.
    pub fn blank(params: SectorParams, challenges: usize) -> Self {
        BaselineSealCircuit {
            params,
            challenges,
            public: None,
            comm_c: None,
            comm_r_last: None,
            witness: vec![None; challenges],
        }
    }

    /// The circuit proving that `sealed` was sealed correctly, from what [`seal_poseidon`]
    /// kept.
    pub fn prove_with_work(
        params: &SectorParams,
        challenges: usize,
        sealed: &Sealed,
        work: &SealWork,
    ) -> Result<Self, sdr::SealError> {
        let labels = &work.labels;
        let d = work.data.leaves();
        let (col_tree, d_tree, r_tree) = (&work.columns, &work.data, &work.replica);
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
        Ok(BaselineSealCircuit {
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

impl ConstraintSynthesizer<Fr> for BaselineSealCircuit {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ark_relations::gr1cs::ConstraintSystem;

    #[test]
    fn the_baseline_seal_is_a_satisfied_circuit_and_its_lanes_agree() {
        let p = SectorParams {
            nodes: 32,
            layers: 2,
            graph_seed: [3; 32],
        };
        let data: Vec<u8> = (0..p.capacity()).map(|i| (i * 7 % 256) as u8).collect();
        let (s, work) = seal_poseidon(&p, &data, &[4; 32], 1, &[5; 32]).unwrap();
        assert_eq!(
            sdr::unseal_with(&p, &s.replica, &work.labels, data.len()),
            data
        );
        let c = BaselineSealCircuit::prove_with_work(&p, 2, &s, &work).unwrap();
        let cs = ConstraintSystem::<Fr>::new_ref();
        c.clone().generate_constraints(cs.clone()).unwrap();
        assert!(cs.is_satisfied().unwrap());
        let cs = ConstraintSystem::<Fr>::new_ref();
        c.tamper_parent_label()
            .generate_constraints(cs.clone())
            .unwrap();
        assert!(!cs.is_satisfied().unwrap());
        // eight lanes, the sponge one by one and the limb path give the same labels
        let rids: Vec<Fr> = (0..9u64).map(|k| Fr::from(100 + k)).collect();
        let many = labels_many(&p, &rids).unwrap();
        for (rid, got) in rids.iter().zip(&many) {
            let want = labels_with(&p, *rid, &mut |x: &[Fr]| hash(Domain::Label, x)).unwrap();
            assert_eq!(*got, want);
            assert_eq!(labels_poseidon(&p, *rid).unwrap(), want);
        }
    }
}
