//! Helpers shared by the multi-node tests (each test file uses some of them).
#![allow(dead_code)]

pub mod gateway;

use cairn_net::{Keypair, NetConfig, NoService};
use cairn_proofs::audit::NetParams;
use cairn_repo::Repo;
use cairn_retrieval::{Client, Options};
use cairn_storage_node::node::{Node, NodeOptions};
use cairn_storage_node::proving::ProofOptions;
use std::sync::Arc;
use std::time::Duration;

/// Small proof parameters: 16 KiB sectors, 2 layers, 10 challenges, batches of 2.
pub fn params() -> NetParams {
    NetParams {
        sector_size: 16 << 10,
        layers: 2,
        challenges: 10,
        batch: 2,
        seal_challenges: 2,
    }
}

/// Where the development keys of [`params`] are kept, shared by runs: the setup is
/// deterministic, and slow.
pub fn keys_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cairn-test-keys")
}

/// A node with RS(2,2), no background repair, scrub or collection, and proofs on [`params`] when `proofs`
/// (with day-long windows, sealing intervals and grace periods: the test drives every step).
pub fn opts(proofs: bool) -> NodeOptions {
    NodeOptions {
        capacity: 1 << 30,
        k: 2,
        m: 2,
        repair_interval: Duration::ZERO,
        scrub_interval: Duration::ZERO,
        collect_interval: Duration::ZERO,
        proofs: proofs.then(|| ProofOptions {
            params: params(),
            window: Duration::from_secs(24 * 3600),
            keys: cairn_proofs::audit::KeySource::Dev(keys_dir()),
            seal_interval: Duration::from_secs(24 * 3600),
            seal_wait: Duration::ZERO,
            grace: Duration::from_secs(24 * 3600),
            retire_grace: 0,
            check_grace: Duration::from_secs(24 * 3600),
            replica_only: false,
        }),
        ..NodeOptions::default()
    }
}

/// A retrieval client (not a server) bootstrapped from and connected to `node`, and its
/// network handle.
pub async fn client_for(node: &Node) -> (Client, cairn_net::NetClient) {
    let addr = node.net().listen_addrs().await.unwrap()[0].clone();
    let cfg = NetConfig {
        bootstrap: vec![addr.clone()],
        server: false,
        ..NetConfig::default()
    };
    let (net, _ev) = cairn_net::start(Keypair::generate_ed25519(), cfg, Arc::new(NoService))
        .await
        .unwrap();
    net.dial(addr).await.unwrap();
    (Client::new(net.clone(), Options::default()), net)
}

/// `n` in-memory nodes with `o`, each dialled to every other.
pub async fn mesh(n: usize, o: &NodeOptions) -> Vec<Node> {
    mesh_with(n, |_| o.clone()).await
}

/// `n` in-memory nodes, node `i` with `o(i)`, each dialled to every other.
pub async fn mesh_with(n: usize, o: impl Fn(usize) -> NodeOptions) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let node = Node::start(
            Repo::in_memory(),
            Keypair::generate_ed25519(),
            NetConfig::default(),
            o(i),
        )
        .await
        .unwrap();
        for other in &nodes {
            let addr = other.net().listen_addrs().await.unwrap()[0].clone();
            node.net().dial(addr).await.unwrap();
        }
        nodes.push(node);
    }
    nodes
}

/// Six in-memory nodes with fixed keys (`[key_base + i; 32]`: the rendezvous placement is the
/// same every run), node `i` with `o(i)`, each dialled to every other. Nodes 0 to 3 serve
/// each block 300 ms late, as from slow media, so their peers measure nodes 4 and 5 as fast.
pub async fn slow_six(key_base: u8, o: impl Fn(usize) -> NodeOptions) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..6 {
        let cfg = NetConfig {
            serve_delay: if i < 4 {
                Duration::from_millis(300)
            } else {
                Duration::ZERO
            },
            ..NetConfig::default()
        };
        let key = Keypair::ed25519_from_bytes([key_base + i as u8; 32]).unwrap();
        let node = Node::start(Repo::in_memory(), key, cfg, o(i))
            .await
            .unwrap();
        for other in &nodes {
            let addr = other.net().listen_addrs().await.unwrap()[0].clone();
            node.net().dial(addr).await.unwrap();
        }
        nodes.push(node);
    }
    nodes
}
