//! Manifest, page and DAG-CBOR decoding never panic; values round-trip.
#![no_main]
use cairn_core::cbor::Value;
use cairn_core::manifest::{decode_page, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Value::decode(data) {
        assert_eq!(Value::decode(&v.encode()).ok(), Some(v));
    }
    let _ = Manifest::decode(data);
    let _ = decode_page(data);
});
