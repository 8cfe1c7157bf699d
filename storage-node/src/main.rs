//! `cairn-node`: a Cairn storage node.

use anyhow::{Context, Result};
use cairn_storage_node::api::{self, IDENTITY_FILE};
use cairn_storage_node::config::{default_repo, NodeConfig};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cairn-node", version, about = "A Cairn storage node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a repo: config.toml, identity key and API token.
    Init {
        /// Repo directory.
        #[arg(long, env = "CAIRN_NODE_REPO")]
        repo: Option<PathBuf>,
        /// HTTP API address.
        #[arg(long)]
        api: Option<String>,
        /// IPFS HTTP gateway address (default 127.0.0.1:8080; port 0 picks a free one; "off"
        /// serves none).
        #[arg(long)]
        gateway: Option<String>,
        /// libp2p listen address (repeatable).
        #[arg(long)]
        listen: Vec<String>,
        /// Bootstrap peer multiaddr (repeatable).
        #[arg(long)]
        bootstrap: Vec<String>,
        /// Capacity in bytes.
        #[arg(long)]
        capacity: Option<u64>,
        /// Seconds between repair rounds.
        #[arg(long)]
        repair_interval: Option<u64>,
        /// The network's key directory (`cairn ceremony finalize`); needs `--keys-sha256`.
        #[arg(long, requires = "keys_sha256")]
        keys: Option<PathBuf>,
        /// The SHA-256 the network pins for the keys' manifest.
        #[arg(long, requires = "keys")]
        keys_sha256: Option<String>,
        /// Development keys instead: anyone can forge proofs under them (devnets, tests).
        #[arg(long, conflicts_with = "keys")]
        dev_keys: bool,
    },
    /// Run the node until SIGINT or SIGTERM.
    Run {
        /// Config file (default: <repo>/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Proof audits.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Placement.
    Placement {
        #[command(subcommand)]
        cmd: PlacementCmd,
    },
}

