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
/// Inbound control requests one peer may have in progress at once (so one peer cannot take
/// all [`MAX_INBOUND_CTRL`]); more get an error answer.
pub const MAX_INBOUND_CTRL_PER_PEER: usize = 8;
/// Incoming connections being set up at once (Noise handshakes cost CPU).
pub const MAX_PENDING_INCOMING: u32 = 64;
/// Established incoming connections.
pub const MAX_ESTABLISHED_INCOMING: u32 = 512;
/// Established connections in all.
pub const MAX_ESTABLISHED: u32 = 1024;
/// Established connections with one peer (two nodes dialling each other at once make two).
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;
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
    /// at most [`MAX_GOSSIP`] bytes; the payload itself is unvalidated). It is forwarded to
    /// other peers only once the application reports it valid
    /// ([`crate::NetClient::report_gossip`]).
    Gossip {
        /// The author.
        source: PeerId,
        /// The topic.
        topic: String,
        /// The payload.
        data: Vec<u8>,
        /// What to hand back with the verdict on it.
        id: GossipId,
    },
}

/// Names one received gossip message (its id and the peer that forwarded it) for
/// [`crate::NetClient::report_gossip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipId {
    pub(crate) message: libp2p::gossipsub::MessageId,
    pub(crate) from: PeerId,
}

/// The application's verdict on a gossip message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipVerdict {
    /// Valid: forward it.
    Accept,
    /// Invalid on its face (malformed, a bad signature, a claim its own evidence refutes): drop
    /// it and count it against the peer that sent it (gossipsub peer scoring; a peer that sends
    /// a few is graylisted).
    Reject,
    /// Not for us now (a stale window, a quota, a view of the ring that differs): drop it, no
    /// penalty.
    Ignore,
}

/// Gossipsub peer-score weight of one invalid message on a Cairn topic (the penalty is this
/// times the square of the decayed count of invalid messages): three rejected messages put a
/// peer below [`GOSSIP_GRAYLIST`], and its messages are then ignored until the count decays.
pub const GOSSIP_INVALID_WEIGHT: f64 = -10.0;
/// Score below which a peer's gossip is ignored altogether.
pub const GOSSIP_GRAYLIST: f64 = -80.0;
