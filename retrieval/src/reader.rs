//! Reading one file of a resolved dataset in bounded memory: only the blocks under the bytes
//! asked for are fetched (each verified against its CID, fetched from its holders or decoded
//! from its stripe's parity), a few at a time ahead of the reader, through a byte-bounded
//! [`MemoryCache`].
//!
//! A read walks the file's DAG depth-first from its root: a file node's `blocksizes` say how
//! many file bytes lie under each child, so only the children overlapping the range are
//! queued, and the first [`Options::read_ahead`](crate::Options::read_ahead) blocks of the
//! queue are fetched in their own tasks while the reader consumes the one before them. What a
//! read holds is the cache, those blocks, and the links of the file nodes on its path (at
//! most [`MAX_DEPTH`] nodes, a few per GiB of file): nothing grows with the file's size.

use crate::cache::MemoryCache;
use crate::client::{Client, Resolved, RetrievalError};
use crate::report::ReadReports;
use bytes::{Buf, Bytes};
use cairn_core::block::RAW;
use cairn_core::dag::{DagError, Node, MAX_DEPTH};
use cairn_core::span::{children_in, overlap, Span};
use cairn_core::Cid;
use futures::stream::{self, Stream, StreamExt};
use std::collections::VecDeque;
use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tokio::task::JoinHandle;

/// Where the readers of one dataset get blocks: the cache, else the network through the
/// client (verified; parity when holders are missing, slow or lying), counting what it fetches.
pub(crate) struct Source {
    client: Client,
    resolved: Resolved,
    cache: MemoryCache,
    fetched_blocks: AtomicU64,
    fetched_bytes: AtomicU64,
    /// Where the reads go to be reported, once a plan is registered.
    reports: std::sync::Mutex<Option<Arc<ReadReports>>>,
}

impl Source {
    /// A source over `resolved`, caching at most the client's
    /// [`Options::cache_bytes`](crate::Options::cache_bytes).
    pub(crate) fn new(client: Client, resolved: Resolved) -> Self {
        let cache = MemoryCache::new(client.options().cache_bytes);
        Source {
            client,
            resolved,
            cache,
            fetched_blocks: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
            reports: std::sync::Mutex::new(None),
        }
    }

