//! SDR-lite sealing, natively: the replica a node stores is its data plus the last layer of a
//! sequential, graph-based labelling keyed by `replica_id`, so a node cannot produce the
//! replica quickly from the data on demand, and two nodes' replicas of the same data differ.
//! The seal circuit ([`crate::porep`]) and the PoSt circuit ([`crate::post`]) prove statements
//! about exactly these functions. Format version 2 (docs/proofs.md, "Sealing"):
//!
//! - **Leaves**: a sector is `n` (a power of two) 32-byte slots; each holds 31 data bytes,
//!   little-endian, so every leaf is a field element below the BN254 modulus.
//! - **`replica_id`** = `H_ReplicaId(node, sector, ticket, comm_d, version)` (Poseidon).
//! - **Graph** (fixed by a 32-byte seed): node `i` of layer `l` has 6 parents in the same layer,
//!   the previous node `i - 1` plus 5 drawn by bucket sampling from `[0, i)` (a
//!   depth-robust construction: bucket `b` uniform in `1..=log2(i)`, then a distance in
//!   `[2^(b-1), 2^b)`), and, for `l > 0`, 8 expander parents drawn uniformly from layer
//!   `l - 1`. Missing parents (node 0, layer 0) are zero. The 13 draws of a node come from one
//!   keyed blake3 output.
//! - **Label** `l, i` = SHA-256 of a 64-byte header (`replica_id`, `l` and `i` as u64, 16 zero
//!   bytes) then the 14 parent labels (32 bytes each), with the top 3 bits of the digest
//!   cleared: a 253-bit number, so always a canonical field element ([`label`]). SHA-256 runs
//!   at about 1.4 GB/s with the CPU's SHA extensions, against about 10 us per label for the
//!   Poseidon sponge: labels are checked outside the circuit (the seal proof reveals the
//!   challenged columns, see [`crate::porep`]).
//! - **Replica** `i` = `data_i + label_{L-1, i}` (field addition); unsealing subtracts it.
//! - **Commitments** (Poseidon Merkle trees over the values themselves): `comm_d` over the
//!   data leaves, `comm_c` over per-node columns `H_Column(label_0,i .. label_{L-1},i)`,
//!   `comm_r_last` over the replica, and `comm_r = H_CommR(comm_c, comm_r_last)`.

use crate::merkle::{hash_all, MerkleError, MerkleTree};
use crate::poseidon::{hash, Domain};
use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, BigInteger, PrimeField};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Data bytes per leaf.
pub const BYTES_PER_LEAF: usize = 31;
/// Same-layer parents per node (including the previous node).
pub const BASE_PARENTS: usize = 6;
/// Parents from the layer before.
pub const EXP_PARENTS: usize = 8;
/// Format version, part of `replica_id` (2: SHA-256 labels, unhashed tree leaves).
pub const VERSION: u64 = 2;
/// A label: a 253-bit number, as the 32 little-endian bytes of its field element.
pub type Label = [u8; 32];

/// Sealing failures.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SealError {
    /// The sector shape is invalid.
    #[error("sector of {0} leaves: need a power of two of at least 2")]
    Shape(usize),
    /// Too much data for the sector.
    #[error("{got} data bytes do not fit a sector of {cap} bytes")]
    TooLarge {
        /// Data bytes.
        got: usize,
        /// Capacity in data bytes.
        cap: usize,
    },
    /// No layers.
    #[error("at least one layer is needed")]
    Layers,
    /// A tree could not be built.
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

/// Public parameters of a sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorParams {
    /// Leaves (a power of two).
    pub nodes: usize,
    /// Labelling layers.
    pub layers: usize,
    /// The graph seed.
    pub graph_seed: [u8; 32],
}

impl SectorParams {
    /// Data bytes a sector holds.
    pub fn capacity(&self) -> usize {
        self.nodes * BYTES_PER_LEAF
    }

