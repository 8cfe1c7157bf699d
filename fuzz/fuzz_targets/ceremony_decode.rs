//! Ceremony and key-manifest decoding never panic on any bytes: phase-1 states of small sizes
//! (length checked, every point validated), proofs of knowledge, and `keys.manifest` text.
#![no_main]
use cairn_proofs::ceremony::group::{Pok, Reader};
use cairn_proofs::ceremony::phase1::{Accumulator, Contribution1};
use cairn_proofs::keys::pinned::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&p, rest)) = data.split_first() {
        let mut r = Reader::new(rest);
        if Accumulator::read(&mut r, u32::from(p % 4)).is_ok() {
            let _ = Contribution1::read(&mut r);
            let _ = r.finish();
        }
    }
    let _ = Pok::read(&mut Reader::new(data));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Manifest::decode(text);
    }
});
