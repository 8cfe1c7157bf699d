//! DHT record validation (manifest records and provider keys) never panics on any key/value,
//! and a record it accepts is self-consistent.
#![no_main]
use cairn_net::records::{manifest_key, validate_manifest_record, validate_provider_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map(|&b| b as usize).unwrap_or(0).min(data.len());
    let (key, value) = data.split_at(split);
    let _ = validate_provider_key(key);
    if let Ok(r) = validate_manifest_record(key, value) {
        assert_eq!(manifest_key(&r.root), key);
        assert_eq!(r.manifest.root, r.root);
    }
    // the same value under a well-formed key for a fixed root
    let root = cairn_core::HashAlg::Blake3.cid(cairn_core::block::RAW, b"root");
    let _ = validate_manifest_record(&manifest_key(&root), data);
});
