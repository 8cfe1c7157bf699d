//! `cairn`: publish, fetch, verify and repair datasets in a local Cairn repo.

mod bench;
mod ceremony;
mod cli;
mod demo;
mod devnet;
mod node_api;
mod output;
mod placement;
mod progress;
mod proofs;
mod remote;
mod serve;
mod through_node;
mod tier_demo;

use crate::cli::{AuditCmd, CarCmd, Cli, Cmd, PinCmd};
use crate::output::{kind_str, report_car_export, report_get, target, write_atomically};
use crate::through_node::run_api;
use anyhow::{bail, Context, Result};
use cairn_core::block::parse_cid;
use cairn_core::profile::Profile;
use cairn_repo::ingest::{self, Source};
use cairn_repo::Repo;
use clap::Parser;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Keeps the import pipeline's 1 MiB chunk buffers in the heap once freed instead of returning
/// them to the kernel: glibc otherwise serves each one with a fresh mmap, and `perf` showed the
/// kernel zeroing those pages at 44% of import CPU. The trim threshold bounds what an idle heap
/// keeps (the import RSS budget is 128 MiB).
///
/// `cairn serve` is tuned the other way: blocks are read, sent and freed by many threads at
/// once, and with glibc's default of one heap (arena) per thread up to 8 per core, each
/// keeping 1 MiB blocks it freed, 64 clients streaming took its RSS to 255 MiB (budget 256;
/// `cairn bench gateway`). Two arenas keep it at 143-163 MiB at the same throughput; freeing
/// blocks straight to the kernel (mmap threshold 256 KiB) kept it at 90 MiB but took 2.5x
/// the time.
fn tune_malloc(serving: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread starts.
    unsafe {
        if serving {
            libc::mallopt(libc::M_ARENA_MAX, SERVE_ARENAS);
        } else {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = serving;
}

/// malloc arenas of `cairn serve` (see [`tune_malloc`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SERVE_ARENAS: i32 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tune_malloc(matches!(cli.cmd, Cmd::Serve { .. }));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("CAIRN_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
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
                // --only-hash computes the content's CIDs: no parity, so no manifest
                let (root, manifest, bytes, blocks) = match &repo {
                    Some(repo) => {
                        let r = repo
                            .put(path, &p, &progress)
                            .with_context(|| format!("adding {}", path.display()))?;
                        (r.root, Some(r.manifest.to_string()), r.bytes, r.blocks)
                    }
                    None => {
                        let r = ingest::content_root(Source::Path(path), &p, &progress)
                            .with_context(|| format!("hashing {}", path.display()))?;
                        (r.root, None, r.bytes, r.blocks)
                    }
                };
                pb.finish_and_clear();
                if json {
                    println!(
                        "{}",
                        json!({"root": root.to_string(), "manifest": manifest, "bytes": bytes, "blocks": blocks, "path": path.display().to_string()})
                    );
                } else {
                    println!("{root}");
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
                        println!(
                            "node-{i}\t{}\t{}\tpid {}\tgateway {}",
                            n.api,
                            n.peer_id,
                            n.pid,
                            n.gateway.as_deref().unwrap_or("off")
                        );
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
        Cmd::Serve { listen } => serve::serve(open(&cli)?, listen, json)?,
        Cmd::Demo { dir } => demo::demo(dir)?,
        Cmd::Audit {
            cmd: AuditCmd::Verify { keys },
        } => {
            let api = cli
                .api
                .clone()
                .context("give the node's API address with --api or CAIRN_API")?;
            return node_api::audit_verify(&api, keys, json);
        }
        Cmd::Proofs { cmd } => return proofs::run(cmd),
        Cmd::Ceremony { cmd } => return ceremony::run(cmd),
        Cmd::Bench { cmd } => bench::run(cmd, json)?,
        Cmd::Placement { cmd } => placement::run_cmd(cmd, json)?,
    }
    Ok(ExitCode::SUCCESS)
}