    /// Reports the blocks fetched from now on to `node`, which follows this reader's plan
    /// (replacing an earlier plan's node).
    pub(crate) fn report_to(&self, node: cairn_net::PeerId) {
        if let Ok(mut r) = self.reports.lock() {
            if r.as_ref().is_none_or(|r| r.node() != node) {
                *r = Some(ReadReports::new(
                    self.client.net.clone(),
                    node,
                    self.resolved.root,
                ));
            }
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn resolved(&self) -> &Resolved {
        &self.resolved
    }

    pub(crate) fn cache(&self) -> &MemoryCache {
        &self.cache
    }

    /// Blocks and bytes fetched from the network so far.
    pub(crate) fn fetched(&self) -> (u64, u64) {
        (
            self.fetched_blocks.load(Ordering::Relaxed),
            self.fetched_bytes.load(Ordering::Relaxed),
        )
    }

    /// The verified bytes of a data block of the dataset: from the cache, else fetched and
    /// cached.
    pub(crate) async fn block(&self, cid: &Cid) -> Result<Bytes, RetrievalError> {
        match self.cache.get(cid) {
            Some(b) => Ok(b),
            None => self.fetch(cid).await,
        }
    }

    /// Fetches a data block of the dataset (only this block of its stripe when its holders
    /// answer; the stripe's other shards when it must be decoded), verified, and caches it.
    async fn fetch(&self, cid: &Cid) -> Result<Bytes, RetrievalError> {
        let &(stripe, pos) = self
            .resolved
            .position
            .get(cid)
            .ok_or(RetrievalError::NotInDataset(*cid))?;
        let got = self.client.obtain(&self.resolved, stripe, &[pos]).await?;
        let bytes = got
            .into_iter()
            .find(|(c, _)| c == cid)
            .map(|(_, b)| Bytes::from(b))
            // a parity shard: not a block of the DAG
            .ok_or(RetrievalError::NotInDataset(*cid))?;
        self.fetched_blocks.fetch_add(1, Ordering::Relaxed);
        self.fetched_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.cache.insert(*cid, bytes.clone());
        let reports = self.reports.lock().ok().and_then(|r| r.clone());
        if let Some(r) = reports {
            r.note(*cid);
        }
        Ok(bytes)
    }

    /// The size the manifest records for a data block (a raw file's size, before it is
    /// fetched; the bytes are checked against it when read).
    pub(crate) fn recorded_len(&self, cid: &Cid) -> Result<u64, RetrievalError> {
        let &(s, j) = self
            .resolved
            .position
            .get(cid)
            .ok_or(RetrievalError::NotInDataset(*cid))?;
        self.resolved
            .stripes
            .get(s)
            .and_then(|s| s.lens.get(j))
            .copied()
            .ok_or(RetrievalError::NotInDataset(*cid))
    }
}

enum Slot {
    Waiting,
    Running(JoinHandle<Result<Bytes, RetrievalError>>),
    Ready(Bytes),
}

/// The blocks still to read, in file order, the first `ahead` of them fetched in their own
/// tasks (aborted when the queue is dropped).
struct Queue {
    src: Arc<Source>,
    items: VecDeque<(Cid, Span, Slot)>,
    ahead: usize,
}

impl Queue {
    /// Starts the fetches of the first `ahead` blocks that are not started yet; blocks in the
    /// cache are taken from it at once.
    fn top_up(&mut self) {
        for (cid, _, slot) in self.items.iter_mut().take(self.ahead) {
            if let Slot::Waiting = slot {
                *slot = match self.src.cache().get(cid) {
                    Some(b) => Slot::Ready(b),
                    None => {
                        let (src, cid) = (self.src.clone(), *cid);
                        Slot::Running(tokio::spawn(async move { src.fetch(&cid).await }))
                    }
                };
            }
        }
    }

    /// The next block to read.
    async fn pop(&mut self) -> Option<Result<(Cid, Span, Bytes), RetrievalError>> {
        self.top_up();
        let (cid, span, slot) = self.items.pop_front()?;
        let bytes = match slot {
            Slot::Ready(b) => Ok(b),
            Slot::Waiting => self.src.block(&cid).await,
            Slot::Running(h) => h.await.unwrap_or_else(|e| {
                Err(RetrievalError::Task {
                    cid,
                    reason: e.to_string(),
                })
            }),
        };
        Some(bytes.map(|b| (cid, span, b)))
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        for (_, _, slot) in &self.items {
            if let Slot::Running(h) = slot {
                h.abort();
            }
        }
    }
}

/// A walk of one file's DAG under a byte range.
struct Walk {
    q: Queue,
    root: Cid,
    start: u64,
    end: u64,
    /// Bytes yielded so far.
    sent: u64,
}

impl Walk {
    /// The next non-empty piece of the range, `None` once all of it was yielded; an error when
    /// a block cannot be had or the DAG's sizes do not add up.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, RetrievalError> {
        while let Some(next) = self.q.pop().await {
            let (cid, span, bytes) = next?;
            let inconsistent = || RetrievalError::Dag(DagError::Inconsistent(cid));
            if span.depth > MAX_DEPTH {
                return Err(DagError::TooDeep.into());
            }
            let (data, children) = if cid.codec() == RAW {
                (bytes, Vec::new())
            } else {
                match Node::decode(&cid, bytes.to_vec())? {
                    Node::File {
                        data,
                        children,
                        size,
                    } if size == span.size => (Bytes::from(data), children),
                    Node::File { .. } | Node::Raw(_) => return Err(inconsistent()),
                    Node::Directory(_) | Node::Hamt(_) | Node::Symlink(_) => {
                        return Err(DagError::IsADirectory(cid).into())
                    }
                }
            };
            if children.is_empty() && data.len() as u64 != span.size {
                return Err(inconsistent());
            }
            let kids = children_in(
                span,
                data.len() as u64,
                &children,
                Some((self.start, self.end)),
            );
            for (c, s) in kids.into_iter().rev() {
                self.q.items.push_front((c, s, Slot::Waiting));
            }
            if let Some((a, b)) = overlap(span.offset, data.len() as u64, self.start, self.end) {
                self.sent += (b - a) as u64;
                return Ok(Some(data.slice(a..b)));
            }
        }
        if self.sent != self.end - self.start {
            return Err(RetrievalError::Dag(DagError::Inconsistent(self.root)));
        }
        Ok(None)
    }
}

/// A boxed stream of file bytes.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, RetrievalError>> + Send>>;

/// Bytes `[start, end)` of the file `root` of `size` bytes (`start <= end <= size`, checked by
/// the caller), in order, in pieces of at most one block; fetches only the blocks under the
/// range. Ends with an error, after which it yields nothing, when a block cannot be had or the
/// DAG does not hold `size` bytes.
pub(crate) fn range_stream(
    src: Arc<Source>,
    root: Cid,
    size: u64,
    start: u64,
    end: u64,
) -> ByteStream {
    if start >= end {
        return Box::pin(stream::empty());
    }
    let ahead = src.client().options().read_ahead.max(1);
    let top = Span {
        offset: 0,
        size,
        depth: 0,
    };
    let walk = Walk {
        q: Queue {
            src,
            items: VecDeque::from([(root, top, Slot::Waiting)]),
            ahead,
        },
        root,
        start,
        end,
        sent: 0,
    };
    Box::pin(
        stream::try_unfold(walk, |mut w| async move {
            Ok(w.next_chunk().await?.map(|b| (b, w)))
        })
        .fuse(),
    )
}

/// One file of a dataset as [`AsyncRead`] + [`AsyncSeek`] (`tokio::io`), from
/// [`Dataset::reader`](crate::dataset::Dataset::reader).
///
/// Reading fetches only the blocks from the current position on, up to
/// [`Options::read_ahead`](crate::Options::read_ahead) of them ahead; nothing is fetched
/// before the first read. A seek inside the block being read keeps the fetches under way;
/// any other seek drops them and the next read starts from the new position. Reads past the
/// end return 0 bytes. A block that cannot be had (no holder, too few shards to decode) is an
/// I/O error of kind `Other` wrapping the [`RetrievalError`].
pub struct FileReader {
    src: Arc<Source>,
    cid: Cid,
    size: u64,
    /// The position of the next byte read.
    pos: u64,
    /// Bytes from `pos` on, already at hand.
    buf: Bytes,
    /// Bytes from `pos + buf.len()` on, when a read has started.
    stream: Option<ByteStream>,
}

impl FileReader {
    pub(crate) fn new(src: Arc<Source>, cid: Cid, size: u64) -> Self {
        FileReader {
            src,
            cid,
            size,
            pos: 0,
            buf: Bytes::new(),
            stream: None,
        }
    }

