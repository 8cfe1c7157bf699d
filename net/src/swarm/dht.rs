//! The swarm task's side of the DHT: inbound records and provider announcements (validated,
//! first valid manifest record kept) and the progress of its own queries.

use super::*;

impl SwarmTask {
    pub(super) fn on_kad(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::PutRecord {
                    source,
                    record: Some(rec),
                    ..
                } => match validate_manifest_record(rec.key.as_ref(), &rec.value) {
                    Ok(new) => {
                        let store = self.swarm.behaviour_mut().kad.store_mut();
                        // first come, kept: a peer cannot replace a valid record this node
                        // holds for a root (its own publication or an earlier one) with
                        // another manifest; the same record again only refreshes it
                        let held = store.get(&rec.key).and_then(|r| {
                            validate_manifest_record(r.key.as_ref(), &r.value)
                                .ok()
                                .map(|h| h.head.cid)
                        });
                        match held {
                            Some(c) if c != new.head.cid => {
                                tracing::info!(%source, "a different manifest record for a root already held here was refused");
                            }
                            _ => {
                                if let Err(e) = store.put(rec) {
                                    tracing::warn!(%source, error = %e, "DHT record not stored");
                                }
                            }
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
                QueryResult::GetRecord(r) if self.gets_all.contains_key(&id) => {
                    if let Ok(kad::GetRecordOk::FoundRecord(pr)) = r {
                        match validate_manifest_record(pr.record.key.as_ref(), &pr.record.value) {
                            Ok(rec) => {
                                if let Some((acc, _)) = self.gets_all.get_mut(&id) {
                                    if acc.len() < records::MAX_CANDIDATES
                                        && !acc.iter().any(|c| c.head.cid == rec.head.cid)
                                    {
                                        acc.push(rec);
                                    }
                                    // no early stop: a query that ended at the first few candidates
                                    // could be served only by records planted at the closest nodes
                                }
                            }
                            Err(e) => tracing::info!(peer = ?pr.peer, error = %e,
                                "invalid manifest record skipped"),
                        }
                    }
                    if step.last {
                        if let Some((acc, reply)) = self.gets_all.remove(&id) {
                            let _ = reply.send(if acc.is_empty() {
                                Err(NetError::NotFound("manifest record"))
                            } else {
                                Ok(acc)
                            });
                        }
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
}
