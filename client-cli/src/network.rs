//! `cairn` against a network: `put`/`stat`/`repair` through a node's HTTP API, `get` through
//! the retrieval client, and the local devnet and demo.

use anyhow::{anyhow, bail, Context, Result};
use cairn_core::Cid;
use cairn_net::{Multiaddr, NetConfig, NoService};
use cairn_retrieval::{Client, Options, Progress};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
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

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn url(api: &str, path: &str) -> String {
    let base = api.trim_end_matches('/');
    if base.starts_with("http://") || base.starts_with("https://") {
        format!("{base}{path}")
    } else {
        format!("http://{base}{path}")
    }
}

fn read_json(mut resp: ureq::http::Response<ureq::Body>, what: &str) -> Result<Value> {
    let status = resp.status();
    let v: Value = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_json()
        .with_context(|| format!("{what}: the node's answer is not JSON (HTTP {status})"))?;
    if !status.is_success() {
        let msg = v
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no reason given");
        bail!("{what}: the node said {status}: {msg}");
    }
    Ok(v)
}

pub(crate) fn api_get_json(api: &str, path: &str) -> Result<Value> {
    let r = agent()
        .get(url(api, path))
        .call()
        .with_context(|| format!("cannot reach the node API at {api}"))?;
    read_json(r, path)
}

pub(crate) fn api_post_json(api: &str, token: Option<&str>, path: &str) -> Result<Value> {
    let mut req = agent().post(url(api, path));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let r = req
        .send_empty()
        .with_context(|| format!("cannot reach the node API at {api}"))?;
    read_json(r, path)
}

/// `cairn audit verify`: fetches a node's whole audit log and re-verifies it end to end with
/// this machine's keys (chain, signatures, seal proofs, window proofs). Exit 0 when it
/// verifies, 1 when it does not.
pub fn audit_verify(api: &str, json: bool) -> Result<std::process::ExitCode> {
    use cairn_proofs::audit::{verify_log, LogEntry, NetParams};
    let st = api_get_json(api, "/api/v0/proofs")?;
    let p = &st["params"];
    let num = |i: usize| {
        p[i].as_u64()
            .map(|x| x as usize)
            .context("the node's proof parameters are malformed")
    };
    let params = NetParams {
        sector_size: num(0)?,
        layers: num(1)?,
        challenges: num(2)?,
        batch: num(3)?,
        seal_challenges: cairn_storage_node::config::ProofsConfig::default()
            .params()
            .seal_challenges,
    };
    params
        .check()
        .map_err(|e| anyhow::anyhow!("the node's proof parameters: {e}"))?;
    let mut entries = Vec::new();
    loop {
        let page = api_get_json(api, &format!("/api/v0/audit/log?from={}", entries.len()))?;
        let list = page["entries"].as_array().cloned().unwrap_or_default();
        let n = list.len();
        for e in list {
            let bytes = e["entry"]
                .as_str()
                .and_then(cairn_proofs::audit::from_hex)
                .context("a log entry is not hex")?;
            entries.push(
                LogEntry::decode(&bytes)
                    .map_err(|err| anyhow::anyhow!("log entry {}: {err}", entries.len()))?,
            );
        }
        if n < cairn_storage_node::proving::LOG_PAGE {
            break;
        }
    }
    let keys = cairn_storage_node::config::default_keys_dir();
    let seal = params.seal_keys(&keys)?;
    let post = params.post_keys(&keys)?;
    let r = verify_log(
        &entries,
        &params,
        &seal,
        &post,
        &cairn_net::identity::verify_signature,
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "entries": r.entries, "sectors": r.sectors, "passes": r.passes,
                "fails_rechecked": r.fails_rechecked, "unverifiable_claims": r.claims,
                "problems": r.problems, "ok": r.problems.is_empty(),
            })
        );
    } else {
        println!(
            "{} entries: {} sector seal proofs verified, {} passing window proofs verified, {} failed proofs re-checked invalid, {} signed fail/miss claims (no proof to re-check)",
            r.entries, r.sectors, r.passes, r.fails_rechecked, r.claims
        );
        for prob in &r.problems {
            println!("problem: {prob}");
        }
        println!(
            "{}",
            if r.problems.is_empty() {
                "the audit log verifies"
            } else {
                "the audit log does NOT verify"
            }
        );
    }
    Ok(if r.problems.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

/// `cairn put --api`: uploads a file (or a tar of a directory) to the node, which imports and
/// places it. Returns the node's report.
pub fn put(api: &str, token: Option<&str>, path: &Path, choice: &PutChoice) -> Result<Value> {
    // check the token before uploading: the node refuses a bad one without reading the body
    let mut check = agent().get(url(api, "/api/v0/auth"));
    if let Some(t) = token {
        check = check.header("Authorization", &format!("Bearer {t}"));
    }
    let r = check
        .call()
        .with_context(|| format!("cannot reach the node API at {api}"))?;
    read_json(r, "put").context("set --token or CAIRN_API_TOKEN to the node repo's api.token")?;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mut body = if meta.is_dir() {
        let mut f = tempfile::tempfile().context("creating a temporary tar file")?;
        {
            let mut b = tar::Builder::new(&mut f);
            b.follow_symlinks(false);
            b.append_dir_all(".", path)
                .with_context(|| format!("packing {}", path.display()))?;
            b.finish()?;
        }
        use std::io::Seek;
        f.rewind()?;
        f
    } else {
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?
    };
    let mut q: Vec<String> = Vec::new();
    if meta.is_dir() {
        q.push("tar=true".into());
    }
    if let Some(p) = &choice.profile {
        q.push(format!("profile={p}"));
    }
    if let Some(k) = choice.k {
        q.push(format!("k={k}"));
    }
    if let Some(m) = choice.m {
        q.push(format!("m={m}"));
    }
    let q = if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    };
    let mut req = agent().post(url(api, &format!("/api/v0/put{q}")));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let r = req
        .send(ureq::SendBody::from_reader(&mut body))
        .with_context(|| format!("cannot reach the node API at {api}"))?;
    read_json(r, "put")
}

