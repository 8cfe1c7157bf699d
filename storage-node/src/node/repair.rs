//! Repair rounds: lost shards rebuilt from parity onto new holders, and rebalancing onto distinct nodes.

use super::*;

impl Node {
    /// One repair round over every dataset this node knows: for each stripe with shards that
    /// no live node holds, the live holder with the lowest peer id rebuilds them from any `k`
    /// shards and places them on nodes that hold none of the stripe, chosen by rendezvous.
    pub async fn repair_round(&self) -> Result<RepairRound, NodeError> {
        let _one = self.inner.repair_lock.lock().await;
        let mut round = RepairRound::default();
        let repo = self.inner.repo.clone();
        let (datasets, unreadable) = run_blocking(move || {
            let load = |mcid: Cid| -> Result<_, RepoError> {
                let m = repo.manifest(&mcid)?;
                let s = repo.stripes(&m)?;
                let mut blocks = vec![Block {
                    cid: mcid,
                    data: repo.block(&mcid)?.into(),
                }];
                for p in &m.pages {
                    blocks.push(Block {
                        cid: *p,
                        data: repo.block(p)?.into(),
                    });
                }
                Ok((m, s, blocks))
            };
            // one unreadable manifest (a peer may have pushed a bad one) must not stop the
            // repair of every other dataset
            let (mut ok, mut bad) = (Vec::new(), Vec::new());
            for (root, mcid) in repo.datasets()? {
                match load(mcid) {
                    Ok(d) => ok.push(d),
                    Err(e) => bad.push(format!("dataset {root}: {e}")),
                }
            }
            Ok::<_, RepoError>((ok, bad))
        })
        .await??;
        // rebalancing never drops a block that is a shard of two stripes (the same bytes twice
        // in a dataset, or in two datasets), nor anything while a manifest is unreadable (its
        // stripes may share blocks too)
        let may_drop = unreadable.is_empty();
        let mut stripes_of: HashMap<Cid, u32> = HashMap::new();
        for (_, stripes, _) in &datasets {
            for s in stripes {
                for c in s.shards().collect::<HashSet<_>>() {
                    *stripes_of.entry(*c).or_default() += 1;
                }
            }
        }
        let shared: HashSet<Cid> = stripes_of
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(c, _)| c)
            .collect();
        round.failed.extend(unreadable);
        let nodes = self.live_nodes().await;
        let ids: Vec<PeerId> = nodes.iter().map(|x| x.0).collect();
        let me = self.peer_id();
        for (m, stripes, manifest_blocks) in datasets {
            let cids: Vec<Cid> = stripes.iter().flat_map(|s| s.shards().copied()).collect();
            let holders = self.holders(&cids, &ids).await;
            let coder = match Coder::new(m.k as usize, m.m as usize) {
                Ok(c) => c,
                Err(e) => {
                    round.failed.push(format!("dataset {}: {e}", m.root));
                    continue;
                }
            };
            for (si, s) in stripes.iter().enumerate() {
                round.stripes += 1;
                let mut stripe_holders: HashSet<PeerId> = HashSet::new();
                for c in s.shards() {
                    stripe_holders.extend(holders.get(c).into_iter().flatten());
                }
                let lost: Vec<usize> = s
                    .shards()
                    .enumerate()
                    .filter(|(_, c)| !holders.contains_key(c))
                    .map(|(i, _)| i)
                    .collect();
                if lost.is_empty() || stripe_holders.iter().min() != Some(&me) {
                    continue;
                }
                round.degraded += 1;
                match self
                    .rebuild(
                        &coder,
                        s,
                        &lost,
                        &holders,
                        &stripe_holders,
                        &nodes,
                        &manifest_blocks,
                    )
                    .await
                {
                    Ok(n) => round.rebuilt += n,
                    Err(e) => round.failed.push(format!("stripe {si} of {}: {e}", m.root)),
                }
            }
            // then spread the stripes that are whole but crowded (after a put on a small
            // network); stripes with lost shards are left to the rebuild above
            self.rebalance(
                m.root,
                &stripes,
                &holders,
                &nodes,
                &manifest_blocks,
                &shared,
                may_drop,
                &mut round,
            )
            .await;
        }
        if round.dropped > 0 {
            let repo = self.inner.repo.clone();
            if let Ok(Ok(used)) = run_blocking(move || stored_bytes(&repo)).await {
                self.inner.svc.used.store(used, Ordering::Relaxed);
            }
        }
        if let Ok(mut l) = self.inner.last_repair.lock() {
            *l = Some(round.clone());
        }
        Ok(round)
    }

    #[allow(clippy::too_many_arguments)]
    async fn rebuild(
        &self,
        coder: &Coder,
        s: &Stripe,
        lost: &[usize],
        holders: &HashMap<Cid, Vec<PeerId>>,
        stripe_holders: &HashSet<PeerId>,
        nodes: &[(PeerId, NodeInfo)],
        manifest_blocks: &[Block],
    ) -> Result<u64, NodeError> {
        let me = self.peer_id();
        let cids: Vec<Cid> = s.shards().copied().collect();
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; cids.len()];
        let k = coder.k();
        let mut have = k - s.data.len();
        for (i, c) in cids.iter().enumerate() {
            if have >= k {
                break;
            }
            for p in holders.get(c).into_iter().flatten() {
                let got = if *p == me {
                    let repo = self.inner.repo.clone();
                    let c = *c;
                    run_blocking(move || repo.block(&c).ok()).await?
                } else {
                    self.inner
                        .net
                        .fetch_verified(*p, c)
                        .await
                        .ok()
                        .flatten()
                        .map(|b| b.to_vec())
                };
                if let Some(b) = got {
                    shards[i] = Some(b);
                    have += 1;
                    break;
                }
            }
        }
        coder
            .reconstruct(s, &mut shards)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        // new holders: nodes holding nothing of this stripe, by rendezvous rank
        let free: Vec<&(PeerId, NodeInfo)> = nodes
            .iter()
            .filter(|(p, _)| !stripe_holders.contains(p))
            .collect();
        let cands: Vec<Candidate> = free
            .iter()
            .map(|(p, i)| Candidate {
                id: p.to_bytes(),
                weight: i.free().max(1),
            })
            .collect();
        let ranked = rendezvous::rank(&s.data[0].to_bytes(), &cands);
        if ranked.len() < lost.len() {
            return Err(NodeError::Config(format!(
                "{} shards lost but only {} nodes hold nothing of the stripe",
                lost.len(),
                ranked.len()
            )));
        }
        let mut rebuilt = 0;
        for (&i, &t) in lost.iter().zip(&ranked) {
            let target = free[t].0;
            let block = Block {
                cid: cids[i],
                data: shards[i].take().unwrap_or_default().into(),
            };
            if target == me {
                let mcid = manifest_blocks[0].cid;
                let svc = self.inner.svc.clone();
                let cid = cids[i];
                let publisher = self.publisher_of(mcid).await;
                let ok = run_blocking(move || {
                    svc.put_block(me, &mcid, block) == PutStatus::Stored
                        && svc.put_done(me, &mcid, &[cid])
                        && svc.commit(me, &mcid, publisher) == Ok(true)
                })
                .await?;
                if !ok {
                    return Err(NodeError::Config(format!(
                        "storing rebuilt shard {} here failed",
                        cids[i]
                    )));
                }
            } else {
                self.push_to_blocks(target, manifest_blocks, vec![block])
                    .await?;
            }
            tracing::info!(shard = %cids[i], to = %target, "rebuilt shard placed");
            rebuilt += 1;
        }
        Ok(rebuilt)
    }

    /// Rebalancing of one dataset ([`crate::rebalance`]): plans every stripe this node holds
    /// some of, copies the shards it leads to nodes that hold nothing of their stripe (up to
    /// [`PUSH_BATCH`] shards per push, read here or fetched verified from a holder), then drops
    /// this node's copies of shards that have a clean holder: the target of a copy confirmed
    /// (pushed and committed) just now, or a peer that still holds exactly that shard of the
    /// stripe and serves bytes that verify. Blocks in `keep` are never dropped, and nothing is
    /// when `may_drop` is false.
    #[allow(clippy::too_many_arguments)]
    async fn rebalance(
        &self,
        root: Cid,
        stripes: &[Stripe],
        holders: &HashMap<Cid, Vec<PeerId>>,
        nodes: &[(PeerId, NodeInfo)],
        manifest_blocks: &[Block],
        keep: &HashSet<Cid>,
        may_drop: bool,
        round: &mut RepairRound,
    ) {
        use crate::rebalance::{plan, Action, Live, StripeView};
        /// Targets pushed to at once: each holds up to `PUSH_BATCH` blocks here in flight.
        const TARGETS_AT_ONCE: usize = 4;
        let me = self.peer_id();
        let live: Vec<Live<PeerId>> = nodes
            .iter()
            .map(|(p, i)| Live {
                id: *p,
                rank_id: p.to_bytes(),
                free: i.free(),
            })
            .collect();
        let mut copies: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        let mut drops: Vec<(usize, Cid, PeerId)> = Vec::new();
        for (si, s) in stripes.iter().enumerate() {
            let cids: Vec<Cid> = s.shards().copied().collect();
            let hs: Vec<Vec<PeerId>> = cids
                .iter()
                .map(|c| holders.get(c).cloned().unwrap_or_default())
                .collect();
            let key = s.data.first().map(|c| c.to_bytes()).unwrap_or_default();
            let view = StripeView {
                key: &key,
                shards: &cids,
                holders: &hs,
                live: &live,
                shard_bytes: s.shard_len() as u64,
            };
            for a in plan(&view, me) {
                match a {
                    Action::Copy { shard, to } => copies.entry(to).or_default().push(shard),
                    Action::Drop { shard, clean } => drops.push((si, shard, clean)),
                }
            }
        }
        let planned: HashSet<(Cid, PeerId)> = copies
            .iter()
            .flat_map(|(to, v)| v.iter().map(move |c| (*c, *to)))
            .collect();
        let results: Vec<(PeerId, Vec<Cid>, Option<String>)> = stream::iter(copies)
            .map(|(to, shards)| async move {
                let mut done = Vec::new();
                for chunk in shards.chunks(PUSH_BATCH) {
                    let mut blocks = Vec::with_capacity(chunk.len());
                    for c in chunk {
                        let mut got: Option<Bytes> = None;
                        for p in holders.get(c).into_iter().flatten() {
                            got = if *p == me {
                                let (repo, c) = (self.inner.repo.clone(), *c);
                                run_blocking(move || repo.block(&c).ok().map(Bytes::from))
                                    .await
                                    .ok()
                                    .flatten()
                            } else {
                                self.inner.net.fetch_verified(*p, c).await.ok().flatten()
                            };
                            if got.is_some() {
                                break;
                            }
                        }
                        let Some(data) = got else {
                            return (to, done, Some(format!("no holder served {c}")));
                        };
                        blocks.push(Block { cid: *c, data });
                    }
                    if let Err(e) = self.push_to_blocks(to, manifest_blocks, blocks).await {
                        return (to, done, Some(e.to_string()));
                    }
                    done.extend_from_slice(chunk);
                }
                (to, done, None)
            })
            .buffer_unordered(TARGETS_AT_ONCE)
            .collect()
            .await;
        let mut landed: HashSet<(Cid, PeerId)> = HashSet::new();
        for (to, done, err) in results {
            round.moved += done.len() as u64;
            for c in done {
                tracing::info!(shard = %c, %to, "shard moved to a node with none of its stripe");
                landed.insert((c, to));
            }
            if let Some(e) = err {
                round
                    .failed
                    .push(format!("rebalancing {root} onto {to}: {e}"));
            }
        }
        if !may_drop {
            return;
        }
        let mut gone: Vec<Cid> = Vec::new();
        for (si, shard, clean) in drops {
            if keep.contains(&shard) {
                continue;
            }
            let safe = if planned.contains(&(shard, clean)) {
                landed.contains(&(shard, clean))
            } else {
                // a clean holder seen earlier this round: it must still hold exactly this
                // shard of the stripe, and serve it
                let mut seen = HashSet::new();
                let distinct: Vec<Cid> = stripes[si]
                    .shards()
                    .filter(|c| seen.insert(**c))
                    .copied()
                    .collect();
                let only = match self
                    .inner
                    .net
                    .ctrl(clean, CtrlRequest::Have(distinct.clone()))
                    .await
                {
                    Ok(CtrlResponse::Have(f)) if f.len() == distinct.len() => distinct
                        .iter()
                        .zip(&f)
                        .all(|(c, held)| *held == (*c == shard)),
                    _ => false,
                };
                only && matches!(
                    self.inner.net.fetch_verified(clean, &shard).await,
                    Ok(Some(_))
                )
            };
            if safe {
                gone.push(shard);
            }
        }
        if gone.is_empty() {
            return;
        }
        let repo = self.inner.repo.clone();
        let list = gone.clone();
        let deleted = run_blocking(move || {
            let mut b = Batch::new();
            for c in &list {
                b.delete_block(*c);
            }
            repo.store().write(b, Durability::Sync)
        })
        .await;
        match deleted {
            Ok(Ok(())) => {
                round.dropped += gone.len() as u64;
                for c in &gone {
                    tracing::info!(shard = %c, "local copy dropped: a clean holder has it");
                }
            }
            Ok(Err(e)) => round
                .failed
                .push(format!("rebalancing {root}: dropping local copies: {e}")),
            Err(e) => round
                .failed
                .push(format!("rebalancing {root}: dropping local copies: {e}")),
        }
    }
}
