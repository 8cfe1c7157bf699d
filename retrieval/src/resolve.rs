//! Resolving a root to a [`Resolved`] dataset: the manifest record (checked against the DAG it
//! claims to describe, trying every candidate the DHT has when the first does not hold), its
//! pages, and which peers hold which shard.

use crate::client::{Client, Progress, Resolved, RetrievalError};
use cairn_core::dag::{DagError, Node};
use cairn_core::erasure::{Coder, Stripe};
use cairn_core::manifest;
use cairn_core::Cid;
use cairn_net::wire::{CtrlRequest, CtrlResponse, MAX_CACHED, MAX_HAVE};
use cairn_net::PeerId;
use futures::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};

/// Peers asked for `Have` at once.
const HAVE_FANOUT: usize = 16;
/// DHT provider lookups at once, for shards no asked peer has.
const PROVIDER_LOOKUPS: usize = 16;
/// Internal DAG nodes a manifest check fetches at most.
pub const CHECK_BLOCKS: usize = 4096;
/// Stripes a manifest check fetches from at once.
const CHECK_PARALLEL: usize = 8;

fn peer_str(b: &[u8]) -> String {
    PeerId::from_bytes(b)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| "?".into())
}

impl Client {
    /// Storage nodes worth asking: the DHT routing table plus open connections.
    pub(crate) async fn candidate_peers(&self, extra: Vec<PeerId>) -> Vec<PeerId> {
        let mut set: HashSet<PeerId> = extra.into_iter().collect();
        set.extend(self.net.routing_peers().await.unwrap_or_default());
        set.extend(self.net.connected_peers().await.unwrap_or_default());
        set.remove(&self.net.peer_id());
        let mut v: Vec<PeerId> = set.into_iter().collect();
        v.sort();
        v
    }

