//! The `cairn` command line: every subcommand, flag and its help text.

use crate::{bench, ceremony, devnet, placement, proofs};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Cairn: content-addressed, erasure-coded storage for AI datasets.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
pub(crate) struct Cli {
    /// Repo directory (embedded node; no daemon needed).
    #[arg(long, global = true, env = "CAIRN_REPO")]
    pub(crate) repo: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// A node's HTTP API (`host:port`): `put`, `rm`, `stat`, `verify`, `repair` and `pin`
    /// go through that node; `get`, `cat`, `ls` and `car export` fetch from the network it
    /// belongs to; `gc` and `car import` are local-only and refuse it. Without it, the
    /// embedded repo is used.
    #[arg(long, global = true, env = "CAIRN_API")]
    pub(crate) api: Option<String>,
    /// Token for the node API's write calls (the node repo's `api.token`).
    #[arg(long, global = true, env = "CAIRN_API_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

/// `cairn audit`.
#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// Fetch the node's (`--api`) hash-chained audit log and re-verify it end to end: the chain,
    /// every auditor signature, every sector's seal proof and every window proof. Exit 0 when
    /// it verifies, 1 when it does not. A node on pinned keys needs them here (`--keys`).
    Verify {
        #[command(flatten)]
        keys: proofs::KeyArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Import files or directories; prints each path's root CID.
    Put {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Import profile: cairn-v1 (default), unixfs-v1-2025, kubo-legacy (through --api:
        /// default the node's config).
        #[arg(long)]
        profile: Option<String>,
        /// Data shards per stripe (default: the profile's; through --api the node's config).
        #[arg(short)]
        k: Option<usize>,
        /// Parity shards per stripe (default: the profile's; through --api the node's config).
        #[arg(short)]
        m: Option<usize>,
        /// Compute CIDs without storing anything (always local: it needs no node).
        #[arg(long)]
        only_hash: bool,
    },
    /// Remove a dataset: unpin it and free its blocks. Through --api, the node that published
    /// it (its token) takes it off the network: every live holder frees its shards.
    Rm {
        /// Root CID.
        cid: String,
    },
    /// Write a file or directory tree to disk.
    Get {
        /// CID, optionally followed by /path.
        target: String,
        /// Output path (must not exist).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print a file's bytes.
    Cat {
        /// CID, optionally followed by /path.
        target: String,
    },
    /// List a directory.
    Ls {
        /// CID, optionally followed by /path.
        target: String,
    },
    /// Show size, kind, manifest and pin state.
    Stat {
        /// CID, optionally followed by /path.
        target: String,
    },
    /// Scrub: verify every block and find missing ones. Exits 1 if anything is wrong.
    Verify,
    /// Rebuild missing or corrupt blocks from parity.
    Repair,
    /// Manage pins.
    Pin {
        #[command(subcommand)]
        cmd: PinCmd,
    },
    /// Remove blocks no pin needs.
    Gc,
    /// CAR v1 export and import.
    Car {
        #[command(subcommand)]
        cmd: CarCmd,
    },
    /// Serve the repo as an IPFS HTTP gateway (`/ipfs/<cid>[/path]`: files, ranges and
    /// listings; raw blocks and CARs for verifying clients; docs/gateway.md) until Ctrl-C or
    /// SIGTERM. Prints `gateway listening on http://ADDR` once listening. The repo stays open
    /// (locked) meanwhile. A node serves its own gateway (its config's `gateway`).
    Serve {
        /// Listen address (port 0 picks a free port; the line printed has the bound one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Placement: evaluate fast-tier policies on access traces.
    Placement {
        #[command(subcommand)]
        cmd: placement::PlacementCmd,
    },
    /// Proofs of storage: seal a sector, prove a window, verify (exit 0 valid, 1 invalid,
    /// 2 malformed input).
    Proofs {
        #[command(subcommand)]
        cmd: proofs::ProofsCmd,
    },
    /// The multi-party setup of a network's proof keys: new, contribute, phase2, verify (exit
    /// 0 valid, 1 invalid), finalize.
    Ceremony {
        #[command(subcommand)]
        cmd: ceremony::CeremonyCmd,
    },
    /// A local network of storage nodes, one process each.
    Devnet {
        #[command(subcommand)]
        cmd: devnet::DevnetCmd,
    },
    /// Proof audits.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// The walk-through: 6-node devnet, publish a sample dataset, kill 2 nodes, fetch and
    /// check every byte, show where shards live, clean up.
    Demo {
        /// Working directory (must not exist; removed after a successful run).
        #[arg(long, default_value = "cairn-demo")]
        dir: PathBuf,
    },
    /// Benchmarks, printed as ratios against baselines measured in the same run.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
}

#[derive(Subcommand)]
pub(crate) enum PinCmd {
    /// List pinned roots.
    Ls,
    /// Pin a root (its DAG must be present).
    Add {
        /// Root CID.
        cid: String,
    },
    /// Unpin a root (through --api: the same as `cairn rm`).
    Rm {
        /// Root CID.
        cid: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum CarCmd {
    /// Export the DAG under a CID.
    Export {
        /// Root CID (optionally /path).
        target: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Import a CAR file (every block verified), pin and erasure-code its roots.
    Import {
        /// CAR file.
        file: PathBuf,
    },
}