    fn check(&self) -> Result<(), SealError> {
        if self.nodes < 2 || !self.nodes.is_power_of_two() {
            return Err(SealError::Shape(self.nodes));
        }
        if self.layers == 0 {
            return Err(SealError::Layers);
        }
        Ok(())
    }
}

/// Packs bytes into leaves (zero-padded to the sector).
pub fn leaves_from_bytes(data: &[u8], p: &SectorParams) -> Result<Vec<Fr>, SealError> {
    p.check()?;
    if data.len() > p.capacity() {
        return Err(SealError::TooLarge {
            got: data.len(),
            cap: p.capacity(),
        });
    }
    let mut out: Vec<Fr> = data
        .chunks(BYTES_PER_LEAF)
        .map(Fr::from_le_bytes_mod_order)
        .collect();
    out.resize(p.nodes, Fr::ZERO);
    Ok(out)
}

/// Unpacks leaves into bytes (`len` of them).
pub fn bytes_from_leaves(leaves: &[Fr], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaves.len() * BYTES_PER_LEAF);
    for l in leaves {
        let b = l.into_bigint().to_bytes_le();
        out.extend_from_slice(&b[..BYTES_PER_LEAF]);
    }
    out.truncate(len);
    out
}

fn bytes_to_fr(b: &[u8]) -> Fr {
    Fr::from_le_bytes_mod_order(&b[..b.len().min(BYTES_PER_LEAF)])
}

/// `replica_id` of a node's copy of a sector.
pub fn replica_id(node: &[u8; 32], sector: u64, ticket: &[u8; 32], comm_d: Fr) -> Fr {
    hash(
        Domain::ReplicaId,
        &[
            bytes_to_fr(node),
            Fr::from(sector),
            bytes_to_fr(ticket),
            comm_d,
            Fr::from(VERSION),
        ],
    )
}

/// The 13 deterministic 64-bit draws of (seed, layer, node): one keyed blake3 output.
fn draws(seed: &[u8; 32], layer: usize, node: usize) -> [u64; BASE_PARENTS + EXP_PARENTS] {
    let mut h = blake3::Hasher::new_keyed(seed);
    h.update(&(layer as u64).to_le_bytes());
    h.update(&(node as u64).to_le_bytes());
    let mut bytes = [0u8; 8 * (BASE_PARENTS + EXP_PARENTS)];
    h.finalize_xof().fill(&mut bytes);
    let mut out = [0u64; BASE_PARENTS + EXP_PARENTS];
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut x = [0u8; 8];
        x.copy_from_slice(c);
        *o = u64::from_le_bytes(x);
    }
    out
}

/// The parents of node `i` in layer `layer`: `(layer, index)` pairs, `None` for "no parent".
pub fn parents(
    p: &SectorParams,
    layer: usize,
    i: usize,
) -> [Option<(usize, usize)>; BASE_PARENTS + EXP_PARENTS] {
    let mut out = [None; BASE_PARENTS + EXP_PARENTS];
    if i == 0 && layer == 0 {
        return out;
    }
    let r = draws(&p.graph_seed, layer, i);
    if i > 0 {
        out[0] = Some((layer, i - 1));
        let logi = usize::BITS as usize - i.leading_zeros() as usize; // bits of i
        for (k, slot) in out.iter_mut().enumerate().take(BASE_PARENTS).skip(1) {
            let bucket = 1 + (r[k] as usize % logi.max(1));
            let lo = 1usize << (bucket - 1);
            let span = lo; // [2^(b-1), 2^b)
            let dist = lo + ((r[k] >> 32) as usize % span);
            *slot = Some((layer, i.saturating_sub(dist.min(i))));
        }
    }
    if layer > 0 {
        for (k, slot) in out.iter_mut().enumerate().skip(BASE_PARENTS) {
            *slot = Some((layer - 1, (r[k] % p.nodes as u64) as usize));
        }
    }
    out
}

