//! [`NetClient`], the cloneable handle on the swarm task: commands to the task, block streams.

use crate::blocks;
use crate::config::{MAX_GOSSIP, REQUEST_TIMEOUT, STREAM_TIMEOUT};
use crate::records::{encode_manifest_record, manifest_key, ManifestRecord};
use crate::wire::{CtrlRequest, CtrlResponse, GetStatus, PutStatus, StreamRequest};
use crate::NetError;
use bytes::Bytes;
use cairn_core::{Block, Cid};
use libp2p::identity::Keypair;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, NetError>>;

pub(crate) enum Command {
    Dial(Multiaddr, Reply<PeerId>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    RoutingPeers(oneshot::Sender<Vec<PeerId>>),
    Connected(oneshot::Sender<Vec<PeerId>>),
    Provide(Cid, Reply<()>),
    Providers(Cid, Reply<Vec<PeerId>>),
    PutManifest(Vec<u8>, Vec<u8>, Reply<()>),
    GetManifest(Cid, Reply<ManifestRecord>),
    GetManifests(Cid, Reply<Vec<ManifestRecord>>),
    Ctrl(PeerId, CtrlRequest, Reply<CtrlResponse>),
    Respond(ResponseChannel<CtrlResponse>, CtrlResponse),
    Disconnect(PeerId),
    Bootstrap(Reply<()>),
    Subscribe(String, Reply<()>),
    ReportGossip(crate::config::GossipId, crate::config::GossipVerdict),
    Publish(String, Vec<u8>, Reply<()>),
    Shutdown(Option<oneshot::Sender<()>>),
}

/// A cloneable handle on the swarm task.
#[derive(Clone)]
pub struct NetClient {
    pub(crate) cmd: mpsc::Sender<Command>,
    pub(crate) control: libp2p_stream::Control,
    pub(crate) peer_id: PeerId,
    pub(crate) key: Keypair,
    /// Idle block streams per peer, reused by later exchanges.
    pub(crate) pool: Arc<std::sync::Mutex<HashMap<PeerId, Vec<libp2p::Stream>>>>,
    /// How long this node took to have the blocks it served in hand.
    pub(crate) serve_times: Arc<crate::serve_times::ServeTimes>,
}

/// Idle block streams kept per peer. Reusing streams avoids a protocol negotiation per block
/// and the burst of new inbound streams a peer may shed under load.
const POOL_PER_PEER: usize = 16;
/// Attempts per block exchange: a pooled stream may have been closed by the peer, and a new
/// one may be shed when the peer is busy; exchanges are idempotent, so they are retried.
const STREAM_ATTEMPTS: usize = 4;

impl NetClient {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The median time this node took to have a block it served in hand, ms per MiB (see
    /// [`crate::serve_times`]); `None` until it served enough blocks.
    pub fn serve_mib_ms(&self) -> Option<f64> {
        self.serve_times.median_mib_ms()
    }

    /// Signs `msg` with this node's identity key (check with [`crate::identity::verify_signature`]).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        crate::identity::sign(&self.key, msg)
    }

    /// Subscribes to a gossip topic; its messages arrive as [`NetEvent::Gossip`].
    pub async fn subscribe(&self, topic: &str) -> Result<(), NetError> {
        self.call(|r| Command::Subscribe(topic.to_string(), r))
            .await
    }

    /// Reports the application's verdict on a received gossip message: accepted messages are
    /// forwarded, rejected ones count against the peer that sent them (peer scoring).
    pub async fn report_gossip(
        &self,
        id: crate::config::GossipId,
        verdict: crate::config::GossipVerdict,
    ) -> Result<(), NetError> {
        self.cmd
            .send(Command::ReportGossip(id, verdict))
            .await
            .map_err(|_| NetError::Shutdown)
    }

