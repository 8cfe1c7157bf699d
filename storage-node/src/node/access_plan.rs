//! Access plans from training jobs: the order in which a reader will read a dataset's files
//! this epoch (`POST /api/v0/plan`; the Python package's `ShardDataset` registers each epoch's
//! shuffled order). The node turns the files into their leaf blocks, in reading order, and
//! registers that order with its placement engine ([`cairn_placement::engine::Engine`]), so
//! planned shards are ranked by their true next access instead of a prediction, and with the
//! prefetcher (`crate::tier`'s `prefetch`), which copies the blocks the reader reaches next
//! onto fast peers ahead of it and drops each copy once it is read. A plan names its files,
//! or a shuffle seed over the dataset's files, and the reader's rate. A file's
//! internal nodes come from the repo or, when this node lacks them, through the retrieval
//! client as the gateway fetches them (verified).

use super::{Node, NodeError, PeerPlan};
use cairn_core::dagpb::PbNode;
use cairn_core::Cid;
use serde::{Deserialize, Serialize};

/// Files one plan may name.
pub const MAX_PLAN_FILES: usize = 1 << 16;
/// Leaf blocks one plan may expand to (1 TiB of 1 MiB leaves).
pub const MAX_PLAN_BLOCKS: usize = 1 << 20;
/// Bytes of a job name at most.
pub const MAX_JOB_NAME: usize = 128;
/// The codec of raw leaves.
const RAW: u64 = 0x55;

/// A reader's plan for an epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanRequest {
    /// The dataset.
    pub root: Cid,
    /// Its files in reading order; empty: every file of the dataset, in path order, or in the
    /// seeded shuffle of `seed`.
    pub files: Vec<Cid>,
    /// With no `files`: the seed of [`cairn_retrieval::dataset::shuffle_order`] (the Rust
    /// `Dataset`'s `Order::Shuffled { seed }`).
    pub seed: Option<u64>,
    /// How fast the reader reads, bytes per second (unknown: the whole budget is prefetched).
    pub rate: Option<f64>,
    /// The job's name: a plan replaces the one of the same root and job.
    pub job: String,
    /// Whether it came from a peer over the network (`CtrlRequest::Plan`) rather than the
    /// API: peers' plans share at most half of the plan slots.
    pub from_peer: bool,
}

/// What registering a plan did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanReport {
    /// The dataset's root.
    pub root: String,
    /// Files in the plan.
    pub files: usize,
    /// Leaf blocks in the order registered with the engine and the prefetcher.
    pub blocks: usize,
    /// Their bytes, as far as the DAG says.
    pub bytes: u64,
}

impl Node {
    /// Registers the plans peers send, one at a time, until the node stops.
    pub(crate) async fn peer_plan_worker(self, mut rx: tokio::sync::mpsc::Receiver<PeerPlan>) {
        let mut stop = self.inner.stop.subscribe();
        loop {
            let p = tokio::select! {
                _ = stop.changed() => return,
                p = rx.recv() => match p {
                    Some(p) => p,
                    None => return,
                },
            };
            let req = PlanRequest {
                root: p.root,
                files: Vec::new(),
                seed: p.seed,
                rate: (p.rate > 0).then_some(p.rate as f64),
                job: peer_job(&p.from),
                from_peer: true,
            };
            if let Err(e) = self.register_plan(req).await {
                tracing::info!(peer = %p.from, root = %p.root, error = %e, "a peer's plan was not registered");
            }
            self.inner.svc.plan_done(&p.from);
        }
    }