/// The label of node `node` of layer `layer` from its 14 parents' labels (zero for a missing
/// parent): SHA-256 over the 64-byte header and the parents, top 3 bits cleared.
pub fn label(replica_id: &Label, layer: usize, node: usize, parents: &[Label]) -> Label {
    let mut h = Sha256::new();
    h.update(replica_id);
    h.update((layer as u64).to_le_bytes());
    h.update((node as u64).to_le_bytes());
    h.update([0u8; 16]);
    for p in parents {
        h.update(p);
    }
    let mut out: Label = h.finalize().into();
    out[31] &= 0x1f;
    out
}

/// A field element's canonical little-endian bytes.
pub fn fr_label(x: &Fr) -> Label {
    let mut out = [0u8; 32];
    out.copy_from_slice(&x.into_bigint().to_bytes_le());
    out
}

/// A label as a field element (a label is below 2^253, so it is canonical).
pub fn label_fr(l: &Label) -> Fr {
    Fr::from_le_bytes_mod_order(l)
}

/// All labels, `labels[layer][node]`, as bytes.
pub fn label_bytes(p: &SectorParams, replica_id: Fr) -> Result<Vec<Vec<Label>>, SealError> {
    let rid = fr_label(&replica_id);
    label_graph(
        p,
        [0u8; 32],
        |_, _| [[0u8; 32]; 3],
        |_| (),
        |_, l, i, x| label(&rid, l, i, &x[3..]),
    )
}

/// All labels, `labels[layer][node]`.
pub fn labels(p: &SectorParams, replica_id: Fr) -> Result<Vec<Vec<Fr>>, SealError> {
    Ok(label_bytes(p, replica_id)?
        .iter()
        .map(|layer| layer.iter().map(label_fr).collect())
        .collect())
}

/// The labelling walk, for any representation `T` of a label: node `i` of layer `l` gets
/// `hash(layer_state(l), l, i, head(l, i) ++ its 14 parents' labels)`, a missing parent being
/// `zero`; `layer_state` is computed once per layer. [`label_bytes`] reads only the parents;
/// the Poseidon baseline ([`crate::baseline`]) hashes the head too.
pub(crate) fn label_graph<T: Copy, S>(
    p: &SectorParams,
    zero: T,
    head: impl Fn(usize, usize) -> [T; 3],
    mut layer_state: impl FnMut(usize) -> S,
    mut hash: impl FnMut(&S, usize, usize, &[T]) -> T,
) -> Result<Vec<Vec<T>>, SealError> {
    p.check()?;
    let mut labels: Vec<Vec<T>> = Vec::with_capacity(p.layers);
    let mut inputs = Vec::with_capacity(3 + BASE_PARENTS + EXP_PARENTS);
    for l in 0..p.layers {
        let state = layer_state(l);
        let mut layer = Vec::with_capacity(p.nodes);
        for i in 0..p.nodes {
            inputs.clear();
            inputs.extend(head(l, i));
            for par in parents(p, l, i) {
                inputs.push(match par {
                    None => zero,
                    Some((pl, pi)) if pl == l => layer[pi],
                    Some((pl, pi)) => labels[pl][pi],
                });
            }
            layer.push(hash(&state, l, i, &inputs));
        }
        labels.push(layer);
    }
    Ok(labels)
}

/// A sealed sector: the replica and every commitment.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The replica leaves.
    pub replica: Vec<Fr>,
    /// `replica_id`.
    pub replica_id: Fr,
    /// Root over the data leaves.
    pub comm_d: Fr,
    /// Root over the label columns.
    pub comm_c: Fr,
    /// Root over the replica.
    pub comm_r_last: Fr,
    /// `H_CommR(comm_c, comm_r_last)`.
    pub comm_r: Fr,
}

/// Column hash of node `i`.
pub fn column(labels: &[Vec<Fr>], i: usize) -> Fr {
    let col: Vec<Fr> = labels.iter().map(|l| l[i]).collect();
    hash(Domain::Column, &col)
}

