//! `cairn_retrieval::dataset::Dataset` on a running network: real libp2p nodes in one process
//! on loopback port 0. A 20 MiB file (1 MiB chunks) is streamed through a small block cache:
//! random ranges byte for byte against the seeded source, a range fetching only the leaves
//! under it, the whole file through an `AsyncRead`, and again with two holders gone.

mod common;

use cairn_core::testgen::Gen;
use cairn_core::Cid;
use cairn_retrieval::dataset::Dataset;
use cairn_retrieval::{Client, Options, Progress};
use cairn_storage_node::node::NodeOptions;
use common::client_for;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const MIB: u64 = 1 << 20;

/// Reads `r` to its end in 256 KiB reads, checking each against `want` from `at` on; returns
/// the bytes read.
async fn check_reader(
    r: &mut cairn_retrieval::reader::FileReader,
    want: &[u8],
    at: usize,
) -> usize {
    let mut buf = vec![0u8; 256 << 10];
    let mut pos = at;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(&buf[..n], &want[pos..pos + n], "bytes at {pos}");
        pos += n;
    }
    pos - at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_streams_a_large_file_in_bounded_memory_and_past_lost_holders() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("ds");
    std::fs::create_dir_all(&src).unwrap();
    // 20 MiB and a bit: 21 leaves of the default profile under one file node
    let big = Gen::bytes(2024, (20 * MIB) as usize + 12_345);
    let small = Gen::bytes(2025, 3_000);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::write(src.join("small.txt"), &small).unwrap();
    let opts = NodeOptions {
        k: 4,
        m: 2,
        ..common::opts(false)
    };
    let nodes = common::mesh(6, &opts).await;
    let rep = nodes[0].put(&src).await.unwrap();
    assert!(rep.distributed);
    let root: Cid = rep.root.parse().unwrap();
    let (_, cnet) = client_for(&nodes[1]).await;
    let limit = 4 * MIB;
    // room for every event of the test, so the client never waits on it
    let (tx, mut events) = tokio::sync::mpsc::channel(1 << 16);
    let client = Client::new(
        cnet.clone(),
        Options {
            cache_bytes: limit,
            read_ahead: 3,
            block_timeout: Duration::from_secs(3),
            ..Options::default()
        },
    )
    .with_progress(tx);
    let ds = Dataset::open(client, &root).await.unwrap();
    let listed: Vec<(&str, u64)> = ds
        .files()
        .iter()
        .map(|f| (f.path.as_str(), f.size))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("big.bin", big.len() as u64),
            ("small.txt", small.len() as u64)
        ]
    );
    let f = ds.file("big.bin").unwrap().clone();
    assert_eq!(
        &ds.read(ds.file("small.txt").unwrap()).await.unwrap()[..],
        &small[..]
    );

    // random ranges, byte for byte
    let mut seed = 17u64;
    let mut rand = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for _ in 0..25 {
        let a = rand(f.size);
        let b = (a + rand(3 * MIB)).min(f.size);
        let got = ds.read_range(&f, a..b).await.unwrap();
        assert_eq!(&got[..], &big[a as usize..b as usize], "{a}..{b}");
    }

    // a range over leaves 5, 6 and 7 fetches those and the file node above them, nothing else
    ds.cache().clear();
    let before = ds.stats();
    let (a, b) = (5 * MIB + MIB / 2, 7 * MIB + MIB / 4);
    let got = ds.read_range(&f, a..b).await.unwrap();
    assert_eq!(&got[..], &big[a as usize..b as usize]);
    let after = ds.stats();
    assert_eq!(after.fetched_blocks - before.fetched_blocks, 3 + 1);
    let bytes = after.fetched_bytes - before.fetched_bytes;
    assert!((3 * MIB..3 * MIB + 4096).contains(&bytes), "{bytes} bytes");

    // the whole file through an AsyncRead, from a seek in the middle of a leaf
    let mut r = ds.reader(&f);
    let start = 9 * MIB + 333;
    r.seek(std::io::SeekFrom::Start(start)).await.unwrap();
    let n = check_reader(&mut r, &big, start as usize).await;
    assert_eq!(n as u64, f.size - start);
    let s = ds.stats().cache;
    assert!(s.peak_bytes <= limit, "cache over its limit: {s:?}");
    assert!(s.evictions > 0, "{s:?}");

    // two holders gone (not the client's bootstrap node): stripes missing data shards are
    // decoded from parity
    while events.try_recv().is_ok() {}
    nodes[4].shutdown().await;
    nodes[5].shutdown().await;
    ds.cache().clear();
    let mut r = ds.reader(&f);
    assert_eq!(check_reader(&mut r, &big, 0).await, big.len());
    let s = ds.stats().cache;
    assert!(s.peak_bytes <= limit, "cache over its limit: {s:?}");
    let mut rebuilt = 0;
    while let Ok(e) = events.try_recv() {
        if let Progress::Reconstructed { .. } = e {
            rebuilt += 1;
        }
    }
    assert!(rebuilt > 0, "no stripe was decoded from parity");

    cnet.shutdown().await;
    for n in &nodes[..4] {
        n.shutdown().await;
    }
}
