//! The retrieval client's errors.

use cairn_core::dag::DagError;
use cairn_core::Cid;
use cairn_net::NetError;
use std::path::PathBuf;
use thiserror::Error;

/// Retrieval failures.
#[derive(Debug, Error)]
pub enum RetrievalError {
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A storage node refused a reader's plan.
    #[error("plan not registered with {node}: {reason}")]
    Plan {
        /// The node.
        node: cairn_net::PeerId,
        /// Why.
        reason: String,
    },
    /// No peer served a valid copy of a manifest page.
    #[error("no provider served manifest page {0}")]
    Page(Cid),
    /// A manifest or page does not decode.
    #[error("manifest {cid} is malformed: {reason}")]
    Manifest {
        /// The block.
        cid: Cid,
        /// Why.
        reason: String,
    },
    /// A stripe has fewer than k reachable, valid shards.
    #[error("stripe {index} cannot be recovered: {reason}")]
    Stripe {
        /// Stripe index in the manifest.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The block is not part of the dataset.
    #[error("block {0} is not part of this dataset")]
    NotInDataset(Cid),
    /// Reading the DAG failed.
    #[error(transparent)]
    Dag(#[from] DagError),
    /// The output path exists.
    #[error("{0} already exists; choose another output path")]
    Exists(PathBuf),
    /// A leaf of the output is neither written and synced by this download nor verified on
    /// disk, so the output is not moved into place.
    #[error("{path}: leaf {cid} is not verified on disk; the download is not complete")]
    Unverified {
        /// The leaf.
        cid: Cid,
        /// A file it goes into.
        path: PathBuf,
    },
    /// A byte range that is not inside the file.
    #[error("range {start}..{end} is not inside file {cid} of {size} bytes")]
    Range {
        /// The file.
        cid: Cid,
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The file's size.
        size: u64,
    },
    /// A dataset lists more files than a [`Dataset`](crate::dataset::Dataset) keeps.
    #[error("dataset {root} lists more than {limit} files")]
    TooManyFiles {
        /// The dataset.
        root: Cid,
        /// The limit.
        limit: usize,
    },
    /// A task fetching a block ended without an answer (it panicked or was cancelled).
    #[error("fetching block {cid}: the task failed: {reason}")]
    Task {
        /// The block.
        cid: Cid,
        /// Why.
        reason: String,
    },
    /// Local I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
