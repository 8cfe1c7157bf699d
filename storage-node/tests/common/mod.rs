//! Helpers shared by the multi-node tests.

use cairn_net::{Keypair, NetConfig, NoService};
use cairn_retrieval::{Client, Options};
use cairn_storage_node::node::Node;
use std::sync::Arc;

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
