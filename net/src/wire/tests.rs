//! Round trips and malformed input of every wire message.

use super::*;
use cairn_core::block::{HashAlg, RAW};
use proptest::prelude::*;

fn cid(i: u32) -> Cid {
    HashAlg::Blake3.cid(RAW, &i.to_le_bytes())
}

#[test]
fn ctrl_round_trip() {
    let reqs = [
        CtrlRequest::Info,
        CtrlRequest::Have(vec![]),
        CtrlRequest::Have((0..MAX_HAVE as u32).map(cid).collect()),
        CtrlRequest::App(vec![]),
        CtrlRequest::App(vec![1; MAX_APP]),
        CtrlRequest::Cached(vec![cid(1), cid(2)]),
        CtrlRequest::Uncache((0..MAX_CACHED as u32).map(cid).collect()),
        CtrlRequest::Commit {
            manifest: cid(3),
            publisher: libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id(),
        },
        CtrlRequest::Remove(cid(4)),
        CtrlRequest::Plan {
            root: cid(5),
            seed: Some(u64::MAX),
            rate: 50_000_000,
        },
        CtrlRequest::Plan {
            root: cid(6),
            seed: None,
            rate: 0,
        },
        CtrlRequest::Space,
        CtrlRequest::Read {
            root: cid(7),
            cids: vec![],
        },
        CtrlRequest::Read {
            root: cid(8),
            cids: (0..MAX_READ_REPORT as u32).map(cid).collect(),
        },
    ];
    for r in reqs {
        let e = r.encode();
        assert!(e.len() <= MAX_CTRL_REQUEST);
        assert_eq!(CtrlRequest::decode(&e).unwrap(), r);
    }
    let resps = [
        CtrlResponse::Info(NodeInfo {
            capacity: 7,
            used: u64::MAX,
        }),
        CtrlResponse::Have(vec![
            true, false, true, true, false, false, true, false, true,
        ]),
        CtrlResponse::Have(vec![true; MAX_HAVE]),
        CtrlResponse::Error("no".into()),
        CtrlResponse::App(vec![7; MAX_APP]),
        CtrlResponse::Reads(vec![None, Some(0), Some(u32::MAX)]),
        CtrlResponse::Reads(vec![Some(u32::MAX); MAX_CACHED]),
        CtrlResponse::Peers(vec![]),
        CtrlResponse::Peers(
            (0..MAX_PEERS)
                .map(|_| {
                    libp2p::identity::Keypair::generate_ed25519()
                        .public()
                        .to_peer_id()
                })
                .collect(),
        ),
        CtrlResponse::Space(CacheSpace {
            capacity: 1 << 30,
            used: 3,
            yours: u64::MAX,
            limit: 0,
        }),
    ];
    for r in resps {
        let e = r.encode();
        assert!(e.len() <= MAX_CTRL_RESPONSE);
        assert_eq!(CtrlResponse::decode(&e).unwrap(), r);
    }
}

#[test]
fn plans_and_peer_lists_out_of_bounds_are_rejected() {
    // a seed flag other than 0 or 1
    let mut e = CtrlRequest::Plan {
        root: cid(1),
        seed: None,
        rate: 1,
    }
    .encode();
    let flag = e.len() - 2;
    e[flag] = 2;
    assert_eq!(CtrlRequest::decode(&e), Err(WireError::Tag(2)));
    // a truncated seed
    let e = CtrlRequest::Plan {
        root: cid(1),
        seed: Some(9),
        rate: 1,
    }
    .encode();
    assert!(CtrlRequest::decode(&e[..e.len() - 3]).is_err());
    // more peers than MAX_PEERS, and a peer id that does not parse
    let mut e = vec![T_PEERS_R];
    varint::write(&mut e, MAX_PEERS as u64 + 1);
    assert!(matches!(
        CtrlResponse::decode(&e),
        Err(WireError::TooLarge { .. })
    ));
    let e = vec![T_PEERS_R, 1, 3, 0xff, 0xff, 0xff];
    assert_eq!(CtrlResponse::decode(&e), Err(WireError::PeerId));
}