/// A publisher's choices for `put --api` (`None`: the node's config).
#[derive(Debug, Clone, Default)]
pub struct PutChoice {
    /// Import profile name.
    pub profile: Option<String>,
    /// Data shards per stripe.
    pub k: Option<usize>,
    /// Parity shards per stripe.
    pub m: Option<usize>,
}

/// `cairn rm --api`: the node (which must have published `root`) takes the dataset off the
/// network.
pub fn remove(api: &str, token: Option<&str>, root: &Cid) -> Result<Value> {
    api_post_json(api, token, &format!("/api/v0/rm/{root}"))
}

/// The roots the node keeps.
pub fn pins(api: &str) -> Result<Value> {
    api_get_json(api, "/api/v0/pins")
}

/// A scrub of the node's own blocks.
pub fn scrub(api: &str, token: Option<&str>) -> Result<Value> {
    api_post_json(api, token, "/api/v0/scrub")
}

/// Where each shard of `root` lives, from the node's point of view.
pub fn placement(api: &str, root: &Cid) -> Result<Value> {
    api_get_json(api, &format!("/api/v0/placement/{root}"))
}

/// One repair round on the node.
pub fn repair(api: &str, token: Option<&str>) -> Result<Value> {
    api_post_json(api, token, "/api/v0/repair")
}

/// Bootstrap addresses of the node behind `api`.
pub(crate) fn bootstrap_of(api: &str) -> Result<Vec<Multiaddr>> {
    let id = api_get_json(api, "/api/v0/id")?;
    let addrs = id["addrs"]
        .as_array()
        .context("the node's /api/v0/id has no addrs")?;
    addrs
        .iter()
        .filter_map(|a| a.as_str())
        .map(|a| {
            a.parse::<Multiaddr>()
                .with_context(|| format!("bad address {a}"))
        })
        .collect()
}

/// A client's network handle (it stores nothing), connected to `bootstrap`.
pub(crate) async fn client_net(bootstrap: &[Multiaddr]) -> Result<cairn_net::NetClient> {
    let key = cairn_net::Keypair::generate_ed25519();
    let cfg = NetConfig {
        bootstrap: bootstrap.to_vec(),
        server: false,
        ..NetConfig::default()
    };
    let (net, _events) = cairn_net::start(key, cfg, Arc::new(NoService)).await?;
    for a in bootstrap {
        net.dial(a.clone())
            .await
            .with_context(|| format!("dialing {a}"))?;
    }
    Ok(net)
}

