//! The fast tier's work over its host: peer probes, placement windows (the engine on this
//! node's reads, then promotions and demotions), the worker that runs them, and the status.

use super::*;

impl<H: TierHost + Clone> FastTier<H> {
    /// Peers' measured speeds, fastest first, each marked fast or not (faulty provers are
    /// never fast).
    pub fn speed_report(&self) -> Vec<PeerSpeedReport> {
        let speeds = self.0.peer_speeds();
        let fast: HashSet<PeerId> = self.fast_peers().into_iter().collect();
        let mut v: Vec<PeerSpeedReport> = speeds
            .into_iter()
            .map(|(p, s)| PeerSpeedReport {
                peer: p.to_string(),
                rtt_ms: s.rtt_ms,
                throughput_mbps: s.throughput_bps / 1e6,
                mib_ms: s.mib_ms(),
                fast: fast.contains(&p),
            })
            .collect();
        v.sort_by(|a, b| {
            a.mib_ms
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.mib_ms.unwrap_or(f64::INFINITY))
        });
        v
    }

    /// The fast peers, fastest first: measured 1 MiB time at most [`FAST_RATIO`] of the
    /// median over the measured peers (at least two measured).
    pub fn fast_peers(&self) -> Vec<PeerId> {
        let faulty: HashSet<PeerId> = self.0.faulty_peers().into_iter().collect();
        let measured: Vec<(PeerId, f64)> = self
            .0
            .peer_speeds()
            .into_iter()
            .filter(|(p, _)| !faulty.contains(p))
            .filter_map(|(p, s)| s.mib_ms().map(|t| (p, t)))
            .collect();
        let fast = plan::fast_peers(measured, FAST_RATIO);
        if let Ok(mut f) = self.0.tier().fast_now.lock() {
            f.clone_from(&fast);
        }
        fast
    }

    /// Measures live storage peers' throughput: one timed, verified fetch of a shard each
    /// holds, for up to 32 peers per call (round robin over calls), 4 at a time. Returns the
    /// peers probed.
    pub async fn probe_peers(&self) -> usize {
        let repo = self.0.shared_repo();
        let sample: Vec<Cid> = offload(move || probe_candidates(&repo, 16 * PROBE_SAMPLE))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.0)
            .collect();
        if sample.is_empty() {
            return 0;
        }
        let me = self.0.net().peer_id();
        let peers: Vec<PeerId> = self
            .0
            .live_nodes()
            .await
            .into_iter()
            .map(|x| x.0)
            .filter(|p| *p != me)
            .collect();
        let turn = self.0.tier().next_probe_turn();
        let start = if peers.is_empty() {
            0
        } else {
            (turn * PROBES_PER_WINDOW) % peers.len()
        };
        let round: Vec<PeerId> = peers
            .iter()
            .cycle()
            .skip(start)
            .take(PROBES_PER_WINDOW.min(peers.len()))
            .copied()
            .collect();
        let net = self.0.net().clone();
        let probes: Vec<_> = futures::stream::iter(round.into_iter().map(|p| {
            let net = net.clone();
            // the largest shards first: the first one the peer holds is fetched
            let offer: Vec<Cid> = sample.iter().take(PROBE_SAMPLE).copied().collect();
            async move {
                let held = match net.ctrl(p, CtrlRequest::Have(offer.clone())).await {
                    Ok(CtrlResponse::Have(f)) if f.len() == offer.len() => f,
                    _ => return None,
                };
                let cid = offer.iter().zip(held).find(|(_, h)| *h).map(|(c, _)| *c)?;
                let t = Instant::now();
                match tokio::time::timeout(PROBE_TIMEOUT, net.fetch_verified(p, &cid)).await {
                    Ok(Ok(Some(b))) => Some((p, b.len() as u64, t.elapsed())),
                    _ => None,
                }
            }
        }))
        .buffer_unordered(PROBES_AT_ONCE)
        .collect()
        .await;
        let mut n = 0;
        for (p, bytes, dt) in probes.into_iter().flatten() {
            self.0.record_probe(p, bytes, dt);
            n += 1;
        }
        n
    }

    /// Runs one placement window now (probes, engine, plan, moves); see the module docs.
    pub async fn placement_window(&self) -> Result<WindowReport, NodeError> {
        let tier = self.0.tier();
        let _one = tier.lock.lock().await;
        let opts = tier.opts.clone();
        let now = now_ms();
        let window_ms = opts.window.as_millis() as u64;
        let window = tier
            .state
            .lock()
            .map(|mut st| {
                st.window += 1;
                st.window
            })
            .map_err(|_| NodeError::Poisoned("placement"))?;
        let mut pass = Pass {
            now,
            window,
            report: WindowReport {
                window,
                at_ms: now,
                ..WindowReport::default()
            },
            moves: Vec::new(),
            updates: Batch::new(),
            rules: HashMap::new(),
        };
        // the fast node's part: drop copies whose promoter vanished
        let (cache, before) = (
            self.0.cache(),
            now.saturating_sub(ORPHAN_WINDOWS * window_ms),
        );
        offload(move || cache.expire(before)).await?;
        pass.report.probed = self.probe_peers().await;
        let fast = self.fast_peers();
        pass.report.fast_peers = fast.iter().map(|p| p.to_string()).collect();
        self.measure_space(&mut pass, &opts, &fast).await?;
        let me_fast = self.measure_self(&mut pass)?;
        let fast = if me_fast { Vec::new() } else { fast };
        let repo = self.0.shared_repo();
        let mut promoted = offload(move || load_promotions(&repo)).await??;
        self.fold_fast_reads(&mut pass, &mut promoted).await;
        let planned = self.plan(&mut pass, &opts, &promoted).await?;
        let demote: Vec<(Cid, Promotion, String)> = planned
            .demote
            .into_iter()
            .filter_map(|(c, why)| promoted.get(&c).map(|p| (c, *p, why)))
            .collect();
        let promote = planned.promote;
        pass.report.planned_promotions = promote.iter().map(|x| x.0.to_string()).collect();
        pass.report.planned_demotions = demote.iter().map(|x| x.0.to_string()).collect();
        self.demote(&mut pass, demote).await;
        self.promote(&mut pass, promote, &fast).await?;

        let Pass {
            report,
            moves,
            updates,
            ..
        } = pass;
        let repo = self.0.shared_repo();
        offload(move || repo.store().write(updates, Durability::Sync)).await??;
        tier.promoted_total
            .fetch_add(report.bytes_promoted, Ordering::Relaxed);
        if report.promoted + report.demoted > 0 {
            tracing::info!(
                window,
                promoted = report.promoted,
                demoted = report.demoted,
                bytes = report.bytes_promoted,
                "placement window"
            );
        }
        if let Ok(mut st) = tier.state.lock() {
            for m in moves {
                if st.moves.len() == MOVE_HISTORY {
                    st.moves.pop_front();
                }
                st.moves.push_back(m);
            }
            st.last = Some(report.clone());
        }
        Ok(report)
    }

    /// Whether this node is fast itself ([`plan::self_fast`]); if so, the engine gets no
    /// capacity: every promotion is demoted and none made.
    fn measure_self(&self, pass: &mut Pass) -> Result<bool, NodeError> {
        let faulty: HashSet<PeerId> = self.0.faulty_peers().into_iter().collect();
        let peers: Vec<(f64, f64)> = self
            .0
            .peer_speeds()
            .into_iter()
            .filter(|(p, _)| !faulty.contains(p))
            .filter_map(|(_, s)| s.mib_ms().map(|t| (t, s.rtt_ms)))
            .collect();
        let local = self.0.net().serve_mib_ms();
        let fast = plan::self_fast(local, &peers, FAST_RATIO);
        pass.report.self_mib_ms = local;
        pass.report.self_fast = fast;
        self.0
            .tier()
            .self_fast
            .store(fast, std::sync::atomic::Ordering::Relaxed);
        if fast {
            let mut st = self
                .0
                .tier()
                .state
                .lock()
                .map_err(|_| NodeError::Poisoned("placement"))?;
            st.engine.set_capacity(0);
            pass.report.engine_capacity = 0;
            pass.report.note = Some(
                "this node is fast itself: its shards are read from it, nothing is promoted".into(),
            );
        }
        Ok(fast)
    }

    /// Asks the fast peers how often the copies promoted there were read, and counts those
    /// reads as this node's; copies a peer no longer holds are forgotten.
    async fn fold_fast_reads(&self, pass: &mut Pass, promoted: &mut HashMap<Cid, Promotion>) {
        let mut by_peer: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        for (c, p) in promoted.iter() {
            by_peer.entry(p.peer).or_default().push(*c);
        }
        for (peer, cids) in by_peer {
            for chunk in cids.chunks(MAX_CACHED) {
                let answer = self
                    .0
                    .net()
                    .ctrl(peer, CtrlRequest::Cached(chunk.to_vec()))
                    .await;
                let reads: Vec<Option<u32>> = match answer {
                    Ok(CtrlResponse::Reads(r)) if r.len() == chunk.len() => r,
                    Ok(_) => vec![None; chunk.len()],
                    Err(e) => {
                        // unreachable: keep the records; the copies come back with the peer,
                        // or are demoted when the shards cool down
                        tracing::debug!(%peer, error = %e, "asking a fast peer for its reads failed");
                        continue;
                    }
                };
                for (c, r) in chunk.iter().zip(reads) {
                    let Some(p) = promoted.get_mut(c) else {
                        continue;
                    };
                    match r {
                        None => {
                            let size = p.size;
                            pass.record(
                                "lost",
                                c,
                                Some(peer),
                                size,
                                true,
                                "the fast peer no longer holds the copy".into(),
                            );
                            pass.updates.delete(Table::Promoted, c.to_bytes());
                            promoted.remove(c);
                        }
                        Some(n) => {
                            let delta = plan::read_delta(p.reads_seen, n, MAX_REPORTED_READS);
                            pass.report.fast_reads += delta;
                            self.0.record_reads(*c, p.size, delta, pass.now);
                            p.reads_seen = n;
                            pass.updates.put(Table::Promoted, c.to_bytes(), p.encode());
                        }
                    }
                }
            }
        }
    }

    /// Feeds the client reads since the last window to the engine and plans the window
    /// ([`plan::plan_window`]): the shards to keep promoted, those to promote now, and the
    /// promoted shards to demote with the reason for each.
    async fn plan(
        &self,
        pass: &mut Pass,
        opts: &TierOptions,
        promoted: &HashMap<Cid, Promotion>,
    ) -> Result<plan::WindowPlan<Cid>, NodeError> {
        let now = pass.now;
        let lim = plan::Limits {
            min_reads: opts.min_reads,
            idle_ms: opts.idle_windows * opts.window.as_millis() as u64,
            promote_bytes: opts.promote_bytes,
            budget_bytes: opts.budget_bytes,
        };
        let (reads, seq) = self.0.reads_since(self.0.tier().seq());
        pass.report.reads = reads.len();
        let hot = self.0.hot_shards(crate::heat::MAX_TRACKED);
        let hot: Vec<plan::Hot<Cid>> = {
            let mut st = self
                .0
                .tier()
                .state
                .lock()
                .map_err(|_| NodeError::Poisoned("placement"))?;
            st.seq = seq;
            for r in &reads {
                let id = engine_id(&r.cid);
                st.ids.insert(id, r.cid);
                st.engine.access(&Request {
                    time: (r.at_ms / 1000) as u32,
                    id,
                    size: r.size.min(u64::from(u32::MAX)) as u32,
                    next: -1,
                });
            }
            if st.ids.len() > crate::heat::MAX_TRACKED {
                let tracked: HashSet<Cid> = hot.iter().map(|x| x.0).collect();
                st.ids.retain(|_, c| tracked.contains(c));
            }
            pass.report.engine_trainings = st.engine.trainings();
            pass.report.engine_tracked = st.engine.tracked();
            hot.iter()
                .map(|(c, h, _)| {
                    let id = engine_id(c);
                    let resident = st.engine.contains(id);
                    plan::Hot {
                        id: *c,
                        reads: h.reads,
                        last_ms: h.last_ms,
                        size: h.size,
                        resident,
                        // asked of residents only: the others are out whatever it says
                        no_reuse: if resident {
                            st.engine.no_reuse_odds(id)
                        } else {
                            None
                        },
                    }
                })
                .collect()
        };
        let by_id: HashMap<Cid, &plan::Hot<Cid>> = hot.iter().map(|h| (h.id, h)).collect();
        for d in hot.iter().map(|h| plan::decide(h, &lim, now)) {
            pass.rules.insert(d.id, d.rule.name());
            pass.report.modelled += usize::from(d.modelled);
            if d.overrides_reads() {
                pass.report.overrides += 1;
                if pass.report.override_list.len() < OVERRIDES_LISTED {
                    let h = by_id.get(&d.id);
                    pass.report.override_list.push(Override {
                        cid: d.id.to_string(),
                        reads: h.map_or(0, |h| h.reads),
                        no_reuse: h.and_then(|h| h.no_reuse).unwrap_or(f32::NAN),
                        admitted: d.admit,
                    });
                }
            }
        }
        // a shard a reader's plan covers is the plan's to copy when it is read next
        let cands = self.0.tier().not_planned(plan::candidates(&hot, &lim, now));
        let repo = self.0.shared_repo();
        let ids: Vec<(Cid, u64)> = cands.clone();
        let promote_bytes = lim.promote_bytes;
        // the repo is asked only about candidates that still fit the promotable bytes (as
        // `plan_window` keeps them), not about every tracked shard
        let base: HashSet<Cid> = offload(move || {
            let mut bytes = 0u64;
            let mut base = HashSet::new();
            for (c, size) in ids {
                if bytes.saturating_add(size) <= promote_bytes && base_shard(&repo, &c) {
                    bytes += size;
                    base.insert(c);
                }
            }
            base
        })
        .await?;
        let promoted: HashSet<Cid> = promoted.keys().copied().collect();
        let planned = plan::plan_window(&cands, &base, &hot, &promoted, &lim, now);
        pass.report.planned_bytes = planned.planned_bytes;
        for (c, _) in &planned.demote {
            let heat = by_id.get(c).copied();
            pass.rules.insert(*c, plan::demotion_rule(heat).name());
        }
        Ok(planned)
    }

    /// Asks the fast peers how much room they have for this node's copies
    /// ([`CtrlRequest::Space`]) and sets the engine's capacity to it (at most
    /// `promote_bytes`), less the copies held for readers' plans. A peer that refused a copy
    /// for want of space since it last took one counts only what it holds for this node, and
    /// a peer that does not answer (within 3 s) counts nothing. When no fast peer answers the
    /// capacity is kept (nothing may be promoted anyway, and the engine's residents are not
    /// thrown away).
    async fn measure_space(
        &self,
        pass: &mut Pass,
        opts: &TierOptions,
        fast: &[PeerId],
    ) -> Result<(), NodeError> {
        let me = self.0.net().peer_id();
        let net = self.0.net().clone();
        let asked: Vec<PeerId> = fast
            .iter()
            .filter(|p| **p != me)
            .take(SPACE_PEERS)
            .copied()
            .collect();
        let answers: Vec<(PeerId, Option<CacheSpace>)> =
            futures::stream::iter(asked.clone().into_iter().map(|p| {
                let net = net.clone();
                async move {
                    match tokio::time::timeout(SPACE_TIMEOUT, net.ctrl(p, CtrlRequest::Space)).await
                    {
                        Ok(Ok(CtrlResponse::Space(s))) => (p, Some(s)),
                        _ => (p, None),
                    }
                }
            }))
            .buffer_unordered(PROBES_AT_ONCE)
            .collect()
            .await;
        let tier = self.0.tier();
        let plan_copies = tier.plan_copy_bytes(&asked);
        let mut st = tier
            .state
            .lock()
            .map_err(|_| NodeError::Poisoned("placement"))?;
        let room: u64 = answers
            .iter()
            .filter_map(|(p, s)| {
                let s = (*s)?;
                Some(if st.full.contains(p) {
                    s.yours.min(s.room())
                } else {
                    s.room()
                })
            })
            .fold(0u64, u64::saturating_add);
        let space = room.saturating_sub(plan_copies);
        pass.report.fast_space = space;
        // (no answer at all, from peers that do not know `Space` or are busy: kept as it was)
        if answers.iter().any(|(_, s)| s.is_some()) {
            st.engine.set_capacity(space.min(opts.promote_bytes));
        }
        st.full.retain(|p| asked.contains(p));
        pass.report.engine_capacity = st.engine.capacity();
        Ok(())
    }

    /// Asks each fast peer to drop the copies in `demote`, and forgets them.
    async fn demote(&self, pass: &mut Pass, demote: Vec<(Cid, Promotion, String)>) {
        let mut by_peer: HashMap<PeerId, Vec<(Cid, Promotion, String)>> = HashMap::new();
        for (c, p, why) in demote {
            by_peer.entry(p.peer).or_default().push((c, p, why));
        }
        for (peer, list) in by_peer {
            for chunk in list.chunks(MAX_CACHED) {
                let cids: Vec<Cid> = chunk.iter().map(|x| x.0).collect();
                let note = match self.0.net().ctrl(peer, CtrlRequest::Uncache(cids)).await {
                    Ok(CtrlResponse::Have(_)) => String::new(),
                    Ok(other) => format!("; unexpected answer {other:?}"),
                    Err(e) => format!("; {e} (forgotten: the peer drops it as an orphan)"),
                };
                for (c, p, why) in chunk {
                    let reason = format!("{why}{note}");
                    pass.updates.delete(Table::Promoted, c.to_bytes());
                    pass.report.demoted += 1;
                    pass.record("demote", c, Some(peer), p.size, true, reason);
                }
            }
        }
    }

    /// Copies each shard in `promote` to the fastest of `fast` that accepts it.
    async fn promote(
        &self,
        pass: &mut Pass,
        promote: Vec<(Cid, u64)>,
        fast: &[PeerId],
    ) -> Result<(), NodeError> {
        if !promote.is_empty() && fast.is_empty() {
            pass.report.note = Some(
                "no fast peers measured (a fast peer fetches 1 MiB in at most half the median time)"
                    .into(),
            );
            return Ok(());
        }
        for (cid, size) in promote {
            let repo = self.0.shared_repo();
            let block = match offload(move || repo.block(&cid)).await? {
                Ok(b) => Block {
                    cid,
                    data: b.into(),
                },
                Err(e) => {
                    pass.report.failed.push(format!("{cid}: {e}"));
                    continue;
                }
            };
            match self.push_copy(&block, fast, false).await {
                Ok(peer) => {
                    let p = Promotion {
                        peer,
                        at_ms: pass.now,
                        size,
                        reads_seen: 0,
                    };
                    pass.updates
                        .put(Table::Promoted, cid.to_bytes(), p.encode());
                    pass.report.promoted += 1;
                    pass.report.bytes_promoted += size;
                    let reads = self.0.shard_reads(&cid);
                    pass.record(
                        "promote",
                        &cid,
                        Some(peer),
                        size,
                        true,
                        format!("hot: {reads} reads"),
                    );
                }
                Err(r) => {
                    pass.report.failed.push(format!("promote {cid}: {r}"));
                    pass.record("promote", &cid, None, size, false, r);
                }
            }
        }
        Ok(())
    }

    /// Copies `block` to the first of `fast` (this node left out) that stores it, `planned`
    /// for a reader's plan; the reasons they gave when none does.
    pub(super) async fn push_copy(
        &self,
        block: &Block,
        fast: &[PeerId],
        planned: bool,
    ) -> Result<PeerId, String> {
        let me = self.0.net().peer_id();
        let mut refused = Vec::new();
        for &peer in fast.iter().filter(|p| **p != me) {
            match self
                .0
                .net()
                .push_cached(peer, std::slice::from_ref(block), planned)
                .await
            {
                Ok(st) if st.first() == Some(&PutStatus::Stored) => {
                    self.0.tier().note_space(peer, true);
                    return Ok(peer);
                }
                Ok(st) => {
                    if st.first() == Some(&PutStatus::NoSpace) {
                        self.0.tier().note_space(peer, false);
                    }
                    refused.push(format!("{peer}: {st:?}"))
                }
                Err(e) => refused.push(format!("{peer}: {e}")),
            }
        }
        Err(if refused.is_empty() {
            "no fast peer but this node".to_string()
        } else {
            refused.join("; ")
        })
    }

    /// Runs placement windows on the timer when `auto` is set.
    pub(crate) async fn placement_worker(self) {
        let opts = self.0.tier().opts.clone();
        if !opts.auto {
            return;
        }
        let mut stop = self.0.stop_signal();
        let mut tick = tokio::time::interval(opts.window);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.placement_window().await {
                tracing::warn!(error = %e, "placement window failed");
            }
        }
    }

    /// The fast tier's state: measured peers, promotions, copies held, the last plan, moves.
    pub async fn tier_status(&self) -> TierStatus {
        let repo = self.0.shared_repo();
        let promoted = offload(move || load_promotions(&repo))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let cache = self.0.cache();
        let cached = offload(move || cache.list()).await.unwrap_or_default();
        let tier = self.0.tier();
        let (windows, last, moves) = tier
            .state
            .lock()
            .map(|s| (s.window, s.last.clone(), s.moves.iter().cloned().collect()))
            .unwrap_or_default();
        let mut promoted: Vec<serde_json::Value> = promoted
            .into_iter()
            .map(|(c, p)| {
                serde_json::json!({
                    "cid": c.to_string(),
                    "peer": p.peer.to_string(),
                    "bytes": p.size,
                    "reads_there": p.reads_seen,
                    "since_ms": p.at_ms,
                })
            })
            .collect();
        promoted.sort_by(|a, b| a["cid"].as_str().cmp(&b["cid"].as_str()));
        let (plans, plan_note) = tier.plan_status();
        TierStatus {
            plans,
            plan_note,
            promoted_bytes_total: tier.promoted_total.load(Ordering::Relaxed),
            prefetched_bytes_total: tier.prefetched_total.load(Ordering::Relaxed),
            windows,
            window_secs: tier.opts.window.as_secs(),
            auto: tier.opts.auto,
            peers: self.speed_report(),
            promoted,
            cached: cached
                .into_iter()
                .map(|(c, e, reads)| {
                    serde_json::json!({
                        "cid": c.to_string(),
                        "promoter": e.promoter.to_string(),
                        "bytes": e.size,
                        "reads": reads,
                        "since_ms": e.at_ms,
                    })
                })
                .collect(),
            cache_used: self.0.cache().used(),
            cache_capacity: self.0.cache().capacity(),
            last_window: last,
            moves,
        }
    }
}
