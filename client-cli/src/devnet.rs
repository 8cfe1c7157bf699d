//! `cairn devnet`: a local network of `cairn-node` processes on loopback.

use crate::node_api::api_get_json;
use anyhow::{anyhow, bail, Context, Result};
use cairn_storage_node::api::Ready;
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `cairn devnet` subcommands.
#[derive(Subcommand)]
pub enum DevnetCmd {
    /// Start N local nodes as separate processes on loopback.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Directory for the nodes' repos and devnet.json.
        #[arg(long, default_value = "devnet")]
        dir: PathBuf,
        /// Run the nodes without proofs of storage (no sealing, proving or audits).
        #[arg(long)]
        no_proofs: bool,
        /// Nodes (by index, comma-separated) that emulate slow media: each block they serve
        /// is delayed by 40 ms, and their peers measure them as slow.
        #[arg(long, value_delimiter = ',')]
        slow: Vec<usize>,
    },
    /// Stop the nodes listed in DIR/devnet.json.
    Down {
        /// Devnet directory.
        #[arg(long, default_value = "devnet")]
        dir: PathBuf,
    },
}

/// One node of a devnet, as written to `devnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevnetNode {
    /// Process id.
    pub pid: u32,
    /// API address (`host:port`).
    pub api: String,
    /// Peer id.
    pub peer_id: String,
    /// Repo path.
    pub repo: PathBuf,
    /// libp2p addresses.
    pub addrs: Vec<String>,
    /// The node's IPFS gateway, a base URL (`http://127.0.0.1:PORT`); `None` when it serves
    /// none.
    #[serde(default)]
    pub gateway: Option<String>,
}

/// `devnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Devnet {
    /// The nodes.
    pub nodes: Vec<DevnetNode>,
    /// Seconds per proof window ([`devnet_window_secs`]; 0 without proofs).
    #[serde(default)]
    pub window_secs: u64,
    /// Seconds one window proof took on this machine when the devnet started (0 without proofs).
    #[serde(default)]
    pub prove_secs: f64,
}

pub(crate) fn node_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let p = me.with_file_name("cairn-node");
    if !p.exists() {
        bail!(
            "{} not found; build it with `cargo build --release -p cairn-storage-node`",
            p.display()
        );
    }
    Ok(p)
}

/// The shortest proof window of devnet nodes, in seconds (short, so a demo sees several).
pub const DEVNET_WINDOW_SECS: u64 = 20;
/// The longest proof window [`devnet_window_secs`] picks, in seconds.
pub const DEVNET_MAX_WINDOW_SECS: u64 = 600;

/// The proof window of a devnet of `nodes` nodes on one machine, given one window proof
/// measured here (`prove`). Every node audits a peer once per window, so in the worst case all
/// of them prove at once on the shared cores and each proof takes about `nodes` times as long;
/// the auditor's deadline ([`answer_deadline`], 0.45 of a window) must cover twice that.
///
/// [`answer_deadline`]: cairn_storage_node::proving::answer_deadline
pub fn devnet_window_secs(prove: Duration, nodes: usize) -> u64 {
    let need = 2.0 * nodes.max(1) as f64 * prove.as_secs_f64() / 0.45;
    (need.ceil() as u64).clamp(DEVNET_WINDOW_SECS, DEVNET_MAX_WINDOW_SECS)
}

/// Times one window proof with the devnet's parameters on this machine: seals a sector of
/// seeded data and proves a batch over it, the work a node does for each audit.
fn measure_window_proof(
    params: &cairn_proofs::audit::NetParams,
    post: &cairn_proofs::keys::Keys,
) -> Result<Duration> {
    let sp = params.sector();
    let data = cairn_core::testgen::Gen::bytes(0x5eed_0c0de, sp.capacity());
    let node = cairn_proofs::audit::node_id(b"devnet-measure");
    let sealed = cairn_proofs::sdr::seal(&sp, &data, &node, 0, &[7; 32])
        .map_err(|e| anyhow!("sealing the measuring sector: {e}"))?;
    let batch: Vec<(u64, &cairn_proofs::sdr::Sealed)> =
        (0..params.batch as u64).map(|i| (i, &sealed)).collect();
    let t = std::time::Instant::now();
    cairn_proofs::audit::prove_window(params, post, &[1; 32], 1, &batch)
        .map_err(|e| anyhow!("timing a window proof: {e}"))?;
    Ok(t.elapsed())
}
/// Placement windows of devnet nodes, in seconds (a promoted shard unread for one window is
/// demoted).
pub const DEVNET_PLACEMENT_SECS: u64 = 5;
/// Delay per block served by a devnet node that emulates slow media.
pub const DEVNET_SLOW_MS: u64 = 40;

