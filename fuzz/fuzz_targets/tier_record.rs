//! Fast-tier record decoding never panics on any bytes, and whatever decodes re-encodes to
//! the same bytes: promotion records (table `promoted`) and cache records (table
//! `cache_index`), read back from disk at every placement window and start.
#![no_main]
use cairn_storage_node::tier::{CacheEntry, Promotion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Promotion::decode(data) {
        assert_eq!(p.encode(), data);
    }
    if let Ok(e) = CacheEntry::decode(data) {
        assert_eq!(e.encode(), data);
    }
});
