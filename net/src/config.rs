//! The network's settings, events and protocol limits.

use crate::records::{self};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use std::time::Duration;

/// Protocol name of control requests.
pub const CTRL_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/ctrl/1");
/// Protocol name of Cairn's Kademlia DHT (separate from the public IPFS DHT).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/kad/1.0.0");
/// Commands queued for the swarm task; callers wait when it is full (back-pressure).
pub(crate) const COMMAND_QUEUE: usize = 256;
/// Events queued for the application; when full, events are dropped with a warning rather
/// than stalling the swarm (the application re-reads state it needs).
pub(crate) const EVENT_QUEUE: usize = 1024;
/// Inbound control requests handled at once; more get an error answer.
pub(crate) const MAX_INBOUND_CTRL: usize = 64;
/// Records kept in the DHT store (provider keys and manifest records each count).
pub(crate) const MAX_DHT_RECORDS: usize = 200_000;
/// Keys this node provides: one per shard it holds (1.5 per MiB stored at RS(4,2)).
pub(crate) const MAX_PROVIDED_KEYS: usize = 1 << 20;
/// Largest Kademlia message: a manifest record value plus framing.
pub(crate) const KAD_MAX_PACKET: usize = records::MAX_RECORD_VALUE + (16 << 10);
/// Timeout of control requests and DHT queries.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of a control request: application requests (a window proof) may take seconds to
/// answer; callers put shorter timeouts on quick requests.
pub(crate) const CTRL_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest gossip message.
pub const MAX_GOSSIP: usize = 8 << 10;
/// Timeout of one block-stream exchange (a batch of up to 256 blocks).
pub(crate) const STREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// Network configuration.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Addresses to listen on (`/ip4/127.0.0.1/tcp/0` picks a free port).
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start (with `/p2p/<peer id>` so the DHT learns them).
    pub bootstrap: Vec<Multiaddr>,
    /// Whether this peer answers DHT queries and stores records (nodes: yes; clients: no).
    pub server: bool,
    /// How often each connected peer is pinged; every answer is a [`NetEvent::Rtt`].
    pub ping_interval: Duration,
    /// Delay before serving each fetched block: emulates slow media in a local devnet, so that
    /// peers measure a slow node (zero in production).
    pub serve_delay: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0"
                .parse()
                .expect("static address parses")],
            bootstrap: Vec::new(),
            server: true,
            ping_interval: Duration::from_secs(15),
            serve_delay: Duration::ZERO,
        }
    }
}

/// Something the application may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// First connection to a peer.
    Connected(PeerId),
    /// Last connection to a peer closed.
    Disconnected(PeerId),
    /// A ping to a peer came back after this round-trip time.
    Rtt(PeerId, Duration),
    /// A gossip message on a subscribed topic (authenticated by its author's libp2p signature,
    /// at most [`MAX_GOSSIP`] bytes; the payload itself is unvalidated).
    Gossip {
        /// The author.
        source: PeerId,
        /// The topic.
        topic: String,
        /// The payload.
        data: Vec<u8>,
    },
}
