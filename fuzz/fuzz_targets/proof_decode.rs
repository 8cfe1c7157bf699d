//! Proof, verifying-key and public-input decoding never panic on any bytes: Groth16 proofs
//! (compressed, points validated), verifying keys (uncompressed, validated), and field
//! elements as public inputs (canonical little-endian only).
#![no_main]
use ark_bn254::{Bn254, Fr};
use ark_groth16::Proof;
use ark_serialize::CanonicalDeserialize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Proof::<Bn254>::deserialize_compressed(data);
    let _ = Proof::<Bn254>::deserialize_uncompressed(data);
    let _ = cairn_proofs::keys::decode_vk(data);
    for chunk in data.chunks(32) {
        let _ = Fr::deserialize_compressed(chunk);
    }
});