#[test]
fn oversized_and_malformed_are_rejected() {
    let mut e = vec![T_HAVE];
    varint::write(&mut e, MAX_HAVE as u64 + 1);
    assert!(matches!(
        CtrlRequest::decode(&e),
        Err(WireError::TooLarge { .. })
    ));
    assert_eq!(CtrlRequest::decode(&[]), Err(WireError::Truncated));
    assert_eq!(CtrlRequest::decode(&[0x7f]), Err(WireError::Tag(0x7f)));
    assert_eq!(
        CtrlRequest::decode(&[T_INFO, 0]),
        Err(WireError::Trailing(1))
    );
    let big = vec![T_INFO; MAX_CTRL_REQUEST + 1];
    assert!(matches!(
        CtrlRequest::decode(&big),
        Err(WireError::TooLarge { .. })
    ));
    let long = CtrlResponse::Error("é".repeat(MAX_ERROR_TEXT)).encode();
    assert!(matches!(
        CtrlResponse::decode(&long),
        Ok(CtrlResponse::Error(s)) if s.len() <= MAX_ERROR_TEXT
    ));
    let mut get = vec![OP_GET];
    varint::write(&mut get, MAX_BATCH as u64 + 1);
    assert!(matches!(
        StreamRequest::decode(&get),
        Err(WireError::TooLarge { .. })
    ));
    // a commit whose publisher bytes are not a peer id, or longer than any peer id
    let mut commit = vec![T_COMMIT];
    put_cid(&mut commit, &cid(1));
    commit.extend_from_slice(&[3, 1, 2, 3]);
    assert_eq!(CtrlRequest::decode(&commit), Err(WireError::PeerId));
    let mut commit = vec![T_COMMIT];
    put_cid(&mut commit, &cid(1));
    varint::write(&mut commit, MAX_PEER_ID_LEN as u64 + 1);
    assert!(matches!(
        CtrlRequest::decode(&commit),
        Err(WireError::TooLarge { .. })
    ));
    let mut cached = vec![T_CACHED];
    varint::write(&mut cached, MAX_CACHED as u64 + 1);
    assert!(matches!(
        CtrlRequest::decode(&cached),
        Err(WireError::TooLarge { .. })
    ));
    let mut reads = vec![T_READS_R, 1];
    varint::write(&mut reads, u64::from(u32::MAX) + 2);
    assert!(matches!(
        CtrlResponse::decode(&reads),
        Err(WireError::TooLarge { .. })
    ));
    for op in [OP_CACHE, OP_CACHE_PLANNED] {
        let mut cache = vec![op];
        varint::write(&mut cache, MAX_BATCH as u64 + 1);
        assert!(matches!(
            StreamRequest::decode(&cache),
            Err(WireError::TooLarge { .. })
        ));
    }
}

#[test]
fn oversized_block_frame_is_rejected_before_allocation() {
    let mut frame = encode_block_header(&cid(1), 0);
    let n = frame.len();
    frame[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    let r = futures::executor::block_on(read_block(&mut &frame[..]));
    assert!(matches!(r, Err(WireError::TooLarge { .. })));
}

proptest! {
    #[test]
    fn decoders_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = CtrlRequest::decode(&buf);
        let _ = CtrlResponse::decode(&buf);
        let _ = StreamRequest::decode(&buf);
        let _ = futures::executor::block_on(StreamRequest::read(&mut &buf[..]));
        let _ = futures::executor::block_on(read_block(&mut &buf[..]));
    }

    #[test]
    fn stream_request_round_trips(n in 0usize..MAX_BATCH, kind in 0u8..4) {
        let r = match kind {
            0 => StreamRequest::Put { manifest: cid(9), count: n },
            1 => StreamRequest::Cache { count: n, planned: false },
            2 => StreamRequest::Cache { count: n, planned: true },
            _ => StreamRequest::Get((0..n as u32).map(cid).collect()),
        };
        let e = r.encode();
        prop_assert_eq!(StreamRequest::decode(&e).unwrap(), r.clone());
        prop_assert_eq!(futures::executor::block_on(StreamRequest::read(&mut &e[..])).unwrap(), r);
    }
}

#[test]
fn cache_room_table() {
    // (capacity, used, yours, limit, room)
    for (i, &(capacity, used, yours, limit, want)) in [
        (100u64, 0u64, 0u64, 50u64, 50u64),
        (100, 80, 0, 50, 20),
        (100, 80, 30, 50, 50),
        (100, 100, 10, 50, 10),
        (100, 120, 10, 50, 10), // over its capacity: what we hold
        (0, 0, 0, 0, 0),
        (u64::MAX, 0, u64::MAX, u64::MAX, u64::MAX),
    ]
    .iter()
    .enumerate()
    {
        let s = CacheSpace {
            capacity,
            used,
            yours,
            limit,
        };
        assert_eq!(s.room(), want, "case {i}");
    }
}

#[test]
fn a_read_report_over_its_limit_is_refused() {
    let e = CtrlRequest::Read {
        root: cid(1),
        cids: (0..=MAX_READ_REPORT as u32).map(cid).collect(),
    }
    .encode();
    assert!(CtrlRequest::decode(&e).is_err());
}
