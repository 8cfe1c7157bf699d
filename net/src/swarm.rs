//! The swarm task: libp2p behaviours (identify, ping, Kademlia, control requests, block streams, gossipsub), dialling, the DHT, and dispatch of inbound requests to the [`Service`].

use crate::blocks;
use crate::client::{Command, NetClient, Reply};
use crate::config::{
    GossipId, GossipVerdict, NetConfig, NetEvent, COMMAND_QUEUE, CTRL_PROTOCOL, CTRL_TIMEOUT,
    EVENT_QUEUE, GOSSIP_GRAYLIST, GOSSIP_INVALID_WEIGHT, KAD_MAX_PACKET, KAD_PROTOCOL,
    MAX_CONNECTIONS_PER_PEER, MAX_DHT_RECORDS, MAX_ESTABLISHED, MAX_ESTABLISHED_INCOMING,
    MAX_GOSSIP, MAX_INBOUND_CTRL, MAX_INBOUND_CTRL_PER_PEER, MAX_PENDING_INCOMING,
    MAX_PROVIDED_KEYS, REQUEST_TIMEOUT,
};
use crate::ctrl::CtrlCodec;
use crate::records::{self, manifest_key, validate_manifest_record, ManifestRecord};
use crate::wire::{CtrlRequest, CtrlResponse, MAX_APP, MAX_PEERS};
use crate::{NetError, Service};
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{self, QueryId, QueryResult};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, identify, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

mod dht;

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: libp2p::connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    ctrl: request_response::Behaviour<CtrlCodec>,
    stream: libp2p_stream::Behaviour,
    gossip: gossipsub::Behaviour,
}

/// Gossipsub peer scoring: only invalid messages (those the application rejects) and the
/// protocol's own behaviour penalties count. Cairn's topics are quiet (a few messages per
/// window), so the mesh-delivery terms, which punish peers for not delivering enough, are off;
/// so is the IP colocation term, since a devnet runs every node on one address.
fn gossip_score() -> gossipsub::PeerScoreParams {
    gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    }
}

fn gossip_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: GOSSIP_GRAYLIST,
        ..Default::default()
    }
}

/// Scoring of one Cairn topic: invalid messages weigh [`GOSSIP_INVALID_WEIGHT`] each (squared
/// count, decaying by half every 10 decay intervals); every delivery-rate term is off.
fn topic_score() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: GOSSIP_INVALID_WEIGHT,
        invalid_message_deliveries_decay: 0.93,
        ..Default::default()
    }
}

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
                limits: libp2p::connection_limits::Behaviour::new(
                    libp2p::connection_limits::ConnectionLimits::default()
                        .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                        .with_max_established_incoming(Some(MAX_ESTABLISHED_INCOMING))
                        .with_max_established(Some(MAX_ESTABLISHED))
                        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
                ),
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
                gossip: {
                    let mut g = gossipsub::Behaviour::new(
                        gossipsub::MessageAuthenticity::Signed(key.clone()),
                        gossipsub::ConfigBuilder::default()
                            .max_transmit_size(MAX_GOSSIP)
                            .validation_mode(gossipsub::ValidationMode::Strict)
                            .validate_messages()
                            .build()
                            .map_err(|e| std::io::Error::other(e.to_string()))?,
                    )
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                    g.with_peer_score(gossip_score(), gossip_thresholds())
                        .map_err(std::io::Error::other)?;
                    g
                },
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
    let serving = blocks::Serving {
        delay: config.serve_delay,
        times: Arc::default(),
    };
    let serve_times = serving.times.clone();
    tokio::spawn(blocks::serve(
        incoming,
        service.clone(),
        peer_id,
        serving,
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
        serve_times,
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
        ctrl_per_peer: crate::limits::PerPeer::new(MAX_INBOUND_CTRL_PER_PEER),
        dials: HashMap::new(),
        provides: HashMap::new(),
        providers: HashMap::new(),
        puts: HashMap::new(),
        gets: HashMap::new(),
        gets_all: HashMap::new(),
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
    ctrl_per_peer: crate::limits::PerPeer,
    dials: HashMap<ConnectionId, (Multiaddr, Reply<PeerId>)>,
    provides: HashMap<QueryId, Reply<()>>,
    providers: HashMap<QueryId, (HashSet<PeerId>, Reply<Vec<PeerId>>)>,
    puts: HashMap<QueryId, Reply<()>>,
    gets: HashMap<QueryId, Reply<ManifestRecord>>,
    gets_all: HashMap<QueryId, (Vec<ManifestRecord>, Reply<Vec<ManifestRecord>>)>,
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
            Command::GetManifests(root, reply) => {
                let q = kad.get_record(kad::RecordKey::new(&manifest_key(&root)));
                self.gets_all.insert(q, (Vec::new(), reply));
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
                let g = &mut self.swarm.behaviour_mut().gossip;
                let t = gossipsub::IdentTopic::new(topic);
                if let Err(e) = g.set_topic_params(t.clone(), topic_score()) {
                    tracing::warn!(error = %e, "gossip topic scoring not set");
                }
                let r = g
                    .subscribe(&t)
                    .map(|_| ())
                    .map_err(|e| NetError::Query(e.to_string()));
                let _ = reply.send(r);
            }
            Command::ReportGossip(id, verdict) => {
                let acceptance = match verdict {
                    GossipVerdict::Accept => gossipsub::MessageAcceptance::Accept,
                    GossipVerdict::Reject => gossipsub::MessageAcceptance::Reject,
                    GossipVerdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&id.message, &id.from, acceptance);
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
                message_id,
                propagation_source,
            })) => {
                let id = GossipId {
                    message: message_id,
                    from: propagation_source,
                };
                match message.source {
                    Some(source) => self.emit(NetEvent::Gossip {
                        source,
                        topic: message.topic.into_string(),
                        data: message.data,
                        id,
                    }),
                    None => {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .gossip
                            .report_message_validation_result(
                                &id.message,
                                &id.from,
                                gossipsub::MessageAcceptance::Reject,
                            );
                    }
                }
            }
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
                let Some(slot) = self.ctrl_per_peer.try_acquire(peer) else {
                    let _ = self.swarm.behaviour_mut().ctrl.send_response(
                        channel,
                        CtrlResponse::Error(format!(
                            "busy: at most {MAX_INBOUND_CTRL_PER_PEER} requests per peer at once"
                        )),
                    );
                    return;
                };
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
                        CtrlRequest::Space => CtrlResponse::Space(svc.cache_space(peer)),
                        CtrlRequest::Read { root, cids } => {
                            match svc.plan_reads(peer, &root, &cids) {
                                Ok(()) => CtrlResponse::Have(Vec::new()),
                                Err(e) => CtrlResponse::Error(e),
                            }
                        }
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
                        CtrlRequest::Plan { root, seed, rate } => {
                            match svc.plan(peer, &root, seed, rate) {
                                Ok(mut p) => {
                                    p.truncate(MAX_PEERS);
                                    CtrlResponse::Peers(p)
                                }
                                Err(e) => CtrlResponse::Error(e),
                            }
                        }
                        CtrlRequest::App(msg) => match svc.app(peer, &msg) {
                            Ok(r) if r.len() <= MAX_APP => CtrlResponse::App(r),
                            Ok(_) => CtrlResponse::Error("answer above the protocol limit".into()),
                            Err(e) => CtrlResponse::Error(e),
                        },
                    })
                    .await
                    .unwrap_or_else(|e| CtrlResponse::Error(e.to_string()));
                    let _ = tx.send(Command::Respond(channel, resp)).await;
                    drop((permit, slot));
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
