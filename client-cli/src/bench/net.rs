//! `cairn bench net`: retrieval from a 6-node devnet vs iroh's sendme over loopback.

use crate::devnet::{devnet_down, devnet_up, kill, token_of, DevnetNode};
use crate::node_api::{put, PutChoice};
use anyhow::{bail, Context, Result};
use cairn_core::Cid;
use cairn_net::{Multiaddr, NetConfig, NoService};
use cairn_retrieval::{Client, Options, Progress};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets a process's peak RSS (VmHWM) to its current RSS (Linux `clear_refs` value 5).
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), b"5");
}

fn file_hash(p: &Path) -> Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    let f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
    h.update_reader(f)
        .with_context(|| format!("reading {}", p.display()))?;
    Ok(h.finalize())
}

/// Times one `Client::get` through a fresh client that bootstraps from `entry`.
fn timed_get(entry: &DevnetNode, root: &Cid, out: &Path) -> Result<(Duration, u64, u64)> {
    let bootstrap: Vec<Multiaddr> = entry.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let cfg = NetConfig {
            bootstrap: bootstrap.clone(),
            server: false,
            ..NetConfig::default()
        };
        let (net, _ev) = cairn_net::start(
            cairn_net::Keypair::generate_ed25519(),
            cfg,
            Arc::new(NoService),
        )
        .await?;
        for a in &bootstrap {
            net.dial(a.clone()).await?;
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
        let counter = tokio::spawn(async move {
            let mut rebuilt = 0u64;
            while let Some(p) = rx.recv().await {
                if let Progress::Reconstructed { shards, .. } = p {
                    rebuilt += shards as u64;
                }
            }
            rebuilt
        });
        let client = Client::new(net.clone(), Options::default()).with_progress(tx);
        let t = std::time::Instant::now();
        let n = client.get(root, out).await?;
        let d = t.elapsed();
        drop(client);
        let rebuilt = counter.await.unwrap_or(0);
        net.shutdown().await;
        Ok((d, n, rebuilt))
    })
}

/// Runs sendme send/receive of `file` over loopback; returns the receive time.
fn sendme_once(sendme: &Path, file: &Path, work: &Path) -> Result<Duration> {
    let recv = work.join("sendme-recv");
    let _ = std::fs::remove_dir_all(&recv);
    std::fs::create_dir_all(&recv)?;
    let mut send = Command::new(sendme)
        .args([
            "send",
            "--relay",
            "disabled",
            "--ticket-type",
            "addresses",
            "--no-progress",
        ])
        .arg(file)
        .current_dir(work)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", sendme.display()))?;
    let stdout = send.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(t) = line.split_whitespace().find(|w| w.starts_with("blob")) {
                let _ = tx.send(t.to_string());
            }
        }
    });
    let ticket = rx
        .recv_timeout(Duration::from_secs(600))
        .map_err(|_| anyhow::anyhow!("sendme send printed no ticket"))?;
    let t = std::time::Instant::now();
    let st = Command::new(sendme)
        .args(["receive", "--relay", "disabled", "--no-progress"])
        .arg(&ticket)
        .current_dir(&recv)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let d = t.elapsed();
    let _ = send.kill();
    let _ = send.wait();
    if !st.success() {
        bail!("sendme receive failed ({st})");
    }
    let got = recv.join(file.file_name().context("file name")?);
    if file_hash(&got)? != file_hash(file)? {
        bail!("sendme delivered different bytes");
    }
    let _ = std::fs::remove_dir_all(&recv);
    Ok(d)
}

