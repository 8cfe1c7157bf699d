//! Rebalancing (issue 14 item 5): a dataset put while fewer than `k + m` nodes were reachable
//! stays on the publishing node until nodes join, and is then spread by repair rounds until
//! every stripe has `k + m` distinct holders. Real libp2p nodes in one process on loopback
//! port 0; every wait is on a future (a dial, a repair round), never a sleep.

mod common;

use cairn_core::testgen::Gen;
use cairn_core::Cid;
use cairn_net::{Keypair, NetConfig};
use cairn_repo::Repo;
use cairn_storage_node::node::{Node, NodeOptions, ShardPlacement};
use common::client_for;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// RS(4,2), the default; timers off so that only the test runs repair rounds.
fn opts() -> NodeOptions {
    NodeOptions {
        capacity: 1 << 30,
        k: 4,
        m: 2,
        repair_interval: Duration::ZERO,
        scrub_interval: Duration::ZERO,
        ..NodeOptions::default()
    }
}

async fn start(n: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(
            Node::start(
                Repo::in_memory(),
                Keypair::generate_ed25519(),
                NetConfig::default(),
                opts(),
            )
            .await
            .unwrap(),
        );
    }
    nodes
}

/// Connects each of `new` to every node in `old` and to the other new ones.
async fn join(old: &[Node], new: &[Node]) {
    for (i, a) in new.iter().enumerate() {
        for b in old.iter().chain(&new[i + 1..]) {
            let addr = b.net().listen_addrs().await.unwrap()[0].clone();
            a.net().dial(addr).await.unwrap();
        }
    }
}

/// Distinct holders of a stripe.
fn distinct(stripe: &[ShardPlacement]) -> HashSet<&String> {
    stripe.iter().flat_map(|s| &s.holders).collect()
}

/// Distinct shard CIDs of a stripe (a stripe's two data blocks may have the same bytes).
fn shard_count(stripe: &[ShardPlacement]) -> usize {
    stripe.iter().map(|s| &s.cid).collect::<HashSet<_>>().len()
}

/// Every stripe spread: no shard lost, each shard on exactly one node, and as many distinct
/// holders as shards.
fn spread(placement: &[Vec<ShardPlacement>]) -> bool {
    placement
        .iter()
        .all(|st| st.iter().all(|s| s.holders.len() == 1) && distinct(st).len() == shard_count(st))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_put_on_two_nodes_is_spread_over_k_plus_m_distinct_nodes_when_four_join() {
    let dir = tempfile::tempdir().unwrap();
    // 15.5 MiB: 16 leaves + a root node = 17 blocks = 5 stripes at RS(4,2), the last one a
    // short stripe (1 data + 2 parity shards); 27 shards
    let data = Gen::bytes(21, 15 << 20 | 1 << 19);
    let path = dir.path().join("data.bin");
    std::fs::write(&path, &data).unwrap();
    let mut nodes = start(2).await;
    join(&nodes[..1], &nodes[1..]).await;
    let rep = nodes[0].put(&path).await.unwrap();
    assert!(!rep.distributed);
    assert_eq!(rep.stripes, 5);
    let root: Cid = rep.root.parse().unwrap();
    let me = nodes[0].peer_id().to_string();
    // everything on the publishing node
    let placement = nodes[0].placement(&root).await.unwrap();
    let shards: usize = placement.iter().map(|s| shard_count(s)).sum();
    assert_eq!(shards, 27);
    for st in &placement {
        for s in st {
            assert_eq!(s.holders, vec![me.clone()], "{st:?}");
        }
    }
    // two nodes: a round already moves one shard of each stripe to the other node
    for n in &nodes {
        let r = n.repair_round().await.unwrap();
        assert!(r.failed.is_empty(), "{r:?}");
    }
    for st in nodes[0].placement(&root).await.unwrap() {
        assert!(st.iter().all(|s| s.holders.len() == 1), "{st:?}");
        assert_eq!(distinct(&st).len(), 2, "{st:?}");
    }
    // four more nodes join
    let more = start(4).await;
    join(&nodes, &more).await;
    nodes.extend(more);
    // rounds until spread; one leader round plus the crowded holders' drops suffice, so a
    // bound of 8 rounds of every node is generous
    const MAX_ROUNDS: usize = 8;
    let mut moved = 0;
    let mut dropped = 0;
    let mut last = Vec::new();
    for round in 0.. {
        assert!(
            round < MAX_ROUNDS,
            "not spread after {MAX_ROUNDS} rounds: {last:?}"
        );
        for n in &nodes {
            let r = n.repair_round().await.unwrap();
            assert!(r.failed.is_empty(), "{r:?}");
            assert_eq!(r.rebuilt, 0, "nothing was lost: {r:?}");
            moved += r.moved;
            dropped += r.dropped;
        }
        last = nodes[0].placement(&root).await.unwrap();
        if spread(&last) {
            break;
        }
    }
    // every stripe on k + m distinct nodes (the short one on 3), each shard on one node
    let placement = nodes[0].placement(&root).await.unwrap();
    for (st, want) in placement.iter().zip([6, 6, 6, 6, 3]) {
        assert_eq!(distinct(st).len(), want, "{st:?}");
        assert!(st.iter().all(|s| s.holders.len() == 1), "{st:?}");
    }
    // of the 27 shards, the 5 that each stripe keeps on the publisher never moved; the other
    // 22 moved once each (5 of them in the two-node round), and every source copy was dropped
    assert!(moved >= 22 - 5, "moved {moved}");
    assert!(dropped >= 22 - 5, "dropped {dropped}");
    // and the dataset still reads back byte for byte
    let (client, cnet) = client_for(&nodes[0]).await;
    let out = dir.path().join("out");
    let n = client.get(&root, &out).await.unwrap();
    assert_eq!(n as usize, data.len());
    assert_eq!(std::fs::read(&out).unwrap(), data);
    cnet.shutdown().await;
    // spread means two nodes may go: stop the two newcomers holding the most shards, and
    // the dataset still reads back (decoded from parity where needed)
    let mut load: HashMap<String, usize> = HashMap::new();
    for s in placement.iter().flatten() {
        *load.entry(s.holders[0].clone()).or_default() += 1;
    }
    let mut newcomers: Vec<&Node> = nodes[2..].iter().collect();
    newcomers.sort_by_key(|n| std::cmp::Reverse(load.get(&n.peer_id().to_string()).copied()));
    let down: Vec<String> = newcomers[..2]
        .iter()
        .map(|n| n.peer_id().to_string())
        .collect();
    for n in &newcomers[..2] {
        n.shutdown().await;
    }
    let (client, cnet) = client_for(&nodes[0]).await;
    let out = dir.path().join("out-2-down");
    client.get(&root, &out).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);
    cnet.shutdown().await;
    for n in &nodes {
        if !down.contains(&n.peer_id().to_string()) {
            n.shutdown().await;
        }
    }
}
