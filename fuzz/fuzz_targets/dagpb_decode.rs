//! dag-pb, UnixFS Data and UnixFS node decoding never panic; decoded nodes re-encode to bytes
//! that decode to the same node.
#![no_main]
use cairn_core::block::{HashAlg, DAG_PB};
use cairn_core::dag::Node;
use cairn_core::dagpb::PbNode;
use cairn_core::unixfs::UnixFsData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = PbNode::decode(data) {
        let again = PbNode::decode(&n.encode()).expect("re-encoded node must decode");
        assert_eq!(again, n);
    }
    let _ = UnixFsData::decode(data);
    let cid = HashAlg::Sha2_256.cid(DAG_PB, data);
    let _ = Node::decode(&cid, data.to_vec());
});
