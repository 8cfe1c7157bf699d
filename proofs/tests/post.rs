//! PoSt end to end with Groth16 (deterministic test keys), its soundness checks, and the
//! catch rate of a prover that deleted part of a sector.

use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use ark_snark::SNARK;
use ark_std::rand::SeedableRng;
use cairn_proofs::post::{public_inputs, PostCircuit, Shape, DEFAULT_CHALLENGES};
use cairn_proofs::sdr::{challenge, post_seed, seal, Sealed, SectorParams};

const SHAPE: Shape = Shape {
    sectors: 2,
    depth: 6,
    challenges: DEFAULT_CHALLENGES,
};

fn sectors() -> Vec<(u64, Sealed)> {
    let p = SectorParams {
        nodes: 1 << SHAPE.depth,
        layers: 2,
        graph_seed: [5; 32],
    };
    (0..SHAPE.sectors as u64)
        .map(|id| {
            let data: Vec<u8> = (0..p.capacity())
                .map(|i| (i as u64 * 13 + id) as u8)
                .collect();
            (id, seal(&p, &data, &[1; 32], id, &[2; 32]).unwrap())
        })
        .collect()
}

#[test]
fn post_proves_verifies_and_rejects_replays_and_wrong_inputs() {
    let secs = sectors();
    let refs: Vec<(u64, &Sealed)> = secs.iter().map(|(i, s)| (*i, s)).collect();
    let comm_rs: Vec<(u64, Fr)> = secs.iter().map(|(i, s)| (*i, s.comm_r)).collect();
    let mut rng = ark_std::rand::rngs::StdRng::seed_from_u64(1);
    let (pk, vk) =
        Groth16::<Bn254>::circuit_specific_setup(PostCircuit::blank(SHAPE), &mut rng).unwrap();
    let pvk = Groth16::<Bn254>::process_vk(&vk).unwrap();
    let nonce = [0xab; 32];
    let circuit = PostCircuit::prove_for(SHAPE, &nonce, 7, &refs).unwrap();

    // constraint count, pinned: per sector comm_r check (240 + 1); per challenge 6 index bits,
    // 1 recomposition, 6 node hashes of 240 (leaves are not hashed), 12 selects, 1 root
    // equality
    let cs = ConstraintSystem::<Fr>::new_ref();
    circuit.clone().generate_constraints(cs.clone()).unwrap();
    assert!(cs.is_satisfied().unwrap());
    let per_challenge = 6 + 1 + 6 * 240 + 12 + 1;
    assert_eq!(cs.num_constraints(), 2 * (241 + 10 * per_challenge));

    let proof = Groth16::<Bn254>::prove(&pk, circuit, &mut rng).unwrap();
    let ok = |window: u64, nonce: &[u8; 32], rs: &[(u64, Fr)]| {
        Groth16::<Bn254>::verify_with_processed_vk(
            &pvk,
            &public_inputs(SHAPE, nonce, window, rs),
            &proof,
        )
        .unwrap_or(false)
    };
    assert!(ok(7, &nonce, &comm_rs));
    assert!(
        !ok(6, &nonce, &comm_rs),
        "a proof from another window is a replay"
    );
    assert!(!ok(8, &nonce, &comm_rs));
    assert!(!ok(7, &[0xac; 32], &comm_rs), "another auditor nonce");
    let swapped = vec![(comm_rs[0].0, comm_rs[1].1), (comm_rs[1].0, comm_rs[0].1)];
    assert!(!ok(7, &nonce, &swapped), "comm_r of another sector");
    let renamed = vec![(5, comm_rs[0].1), comm_rs[1]];
    assert!(!ok(7, &nonce, &renamed), "another sector id");
}

#[test]
fn tampered_witnesses_do_not_satisfy_the_circuit() {
    let secs = sectors();
    let refs: Vec<(u64, &Sealed)> = secs.iter().map(|(i, s)| (*i, s)).collect();
    let base = PostCircuit::prove_for(SHAPE, &[1; 32], 3, &refs).unwrap();
    let w = base.witness(0).unwrap().clone();
    let one = Fr::from(1u64);
    let mut bad_comm_c = w.clone();
    bad_comm_c.comm_c += one;
    let mut bad_root = w.clone();
    bad_root.comm_r_last += one;
    let mut bad_leaf = w.clone();
    bad_leaf.openings[3].0 += one;
    let mut bad_path = w.clone();
    bad_path.openings[5].1[2] += one;
    let mut wrong_position = w.clone();
    wrong_position.openings.swap(0, 1);
    for (name, tampered) in [
        ("comm_c", bad_comm_c),
        ("comm_r_last", bad_root),
        ("leaf", bad_leaf),
        ("path", bad_path),
        ("opening at another index", wrong_position),
    ] {
        let cs = ConstraintSystem::<Fr>::new_ref();
        base.clone()
            .with_witness(0, tampered)
            .generate_constraints(cs.clone())
            .unwrap();
        assert!(!cs.is_satisfied().unwrap(), "{name} accepted");
    }
}