    /// Resolves `root`: verified manifest record, pages, and where every shard is.
    ///
    /// A manifest record is self-certifying (its block names the root) but anyone can publish
    /// one for any root, so the record is also checked against the DAG it claims to describe
    /// (`check_dag`). When the first record found does not hold, every record the
    /// DHT has for the root is tried, and the first that holds is used; the publishers of the
    /// others are named in the log.
    pub async fn resolve(&self, root: &Cid) -> Result<Resolved, RetrievalError> {
        // fill the routing table first: every storage node is a candidate holder
        if let Err(e) = self.net.bootstrap().await {
            tracing::debug!(error = %e, "DHT bootstrap failed; asking the peers already known");
        }
        let first = self.net.resolve_manifest(root).await?;
        let tried = first.head.cid;
        let first_publisher = first.publisher.clone();
        let err = match self.resolve_record(root, first).await {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        tracing::warn!(%root, manifest = %tried, publisher = %peer_str(&first_publisher), error = %err,
            "a manifest record does not describe the root's DAG; trying the others");
        let others = self
            .net
            .resolve_manifest_candidates(root)
            .await
            .unwrap_or_default();
        for rec in others.into_iter().filter(|r| r.head.cid != tried) {
            let (mcid, publisher) = (rec.head.cid, rec.publisher.clone());
            match self.resolve_record(root, rec).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::warn!(%root, manifest = %mcid, publisher = %peer_str(&publisher),
                    error = %e, "a manifest record does not describe the root's DAG")
                }
            }
        }
        Err(err)
    }

    /// Resolves `root` with one manifest record (a candidate from
    /// [`NetClient::resolve_manifest_candidates`](cairn_net::NetClient::resolve_manifest_candidates)),
    /// checked against the DAG: an error when it does not describe the root's DAG.
    pub async fn resolve_record(
        &self,
        root: &Cid,
        rec: cairn_net::records::ManifestRecord,
    ) -> Result<Resolved, RetrievalError> {
        let manifest_cid = rec.head.cid;
        let providers = self.net.providers(manifest_cid).await.unwrap_or_default();
        let peers = self.candidate_peers(providers).await;
        let m = rec.manifest;
        let coder =
            Coder::new(m.k as usize, m.m as usize).map_err(|e| RetrievalError::Manifest {
                cid: manifest_cid,
                reason: e.to_string(),
            })?;
        let mut stripes = Vec::new();
        for page in &m.pages {
            // a node resolving through its own client has its manifest pages at hand
            let b = match self.local.as_ref().and_then(|l| l(page)) {
                Some(b) => b,
                None => {
                    self.fetch_from(page, &peers)
                        .await
                        .ok_or(RetrievalError::Page(*page))?
                        .0
                }
            };
            let s = manifest::decode_page(&b).map_err(|e| RetrievalError::Manifest {
                cid: *page,
                reason: e.to_string(),
            })?;
            stripes.extend(s);
        }
        let mut position = HashMap::new();
        for (i, s) in stripes.iter().enumerate() {
            coder.check(s).map_err(|e| RetrievalError::Manifest {
                cid: manifest_cid,
                reason: e.to_string(),
            })?;
            for (j, c) in s.shards().enumerate() {
                position.insert(*c, (i, j));
            }
        }
        let (holders, fast) = self.locate(&stripes, &peers).await;
        tracing::debug!(
            peers = peers.len(),
            located = holders.len(),
            "shards located"
        );
        let (n_stripes, bytes, n_peers) = (stripes.len(), m.bytes, peers.len());
        let r = Resolved {
            root: *root,
            manifest_cid,
            manifest: m,
            stripes,
            holders,
            fast,
            position,
        };
        self.check_dag(&r).await?;
        self.emit(Progress::Resolved {
            manifest: manifest_cid,
            stripes: n_stripes,
            bytes,
            peers: n_peers,
        })
        .await;
        Ok(r)
    }

    /// Checks that the manifest of `r` describes the DAG under its root: the root and every
    /// block the DAG's internal nodes link to are shards of the manifest, and every internal
    /// node, fetched through the manifest's stripes, verifies against its CID and decodes. Up
    /// to [`CHECK_BLOCKS`] internal nodes are fetched (a few per GiB of file data, one per
    /// directory or HAMT shard); past that, the walk of `get` checks the rest as it goes.
    async fn check_dag(&self, r: &Resolved) -> Result<(), RetrievalError> {
        let mut frontier = vec![r.root];
        // a DAG may link one block many times (identical chunks, shared subdirectories)
        let mut seen: HashSet<Cid> = HashSet::from([r.root]);
        let mut fetched = 0usize;
        let mut depth = 0;
        while !frontier.is_empty() && fetched < CHECK_BLOCKS {
            depth += 1;
            if depth > cairn_core::dag::MAX_DEPTH {
                return Err(DagError::TooDeep.into());
            }
            // internal nodes of this level, grouped by stripe
            let mut by_stripe: HashMap<usize, Vec<usize>> = HashMap::new();
            for c in &frontier {
                let &(s, j) = r.position.get(c).ok_or(RetrievalError::NotInDataset(*c))?;
                if c.codec() != cairn_core::block::RAW && fetched < CHECK_BLOCKS {
                    fetched += 1;
                    by_stripe.entry(s).or_default().push(j);
                }
            }
            let got: Vec<_> = stream::iter(by_stripe)
                .map(|(s, js)| async move { self.obtain(r, s, &js).await })
                .buffer_unordered(CHECK_PARALLEL)
                .collect()
                .await;
            let mut next = Vec::new();
            for blocks in got {
                for (c, bytes) in blocks? {
                    let children: Vec<Cid> = match Node::decode(&c, bytes)? {
                        Node::File { children, .. } => children.iter().map(|x| x.0).collect(),
                        Node::Directory(e) | Node::Hamt(e) => e.iter().map(|x| x.1).collect(),
                        Node::Raw(_) | Node::Symlink(_) => Vec::new(),
                    };
                    next.extend(children.into_iter().filter(|c| seen.insert(*c)));
                }
            }
            frontier = next;
        }
        // the leaves of the last level checked are shards too
        for c in &frontier {
            if !r.position.contains_key(c) {
                return Err(RetrievalError::NotInDataset(*c));
            }
        }
        Ok(())
    }

    /// Asks every peer which shards it holds (base copies, and promoted copies of the fast
    /// tier); shards nobody claims are looked up in the DHT.
    async fn locate(
        &self,
        stripes: &[Stripe],
        peers: &[PeerId],
    ) -> (HashMap<Cid, Vec<PeerId>>, HashMap<Cid, Vec<PeerId>>) {
        let all: Vec<Cid> = stripes.iter().flat_map(|s| s.shards().copied()).collect();
        let answers: Vec<(PeerId, Vec<Cid>, Vec<Cid>)> = stream::iter(peers.iter().copied())
            .map(|peer| {
                let all = &all;
                async move {
                    let mut held = Vec::new();
                    for chunk in all.chunks(MAX_HAVE) {
                        match self.net.ctrl(peer, CtrlRequest::Have(chunk.to_vec())).await {
                            Ok(CtrlResponse::Have(flags)) if flags.len() == chunk.len() => held
                                .extend(
                                    chunk.iter().zip(flags).filter(|(_, f)| *f).map(|(c, _)| *c),
                                ),
                            Ok(_) | Err(_) => break,
                        }
                    }
                    let mut fast = Vec::new();
                    for chunk in all.chunks(MAX_CACHED) {
                        match self
                            .net
                            .ctrl(peer, CtrlRequest::Cached(chunk.to_vec()))
                            .await
                        {
                            Ok(CtrlResponse::Reads(r)) if r.len() == chunk.len() => fast.extend(
                                chunk
                                    .iter()
                                    .zip(r)
                                    .filter(|(_, r)| r.is_some())
                                    .map(|(c, _)| *c),
                            ),
                            // a peer without a fast tier answers with an error
                            Ok(_) | Err(_) => break,
                        }
                    }
                    (peer, held, fast)
                }
            })
            .buffer_unordered(HAVE_FANOUT)
            .collect()
            .await;
        let mut holders: HashMap<Cid, Vec<PeerId>> = HashMap::new();
        let mut fast: HashMap<Cid, Vec<PeerId>> = HashMap::new();
        for (peer, held, cached) in answers {
            for c in held {
                holders.entry(c).or_default().push(peer);
            }
            for c in cached {
                fast.entry(c).or_default().push(peer);
            }
        }
        let unclaimed: Vec<Cid> = all
            .iter()
            .filter(|c| !holders.contains_key(c))
            .copied()
            .collect();
        let found: Vec<(Cid, Vec<PeerId>)> = stream::iter(unclaimed)
            .map(|c| async move { (c, self.net.providers(c).await.unwrap_or_default()) })
            .buffer_unordered(PROVIDER_LOOKUPS)
            .collect()
            .await;
        for (c, p) in found {
            let p: Vec<PeerId> = p.into_iter().filter(|p| *p != self.net.peer_id()).collect();
            if !p.is_empty() {
                holders.insert(c, p);
            }
        }
        (holders, fast)
    }
}
