//! # cairn-core
//!
//! The pure (no I/O) heart of Cairn: import profiles, IPFS-exact UnixFS dag-pb DAG building,
//! Reed-Solomon stripes, the DAG-CBOR manifest and CAR v1 files.
//!
//! ```
//! use cairn_core::{importer::FileImporter, profile::Profile};
//!
//! let profile = Profile::by_name("cairn-v1").unwrap();
//! let mut blocks = Vec::new();
//! let mut file = FileImporter::new(&profile);
//! file.add_chunks(vec![bytes::Bytes::from_static(b"foo\n")], &mut blocks);
//! let root = file.finish(&mut blocks);
//! assert_eq!(
//!     root.cid.to_string(),
//!     "bafkr4icj3sdq34o6p7lapfgoxtset5om3lsxll72uz5cjnrkzmb6aoo3si"
//! );
//! ```
#![deny(unsafe_code)] // two exceptions, both behind runtime detection: the GFNI kernel in `gfni`, SHA-NI in `sha_ni`
#![warn(missing_docs)]

pub mod block;
pub mod car;
pub mod cbor;
pub mod cursor;
pub mod dag;
pub mod dagpb;
pub mod erasure;
pub mod gather;
mod gfni;
pub mod hamt;
pub mod importer;
pub mod manifest;
pub mod profile;
pub mod rendezvous;
mod sha_ni;
pub mod span;
pub mod testgen;
pub mod unixfs;
pub mod varint;

pub use block::{Block, CidError, HashAlg, MAX_BLOCK_SIZE};
pub use cid::Cid;
