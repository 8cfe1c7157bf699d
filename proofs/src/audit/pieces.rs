//! What a sector holds and how an auditor checks it: the sector's *pieces* (the blocks whose
//! bytes it carries, in sector order), bound into the seal through the ticket, and *openings*
//! of single data leaves against `comm_d`, which an auditor compares with the block's bytes.
//!
//! A sector's data is its pieces one after another: piece `i` starts at the sum of the lengths
//! before it. The seal is made with [`bound_ticket`] (the prover's random ticket hashed with the
//! encoded piece list), and `replica_id` is derived from it, so the seal proof commits to the
//! piece list: a record whose list was changed after sealing does not verify. Leaf `j` of the
//! data holds sector bytes `[31 j, 31 j + 31)` ([`sdr::BYTES_PER_LEAF`]); an [`Opening`] gives
//! its value and its Poseidon path to `comm_d`.

use super::*;
use crate::merkle;
use crate::sdr::{self, BYTES_PER_LEAF};
use ark_bn254::Fr;

/// Most pieces one sector lists: the sealer closes a sector early rather than list more, so a
/// record stays small enough to gossip (at most about 5.5 KiB).
pub const MAX_PIECES: usize = 64;
/// Longest CID (bytes) a piece may name.
pub const MAX_CID: usize = 64;
/// Most data leaves one window proof request asks the prover to open.
pub const MAX_OPENINGS: usize = 4;
/// Longest opening path (a sector of at most 2^30 bytes has at most 2^25 leaves).
const MAX_DEPTH: usize = 32;

/// One block's bytes in a sector: `len` bytes from `offset` of the block `cid` (a block larger
/// than what is left of a sector continues in the next one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Piece {
    /// The block's CID bytes.
    pub cid: Vec<u8>,
    /// Where in the block the piece starts.
    pub offset: u64,
    /// Bytes (at least 1).
    pub len: u64,
}

/// Appends the piece list: a count byte, then per piece its CID (length-prefixed), offset and
/// length (u64 little-endian each).
pub(super) fn put_pieces(out: &mut Vec<u8>, pieces: &[Piece]) {
    out.push(pieces.len() as u8);
    for p in pieces {
        put_bytes(out, &p.cid);
        out.extend_from_slice(&p.offset.to_le_bytes());
        out.extend_from_slice(&p.len.to_le_bytes());
    }
}

/// Reads a piece list whose lengths add up to at most `data_len`.
pub(super) fn read_pieces(r: &mut Reader<'_>, data_len: u64) -> Result<Vec<Piece>, AuditError> {
    let n = r.u8()? as usize;
    if n > MAX_PIECES {
        return Err(AuditError::Field("piece count"));
    }
    let mut out = Vec::with_capacity(n);
    let mut total = 0u64;
    for _ in 0..n {
        let cid = r.bytes(MAX_CID, "piece CID length")?.to_vec();
        let offset = r.u64()?;
        let len = r.u64()?;
        if cid.is_empty() || len == 0 || offset.checked_add(len).is_none() {
            return Err(AuditError::Field("piece"));
        }
        total = total
            .checked_add(len)
            .filter(|t| *t <= data_len)
            .ok_or(AuditError::Field("pieces exceed the sector's data"))?;
        out.push(Piece { cid, offset, len });
    }
    Ok(out)
}

/// The ticket a sector is sealed with: blake3 (derive-key mode, context
/// `"cairn sector pieces v1"`) of the prover's random ticket and the encoded piece list.
pub fn bound_ticket(ticket: &[u8; 32], pieces: &[Piece]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("cairn sector pieces v1");
    h.update(ticket);
    let mut enc = Vec::new();
    put_pieces(&mut enc, pieces);
    h.update(&enc);
    *h.finalize().as_bytes()
}

/// Where each piece starts in the sector's data.
pub fn piece_starts(pieces: &[Piece]) -> Vec<u64> {
    let mut at = 0u64;
    pieces
        .iter()
        .map(|p| {
            let s = at;
            at = at.saturating_add(p.len);
            s
        })
        .collect()
}

/// The data leaves (first, last, inclusive) that hold any byte of a piece starting at `start`
/// with `len` bytes.
pub fn piece_leaves(start: u64, len: u64) -> (u64, u64) {
    let b = BYTES_PER_LEAF as u64;
    (start / b, (start + len.max(1) - 1) / b)
}