fn start_node(
    bin: &Path,
    repo: &Path,
    bootstrap: Option<&str>,
    proofs: bool,
    window_secs: u64,
    slow: bool,
    tweak: &dyn Fn(&mut cairn_storage_node::config::NodeConfig),
) -> Result<DevnetNode> {
    let mut init = Command::new(bin);
    init.arg("init")
        .arg("--repo")
        .arg(repo)
        .args(["--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args([
            "--capacity",
            &(16u64 << 30).to_string(),
            "--repair-interval",
            "10",
        ]);
    if let Some(b) = bootstrap {
        init.args(["--bootstrap", b]);
    }
    let o = init.output().context("running cairn-node init")?;
    if !o.status.success() {
        bail!(
            "cairn-node init failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let cfg_path = repo.join("config.toml");
    let mut cfg = cairn_storage_node::config::NodeConfig::load(&cfg_path)?;
    cfg.proofs.enabled = proofs;
    cfg.proofs.window_secs = window_secs;
    cfg.proofs.seal_interval_secs = 2;
    // demo-sized sectors, sealed as soon as data is stored (a network's default is 64 MiB
    // sectors, and data waits up to an hour to fill one)
    cfg.proofs.sector_size = 256 << 10;
    cfg.proofs.seal_wait_secs = 0;
    // a development network: the deterministic keys (anyone could forge proofs under them)
    cfg.proofs.dev = true;
    cfg.proofs.keys_dir = cairn_storage_node::config::default_keys_dir();
    cfg.placement.window_secs = DEVNET_PLACEMENT_SECS;
    cfg.placement.idle_windows = 1;
    cfg.placement.emulated_read_delay_ms = if slow { DEVNET_SLOW_MS } else { 0 };
    tweak(&mut cfg);
    cfg.save(&cfg_path)?;
    run_node(bin, repo)
}

/// Starts `cairn-node run` on an initialised repo and waits for its ready line.
pub fn run_node(bin: &Path, repo: &Path) -> Result<DevnetNode> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(repo.join("node.log"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--config")
        .arg(repo.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0); // outlive `cairn devnet up`, and not get its terminal's ^C
    }
    let mut child = cmd.spawn().context("starting cairn-node run")?;
    let pid = child.id();
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| anyhow::anyhow!("node in {} did not become ready", repo.display()))?;
    let ready: Ready = serde_json::from_str(line.trim()).with_context(|| {
        format!(
            "node in {} failed to start; see {}",
            repo.display(),
            repo.join("node.log").display()
        )
    })?;
    Ok(DevnetNode {
        pid,
        api: ready.api,
        peer_id: ready.peer_id,
        repo: repo.to_path_buf(),
        addrs: ready.addrs,
        gateway: ready.gateway,
    })
}

/// Starts `n` nodes under `dir` and writes `dir/devnet.json`; the nodes listed in `slow`
/// emulate slow media.
pub fn devnet_up(n: usize, dir: &Path, proofs: bool, slow: &[usize]) -> Result<Devnet> {
    devnet_up_with(n, dir, proofs, slow, &|_, _| {})
}

/// [`devnet_up`], with `tweak(i, config)` applied to node `i`'s configuration before it
/// starts (benchmarks set placement options this way).
pub fn devnet_up_with(
    n: usize,
    dir: &Path,
    proofs: bool,
    slow: &[usize],
    tweak: &dyn Fn(usize, &mut cairn_storage_node::config::NodeConfig),
) -> Result<Devnet> {
    if n == 0 {
        bail!("a devnet needs at least one node");
    }
    if let Some(i) = slow.iter().find(|i| **i >= n) {
        bail!("--slow {i}: the devnet has nodes 0 to {}", n - 1);
    }
    if dir.join("devnet.json").exists() {
        bail!(
            "{} exists; run `cairn devnet down --dir {}` first",
            dir.join("devnet.json").display(),
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let bin = node_binary()?;
    let (mut window, mut prove_secs) = (0, 0.0);
    if proofs {
        // one deterministic development setup, shared by every node (the first run takes a
        // while; the keys are cached by digest)
        let keys = cairn_storage_node::config::default_keys_dir();
        let params = cairn_storage_node::config::ProofsConfig::default().params();
        params.seal_keys(&keys)?;
        let post = params.post_keys(&keys)?;
        let prove = measure_window_proof(&params, &post)?;
        window = devnet_window_secs(prove, n);
        prove_secs = prove.as_secs_f64();
    }
    let mut nodes: Vec<DevnetNode> = Vec::new();
    let write = |nodes: &[DevnetNode]| -> Result<()> {
        let d = Devnet {
            nodes: nodes.to_vec(),
            window_secs: window,
            prove_secs,
        };
        std::fs::write(dir.join("devnet.json"), serde_json::to_vec_pretty(&d)?)?;
        Ok(())
    };
    for i in 0..n {
        let repo = dir.join(format!("node-{i}"));
        let boot = nodes.first().and_then(|f| f.addrs.first().cloned());
        match start_node(
            &bin,
            &repo,
            boot.as_deref(),
            proofs,
            window,
            slow.contains(&i),
            &|c| tweak(i, c),
        ) {
            Ok(node) => {
                nodes.push(node);
                write(&nodes)?;
            }
            Err(e) => {
                let _ = devnet_down(&dir);
                return Err(e);
            }
        }
    }
    // wait until every node is connected to every other (they find each other through the
    // first node and the DHT), so placement sees the whole network
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut formed = true;
        for node in &nodes {
            let st = api_get_json(&node.api, "/api/v0/status")?;
            formed &= st["peers"].as_u64().unwrap_or(0) as usize >= n - 1;
        }
        if formed {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("nodes did not all connect within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Devnet {
        nodes,
        window_secs: window,
        prove_secs,
    })
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Stops one process with SIGTERM, waits (up to 30 s) for it to exit, then kills it.
pub fn stop(pid: u32) {
    // SAFETY: sends SIGTERM to a pid we started
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alive(pid) && std::time::Instant::now() < deadline {
        // reap it if it is our child, so it does not linger as a zombie
        // SAFETY: waitpid with WNOHANG on a pid; harmless if it is not our child
        unsafe {
            libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive(pid) {
        kill(pid);
    }
}

/// Kills a process at once (SIGKILL), as a crash would.
pub fn kill(pid: u32) {
    // SAFETY: sends SIGKILL to a pid we started, then reaps it
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
        libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
    }
}

/// Stops the nodes of `dir/devnet.json` and removes the file.
pub fn devnet_down(dir: &Path) -> Result<usize> {
    let p = dir.join("devnet.json");
    let d: Devnet = serde_json::from_slice(
        &std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
    )
    .with_context(|| format!("parsing {}", p.display()))?;
    let mut n = 0;
    for node in &d.nodes {
        if alive(node.pid) {
            stop(node.pid);
            n += 1;
        }
    }
    std::fs::remove_file(&p)?;
    Ok(n)
}

pub(crate) fn token_of(node: &DevnetNode) -> Result<String> {
    Ok(std::fs::read_to_string(node.repo.join("api.token"))?
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnet_windows_cover_every_node_proving_at_once_twice() {
        // (one proof in seconds, nodes, window in seconds)
        let table = [
            (0.1, 6, DEVNET_WINDOW_SECS),  // fast machine: the shortest window
            (0.75, 6, DEVNET_WINDOW_SECS), // 2 * 6 * 0.75 / 0.45 = 20
            (1.3, 6, 35),                  // 34.7, rounded up
            (1.3, 1, DEVNET_WINDOW_SECS),
            (2.0, 6, 54),                 // 53.3
            (1.0, 0, DEVNET_WINDOW_SECS), // no nodes counts as one
            (60.0, 6, DEVNET_MAX_WINDOW_SECS),
        ];
        for (prove, nodes, want) in table {
            let w = devnet_window_secs(Duration::from_secs_f64(prove), nodes);
            assert_eq!(w, want, "prove {prove} s, {nodes} nodes");
            if w < DEVNET_MAX_WINDOW_SECS {
                let deadline = cairn_storage_node::proving::answer_deadline(Duration::from_secs(w));
                assert!(deadline.as_secs_f64() >= 2.0 * nodes.max(1) as f64 * prove - 1e-9);
            }
        }
    }
}
