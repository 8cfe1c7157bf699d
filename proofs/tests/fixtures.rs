//! Proofs made by earlier versions must keep verifying (fixtures/proofs/, provenance in
//! fixtures/README.md): the sector is resealed from its data and must give the recorded
//! commitments, and the recorded seal and PoSt proofs must verify with the recorded verifying
//! keys against public inputs this version derives.

use ark_bn254::{Bn254, Fr};
use ark_ff::{BigInteger, PrimeField};
use ark_groth16::{Groth16, Proof, VerifyingKey};
use ark_serialize::{CanonicalDeserialize, Compress, Validate};
use ark_snark::SNARK;
use cairn_proofs::post::{self, Shape, DEFAULT_CHALLENGES};
use cairn_proofs::{porep, sdr};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/proofs")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn fr_hex(x: &Fr) -> String {
    x.into_bigint()
        .to_bytes_le()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn vk(name: &str) -> VerifyingKey<Bn254> {
    let b = std::fs::read(dir().join(name)).unwrap();
    VerifyingKey::deserialize_with_mode(&b[..], Compress::No, Validate::Yes).unwrap()
}

fn proof(name: &str) -> Proof<Bn254> {
    Proof::deserialize_compressed(&std::fs::read(dir().join(name)).unwrap()[..128]).unwrap()
}

#[test]
fn recorded_proofs_keep_verifying() {
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("commitments.json")).unwrap()).unwrap();
    let data = std::fs::read(dir().join("data.bin")).unwrap();
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&hex(c["graph_seed"].as_str().unwrap()));
    let p = sdr::SectorParams {
        nodes: c["sector_size"].as_u64().unwrap() as usize / 32,
        layers: c["layers"].as_u64().unwrap() as usize,
        graph_seed: seed,
    };
    let sector = c["sector"].as_u64().unwrap();
    let s = sdr::seal(&p, &data, &[0; 32], sector, blake3::hash(&data).as_bytes()).unwrap();
    for (k, v) in [
        ("replica_id", s.replica_id),
        ("comm_d", s.comm_d),
        ("comm_c", s.comm_c),
        ("comm_r_last", s.comm_r_last),
        ("comm_r", s.comm_r),
    ] {
        assert_eq!(
            c[k].as_str().unwrap(),
            fr_hex(&v),
            "{k} changed: sealing is not what it was"
        );
    }
    // seal proof
    let seal_vk = Groth16::<Bn254>::process_vk(&vk("seal.vk")).unwrap();
    // a seal proof file is the Groth16 proof, then the revealed labels
    let revealed: Vec<Fr> = std::fs::read(dir().join("seal.proof")).unwrap()[128..]
        .chunks(32)
        .map(Fr::from_le_bytes_mod_order)
        .collect();
    let digest = porep::check_revealed(&p, 2, s.replica_id, s.comm_r, &revealed).unwrap();
    let inputs = porep::public_inputs(s.replica_id, s.comm_d, s.comm_r, digest);
    assert!(
        Groth16::<Bn254>::verify_with_processed_vk(&seal_vk, &inputs, &proof("seal.proof"))
            .unwrap()
    );
    // PoSt proof of window 5
    let nonce_hex = std::fs::read_to_string(dir().join("post-window5.nonce")).unwrap();
    let mut nonce = [0u8; 32];
    nonce.copy_from_slice(&hex(nonce_hex.trim()));
    let shape = Shape {
        sectors: 1,
        depth: p.nodes.trailing_zeros() as usize,
        challenges: DEFAULT_CHALLENGES,
    };
    let post_vk = Groth16::<Bn254>::process_vk(&vk("post.vk")).unwrap();
    let ok = |w: u64| {
        let inputs = post::public_inputs(shape, &nonce, w, &[(sector, s.comm_r)]);
        Groth16::<Bn254>::verify_with_processed_vk(&post_vk, &inputs, &proof("post-window5.proof"))
            .unwrap()
    };
    assert!(ok(5));
    assert!(!ok(4), "replayed into another window");
}