/// `cairn bench net`.
pub fn bench_net(mib: u64, dir: Option<&Path>, sendme: Option<&Path>, json: bool) -> Result<()> {
    let base = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("cairn-bench-net-")
        .tempdir_in(&base)?;
    let work = work.path();
    let file = work.join("dataset.bin");
    {
        let mut buf = vec![0u8; 8 << 20];
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let mut left = mib << 20;
        let mut i = 0;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            super::data::fill(1000 + i, &mut buf[..n]);
            std::io::Write::write_all(&mut f, &buf[..n])?;
            left -= n as u64;
            i += 1;
        }
        std::io::Write::flush(&mut f)?;
    }
    let want = file_hash(&file)?;
    let sendme = sendme
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("sendme"));
    eprintln!("sendme: {} MiB over loopback", mib);
    let base_t = (0..2)
        .map(|_| sendme_once(&sendme, &file, work))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .min()
        .context("no sendme runs")?;
    eprintln!("starting a 6-node devnet");
    let dn = work.join("devnet");
    // proofs off: sealing a GiB would compete with the transfer being measured
    let net = devnet_up(6, &dn, false, &[])?;
    let result = (|| -> Result<()> {
        let entry = &net.nodes[0];
        let put_t = std::time::Instant::now();
        let rep = put(
            &entry.api,
            Some(&token_of(entry)?),
            &file,
            &PutChoice::default(),
        )?;
        let put_t = put_t.elapsed();
        let root: Cid = cairn_core::block::parse_cid(&rep.root)?;
        // the publishing node's peak during import and placement, then peaks reset so the
        // figure below covers serving only
        let put_rss = vm_hwm_kib(entry.pid).unwrap_or(0);
        for n in &net.nodes {
            reset_peak(n.pid);
        }
        let mut ours = Vec::new();
        for i in 0..2 {
            let out = work.join(format!("all-{i}"));
            let (d, n, _) = timed_get(&net.nodes[1], &root, &out)?;
            anyhow::ensure!(
                n == mib << 20 && file_hash(&out)? == want,
                "wrong bytes fetched"
            );
            std::fs::remove_file(&out)?;
            ours.push(d);
        }
        let all_t = ours.into_iter().min().context("no runs")?;
        let mut rss = net
            .nodes
            .iter()
            .filter_map(|n| vm_hwm_kib(n.pid))
            .max()
            .unwrap_or(0);
        kill(net.nodes[2].pid);
        kill(net.nodes[4].pid);
        let mut degraded = Vec::new();
        let mut rebuilt_shards = 0;
        for i in 0..2 {
            let out = work.join(format!("degraded-{i}"));
            let (d, n, rebuilt) = timed_get(&net.nodes[1], &root, &out)?;
            anyhow::ensure!(
                n == mib << 20 && file_hash(&out)? == want,
                "wrong bytes fetched"
            );
            std::fs::remove_file(&out)?;
            degraded.push(d);
            rebuilt_shards = rebuilt;
        }
        let deg_t = degraded.into_iter().min().context("no runs")?;
        for (i, n) in net.nodes.iter().enumerate() {
            if i != 2 && i != 4 {
                rss = rss.max(vm_hwm_kib(n.pid).unwrap_or(0));
            }
        }
        let r_all = base_t.as_secs_f64() / all_t.as_secs_f64();
        let r_deg = base_t.as_secs_f64() / deg_t.as_secs_f64();
        super::report::report(
            json,
            "net",
            serde_json::json!({
                "mib": mib,
                "sendme_s": base_t.as_secs_f64(),
                "cairn_all_up_s": all_t.as_secs_f64(),
                "cairn_two_down_s": deg_t.as_secs_f64(),
                "ratio_all_up": r_all,
                "ratio_two_down": r_deg,
                "shards_decoded_from_parity": rebuilt_shards,
                "node_peak_rss_mib": rss as f64 / 1024.0,
                "publisher_peak_rss_during_put_mib": put_rss as f64 / 1024.0,
                "put_through_node_s": put_t.as_secs_f64(),
            }),
            format!(
                "retrieval of {mib} MiB from a 6-node devnet vs sendme over loopback:\n  \
                 sendme {:.2} s\n  cairn, all 6 up: {:.2} s -> {r_all:.2}x sendme (target >= 1.0: {})\n  \
                 cairn, 2 of 6 killed ({rebuilt_shards} shards decoded from parity): {:.2} s -> {r_deg:.2}x sendme (target >= 0.7: {})\n  \
                 node peak RSS while serving: {:.0} MiB (target <= 256: {})\n  \
                 publishing node's peak RSS during the put (import + placement): {:.0} MiB\n  \
                 the put itself (upload, import, placement over 6 nodes, commit): {:.2} s",
                base_t.as_secs_f64(),
                all_t.as_secs_f64(),
                if r_all >= 1.0 { "PASS" } else { "MISS" },
                deg_t.as_secs_f64(),
                if r_deg >= 0.7 { "PASS" } else { "MISS" },
                rss as f64 / 1024.0,
                if rss <= 256 * 1024 { "PASS" } else { "MISS" },
                put_rss as f64 / 1024.0,
                put_t.as_secs_f64(),
            ),
        );
        Ok(())
    })();
    let _ = devnet_down(&dn);
    result
}
