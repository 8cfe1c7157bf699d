//! The block protocol in memory: the client functions against the server loop over a duplex
//! pipe, with no sockets, no libp2p and no clock.

use super::*;
use crate::wire::{encode_block_header, NodeInfo};
use bytes::Bytes;
use cairn_core::block::{HashAlg, RAW};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// A service over a map, recording what it was given.
#[derive(Default)]
struct Mem {
    blocks: Mutex<HashMap<Cid, Bytes>>,
    done: Mutex<Vec<Vec<Cid>>>,
    cached: Mutex<Vec<Cid>>,
    durable: bool,
}

impl Service for Mem {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            capacity: 1 << 20,
            used: 0,
        }
    }
    fn have(&self, cids: &[Cid]) -> Vec<bool> {
        let b = self.blocks.lock().unwrap();
        cids.iter().map(|c| b.contains_key(c)).collect()
    }
    fn get_block(&self, _from: PeerId, cid: &Cid) -> Option<Bytes> {
        self.blocks.lock().unwrap().get(cid).cloned()
    }
    fn put_block(&self, _from: PeerId, _manifest: &Cid, block: Block) -> PutStatus {
        self.blocks.lock().unwrap().insert(block.cid, block.data);
        PutStatus::Stored
    }
    fn put_done(&self, _from: PeerId, _manifest: &Cid, stored: &[Cid]) -> bool {
        self.done.lock().unwrap().push(stored.to_vec());
        self.durable
    }
    fn put_cached(&self, _from: PeerId, block: Block, _planned: bool) -> PutStatus {
        self.cached.lock().unwrap().push(block.cid);
        PutStatus::Stored
    }
    fn cache_done(&self, _from: PeerId, _stored: &[Cid], _planned: bool) -> bool {
        true
    }
}

fn block(i: u8, len: usize) -> Block {
    Block::new(HashAlg::Blake3, RAW, vec![i; len])
}

/// A client end and a server task serving `svc` on the other end.
fn pair(
    svc: Arc<Mem>,
) -> (
    Compat<tokio::io::DuplexStream>,
    PeerId,
    tokio::task::JoinHandle<Result<(), WireError>>,
) {
    let (a, b) = tokio::io::duplex(64 << 10);
    let peer = PeerId::random();
    let service: Arc<dyn Service> = svc;
    let server = tokio::spawn(serve_one(peer, b.compat(), service, Serving::default()));
    (a.compat(), peer, server)
}

