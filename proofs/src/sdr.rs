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
use crate::poseidon::{hash, Domain, Prefix};
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
    // every label of a layer starts with (replica_id, layer): absorb that pair once per layer
    let n_inputs = 3 + BASE_PARENTS + EXP_PARENTS;
    let mut prefix: Option<(Fr, Prefix)> = None;
    labels_with(p, replica_id, &mut |x: &[Fr]| {
        if x.len() != n_inputs {
            return hash(Domain::Label, x);
        }
        let pre = match prefix {
            Some((layer, pre)) if layer == x[1] => pre,
            _ => {
                let pre = Prefix::new(Domain::Label, n_inputs, [x[0], x[1]]);
                prefix = Some((x[1], pre));
                pre
            }
        };
        if x[0] != replica_id {
            return hash(Domain::Label, x);
        }
        pre.hash(&x[2..])
    })
}

/// [`labels`] with `label_hash` computing `H_Label` over a label's inputs (`replica_id`, layer,
/// node, the 14 parent labels): benchmarks run the same labelling with another Poseidon
/// implementation.
pub fn labels_with(
    p: &SectorParams,
    replica_id: Fr,
    label_hash: &mut dyn FnMut(&[Fr]) -> Fr,
) -> Result<Vec<Vec<Fr>>, SealError> {
    p.check()?;
    let mut labels: Vec<Vec<Fr>> = Vec::with_capacity(p.layers);
    for l in 0..p.layers {
        let mut layer = Vec::with_capacity(p.nodes);
        for i in 0..p.nodes {
            let mut inputs = Vec::with_capacity(3 + BASE_PARENTS + EXP_PARENTS);
            inputs.extend([replica_id, Fr::from(l as u64), Fr::from(i as u64)]);
            for par in parents(p, l, i) {
                inputs.push(match par {
                    None => Fr::ZERO,
                    Some((pl, pi)) if pl == l => layer[pi],
                    Some((pl, pi)) => labels[pl][pi],
                });
            }
            layer.push(label_hash(&inputs));
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
