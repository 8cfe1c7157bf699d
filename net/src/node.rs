//! The swarm task and its cloneable client.

use crate::blocks;
use crate::records::{
    self, encode_manifest_record, manifest_key, validate_manifest_record, ManifestRecord,
};
use crate::wire::{
    CtrlRequest, CtrlResponse, GetStatus, PutStatus, StreamRequest, MAX_APP, MAX_CTRL_REQUEST,
    MAX_CTRL_RESPONSE,
};
use crate::{NetError, Service};
use bytes::Bytes;
use cairn_core::{Block, Cid};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::core::ConnectedPoint;
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{self, QueryId, QueryResult};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    gossipsub, identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Protocol name of control requests.
pub const CTRL_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/ctrl/1");
/// Protocol name of Cairn's Kademlia DHT (separate from the public IPFS DHT).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/kad/1.0.0");
/// Commands queued for the swarm task; callers wait when it is full (back-pressure).
const COMMAND_QUEUE: usize = 256;
/// Events queued for the application; when full, events are dropped with a warning rather
/// than stalling the swarm (the application re-reads state it needs).
const EVENT_QUEUE: usize = 1024;
/// Inbound control requests handled at once; more get an error answer.
const MAX_INBOUND_CTRL: usize = 64;
/// Records kept in the DHT store (provider keys and manifest records each count).
const MAX_DHT_RECORDS: usize = 200_000;
/// Keys this node provides: one per shard it holds (1.5 per MiB stored at RS(4,2)).
const MAX_PROVIDED_KEYS: usize = 1 << 20;
/// Largest Kademlia message: a manifest record value plus framing.
const KAD_MAX_PACKET: usize = records::MAX_RECORD_VALUE + (16 << 10);
/// Timeout of control requests and DHT queries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of a control request: application requests (a window proof) may take seconds to
/// answer; callers put shorter timeouts on quick requests.
const CTRL_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest gossip message.
pub const MAX_GOSSIP: usize = 8 << 10;
/// Timeout of one block-stream exchange (a batch of up to 256 blocks).
const STREAM_TIMEOUT: Duration = Duration::from_secs(120);

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

/// Codec of `/cairn/ctrl/1`: one message per stream, read to the end with a size cap.
#[derive(Clone, Default)]
struct CtrlCodec;

async fn read_capped<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    cap: usize,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(cap as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "message above the size limit",
        ));
    }
    Ok(buf)
}

