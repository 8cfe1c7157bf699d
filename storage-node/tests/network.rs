//! Multi-node tests: real libp2p nodes in one process on loopback port 0. Every wait is on an
//! event or a future (a dial completing, a repair round finishing), never a sleep.

mod common;

use bytes::Bytes;
use cairn_core::testgen::Gen;
use cairn_core::{Block, Cid};
use cairn_net::wire::{GetStatus, NodeInfo, PutStatus};
use cairn_net::{Keypair, Multiaddr, NetConfig, NoService, PeerId, Service};
use cairn_repo::Repo;
use cairn_retrieval::{Client, Options, Progress};
use cairn_storage_node::node::{Node, NodeOptions};
use common::client_for;
use futures::{AsyncReadExt, AsyncWriteExt};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn opts() -> NodeOptions {
    NodeOptions {
        capacity: 1 << 30,
        repair_interval: Duration::ZERO,
        scrub_interval: Duration::ZERO,
        ..NodeOptions::default()
    }
}

fn net_config(bootstrap: Vec<Multiaddr>) -> NetConfig {
    NetConfig {
        bootstrap,
        ..NetConfig::default()
    }
}

async fn mesh(nodes: &[&Node]) {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            let addr = b.net().listen_addrs().await.unwrap()[0].clone();
            a.net().dial(addr).await.unwrap();
        }
    }
}

async fn network(n: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let node = Node::start(
            Repo::in_memory(),
            Keypair::generate_ed25519(),
            net_config(vec![]),
            opts(),
        )
        .await
        .unwrap();
        nodes.push(node);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    mesh(&refs).await;
    nodes
}