/// One data leaf of a sector, opened: its value and its sibling path to `comm_d`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// Leaf index.
    pub leaf: u64,
    /// The leaf's value (31 data bytes, little-endian).
    pub value: Fr,
    /// Sibling path, bottom up.
    pub path: Vec<Fr>,
}

impl Opening {
    /// Appends the opening: leaf (u64), value (32 bytes), path length (u8) and path.
    pub(super) fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.leaf.to_le_bytes());
        out.extend_from_slice(&fr_bytes(&self.value));
        out.push(self.path.len() as u8);
        for s in &self.path {
            out.extend_from_slice(&fr_bytes(s));
        }
    }

    /// Reads one opening.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, AuditError> {
        let leaf = r.u64()?;
        let value = r.fr()?;
        let n = r.u8()? as usize;
        if n > MAX_DEPTH {
            return Err(AuditError::Field("opening path length"));
        }
        let path = (0..n).map(|_| r.fr()).collect::<Result<_, _>>()?;
        Ok(Opening { leaf, value, path })
    }

    /// Whether the path opens this value at this leaf under `comm_d` in a tree of `depth`.
    pub fn verifies(&self, comm_d: Fr, depth: usize) -> bool {
        self.path.len() == depth && merkle::verify(comm_d, self.value, self.leaf, &self.path)
    }

    /// Whether the leaf's bytes agree with `block`, the bytes of the block of a piece that
    /// starts at `start` in the sector: every byte of the leaf that belongs to the piece must
    /// equal the block's byte there. `false` when the block is shorter than the piece says or
    /// the leaf holds none of the piece.
    pub fn matches(&self, piece: &Piece, start: u64, block: &[u8]) -> bool {
        let b = BYTES_PER_LEAF as u64;
        let leaf_start = self.leaf.saturating_mul(b);
        let lo = leaf_start.max(start);
        let hi = leaf_start
            .saturating_add(b)
            .min(start.saturating_add(piece.len));
        if lo >= hi || piece.offset.saturating_add(piece.len) > block.len() as u64 {
            return false;
        }
        let bytes = sdr::bytes_from_leaves(&[self.value], BYTES_PER_LEAF);
        (lo..hi).all(|s| {
            let in_leaf = (s - leaf_start) as usize;
            let in_block = (piece.offset + (s - start)) as usize;
            bytes.get(in_leaf) == block.get(in_block)
        })
    }
}

/// Appends openings: a count byte, then each ([`Opening::put`]).
pub(super) fn put_openings(out: &mut Vec<u8>, openings: &[Opening]) {
    out.push(openings.len() as u8);
    for o in openings {
        o.put(out);
    }
}

/// Reads at most [`MAX_OPENINGS`] openings.
pub(super) fn read_openings(r: &mut Reader<'_>) -> Result<Vec<Opening>, AuditError> {
    let n = r.u8()? as usize;
    if n > MAX_OPENINGS {
        return Err(AuditError::Field("opening count"));
    }
    (0..n).map(|_| Opening::read(r)).collect()
}