    /// Publishes `data` (at most [`MAX_GOSSIP`] bytes) on a gossip topic.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), NetError> {
        if data.len() > MAX_GOSSIP {
            return Err(NetError::Limit("gossip message"));
        }
        self.call(|r| Command::Publish(topic.to_string(), data, r))
            .await
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(make(tx))
            .await
            .map_err(|_| NetError::Shutdown)?;
        rx.await.map_err(|_| NetError::Shutdown)?
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(make(tx))
            .await
            .map_err(|_| NetError::Shutdown)?;
        rx.await.map_err(|_| NetError::Shutdown)
    }

    /// The addresses this node listens on, each with `/p2p/<peer id>` appended.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        let v = self.ask(Command::ListenAddrs).await?;
        Ok(v.into_iter()
            .map(|a| a.with(libp2p::multiaddr::Protocol::P2p(self.peer_id)))
            .collect())
    }

    /// Dials an address and waits for the connection.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.call(|r| Command::Dial(addr, r)))
            .await
            .map_err(|_| NetError::Timeout(REQUEST_TIMEOUT))?
    }

    /// DHT servers in the routing table (storage nodes this node knows of).
    pub async fn routing_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(Command::RoutingPeers).await
    }

    /// Walks the DHT from the known peers so the routing table fills up; returns when the walk
    /// is done.
    pub async fn bootstrap(&self) -> Result<(), NetError> {
        self.call(Command::Bootstrap).await
    }

    /// Peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(Command::Connected).await
    }

    /// Announces this node as a provider of `cid`.
    pub async fn provide(&self, cid: Cid) -> Result<(), NetError> {
        self.call(|r| Command::Provide(cid, r)).await
    }

    /// Nodes that announced they hold `cid`.
    pub async fn providers(&self, cid: Cid) -> Result<Vec<PeerId>, NetError> {
        self.call(|r| Command::Providers(cid, r)).await
    }

    /// Publishes the manifest record of `root` (the manifest head block itself), signed by
    /// this node.
    pub async fn publish_manifest(&self, root: &Cid, head: &Block) -> Result<(), NetError> {
        let key = manifest_key(root);
        let value = encode_manifest_record(root, &head.cid, &head.data, &self.key);
        self.call(|r| Command::PutManifest(key, value, r)).await
    }

    /// Finds and validates the manifest record of `root`: the first valid one found.
    pub async fn resolve_manifest(&self, root: &Cid) -> Result<ManifestRecord, NetError> {
        let root = *root;
        self.call(|r| Command::GetManifest(root, r)).await
    }

    /// Every valid manifest record of `root` the DHT query meets (distinct manifests, at most
    /// [`crate::records::MAX_CANDIDATES`]), for a caller that found the first one does not
    /// describe the root's DAG.
    pub async fn resolve_manifest_candidates(
        &self,
        root: &Cid,
    ) -> Result<Vec<ManifestRecord>, NetError> {
        let root = *root;
        self.call(|r| Command::GetManifests(root, r)).await
    }

    /// Sends a control request.
    pub async fn ctrl(&self, peer: PeerId, req: CtrlRequest) -> Result<CtrlResponse, NetError> {
        self.call(|r| Command::Ctrl(peer, req, r)).await
    }

    async fn stream(&self, peer: PeerId, reuse: bool) -> Result<libp2p::Stream, NetError> {
        if reuse {
            if let Some(s) = self
                .pool
                .lock()
                .ok()
                .and_then(|mut p| p.get_mut(&peer).and_then(Vec::pop))
            {
                return Ok(s);
            }
        }
        let mut c = self.control.clone();
        c.open_stream(peer, blocks::BLOCKS_PROTOCOL)
            .await
            .map_err(|e| NetError::Stream {
                peer,
                reason: e.to_string(),
            })
    }

    fn give_back(&self, peer: PeerId, s: libp2p::Stream) {
        if let Ok(mut p) = self.pool.lock() {
            let v = p.entry(peer).or_default();
            if v.len() < POOL_PER_PEER {
                v.push(s);
            }
        }
    }

    /// Fetches up to [`crate::wire::MAX_BATCH`] blocks from `peer` (unverified: verify before
    /// use).
    pub async fn fetch(&self, peer: PeerId, cids: &[Cid]) -> Result<Vec<GetStatus>, NetError> {
        let mut last = NetError::Shutdown;
        for attempt in 0..STREAM_ATTEMPTS {
            let mut s = self.stream(peer, attempt == 0).await?;
            match tokio::time::timeout(STREAM_TIMEOUT, blocks::fetch_on(&mut s, peer, cids)).await {
                Ok(Ok(v)) => {
                    self.give_back(peer, s);
                    return Ok(v);
                }
                Ok(Err(e)) => last = e,
                Err(_) => return Err(NetError::Timeout(STREAM_TIMEOUT)),
            }
            tokio::task::yield_now().await;
        }
        Err(last)
    }

    /// Fetches one block and verifies it; `Ok(None)` if the peer does not have it.
    pub async fn fetch_verified(&self, peer: PeerId, cid: &Cid) -> Result<Option<Bytes>, NetError> {
        match self.fetch(peer, std::slice::from_ref(cid)).await?.pop() {
            Some(GetStatus::Found(b)) => {
                Block::verify(cid, &b).map_err(|e| NetError::Stream {
                    peer,
                    reason: format!("sent wrong bytes for {cid}: {e}"),
                })?;
                Ok(Some(b))
            }
            _ => Ok(None),
        }
    }

    /// Pushes up to [`crate::wire::MAX_BATCH`] blocks of dataset `manifest` to `peer`.
    pub async fn push(
        &self,
        peer: PeerId,
        manifest: Cid,
        blocks: &[Block],
    ) -> Result<Vec<PutStatus>, NetError> {
        let head = StreamRequest::Put {
            manifest,
            count: blocks.len(),
        };
        self.send(peer, &head, blocks).await
    }

    /// Pushes up to [`crate::wire::MAX_BATCH`] blocks to `peer` as promoted copies (the fast
    /// tier), `planned` for a reader's access plan; one status per block.
    pub async fn push_cached(
        &self,
        peer: PeerId,
        blocks: &[Block],
        planned: bool,
    ) -> Result<Vec<PutStatus>, NetError> {
        let head = StreamRequest::Cache {
            count: blocks.len(),
            planned,
        };
        self.send(peer, &head, blocks).await
    }

    async fn send(
        &self,
        peer: PeerId,
        head: &StreamRequest,
        blocks: &[Block],
    ) -> Result<Vec<PutStatus>, NetError> {
        let mut last = NetError::Shutdown;
        for attempt in 0..STREAM_ATTEMPTS {
            let mut s = self.stream(peer, attempt == 0).await?;
            match tokio::time::timeout(STREAM_TIMEOUT, blocks::push_on(&mut s, peer, head, blocks))
                .await
            {
                Ok(Ok(v)) => {
                    self.give_back(peer, s);
                    return Ok(v);
                }
                Ok(Err(e)) => last = e,
                Err(_) => return Err(NetError::Timeout(STREAM_TIMEOUT)),
            }
            tokio::task::yield_now().await;
        }
        Err(last)
    }

    /// Opens a raw `/cairn/blocks/1` stream (for tests that play a misbehaving peer).
    #[doc(hidden)]
    pub async fn open_raw_blocks_stream(&self, peer: PeerId) -> Result<libp2p::Stream, NetError> {
        let mut c = self.control.clone();
        c.open_stream(peer, blocks::BLOCKS_PROTOCOL)
            .await
            .map_err(|e| NetError::Stream {
                peer,
                reason: e.to_string(),
            })
    }

    /// Publishes a record without validating it first (for tests that play a forger).
    #[doc(hidden)]
    pub async fn put_record_unchecked(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), NetError> {
        self.call(|r| Command::PutManifest(key, value, r)).await
    }

    /// Closes every connection to `peer` (used against misbehaving peers).
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.cmd
            .send(Command::Disconnect(peer))
            .await
            .map_err(|_| NetError::Shutdown)
    }

    /// Stops the swarm task and waits until it has: every connection is closed and the
    /// [`Service`] is released by the network.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Shutdown(Some(tx))).await.is_ok() {
            let _ = rx.await;
        }
    }
}