/// `cairn get --api`: fetches `root` from the network (bootstrapping from the node behind
/// `api`) into `out`, with a progress bar. Returns the bytes written.
pub fn get(api: &str, root: &Cid, out: &Path, json: bool) -> Result<u64> {
    let bootstrap = bootstrap_of(api)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let net = client_net(&bootstrap).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let client = Client::new(net.clone(), Options::default()).with_progress(tx);
        let pb = crate::bar(0, "fetching");
        let watcher = tokio::spawn(async move {
            let (mut failed, mut rebuilt) = (0u64, 0u64);
            while let Some(p) = rx.recv().await {
                match p {
                    Progress::Resolved { bytes, .. } => pb.set_length(bytes),
                    Progress::Fetched { bytes, .. } => pb.inc(bytes),
                    Progress::ProviderFailed { .. } => failed += 1,
                    Progress::Reconstructed { shards, .. } => rebuilt += shards as u64,
                    _ => {}
                }
            }
            pb.finish_and_clear();
            (failed, rebuilt)
        });
        let r = client.get(root, out).await;
        drop(client);
        let (failed, rebuilt) = watcher.await.unwrap_or_default();
        net.shutdown().await;
        let n = r.with_context(|| format!("fetching {root}"))?;
        if !json && (failed > 0 || rebuilt > 0) {
            eprintln!("{failed} provider failures; {rebuilt} shards decoded from parity");
        }
        Ok(n)
    })
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
) -> Result<DevnetNode> {
    let mut init = Command::new(bin);
    init.arg("init")
        .arg("--repo")
        .arg(repo)
        .args(["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"])
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
    cfg.proofs.keys_dir = cairn_storage_node::config::default_keys_dir();
    cfg.placement.window_secs = DEVNET_PLACEMENT_SECS;
    cfg.placement.idle_windows = 1;
    cfg.placement.emulated_read_delay_ms = if slow { DEVNET_SLOW_MS } else { 0 };
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
    let ready: Value = serde_json::from_str(line.trim()).with_context(|| {
        format!(
            "node in {} failed to start; see {}",
            repo.display(),
            repo.join("node.log").display()
        )
    })?;
    Ok(DevnetNode {
        pid,
        api: ready["api"].as_str().unwrap_or_default().to_string(),
        peer_id: ready["peer_id"].as_str().unwrap_or_default().to_string(),
        repo: repo.to_path_buf(),
        addrs: ready["addrs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Starts `n` nodes under `dir` and writes `dir/devnet.json`; the nodes listed in `slow`
/// emulate slow media.
pub fn devnet_up(n: usize, dir: &Path, proofs: bool, slow: &[usize]) -> Result<Devnet> {
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
    let net = devnet_up(6, &dir.join("devnet"), true, &crate::tier_demo::SLOW)?;
    for (i, n) in net.nodes.iter().enumerate() {
        println!("   node-{i}  api {}  peer {}", n.api, n.peer_id);
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
    crate::bench::sample_dataset(&data, 4, 192 << 10, 7)?;
    let entry = &net.nodes[0];
    println!("== publishing through node-0 (RS 4+2 over 6 distinct nodes)");
    let rep = put(
        &entry.api,
        Some(&token_of(entry)?),
        &data,
        &PutChoice::default(),
    )?;
    let root: Cid = cairn_core::block::parse_cid(rep["root"].as_str().unwrap_or_default())?;
    println!(
        "   root {root}\n   {} bytes, {} blocks, {} stripes, spread over {} nodes",
        rep["bytes"], rep["blocks"], rep["stripes"], rep["nodes"]
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

    if Some(bytes) != rep["bytes"].as_u64() {
        bail!(
            "fetched {bytes} file bytes, the put reported {}",
            rep["bytes"]
        );
    }
    let mut a = Vec::new();
    files_under(&data, &data, &mut a)?;
    a.sort();
    let mut b = Vec::new();
    files_under(&out, &out, &mut b)?;
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
    for (si, stripe) in pl.as_array().into_iter().flatten().enumerate().take(4) {
        let cells: Vec<String> = stripe
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let h: Vec<String> = s["holders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str().and_then(|p| names.get(p).cloned()))
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
            let used = api_get_json(&n.api, "/api/v0/status")?["used"]
                .as_u64()
                .unwrap_or(0);
            let sealed = st["sealed_bytes"].as_u64().unwrap_or(0);
            // `used` counts shards; sealed bytes also count manifest copies
            if st["sectors"].as_u64().unwrap_or(0) > 0 && sealed >= used {
                println!(
                    "   {}: {} sectors, {} bytes sealed",
                    name(&n.peer_id),
                    st["sectors"],
                    sealed
                );
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("{} did not seal its {used} bytes in time", name(&n.peer_id));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let audit = |auditor: &DevnetNode, prover: &DevnetNode| -> Result<Value> {
        let path = format!("/api/v0/audit?peer={}", prover.peer_id);
        let mut v = api_post_json(&auditor.api, Some(&token_of(auditor)?), &path)?;
        // a window the prover missed (no answer in time: six nodes share two cores) is not a
        // verdict on its data; the demo asks again with a fresh nonce, and says so
        for _ in 0..2 {
            if v["audit"]["verdict"] != "missed" {
                break;
            }
            println!(
                "   ({} missed a window: {}; auditing again)",
                name(&prover.peer_id),
                v["audit"]["reason"].as_str().unwrap_or("")
            );
            v = api_post_json(&auditor.api, Some(&token_of(auditor)?), &path)?;
        }
        let a = &v["audit"];
        println!(
            "   {} audits {}: window {}, fresh nonce, {}{}",
            name(&auditor.peer_id),
            name(&prover.peer_id),
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
    // the restarted node listens on a new port; it joins through its bootstrap peer
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while api_get_json(&auditor.api, "/api/v0/status")?["peers"]
        .as_u64()
        .unwrap_or(0)
        < live.len() as u64 - 1
        || api_get_json(&restarted.api, "/api/v0/status")?["peers"]
            .as_u64()
            .unwrap_or(0)
            == 0
    {
        if std::time::Instant::now() > deadline {
            bail!("the restarted node did not rejoin within 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let a = audit(auditor, &restarted)?;
    if a["verdict"] == "pass" {
        bail!("a node without its data passed an audit");
    }
    let st = api_get_json(&auditor.api, "/api/v0/proofs")?;
    let faulty: Vec<String> = st["faulty"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f[0].as_str().map(&name))
        .collect();
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
    let code = audit_verify(&auditor.api, false)?;
    if code != std::process::ExitCode::SUCCESS {
        bail!("the audit log does not verify");
    }
    Ok(())
}

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
            crate::bench::fill(1000 + i, &mut buf[..n]);
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
        let rep = put(
            &entry.api,
            Some(&token_of(entry)?),
            &file,
            &PutChoice::default(),
        )?;
        let root: Cid = cairn_core::block::parse_cid(rep["root"].as_str().unwrap_or_default())?;
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
        crate::bench::report(
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
            }),
            format!(
                "retrieval of {mib} MiB from a 6-node devnet vs sendme over loopback:\n  \
                 sendme {:.2} s\n  cairn, all 6 up: {:.2} s -> {r_all:.2}x sendme (target >= 1.0: {})\n  \
                 cairn, 2 of 6 killed ({rebuilt_shards} shards decoded from parity): {:.2} s -> {r_deg:.2}x sendme (target >= 0.7: {})\n  \
                 node peak RSS while serving: {:.0} MiB (target <= 256: {})\n  \
                 publishing node's peak RSS during the put (import + placement): {:.0} MiB",
                base_t.as_secs_f64(),
                all_t.as_secs_f64(),
                if r_all >= 1.0 { "PASS" } else { "MISS" },
                deg_t.as_secs_f64(),
                if r_deg >= 0.7 { "PASS" } else { "MISS" },
                rss as f64 / 1024.0,
                if rss <= 256 * 1024 { "PASS" } else { "MISS" },
                put_rss as f64 / 1024.0,
            ),
        );
        Ok(())
    })();
    let _ = devnet_down(&dn);
    result
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