/// Every column hash, in node order (eight at a time where the CPU allows, over the rayon
/// pool): the same values as [`column()`] node by node.
pub fn columns(labels: &[Vec<Fr>]) -> Vec<Fr> {
    let n = labels.first().map_or(0, Vec::len);
    match labels.len() {
        1 => hash_all(Domain::Column, &labels[0], 1),
        2 => {
            let mut flat = Vec::with_capacity(2 * n);
            for (a, b) in labels[0].iter().zip(&labels[1]) {
                flat.push(*a);
                flat.push(*b);
            }
            hash_all(Domain::Column, &flat, 2)
        }
        _ => {
            use rayon::prelude::*;
            (0..n).into_par_iter().map(|i| column(labels, i)).collect()
        }
    }
}

/// What sealing computed beyond the [`Sealed`] sector: the labels and the three trees, kept
/// for the seal proof (which opens them) so nothing is hashed twice.
#[derive(Debug, Clone)]
pub struct SealWork {
    /// `labels[layer][node]`.
    pub labels: Vec<Vec<Fr>>,
    /// The tree over the column hashes (root `comm_c`).
    pub columns: MerkleTree,
    /// The tree over the data leaves (root `comm_d`).
    pub data: MerkleTree,
    /// The tree over the replica (root `comm_r_last`).
    pub replica: MerkleTree,
}

/// Seals `data` for `node`'s copy of `sector` with `ticket`.
pub fn seal(
    p: &SectorParams,
    data: &[u8],
    node: &[u8; 32],
    sector: u64,
    ticket: &[u8; 32],
) -> Result<Sealed, SealError> {
    seal_keeping_work(p, data, node, sector, ticket).map(|(s, _)| s)
}

/// [`seal`], also returning the labels and trees for the seal proof.
pub fn seal_keeping_work(
    p: &SectorParams,
    data: &[u8],
    node: &[u8; 32],
    sector: u64,
    ticket: &[u8; 32],
) -> Result<(Sealed, SealWork), SealError> {
    seal_labelled_by(p, data, (node, sector, ticket), labels)
}

/// Seals with `label` as the labelling (format 2's [`labels`], or the benchmark's baseline):
/// `comm_d`, `replica_id` from `(node, sector, ticket)`, the labels, then the commitments.
pub(crate) fn seal_labelled_by(
    p: &SectorParams,
    data: &[u8],
    (node, sector, ticket): (&[u8; 32], u64, &[u8; 32]),
    label: impl FnOnce(&SectorParams, Fr) -> Result<Vec<Vec<Fr>>, SealError>,
) -> Result<(Sealed, SealWork), SealError> {
    let data = MerkleTree::from_leaves(leaves_from_bytes(data, p)?)?;
    let rid = replica_id(node, sector, ticket, data.root());
    let labels = label(p, rid)?;
    finish_seal(p, data, rid, labels)
}

/// The replica and commitments of a labelled sector (`data` is the data leaves' tree).
fn finish_seal(
    p: &SectorParams,
    data: MerkleTree,
    rid: Fr,
    labels: Vec<Vec<Fr>>,
) -> Result<(Sealed, SealWork), SealError> {
    let last = &labels[p.layers - 1];
    let replica: Vec<Fr> = data
        .leaves()
        .iter()
        .zip(last)
        .map(|(a, b)| *a + b)
        .collect();
    let (columns, replica_tree) = rayon::join(
        || MerkleTree::from_leaves(columns(&labels)),
        || MerkleTree::from_leaves(replica),
    );
    let (columns, replica_tree) = (columns?, replica_tree?);
    let comm_c = columns.root();
    let comm_r_last = replica_tree.root();
    let sealed = Sealed {
        comm_r: hash(Domain::CommR, &[comm_c, comm_r_last]),
        replica: replica_tree.leaves().to_vec(),
        replica_id: rid,
        comm_d: data.root(),
        comm_c,
        comm_r_last,
    };
    let work = SealWork {
        labels,
        columns,
        data,
        replica: replica_tree,
    };
    Ok((sealed, work))
}

