//! CID parsing from strings and bytes never panics, and what parses round-trips.
#![no_main]
use cairn_core::block::{cid_from_bytes, parse_cid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(c) = parse_cid(s) {
            assert_eq!(parse_cid(&c.to_string()).ok(), Some(c));
        }
    }
    if let Ok(c) = cid_from_bytes(data) {
        assert_eq!(cid_from_bytes(&c.to_bytes()).ok(), Some(c));
    }
});