#[test]
fn prover_that_deleted_a_fraction_is_caught_at_the_expected_rate() {
    // a sector of 1024 leaves; the prover kept all but a fraction f; each window an auditor
    // nonce picks c = 10 challenges; the prover is caught if any lands on a deleted leaf
    let nodes = 1024usize;
    let c = DEFAULT_CHALLENGES as u64;
    let trials = 2000u64;
    // the fractions docs/proofs.md states figures for (1, 10 and 50 %), and two more
    for want in [0.01f64, 0.05, 0.1, 0.2, 0.5] {
        let deleted: Vec<bool> = (0..nodes)
            .map(|i| (i as f64) < want * nodes as f64)
            .collect();
        let f = deleted.iter().filter(|d| **d).count() as f64 / nodes as f64;
        let mut caught = 0u64;
        for t in 0..trials {
            let mut nonce = [0u8; 32];
            nonce[..8].copy_from_slice(&t.to_le_bytes());
            let seed = post_seed(&nonce, t);
            if (0..c).any(|i| deleted[challenge(seed, 9, i, nodes)]) {
                caught += 1;
            }
        }
        let observed = caught as f64 / trials as f64;
        let expected = 1.0 - (1.0 - f).powi(c as i32);
        let sigma = (expected * (1.0 - expected) / trials as f64).sqrt();
        eprintln!(
            "deleted {:.0} %: caught {observed:.4}, expected 1-(1-f)^c = {expected:.4}",
            f * 100.0
        );
        assert!(
            (observed - expected).abs() <= 4.0 * sigma + 1e-9,
            "f = {f}: {observed} vs {expected}"
        );
    }
}

/// A node keeps only the replica and the top of its tree (from level [`KEPT_FROM`]): the
/// witness it builds from them is the one the whole tree gives, and a changed replica byte
/// makes opening fail instead of giving a wrong path.
#[test]
fn stored_replicas_with_the_top_of_their_tree_open_like_the_whole_tree() {
    use cairn_proofs::merkle::MerkleTree;
    use cairn_proofs::post::{Openable, StoredReplica, KEPT_FROM};
    use cairn_proofs::sdr::seal_keeping_work;
    let shape = Shape {
        sectors: 1,
        depth: 12,
        challenges: DEFAULT_CHALLENGES,
    };
    let p = SectorParams {
        nodes: 1 << shape.depth,
        layers: 2,
        graph_seed: [5; 32],
    };
    let data: Vec<u8> = (0..p.capacity()).map(|i| (i * 31 % 251) as u8).collect();
    let (s, work) = seal_keeping_work(&p, &data, &[1; 32], 9, &[2; 32]).unwrap();
    let tops = work.replica.top(KEPT_FROM);
    assert_eq!(tops.h(), KEPT_FROM);
    let mut replica = Vec::new();
    for x in &s.replica {
        replica.extend_from_slice(&cairn_proofs::audit::fr_bytes(x));
    }
    let stored = StoredReplica {
        comm_c: s.comm_c,
        comm_r_last: s.comm_r_last,
        comm_r: s.comm_r,
        replica,
        tops,
    };
    let tree = MerkleTree::new(&s.replica).unwrap();
    let whole = PostCircuit::prove_with_trees(shape, &[3; 32], 4, &[(9, &s, &tree)]).unwrap();
    let kept =
        PostCircuit::prove_with(shape, &[3; 32], 4, &[(9, &stored as &dyn Openable)]).unwrap();
    let (a, b) = (whole.witness(0).unwrap(), kept.witness(0).unwrap());
    assert_eq!(a.openings, b.openings);
    let cs = ConstraintSystem::<Fr>::new_ref();
    kept.generate_constraints(cs.clone()).unwrap();
    assert!(cs.is_satisfied().unwrap());
    let mut bad = stored.clone();
    bad.replica[5] ^= 1;
    assert!(bad.open(0).is_err());
    assert!(stored.open(1 << shape.depth).is_err());
}
