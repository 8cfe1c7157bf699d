//! `cairn demo`: a 6-node devnet publishes, serves, loses two nodes, proves storage, and
//! repairs around a wiped node.

use crate::devnet::{
    devnet_down, devnet_up_with, kill, node_binary, run_node, stop, token_of, Devnet, DevnetNode,
};
use crate::node_api::{
    api_get_json, api_post_json, audit_and_wait, audit_verify, get, placement, put, PutChoice,
};
use anyhow::{bail, Context, Result};
use cairn_core::Cid;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The devnet node that runs in replica-only storage mode (alive through the proofs part).
const REPLICA_ONLY: usize = 3;

/// `cairn demo`: a 6-node devnet, a sample dataset published through one node, 2 nodes
/// killed, the dataset fetched through the survivors and checked byte for byte.
pub fn demo(dir: &Path) -> Result<()> {
    if dir.exists() {
        bail!("{} exists; choose another --dir", dir.display());
    }
    std::fs::create_dir_all(dir)?;
    let result = demo_inner(dir);
    if dir.join("devnet/devnet.json").exists() {
        let _ = devnet_down(&dir.join("devnet"));
    }
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        eprintln!(
            "demo failed; node logs are in {}/devnet/node-*/node.log",
            dir.display()
        );
    }
    result
}

fn demo_inner(dir: &Path) -> Result<()> {
    println!("== starting a 6-node devnet (separate processes on loopback)");
    // node-3 keeps what it seals only in its replicas, and unseals a sector when it is read
    let net = devnet_up_with(
        6,
        &dir.join("devnet"),
        true,
        &crate::tier_demo::SLOW,
        &|i, c| {
            if i == REPLICA_ONLY {
                c.proofs.storage_mode = "replica-only".into();
            }
        },
    )?;
    for (i, n) in net.nodes.iter().enumerate() {
        let mode = if i == REPLICA_ONLY {
            "  (storage_mode = replica-only: sealed data kept only in replicas, unsealed on read)"
        } else {
            ""
        };
        println!("   node-{i}  api {}  peer {}{mode}", n.api, n.peer_id);
    }
    println!(
        "   one window proof took {:.2} s here; 6 nodes share this machine, so proof windows are {} s (auditors wait {:.0} s)",
        net.prove_secs,
        net.window_secs,
        cairn_storage_node::proving::answer_deadline(Duration::from_secs(net.window_secs))
            .as_secs_f64()
    );
    println!("== generating a sample AI dataset: 4 WebDataset tar shards of 192 KiB (small: every node seals what it stores)");
    let data = dir.join("dataset");
    crate::bench::data::sample_dataset(&data, 4, 192 << 10, 7)?;
    let entry = &net.nodes[0];
    println!("== publishing through node-0 (RS 4+2 over 6 distinct nodes)");
    let rep = put(
        &entry.api,
        Some(&token_of(entry)?),
        &data,
        &PutChoice::default(),
    )?;
    let root: Cid = cairn_core::block::parse_cid(&rep.root)?;
    println!(
        "   root {root}\n   {} bytes, {} blocks, {} stripes, spread over {} nodes",
        rep.bytes, rep.blocks, rep.stripes, rep.nodes
    );
    let names: std::collections::HashMap<String, String> = net
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.peer_id.clone(), format!("node-{i}")))
        .collect();
    crate::tier_demo::run(&net, &root, &data, &rep, &names)?;
    let killed = [&net.nodes[2], &net.nodes[4]];
    println!("== killing node-2 and node-4 (SIGKILL)");
    for n in killed {
        kill(n.pid);
    }
    let survivor = &net.nodes[1];
    println!("== fetching {root} through the survivors (bootstrap: node-1)");
    let out = dir.join("fetched");
    let t = std::time::Instant::now();
    let bytes = get(&survivor.api, &root, &out, false)?;
    println!("   {bytes} bytes in {:.2} s", t.elapsed().as_secs_f64());

    if bytes != rep.bytes {
        bail!("fetched {bytes} file bytes, the put reported {}", rep.bytes);
    }
    let mut a = Vec::new();
    crate::tier_demo::files_under(&data, &data, &mut a)?;
    a.sort();
    let mut b = Vec::new();
    crate::tier_demo::files_under(&out, &out, &mut b)?;
    b.sort();
    if a != b {
        bail!("fetched tree lists different files");
    }
    for f in &a {
        if std::fs::read(data.join(f))? != std::fs::read(out.join(f))? {
            bail!("{} differs", f.display());
        }
    }
    println!("== every byte of {} files matches", a.len());
    println!("== where the shards live now (asked node-1; down = holder killed, decoded from parity on read)");
    let pl = placement(&survivor.api, &root)?;
    for (si, stripe) in pl.iter().enumerate().take(4) {
        let cells: Vec<String> = stripe
            .iter()
            .map(|s| {
                let h: Vec<String> = s
                    .holders
                    .iter()
                    .filter_map(|p| names.get(p).cloned())
                    .collect();
                if h.is_empty() {
                    "down".into()
                } else {
                    h.join("+")
                }
            })
            .collect();
        println!("   stripe {si}: {}", cells.join("  "));
    }
    proofs_demo(dir, &net, &names)?;
    println!("== stopping the devnet");
    Ok(())
}

