//! Every decoder of Cairn's wire protocols (control requests and responses, block-stream
//! requests and frames, synchronous and streaming) rejects bad input without panicking, and
//! what decodes re-encodes to the same bytes.
#![no_main]
use cairn_net::wire::{read_block, read_get_status, CtrlRequest, CtrlResponse, StreamRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = CtrlRequest::decode(data) {
        assert_eq!(CtrlRequest::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(r) = CtrlResponse::decode(data) {
        assert_eq!(CtrlResponse::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(r) = StreamRequest::decode(data) {
        assert_eq!(r.encode(), data);
    }
    futures::executor::block_on(async {
        let _ = StreamRequest::read(&mut &data[..]).await;
        let _ = read_block(&mut &data[..]).await;
        let _ = read_get_status(&mut &data[..]).await;
    });
});