/// Labels and trees of a sealed sector again, from its replica alone (`replica_id` from its
/// record): what a seal check opens when sealing's work is long gone. The data leaves are
/// `replica - label_{L-1}`, so the plain blocks are not read. The caller compares the result's
/// `comm_r` with the committed one (a replica changed on disk gives another).
pub fn rework(
    p: &SectorParams,
    replica_id: Fr,
    replica: &[Fr],
) -> Result<(Sealed, SealWork), SealError> {
    if replica.len() != p.nodes {
        return Err(SealError::Shape(replica.len()));
    }
    let labels = labels(p, replica_id)?;
    let last = &labels[p.layers - 1];
    let data: Vec<Fr> = replica.iter().zip(last).map(|(r, l)| *r - l).collect();
    finish_seal(p, MerkleTree::from_leaves(data)?, replica_id, labels)
}

/// A sealed sector and what its seal proof needs.
pub type SealedWithWork = (Sealed, SealWork);

/// Recovers `len` data bytes from a replica given its labels (`labels[layer][node]`).
pub fn unseal_with(p: &SectorParams, replica: &[Fr], labels: &[Vec<Fr>], len: usize) -> Vec<u8> {
    let last = &labels[p.layers.min(labels.len()).saturating_sub(1)];
    let d: Vec<Fr> = replica.iter().zip(last).map(|(r, l)| *r - l).collect();
    bytes_from_leaves(&d, len)
}

/// Recovers `len` data bytes from a replica: labels the sector again (SHA-256 only, no tree)
/// and subtracts the last layer.
pub fn unseal(
    p: &SectorParams,
    replica: &[Fr],
    replica_id: Fr,
    len: usize,
) -> Result<Vec<u8>, SealError> {
    let mut labels = label_bytes(p, replica_id)?;
    let last = labels.pop().unwrap_or_default();
    let d: Vec<Fr> = replica
        .iter()
        .zip(&last)
        .map(|(r, l)| *r - label_fr(l))
        .collect();
    Ok(bytes_from_leaves(&d, len))
}

/// The PoSt challenge seed of a window: `H_Challenge(nonce, window)`.
pub fn post_seed(nonce: &[u8; 32], window: u64) -> Fr {
    hash(Domain::Challenge, &[bytes_to_fr(nonce), Fr::from(window)])
}