/// The proofs part of the demo: every live node has sealed what it stores and passes an audit;
/// a node whose data is deleted fails its next window, is marked faulty and repaired around;
/// the audit log re-verifies end to end.
fn proofs_demo(
    dir: &Path,
    net: &Devnet,
    names: &std::collections::HashMap<String, String>,
) -> Result<()> {
    let live: Vec<&DevnetNode> = net
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2 && *i != 4)
        .map(|(_, n)| n)
        .collect();
    let name = |p: &str| names.get(p).cloned().unwrap_or_else(|| p.to_string());
    println!("== proofs of storage: each node seals what it stores (SDR-lite, Groth16 seal proof)");
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    for n in &live {
        loop {
            let st = api_get_json(&n.api, "/api/v0/proofs")?;
            let used = api_get_json(&n.api, "/api/v0/status")?["blocks_bytes"]
                .as_u64()
                .unwrap_or(0);
            let sealed = st["sealed_bytes"].as_u64().unwrap_or(0);
            // `blocks_bytes` counts shards; sealed bytes also count manifest copies
            if st["sectors"].as_u64().unwrap_or(0) > 0 && sealed >= used {
                let disk = api_get_json(&n.api, "/api/v0/status")?["used"]
                    .as_u64()
                    .unwrap_or(0);
                println!(
                    "   {}: {} sectors, {} bytes sealed; {} bytes on disk, {} of them replicas{}",
                    name(&n.peer_id),
                    st["sectors"],
                    sealed,
                    disk,
                    st["replica_bytes"],
                    if n.peer_id == net.nodes[REPLICA_ONLY].peer_id {
                        " (replica-only: no plain copy)"
                    } else {
                        ""
                    }
                );
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("{} did not seal its {used} bytes in time", name(&n.peer_id));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // a prover's designated auditors this window, as node-0 sees them: only their verdicts
    // count, so the demo asks the primary when it is up
    let designated = |prover: &DevnetNode| -> Result<(Option<String>, Option<String>)> {
        let v = api_get_json(
            &live[0].api,
            &format!("/api/v0/audit/auditors?peer={}", prover.peer_id),
        )?;
        let id = |k: &str| v[k].as_str().map(str::to_string);
        Ok((id("primary"), id("confirmer")))
    };
    let is_live = |id: &Option<String>| {
        live.iter()
            .copied()
            .find(|n| Some(&n.peer_id) == id.as_ref())
    };
    let audit = |fallback: &DevnetNode, prover: &DevnetNode| -> Result<Value> {
        let auditor = is_live(&designated(prover)?.0).unwrap_or(fallback);
        let query = format!("peer={}", prover.peer_id);
        let mut v = audit_and_wait(&auditor.api, &token_of(auditor)?, &query)?;
        // a window the prover missed (no answer in time: six nodes share two cores) is not a
        // verdict on its data; the demo asks again with a fresh nonce, and says so
        // A prover that answered and declined for want of data (not for being busy) is not
        // asked again.
        for _ in 0..2 {
            let declined = v["audit"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("declined") && !r.contains("busy"));
            if v["audit"]["verdict"] != "missed" || declined {
                break;
            }
            println!(
                "   ({} missed a window: {}; auditing again)",
                name(&prover.peer_id),
                v["audit"]["reason"].as_str().unwrap_or("")
            );
            v = audit_and_wait(&auditor.api, &token_of(auditor)?, &query)?;
        }
        let a = &v["audit"];
        println!(
            "   {} audits {} ({} auditor): window {}, fresh nonce, {}{}",
            name(&auditor.peer_id),
            name(&prover.peer_id),
            a["role"].as_str().unwrap_or("?"),
            a["window"],
            a["verdict"].as_str().unwrap_or("none").to_uppercase(),
            match a["reason"].as_str() {
                Some(r) if !r.is_empty() => format!(" ({r})"),
                _ => String::new(),
            }
        );
        Ok(a.clone())
    };
    println!("== window proofs (PoSt, 10 challenges per sector, one Groth16 proof per batch), audited by peers");
    for (i, n) in live.iter().enumerate() {
        let auditor = live[(i + 1) % live.len()];
        let a = audit(auditor, n)?;
        if a["verdict"] != "pass" {
            bail!("{} failed an audit with its data intact", name(&n.peer_id));
        }
    }
    let victim = live[live.len() - 1];
    println!(
        "== deleting {}'s data (stop it, wipe its store, restart it with the same identity)",
        name(&victim.peer_id)
    );
    stop(victim.pid);
    std::fs::remove_dir_all(victim.repo.join("blocks"))
        .with_context(|| format!("wiping {}", victim.repo.display()))?;
    let restarted = run_node(&node_binary()?, &victim.repo)?;
    // record the new process, so `devnet down` (and the demo's cleanup) stops it
    let mut d = net.clone();
    for n in d.nodes.iter_mut() {
        if n.peer_id == restarted.peer_id {
            *n = restarted.clone();
        }
    }
    std::fs::write(
        dir.join("devnet/devnet.json"),
        serde_json::to_vec_pretty(&d)?,
    )?;
    let auditor = live[0];
    // the restarted node listens on a new port; it joins through its bootstrap peer. The audit
    // waits until it is connected to every live node: an auditor that still knows only its old
    // address (or a connection the old process left) would miss it instead of hearing its
    // signed refusal
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while api_get_json(&auditor.api, "/api/v0/status")?["peers"]
        .as_u64()
        .unwrap_or(0)
        < live.len() as u64 - 1
        || api_get_json(&restarted.api, "/api/v0/status")?["peers"]
            .as_u64()
            .unwrap_or(0)
            < live.len() as u64 - 1
    {
        if std::time::Instant::now() > deadline {
            bail!("the restarted node did not rejoin within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // its primary auditor audits it now (the background schedule would within a window); its
    // data gone, it answers with no proof: a miss, which counts once the window's confirming
    // auditor, told by gossip, misses it too. When either auditor is one of the stopped nodes,
    // the next window's auditors do it.
    let faulty_at = |n: &DevnetNode| -> Result<Vec<String>> {
        Ok(api_get_json(&n.api, "/api/v0/proofs")?["faulty"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f[0].as_str().map(str::to_string))
            .collect())
    };
    // audit it once now, whatever the background schedule already did: while it restarted,
    // its auditors may have missed it (a real miss: it was down), and the demo shows what a
    // node without its data answers when it is up: a signed refusal, no proof
    let mut asked_in = None;
    let (primary, confirmer) = designated(&restarted)?;
    if is_live(&primary).is_some() && is_live(&confirmer).is_some() {
        asked_in = api_get_json(&auditor.api, "/api/v0/proofs")?["window"].as_u64();
    }
    if audit(auditor, &restarted)?["verdict"] == "pass" {
        bail!("a node without its data passed an audit");
    }
    let waiting = std::time::Instant::now();
    let patience = Duration::from_secs(net.window_secs.max(1) * 8);
    while !faulty_at(auditor)?.contains(&restarted.peer_id) {
        if waiting.elapsed() > patience {
            bail!(
                "{} was not marked faulty within {} s",
                name(&restarted.peer_id),
                patience.as_secs()
            );
        }
        let window = api_get_json(&auditor.api, "/api/v0/proofs")?["window"].as_u64();
        let (primary, confirmer) = designated(&restarted)?;
        if asked_in != window {
            if let (Some(_), Some(_)) = (is_live(&primary), is_live(&confirmer)) {
                asked_in = window;
                let a = audit(auditor, &restarted)?;
                if a["verdict"] == "pass" {
                    bail!("a node without its data passed an audit");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let faulty: Vec<String> = faulty_at(auditor)?.iter().map(|p| name(p)).collect();
    println!(
        "   {} now counts as faulty: {}",
        name(&auditor.peer_id),
        faulty.join(", ")
    );
    let r = api_post_json(&auditor.api, Some(&token_of(auditor)?), "/api/v0/repair")?;
    println!(
        "   repair round on {}: {} stripes checked, {} shards rebuilt (a faulty node's shards no longer count){}",
        name(&auditor.peer_id),
        r["stripes"],
        r["rebuilt"],
        match r["failed"].as_array().map(Vec::len) {
            Some(n) if n > 0 => format!("; {n} stripes lack spare nodes (3 of 6 nodes are down or faulty)"),
            _ => String::new(),
        }
    );
    println!(
        "== {}'s hash-chained audit log (cairn-node audit log), last entries",
        name(&auditor.peer_id)
    );
    let log = Command::new(node_binary()?)
        .args(["audit", "log", "--config"])
        .arg(auditor.repo.join("config.toml"))
        .output()
        .context("running cairn-node audit log")?;
    if !log.status.success() {
        bail!(
            "cairn-node audit log failed: {}",
            String::from_utf8_lossy(&log.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&log.stdout);
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines[lines.len().saturating_sub(4)..] {
        println!("   {l}");
    }
    println!(
        "== re-verifying {}'s audit log end to end (cairn audit verify)",
        name(&auditor.peer_id)
    );
    let code = audit_verify(&auditor.api, &crate::proofs::KeyArgs::default(), false)?;
    if code != std::process::ExitCode::SUCCESS {
        bail!("the audit log does not verify");
    }
    Ok(())
}
