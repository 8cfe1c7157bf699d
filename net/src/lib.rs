//! # cairn-net
//!
//! The only Cairn crate that touches libp2p. One task owns the [`libp2p::Swarm`] (TCP + Noise +
//! Yamux, Identify, Ping, Kademlia, Gossipsub, the `/cairn/ctrl/1` request-response protocol
//! and `/cairn/blocks/1` streams); everything else talks to it through a cloneable [`NetClient`].
//! What a node serves comes from a [`Service`] the caller provides.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_net::NetError> {
//! use cairn_net::{start, NetConfig, NoService};
//! use std::sync::Arc;
//!
//! let key = libp2p::identity::Keypair::generate_ed25519();
//! let (net, _events) = start(key, NetConfig::default(), Arc::new(NoService)).await?;
//! println!("listening on {:?}", net.listen_addrs().await?);
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod blocks;
mod client;
mod config;
mod ctrl;
pub mod identity;
mod limits;
pub mod records;
pub mod serve_times;
mod swarm;
pub mod wire;

pub use client::NetClient;
pub use config::{
    GossipId, GossipVerdict, NetConfig, NetEvent, CTRL_PROTOCOL, GOSSIP_GRAYLIST,
    GOSSIP_INVALID_WEIGHT, KAD_PROTOCOL, MAX_CONNECTIONS_PER_PEER, MAX_ESTABLISHED,
    MAX_ESTABLISHED_INCOMING, MAX_GOSSIP, MAX_INBOUND_CTRL_PER_PEER, MAX_PENDING_INCOMING,
};
pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
pub use swarm::start;

use bytes::Bytes;
use cairn_core::{Block, Cid};
use thiserror::Error;
use wire::{NodeInfo, PutStatus, WireError};

