//! A Groth16 round trip over the Merkle gadget: a proof that the prover knows the leaf and
//! path at a public index under a public root. Keys come from a deterministic seed (for tests
//! only; production keys need a multi-party ceremony). Wrong public inputs and mutated proof
//! bytes are rejected.

use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::fp::FpVar;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use ark_snark::SNARK;
use ark_std::rand::SeedableRng;
use cairn_proofs::merkle::{index_bits, root_from_path_var, MerkleTree};

const DEPTH: usize = 4;

#[derive(Clone)]
struct Opening {
    root: Option<Fr>,
    index: Option<u64>,
    leaf: Option<Fr>,
    path: Vec<Option<Fr>>,
}

impl ConstraintSynthesizer<Fr> for Opening {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let root = FpVar::new_input(cs.clone(), || {
            self.root.ok_or(SynthesisError::AssignmentMissing)
        })?;
        let index = FpVar::new_input(cs.clone(), || {
            self.index
                .map(Fr::from)
                .ok_or(SynthesisError::AssignmentMissing)
        })?;
        let leaf = FpVar::new_witness(cs.clone(), || {
            self.leaf.ok_or(SynthesisError::AssignmentMissing)
        })?;
        let path = self
            .path
            .iter()
            .map(|s| FpVar::new_witness(cs.clone(), || s.ok_or(SynthesisError::AssignmentMissing)))
            .collect::<Result<Vec<_>, _>>()?;
        let bits = index_bits(&index, DEPTH)?;
        root_from_path_var(&leaf, &bits, &path)?.enforce_equal(&root)
    }
}

#[test]
fn merkle_opening_proof_verifies_and_rejects_wrong_inputs() {
    let leaves: Vec<Fr> = (0..1u64 << DEPTH).map(|i| Fr::from(i * 7 + 1)).collect();
    let tree = MerkleTree::new(&leaves).unwrap();
    let mut rng = ark_std::rand::rngs::StdRng::seed_from_u64(42);
    let blank = Opening {
        root: None,
        index: None,
        leaf: None,
        path: vec![None; DEPTH],
    };
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(blank, &mut rng).unwrap();
    let pvk = Groth16::<Bn254>::process_vk(&vk).unwrap();
    let i = 9u64;
    let c = Opening {
        root: Some(tree.root()),
        index: Some(i),
        leaf: Some(leaves[i as usize]),
        path: tree
            .path(i as usize)
            .unwrap()
            .into_iter()
            .map(Some)
            .collect(),
    };
    let proof = Groth16::<Bn254>::prove(&pk, c, &mut rng).unwrap();
    assert!(
        Groth16::<Bn254>::verify_with_processed_vk(&pvk, &[tree.root(), Fr::from(i)], &proof)
            .unwrap()
    );
    // the same proof at another index, or under another root, fails
    assert!(!Groth16::<Bn254>::verify_with_processed_vk(
        &pvk,
        &[tree.root(), Fr::from(i + 1)],
        &proof
    )
    .unwrap());
    assert!(!Groth16::<Bn254>::verify_with_processed_vk(
        &pvk,
        &[tree.root() + Fr::from(1u64), Fr::from(i)],
        &proof
    )
    .unwrap());
    // mutated proof bytes: either they do not decode or the proof does not verify
    use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
    let mut bytes = Vec::new();
    proof.serialize_compressed(&mut bytes).unwrap();
    for pos in [0, bytes.len() / 2, bytes.len() - 1] {
        let mut b = bytes.clone();
        b[pos] ^= 0x01;
        match ark_groth16::Proof::<Bn254>::deserialize_compressed(&b[..]) {
            Err(_) => {}
            Ok(p) => assert!(!Groth16::<Bn254>::verify_with_processed_vk(
                &pvk,
                &[tree.root(), Fr::from(i)],
                &p
            )
            .unwrap_or(false)),
        }
    }
    assert!(ark_groth16::Proof::<Bn254>::deserialize_compressed(&bytes[..10]).is_err());
}
