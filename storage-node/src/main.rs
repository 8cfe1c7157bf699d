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
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,libp2p=warn".into()),
        )
        .init();
    match cli.cmd {
        Cmd::Init {
            repo,
            api,
            listen,
            bootstrap,
            capacity,
            repair_interval,
        } => {
            let mut c = NodeConfig::default();
            if let Some(r) = repo {
                c.repo = r;
            }
            if let Some(a) = api {
                c.api = a;
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
        Cmd::Config {
            cmd: ConfigCmd::Show { config },
        } => {
            print!("{}", load(config)?.to_toml());
            Ok(())
        }
        Cmd::Run { config } => {
            let c = load(config)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&c.api)
                    .await
                    .with_context(|| format!("binding the API to {}", c.api))?;
                api::run(
                    c,
                    listener,
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
                Ok(())
            })
        }
    }
}
