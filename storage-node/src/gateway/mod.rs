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

/// Requests answered at once, bodies still streaming included; more get 503 with
/// `Retry-After: 1`.
pub const MAX_REQUESTS: usize = 256;

/// The gateway's routes (`/ipfs/...`; `/ipns/...` answers 501) over `src`, at most
/// [`MAX_REQUESTS`] in progress.
pub fn router<S: BlockSource>(src: Arc<S>) -> Router {
    limit(
        Router::new()
            .route("/ipfs/{*path}", get(handler::ipfs::<S>))
            .route("/ipns/{*path}", get(handler::ipns))
            .fallback(handler::fallback)
            .with_state(src),
        MAX_REQUESTS,
    )
}

/// `router` with at most `n` requests in progress.
fn limit(router: Router, n: usize) -> Router {
    let permits = Arc::new(tokio::sync::Semaphore::new(n));
    router.layer(axum::middleware::from_fn(move |req, next| {
        limited(permits.clone(), req, next)
    }))
}

/// A response body that holds its request's permit until it is sent or dropped.
struct Permitted {
    inner: axum::body::Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for Permitted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Runs a request holding one of `permits` until its body has been sent (or dropped); 503
/// when none is free.
async fn limited(
    permits: Arc<tokio::sync::Semaphore>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Ok(permit) = permits.try_acquire_owned() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            "too many requests in progress; retry\n",
        )
            .into_response();
    };
    let (parts, body) = next.run(req).await.into_parts();
    let body = axum::body::Body::new(Permitted {
        inner: body,
        _permit: permit,
    });
    axum::response::Response::from_parts(parts, body)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_holds_its_slot_until_its_body_is_done() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // one slot; `/slow` streams one chunk and then nothing, forever
        let app = limit(
            Router::new()
                .route(
                    "/slow",
                    get(|| async {
                        let first = futures::stream::once(async {
                            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"x"))
                        });
                        axum::body::Body::from_stream(futures::StreamExt::chain(
                            first,
                            futures::stream::pending(),
                        ))
                    }),
                )
                .route("/fast", get(|| async { "ok" })),
            1,
        );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let slow = agent.get(&format!("{base}/slow")).call().unwrap();
        assert_eq!(slow.status(), 200);
        // (request while the slow body is open, status)
        let busy = agent.get(&format!("{base}/fast")).call().unwrap();
        assert_eq!(busy.status(), 503);
        assert_eq!(busy.headers().get("retry-after").unwrap(), "1");
        drop(slow); // the client goes: its slot frees once the server notices
        let mut status = 503;
        for _ in 0..200 {
            status = agent
                .get(&format!("{base}/fast"))
                .call()
                .unwrap()
                .status()
                .as_u16();
            if status == 200 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(status, 200);
    }
}
