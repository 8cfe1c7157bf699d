//! SDR-lite sealing, natively: the replica a node stores is its data plus the last layer of a
//! sequential, graph-based labelling keyed by `replica_id`, so a node cannot produce the
//! replica quickly from the data on demand, and two nodes' replicas of the same data differ.
//! The seal and PoSt circuits (next) prove statements about exactly these functions.
//!
//! - **Leaves**: a sector is `n` (a power of two) 32-byte slots; each holds 31 data bytes,
//!   little-endian, so every leaf is a field element below the BN254 modulus.
//! - **`replica_id`** = `H_ReplicaId(node, sector, ticket, comm_d, version)`.
//! - **Graph** (fixed by a 32-byte seed): node `i` of layer `l` has 6 parents in the same layer,
//!   the previous node `i - 1` plus 5 drawn by bucket sampling from `[0, i)` (a
//!   depth-robust construction: bucket `b` uniform in `1..=log2(i)`, then a distance in
//!   `[2^(b-1), 2^b)`), and, for `l > 0`, 8 expander parents drawn uniformly from layer
//!   `l - 1`. Missing parents (node 0, layer 0) are the field's zero.
//! - **Label** `l, i` = `H_Label(replica_id, l, i, the 14 parent labels)`.
//! - **Replica** `i` = `data_i + label_{L-1, i}` (field addition); unsealing subtracts it.
//! - **Commitments**: `comm_d` over the data leaves, `comm_c` over per-node columns
//!   `H_Column(label_0,i .. label_{L-1},i)`, `comm_r_last` over the replica, and
//!   `comm_r = H_CommR(comm_c, comm_r_last)`.

use crate::merkle::{MerkleError, MerkleTree};
use crate::mont::Mont;
use crate::poseidon::{absorb_limbs, hash, prefix_limbs, Domain, Prefix};
use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, BigInteger, PrimeField};
use thiserror::Error;

/// Data bytes per leaf.
pub const BYTES_PER_LEAF: usize = 31;
/// Same-layer parents per node (including the previous node).
pub const BASE_PARENTS: usize = 6;
/// Parents from the layer before.
pub const EXP_PARENTS: usize = 8;
/// Format version, part of `replica_id`.
pub const VERSION: u64 = 1;

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

/// A deterministic 64-bit draw for (seed, layer, node, k).
fn draw(seed: &[u8; 32], layer: usize, node: usize, k: usize) -> u64 {
    let mut h = blake3::Hasher::new_keyed(seed);
    h.update(&(layer as u64).to_le_bytes());
    h.update(&(node as u64).to_le_bytes());
    h.update(&(k as u64).to_le_bytes());
    let d = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&d.as_bytes()[..8]);
    u64::from_le_bytes(x)
}

/// The parents of node `i` in layer `layer`: `(layer, index)` pairs, `None` for "no parent".
pub fn parents(
    p: &SectorParams,
    layer: usize,
    i: usize,
) -> [Option<(usize, usize)>; BASE_PARENTS + EXP_PARENTS] {
    let mut out = [None; BASE_PARENTS + EXP_PARENTS];
    if i > 0 {
        out[0] = Some((layer, i - 1));
        let logi = usize::BITS as usize - i.leading_zeros() as usize; // bits of i
        for (k, slot) in out.iter_mut().enumerate().take(BASE_PARENTS).skip(1) {
            let r = draw(&p.graph_seed, layer, i, k);
            let bucket = 1 + (r as usize % logi.max(1));
            let lo = 1usize << (bucket - 1);
            let span = lo; // [2^(b-1), 2^b)
            let dist = lo + ((r >> 32) as usize % span);
            *slot = Some((layer, i.saturating_sub(dist.min(i))));
        }
    }
    if layer > 0 {
        for (k, slot) in out.iter_mut().enumerate().skip(BASE_PARENTS) {
            let r = draw(&p.graph_seed, layer, i, k);
            *slot = Some((layer - 1, (r % p.nodes as u64) as usize));
        }
    }
    out
}

/// All labels, `labels[layer][node]`.
pub fn labels(p: &SectorParams, replica_id: Fr) -> Result<Vec<Vec<Fr>>, SealError> {
    // every label of a layer starts with (replica_id, layer): that pair is absorbed once per
    // layer, and each label absorbs its node index and parents from there
    let n = 3 + BASE_PARENTS + EXP_PARENTS;
    let first = |l: usize| [replica_id, Fr::from(l as u64)];
    if let Some(m) = Mont::detect() {
        // on Montgomery limbs throughout, converted to `Fr` once at the end
        let zero = [0u64; 4];
        let labels = label_graph(
            p,
            zero,
            |_, i| [zero, zero, m.of_fr(&Fr::from(i as u64))],
            |l| prefix_limbs(m, Domain::Label, n, first(l)),
            |state, x| absorb_limbs(m, *state, &x[2..]),
        )?;
        return Ok(labels
            .into_iter()
            .map(|layer| layer.iter().map(|x| m.to_fr(x)).collect())
            .collect());
    }
    label_graph(
        p,
        Fr::ZERO,
        |l, i| [replica_id, Fr::from(l as u64), Fr::from(i as u64)],
        |l| Prefix::new(Domain::Label, n, first(l)),
        |prefix, x| prefix.hash(&x[2..]),
    )
}

