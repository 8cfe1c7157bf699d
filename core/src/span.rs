//! Byte ranges over a UnixFS file DAG: where each node's bytes sit in the file, and which
//! children of a node hold bytes of a range. Readers that fetch only the blocks under a range
//! (the retrieval client's file reader, the gateway's file and CAR walks) share these.

use cid::Cid;

/// Where a file node sits: its first byte's offset in the file, the file bytes under it, and
/// its depth in the DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of its first byte in the file.
    pub offset: u64,
    /// File bytes under it.
    pub size: u64,
    /// Depth in the DAG (the file's root is 0).
    pub depth: usize,
}

/// The part of `[offset, offset + len)` that lies in `[start, end)`, relative to `offset`.
pub fn overlap(offset: u64, len: u64, start: u64, end: u64) -> Option<(usize, usize)> {
    let (a, b) = (offset.max(start), offset.saturating_add(len).min(end));
    (a < b).then(|| ((a - offset) as usize, (b - offset) as usize))
}

/// The children of a file node at `span` that hold bytes of `range` (`None`: all of them),
/// with their spans: the node's inline data (`data_len` bytes) comes first, then each
/// child's bytes (`children`: CID and file bytes under it, from the node's `blocksizes`) in
/// order.
pub fn children_in(
    span: Span,
    data_len: u64,
    children: &[(Cid, u64)],
    range: Option<(u64, u64)>,
) -> Vec<(Cid, Span)> {
    let mut at = span.offset.saturating_add(data_len);
    let mut out = Vec::new();
    for &(cid, size) in children {
        let child = Span {
            offset: at,
            size,
            depth: span.depth + 1,
        };
        at = at.saturating_add(size);
        if range.is_none_or(|(s, e)| overlap(child.offset, size, s, e).is_some()) {
            out.push((cid, child));
        }
    }
    out
}
