//! CAR reading never panics and never yields a block that does not match its CID.
#![no_main]
use cairn_core::block::Block;
use cairn_core::car::CarReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = CarReader::new(data) else { return };
    for _ in 0..10_000 {
        match r.next_block() {
            Ok(Some(b)) => assert!(Block::verify(&b.cid, &b.data).is_ok()),
            _ => break,
        }
    }
});