/// [`labels`] of several sectors on the same graph (one per `replica_id`), in the same order.
/// On CPUs with AVX-512 IFMA eight sectors are labelled at once, one per vector lane
/// ([`crate::ifma`]), which is several times the throughput of labelling them one by one;
/// elsewhere this is [`labels`] per sector.
pub fn labels_many(p: &SectorParams, replica_ids: &[Fr]) -> Result<Vec<Vec<Vec<Fr>>>, SealError> {
    p.check()?;
    #[cfg(target_arch = "x86_64")]
    if let Some(t) = crate::ifma::Ifma::detect() {
        if replica_ids.len() > 1 {
            let mut out = Vec::with_capacity(replica_ids.len());
            for batch in replica_ids.chunks(crate::ifma::LANES) {
                out.extend(labels_lanes(t, p, batch)?);
            }
            return Ok(out);
        }
    }
    replica_ids.iter().map(|r| labels(p, *r)).collect()
}

/// Up to eight sectors' labels, one per lane.
#[cfg(target_arch = "x86_64")]
fn labels_lanes(
    t: crate::ifma::Ifma,
    p: &SectorParams,
    replica_ids: &[Fr],
) -> Result<Vec<Vec<Vec<Fr>>>, SealError> {
    let n = 3 + BASE_PARENTS + EXP_PARENTS;
    let zero = t.splat(&Fr::ZERO);
    let labels = label_graph(
        p,
        zero,
        |_, i| [zero, zero, t.splat(&Fr::from(i as u64))],
        |l| t.prefix(Domain::Label, n, [replica_ids, &[Fr::from(l as u64)]]),
        |state, x| t.absorb(*state, &x[2..]),
    )?;
    Ok((0..replica_ids.len())
        .map(|k| {
            labels
                .iter()
                .map(|layer| layer.iter().map(|x| t.lane(x, k)).collect())
                .collect()
        })
        .collect())
}

/// [`labels`] with `label_hash` computing `H_Label` over a label's inputs (`replica_id`, layer,
/// node, the 14 parent labels): benchmarks run the same labelling with another Poseidon
/// implementation.
pub fn labels_with(
    p: &SectorParams,
    replica_id: Fr,
    label_hash: &mut dyn FnMut(&[Fr]) -> Fr,
) -> Result<Vec<Vec<Fr>>, SealError> {
    label_graph(
        p,
        Fr::ZERO,
        |l, i| [replica_id, Fr::from(l as u64), Fr::from(i as u64)],
        |_| (),
        |_, x| label_hash(x),
    )
}

/// The labelling walk, for any representation `T` of a label: node `i` of layer `l` gets
/// `hash(layer_state(l), head(l, i) ++ its 14 parents' labels)`, a missing parent being
/// `zero`; `layer_state` is computed once per layer.
fn label_graph<T: Copy, S>(
    p: &SectorParams,
    zero: T,
    head: impl Fn(usize, usize) -> [T; 3],
    mut layer_state: impl FnMut(usize) -> S,
    mut hash: impl FnMut(&S, &[T]) -> T,
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
            layer.push(hash(&state, &inputs));
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

/// Seals `data` for `node`'s copy of `sector` with `ticket`.
pub fn seal(
    p: &SectorParams,
    data: &[u8],
    node: &[u8; 32],
    sector: u64,
    ticket: &[u8; 32],
) -> Result<Sealed, SealError> {
    seal_keeping_labels(p, data, node, sector, ticket).map(|(s, _)| s)
}

/// [`seal`], also returning the labels (`labels[layer][node]`) for the seal proof.
pub fn seal_keeping_labels(
    p: &SectorParams,
    data: &[u8],
    node: &[u8; 32],
    sector: u64,
    ticket: &[u8; 32],
) -> Result<(Sealed, Vec<Vec<Fr>>), SealError> {
    let d = leaves_from_bytes(data, p)?;
    let comm_d = MerkleTree::new(&d)?.root();
    let rid = replica_id(node, sector, ticket, comm_d);
    let labels = labels(p, rid)?;
    finish_seal(p, &d, comm_d, rid, labels)
}

/// The replica and commitments of a labelled sector.
fn finish_seal(
    p: &SectorParams,
    d: &[Fr],
    comm_d: Fr,
    rid: Fr,
    labels: Vec<Vec<Fr>>,
) -> Result<(Sealed, Vec<Vec<Fr>>), SealError> {
    let last = &labels[p.layers - 1];
    let replica: Vec<Fr> = d.iter().zip(last).map(|(a, b)| *a + b).collect();
    let cols: Vec<Fr> = (0..p.nodes).map(|i| column(&labels, i)).collect();
    let comm_c = MerkleTree::new(&cols)?.root();
    let comm_r_last = MerkleTree::new(&replica)?.root();
    let sealed = Sealed {
        comm_r: hash(Domain::CommR, &[comm_c, comm_r_last]),
        replica,
        replica_id: rid,
        comm_d,
        comm_c,
        comm_r_last,
    };
    Ok((sealed, labels))
}

/// A sealed sector and its labels (`labels[layer][node]`), as the seal proof needs them.
pub type SealedWithLabels = (Sealed, Vec<Vec<Fr>>);

/// One sector to seal: its data, for `node`'s copy of `sector` with `ticket`.
#[derive(Debug, Clone, Copy)]
pub struct SealInput<'a> {
    /// The sector's data (at most the sector's capacity).
    pub data: &'a [u8],
    /// The sealing node's 32-byte identifier.
    pub node: [u8; 32],
    /// The sector number.
    pub sector: u64,
    /// The sealing ticket.
    pub ticket: [u8; 32],
}

