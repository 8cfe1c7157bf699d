//! The seal proof end to end: satisfied for an honest seal, revealed labels that check natively,
//! a Groth16 proof that verifies only against the right public values and revealed labels, and
//! cheating witnesses that do not satisfy the circuit.

use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use ark_snark::SNARK;
use ark_std::rand::SeedableRng;
use cairn_proofs::porep::{check_revealed, public_inputs, RevealError, SealCircuit};
use cairn_proofs::sdr::{seal, seal_keeping_work, SectorParams};

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
    let (s, work) = seal_keeping_work(&p, &data, &[4; 32], 1, &[5; 32]).unwrap();
    let (circuit, revealed) = SealCircuit::prove_with_work(&p, CHALLENGES, &s, &work).unwrap();
    // 2 challenges x 21 columns x 2 layers
    assert_eq!(revealed.len(), 84);
    let digest = check_revealed(&p, CHALLENGES, s.replica_id, s.comm_r, &revealed).unwrap();
    // a wrong label of a challenged node, or of a parent in the layer its label reads, is
    // caught natively (column m's layer-l label is at 2m + l; the second challenge starts at
    // 42); the labels no check reads are bound by the proof (below)
    for at in [0usize, 1, 2, 15, 40, 42, 43, 82] {
        let mut bad = revealed.clone();
        bad[at] += Fr::from(1u64);
        assert!(
            matches!(
                check_revealed(&p, CHALLENGES, s.replica_id, s.comm_r, &bad),
                Err(RevealError::Label { .. })
            ),
            "label {at} accepted"
        );
    }
    assert!(matches!(
        check_revealed(&p, CHALLENGES, s.replica_id, s.comm_r, &revealed[1..]),
        Err(RevealError::Length { got: 83, want: 84 })
    ));

    let cs = ConstraintSystem::<Fr>::new_ref();
    circuit.clone().generate_constraints(cs.clone()).unwrap();
    assert!(cs.is_satisfied().unwrap());
    // pinned: 2 challenges x (21 columns hashed and opened with 4-level paths, data and
    // replica openings, the encoding) + the comm_r check + the digest of 2 x 63 elements
    assert_eq!(cs.num_constraints(), 70_414);
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
    let ok = |rid: Fr, cd: Fr, cr: Fr, dg: Fr| {
        Groth16::<Bn254>::verify_with_processed_vk(&pvk, &public_inputs(rid, cd, cr, dg), &proof)
            .unwrap_or(false)
    };
    let one = Fr::from(1u64);
    assert!(ok(s.replica_id, s.comm_d, s.comm_r, digest));
    assert!(
        !ok(s.replica_id + one, s.comm_d, s.comm_r, digest),
        "replica_id"
    );
    assert!(
        !ok(s.replica_id, s.comm_d + one, s.comm_r, digest),
        "comm_d"
    );
    assert!(
        !ok(s.replica_id, s.comm_d, s.comm_r + one, digest),
        "comm_r"
    );
    assert!(
        !ok(s.replica_id, s.comm_d, s.comm_r, digest + one),
        "digest"
    );
    // another node's seal of the same data has its own proof obligations
    let other = seal(&p, &data, &[6; 32], 1, &[5; 32]).unwrap();
    let (oc, orev) = {
        let (os, ow) = seal_keeping_work(&p, &data, &[6; 32], 1, &[5; 32]).unwrap();
        let (_, r) = SealCircuit::prove_with_work(&p, CHALLENGES, &os, &ow).unwrap();
        (os, r)
    };
    assert_eq!(oc.comm_r, other.comm_r);
    let od = check_revealed(&p, CHALLENGES, other.replica_id, other.comm_r, &orev).unwrap();
    assert!(!ok(other.replica_id, other.comm_d, other.comm_r, od));
    // this seal's labels do not pass as the other's
    assert!(check_revealed(&p, CHALLENGES, other.replica_id, other.comm_r, &revealed).is_err());
}
