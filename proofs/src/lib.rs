//! # cairn-proofs
//!
//! Proofs of storage for Cairn (design §3), pure compute on BN254 with arkworks. This first
//! part holds the primitives every statement is built from, each natively and as an R1CS
//! gadget, with tests that both agree and that pin their constraint counts:
//!
//! - [`poseidon`]: the Poseidon permutation and a domain-separated, length-padded hash
//!   (243 constraints per permutation);
//! - [`merkle`]: binary Poseidon Merkle trees whose openings are bound to their index;
//! - [`sdr`]: SDR-lite sealing natively (replica id, layered SHA-256 labelling on a seeded
//!   depth-robust + expander graph, replica encoding and unsealing, commitments) and PoSt
//!   challenge derivation;
//! - [`post`]: the windowed PoSt circuit over a batch of sectors (openings of `c` challenged
//!   replica leaves against `comm_r_last`, and `comm_r = H(comm_c, comm_r_last)`), with the
//!   challenge indices as public inputs the verifier recomputes from the auditor's nonce and
//!   the window.
//!
//! ```
//! use cairn_proofs::merkle::{verify, MerkleTree};
//! use ark_bn254::Fr;
//!
//! let leaves: Vec<Fr> = (0..8u64).map(Fr::from).collect();
//! let tree = MerkleTree::new(&leaves).unwrap();
//! let path = tree.path(5).unwrap();
//! assert!(verify(tree.root(), leaves[5], 5, &path));
//! assert!(!verify(tree.root(), leaves[5], 4, &path));
//! ```
//!
//! - [`ifma`] (x86-64): eight field elements per register with AVX-512 IFMA, so that eight
//!   tree nodes or column hashes are computed at once; the scalar permutation uses BMI2/ADX
//!   assembly multiplication where the CPU has it (both chosen at run time, both tested
//!   against arkworks' arithmetic).
//! - [`porep`]: the seal proof: the challenged nodes' columns are revealed and their SHA-256
//!   labels checked natively, and a Groth16 proof shows those columns are the committed ones
//!   and the challenged nodes were encoded into the replica.
//! - [`baseline`]: format 1's Poseidon labelling and its seal circuit, kept only as the
//!   benchmark's baseline.
//!
//! - [`keys`]: development keys from a deterministic setup, stored uncompressed and referenced
//!   by digest, and ceremony keys loaded only under a pinned SHA-256 ([`keys::pinned`]);
//! - [`ceremony`]: the multi-party setup (Powers of Tau, then the circuit-specific phase 2) that
//!   makes keys no one can forge proofs with;
//! - [`audit`]: what nodes exchange and log about proofs (sector records, signed audit
//!   records, the hash-chained audit log) and its end-to-end verification.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod baseline;
pub mod ceremony;
#[cfg(target_arch = "x86_64")]
pub mod ifma;
pub mod keys;
pub mod merkle;
mod mont;
pub mod porep;
pub mod poseidon;
pub mod post;
pub mod sdr;
