//! Bulk block transfer over `libp2p-stream` (`/cairn/blocks/1`): the client side ([`fetch_on`],
//! [`push_on`]) and the server loop that answers peers from a [`Service`]. Both sides are generic
//! over the stream (any `AsyncRead + AsyncWrite`), and tested in memory in `blocks/tests.rs`.

use crate::wire::{
    self, encode_block_header, encode_get_status, read_block, read_get_status, GetStatus,
    PutStatus, StreamRequest, WireError,
};
use crate::{NetError, Service};
use cairn_core::{Block, Cid};
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Protocol name of the block stream.
pub const BLOCKS_PROTOCOL: StreamProtocol = StreamProtocol::new("/cairn/blocks/1");
/// Inbound block streams served at once; more are refused (closed) until one ends. 64 streams
/// of 1 MiB blocks keep a node's disk and link busy without unbounded memory.
pub const MAX_INBOUND_STREAMS: usize = 64;
/// Inbound block streams one peer may have open at once (a client keeps up to 16 per peer): no
/// single peer can take all [`MAX_INBOUND_STREAMS`].
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 16;
/// How long a server waits for the next frame of a request before dropping the stream, so an
/// idle peer cannot hold a stream permit forever.
pub const SERVER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Fetches `cids` on stream `s` (one request; the stream can carry more afterwards). The
/// bytes are *not* verified here: callers verify every block against its CID before use.
pub async fn fetch_on<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    peer: PeerId,
    cids: &[Cid],
) -> Result<Vec<GetStatus>, NetError> {
    if cids.len() > wire::MAX_BATCH {
        return Err(NetError::Limit("GET batch"));
    }
    let err = |e: std::io::Error| NetError::Stream {
        peer,
        reason: e.to_string(),
    };
    s.write_all(&StreamRequest::Get(cids.to_vec()).encode())
        .await
        .map_err(err)?;
    s.flush().await.map_err(err)?;
    let mut out = Vec::with_capacity(cids.len());
    for _ in cids {
        out.push(
            read_get_status(s)
                .await
                .map_err(|source| NetError::Wire { peer, source })?,
        );
    }
    Ok(out)
}

/// Stores `blocks` over stream `s` with request `head` (a `PUT` of a dataset's blocks or a
/// `CACHE` of promoted copies, whose count must be `blocks.len()`); one status per block.
pub async fn push_on<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    peer: PeerId,
    head: &StreamRequest,
    blocks: &[Block],
) -> Result<Vec<PutStatus>, NetError> {
    if blocks.len() > wire::MAX_BATCH {
        return Err(NetError::Limit("PUT batch"));
    }
    let err = |e: std::io::Error| NetError::Stream {
        peer,
        reason: e.to_string(),
    };
    s.write_all(&head.encode()).await.map_err(err)?;
    for b in blocks {
        s.write_all(&encode_block_header(&b.cid, b.data.len()))
            .await
            .map_err(err)?;
        s.write_all(&b.data).await.map_err(err)?;
    }
    s.flush().await.map_err(err)?;
    let mut out = Vec::with_capacity(blocks.len());
    for _ in blocks {
        let b = wire::read_u8(s)
            .await
            .map_err(|source| NetError::Wire { peer, source })?;
        out.push(PutStatus::from_u8(b).map_err(|source| NetError::Wire { peer, source })?);
    }
    Ok(out)
}

/// How this node serves blocks: the emulated delay before each (a devnet's slow node; zero
/// otherwise), and where the time to have each in hand is recorded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Serving {
    /// Delay before each block served.
    pub(crate) delay: Duration,
    /// The serve times, shared with the [`crate::NetClient`].
    pub(crate) times: Arc<crate::serve_times::ServeTimes>,
}

/// Accepts inbound block streams and serves each on its own task, at most
/// [`MAX_INBOUND_STREAMS`] at once.
pub(crate) async fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    service: Arc<dyn Service>,
    local: PeerId,
    serving: Serving,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_INBOUND_STREAMS));
    let per_peer = crate::limits::PerPeer::new(MAX_INBOUND_STREAMS_PER_PEER);
    loop {
        let next = tokio::select! {
            n = incoming.next() => n,
            _ = stop.changed() => None,
        };
        let Some((peer, stream)) = next else { break };
        let Some(mine) = per_peer.try_acquire(peer) else {
            tracing::debug!(%local, %peer, "inbound block stream refused: that peer has {} open", MAX_INBOUND_STREAMS_PER_PEER);
            drop(stream);
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%local, %peer, "inbound block stream refused: too many at once");
            drop(stream);
            continue;
        };
        let service = service.clone();
        let serving = serving.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_one(peer, stream, service, serving).await {
                tracing::debug!(%local, %peer, error = %e, "block stream ended with an error");
            }
            drop((permit, mine));
        });
    }
}