/// Appends a short list of numbers (sector numbers, leaf indices): a count byte, then a u64
/// little-endian each.
pub(super) fn put_u64s(out: &mut Vec<u8>, values: &[u64]) {
    out.push(values.len() as u8);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Reads at most [`MAX_OPENINGS`] leaf indices.
pub(super) fn read_leaves(r: &mut Reader<'_>) -> Result<Vec<u64>, AuditError> {
    let n = r.u8()? as usize;
    if n > MAX_OPENINGS {
        return Err(AuditError::Field("opening count"));
    }
    (0..n).map(|_| r.u64()).collect()
}

/// Opens `leaves` of a sector's `data` (as sealed: at most the sector's capacity), with the
/// paths to its `comm_d`. Errors on a leaf past the sector.
pub fn open_leaves(
    params: &NetParams,
    data: &[u8],
    leaves: &[u64],
) -> Result<(Fr, Vec<Opening>), AuditError> {
    let p = params.sector();
    let values = sdr::leaves_from_bytes(data, &p).map_err(|e| AuditError::Prove(e.to_string()))?;
    let tree = merkle::MerkleTree::new(&values).map_err(|e| AuditError::Prove(e.to_string()))?;
    let mut out = Vec::with_capacity(leaves.len());
    for &l in leaves {
        let i = usize::try_from(l).map_err(|_| AuditError::Field("leaf index"))?;
        let path = tree
            .path(i)
            .map_err(|_| AuditError::Field("leaf past the sector"))?;
        out.push(Opening {
            leaf: l,
            value: values[i],
            path,
        });
    }
    Ok((tree.root(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> NetParams {
        NetParams {
            sector_size: 4096,
            layers: 1,
            challenges: 1,
            batch: 1,
            seal_challenges: 1,
        }
    }

    #[test]
    fn pieces_round_trip_and_bind_the_ticket() {
        let ps = vec![
            Piece {
                cid: vec![1; 36],
                offset: 5,
                len: 100,
            },
            Piece {
                cid: vec![2; 36],
                offset: 0,
                len: 20,
            },
        ];
        let mut e = Vec::new();
        put_pieces(&mut e, &ps);
        let mut buf = vec![RECORD_VERSION];
        buf.extend_from_slice(&e);
        let mut r = Reader::versioned(&buf).unwrap();
        assert_eq!(read_pieces(&mut r, 120).unwrap(), ps);
        let mut r = Reader::versioned(&buf).unwrap();
        assert!(
            read_pieces(&mut r, 119).is_err(),
            "more piece bytes than data"
        );
        let t = [7u8; 32];
        let base = bound_ticket(&t, &ps);
        let mut other = ps.clone();
        other[1].cid[0] = 3;
        assert_ne!(bound_ticket(&t, &other), base);
        other = ps.clone();
        other.swap(0, 1);
        assert_ne!(bound_ticket(&t, &other), base);
        assert_ne!(bound_ticket(&[8; 32], &ps), base);
        assert_eq!(piece_starts(&ps), vec![0, 100]);
        // (start, len) -> leaves
        for (start, len, want) in [
            (0, 31, (0, 0)),
            (0, 32, (0, 1)),
            (30, 2, (0, 1)),
            (62, 1, (2, 2)),
        ] {
            assert_eq!(piece_leaves(start, len), want, "{start} {len}");
        }
    }

    #[test]
    fn openings_verify_and_match_only_the_right_bytes() {
        let a: Vec<u8> = (0..100u8).collect();
        let b: Vec<u8> = (0..50u8).map(|x| x.wrapping_mul(7)).collect();
        // the sector holds a[10..100] then b[0..50]
        let pieces = [
            Piece {
                cid: vec![1],
                offset: 10,
                len: 90,
            },
            Piece {
                cid: vec![2],
                offset: 0,
                len: 50,
            },
        ];
        let mut data = a[10..].to_vec();
        data.extend_from_slice(&b);
        let starts = piece_starts(&pieces);
        let depth = (4096 / 32usize).trailing_zeros() as usize;
        let (root, opened) = open_leaves(&params(), &data, &[0, 2, 3, 4]).unwrap();
        for o in &opened {
            assert!(o.verifies(root, depth));
            let mut moved = o.clone();
            moved.leaf ^= 1;
            assert!(!moved.verifies(root, depth), "bound to its index");
        }
        // leaf 0 and 1 hold only a's bytes, leaf 2 holds a's last 28 and b's first 3
        assert!(opened[0].matches(&pieces[0], starts[0], &a));
        assert!(
            !opened[0].matches(&pieces[1], starts[1], &b),
            "no byte of b"
        );
        assert!(opened[1].matches(&pieces[0], starts[0], &a));
        assert!(opened[1].matches(&pieces[1], starts[1], &b));
        let mut wrong = b.clone();
        wrong[1] ^= 1;
        assert!(!opened[1].matches(&pieces[1], starts[1], &wrong));
        wrong = b.clone();
        wrong[40] ^= 1; // not in leaf 2
        assert!(opened[1].matches(&pieces[1], starts[1], &wrong));
        assert!(
            !opened[1].matches(&pieces[1], starts[1], &b[..10]),
            "short block"
        );
        assert!(open_leaves(&params(), &data, &[1 << 20]).is_err());
    }
}