/// What a node offers its peers. Methods may block (they run on the blocking pool).
pub trait Service: Send + Sync + 'static {
    /// Capacity and use, for peers placing shards.
    fn info(&self) -> NodeInfo;
    /// For each CID: is a verified, non-quarantined copy held here?
    fn have(&self, cids: &[Cid]) -> Vec<bool>;
    /// A block's bytes for peer `from`, verified against its CID (never serve a block that
    /// does not match).
    fn get_block(&self, from: PeerId, cid: &Cid) -> Option<Bytes>;
    /// Stores one block a peer pushed as part of dataset `manifest`. The bytes were already
    /// verified against the CID.
    fn put_block(&self, from: PeerId, manifest: &Cid, block: Block) -> PutStatus;
    /// Called after every block of a push was read, with the blocks that were stored: makes
    /// them durable and records the dataset. Returning false reports every block as failed.
    fn put_done(&self, from: PeerId, manifest: &Cid, stored: &[Cid]) -> bool {
        let _ = (from, manifest, stored);
        true
    }
    /// For each CID asked by `from`: `None` if no promoted copy (fast tier) is held here, else
    /// the reads it served. Such copies are served by [`Service::get_block`] but are not
    /// counted by [`Service::have`].
    fn cached(&self, from: PeerId, cids: &[Cid]) -> Vec<Option<u32>> {
        let _ = from;
        vec![None; cids.len()]
    }
    /// Keeps one block `from` promoted here (verified against its CID already); `planned`:
    /// a copy for a reader's access plan ([`wire::StreamRequest::Cache`]).
    fn put_cached(&self, from: PeerId, block: Block, planned: bool) -> PutStatus {
        let _ = (from, block, planned);
        PutStatus::NoSpace
    }
    /// Called after every block of a `CACHE` exchange was read, with those kept: announces
    /// them (`planned`: copies for a reader's plan, which need no announcement). Returning
    /// false reports every block as failed.
    fn cache_done(&self, from: PeerId, stored: &[Cid], planned: bool) -> bool {
        let _ = (from, stored, planned);
        true
    }
    /// Notes that `from` read `cids` of the plan it registered over dataset `root`
    /// ([`wire::CtrlRequest::Read`]). It must not block.
    fn plan_reads(&self, from: PeerId, root: &Cid, cids: &[Cid]) -> Result<(), String> {
        let _ = (from, root, cids);
        Err("this node follows no plans".into())
    }
    /// The room for promoted copies this node has for `from` ([`wire::CtrlRequest::Space`]).
    fn cache_space(&self, from: PeerId) -> wire::CacheSpace {
        let _ = from;
        wire::CacheSpace::default()
    }
    /// Drops the promoted copies of `cids` that `from` pushed here; true for each dropped.
    fn uncache(&self, from: PeerId, cids: &[Cid]) -> Vec<bool> {
        let _ = from;
        vec![false; cids.len()]
    }
    /// Makes every block `from` pushed for dataset `manifest` durable and keeps the dataset,
    /// recording `publisher` as the peer allowed to remove it ([`wire::CtrlRequest::Commit`]).
    /// Ok(true) when durable.
    fn commit(&self, from: PeerId, manifest: &Cid, publisher: PeerId) -> Result<bool, String> {
        let _ = (from, manifest, publisher);
        Err("this node keeps no datasets".into())
    }
    /// Removes dataset `manifest` on the request of `from`, which must be its recorded
    /// publisher ([`wire::CtrlRequest::Remove`]). Ok(false) when it was not held here.
    fn remove(&self, from: PeerId, manifest: &Cid) -> Result<bool, String> {
        let _ = (from, manifest);
        Err("this node keeps no datasets".into())
    }
    /// Answers an application message ([`wire::CtrlRequest::App`]; proof audits). The answer
    /// must fit [`wire::MAX_APP`]; an error is sent back as text.
    fn app(&self, from: PeerId, msg: &[u8]) -> Result<Vec<u8>, String> {
        let _ = (from, msg);
        Err("not supported by this peer".into())
    }
    /// Takes a reader's plan from `from` ([`wire::CtrlRequest::Plan`]); Ok with the fast peers
    /// its copies go to, fastest first (at most [`wire::MAX_PEERS`]). It must not block: the
    /// plan is followed in the background.
    fn plan(
        &self,
        from: PeerId,
        root: &Cid,
        seed: Option<u64>,
        rate: u64,
    ) -> Result<Vec<PeerId>, String> {
        let _ = (from, root, seed, rate);
        Err("this node follows no plans".into())
    }
}

/// A service for peers that only fetch (clients): holds nothing, stores nothing.
pub struct NoService;

impl Service for NoService {
    fn info(&self) -> NodeInfo {
        NodeInfo::default()
    }
    fn have(&self, cids: &[Cid]) -> Vec<bool> {
        vec![false; cids.len()]
    }
    fn get_block(&self, _: PeerId, _: &Cid) -> Option<Bytes> {
        None
    }
    fn put_block(&self, _: PeerId, _: &Cid, _: Block) -> PutStatus {
        PutStatus::NoSpace
    }
}

/// Network failures.
#[derive(Debug, Error)]
pub enum NetError {
    /// The transport could not be built or could not listen.
    #[error("transport: {0}")]
    Transport(String),
    /// Dialing failed.
    #[error("dialing {addr}: {reason}")]
    Dial {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The swarm task has stopped.
    #[error("the network task has stopped")]
    Shutdown,
    /// A DHT lookup found nothing valid.
    #[error("no {0} found in the DHT")]
    NotFound(&'static str),
    /// A DHT query failed.
    #[error("DHT query: {0}")]
    Query(String),
    /// A control request failed.
    #[error("request to {peer}: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A block stream failed.
    #[error("block stream with {peer}: {reason}")]
    Stream {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A peer sent a malformed message.
    #[error("malformed message from {peer}: {source}")]
    Wire {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        source: WireError,
    },
    /// A request exceeds a protocol limit.
    #[error("{0} above the protocol limit")]
    Limit(&'static str),
    /// The operation took too long.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}
