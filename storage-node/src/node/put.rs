//! Publishing: a dataset's shards placed on distinct nodes, pushed, committed; placement reports; removal from every holder.

use super::*;

impl Node {
    /// Imports a file or tree, then spreads each stripe's `k + m` shards over `k + m` distinct
    /// nodes chosen by rendezvous hashing weighted by free capacity, announces them, and
    /// publishes the manifest record.
    pub async fn put(&self, path: &Path) -> Result<PutReport, NodeError> {
        self.put_with(path, &PutOptions::default()).await
    }

    /// [`Node::put`] with the publisher's choice of profile, `k` and `m` (each defaults to the
    /// node's config).
    pub async fn put_with(&self, path: &Path, o: &PutOptions) -> Result<PutReport, NodeError> {
        // collection skips its passes while this runs: an ingest writes blocks before the
        // dataset that needs them
        let _ingesting = Ingesting::new(&self.inner.ingesting);
        let name = o.profile.as_deref().unwrap_or(&self.inner.opts.profile);
        let profile = Profile::by_name(name)
            .and_then(|p| {
                let (k, m) = (
                    o.k.unwrap_or(if o.profile.is_some() {
                        p.k
                    } else {
                        self.inner.opts.k
                    }),
                    o.m.unwrap_or(if o.profile.is_some() {
                        p.m
                    } else {
                        self.inner.opts.m
                    }),
                );
                p.with_stripe(k, m)
            })
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        let repo = self.inner.repo.clone();
        let path = path.to_path_buf();
        let rep = offload(move || repo.put(&path, &profile, &|_| {})).await??;
        let repo = self.inner.repo.clone();
        let mcid = rep.manifest;
        let (m, stripes, head, pages) = offload(move || {
            let m = repo.manifest(&mcid)?;
            let stripes = repo.stripes(&m)?;
            let head = Block {
                cid: mcid,
                data: repo.block(&mcid)?.into(),
            };
            let mut pages = Vec::new();
            for p in &m.pages {
                pages.push(Block {
                    cid: *p,
                    data: repo.block(p)?.into(),
                });
            }
            Ok::<_, RepoError>((m, stripes, head, pages))
        })
        .await??;
        // the index of a dataset just ingested here
        if let Ok(mut idx) = self.inner.svc.index.lock() {
            idx.remove(&mcid);
        }
        let n = (m.k + m.m) as usize;
        let nodes = self.live_nodes().await;
        let me = self.peer_id();
        let mut report = PutReport {
            root: rep.root.to_string(),
            manifest: mcid.to_string(),
            bytes: rep.bytes,
            blocks: rep.blocks,
            stripes: rep.stripes,
            distributed: false,
            nodes: 1,
            placement: Vec::new(),
        };
        let live = live_of(&nodes, self.inner.proofs.as_deref());
        let keys: Vec<Vec<u8>> = stripes.iter().map(crate::plan::stripe_key).collect();
        let shape: Vec<(&[u8], usize)> = keys
            .iter()
            .zip(&stripes)
            .map(|(k, s)| (k.as_slice(), s.data.len() + s.parity.len()))
            .collect();
        let mut plan: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        if let Some(targets) = crate::plan::put_targets(&shape, &live, n) {
            for (s, to) in stripes.iter().zip(targets) {
                let shards: Vec<ShardPlacement> = s
                    .shards()
                    .zip(to)
                    .map(|(c, p)| {
                        plan.entry(p).or_default().push(*c);
                        ShardPlacement {
                            cid: c.to_string(),
                            holders: vec![p.to_string()],
                        }
                    })
                    .collect();
                report.placement.push(shards);
            }
            let mut manifest_blocks = vec![head.clone()];
            manifest_blocks.extend(pages.iter().cloned());
            let jobs: Vec<(PeerId, Vec<Cid>)> = plan
                .iter()
                .filter(|(p, _)| **p != me)
                .map(|(p, c)| (*p, c.clone()))
                .collect();
            let pushes: Vec<_> = jobs
                .iter()
                .map(|(peer, cids)| self.push_to(*peer, mcid, &manifest_blocks, cids))
                .collect();
            let results = futures::future::join_all(pushes).await;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            // every receiver makes what it got durable (one flush each) before this node drops
            // its own copies
            let commits: Vec<_> = jobs
                .iter()
                .map(|(peer, _)| self.commit_on(*peer, mcid, me))
                .collect();
            futures::future::join_all(commits)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()?;
            // keep only what rendezvous assigned to this node (and the manifest)
            let mine: HashSet<Cid> = plan
                .get(&me)
                .map(|v| v.iter().copied().collect())
                .unwrap_or_default();
            let repo = self.inner.repo.clone();
            let drop_list: Vec<Cid> = stripes
                .iter()
                .flat_map(|s| s.shards().copied())
                .filter(|c| !mine.contains(c))
                .collect();
            offload(move || {
                let mut b = Batch::new();
                for c in &drop_list {
                    b.delete_block(*c);
                }
                repo.store().write(b, Durability::Sync)
            })
            .await??;
            report.distributed = true;
            report.nodes = plan.len();
        } else {
            tracing::warn!(
                reachable = nodes.len(),
                needed = n,
                "fewer nodes than k + m: keeping the whole dataset here until repair can spread it"
            );
            for s in &stripes {
                report.placement.push(
                    s.shards()
                        .map(|c| ShardPlacement {
                            cid: c.to_string(),
                            holders: vec![me.to_string()],
                        })
                        .collect(),
                );
            }
            plan.insert(
                me,
                stripes.iter().flat_map(|s| s.shards().copied()).collect(),
            );
        }
        // what this node keeps of the dataset (its shards, or all of it, and the manifest),
        // and that it is the publisher: the only node whose `Remove` holders honour
        let repo = self.inner.repo.clone();
        let publisher = me.to_bytes();
        let used = offload(move || {
            let mut b = Batch::new();
            b.put(Table::Publishers, mcid.to_bytes(), publisher);
            repo.store().write(b, Durability::Sync)?;
            stored_bytes(&repo)
        })
        .await??;
        self.inner.svc.used.store(used, Ordering::Relaxed);
        let mut ann = plan.remove(&me).unwrap_or_default();
        ann.push(mcid);
        let _ = self.inner.svc.announce.send(ann).await;
        self.inner.net.publish_manifest(&rep.root, &head).await?;
        Ok(report)
    }