    /// Registers a reader's plan: the dataset's files in the order it will read them. The
    /// placement engine ranks their leaf blocks by their true next access, and the
    /// prefetcher copies them to fast peers ahead of the reader.
    pub async fn register_plan(&self, req: PlanRequest) -> Result<PlanReport, NodeError> {
        if req.files.len() > MAX_PLAN_FILES {
            return Err(NodeError::Invalid(format!(
                "a plan names at most {MAX_PLAN_FILES} files, not {}",
                req.files.len()
            )));
        }
        if req.job.len() > MAX_JOB_NAME {
            return Err(NodeError::Invalid(format!(
                "a job name has at most {MAX_JOB_NAME} bytes"
            )));
        }
        if let Some(r) = req.rate {
            if !r.is_finite() || r <= 0.0 {
                return Err(NodeError::Invalid(format!(
                    "a reader's rate is a positive number of bytes per second, not {r}"
                )));
            }
        }
        let root = req.root;
        // (sizes from the dataset's listing; a plan naming its files gives none)
        let files: Vec<(Cid, u64)> = if req.files.is_empty() {
            self.dataset_files(&root, req.seed).await?
        } else {
            req.files.iter().map(|f| (*f, 0)).collect()
        };
        let mut order = Vec::new();
        for (f, size) in &files {
            self.file_leaves(&root, f, *size, &mut order).await?;
        }
        let bytes = order.iter().map(|x| x.1).sum();
        let blocks = order.len();
        self.inner.tier.register_plan(
            crate::tier::NewPlan {
                root,
                job: req.job,
                order,
                rate: req.rate,
                from_peer: req.from_peer,
            },
            crate::heat::now_ms(),
        );
        tracing::info!(%root, files = files.len(), blocks, bytes, "access plan registered");
        Ok(PlanReport {
            root: root.to_string(),
            files: files.len(),
            blocks,
            bytes,
        })
    }

    /// Every file of dataset `root` with its size, in path order or in the seeded shuffle of
    /// `seed`.
    async fn dataset_files(
        &self,
        root: &Cid,
        seed: Option<u64>,
    ) -> Result<Vec<(Cid, u64)>, NodeError> {
        // the gateway's memo of the dataset, when it resolved it before (the plan's copies and
        // reads use it too): a job's next epoch is listed without asking every node again
        let ds = match self.gateway_dataset(&self.inner.gateway_memo, root).await {
            Some(r) => {
                cairn_retrieval::dataset::Dataset::open_resolved(
                    self.gateway_client(),
                    (*r).clone(),
                )
                .await
            }
            None => cairn_retrieval::dataset::Dataset::open(self.gateway_client(), root).await,
        }
        .map_err(|e| NodeError::Invalid(format!("dataset {root}: {e}")))?;
        let files = ds.files();
        if files.len() > MAX_PLAN_FILES {
            return Err(NodeError::Invalid(format!(
                "a plan names at most {MAX_PLAN_FILES} files; {root} has {}",
                files.len()
            )));
        }
        Ok(match seed {
            Some(s) => cairn_retrieval::dataset::shuffle_order(files.len(), s)
                .into_iter()
                .map(|i| (files[i].cid, files[i].size))
                .collect(),
            None => files.iter().map(|f| (f.cid, f.size)).collect(),
        })
    }

    /// Appends the leaf blocks of file `file` (under `root`, `size` bytes as its listing
    /// says, 0 when unknown) to `out`, in file order, each with its size as its parent's link
    /// records it (a file that is one block: `size`).
    async fn file_leaves(
        &self,
        root: &Cid,
        file: &Cid,
        size: u64,
        out: &mut Vec<(Cid, u64)>,
    ) -> Result<(), NodeError> {
        let mut stack = vec![(*file, 0usize, size)];
        while let Some((c, depth, size)) = stack.pop() {
            if out.len() >= MAX_PLAN_BLOCKS {
                return Err(NodeError::Invalid(format!(
                    "a plan expands to at most {MAX_PLAN_BLOCKS} blocks"
                )));
            }
            if c.codec() == RAW {
                out.push((c, size));
                continue;
            }
            if depth > cairn_core::dag::MAX_DEPTH {
                return Err(NodeError::Invalid(format!("file {file} nests too deep")));
            }
            let bytes = self
                .block_of(root, &c)
                .await
                .map_err(|e| NodeError::Invalid(format!("block {c} of file {file}: {e}")))?
                .ok_or_else(|| NodeError::Invalid(format!("block {c} of file {file} not found")))?;
            let node = PbNode::decode(&bytes)
                .map_err(|e| NodeError::Invalid(format!("block {c} of file {file}: {e}")))?;
            if node.links.is_empty() {
                // a leaf that carries its data in the dag-pb node
                out.push((c, bytes.len() as u64));
            }
            for l in node.links.iter().rev() {
                stack.push((l.hash, depth + 1, l.tsize.unwrap_or(0)));
            }
        }
        Ok(())
    }
}

/// The job name of a plan a peer registered over the network: one plan per peer and dataset.
pub(super) fn peer_job(peer: &cairn_net::PeerId) -> String {
    format!("peer {peer}")
}
