//! Repair rounds: lost shards rebuilt from parity onto new holders, and rebalancing onto distinct nodes.

use super::*;
use crate::plan::{repair_stripe, Live, StripeRepair};
use cairn_core::gather::Gather;

impl Node {
    /// One repair round over every dataset this node knows: for each stripe with shards that
    /// no live node holds, the live holder with the lowest peer id rebuilds them from any `k`
    /// shards and places them on nodes that hold none of the stripe, chosen by rendezvous.
    pub async fn repair_round(&self) -> Result<RepairRound, NodeError> {
        let _one = self.inner.repair_lock.lock().await;
        let mut round = RepairRound::default();
        let repo = self.inner.repo.clone();
        let (datasets, unreadable) = offload(move || {
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
        let live = live_of(&nodes, self.inner.proofs.as_deref());
        let me = self.peer_id();
        for (m, stripes, manifest_blocks) in datasets {
            let cids: Vec<Cid> = stripes.iter().flat_map(|s| s.shards().copied()).collect();
            let (holders, lagging) = self.holders_and_lagging(&cids, &ids).await;
            if !lagging.is_empty() {
                tracing::info!(dataset = %m.root, peers = ?lagging,
                    "peers say they hold shards no sealed sector of theirs lists, past the grace period: not counted, and given nothing");
            }
            let live: Vec<Live<PeerId>> = live
                .iter()
                .filter(|l| !lagging.contains(&l.id))
                .cloned()
                .collect();
            let coder = match Coder::new(m.k as usize, m.m as usize) {
                Ok(c) => c,
                Err(e) => {
                    round.failed.push(format!("dataset {}: {e}", m.root));
                    continue;
                }
            };
            for (si, s) in stripes.iter().enumerate() {
                round.stripes += 1;
                let hs: Vec<Vec<PeerId>> = s
                    .shards()
                    .map(|c| holders.get(c).cloned().unwrap_or_default())
                    .collect();
                let key = crate::plan::stripe_key(s);
                let (lost, targets) = match repair_stripe(&key, &hs, &live, me) {
                    StripeRepair::Whole | StripeRepair::NotLeader => continue,
                    StripeRepair::Short { lost, free } => {
                        round.degraded += 1;
                        let e = NodeError::Repair(format!(
                            "{lost} shards lost but only {free} nodes hold nothing of the stripe"
                        ));
                        round.failed.push(format!("stripe {si} of {}: {e}", m.root));
                        continue;
                    }
                    StripeRepair::Rebuild { lost, targets } => (lost, targets),
                };
                round.degraded += 1;
                match self
                    .rebuild(&coder, s, &lost, &targets, &holders, &manifest_blocks)
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
                &live,
                &manifest_blocks,
                &shared,
                may_drop,
                &mut round,
            )
            .await;
        }
        if round.dropped > 0 {
            let repo = self.inner.repo.clone();
            if let Ok(Ok(used)) = offload(move || stored_bytes(&repo)).await {
                self.inner.svc.used.store(used, Ordering::Relaxed);
            }
        }
        if let Ok(mut l) = self.inner.last_repair.lock() {
            *l = Some(round.clone());
        }
        Ok(round)
    }

    /// Rebuilds shards `lost` of stripe `s` from any `k` others (gathered by
    /// [`cairn_core::gather::Gather`] from their holders, this node included) and places
    /// `lost[j]` on `targets[j]`.
    async fn rebuild(
        &self,
        coder: &Coder,
        s: &Stripe,
        lost: &[usize],
        targets: &[PeerId],
        holders: &HashMap<Cid, Vec<PeerId>>,
        manifest_blocks: &[Block],
    ) -> Result<u64, NodeError> {
        let me = self.peer_id();
        let cids: Vec<Cid> = s.shards().copied().collect();
        let mut gather =
            Gather::for_stripe(coder, s, lost).map_err(|e| NodeError::Repair(e.to_string()))?;
        for &i in lost {
            gather.lost(i);
        }
        while let Some(batch) = gather.next_batch() {
            let got = futures::future::join_all(
                batch.iter().map(|&i| self.shard_from(&cids[i], holders)),
            )
            .await;
            for (&i, b) in batch.iter().zip(got) {
                gather.offer(i, b?);
            }
        }
        let mut shards = gather
            .finish(coder, s)
            .map_err(|e| NodeError::Repair(e.to_string()))?;
        let mut rebuilt = 0;
        for (&i, &target) in lost.iter().zip(targets) {
            let block = Block {
                cid: cids[i],
                data: shards[i].take().unwrap_or_default().into(),
            };
            if target == me {
                let mcid = manifest_blocks[0].cid;
                let svc = self.inner.svc.clone();
                let cid = cids[i];
                let publisher = self.publisher_of(mcid).await;
                let ok = offload(move || {
                    svc.put_block(me, &mcid, block) == PutStatus::Stored
                        && svc.put_done(me, &mcid, &[cid])
                        && svc.commit(me, &mcid, publisher) == Ok(true)
                })
                .await?;
                if !ok {
                    return Err(NodeError::Repair(format!(
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

    /// Shard `cid` rebuilt from the other shards of its stripe (in the first dataset known
    /// here that has it), fetched verified from their counted holders and decoded: what an
    /// auditor compares an opened piece with when the prover is the shard's only holder.
    pub(crate) async fn shard_rebuilt(&self, cid: Cid) -> Option<Vec<u8>> {
        let repo = self.inner.repo.clone();
        let (k, m, s, i) = offload(move || {
            for (_, mcid) in repo.datasets().ok()? {
                let Ok(man) = repo.manifest(&mcid) else {
                    continue;
                };
                let Ok(stripes) = repo.stripes(&man) else {
                    continue;
                };
                for s in stripes {
                    let at = s.shards().position(|c| *c == cid);
                    if let Some(i) = at {
                        return Some((man.k, man.m, s, i));
                    }
                }
            }
            None
        })
        .await
        .ok()??;
        let coder = Coder::new(k as usize, m as usize).ok()?;
        let ids: Vec<PeerId> = self.live_nodes().await.iter().map(|x| x.0).collect();
        let cids: Vec<Cid> = s.shards().copied().collect();
        let holders = self.holders(&cids, &ids).await;
        let mut gather = Gather::for_stripe(&coder, &s, &[i]).ok()?;
        gather.lost(i);
        while let Some(batch) = gather.next_batch() {
            let got = futures::future::join_all(
                batch.iter().map(|&j| self.shard_from(&cids[j], &holders)),
            )
            .await;
            for (&j, b) in batch.iter().zip(got) {
                gather.offer(j, b.ok()?);
            }
        }
        let mut shards = gather.finish(&coder, &s).ok()?;
        shards.get_mut(i)?.take()
    }

    /// Shard `cid` from the first of its holders that serves it (read here when this node is
    /// one, verified when fetched).
    async fn shard_from(
        &self,
        cid: &Cid,
        holders: &HashMap<Cid, Vec<PeerId>>,
    ) -> Result<Option<Vec<u8>>, NodeError> {
        let me = self.peer_id();
        for p in holders.get(cid).into_iter().flatten() {
            let got = if *p == me {
                let (repo, c) = (self.inner.repo.clone(), *cid);
                offload(move || repo.block(&c).ok()).await?
            } else {
                self.inner
                    .net
                    .fetch_verified(*p, cid)
                    .await
                    .ok()
                    .flatten()
                    .map(|b| b.to_vec())
            };
            if got.is_some() {
                return Ok(got);
            }
        }
        Ok(None)
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
        live: &[Live<PeerId>],
        manifest_blocks: &[Block],
        keep: &HashSet<Cid>,
        may_drop: bool,
        round: &mut RepairRound,
    ) {
        use crate::plan::rebalance::{plan, Action, StripeView};
        /// Targets pushed to at once: each holds up to `PUSH_BATCH` blocks here in flight.
        const TARGETS_AT_ONCE: usize = 4;
        let me = self.peer_id();
        let mut copies: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        let mut drops: Vec<(usize, Cid, PeerId)> = Vec::new();
        for (si, s) in stripes.iter().enumerate() {
            let cids: Vec<Cid> = s.shards().copied().collect();
            let hs: Vec<Vec<PeerId>> = cids
                .iter()
                .map(|c| holders.get(c).cloned().unwrap_or_default())
                .collect();
            let key = crate::plan::stripe_key(s);
            let view = StripeView {
                key: &key,
                shards: &cids,
                holders: &hs,
                live,
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
                                offload(move || repo.block(&c).ok().map(Bytes::from))
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
        let deleted = offload(move || {
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