#[tokio::test]
async fn fetch_answers_found_and_missing_in_order_and_the_stream_carries_more() {
    let svc = Arc::new(Mem::default());
    let (b1, b2) = (block(1, 1000), block(2, 0));
    for b in [&b1, &b2] {
        svc.blocks.lock().unwrap().insert(b.cid, b.data.clone());
    }
    let absent = block(3, 10).cid;
    let (mut s, peer, server) = pair(svc);
    let got = fetch_on(&mut s, peer, &[b1.cid, absent, b2.cid])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            GetStatus::Found(b1.data.clone()),
            GetStatus::NotFound,
            GetStatus::Found(b2.data.clone())
        ]
    );
    // a second request on the same stream
    let again = fetch_on(&mut s, peer, &[b2.cid]).await.unwrap();
    assert_eq!(again, vec![GetStatus::Found(b2.data)]);
    // a clean end between requests ends the server without an error
    s.close().await.unwrap();
    drop(s);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn push_stores_verified_blocks_and_reports_each() {
    let svc = Arc::new(Mem {
        durable: true,
        ..Mem::default()
    });
    let manifest = block(9, 5).cid;
    let good = block(1, 300);
    let (mut s, peer, server) = pair(svc.clone());
    let head = StreamRequest::Put { manifest, count: 1 };
    let st = push_on(&mut s, peer, &head, std::slice::from_ref(&good))
        .await
        .unwrap();
    assert_eq!(st, vec![PutStatus::Stored]);
    assert_eq!(svc.blocks.lock().unwrap().get(&good.cid), Some(&good.data));
    assert_eq!(svc.done.lock().unwrap().as_slice(), &[vec![good.cid]]);
    // promoted copies go to the cache side
    let copy = block(4, 64);
    let st = push_on(
        &mut s,
        peer,
        &StreamRequest::Cache {
            count: 1,
            planned: false,
        },
        std::slice::from_ref(&copy),
    )
    .await
    .unwrap();
    assert_eq!(st, vec![PutStatus::Stored]);
    assert_eq!(svc.cached.lock().unwrap().as_slice(), &[copy.cid]);
    drop(s);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_block_that_does_not_match_its_cid_is_refused_and_not_stored() {
    let svc = Arc::new(Mem {
        durable: true,
        ..Mem::default()
    });
    let manifest = block(9, 5).cid;
    let (good, real) = (block(1, 100), block(2, 100));
    let forged = Block {
        cid: real.cid,
        data: Bytes::from(vec![7u8; 100]),
    };
    let (mut s, peer, server) = pair(svc.clone());
    let head = StreamRequest::Put { manifest, count: 2 };
    let st = push_on(&mut s, peer, &head, &[forged, good.clone()])
        .await
        .unwrap();
    assert_eq!(st, vec![PutStatus::BadBlock, PutStatus::Stored]);
    assert!(!svc.blocks.lock().unwrap().contains_key(&real.cid));
    assert_eq!(svc.done.lock().unwrap().as_slice(), &[vec![good.cid]]);
    drop(s);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_push_that_is_not_made_durable_reports_every_block_failed() {
    let svc = Arc::new(Mem::default()); // put_done answers false
    let manifest = block(9, 5).cid;
    let (mut s, peer, server) = pair(svc);
    let blocks = [block(1, 10), block(2, 10)];
    let st = push_on(
        &mut s,
        peer,
        &StreamRequest::Put { manifest, count: 2 },
        &blocks,
    )
    .await
    .unwrap();
    assert_eq!(st, vec![PutStatus::Failed, PutStatus::Failed]);
    drop(s);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn batches_over_the_limit_are_refused_before_anything_is_sent() {
    let svc = Arc::new(Mem::default());
    let (mut s, peer, _server) = pair(svc);
    let cids = vec![block(1, 1).cid; wire::MAX_BATCH + 1];
    assert!(matches!(
        fetch_on(&mut s, peer, &cids).await,
        Err(NetError::Limit(_))
    ));
    let blocks = vec![block(1, 1); wire::MAX_BATCH + 1];
    let head = StreamRequest::Cache {
        count: blocks.len(),
        planned: true,
    };
    assert!(matches!(
        push_on(&mut s, peer, &head, &blocks).await,
        Err(NetError::Limit(_))
    ));
}

#[tokio::test]
async fn malformed_or_truncated_requests_end_the_stream_with_an_error() {
    // an unknown op code
    let (mut s, _, server) = pair(Arc::new(Mem::default()));
    s.write_all(&[0xEE, 1, 2, 3]).await.unwrap();
    s.flush().await.unwrap();
    assert!(server.await.unwrap().is_err());
    // a PUT that announces two blocks and ends after half of the first
    let svc = Arc::new(Mem::default());
    let (mut s, _, server) = pair(svc.clone());
    let b = block(1, 1000);
    let mut bytes = StreamRequest::Put {
        manifest: b.cid,
        count: 2,
    }
    .encode();
    bytes.extend(encode_block_header(&b.cid, b.data.len()));
    bytes.extend_from_slice(&b.data[..500]);
    s.write_all(&bytes).await.unwrap();
    s.close().await.unwrap();
    drop(s);
    assert!(server.await.unwrap().is_err());
    assert!(
        svc.blocks.lock().unwrap().is_empty(),
        "nothing stored from a cut request"
    );
    assert!(svc.done.lock().unwrap().is_empty());
    // a frame larger than any block
    let (mut s, _, server) = pair(Arc::new(Mem::default()));
    let mut bytes = StreamRequest::Put {
        manifest: b.cid,
        count: 1,
    }
    .encode();
    bytes.extend(encode_block_header(&b.cid, cairn_core::MAX_BLOCK_SIZE + 1));
    s.write_all(&bytes).await.unwrap();
    s.flush().await.unwrap();
    assert!(server.await.unwrap().is_err());
}
