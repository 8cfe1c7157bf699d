//! # cairn-storage-node
//!
//! A Cairn storage node: the [`node::Node`] daemon on the embedded repo ([`cairn_repo`]):
//! placement of shards over distinct peers, serving, announcing, scrub, repair and rebalancing;
//! its HTTP [`api`]; an IPFS HTTP [`gateway`]; [`proving`] (sealing, window proofs, audits and
//! the audit log); and the fast tier ([`heat`], [`tier`]). The `cairn-node` binary is a thin
//! wrapper around it.
//!
//! ```
//! use cairn_storage_node::config::NodeConfig;
//!
//! // `cairn-node init` writes this file; `cairn-node run` starts a node from it
//! let config = NodeConfig::default();
//! assert!(config.to_toml().contains("[proofs]"));
//! ```
#![warn(missing_docs)]

pub mod api;
pub mod config;
mod error;
pub mod gateway;
pub mod heat;
pub mod node;
mod plan;
pub mod proving;
pub mod tier;
