//! The fast-tier part of `cairn demo` (design §4): a shard that a training job reads often
//! from a slow node is promoted to a node its peers measured as fast, the job's reads then
//! come from there, and the copy is dropped once nobody reads it.

use crate::devnet::{node_binary, token_of, Devnet, DevnetNode};
use crate::node_api::{api_get_json, api_post_json, bootstrap_of, client_net};
use anyhow::{bail, Context, Result};
use cairn_core::block::{HashAlg, RAW};
use cairn_core::Cid;
use cairn_retrieval::client::Resolved;
use cairn_retrieval::{Client, Options, Progress};
use cairn_storage_node::api::types::PutReport;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Demo nodes that emulate slow media; node-1 and node-3 are the fast ones.
pub const SLOW: [usize; 4] = [0, 2, 4, 5];
/// Reads of the hot file before and after promotion.
const READS: usize = 4;

/// Reads shard `cid` once through `client`; returns how long it took and who served it.
async fn read_once(
    client: &Client,
    rx: &mut tokio::sync::mpsc::Receiver<Progress>,
    r: &Resolved,
    cid: &Cid,
) -> Result<(Duration, String)> {
    let &(si, pos) = r
        .position
        .get(cid)
        .context("the hot file's shard is not in the dataset")?;
    let t = Instant::now();
    client.obtain(r, si, &[pos]).await?;
    let dt = t.elapsed();
    let mut peer = String::from("?");
    while let Ok(p) = rx.try_recv() {
        if let Progress::Fetched {
            cid: c, peer: p, ..
        } = p
        {
            if c == *cid {
                peer = p.to_string();
            }
        }
    }
    Ok((dt, peer))
}

/// `n` timed reads of `cid`, each printed; the dataset is resolved again first, so promoted
/// copies are found.
async fn reads(
    client: &Client,
    rx: &mut tokio::sync::mpsc::Receiver<Progress>,
    root: &Cid,
    cid: &Cid,
    n: usize,
    name: &dyn Fn(&str) -> String,
) -> Result<Vec<(Duration, String)>> {
    let r = client.resolve(root).await?;
    let mut out = Vec::new();
    for i in 0..n {
        let (dt, peer) = read_once(client, rx, &r, cid).await?;
        println!(
            "   read {}: {:>6.1} ms, served by {}",
            i + 1,
            dt.as_secs_f64() * 1e3,
            name(&peer)
        );
        out.push((dt, peer));
    }
    Ok(out)
}

fn status(node: &DevnetNode) -> Result<Value> {
    api_get_json(&node.api, "/api/v0/placement/status?n=5")
}

