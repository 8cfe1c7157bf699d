//! Access plans from training jobs: the order in which a reader will read a dataset's files
//! this epoch (`POST /api/v0/plan`; the Python package's `ShardDataset` registers each epoch's
//! shuffled order). The node turns the files into their leaf blocks, in reading order, and
//! registers that order with its placement engine ([`cairn_placement::engine::Engine`]), so
//! planned shards are ranked by their true next access instead of a prediction. A file's
//! internal nodes come from the repo or, when this node lacks them, through the retrieval
//! client as the gateway fetches them (verified).

use super::{Node, NodeError};
use crate::gateway::BlockSource;
use cairn_core::dagpb::PbNode;
use cairn_core::Cid;
use serde::{Deserialize, Serialize};

/// Files one plan may name.
pub const MAX_PLAN_FILES: usize = 1 << 16;
/// Leaf blocks one plan may expand to (1 TiB of 1 MiB leaves).
pub const MAX_PLAN_BLOCKS: usize = 1 << 20;
/// The codec of raw leaves.
const RAW: u64 = 0x55;

/// What registering a plan did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanReport {
    /// The dataset's root.
    pub root: String,
    /// Files in the plan.
    pub files: usize,
    /// Leaf blocks in the order registered with the engine.
    pub blocks: usize,
}

impl Node {
    /// Registers a reader's plan: `files` (of the dataset under `root`) in the order it will
    /// read them. Replaces the plan registered before.
    pub async fn register_plan(&self, root: &Cid, files: &[Cid]) -> Result<PlanReport, NodeError> {
        if files.len() > MAX_PLAN_FILES {
            return Err(NodeError::Invalid(format!(
                "a plan names at most {MAX_PLAN_FILES} files, not {}",
                files.len()
            )));
        }
        let mut order = Vec::new();
        for f in files {
            self.file_leaves(root, f, &mut order).await?;
        }
        self.inner.tier.register_plan(&order);
        tracing::info!(%root, files = files.len(), blocks = order.len(), "access plan registered");
        Ok(PlanReport {
            root: root.to_string(),
            files: files.len(),
            blocks: order.len(),
        })
    }

    /// Appends the leaf blocks of file `file` (under `root`) to `out`, in file order.
    async fn file_leaves(
        &self,
        root: &Cid,
        file: &Cid,
        out: &mut Vec<Cid>,
    ) -> Result<(), NodeError> {
        let mut stack = vec![(*file, 0usize)];
        while let Some((c, depth)) = stack.pop() {
            if out.len() >= MAX_PLAN_BLOCKS {
                return Err(NodeError::Invalid(format!(
                    "a plan expands to at most {MAX_PLAN_BLOCKS} blocks"
                )));
            }
            if c.codec() == RAW {
                out.push(c);
                continue;
            }
            if depth > cairn_core::dag::MAX_DEPTH {
                return Err(NodeError::Invalid(format!("file {file} nests too deep")));
            }
            let bytes = self
                .block_in(root, &c)
                .await
                .map_err(|e| NodeError::Invalid(format!("block {c} of file {file}: {e}")))?
                .ok_or_else(|| NodeError::Invalid(format!("block {c} of file {file} not found")))?;
            let node = PbNode::decode(&bytes)
                .map_err(|e| NodeError::Invalid(format!("block {c} of file {file}: {e}")))?;
            if node.links.is_empty() {
                // a leaf that carries its data in the dag-pb node
                out.push(c);
            }
            for l in node.links.iter().rev() {
                stack.push((l.hash, depth + 1));
            }
        }
        Ok(())
    }
}
