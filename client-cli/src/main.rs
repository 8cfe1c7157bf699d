//! `cairn`: publish, fetch, verify and repair datasets in a local Cairn repo.

mod bench;
mod demo;
mod devnet;
mod node_api;
mod placement;
mod progress;
mod proofs;
mod remote;
mod tier_demo;

use anyhow::{bail, Context, Result};
use cairn_core::block::parse_cid;
use cairn_core::dag::Kind;
use cairn_core::profile::Profile;
use cairn_repo::ingest::{self, Target};
use cairn_repo::Repo;
use cid::Cid;
use clap::{Parser, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Cairn: content-addressed, erasure-coded storage for AI datasets.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    /// Repo directory (embedded node; no daemon needed).
    #[arg(long, global = true, env = "CAIRN_REPO")]
    repo: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    /// A node's HTTP API (`host:port`): `put`, `rm`, `stat`, `verify`, `repair` and `pin`
    /// go through that node; `get`, `cat`, `ls` and `car export` fetch from the network it
    /// belongs to; `gc` and `car import` are local-only and refuse it. Without it, the
    /// embedded repo is used.
    #[arg(long, global = true, env = "CAIRN_API")]
    api: Option<String>,
    /// Token for the node API's write calls (the node repo's `api.token`).
    #[arg(long, global = true, env = "CAIRN_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// `cairn audit`.
#[derive(Subcommand)]
enum AuditCmd {
    /// Fetch the node's (`--api`) hash-chained audit log and re-verify it end to end: the chain,
    /// every auditor signature, every sector's seal proof and every window proof. Exit 0 when
    /// it verifies, 1 when it does not.
    Verify,
}

#[derive(Subcommand)]
enum Cmd {
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
enum PinCmd {
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
enum CarCmd {
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

/// Keeps the import pipeline's 1 MiB chunk buffers in the heap once freed instead of returning
/// them to the kernel: glibc otherwise serves each one with a fresh mmap, and `perf` showed the
/// kernel zeroing those pages at 44% of import CPU. The trim threshold bounds what an idle heap
/// keeps (the import RSS budget is 128 MiB).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

fn main() -> ExitCode {
    tune_malloc();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CAIRN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// A command that refuses `--api`.
fn local_only(what: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("`cairn {what}` is local-only ({why}); run it without --api / CAIRN_API")
}

/// Commands that go to a node when `--api` is set; `None` for those that need no repo
/// (`put --only-hash`, `proofs`, `placement`, `bench`, `devnet`, `demo`, `audit`).
fn run_api(cli: &Cli, api: &str) -> Result<Option<ExitCode>> {
    let token = cli.token.as_deref();
    let json = cli.json;
    match &cli.cmd {
        Cmd::Put {
            only_hash: true, ..
        } => return Ok(None),
        Cmd::Put {
            paths,
            profile,
            k,
            m,
            only_hash: false,
        } => {
            let choice = node_api::PutChoice {
                profile: profile.clone(),
                k: *k,
                m: *m,
            };
            for path in paths {
                let r = node_api::put(api, token, path, &choice)
                    .with_context(|| format!("adding {} through {api}", path.display()))?;
                if json {
                    println!(
                        "{}",
                        json!({"root": r["root"], "manifest": r["manifest"], "bytes": r["bytes"], "blocks": r["blocks"], "nodes": r["nodes"], "distributed": r["distributed"], "path": path.display().to_string()})
                    );
                } else {
                    println!("{}", r["root"].as_str().unwrap_or_default());
                    if r["distributed"] == false {
                        eprintln!("warning: fewer than k+m nodes reachable; the node keeps every shard and moves them onto distinct nodes as they join (each repair round)");
                    }
                }
            }
        }
        Cmd::Get { target: t, output } => {
            let (c, path) = target(t)?;
            let n = if path.is_empty() {
                node_api::get(api, &c, output, json)?
            } else {
                let r = remote::Remote::open(api, &c)?;
                let sub = r.resolve(&path);
                let n = sub.and_then(|sub| r.get(&sub, output));
                r.close();
                n?
            };
            report_get(json, &c, output, n);
        }
        Cmd::Cat { target: t } => {
            let (c, path) = target(t)?;
            let r = remote::Remote::open(api, &c)?;
            let res = r.resolve(&path).and_then(|sub| {
                let stdout = std::io::stdout();
                let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                match r.cat(&sub, &mut w) {
                    Ok(_) => {}
                    Err(cairn_core::dag::DagError::Output(e))
                        if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    Err(e) => return Err(e.into()),
                }
                let _ = w.flush();
                Ok(())
            });
            r.close();
            res?;
        }
        Cmd::Ls { target: t } => {
            let (c, path) = target(t)?;
            let r = remote::Remote::open(api, &c)?;
            let res = r.resolve(&path).and_then(|sub| {
                r.reader()
                    .list(&sub)
                    .with_context(|| format!("listing {sub}"))
            });
            r.close();
            for (name, cid, tsize) in res? {
                if json {
                    println!(
                        "{}",
                        json!({"name": name, "cid": cid.to_string(), "tsize": tsize})
                    );
                } else {
                    println!("{cid}\t{tsize}\t{name}");
                }
            }
        }
        Cmd::Stat { target: t } if t.trim_start_matches("/ipfs/").contains('/') => {
            let (c, path) = target(t)?;
            let r = remote::Remote::open(api, &c)?;
            let res = r.resolve(&path).and_then(|sub| {
                let node = r.reader().node(&sub)?;
                Ok((sub, node))
            });
            r.close();
            let (sub, node) = res?;
            let size = match &node {
                cairn_core::dag::Node::Raw(b) => b.len() as u64,
                cairn_core::dag::Node::File { size, .. } => *size,
                cairn_core::dag::Node::Symlink(t) => t.len() as u64,
                cairn_core::dag::Node::Directory(e) | cairn_core::dag::Node::Hamt(e) => {
                    e.iter().map(|x| x.2).sum()
                }
            };
            if json {
                println!(
                    "{}",
                    json!({"cid": sub.to_string(), "kind": kind_str(node.kind()), "size": size})
                );
            } else {
                println!("cid:     {sub}");
                println!("kind:    {}", kind_str(node.kind()));
                println!("size:    {size}");
            }
        }
        Cmd::Stat { target: t } => {
            let (c, _) = target(t)?;
            let pl = node_api::placement(api, &c)?;
            if json {
                println!("{pl}");
            } else {
                for (i, stripe) in pl.as_array().into_iter().flatten().enumerate() {
                    for s in stripe.as_array().into_iter().flatten() {
                        let h: Vec<&str> = s["holders"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str())
                            .collect();
                        println!(
                            "{i}\t{}\t{}",
                            s["cid"].as_str().unwrap_or_default(),
                            if h.is_empty() {
                                "LOST".to_string()
                            } else {
                                h.join(",")
                            }
                        );
                    }
                }
            }
        }
        Cmd::Rm { cid } => return remove_through(api, token, cid, json).map(Some),
        Cmd::Pin {
            cmd: PinCmd::Rm { cid },
        } => return remove_through(api, token, cid, json).map(Some),
        Cmd::Pin { cmd: PinCmd::Ls } => {
            for p in node_api::pins(api)?.as_array().into_iter().flatten() {
                if json {
                    println!("{}", json!({"cid": p["root"], "manifest": p["manifest"]}));
                } else {
                    println!("{}", p["root"].as_str().unwrap_or_default());
                }
            }
        }
        Cmd::Pin {
            cmd: PinCmd::Add { .. },
        } => {
            return Err(local_only(
                "pin add",
                "a node keeps what is put or pushed to it; publish with `cairn put --api`",
            ))
        }
        Cmd::Verify => {
            let r = node_api::scrub(api, token)?;
            let corrupt: Vec<&str> = r["corrupt_blocks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .collect();
            if json {
                println!(
                    "{}",
                    json!({"checked": r["checked"], "bytes": r["bytes"], "corrupt": corrupt, "missing": []})
                );
            } else {
                println!(
                    "checked {} blocks ({} bytes) on the node",
                    r["checked"], r["bytes"]
                );
                for c in &corrupt {
                    println!("corrupt {c}");
                }
            }
            if !corrupt.is_empty() {
                if !json {
                    eprintln!(
                        "error: {} corrupt block(s) on the node, quarantined; its repair rounds rebuild them (`cairn repair`)",
                        corrupt.len()
                    );
                }
                return Ok(Some(ExitCode::FAILURE));
            }
        }
        Cmd::Repair => {
            let r = node_api::repair(api, token)?;
            println!("{r}");
        }
        Cmd::Gc => {
            return Err(local_only(
                "gc",
                "a node frees a dataset's blocks when its publisher runs `cairn rm`",
            ))
        }
        Cmd::Car {
            cmd: CarCmd::Export { target: t, output },
        } => {
            let (c, path) = target(t)?;
            let r = remote::Remote::open(api, &c)?;
            let res = r.resolve(&path).and_then(|sub| {
                write_atomically(output, |w| r.car_export(&sub, w)).map(|n| (sub, n))
            });
            r.close();
            let (sub, n) = res?;
            report_car_export(json, &sub, n, output);
        }
        Cmd::Car {
            cmd: CarCmd::Import { .. },
        } => return Err(local_only(
            "car import",
            "import the CAR locally, then publish the tree with `cairn get` and `cairn put --api`",
        )),
        _ => return Ok(None),
    }
    Ok(Some(ExitCode::SUCCESS))
}

/// `cairn rm` / `cairn pin rm` through a node.
fn remove_through(api: &str, token: Option<&str>, cid: &str, json: bool) -> Result<ExitCode> {
    let c = parse_cid(cid)?;
    let r = node_api::remove(api, token, &c).with_context(|| format!("removing {c}"))?;
    let failed: Vec<&str> = r["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect();
    let from = r["removed_from"].as_array().map_or(0, |a| a.len());
    if json {
        println!("{r}");
    } else {
        println!("removed {c} from {from} node(s)");
        for f in &failed {
            eprintln!("warning: not removed on {f}");
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes `output` through `output.partial`, renamed into place once `write` succeeded.
fn write_atomically(
    output: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let n = match write(&mut w) {
        Ok(n) => n,
        Err(e) => {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    w.flush()
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("writing {}", output.display()))?;
    Ok(n)
}

/// What `car export` prints.
fn report_car_export(json: bool, c: &Cid, n: u64, output: &Path) {
    if json {
        println!(
            "{}",
            json!({"root": c.to_string(), "blocks": n, "output": output.display().to_string()})
        );
    } else {
        eprintln!("exported {n} blocks to {}", output.display());
    }
}

/// What `get` prints: a JSON line, or one line on stderr.
fn report_get(json: bool, c: &Cid, output: &Path, n: u64) {
    if json {
        println!(
            "{}",
            json!({"cid": c.to_string(), "output": output.display().to_string(), "bytes": n})
        );
    } else {
        eprintln!("wrote {} ({n} bytes)", output.display());
    }
}

fn repo_path(cli: &Cli) -> Result<PathBuf> {
    if let Some(p) = &cli.repo {
        return Ok(p.clone());
    }
    let home = std::env::var_os("HOME").context("neither --repo, CAIRN_REPO nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cairn"))
}

fn open(cli: &Cli) -> Result<Repo> {
    let p = repo_path(cli)?;
    Repo::open(&p).with_context(|| format!("opening repo {}", p.display()))
}

/// Splits `cid[/path]` (also accepting a leading `/ipfs/`).
fn target(s: &str) -> Result<(Cid, String)> {
    let s = s.strip_prefix("/ipfs/").unwrap_or(s);
    let (c, p) = s.split_once('/').unwrap_or((s, ""));
    Ok((parse_cid(c)?, p.to_string()))
}

fn tree_size(p: &Path) -> u64 {
    fn walk(p: &Path, depth: usize) -> u64 {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if m.is_dir() && depth < 64 {
            std::fs::read_dir(p)
                .map(|d| d.flatten().map(|e| walk(&e.path(), depth + 1)).sum())
                .unwrap_or(0)
        } else if m.is_file() {
            m.len()
        } else {
            0
        }
    }
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => m.len(),
        _ => walk(p, 0),
    }
}

fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Directory => "directory",
        Kind::Symlink => "symlink",
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.json;
    if let Some(api) = &cli.api {
        if let Some(code) = run_api(&cli, api)? {
            return Ok(code);
        }
    }
    match &cli.cmd {
        Cmd::Put {
            paths,
            profile,
            k,
            m,
            only_hash,
        } => {
            let mut p = Profile::by_name(profile.as_deref().unwrap_or("cairn-v1"))?;
            if k.is_some() || m.is_some() {
                p = p.clone().with_stripe(k.unwrap_or(p.k), m.unwrap_or(p.m))?;
            }
            let repo = if *only_hash { None } else { Some(open(&cli)?) };
            for path in paths {
                let pb = progress::bar(tree_size(path), "importing");
                let progress = |n: u64| pb.inc(n);
                let r = match &repo {
                    Some(repo) => repo.put(path, &p, &progress).map_err(anyhow::Error::from),
                    None => ingest::ingest(path, &p, Target::HashOnly, &progress)
                        .map_err(anyhow::Error::from),
                }
                .with_context(|| format!("adding {}", path.display()))?;
                pb.finish_and_clear();
                if json {
                    println!(
                        "{}",
                        json!({"root": r.root.to_string(), "manifest": r.manifest.to_string(), "bytes": r.bytes, "blocks": r.blocks, "path": path.display().to_string()})
                    );
                } else {
                    println!("{}", r.root);
                }
            }
        }
        Cmd::Get { target: t, output } => {
            let repo = open(&cli)?;
            let (c, path) = target(t)?;
            let c = repo.resolve(&c, &path)?;
            let n = repo.get(&c, output)?;
            report_get(json, &c, output, n);
        }
        Cmd::Cat { target: t } => {
            let repo = open(&cli)?;
            let (c, path) = target(t)?;
            let c = repo.resolve(&c, &path)?;
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            match repo.cat(&c, &mut w) {
                Ok(_) => {}
                Err(cairn_repo::RepoError::Dag(cairn_core::dag::DagError::Output(e)))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    return Ok(ExitCode::SUCCESS)
                }
                Err(e) => return Err(e.into()),
            }
            let _ = w.flush();
        }
        Cmd::Ls { target: t } => {
            let repo = open(&cli)?;
            let (c, path) = target(t)?;
            let c = repo.resolve(&c, &path)?;
            for e in repo.ls(&c)? {
                if json {
                    println!(
                        "{}",
                        json!({"name": e.name, "cid": e.cid.to_string(), "tsize": e.tsize})
                    );
                } else {
                    println!("{}\t{}\t{}", e.cid, e.tsize, e.name);
                }
            }
        }
        Cmd::Stat { target: t } => {
            let repo = open(&cli)?;
            let (c, path) = target(t)?;
            let c = repo.resolve(&c, &path)?;
            let s = repo.stat(&c)?;
            let m = s.manifest.as_ref();
            if json {
                println!(
                    "{}",
                    json!({"cid": s.cid.to_string(), "kind": kind_str(s.kind), "size": s.size, "pinned": s.pinned,
                           "profile": m.map(|m| m.profile.clone()), "k": m.map(|m| m.k), "m": m.map(|m| m.m),
                           "blocks": m.map(|m| m.blocks), "bytes": m.map(|m| m.bytes)})
                );
            } else {
                println!("cid:     {}", s.cid);
                println!("kind:    {}", kind_str(s.kind));
                println!("size:    {}", s.size);
                println!("pinned:  {}", s.pinned);
                if let Some(m) = m {
                    println!("profile: {} (RS k={} m={})", m.profile, m.k, m.m);
                    println!(
                        "blocks:  {} in {} manifest page(s)",
                        m.blocks,
                        m.pages.len()
                    );
                }
            }
        }
        Cmd::Verify => {
            let repo = open(&cli)?;
            let pb = progress::spinner("verifying");
            let r = repo.scrub(&|n| pb.inc(n))?;
            pb.finish_and_clear();
            if json {
                println!(
                    "{}",
                    json!({"checked": r.checked, "bytes": r.bytes,
                           "corrupt": r.corrupt.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                           "missing": r.missing.iter().map(|c| c.to_string()).collect::<Vec<_>>()})
                );
            } else {
                println!("checked {} blocks ({} bytes)", r.checked, r.bytes);
                for c in &r.corrupt {
                    println!("corrupt {c}");
                }
                for c in &r.missing {
                    println!("missing {c}");
                }
            }
            if !r.corrupt.is_empty() || !r.missing.is_empty() {
                if !json {
                    eprintln!(
                        "error: {} corrupt and {} missing block(s); run `cairn repair`",
                        r.corrupt.len(),
                        r.missing.len()
                    );
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Repair => {
            let repo = open(&cli)?;
            let r = repo.repair(&|_| {})?;
            if json {
                println!(
                    "{}",
                    json!({"stripes": r.stripes, "repaired": r.repaired.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                           "unrepairable": r.unrepairable.iter().map(|(c, why)| json!({"stripe": c.to_string(), "reason": why})).collect::<Vec<_>>()})
                );
            } else {
                println!(
                    "checked {} stripes, rebuilt {} block(s)",
                    r.stripes,
                    r.repaired.len()
                );
                for c in &r.repaired {
                    println!("rebuilt {c}");
                }
                for (c, why) in &r.unrepairable {
                    println!("unrepairable stripe starting {c}: {why}");
                }
            }
            if !r.unrepairable.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Pin { cmd } => {
            let repo = open(&cli)?;
            match cmd {
                PinCmd::Ls => {
                    for c in repo.pin_ls()? {
                        if json {
                            println!("{}", json!({"cid": c.to_string()}));
                        } else {
                            println!("{c}");
                        }
                    }
                }
                PinCmd::Add { cid } => {
                    let c = parse_cid(cid)?;
                    repo.pin_add(&c)?;
                    if json {
                        println!("{}", json!({"pinned": c.to_string()}));
                    } else {
                        println!("pinned {c}");
                    }
                }
                PinCmd::Rm { cid } => {
                    let c = parse_cid(cid)?;
                    if !repo.pin_rm(&c)? {
                        bail!("{c} is not pinned");
                    }
                    if json {
                        println!("{}", json!({"unpinned": c.to_string()}));
                    } else {
                        println!("unpinned {c}");
                    }
                }
            }
        }
        Cmd::Rm { cid } => {
            let repo = open(&cli)?;
            let c = parse_cid(cid)?;
            let r = repo.remove(&c)?;
            if json {
                println!(
                    "{}",
                    json!({"removed": c.to_string(), "blocks": r.removed, "bytes": r.bytes})
                );
            } else {
                println!(
                    "removed {c} ({} block(s), {} bytes freed)",
                    r.removed, r.bytes
                );
            }
        }
        Cmd::Gc => {
            let repo = open(&cli)?;
            let r = repo.gc()?;
            if json {
                println!(
                    "{}",
                    json!({"removed": r.removed, "bytes": r.bytes, "kept": r.kept})
                );
            } else {
                println!(
                    "removed {} block(s), {} bytes; kept {}",
                    r.removed, r.bytes, r.kept
                );
            }
        }
        Cmd::Car { cmd } => {
            let repo = open(&cli)?;
            match cmd {
                CarCmd::Export { target: t, output } => {
                    let (c, path) = target(t)?;
                    let c = repo.resolve(&c, &path)?;
                    let n = write_atomically(output, |w| Ok(repo.car_export(&c, w)?))?;
                    report_car_export(json, &c, n, output);
                }
                CarCmd::Import { file } => {
                    let f = std::fs::File::open(file)
                        .with_context(|| format!("opening {}", file.display()))?;
                    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
                    let (roots, n) = repo
                        .car_import(&mut r, &Profile::cairn_v1())
                        .with_context(|| format!("importing {}", file.display()))?;
                    if json {
                        println!(
                            "{}",
                            json!({"roots": roots.iter().map(|c| c.to_string()).collect::<Vec<_>>(), "blocks": n})
                        );
                    } else {
                        for r in &roots {
                            println!("{r}");
                        }
                        eprintln!("imported {n} blocks");
                    }
                }
            }
        }
        Cmd::Devnet { cmd } => match cmd {
            devnet::DevnetCmd::Up {
                nodes,
                dir,
                no_proofs,
                slow,
            } => {
                let d = devnet::devnet_up(*nodes, dir, !*no_proofs, slow)?;
                if json {
                    println!("{}", serde_json::to_string(&d)?);
                } else {
                    for (i, n) in d.nodes.iter().enumerate() {
                        println!("node-{i}\t{}\t{}\tpid {}", n.api, n.peer_id, n.pid);
                    }
                    if d.window_secs > 0 {
                        eprintln!(
                            "proof windows of {} s (one window proof took {:.2} s here)",
                            d.window_secs, d.prove_secs
                        );
                    }
                    eprintln!("wrote {}", dir.join("devnet.json").display());
                }
            }
            devnet::DevnetCmd::Down { dir } => {
                let n = devnet::devnet_down(dir)?;
                eprintln!("stopped {n} nodes");
            }
        },
        Cmd::Demo { dir } => demo::demo(dir)?,
        Cmd::Audit {
            cmd: AuditCmd::Verify,
        } => {
            let api = cli
                .api
                .clone()
                .context("give the node's API address with --api or CAIRN_API")?;
            return node_api::audit_verify(&api, json);
        }
        Cmd::Proofs { cmd } => return proofs::run(cmd),
        Cmd::Bench { cmd } => bench::run(cmd, json)?,
        Cmd::Placement { cmd } => placement::run_cmd(cmd, json)?,
    }
    Ok(ExitCode::SUCCESS)
}