/// Challenge `i` of `sector` for `seed`: `H_Challenge(seed, sector, i) mod n`.
pub fn challenge(seed: Fr, sector: u64, i: u64, nodes: usize) -> usize {
    let h = hash(Domain::Challenge, &[seed, Fr::from(sector), Fr::from(i)]);
    let limbs = h.into_bigint().0;
    (limbs[0] % nodes as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SectorParams {
        SectorParams {
            nodes: 64, // 2 KiB sector
            layers: 2,
            graph_seed: [7; 32],
        }
    }

    #[test]
    fn seal_then_unseal_gives_the_data_back() {
        let p = params();
        let data: Vec<u8> = (0..p.capacity() - 5)
            .map(|i| (i * 37 % 251) as u8)
            .collect();
        let s = seal(&p, &data, &[1; 32], 3, &[9; 32]).unwrap();
        assert_eq!(
            unseal(&p, &s.replica, s.replica_id, data.len()).unwrap(),
            data
        );
        assert_eq!(s.comm_r, hash(Domain::CommR, &[s.comm_c, s.comm_r_last]));
        // a different node, sector or ticket gives a different replica of the same data
        let t = seal(&p, &data, &[2; 32], 3, &[9; 32]).unwrap();
        assert_eq!(t.comm_d, s.comm_d);
        assert_ne!(t.comm_r_last, s.comm_r_last);
        assert_ne!(
            seal(&p, &data, &[1; 32], 4, &[9; 32]).unwrap().comm_r,
            s.comm_r
        );
        assert_ne!(
            seal(&p, &data, &[1; 32], 3, &[8; 32]).unwrap().comm_r,
            s.comm_r
        );
    }

    #[test]
    fn labels_follow_the_documented_sha256_construction() {
        let p = SectorParams {
            nodes: 128,
            layers: 3,
            graph_seed: [5; 32],
        };
        let rid = Fr::from(1234u64);
        let got = label_bytes(&p, rid).unwrap();
        let rid_bytes = fr_label(&rid);
        for l in 0..p.layers {
            for i in [0usize, 1, 2, 77, 127] {
                // the header block and the 14 parents, written out byte by byte
                let mut msg = Vec::new();
                msg.extend_from_slice(&rid_bytes);
                msg.extend_from_slice(&(l as u64).to_le_bytes());
                msg.extend_from_slice(&(i as u64).to_le_bytes());
                msg.extend_from_slice(&[0u8; 16]);
                for par in parents(&p, l, i) {
                    match par {
                        None => msg.extend_from_slice(&[0u8; 32]),
                        Some((pl, pi)) => msg.extend_from_slice(&got[pl][pi]),
                    }
                }
                assert_eq!(msg.len(), 64 + 14 * 32);
                let mut want: [u8; 32] = Sha256::digest(&msg).into();
                want[31] &= 0x1f;
                assert_eq!(got[l][i], want, "layer {l} node {i}");
                // a label is a canonical field element: its bytes survive the round trip
                assert_eq!(fr_label(&label_fr(&got[l][i])), got[l][i]);
            }
        }
        assert_ne!(label_bytes(&p, rid + Fr::from(1u64)).unwrap(), got);
    }

    #[test]
    fn columns_at_once_equal_columns_one_by_one() {
        for layers in 1..=3usize {
            let labels: Vec<Vec<Fr>> = (0..layers)
                .map(|l| (0..40u64).map(|i| Fr::from(i * 7 + l as u64)).collect())
                .collect();
            let want: Vec<Fr> = (0..40).map(|i| column(&labels, i)).collect();
            assert_eq!(columns(&labels), want, "{layers} layers");
        }
    }

    #[test]
    fn graph_has_the_documented_shape() {
        let p = params();
        for l in 0..p.layers {
            for i in 0..p.nodes {
                let ps = parents(&p, l, i);
                for (k, par) in ps.iter().enumerate() {
                    match par {
                        None => assert!(i == 0 && k < BASE_PARENTS || l == 0 && k >= BASE_PARENTS),
                        Some((pl, pi)) if k < BASE_PARENTS => {
                            assert_eq!(*pl, l);
                            assert!(*pi < i, "same-layer parents come before the node");
                            if k == 0 {
                                assert_eq!(*pi, i - 1);
                            }
                        }
                        Some((pl, pi)) => {
                            assert_eq!(*pl + 1, l);
                            assert!(*pi < p.nodes);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut p = params();
        p.nodes = 48;
        assert_eq!(
            seal(&p, b"x", &[0; 32], 0, &[0; 32]).unwrap_err(),
            SealError::Shape(48)
        );
        p.nodes = 64;
        p.layers = 0;
        assert_eq!(
            seal(&p, b"x", &[0; 32], 0, &[0; 32]).unwrap_err(),
            SealError::Layers
        );
        p.layers = 1;
        let big = vec![0u8; p.capacity() + 1];
        assert!(matches!(
            seal(&p, &big, &[0; 32], 0, &[0; 32]),
            Err(SealError::TooLarge { .. })
        ));
    }

    #[test]
    fn challenges_are_spread_and_depend_on_every_input() {
        let seed = post_seed(&[3; 32], 10);
        assert_ne!(seed, post_seed(&[3; 32], 11));
        assert_ne!(seed, post_seed(&[4; 32], 10));
        let mut hits = vec![0u32; 64];
        for i in 0..6400 {
            hits[challenge(seed, 1, i, 64)] += 1;
        }
        // 100 expected per node; every node challenged
        assert!(hits.iter().all(|&h| (50..170).contains(&h)), "{hits:?}");
        assert_ne!(
            (0..10)
                .map(|i| challenge(seed, 1, i, 64))
                .collect::<Vec<_>>(),
            (0..10)
                .map(|i| challenge(seed, 2, i, 64))
                .collect::<Vec<_>>()
        );
    }
}
