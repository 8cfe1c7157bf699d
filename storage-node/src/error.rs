//! The node's errors, and running blocking work off the async threads.

use cairn_core::Cid;
use cairn_net::wire::PutStatus;
use cairn_net::{NetError, PeerId};
use cairn_repo::store::StoreError;
use cairn_repo::RepoError;
use thiserror::Error;

/// Node failures.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The repo failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A peer refused or failed to store shards.
    #[error("peer {peer} did not store {cid}: {status:?}")]
    Push {
        /// The peer.
        peer: PeerId,
        /// The first block it did not store.
        cid: Cid,
        /// What it said.
        status: PutStatus,
    },
    /// A profile or stripe setting is invalid.
    #[error("{0}")]
    Config(String),
    /// A stripe could not be rebuilt or its rebuilt shards not placed.
    #[error("{0}")]
    Repair(String),
    /// A lock was poisoned by a panic elsewhere (names the state).
    #[error("{0} state poisoned")]
    Poisoned(&'static str),
    /// A request is invalid or not allowed (a bad profile, `k` or `m`; removing a dataset
    /// another node published).
    #[error("{0}")]
    Invalid(String),
    /// A peer did not make a pushed dataset durable.
    #[error("peer {peer} did not commit dataset {manifest}: {reason}")]
    Commit {
        /// The peer.
        peer: PeerId,
        /// The dataset's manifest.
        manifest: Cid,
        /// What it said.
        reason: String,
    },
    /// A background job panicked or was cancelled.
    #[error("background job failed: {0}")]
    Join(String),
    /// Sealing, proving or the audit log failed.
    #[error("proofs: {0}")]
    Proofs(String),
}

/// Runs `f` on tokio's blocking pool and awaits it (a panic or cancellation is
/// [`NodeError::Join`]).
pub(crate) fn offload<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = Result<T, NodeError>> {
    let h = tokio::task::spawn_blocking(f);
    async move { h.await.map_err(|e| NodeError::Join(e.to_string())) }
}