/// A dataset of `n` pseudo-random bytes in a file under `dir`.
fn dataset(dir: &Path, n: usize, seed: u32) -> (std::path::PathBuf, Vec<u8>) {
    let data = Gen::bytes(u64::from(seed), n);
    let p = dir.join("data.bin");
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

/// Distinct live holders of each shard of the first stripe.
async fn holders_of_stripe(node: &Node, root: &Cid) -> Vec<Vec<String>> {
    node.placement(root).await.unwrap()[0]
        .iter()
        .map(|s| s.holders.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_two_of_six_holders_lost_still_retrievable_then_repaired() {
    let dir = tempfile::tempdir().unwrap();
    // 3.5 MiB: 4 leaves + a root node = 5 blocks = 2 stripes at RS(4,2)
    let (path, data) = dataset(dir.path(), 3 << 20 | 1 << 19, 11);
    for a in 0..6 {
        for b in a + 1..6 {
            let nodes = network(8).await;
            let rep = nodes[0].put(&path).await.unwrap();
            assert!(rep.distributed);
            let root: Cid = rep.root.parse().unwrap();
            // each stripe on 6 distinct nodes
            for stripe in &rep.placement {
                let hs: HashSet<&String> = stripe.iter().map(|s| &s.holders[0]).collect();
                assert_eq!(hs.len(), stripe.len(), "placement {stripe:?}");
            }
            assert_eq!(rep.placement[0].len(), 6);
            // kill the holders of shards a and b of stripe 0
            let victims: Vec<String> = vec![
                rep.placement[0][a].holders[0].clone(),
                rep.placement[0][b].holders[0].clone(),
            ];
            let mut alive = Vec::new();
            for n in &nodes {
                if victims.contains(&n.peer_id().to_string()) {
                    n.shutdown().await;
                } else {
                    alive.push(n.clone());
                }
            }
            assert_eq!(alive.len(), 6);
            // still retrievable through the survivors
            let (client, cnet) = client_for(&alive[0]).await;
            let out = dir.path().join(format!("out-{a}-{b}"));
            let n = client.get(&root, &out).await.unwrap();
            assert_eq!(n as usize, data.len());
            assert_eq!(std::fs::read(&out).unwrap(), data, "pair ({a},{b})");
            cnet.shutdown().await;
            // repaired back to k+m distinct holders
            for n in &alive {
                n.repair_round().await.unwrap();
            }
            for stripe in alive[0].placement(&root).await.unwrap() {
                let hs: HashSet<String> = stripe.iter().flat_map(|s| s.holders.clone()).collect();
                assert!(
                    stripe.iter().all(|s| !s.holders.is_empty()),
                    "({a},{b}): {stripe:?}"
                );
                assert_eq!(
                    hs.len(),
                    stripe.len(),
                    "({a},{b}) not on distinct nodes: {stripe:?}"
                );
                assert!(hs.iter().all(|h| !victims.contains(h)));
            }
            for n in &alive {
                n.shutdown().await;
            }
        }
    }
}

/// Claims to hold every block and serves garbage for each.
struct Liar;

impl Service for Liar {
    fn info(&self) -> NodeInfo {
        NodeInfo::default()
    }
    fn have(&self, cids: &[Cid]) -> Vec<bool> {
        vec![true; cids.len()]
    }
    fn get_block(&self, _: PeerId, _: &Cid) -> Option<Bytes> {
        Some(Bytes::from_static(b"definitely not your block"))
    }
    fn put_block(&self, _: PeerId, _: &Cid, _: Block) -> PutStatus {
        PutStatus::NoSpace
    }
}

/// A 6-node network holding a 3.5 MiB dataset, plus a misbehaving peer serving `rogue`; the
/// honest holder of shard `shard` of stripe 0 leaves, so the rogue is the only peer claiming
/// that shard. Returns the data, its root, the surviving nodes, a client network connected to
/// a survivor and the rogue, and the rogue's handle.
struct Rogue {
    data: Vec<u8>,
    root: Cid,
    alive: Vec<Node>,
    cnet: cairn_net::NetClient,
    rogue: cairn_net::NetClient,
}

async fn rogue_scenario(dir: &Path, seed: u32, shard: usize, rogue: Arc<dyn Service>) -> Rogue {
    let (path, data) = dataset(dir, 3 << 20 | 1 << 19, seed);
    let nodes = network(6).await;
    let rep = nodes[0].put(&path).await.unwrap();
    let root: Cid = rep.root.parse().unwrap();
    let (rogue, _ev) = cairn_net::start(Keypair::generate_ed25519(), net_config(vec![]), rogue)
        .await
        .unwrap();
    let victim = rep.placement[0][shard].holders[0].clone();
    let mut alive = Vec::new();
    for n in &nodes {
        if n.peer_id().to_string() == victim {
            n.shutdown().await;
        } else {
            alive.push(n.clone());
        }
    }
    let (_, cnet) = client_for(&alive[0]).await;
    cnet.dial(rogue.listen_addrs().await.unwrap()[0].clone())
        .await
        .unwrap();
    Rogue {
        data,
        root,
        alive,
        cnet,
        rogue,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_serving_wrong_bytes_is_detected_skipped_and_penalised() {
    let dir = tempfile::tempdir().unwrap();
    let Rogue {
        data,
        root,
        alive,
        cnet,
        rogue: liar,
    } = rogue_scenario(dir.path(), 12, 0, Arc::new(Liar)).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let client_base = Client::new(cnet.clone(), Options::default());
    let client = client_base.clone().with_progress(tx);
    let events = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
        v
    });
    let out = dir.path().join("out");
    client.get(&root, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(client.liars(), vec![liar.peer_id()]);
    drop(client);
    let events = events.await.unwrap();
    let lies = events
        .iter()
        .filter(|e| matches!(e, Progress::ProviderFailed { peer, lied: true, .. } if *peer == liar.peer_id()))
        .count();
    // detected (once per request already in flight when the first lie arrived)
    assert!(lies >= 1, "{events:?}");
    assert!(events
        .iter()
        .any(|e| matches!(e, Progress::Reconstructed { shards, .. } if *shards > 0)));
    // and from then on skipped: the same client never asks the liar again
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let again = client_base.clone().with_progress(tx);
    again.get(&root, &dir.path().join("out2")).await.unwrap();
    drop(again);
    while let Some(e) = rx.recv().await {
        if let Progress::ProviderFailed { peer, .. } | Progress::Fetched { peer, .. } = e {
            assert_ne!(peer, liar.peer_id(), "liar asked again");
        }
    }
    assert_eq!(std::fs::read(dir.path().join("out2")).unwrap(), data);
    for n in &alive {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_keeps_identity_and_serves_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = dataset(dir.path(), 3 << 20 | 1 << 19, 13);
    let repo_dir = dir.path().join("disk-node");
    let key_path = repo_dir.join("identity.key");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let key = cairn_net::identity::load_or_create(&key_path).unwrap();
    let disk = Node::start(
        Repo::open(&repo_dir).unwrap(),
        key,
        net_config(vec![]),
        opts(),
    )
    .await
    .unwrap();
    let id = disk.peer_id();
    let mut nodes = network(5).await;
    let refs: Vec<&Node> = nodes.iter().chain(std::iter::once(&disk)).collect();
    for n in &nodes {
        let a = disk.net().listen_addrs().await.unwrap()[0].clone();
        n.net().dial(a).await.unwrap();
    }
    drop(refs);
    let rep = nodes[0].put(&path).await.unwrap();
    assert!(rep.distributed);
    let held: Vec<Cid> = rep
        .placement
        .iter()
        .flatten()
        .filter(|s| s.holders[0] == id.to_string())
        .map(|s| s.cid.parse().unwrap())
        .collect();
    assert!(!held.is_empty());
    disk.shutdown().await;
    drop(disk);
    // restart from the same repo and key
    let key = cairn_net::identity::load_or_create(&key_path).unwrap();
    let disk = Node::start(
        Repo::open(&repo_dir).unwrap(),
        key,
        net_config(vec![]),
        opts(),
    )
    .await
    .unwrap();
    assert_eq!(disk.peer_id(), id);
    let a = disk.net().listen_addrs().await.unwrap()[0].clone();
    nodes[1].net().dial(a).await.unwrap();
    for c in &held {
        let got = nodes[1].net().fetch_verified(id, c).await.unwrap();
        assert!(got.is_some(), "restarted node lost {c}");
    }
    disk.shutdown().await;
    for n in nodes.drain(..) {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_streams_and_forged_records_are_rejected_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = dataset(dir.path(), 1 << 20, 14);
    let nodes = network(6).await;
    let rep = nodes[0].put(&path).await.unwrap();
    let root: Cid = rep.root.parse().unwrap();
    let target = nodes[1].peer_id();
    let attacker = &nodes[2];
    let cases: Vec<Vec<u8>> = vec![
        vec![0x7f],                            // unknown opcode
        vec![0x01, 0xff, 0xff, 0xff, 0x0f],    // GET count far above the batch limit
        vec![0x01, 0x01, 0x7f],                // CID length above the limit
        vec![0x01, 0x01, 0x05, 1, 2, 3, 4, 5], // not a CID
        {
            // PUT of a block claiming 4 GiB
            let mut v = cairn_net::wire::StreamRequest::Put {
                manifest: rep.manifest.parse().unwrap(),
                count: 1,
            }
            .encode();
            v.extend(cairn_net::wire::encode_block_header(&root, 0));
            let n = v.len();
            v[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
            v
        },
    ];
    for case in cases {
        let mut s = attacker.net().open_raw_blocks_stream(target).await.unwrap();
        let _ = s.write_all(&case).await;
        let _ = s.close().await;
        // the node drops the stream: reading ends without a valid answer
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        assert!(buf.len() < 8, "answered garbage with {} bytes", buf.len());
    }
    // a PUT of a block that is not part of the named dataset is refused
    let stray = Block::new(
        cairn_core::HashAlg::Blake3,
        cairn_core::block::RAW,
        &b"stray"[..],
    );
    let st = attacker
        .net()
        .push(
            target,
            rep.manifest.parse().unwrap(),
            std::slice::from_ref(&stray),
        )
        .await
        .unwrap();
    assert_eq!(st, vec![PutStatus::NotInDataset]);
    assert!(matches!(
        attacker.net().fetch(target, &[stray.cid]).await.unwrap()[0],
        GetStatus::NotFound
    ));
    // a forged manifest record (someone else's manifest under this root) is not served
    let other = cairn_core::HashAlg::Blake3.cid(cairn_core::block::RAW, b"other");
    let head = nodes[0]
        .repo()
        .block(&rep.manifest.parse().unwrap())
        .unwrap();
    attacker
        .net()
        .put_record_unchecked(
            cairn_net::records::manifest_key(&other),
            cairn_net::records::encode_manifest_record(
                &other,
                &rep.manifest.parse().unwrap(),
                &head,
                &Keypair::generate_ed25519(),
            ),
        )
        .await
        .unwrap();
    let (client, cnet) = client_for(&nodes[3]).await;
    assert!(cnet.resolve_manifest(&other).await.is_err());
    // and the node still serves honest requests
    let out = dir.path().join("out");
    client.get(&root, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_shard_is_found_by_scrub_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = dataset(dir.path(), 3 << 20 | 1 << 19, 15);
    let repo_dir = dir.path().join("disk");
    let disk = Node::start(
        Repo::open(&repo_dir).unwrap(),
        Keypair::generate_ed25519(),
        net_config(vec![]),
        opts(),
    )
    .await
    .unwrap();
    let nodes = network(5).await;
    for n in &nodes {
        n.net()
            .dial(disk.net().listen_addrs().await.unwrap()[0].clone())
            .await
            .unwrap();
    }
    let rep = nodes[0].put(&path).await.unwrap();
    let root: Cid = rep.root.parse().unwrap();
    let mine: Cid = rep
        .placement
        .iter()
        .flatten()
        .find(|s| s.holders[0] == disk.peer_id().to_string())
        .map(|s| s.cid.parse().unwrap())
        .unwrap();
    // damage the shard in the store (same CID, wrong bytes)
    let mut b = cairn_repo::store::Batch::new();
    b.put_block(Block {
        cid: mine,
        data: Bytes::from_static(b"bit rot"),
    });
    disk.repo()
        .store()
        .write(b, cairn_repo::store::Durability::Sync)
        .unwrap();
    assert_eq!(disk.scrub().await.unwrap(), 1);
    let mut all = nodes.clone();
    all.push(disk.clone());
    for n in &all {
        n.repair_round().await.unwrap();
    }
    let pl = holders_of_stripe(&nodes[0], &root).await;
    assert!(pl.iter().all(|h| !h.is_empty()), "{pl:?}");
    let (client, cnet) = client_for(&nodes[1]).await;
    let out = dir.path().join("out");
    client.get(&root, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    cnet.shutdown().await;
    for n in &all {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_download_resumes_without_refetching() {
    let dir = tempfile::tempdir().unwrap();
    // 12 MiB: 12 leaves over 4 stripes
    let (path, data) = dataset(dir.path(), 12 << 20, 16);
    let nodes = network(6).await;
    let rep = nodes[0].put(&path).await.unwrap();
    let root: Cid = rep.root.parse().unwrap();
    let out = dir.path().join("out");
    // first attempt: killed (dropped) once the leaves of one stripe are written
    let (client, cnet) = client_for(&nodes[1]).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let c2 = client.clone().with_progress(tx);
    let out2 = out.clone();
    let task = tokio::spawn(async move { c2.get(&root, &out2).await });
    while let Some(e) = rx.recv().await {
        if matches!(e, Progress::Written { .. }) {
            task.abort();
            break;
        }
    }
    // keep the channel open until the task is gone: more than one event is still to come
    // (the other stripes' `Written`, then `Done`), so the download parks on a full channel
    // and is cancelled there. Closing it first would let every send fail at once, and a
    // loaded machine could then finish the download before the abort lands.
    let ended = task.await;
    drop(rx);
    assert!(ended.is_err(), "the download was not interrupted");
    assert!(!out.exists());
    // second attempt resumes: only what was not written is fetched again
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let again = client.clone().with_progress(tx);
    let n = again.get(&root, &out).await.unwrap();
    drop(again);
    let mut refetched = 0;
    while let Some(e) = rx.recv().await {
        if let Progress::Fetched { cid, .. } = e {
            if cid.codec() == cairn_core::block::RAW {
                refetched += 1;
            }
        }
    }
    assert_eq!(n as usize, data.len());
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert!(
        refetched < 12,
        "resumed download fetched all {refetched} leaves again"
    );
    assert!(!dir.path().join("out.cairn-blocks").exists());
    cnet.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_streams_files_in_order_and_in_a_seeded_shuffle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("ds");
    std::fs::create_dir_all(src.join("train")).unwrap();
    let mut want = Vec::new();
    for i in 0..7u64 {
        let name = format!("train/shard-{i:03}.tar");
        let bytes = Gen::bytes(100 + i, 300_000 + i as usize * 70_000);
        std::fs::write(src.join(&name), &bytes).unwrap();
        want.push((name, bytes));
    }
    let nodes = network(6).await;
    let rep = nodes[0].put(&src).await.unwrap();
    let root: Cid = rep.root.parse().unwrap();
    let (client, cnet) = client_for(&nodes[2]).await;
    let ds = cairn_retrieval::dataset::Dataset::open(client, &root)
        .await
        .unwrap();
    let names: Vec<&str> = ds.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, want.iter().map(|w| w.0.as_str()).collect::<Vec<_>>());
    use futures::StreamExt;
    let seq: Vec<_> = ds
        .stream(cairn_retrieval::dataset::Order::Sequential, 2)
        .collect()
        .await;
    for (got, w) in seq.into_iter().zip(&want) {
        let (f, b) = got.unwrap();
        assert_eq!(f.path, w.0);
        assert_eq!(&b[..], &w.1[..]);
    }
    let order = cairn_retrieval::dataset::shuffle_order(7, 42);
    let shuffled: Vec<_> = ds
        .stream(cairn_retrieval::dataset::Order::Shuffled { seed: 42 }, 3)
        .collect()
        .await;
    for (got, &i) in shuffled.into_iter().zip(&order) {
        let (f, b) = got.unwrap();
        assert_eq!(f.path, want[i].0);
        assert_eq!(&b[..], &want[i].1[..]);
    }
    cnet.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
}

/// Claims every block and answers only after a long delay.
struct Slow;

impl Service for Slow {
    fn info(&self) -> NodeInfo {
        NodeInfo::default()
    }
    fn have(&self, cids: &[Cid]) -> Vec<bool> {
        vec![true; cids.len()]
    }
    fn get_block(&self, _: PeerId, _: &Cid) -> Option<Bytes> {
        std::thread::sleep(Duration::from_secs(3));
        None
    }
    fn put_block(&self, _: PeerId, _: &Cid, _: Block) -> PutStatus {
        PutStatus::NoSpace
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_provider_is_abandoned_for_parity() {
    let dir = tempfile::tempdir().unwrap();
    let Rogue {
        data,
        root,
        alive,
        cnet,
        rogue: slow,
    } = rogue_scenario(dir.path(), 17, 1, Arc::new(Slow)).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let client = Client::new(
        cnet.clone(),
        Options {
            block_timeout: Duration::from_millis(300),
            ..Options::default()
        },
    )
    .with_progress(tx);
    let out = dir.path().join("out");
    client.get(&root, &out).await.unwrap();
    drop(client);
    assert_eq!(std::fs::read(&out).unwrap(), data);
    let mut timed_out = 0;
    let mut rebuilt = 0;
    while let Some(e) = rx.recv().await {
        match e {
            Progress::ProviderFailed { peer, reason, .. } if peer == slow.peer_id() => {
                assert!(reason.contains("no answer within"), "{reason}");
                timed_out += 1;
            }
            Progress::Reconstructed { shards, .. } => rebuilt += shards,
            _ => {}
        }
    }
    assert!(timed_out >= 1);
    assert!(rebuilt >= 1);
    cnet.shutdown().await;
    for n in &alive {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_served_are_logged_per_shard_and_pings_measure_rtt() {
    let nodes = network(6).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = dataset(dir.path(), 2 << 20, 17);
    let rep = nodes[0].put(&path).await.unwrap();
    let root: Cid = rep.root.parse().unwrap();
    let (client, _net) = client_for(&nodes[1]).await;
    for i in 0..3 {
        let out = dir.path().join(format!("out{i}"));
        client.get(&root, &out).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data);
    }
    // every data shard the client read was served by its holder, three times
    let mut served = 0;
    for stripe in &rep.placement {
        for shard in stripe {
            let holder = nodes
                .iter()
                .find(|n| n.peer_id().to_string() == shard.holders[0])
                .unwrap();
            if let Some((_, h, score)) = holder
                .hot_shards(100)
                .into_iter()
                .find(|(c, _, _)| c.to_string() == shard.cid)
            {
                assert!(h.reads >= 1 && score > 0.0);
                served += h.reads;
            }
        }
    }
    assert!(served >= 3, "reads logged: {served}");
    // pings: a peer with a short ping interval reports round-trip times as events
    let cfg = NetConfig {
        ping_interval: Duration::from_millis(100),
        ..NetConfig::default()
    };
    let (net, mut events) = cairn_net::start(Keypair::generate_ed25519(), cfg, Arc::new(NoService))
        .await
        .unwrap();
    net.dial(nodes[2].net().listen_addrs().await.unwrap()[0].clone())
        .await
        .unwrap();
    let rtt = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                // the client may also connect to peers it learns of; wait for the one it dialed
                Some(cairn_net::NetEvent::Rtt(p, rtt)) if p == nodes[2].peer_id() => {
                    break (p, rtt)
                }
                Some(_) => continue,
                None => panic!("network stopped"),
            }
        }
    })
    .await
    .expect("no ping answer");
    assert_eq!(rtt.0, nodes[2].peer_id());
    assert!(rtt.1 < Duration::from_secs(5));
    for n in &nodes {
        n.shutdown().await;
    }
}

/// Six nodes, four of them slow (each block served after 300 ms, as from slow media): a shard
/// read often on a slow node is promoted to a fast node it measured, clients then read it
/// from there, and it is demoted when the engine prefers another shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_shards_move_to_measured_fast_peers_and_back() {
    use cairn_storage_node::tier::TierOptions;
    let mut nodes = Vec::new();
    for i in 0..6 {
        let cfg = NetConfig {
            serve_delay: if i < 4 {
                Duration::from_millis(300)
            } else {
                Duration::ZERO
            },
            ..NetConfig::default()
        };
        let o = NodeOptions {
            tier: TierOptions {
                // room for one 1 MiB shard: a newly hot shard displaces the old one
                promote_bytes: 1 << 20,
                ..TierOptions::default()
            },
            ..opts()
        };
        // fixed keys: rendezvous placement follows the peer ids, and the test needs a slow
        // node holding two raw data shards (with random keys, some runs had none)
        let key = Keypair::ed25519_from_bytes([0x40 + i as u8; 32]).unwrap();
        nodes.push(Node::start(Repo::in_memory(), key, cfg, o).await.unwrap());
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    mesh(&refs).await;
    let dir = tempfile::tempdir().unwrap();
    // 8 MiB: 8 leaves of 1 MiB + a root = 3 stripes, so each node holds about 3 shards
    let (path, _) = dataset(dir.path(), 8 << 20, 23);
    let rep = nodes[0].put(&path).await.unwrap();
    let root: Cid = rep.root.parse().unwrap();
    let fast: HashSet<String> = nodes[4..].iter().map(|n| n.peer_id().to_string()).collect();
    // a slow node holding two 1 MiB data shards
    let mut pick = None;
    for (i, n) in nodes[..4].iter().enumerate() {
        let me = n.peer_id().to_string();
        let mine: Vec<Cid> = rep
            .placement
            .iter()
            // data shards: a stripe lists its data shards, then its 2 parity shards
            .flat_map(|s| s.iter().take(s.len() - 2))
            .filter(|s| s.holders[0] == me)
            .map(|s| s.cid.parse().unwrap())
            .filter(|c: &Cid| c.codec() == cairn_core::block::RAW)
            .collect();
        if mine.len() >= 2 {
            pick = Some((i, mine[0], mine[1]));
            break;
        }
    }
    let (s, a, b) = pick.expect("a slow node holds two raw data shards");
    let slow = &nodes[s];
    let (client, cnet) = client_for(slow).await;
    let read = |cid: Cid| {
        let cnet = cnet.clone();
        let peer = slow.peer_id();
        async move {
            for _ in 0..3 {
                let got = cnet.fetch_verified(peer, &cid).await.unwrap();
                assert!(got.is_some());
            }
        }
    };

    // window 1: A is hot; the fast peers are measured; A is copied to one of them
    read(a).await;
    let w1 = slow.placement_window().await.unwrap();
    assert_eq!(w1.reads, 3, "{w1:?}");
    let measured: HashSet<String> = w1.fast_peers.iter().cloned().collect();
    assert_eq!(measured, fast, "fast peers measured: {w1:?}");
    assert_eq!(w1.planned_promotions, vec![a.to_string()], "{w1:?}");
    assert_eq!((w1.promoted, w1.demoted), (1, 0), "{w1:?}");
    let st = slow.tier_status().await;
    assert_eq!(st.promoted.len(), 1);
    let f1 = st.promoted[0]["peer"].as_str().unwrap().to_string();
    assert!(fast.contains(&f1));
    let holder_a = nodes
        .iter()
        .find(|n| n.peer_id().to_string() == f1)
        .unwrap();
    let cached = holder_a.tier_status().await.cached;
    assert_eq!(cached[0]["cid"], a.to_string());
    assert_eq!(cached[0]["promoter"], slow.peer_id().to_string());
    // the promoted copy is not a holder for repair: the base placement is unchanged
    let pl = nodes[0].placement(&root).await.unwrap();
    let a_holders: Vec<&Vec<String>> = pl
        .iter()
        .flatten()
        .filter(|x| x.cid == a.to_string())
        .map(|x| &x.holders)
        .collect();
    assert_eq!(a_holders, vec![&vec![slow.peer_id().to_string()]]);

    // window 2: B gets hot and displaces A (the engine has room for one shard): A is dropped
    // from the fast peer, B is copied to one
    read(b).await;
    let w2 = slow.placement_window().await.unwrap();
    assert_eq!(w2.planned_demotions, vec![a.to_string()], "{w2:?}");
    assert_eq!(w2.planned_promotions, vec![b.to_string()], "{w2:?}");
    assert_eq!((w2.promoted, w2.demoted), (1, 1), "{w2:?}");
    assert!(holder_a
        .tier_status()
        .await
        .cached
        .iter()
        .all(|c| c["cid"] != a.to_string()));
    let st = slow.tier_status().await;
    assert_eq!(st.promoted.len(), 1);
    assert_eq!(st.promoted[0]["cid"], b.to_string());
    let f2 = st.promoted[0]["peer"].as_str().unwrap().to_string();
    let kinds: Vec<(&str, String)> = st.moves.iter().map(|m| (m.kind, m.cid.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            ("promote", a.to_string()),
            ("demote", a.to_string()),
            ("promote", b.to_string())
        ]
    );
    assert!(
        st.moves[1].reason.contains("engine evicted"),
        "{:?}",
        st.moves
    );

    // clients find the fast copy of B (and none of A) and read B from there
    let r = client.resolve(&root).await.unwrap();
    let peers_of = |c: &Cid| {
        r.fast
            .get(c)
            .map(|v| v.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(peers_of(&b), Some(vec![f2.clone()]));
    assert_eq!(peers_of(&a), None);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let client = client.with_progress(tx);
    let &(si, pos) = r.position.get(&b).unwrap();
    let got = client.obtain(&r, si, &[pos]).await.unwrap();
    assert_eq!(got[0].0, b);
    let mut served_by = None;
    while let Ok(p) = rx.try_recv() {
        if let Progress::Fetched { cid, peer, .. } = p {
            if cid == b {
                served_by = Some(peer.to_string());
            }
        }
    }
    assert_eq!(served_by, Some(f2.clone()));

    // window 3: the read served by the fast copy counts as the promoter's, and B stays
    let w3 = slow.placement_window().await.unwrap();
    assert_eq!(w3.fast_reads, 1, "{w3:?}");
    assert_eq!((w3.promoted, w3.demoted), (0, 0), "{w3:?}");
    assert_eq!(slow.hot_shards(1)[0].1.reads, 4);
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_publisher_removes_a_dataset_from_its_holders() {
    use cairn_net::wire::{CtrlRequest, CtrlResponse};
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = dataset(dir.path(), 3 << 20, 21);
    let nodes = network(6).await;
    let rep = nodes[0].put(&path).await.unwrap();
    assert!(rep.distributed);
    let root: Cid = rep.root.parse().unwrap();
    let manifest: Cid = rep.manifest.parse().unwrap();
    let holder = nodes
        .iter()
        .skip(1)
        .find(|n| n.repo().pin_ls().unwrap().contains(&root))
        .expect("a holder other than the publisher")
        .clone();
    // another node (not the publisher) asks the holder to drop it: refused, nothing changes
    let other = nodes
        .iter()
        .find(|n| n.peer_id() != holder.peer_id() && n.peer_id() != nodes[0].peer_id())
        .unwrap();
    let used = holder.status().await.used;
    let a = other
        .net()
        .ctrl(holder.peer_id(), CtrlRequest::Remove(manifest))
        .await
        .unwrap();
    assert!(
        matches!(&a, CtrlResponse::Error(e) if e.contains("publisher")),
        "{a:?}"
    );
    assert!(holder.repo().pin_ls().unwrap().contains(&root));
    assert_eq!(holder.status().await.used, used);
    // a node that did not publish it cannot remove it through its own API call either
    assert!(other.remove(&root).await.is_err());
    // the publisher can: every holder frees the dataset
    let r = nodes[0].remove(&root).await.unwrap();
    assert!(r.failed.is_empty(), "{r:?}");
    assert_eq!(r.removed_from.len(), 6, "{r:?}");
    for n in &nodes {
        assert!(!n.repo().pin_ls().unwrap().contains(&root));
        assert!(n.repo().datasets().unwrap().is_empty());
        assert_eq!(n.status().await.used, 0, "node {} kept bytes", n.peer_id());
    }
}
