//! The swarm task: libp2p behaviours (identify, ping, Kademlia, control requests, block streams, gossipsub), dialling, the DHT, and dispatch of inbound requests to the [`Service`].

use crate::blocks;
use crate::client::{Command, NetClient, Reply};
use crate::config::{
    NetConfig, NetEvent, COMMAND_QUEUE, CTRL_PROTOCOL, CTRL_TIMEOUT, EVENT_QUEUE, KAD_MAX_PACKET,
    KAD_PROTOCOL, MAX_DHT_RECORDS, MAX_GOSSIP, MAX_INBOUND_CTRL, MAX_PROVIDED_KEYS,
    REQUEST_TIMEOUT,
};
use crate::ctrl::CtrlCodec;
use crate::records::{self, manifest_key, validate_manifest_record, ManifestRecord};
use crate::wire::{CtrlRequest, CtrlResponse, MAX_APP};
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

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    ctrl: request_response::Behaviour<CtrlCodec>,
    stream: libp2p_stream::Behaviour,
    gossip: gossipsub::Behaviour,
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