#[derive(Subcommand)]
enum PlacementCmd {
    /// The running node's fast tier: hot shards (read most here lately), peers' measured speeds,
    /// shards promoted to fast peers, copies kept here for peers, and planned and done moves.
    Status {
        /// Config file (default: <repo>/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Shards to list.
        #[arg(short, default_value_t = 20)]
        n: usize,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Print the hash-chained audit log: from the running node's API, or from the repo when
    /// the node is stopped.
    Log {
        /// Config file (default: <repo>/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// First position.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// One JSON object per entry.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the effective configuration.
    Show {
        /// Config file (default: <repo>/config.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load(config: Option<PathBuf>) -> Result<NodeConfig> {
    let p = config.unwrap_or_else(|| default_repo().join("config.toml"));
    if !p.exists() {
        anyhow::bail!(
            "{} does not exist; run `cairn-node init` first",
            p.display()
        );
    }
    Ok(NodeConfig::load(&p)?)
}

fn short(p: Option<&str>) -> String {
    let p = p.unwrap_or("?");
    if p.len() > 12 {
        format!("..{}", &p[p.len() - 8..])
    } else {
        p.to_string()
    }
}

/// The running node's API address: the bound one it recorded, else the configured one.
fn node_api(c: &NodeConfig) -> String {
    std::fs::read_to_string(c.repo.join(api::API_ADDR_FILE))
        .map(|a| a.trim().to_string())
        .unwrap_or_else(|_| c.api.clone())
}

/// The audit log entries as the API describes them: from the running node, else from the repo.
fn audit_entries(c: &NodeConfig, from: u64) -> Result<Vec<serde_json::Value>> {
    use cairn_storage_node::api::client::{get_json, url, ClientError};
    let mut out = Vec::new();
    loop {
        let (api, path) = (
            node_api(c),
            format!("/api/v0/audit/log?from={}", from + out.len() as u64),
        );
        let page = match get_json(&api, &path) {
            Ok(v) => v,
            // no node answers: read the log from its repo
            Err(ClientError::Unreachable { .. }) if out.is_empty() => {
                return audit_entries_offline(c, from)
            }
            Err(e) => anyhow::bail!("reading the audit log from {}: {e}", url(&api, &path)),
        };
        let page: Vec<serde_json::Value> = page["entries"].as_array().cloned().unwrap_or_default();
        let n = page.len();
        out.extend(page);
        if n < cairn_storage_node::proving::LOG_PAGE {
            return Ok(out);
        }
    }
}

fn audit_entries_offline(c: &NodeConfig, from: u64) -> Result<Vec<serde_json::Value>> {
    use cairn_repo::store::Table;
    let repo = cairn_repo::Repo::open(&c.repo).with_context(|| {
        format!(
            "the node's API at {} does not answer; opening the repo",
            c.api
        )
    })?;
    let mut out = Vec::new();
    for (_, v) in repo
        .store()
        .table_scan(Table::AuditLog)?
        .into_iter()
        .skip(from as usize)
    {
        let e =
            cairn_proofs::audit::LogEntry::decode(&v).context("a stored log entry is malformed")?;
        out.push(cairn_storage_node::proving::describe(&e));
    }
    Ok(out)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter({
            let mut f = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,libp2p=warn".into());
            // arkworks opens a span per gadget call: recorded by a subscriber, a seal proof
            // allocates gigabytes of span text. They are never wanted in a node's log.
            for d in ["gr1cs=off", "r1cs=off"] {
                if let Ok(d) = d.parse() {
                    f = f.add_directive(d);
                }
            }
            f
        })
        .init();
    match cli.cmd {
        Cmd::Init {
            repo,
            api,
            gateway,
            listen,
            bootstrap,
            capacity,
            repair_interval,
            keys,
            keys_sha256,
            dev_keys,
        } => {
            let mut c = NodeConfig::default();
            c.proofs.dev = dev_keys;
            if let (Some(k), Some(sha)) = (keys, keys_sha256) {
                c.proofs.keys = k;
                c.proofs.keys_sha256 = sha;
            }
            if let Err(e) = c.proofs.key_source() {
                eprintln!(
                    "note: [proofs] in the config needs keys before the node can run: {e} \
                     (cairn-node init --keys DIR --keys-sha256 HEX, or --dev-keys)"
                );
            }
            if let Some(r) = repo {
                c.repo = r;
            }
            if let Some(a) = api {
                c.api = a;
            }
            if let Some(g) = gateway {
                c.gateway = g;
            }
            if !listen.is_empty() {
                c.listen = listen;
            }
            c.bootstrap = bootstrap;
            if let Some(cap) = capacity {
                c.capacity = cap;
            }
            if let Some(r) = repair_interval {
                c.repair_interval_secs = r;
            }
            std::fs::create_dir_all(&c.repo)
                .with_context(|| format!("creating {}", c.repo.display()))?;
            let cfg = c.repo.join("config.toml");
            if cfg.exists() {
                anyhow::bail!("{} exists; this repo is already initialised", cfg.display());
            }
            let key = cairn_net::identity::load_or_create(&c.repo.join(IDENTITY_FILE))?;
            api::load_or_create_token(&c.repo)?;
            c.save(&cfg)?;
            println!("{}", key.public().to_peer_id());
            Ok(())
        }
        Cmd::Audit {
            cmd: AuditCmd::Log { config, from, json },
        } => {
            let c = load(config)?;
            let entries = audit_entries(&c, from)?;
            for e in &entries {
                if json {
                    println!("{e}");
                    continue;
                }
                let s = &e["summary"];
                let hash = e["hash"].as_str().unwrap_or_default();
                let what = match s["kind"].as_str() {
                    Some("sector") => format!(
                        "sector  {} sealed sector {} ({} bytes)",
                        short(s["prover"].as_str()),
                        s["sector"],
                        s["data_len"]
                    ),
                    Some("audit") => format!(
                        "audit   window {} {} -> {}: {}{}",
                        s["window"],
                        short(s["auditor"].as_str()),
                        short(s["prover"].as_str()),
                        s["verdict"].as_str().unwrap_or("?").to_uppercase(),
                        match s["reason"].as_str() {
                            Some(r) if !r.is_empty() => format!(" ({r})"),
                            _ => String::new(),
                        }
                    ),
                    _ => format!("unreadable entry: {}", s["error"]),
                };
                println!("{:>5}  {}  {what}", e["seq"], &hash[..hash.len().min(12)]);
            }
            if !json {
                println!("{} entries", entries.len());
            }
            Ok(())
        }
        Cmd::Placement {
            cmd: PlacementCmd::Status { config, n, json },
        } => {
            let c = load(config)?;
            use cairn_storage_node::api::client::{get_json, url, ClientError};
            let (api, path) = (node_api(&c), format!("/api/v0/placement/status?n={n}"));
            let v = match get_json(&api, &path) {
                Err(ClientError::Unreachable { source, .. }) => {
                    return Err(anyhow::Error::from(*source).context(format!(
                        "the node is not running (no answer at {})",
                        url(&api, &path)
                    )))
                }
                r => r?,
            };
            if json {
                println!("{v}");
                return Ok(());
            }
            println!("{} shards with reads here; hottest:", v["tracked"]);
            for h in v["hot"].as_array().into_iter().flatten() {
                println!(
                    "  {}  reads {:>6}  decayed {:>8.2}  {:>8} bytes  last {:.0} s ago",
                    h["cid"].as_str().unwrap_or("?"),
                    h["reads"],
                    h["score"].as_f64().unwrap_or(0.0),
                    h["size"],
                    h["last_read_s_ago"].as_f64().unwrap_or(0.0)
                );
            }
            print_tier(&v);
            Ok(())
        }
        Cmd::Config {
            cmd: ConfigCmd::Show { config },
        } => {
            print!("{}", load(config)?.to_toml());
            Ok(())
        }
        Cmd::Run { config } => {
            let c = load(config)?;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&c.api)
                    .await
                    .with_context(|| format!("binding the API to {}", c.api))?;
                let gateway = match c.gateway_addr() {
                    Some(a) => Some(tokio::net::TcpListener::bind(a).await.with_context(|| {
                        format!("binding the gateway to {a} (set `gateway` in the config: another address, or \"off\")")
                    })?),
                    None => None,
                };
                api::run(
                    c,
                    listener,
                    gateway,
                    |ready| {
                        // one line on stdout for whoever started us (devnet); logs go to stderr
                        let mut out = std::io::stdout();
                        let _ =
                            writeln!(out, "{}", serde_json::to_string(&ready).unwrap_or_default());
                        let _ = out.flush();
                    },
                    shutdown_signal(),
                )
                .await?;
                Ok::<(), anyhow::Error>(())
            });
            // a seal in progress on the blocking pool is background work: its result is
            // written atomically at the end, so exiting mid-seal loses nothing but the work
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            r
        }
    }
}

