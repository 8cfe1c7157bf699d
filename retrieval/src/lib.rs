//! # cairn-retrieval
//!
//! The client SDK: give it a root CID and it resolves the manifest from the DHT, asks storage
//! nodes which shards they hold, fetches blocks from several providers in parallel, verifies
//! every block against its CID before use, and decodes stripes from parity when shards are
//! missing, slow or wrong. Downloads keep their blocks in a cache directory, so a killed
//! download resumes. [`dataset::Dataset`] streams a dataset's files to a training loop, each
//! readable as a byte range or a [`reader::FileReader`] (`AsyncRead` + `AsyncSeek`) in
//! memory bounded independently of the files' sizes.
//!
//! ```no_run
//! # async fn demo(root: cairn_core::Cid) -> Result<(), Box<dyn std::error::Error>> {
//! use cairn_net::{start, NetConfig, NoService};
//! use cairn_retrieval::{Client, Options};
//! use std::sync::Arc;
//!
//! let config = NetConfig {
//!     bootstrap: vec!["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...".parse()?],
//!     server: false,
//!     ..NetConfig::default()
//! };
//! let key = cairn_net::Keypair::generate_ed25519();
//! let (net, _events) = start(key, config, Arc::new(NoService)).await?;
//! let client = Client::new(net, Options::default());
//! let bytes = client.get(&root, std::path::Path::new("dataset")).await?;
//! println!("{bytes} bytes");
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod client;
pub mod dataset;
pub mod error;
pub mod layout;
pub mod lru;
pub mod reader;
mod report;
pub mod resolve;

pub use client::{Client, Options, Progress, Resolved, RetrievalError};