/// [`seal_keeping_labels`] for several sectors of the same shape, labelled together with
/// [`labels_many`] (eight at a time where the CPU allows): the same results, in order.
pub fn seal_many_keeping_labels(
    p: &SectorParams,
    inputs: &[SealInput<'_>],
) -> Result<Vec<SealedWithLabels>, SealError> {
    let mut leaves = Vec::with_capacity(inputs.len());
    let mut rids = Vec::with_capacity(inputs.len());
    for s in inputs {
        let d = leaves_from_bytes(s.data, p)?;
        let comm_d = MerkleTree::new(&d)?.root();
        rids.push(replica_id(&s.node, s.sector, &s.ticket, comm_d));
        leaves.push((d, comm_d));
    }
    let all = labels_many(p, &rids)?;
    leaves
        .into_iter()
        .zip(rids)
        .zip(all)
        .map(|(((d, comm_d), rid), labels)| finish_seal(p, &d, comm_d, rid, labels))
        .collect()
}

/// Recovers `len` data bytes from a replica.
pub fn unseal(
    p: &SectorParams,
    replica: &[Fr],
    replica_id: Fr,
    len: usize,
) -> Result<Vec<u8>, SealError> {
    let labels = labels(p, replica_id)?;
    let last = &labels[p.layers - 1];
    let d: Vec<Fr> = replica.iter().zip(last).map(|(r, l)| *r - l).collect();
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
    fn sectors_labelled_together_equal_sectors_labelled_alone() {
        // 9 sectors: a full batch of eight lanes, then one alone; 3 layers
        let p = SectorParams {
            nodes: 128,
            layers: 3,
            graph_seed: [5; 32],
        };
        let rids: Vec<Fr> = (0..9u64)
            .map(|k| Fr::from(1000 + k) - Fr::from(7u64 * k * k))
            .collect();
        let many = labels_many(&p, &rids).unwrap();
        assert_eq!(many.len(), rids.len());
        for (rid, got) in rids.iter().zip(&many) {
            // the arkworks-only hash, independent of both fast paths
            let want = labels_with(&p, *rid, &mut |x: &[Fr]| hash(Domain::Label, x)).unwrap();
            assert_eq!(*got, want);
            assert_eq!(labels(&p, *rid).unwrap(), want);
        }
        // sealing together gives each sector exactly its own seal
        let data: Vec<Vec<u8>> = (0..3u8)
            .map(|k| {
                (0..p.capacity() - k as usize)
                    .map(|i| (i as u8) ^ k)
                    .collect()
            })
            .collect();
        let inputs: Vec<SealInput<'_>> = data
            .iter()
            .enumerate()
            .map(|(k, d)| SealInput {
                data: d,
                node: [k as u8; 32],
                sector: k as u64,
                ticket: [9; 32],
            })
            .collect();
        let together = seal_many_keeping_labels(&p, &inputs).unwrap();
        for (s, (sealed, labels)) in inputs.iter().zip(together) {
            let (alone, alone_labels) =
                seal_keeping_labels(&p, s.data, &s.node, s.sector, &s.ticket).unwrap();
            assert_eq!(sealed.replica, alone.replica);
            assert_eq!(sealed.comm_r, alone.comm_r);
            assert_eq!(labels, alone_labels);
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
