//! The DAG-CBOR skimmer behind the gateway's pathing and walks never panics, and agrees with
//! the strict decoder: a block the strict decoder reads has the same links, in the same order.
#![no_main]
use cairn_core::cbor::{links, walk_path, Value};
use cid::Cid;
use libfuzzer_sys::fuzz_target;

fn strict_links(v: &Value, out: &mut Vec<Cid>) {
    match v {
        Value::Link(c) => out.push(*c),
        Value::Array(a) => a.iter().for_each(|x| strict_links(x, out)),
        Value::Map(m) => m.iter().for_each(|(_, x)| strict_links(x, out)),
        Value::Int(_) | Value::Bytes(_) | Value::Text(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let skimmed = links(data);
    if let Ok(v) = Value::decode(data) {
        let mut want = Vec::new();
        strict_links(&v, &mut want);
        assert_eq!(skimmed.ok(), Some(want));
    }
    let _ = walk_path(data, &["a", "0", "roots", "1"]);
    let _ = walk_path(data, &[]);
});