    async fn push_to(
        &self,
        peer: PeerId,
        manifest: Cid,
        manifest_blocks: &[Block],
        cids: &[Cid],
    ) -> Result<(), NodeError> {
        let st = self.inner.net.push(peer, manifest, manifest_blocks).await?;
        check_statuses(peer, manifest_blocks.iter().map(|b| b.cid), &st)?;
        for chunk in cids.chunks(PUSH_BATCH) {
            let repo = self.inner.repo.clone();
            let list = chunk.to_vec();
            let blocks = offload(move || {
                list.iter()
                    .map(|c| {
                        Ok(Block {
                            cid: *c,
                            data: repo.block(c)?.into(),
                        })
                    })
                    .collect::<Result<Vec<Block>, RepoError>>()
            })
            .await??;
            let st = self.inner.net.push(peer, manifest, &blocks).await?;
            check_statuses(peer, chunk.iter().copied(), &st)?;
        }
        Ok(())
    }

    /// Where every shard of `root`'s dataset is now, by asking the live nodes.
    pub async fn placement(&self, root: &Cid) -> Result<Vec<Vec<ShardPlacement>>, NodeError> {
        let repo = self.inner.repo.clone();
        let root = *root;
        let stripes = offload(move || {
            let mcid = repo
                .store()
                .table_get(Table::Datasets, &root.to_bytes())?
                .and_then(|v| cid_from_bytes(&v).ok())
                .ok_or(RepoError::Missing(root))?;
            let m = repo.manifest(&mcid)?;
            repo.stripes(&m)
        })
        .await??;
        let nodes: Vec<PeerId> = self.live_nodes().await.into_iter().map(|x| x.0).collect();
        let cids: Vec<Cid> = stripes.iter().flat_map(|s| s.shards().copied()).collect();
        let h = self.holders(&cids, &nodes).await;
        Ok(stripes
            .iter()
            .map(|s| {
                s.shards()
                    .map(|c| ShardPlacement {
                        cid: c.to_string(),
                        holders: h
                            .get(c)
                            .map(|v| v.iter().map(|p| p.to_string()).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .collect())
    }

    pub(super) async fn push_to_blocks(
        &self,
        peer: PeerId,
        manifest_blocks: &[Block],
        blocks: Vec<Block>,
    ) -> Result<(), NodeError> {
        let mcid = manifest_blocks[0].cid;
        let mut all = manifest_blocks.to_vec();
        all.extend(blocks);
        let st = self.inner.net.push(peer, mcid, &all).await?;
        check_statuses(peer, all.iter().map(|b| b.cid), &st)?;
        let publisher = self.publisher_of(mcid).await;
        self.commit_on(peer, mcid, publisher).await
    }

    /// The recorded publisher of dataset `manifest` (this node when none is recorded).
    pub(super) async fn publisher_of(&self, manifest: Cid) -> PeerId {
        let repo = self.inner.repo.clone();
        let me = self.peer_id();
        offload(move || {
            repo.store()
                .table_get(Table::Publishers, &manifest.to_bytes())
                .ok()
                .flatten()
                .and_then(|p| PeerId::from_bytes(&p).ok())
        })
        .await
        .ok()
        .flatten()
        .unwrap_or(me)
    }

    /// Asks `peer` to make what it was pushed of `manifest` durable and keep the dataset.
    async fn commit_on(
        &self,
        peer: PeerId,
        manifest: Cid,
        publisher: PeerId,
    ) -> Result<(), NodeError> {
        match self
            .inner
            .net
            .ctrl(
                peer,
                CtrlRequest::Commit {
                    manifest,
                    publisher,
                },
            )
            .await?
        {
            CtrlResponse::Have(v) if v == [true] => Ok(()),
            CtrlResponse::Error(e) => Err(NodeError::Commit {
                peer,
                manifest,
                reason: e,
            }),
            other => Err(NodeError::Commit {
                peer,
                manifest,
                reason: format!("it answered {other:?}"),
            }),
        }
    }

    /// Takes dataset `root`, which this node published, off the network: every live node
    /// drops its shards and its copy of the manifest (holders honour this only from the
    /// publisher), then this node does. Nodes that are down keep theirs; running it again
    /// when they are back finishes the job, as long as this node still knows the dataset.
    pub async fn remove(&self, root: &Cid) -> Result<RemoveReport, NodeError> {
        let repo = self.inner.repo.clone();
        let (root, me) = (*root, self.peer_id());
        let mcid = offload(move || -> Result<Cid, NodeError> {
            let mcid = repo
                .store()
                .table_get(Table::Datasets, &root.to_bytes())?
                .and_then(|v| cid_from_bytes(&v).ok())
                .ok_or(RepoError::NotHeld(root))?;
            let publisher = repo
                .store()
                .table_get(Table::Publishers, &mcid.to_bytes())?
                .and_then(|p| PeerId::from_bytes(&p).ok());
            match publisher {
                Some(p) if p == me => Ok(mcid),
                Some(p) => Err(NodeError::Invalid(format!(
                    "{root} was published by {p}, not this node: remove it through that node (with its api.token)"
                ))),
                None => Err(NodeError::Invalid(format!(
                    "this node did not publish {root}: remove it through the node that did (with its api.token)"
                ))),
            }
        })
        .await??;
        let nodes = self.live_nodes().await;
        let net = &self.inner.net;
        let peers: Vec<PeerId> = nodes.iter().map(|x| x.0).filter(|p| *p != me).collect();
        let answers: Vec<(PeerId, Result<CtrlResponse, NetError>)> = stream::iter(peers)
            .map(|p| async move { (p, net.ctrl(p, CtrlRequest::Remove(mcid)).await) })
            .buffer_unordered(32)
            .collect()
            .await;
        let mut report = RemoveReport {
            root: root.to_string(),
            manifest: mcid.to_string(),
            ..RemoveReport::default()
        };
        for (p, a) in answers {
            match a {
                Ok(CtrlResponse::Have(v)) if v == [true] => report.removed_from.push(p.to_string()),
                Ok(CtrlResponse::Have(_)) => report.not_held += 1,
                Ok(CtrlResponse::Error(e)) => report.failed.push(format!("{p}: {e}")),
                Ok(other) => report.failed.push(format!("{p}: answered {other:?}")),
                Err(e) => report.failed.push(format!("{p}: {e}")),
            }
        }
        let svc = self.inner.svc.clone();
        let local = offload(move || svc.remove(me, &mcid)).await?;
        match local {
            Ok(true) => report.removed_from.push(me.to_string()),
            Ok(false) => report.not_held += 1,
            Err(e) => report.failed.push(format!("{me}: {e}")),
        }
        // the replicas of sectors whose blocks all went are retired now (freed after the
        // grace), in the background: a sealing pass in progress may hold the lock for long
        let node = self.clone();
        tokio::spawn(async move {
            if let Err(e) = node.retire_now().await {
                tracing::warn!(error = %e, "retiring sectors after a removal failed");
            }
        });
        report.removed_from.sort();
        Ok(report)
    }
}

/// Counts a put in progress for as long as it lives.
struct Ingesting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Ingesting<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Ingesting(n)
    }
}

impl Drop for Ingesting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
