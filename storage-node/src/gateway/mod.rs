//! An IPFS HTTP gateway: the [trustless gateway] (raw blocks and CAR streams anyone can verify)
//! and the [path gateway] (files, ranges, directory listings) over any [`BlockSource`].
//!
//! | request | answer |
//! |---|---|
//! | `GET/HEAD /ipfs/{cid}[/path]?format=raw` or `Accept: application/vnd.ipld.raw` | the block at the end of the path |
//! | `...?format=car` or `Accept: application/vnd.ipld.car` (`dag-scope`, `entity-bytes`, `dups`) | a CAR v1 stream, depth-first |
//! | `GET/HEAD /ipfs/{cid}[/path]` on a file | its bytes (`Range` honoured, type from the extension) |
//! | on a directory | its `index.html`, or an HTML listing (`?format=json`: JSON) |
//! | on a symlink | the link's target as text (never followed) |
//!
//! Everything is streamed: files block by block (only the blocks under the requested range),
//! CARs and listings as they are walked, with a bounded window of blocks fetched ahead
//! (`walk::WINDOW`). A block that goes missing after the response started cuts the stream
//! short, so a client sees the truncation. The full list of routes, parameters, headers and
//! status codes is in `docs/gateway.md`.
//!
//! ```no_run
//! use cairn_repo::Repo;
//! use cairn_storage_node::gateway::{self, RepoSource};
//! use std::sync::Arc;
//!
//! # async fn run() -> std::io::Result<()> {
//! let repo = Arc::new(Repo::open(std::path::Path::new("/tmp/my-repo")).expect("repo"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! gateway::serve(listener, Arc::new(RepoSource::new(repo))).await
//! # }
//! ```
//!
//! [trustless gateway]: https://specs.ipfs.tech/http-gateways/trustless-gateway/
//! [path gateway]: https://specs.ipfs.tech/http-gateways/path-gateway/

mod error;
mod handler;
pub mod headers;
mod listing;
pub mod memo;
pub mod params;
mod repo_source;
mod resolve;
mod source;
mod walk;

pub use error::GatewayError;
pub use memo::DatasetMemo;
pub use repo_source::RepoSource;
pub use source::BlockSource;
pub use walk::{PREFETCH, WINDOW};

use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;

/// The gateway's routes (`/ipfs/...`; `/ipns/...` answers 501) over `src`.
pub fn router<S: BlockSource>(src: Arc<S>) -> Router {
    Router::new()
        .route("/ipfs/{*path}", get(handler::ipfs::<S>))
        .route("/ipns/{*path}", get(handler::ipns))
        .fallback(handler::fallback)
        .with_state(src)
}

/// Serves the gateway on `listener` until the server fails.
pub async fn serve<S: BlockSource>(
    listener: tokio::net::TcpListener,
    src: Arc<S>,
) -> std::io::Result<()> {
    serve_until(listener, src, std::future::pending()).await
}

/// Serves the gateway on `listener` until `shutdown` completes, then lets requests in progress
/// finish.
pub async fn serve_until<S: BlockSource>(
    listener: tokio::net::TcpListener,
    src: Arc<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "IPFS gateway listening");
    }
    axum::serve(listener, router(src))
        .with_graceful_shutdown(shutdown)
        .await
}
