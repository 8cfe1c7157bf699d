//! Seal checks end to end: a prover answers a check from its stored replica alone (labels and
//! trees rebuilt), the answer verifies for that nonce only, and a replica changed on disk
//! cannot answer.

use ark_bn254::Fr;
use cairn_proofs::audit::{prove_check, seal_sector, verify_check, NetParams};
use cairn_proofs::porep::{check_challenge, check_seed, seal_challenge};

/// The storage-node tests' network shape (so the cached development keys are shared).
fn params() -> NetParams {
    NetParams {
        sector_size: 16 << 10,
        layers: 2,
        challenges: 10,
        batch: 2,
        seal_challenges: 2,
    }
}

fn keys_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cairn-test-keys")
}

#[test]
fn a_seal_check_is_answered_from_the_replica_and_verifies_for_its_nonce_only() {
    let params = params();
    let keys = params.seal_keys(&keys_dir()).unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let prover = vec![7u8; 38];
    let (sealed, record) = seal_sector(&params, &keys, &prover, 3, [5; 32], &data).unwrap();
    assert!(record.verify_seal(&params, &keys).unwrap());

    let nonce = [9u8; 32];
    let (proof, revealed) = prove_check(&params, &keys, &record, &sealed.replica, &nonce).unwrap();
    let sector = (record.replica_id(), record.comm_d, record.comm_r);
    assert!(verify_check(
        &params, &keys, sector, &nonce, &proof, &revealed
    ));
    // the check's challenges are not the record's
    let (rid, seed, n) = (
        record.replica_id(),
        check_seed(&nonce),
        params.sector().nodes,
    );
    assert_ne!(
        (0..2)
            .map(|i| check_challenge(rid, record.comm_r, seed, i, n))
            .collect::<Vec<_>>(),
        (0..2)
            .map(|i| seal_challenge(rid, record.comm_r, i, n))
            .collect::<Vec<_>>()
    );
    // (answer, nonce, what is wrong)
    let mut bad_label = revealed.clone();
    bad_label[3] += Fr::from(1u64);
    let mut bad_proof = proof;
    bad_proof[40] ^= 1;
    for (p, r, nonce, why) in [
        (proof, revealed.clone(), [8u8; 32], "another nonce"),
        (proof, bad_label, nonce, "a changed label"),
        (
            record.seal_proof,
            record.revealed.clone(),
            nonce,
            "the record's own answer",
        ),
        (bad_proof, revealed.clone(), nonce, "a changed proof"),
    ] {
        assert!(
            !verify_check(&params, &keys, sector, &nonce, &p, &r),
            "{why}"
        );
    }
    // a replica changed on disk cannot answer
    let mut changed = sealed.replica.clone();
    changed[17] += Fr::from(1u64);
    assert!(prove_check(&params, &keys, &record, &changed, &nonce).is_err());
    assert!(prove_check(&params, &keys, &record, &changed[1..], &nonce).is_err());
}
