//! The typed answers of the API routes defined here (the node's own reports, `PutReport`,
//! `NodeStatus`, `RepairRound`, `RemoveReport`, live beside the node and are re-exported):
//! serialized by the server, deserialized by [`super::client`] in `cairn` and `cairn-node`.

use serde::{Deserialize, Serialize};

pub use crate::node::{NodeStatus, PutReport, RemoveReport, RepairRound, ShardPlacement};
pub use crate::proving::ProofStatus;

/// `GET /api/v0/id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Id {
    /// Peer id.
    pub peer_id: String,
    /// libp2p listen addresses.
    pub addrs: Vec<String>,
}

/// One entry of `GET /api/v0/pins`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PinEntry {
    /// The pinned root.
    pub root: String,
    /// The dataset's manifest CID, when the pin is a dataset.
    pub manifest: Option<String>,
}

/// What a started daemon reports once it is ready (one JSON line on stdout).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ready {
    /// Peer id.
    pub peer_id: String,
    /// Bound API address.
    pub api: String,
    /// The IPFS gateway's base URL (`http://host:port`, the bound address), when it is on.
    #[serde(default)]
    pub gateway: Option<String>,
    /// libp2p listen addresses.
    pub addrs: Vec<String>,
}