    /// The file's CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The position of the next byte read.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("cid", &self.cid)
            .field("size", &self.size)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if out.remaining() == 0 || this.pos >= this.size {
                return Poll::Ready(Ok(()));
            }
            if !this.buf.is_empty() {
                let n = this.buf.len().min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.pos += n as u64;
                return Poll::Ready(Ok(()));
            }
            let (src, cid, size, pos) = (&this.src, this.cid, this.size, this.pos);
            let stream = this
                .stream
                .get_or_insert_with(|| range_stream(src.clone(), cid, size, pos, size));
            match ready!(stream.as_mut().poll_next(cx)) {
                Some(Ok(b)) => this.buf = b,
                Some(Err(e)) => {
                    this.stream = None;
                    return Poll::Ready(Err(std::io::Error::other(e)));
                }
                None => {
                    // the walk checks that it yields the whole range, so this is not reached
                    this.stream = None;
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("file {cid} ended at byte {pos} of {size}"),
                    )));
                }
            }
        }
    }
}

impl AsyncSeek for FileReader {
    fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        let this = &mut *self;
        let target = match position {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => this.size.checked_add_signed(d),
            SeekFrom::Current(d) => this.pos.checked_add_signed(d),
        }
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek to before the start of the file",
            )
        })?;
        match target.checked_sub(this.pos) {
            Some(skip) if skip <= this.buf.len() as u64 => this.buf.advance(skip as usize),
            _ => {
                this.buf = Bytes::new();
                this.stream = None;
            }
        }
        this.pos = target;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u8) -> Cid {
        cairn_core::block::HashAlg::Blake3.cid(RAW, &[i])
    }

    #[test]
    fn overlaps() {
        // (offset, len, start, end) -> the part inside, relative to offset
        let cases = [
            ((0, 10, 0, 10), Some((0, 10))),
            ((0, 10, 3, 5), Some((3, 5))),
            ((10, 10, 0, 15), Some((0, 5))),
            ((10, 10, 15, 100), Some((5, 10))),
            // touching is not overlapping
            ((10, 10, 0, 10), None),
            ((10, 10, 20, 30), None),
            // empty pieces and empty ranges hold nothing
            ((10, 0, 0, 30), None),
            ((0, 10, 5, 5), None),
            // sizes near u64::MAX saturate instead of wrapping
            ((u64::MAX - 1, 10, 0, u64::MAX), Some((0, 1))),
        ];
        for ((o, l, s, e), want) in cases {
            assert_eq!(overlap(o, l, s, e), want, "{o} {l} {s} {e}");
        }
    }

    #[test]
    fn only_the_children_under_the_range() {
        let span = Span {
            offset: 100,
            size: 3 + 40,
            depth: 2,
        };
        // 3 inline bytes, then children of 10, 10, 0 (empty), 20 bytes: at 103, 113, 123, 123
        let kids = [(cid(0), 10), (cid(1), 10), (cid(2), 0), (cid(3), 20)];
        let at = |r: (u64, u64)| -> Vec<(u8, u64)> {
            children_in(span, 3, &kids, Some(r))
                .into_iter()
                .map(|(c, s)| {
                    assert_eq!(s.depth, 3);
                    let i = kids.iter().position(|k| k.0 == c).unwrap() as u8;
                    (i, s.offset)
                })
                .collect()
        };
        // the whole node
        assert_eq!(at((0, 1000)), vec![(0, 103), (1, 113), (3, 123)]);
        // only the inline data
        assert_eq!(at((100, 103)), vec![]);
        // the last byte of child 0 and the first of child 1
        assert_eq!(at((112, 114)), vec![(0, 103), (1, 113)]);
        // exactly child 3 (the empty child 2 is never needed)
        assert_eq!(at((123, 143)), vec![(3, 123)]);
        // past the node
        assert_eq!(at((143, 200)), vec![]);
    }
}