async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    tokio::time::timeout(SERVER_READ_TIMEOUT, f)
        .await
        .map_err(|_| WireError::Io("peer idle too long".into()))?
}

/// Serves the requests of one inbound block stream from `peer` until it ends cleanly between
/// requests, idles past [`SERVER_READ_TIMEOUT`] or sends something malformed. Generic over the
/// stream, so the protocol is tested in memory.
pub(crate) async fn serve_one<S: AsyncRead + AsyncWrite + Unpin + Send>(
    peer: PeerId,
    mut s: S,
    service: Arc<dyn Service>,
    serving: Serving,
) -> Result<(), WireError> {
    let io = |e: std::io::Error| WireError::Io(e.to_string());
    loop {
        // a stream carries requests one after another; a clean end between requests is normal
        let first = match tokio::time::timeout(SERVER_READ_TIMEOUT, wire::read_u8(&mut s)).await {
            Err(_) | Ok(Err(WireError::Truncated)) => break,
            Ok(Err(e)) => return Err(e),
            Ok(Ok(b)) => b,
        };
        let req = timed(StreamRequest::read_after_op(first, &mut s)).await?;
        serve_request(peer, &mut s, &service, req, &serving).await?;
        s.flush().await.map_err(io)?;
    }
    let _ = s.close().await;
    Ok(())
}

async fn serve_request<S: AsyncRead + AsyncWrite + Unpin + Send>(
    peer: PeerId,
    s: &mut S,
    service: &Arc<dyn Service>,
    req: StreamRequest,
    serving: &Serving,
) -> Result<(), WireError> {
    let io = |e: std::io::Error| WireError::Io(e.to_string());
    match req {
        StreamRequest::Get(cids) => {
            for cid in cids {
                let t = std::time::Instant::now();
                if !serving.delay.is_zero() {
                    tokio::time::sleep(serving.delay).await;
                }
                let svc = service.clone();
                let data = tokio::task::spawn_blocking(move || svc.get_block(peer, &cid))
                    .await
                    .map_err(|e| WireError::Io(e.to_string()))?;
                match data {
                    Some(d) => {
                        serving.times.record(d.len(), t.elapsed());
                        s.write_all(&encode_get_status(Some(d.len())))
                            .await
                            .map_err(io)?;
                        s.write_all(&d).await.map_err(io)?;
                    }
                    None => s.write_all(&encode_get_status(None)).await.map_err(io)?,
                }
            }
        }
        StreamRequest::Put { manifest, count } => {
            receive(
                s,
                service,
                count,
                move |svc, b| svc.put_block(peer, &manifest, b),
                move |svc, stored| svc.put_done(peer, &manifest, stored),
            )
            .await?
        }
        StreamRequest::Cache { count, planned } => {
            receive(
                s,
                service,
                count,
                move |svc, b| svc.put_cached(peer, b, planned),
                move |svc, stored| svc.cache_done(peer, stored, planned),
            )
            .await?
        }
    }
    Ok(())
}

/// Reads `count` block frames, verifies each against its CID, hands the good ones to `store`
/// on the blocking pool, calls `done` with those stored, and answers one status per block.
async fn receive<S: AsyncRead + AsyncWrite + Unpin + Send>(
    s: &mut S,
    service: &Arc<dyn Service>,
    count: usize,
    store: impl Fn(&dyn Service, Block) -> PutStatus + Send + Sync + Copy + 'static,
    done: impl FnOnce(&dyn Service, &[Cid]) -> bool + Send + 'static,
) -> Result<(), WireError> {
    let join = |e: tokio::task::JoinError| WireError::Io(e.to_string());
    let mut statuses = Vec::with_capacity(count);
    let mut stored = Vec::new();
    for _ in 0..count {
        let (cid, data) = timed(read_block(s)).await?;
        let block = Block { cid, data };
        let status = if Block::verify(&block.cid, &block.data).is_err() {
            PutStatus::BadBlock
        } else {
            let svc = service.clone();
            tokio::task::spawn_blocking(move || store(svc.as_ref(), block))
                .await
                .map_err(join)?
        };
        if status == PutStatus::Stored {
            stored.push(cid);
        }
        statuses.push(status as u8);
    }
    let svc = service.clone();
    let durable = tokio::task::spawn_blocking(move || done(svc.as_ref(), &stored))
        .await
        .map_err(join)?;
    if !durable {
        statuses.fill(PutStatus::Failed as u8);
    }
    s.write_all(&statuses)
        .await
        .map_err(|e| WireError::Io(e.to_string()))
}

#[cfg(test)]
mod tests;