fn invalid(e: crate::wire::WireError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl request_response::Codec for CtrlCodec {
    type Protocol = StreamProtocol;
    type Request = CtrlRequest;
    type Response = CtrlResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<CtrlRequest> {
        CtrlRequest::decode(&read_capped(io, MAX_CTRL_REQUEST).await?).map_err(invalid)
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<CtrlResponse> {
        CtrlResponse::decode(&read_capped(io, MAX_CTRL_RESPONSE).await?).map_err(invalid)
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: CtrlRequest,
    ) -> std::io::Result<()> {
        io.write_all(&req.encode()).await?;
        io.close().await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: CtrlResponse,
    ) -> std::io::Result<()> {
        io.write_all(&res.encode()).await?;
        io.close().await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    ctrl: request_response::Behaviour<CtrlCodec>,
    stream: libp2p_stream::Behaviour,
    gossip: gossipsub::Behaviour,
}

type Reply<T> = oneshot::Sender<Result<T, NetError>>;

enum Command {
    Dial(Multiaddr, Reply<PeerId>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    RoutingPeers(oneshot::Sender<Vec<PeerId>>),
    Connected(oneshot::Sender<Vec<PeerId>>),
    Provide(Cid, Reply<()>),
    Providers(Cid, Reply<Vec<PeerId>>),
    PutManifest(Vec<u8>, Vec<u8>, Reply<()>),
    GetManifest(Cid, Reply<ManifestRecord>),
    Ctrl(PeerId, CtrlRequest, Reply<CtrlResponse>),
    Respond(ResponseChannel<CtrlResponse>, CtrlResponse),
    Disconnect(PeerId),
    Bootstrap(Reply<()>),
    Subscribe(String, Reply<()>),
    Publish(String, Vec<u8>, Reply<()>),
    Shutdown(Option<oneshot::Sender<()>>),
}

/// A cloneable handle on the swarm task.
#[derive(Clone)]
pub struct NetClient {
    cmd: mpsc::Sender<Command>,
    control: libp2p_stream::Control,
    peer_id: PeerId,
    key: Keypair,
    /// Idle block streams per peer, reused by later exchanges.
    pool: Arc<std::sync::Mutex<HashMap<PeerId, Vec<libp2p::Stream>>>>,
}

/// Idle block streams kept per peer. Reusing streams avoids a protocol negotiation per block
/// and the burst of new inbound streams a peer may shed under load.
const POOL_PER_PEER: usize = 16;
/// Attempts per block exchange: a pooled stream may have been closed by the peer, and a new
/// one may be shed when the peer is busy; exchanges are idempotent, so they are retried.
const STREAM_ATTEMPTS: usize = 4;

/// Builds the swarm, starts listening, dials the bootstrap peers and spawns the swarm task.
/// Returns once every listen address is bound.
pub async fn start(
    key: Keypair,
    config: NetConfig,
    service: Arc<dyn Service>,
) -> Result<(NetClient, mpsc::Receiver<NetEvent>), NetError> {
    let peer_id = key.public().to_peer_id();
    let signing_key = key.clone();
    let t = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
    let server = config.server;
    let ping_interval = config.ping_interval;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| t(&e))?
        .with_behaviour(|key| {
            let mut kcfg = kad::Config::new(KAD_PROTOCOL);
            kcfg.set_query_timeout(REQUEST_TIMEOUT)
                .set_record_filtering(kad::StoreInserts::FilterBoth)
                .set_max_packet_size(KAD_MAX_PACKET);
            let store = MemoryStore::with_config(
                key.public().to_peer_id(),
                MemoryStoreConfig {
                    max_records: MAX_DHT_RECORDS,
                    max_value_bytes: records::MAX_RECORD_VALUE + 256,
                    max_provided_keys: MAX_PROVIDED_KEYS,
                    ..Default::default()
                },
            );
            let mut kad = kad::Behaviour::with_config(key.public().to_peer_id(), store, kcfg);
            kad.set_mode(Some(if server {
                kad::Mode::Server
            } else {
                kad::Mode::Client
            }));
            Ok(Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new("/cairn/id/1.0.0".into(), key.public())
                        .with_agent_version(format!("cairn/{}", env!("CARGO_PKG_VERSION"))),
                ),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_interval)),
                kad,
                ctrl: request_response::Behaviour::with_codec(
                    CtrlCodec,
                    [(CTRL_PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(CTRL_TIMEOUT),
                ),
                stream: libp2p_stream::Behaviour::new(),
                gossip: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    gossipsub::ConfigBuilder::default()
                        .max_transmit_size(MAX_GOSSIP)
                        .validation_mode(gossipsub::ValidationMode::Strict)
                        .build()
                        .map_err(|e| std::io::Error::other(e.to_string()))?,
                )
                .map_err(|e| std::io::Error::other(e.to_string()))?,
            })
        })
        .map_err(|e| t(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();

    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| t(&e))?;
    }
    // wait until every listener is bound, so callers can publish real addresses
    let mut bound = 0;
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    while bound < config.listen.len() {
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| NetError::Transport("listeners did not come up".into()))?;
        match ev {
            SwarmEvent::NewListenAddr { .. } => bound += 1,
            SwarmEvent::ListenerError { error, .. } => return Err(t(&error)),
            SwarmEvent::ListenerClosed { reason: Err(e), .. } => return Err(t(&e)),
            _ => {}
        }
    }

    let mut control = swarm.behaviour().stream.new_control();
    let incoming = control
        .accept(blocks::BLOCKS_PROTOCOL)
        .map_err(|e| t(&format!("{e:?}")))?;
    // the serve loop ends when the swarm task drops `stop_tx`
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::spawn(blocks::serve(
        incoming,
        service.clone(),
        peer_id,
        config.serve_delay,
        stop_rx,
    ));

    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let client = NetClient {
        cmd: cmd_tx.clone(),
        control,
        peer_id,
        key: signing_key,
        pool: Arc::default(),
    };
    for addr in &config.bootstrap {
        if let Some(libp2p::multiaddr::Protocol::P2p(p)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&p, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(%peer_id, %addr, error = %e, "bootstrap dial failed");
        }
    }
    let task = SwarmTask {
        swarm,
        cmd_tx,
        events: ev_tx,
        service,
        ctrl_permits: Arc::new(Semaphore::new(MAX_INBOUND_CTRL)),
        dials: HashMap::new(),
        provides: HashMap::new(),
        providers: HashMap::new(),
        puts: HashMap::new(),
        gets: HashMap::new(),
        requests: HashMap::new(),
        bootstraps: HashMap::new(),
        bootstrapped: false,
        _stop: stop_tx,
    };
    tokio::spawn(tracing::Instrument::instrument(
        task.run(cmd_rx),
        tracing::info_span!("net", peer = %peer_id),
    ));
    Ok((client, ev_rx))
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    cmd_tx: mpsc::Sender<Command>,
    events: mpsc::Sender<NetEvent>,
    service: Arc<dyn Service>,
    ctrl_permits: Arc<Semaphore>,
    dials: HashMap<ConnectionId, (Multiaddr, Reply<PeerId>)>,
    provides: HashMap<QueryId, Reply<()>>,
    providers: HashMap<QueryId, (HashSet<PeerId>, Reply<Vec<PeerId>>)>,
    puts: HashMap<QueryId, Reply<()>>,
    gets: HashMap<QueryId, Reply<ManifestRecord>>,
    requests: HashMap<OutboundRequestId, Reply<CtrlResponse>>,
    bootstraps: HashMap<QueryId, Reply<()>>,
    bootstrapped: bool,
    _stop: tokio::sync::watch::Sender<()>,
}

