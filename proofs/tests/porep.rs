//! The seal proof end to end: satisfied for an honest seal, a Groth16 proof that verifies only
//! against the right public values, and cheating witnesses that do not satisfy the circuit.

use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use ark_snark::SNARK;
use ark_std::rand::SeedableRng;
use cairn_proofs::porep::{public_inputs, SealCircuit};
use cairn_proofs::sdr::{seal, SectorParams};

const CHALLENGES: usize = 2;

fn params() -> SectorParams {
    SectorParams {
        nodes: 16,
        layers: 2,
        graph_seed: [3; 32],
    }
}

#[test]
fn seal_proof_verifies_and_rejects_wrong_public_values_and_cheats() {
    let p = params();
    let data: Vec<u8> = (0..p.capacity()).map(|i| (i * 7 % 256) as u8).collect();
    let s = seal(&p, &data, &[4; 32], 1, &[5; 32]).unwrap();
    let circuit = SealCircuit::prove_for(&p, CHALLENGES, &data, &s).unwrap();

    let cs = ConstraintSystem::<Fr>::new_ref();
    circuit.clone().generate_constraints(cs.clone()).unwrap();
    assert!(cs.is_satisfied().unwrap());
    // pinned: 2 challenges x (1 + 6 + 14 columns opened with 4-level paths, 2 labels of 17
    // inputs, data and replica openings) + the comm_r check
    assert_eq!(cs.num_constraints(), 74_747);
    let blank_cs = ConstraintSystem::<Fr>::new_ref();
    blank_cs.set_mode(ark_relations::gr1cs::SynthesisMode::Setup);
    SealCircuit::blank(p.clone(), CHALLENGES)
        .generate_constraints(blank_cs.clone())
        .unwrap();
    assert_eq!(
        blank_cs.num_constraints(),
        cs.num_constraints(),
        "shape independent of the challenge"
    );

    for (name, bad) in [
        ("parent label", circuit.clone().tamper_parent_label()),
        ("comm_c", circuit.clone().tamper_comm_c()),
    ] {
        let cs = ConstraintSystem::<Fr>::new_ref();
        bad.generate_constraints(cs.clone()).unwrap();
        assert!(!cs.is_satisfied().unwrap(), "{name} accepted");
    }

    let mut rng = ark_std::rand::rngs::StdRng::seed_from_u64(9);
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(
        SealCircuit::blank(p.clone(), CHALLENGES),
        &mut rng,
    )
    .unwrap();
    let pvk = Groth16::<Bn254>::process_vk(&vk).unwrap();
    let proof = Groth16::<Bn254>::prove(&pk, circuit, &mut rng).unwrap();
    let ok = |rid: Fr, cd: Fr, cr: Fr| {
        Groth16::<Bn254>::verify_with_processed_vk(
            &pvk,
            &public_inputs(&p, CHALLENGES, rid, cd, cr),
            &proof,
        )
        .unwrap_or(false)
    };
    let one = Fr::from(1u64);
    assert!(ok(s.replica_id, s.comm_d, s.comm_r));
    assert!(!ok(s.replica_id + one, s.comm_d, s.comm_r), "replica_id");
    assert!(!ok(s.replica_id, s.comm_d + one, s.comm_r), "comm_d");
    assert!(!ok(s.replica_id, s.comm_d, s.comm_r + one), "comm_r");
    // another node's seal of the same data has its own proof obligations
    let other = seal(&p, &data, &[6; 32], 1, &[5; 32]).unwrap();
    assert!(!ok(other.replica_id, other.comm_d, other.comm_r));
}
