//! # cairn-storage-node
//!
//! A Cairn storage node's storage half: the [`store`] (RocksDB behind the [`store::BlockStore`]
//! trait, with an in-memory twin), [`ingest`] (streaming import into erasure-coded stripes) and
//! the embedded [`repo::Repo`] that `cairn` drives without a daemon; and its network half: the
//! [`node::Node`] daemon, its HTTP [`api`], and [`proving`] (sealing, window proofs, audits and
//! the audit log).
//!
//! ```
//! use cairn_core::profile::Profile;
//! use cairn_storage_node::repo::Repo;
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("hello.txt"), b"foo\n").unwrap();
//! let repo = Repo::in_memory();
//! let r = repo.put(&dir.path().join("hello.txt"), &Profile::cairn_v1(), &|_| {}).unwrap();
//! assert_eq!(r.root.to_string(), "bafkr4icj3sdq34o6p7lapfgoxtset5om3lsxll72uz5cjnrkzmb6aoo3si");
//! let mut out = Vec::new();
//! repo.cat(&r.root, &mut out).unwrap();
//! assert_eq!(out, b"foo\n");
//! ```
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod heat;
pub mod ingest;
pub mod node;
pub mod proving;
mod rebalance;
pub mod repo;
pub mod store;
pub mod tier;
