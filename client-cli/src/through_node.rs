//! `cairn` with `--api`: each command goes through the node, or refuses with one line saying
//! it is local-only.

use crate::cli::{CarCmd, Cli, Cmd, PinCmd};
use crate::output::{kind_str, report_car_export, report_get, target, write_atomically};
use crate::{node_api, remote};
use anyhow::{Context, Result};
use cairn_core::block::parse_cid;
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;

/// A command that refuses `--api`.
pub(crate) fn local_only(what: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("`cairn {what}` is local-only ({why}); run it without --api / CAIRN_API")
}

/// Commands that go to a node when `--api` is set; `None` for those that need no repo
/// (`put --only-hash`, `proofs`, `placement`, `bench`, `devnet`, `demo`, `audit`); `serve`
/// refuses it.
pub(crate) fn run_api(cli: &Cli, api: &str) -> Result<Option<ExitCode>> {
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
                        json!({"root": r.root, "manifest": r.manifest, "bytes": r.bytes, "blocks": r.blocks, "nodes": r.nodes, "distributed": r.distributed, "path": path.display().to_string()})
                    );
                } else {
                    println!("{}", r.root);
                    if !r.distributed {
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
                println!("{}", serde_json::to_value(&pl)?);
            } else {
                for (i, stripe) in pl.iter().enumerate() {
                    for s in stripe {
                        println!(
                            "{i}\t{}\t{}",
                            s.cid,
                            if s.holders.is_empty() {
                                "LOST".to_string()
                            } else {
                                s.holders.join(",")
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
            for p in node_api::pins(api)? {
                if json {
                    println!("{}", json!({"cid": p.root, "manifest": p.manifest}));
                } else {
                    println!("{}", p.root);
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
            println!("{}", serde_json::to_value(&r)?);
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
        Cmd::Serve { .. } => {
            return Err(local_only(
                "serve",
                "it serves the embedded repo; a node serves its own gateway, its address is `gateway` in the node's /api/v0/status",
            ))
        }
        _ => return Ok(None),
    }
    Ok(Some(ExitCode::SUCCESS))
}

/// `cairn rm` / `cairn pin rm` through a node.
pub(crate) fn remove_through(
    api: &str,
    token: Option<&str>,
    cid: &str,
    json: bool,
) -> Result<ExitCode> {
    let c = parse_cid(cid)?;
    let r = node_api::remove(api, token, &c).with_context(|| format!("removing {c}"))?;
    if json {
        println!("{}", serde_json::to_value(&r)?);
    } else {
        println!("removed {c} from {} node(s)", r.removed_from.len());
        for f in &r.failed {
            eprintln!("warning: not removed on {f}");
        }
    }
    Ok(if r.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