/// Polls `node`'s placement status until `done` holds (windows also run on their timer).
fn wait_status(node: &DevnetNode, what: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let st = status(node)?;
        if done(&st) {
            return Ok(st);
        }
        if Instant::now() > deadline {
            bail!("{what} did not happen within 90 s: {st}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs the fast-tier demo on a fresh devnet holding `data` (published as `root`, with the
/// put report `rep`).
pub fn run(
    net: &Devnet,
    root: &Cid,
    data: &Path,
    rep: &PutReport,
    names: &HashMap<String, String>,
) -> Result<()> {
    let name = |p: &str| names.get(p).cloned().unwrap_or_else(|| p.to_string());
    println!(
        "== fast tier: node-1 and node-3 have fast media; node-0, node-2, node-4 and node-5 emulate slow disks (+{} ms per block served)",
        crate::devnet::DEVNET_SLOW_MS
    );
    println!(
        "   nodes measure each other (ping RTT, timed block fetches); none declares its speed"
    );
    // the hot file: one whose shard sits on a slow node (a file under one chunk is one raw
    // leaf, whose CID is the file's)
    let mut files = Vec::new();
    files_under(data, data, &mut files)?;
    // the largest files first: a training job's hot data is its tar shards
    let size = |f: &std::path::PathBuf| std::fs::metadata(data.join(f)).map_or(0, |m| m.len());
    files.sort_by_key(|f| (std::cmp::Reverse(size(f)), f.clone()));
    let holder_of = |cid: &Cid| -> Option<String> {
        rep.placement
            .iter()
            .flatten()
            .find(|s| s.cid == cid.to_string())
            .and_then(|s| s.holders.first().cloned())
    };
    let mut pick = None;
    for f in &files {
        let cid = HashAlg::Blake3.cid(RAW, &std::fs::read(data.join(f))?);
        if let Some(h) = holder_of(&cid) {
            if let Some(i) = net.nodes.iter().position(|n| n.peer_id == h) {
                if SLOW.contains(&i) {
                    pick = Some((f.clone(), cid, i));
                    break;
                }
            }
        }
    }
    let (file, cid, hi) = pick.context("no sample file has its shard on a slow node")?;
    let holder = &net.nodes[hi];
    println!(
        "== a training job reads {} (shard {}) again and again; it lives on node-{hi}",
        file.display(),
        short(&cid.to_string())
    );
    let bootstrap = bootstrap_of(&net.nodes[1].api)?;
    let rt = tokio::runtime::Runtime::new()?;
    let net_client = rt.block_on(client_net(&bootstrap))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let client = Client::new(net_client.clone(), Options::default()).with_progress(tx);
    let before = rt.block_on(reads(&client, &mut rx, root, &cid, READS, &name))?;

    println!("== node-{hi} runs a placement window (the engine on its reads, then moves; windows also run every {} s)", crate::devnet::DEVNET_PLACEMENT_SECS);
    let w = api_post_json(
        &holder.api,
        Some(&token_of(holder)?),
        "/api/v0/placement/run",
    )?;
    let fast: Vec<String> = w["fast_peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(name))
        .collect();
    println!(
        "   window {}: {} client reads; fast peers measured: {}; planned {} promotion(s), done {}",
        w["window"],
        w["reads"],
        if fast.is_empty() {
            "none yet".into()
        } else {
            fast.join(", ")
        },
        w["planned_promotions"].as_array().map_or(0, Vec::len),
        w["promoted"]
    );
    let key = cid.to_string();
    let st = wait_status(holder, "the promotion", |st| {
        st["promoted"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x["cid"] == key))
    })?;
    let to = st["promoted"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["cid"] == key)
        .and_then(|x| x["peer"].as_str())
        .unwrap_or_default()
        .to_string();
    println!("== node-{hi}'s placement status (cairn-node placement status), abridged");
    let out = Command::new(node_binary()?)
        .args(["placement", "status", "-n", "3", "--config"])
        .arg(holder.repo.join("config.toml"))
        .output()
        .context("running cairn-node placement status")?;
    if !out.status.success() {
        bail!(
            "cairn-node placement status failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    for (p, n) in names {
        text = text.replace(p.as_str(), n);
    }
    for l in text
        .lines()
        .filter(|l| !l.trim_start().starts_with("copies kept"))
    {
        println!("   {l}");
    }

    println!(
        "== the job reads {} again: it finds the promoted copy on {}",
        file.display(),
        name(&to)
    );
    let after = rt.block_on(reads(&client, &mut rx, root, &cid, READS, &name))?;
    if after.iter().any(|(_, p)| *p != to) {
        bail!("reads after the promotion did not come from the fast copy on {to}");
    }
    let med = |v: &[(Duration, String)]| {
        let mut d: Vec<f64> = v.iter().map(|x| x.0.as_secs_f64() * 1e3).collect();
        d.sort_by(f64::total_cmp);
        d[d.len() / 2]
    };
    println!(
        "   median read {:.1} ms from the slow holder, {:.1} ms from the fast copy",
        med(&before),
        med(&after)
    );
    println!("== the job stops reading it: after a window without reads node-{hi} demotes it (the fast copy is dropped; the erasure-coded shards never moved)");
    let st = wait_status(holder, "the demotion", |st| {
        st["moves"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x["kind"] == "demote" && x["cid"] == key))
    })?;
    for m in st["moves"].as_array().into_iter().flatten() {
        if m["cid"] == key {
            println!(
                "   window {:>2}: {} {} -> {} ({})",
                m["window"],
                m["kind"].as_str().unwrap_or("?"),
                short(&key),
                name(m["peer"].as_str().unwrap_or("?")),
                m["reason"].as_str().unwrap_or("")
            );
        }
    }
    let fast_node = net
        .nodes
        .iter()
        .find(|n| n.peer_id == to)
        .context("the fast peer is not in the devnet")?;
    let kept = status(fast_node)?["cached"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x["cid"] == key));
    if kept {
        bail!("{} still keeps the demoted copy", name(&to));
    }
    println!("   {} no longer keeps a copy", name(&to));
    rt.block_on(net_client.shutdown());
    Ok(())
}

fn short(s: &str) -> String {
    format!(
        "{}…{}",
        &s[..s.len().min(12)],
        &s[s.len().saturating_sub(6)..]
    )
}

pub(crate) fn files_under(p: &Path, base: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let path = e.path();
        if e.file_type()?.is_dir() {
            files_under(&path, base, out)?;
        } else {
            out.push(path.strip_prefix(base)?.to_path_buf());
        }
    }
    Ok(())
}