impl SwarmTask {
    async fn run(mut self, mut cmds: mpsc::Receiver<Command>) {
        let done = loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                cmd = cmds.recv() => match cmd {
                    None => break None,
                    Some(Command::Shutdown(done)) => break done,
                    Some(c) => self.on_command(c),
                },
            }
        };
        drop(self);
        tracing::debug!("swarm task stopped");
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn on_command(&mut self, c: Command) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        match c {
            Command::Dial(addr, reply) => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::RoutingPeers(reply) => {
                let mut v = Vec::new();
                for b in kad.kbuckets() {
                    for e in b.iter() {
                        v.push(*e.node.key.preimage());
                    }
                }
                let _ = reply.send(v);
            }
            Command::Connected(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Provide(cid, reply) => {
                match kad.start_providing(kad::RecordKey::new(&cid.to_bytes())) {
                    Ok(q) => {
                        self.provides.insert(q, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Query(e.to_string())));
                    }
                }
            }
            Command::Providers(cid, reply) => {
                let q = kad.get_providers(kad::RecordKey::new(&cid.to_bytes()));
                self.providers.insert(q, (HashSet::new(), reply));
            }
            Command::PutManifest(key, value, reply) => {
                let rec = kad::Record::new(kad::RecordKey::new(&key), value);
                match kad.put_record(rec, kad::Quorum::One) {
                    Ok(q) => {
                        self.puts.insert(q, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Query(e.to_string())));
                    }
                }
            }
            Command::GetManifest(root, reply) => {
                let q = kad.get_record(kad::RecordKey::new(&manifest_key(&root)));
                self.gets.insert(q, reply);
            }
            Command::Ctrl(peer, req, reply) => {
                let id = self.swarm.behaviour_mut().ctrl.send_request(&peer, req);
                self.requests.insert(id, reply);
            }
            Command::Respond(channel, resp) => {
                if self
                    .swarm
                    .behaviour_mut()
                    .ctrl
                    .send_response(channel, resp)
                    .is_err()
                {
                    tracing::debug!("control response dropped: the requester went away");
                }
            }
            Command::Bootstrap(reply) => match kad.bootstrap() {
                Ok(q) => {
                    self.bootstraps.insert(q, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(NetError::Query(e.to_string())));
                }
            },
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Subscribe(topic, reply) => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .subscribe(&gossipsub::IdentTopic::new(topic))
                    .map(|_| ())
                    .map_err(|e| NetError::Query(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Publish(topic, data, reply) => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .publish(gossipsub::IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| NetError::Query(e.to_string()));
                let _ = reply.send(r);
            }
            Command::Shutdown(_) => {}
        }
    }

    fn emit(&self, ev: NetEvent) {
        if self.events.try_send(ev).is_err() {
            tracing::warn!("network event queue full or closed; event dropped");
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, address.clone());
                }
                if !self.bootstrapped {
                    self.bootstrapped = self.swarm.behaviour_mut().kad.bootstrap().is_ok();
                }
                if num_established.get() == 1 {
                    self.emit(NetEvent::Connected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.emit(NetEvent::Disconnected(peer_id));
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr: addr.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if info.protocols.contains(&KAD_PROTOCOL) => {
                for a in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, a);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ctrl(ev)) => self.on_ctrl(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => self.emit(NetEvent::Rtt(peer, rtt)),
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                message,
                ..
            })) => {
                if let Some(source) = message.source {
                    self.emit(NetEvent::Gossip {
                        source,
                        topic: message.topic.into_string(),
                        data: message.data,
                    });
                }
            }
            _ => {}
        }
    }

    fn on_kad(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::PutRecord {
                    source,
                    record: Some(rec),
                    ..
                } => match validate_manifest_record(rec.key.as_ref(), &rec.value) {
                    Ok(_) => {
                        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(rec) {
                            tracing::warn!(%source, error = %e, "DHT record not stored");
                        }
                    }
                    Err(e) => tracing::info!(%source, error = %e, "invalid DHT record rejected"),
                },
                kad::InboundRequest::AddProvider { record: Some(rec) } => {
                    match records::validate_provider_key(rec.key.as_ref()) {
                        Ok(_) => {
                            if let Err(e) =
                                self.swarm.behaviour_mut().kad.store_mut().add_provider(rec)
                            {
                                tracing::warn!(error = %e, "provider record not stored");
                            }
                        }
                        Err(e) => tracing::info!(provider = %rec.provider, error = %e,
                            "invalid provider record rejected"),
                    }
                }
                _ => {}
            },
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                QueryResult::Bootstrap(_) if step.last => {
                    if let Some(reply) = self.bootstraps.remove(&id) {
                        let _ = reply.send(Ok(()));
                    }
                }
                QueryResult::StartProviding(r) => {
                    if let Some(reply) = self.provides.remove(&id) {
                        // Providing is stored locally first; a network with no other DHT
                        // server yet still serves the record from here.
                        let _ = reply.send(match r {
                            Ok(_) | Err(kad::AddProviderError::Timeout { .. }) => Ok(()),
                        });
                    }
                }
                QueryResult::GetProviders(r) => {
                    if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r {
                        if let Some((acc, _)) = self.providers.get_mut(&id) {
                            acc.extend(providers);
                        }
                    }
                    if step.last {
                        if let Some((acc, reply)) = self.providers.remove(&id) {
                            let _ = reply.send(Ok(acc.into_iter().collect()));
                        }
                    }
                }
                QueryResult::PutRecord(r) => {
                    if let Some(reply) = self.puts.remove(&id) {
                        let _ = reply.send(match r {
                            Ok(_) => Ok(()),
                            // stored locally; peers that took it are found by get_record
                            Err(kad::PutRecordError::QuorumFailed { .. }) => Ok(()),
                            Err(e) => Err(NetError::Query(e.to_string())),
                        });
                    }
                }
                QueryResult::GetRecord(r) => {
                    if let Ok(kad::GetRecordOk::FoundRecord(pr)) = r {
                        match validate_manifest_record(pr.record.key.as_ref(), &pr.record.value) {
                            Ok(rec) => {
                                if let Some(reply) = self.gets.remove(&id) {
                                    let _ = reply.send(Ok(rec));
                                }
                                if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                                    q.finish();
                                }
                            }
                            Err(e) => tracing::info!(peer = ?pr.peer, error = %e,
                                "invalid manifest record skipped"),
                        }
                    }
                    if step.last {
                        if let Some(reply) = self.gets.remove(&id) {
                            let _ = reply.send(Err(NetError::NotFound("manifest record")));
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn on_ctrl(&mut self, ev: request_response::Event<CtrlRequest, CtrlResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let Ok(permit) = self.ctrl_permits.clone().try_acquire_owned() else {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .ctrl
                        .send_response(channel, CtrlResponse::Error("busy".into()));
                    return;
                };
                let svc = self.service.clone();
                let tx = self.cmd_tx.clone();
                tokio::spawn(async move {
                    let resp = tokio::task::spawn_blocking(move || match request {
                        CtrlRequest::Info => CtrlResponse::Info(svc.info()),
                        CtrlRequest::Have(cids) => CtrlResponse::Have(svc.have(&cids)),
                        CtrlRequest::Cached(cids) => CtrlResponse::Reads(svc.cached(peer, &cids)),
                        CtrlRequest::Uncache(cids) => CtrlResponse::Have(svc.uncache(peer, &cids)),
                        CtrlRequest::Commit {
                            manifest,
                            publisher,
                        } => match svc.commit(peer, &manifest, publisher) {
                            Ok(ok) => CtrlResponse::Have(vec![ok]),
                            Err(e) => CtrlResponse::Error(e),
                        },
                        CtrlRequest::Remove(manifest) => match svc.remove(peer, &manifest) {
                            Ok(gone) => CtrlResponse::Have(vec![gone]),
                            Err(e) => CtrlResponse::Error(e),
                        },
                        CtrlRequest::App(msg) => match svc.app(peer, &msg) {
                            Ok(r) if r.len() <= MAX_APP => CtrlResponse::App(r),
                            Ok(_) => CtrlResponse::Error("answer above the protocol limit".into()),
                            Err(e) => CtrlResponse::Error(e),
                        },
                    })
                    .await
                    .unwrap_or_else(|e| CtrlResponse::Error(e.to_string()));
                    let _ = tx.send(Command::Respond(channel, resp)).await;
                    drop(permit);
                    tracing::trace!(%peer, "control request answered");
                });
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound control request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}

impl NetClient {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
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

    /// Publishes the manifest record of `root` (the manifest head block itself).
    pub async fn publish_manifest(&self, root: &Cid, head: &Block) -> Result<(), NetError> {
        let key = manifest_key(root);
        let value = encode_manifest_record(&head.cid, &head.data);
        self.call(|r| Command::PutManifest(key, value, r)).await
    }

    /// Finds and validates the manifest record of `root`.
    pub async fn resolve_manifest(&self, root: &Cid) -> Result<ManifestRecord, NetError> {
        let root = *root;
        self.call(|r| Command::GetManifest(root, r)).await
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
    /// tier); one status per block.
    pub async fn push_cached(
        &self,
        peer: PeerId,
        blocks: &[Block],
    ) -> Result<Vec<PutStatus>, NetError> {
        let head = StreamRequest::Cache {
            count: blocks.len(),
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