/// The fast-tier part of `placement status`.
fn print_tier(v: &serde_json::Value) {
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(0.0);
    let list = |x: &serde_json::Value| x.as_array().cloned().unwrap_or_default();
    println!("peers by measured speed (RTT from pings, throughput from timed block fetches):");
    for p in list(&v["peers"]) {
        println!(
            "  {}  rtt {:.2} ms  {:.1} MB/s  1 MiB in {}{}",
            p["peer"].as_str().unwrap_or("?"),
            f(&p["rtt_ms"]),
            f(&p["throughput_mbps"]),
            p["mib_ms"]
                .as_f64()
                .map_or("? (not probed)".to_string(), |m| format!("{m:.1} ms")),
            if p["fast"] == true { "  FAST" } else { "" }
        );
    }
    let promoted = list(&v["promoted"]);
    println!("promoted to fast peers ({}):", promoted.len());
    for p in promoted {
        println!(
            "  {}  -> {}  {} bytes, {} reads there",
            p["cid"].as_str().unwrap_or("?"),
            p["peer"].as_str().unwrap_or("?"),
            p["bytes"],
            p["reads_there"]
        );
    }
    let cached = list(&v["cached"]);
    println!(
        "copies kept here for peers ({}; {} of {} bytes):",
        cached.len(),
        v["cache_used"],
        v["cache_capacity"]
    );
    for c in cached {
        println!(
            "  {}  from {}  {} bytes, {} reads",
            c["cid"].as_str().unwrap_or("?"),
            c["promoter"].as_str().unwrap_or("?"),
            c["bytes"],
            c["reads"]
        );
    }
    let w = &v["last_window"];
    if w.is_null() {
        println!("no placement window has run yet");
    } else {
        println!(
            "last window {}: {} client reads, {} reads on fast copies, {} peers probed, {} fast; planned {} promotions and {} demotions; done {} and {}{}",
            w["window"],
            w["reads"],
            w["fast_reads"],
            w["probed"],
            list(&w["fast_peers"]).len(),
            list(&w["planned_promotions"]).len(),
            list(&w["planned_demotions"]).len(),
            w["promoted"],
            w["demoted"],
            w["note"].as_str().map(|n| format!(" ({n})")).unwrap_or_default()
        );
        println!(
            "  engine: capacity {} bytes (fast peers' room for this node: {} bytes), {} models trained, {} shards tracked; {} decided by its model, {} of them against the reads rule (`min_reads`)",
            w["engine_capacity"],
            w["fast_space"],
            w["engine_trainings"],
            w["engine_tracked"],
            w["modelled"],
            w["overrides"]
        );
        for o in list(&w["override_list"]) {
            println!(
                "    {}  {} reads, no-reuse probability {:.2}: {}",
                o["cid"].as_str().unwrap_or("?"),
                o["reads"],
                f(&o["no_reuse"]),
                if o["admitted"] == true {
                    "admitted"
                } else {
                    "declined"
                }
            );
        }
        for e in list(&w["failed"]) {
            println!("  failed: {}", e.as_str().unwrap_or("?"));
        }
    }
    let plans = list(&v["plans"]);
    println!(
        "readers' plans followed ({}){}:",
        plans.len(),
        v["plan_note"]
            .as_str()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    for p in plans {
        println!(
            "  {}  job {:?}  {} blocks, {} bytes{}; head {}, {} read; {} copies held, {} made, {} dropped, {} reads of them",
            p["root"].as_str().unwrap_or("?"),
            p["job"].as_str().unwrap_or(""),
            p["blocks"],
            p["bytes"],
            p["rate_bps"]
                .as_f64()
                .map(|r| format!(" at {:.1} MB/s", r / 1e6))
                .unwrap_or_default(),
            p["head"],
            p["read"],
            p["held"],
            p["prefetched"],
            p["dropped"],
            p["fast_reads"]
        );
    }
    let moves = list(&v["moves"]);
    println!("moves ({} latest):", moves.len());
    for m in moves.iter().rev().take(10).rev() {
        println!(
            "  window {:>3}  {:<5} {:<8} {}  {} bytes  {}  {}{}",
            m["window"],
            m["rule"].as_str().unwrap_or("?"),
            m["kind"].as_str().unwrap_or("?"),
            m["cid"].as_str().unwrap_or("?"),
            m["bytes"],
            m["peer"].as_str().unwrap_or(""),
            if m["ok"] == true { "done" } else { "FAILED" },
            m["reason"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
}
