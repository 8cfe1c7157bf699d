//! `cairn` through a node's HTTP API: `put`, `rm`, `pin ls`, `verify`, `stat`, `repair`, the
//! audit log, and `get` through the retrieval client.

use anyhow::{Context, Result};
use cairn_core::Cid;
use cairn_net::{Multiaddr, NetConfig, NoService};
use cairn_retrieval::{Client, Options, Progress};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// `GET path` on the node as JSON.
pub(crate) fn api_get_json(api: &str, path: &str) -> Result<Value> {
    Ok(api_client::get_json(api, path)?)
}

/// `POST path` on the node (with the token when given) as JSON.
pub(crate) fn api_post_json(api: &str, token: Option<&str>, path: &str) -> Result<Value> {
    Ok(api_client::post_json(api, token, path)?)
}

/// Starts an audit by hand (`POST /api/v0/audit`, `query` like `peer=ID`) and waits for its
/// outcome: the node runs it in the background and answers at once, so this waits on
/// `GET /api/v0/audit/last`. An audit already running there is waited out first.
pub(crate) fn audit_and_wait(api: &str, token: &str, query: &str) -> Result<Value> {
    // a hang guard only: sealing takes as long as the node's pending data needs
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    let path = format!("/api/v0/audit?{query}&wait=20");
    loop {
        let mut v = api_post_json(api, Some(token), &path)?;
        let started = v["started"] == true;
        while v["done"] != true {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the audit on {api} did not finish within an hour"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
            v = api_get_json(api, "/api/v0/audit/last")?;
        }
        if started {
            if let Some(e) = v["error"].as_str() {
                anyhow::bail!("audit on {api}: {e}");
            }
            return Ok(v);
        }
    }
}

use cairn_storage_node::api::client::{self as api_client, agent, read_json, url};
use cairn_storage_node::api::types::{
    PinEntry, PutReport, RemoveReport, RepairRound, ShardPlacement,
};

/// `cairn audit verify`: fetches a node's whole audit log and re-verifies it end to end with
/// this machine's keys (chain, signatures, seal proofs, window proofs). Exit 0 when it
/// verifies, 1 when it does not.
pub fn audit_verify(
    api: &str,
    key_args: &crate::proofs::KeyArgs,
    json: bool,
) -> Result<std::process::ExitCode> {
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
        seal_challenges: cairn_storage_node::config::SEAL_CHALLENGES,
    };
    params
        .check()
        .map_err(|e| anyhow::anyhow!("the node's proof parameters: {e}"))?;
    let mut entries = Vec::new();
    for e in api_client::audit_log(api, 0)? {
        let bytes = e["entry"]
            .as_str()
            .and_then(cairn_proofs::audit::from_hex)
            .context("a log entry is not hex")?;
        entries.push(
            LogEntry::decode(&bytes)
                .map_err(|err| anyhow::anyhow!("log entry {}: {err}", entries.len()))?,
        );
    }
    let source = match (&key_args.keys, st["keys_sha256"].as_str()) {
        (Some(dir), node_pin) => {
            // the pin given here wins; else the node's must match the manifest found
            let Some(pin) = key_args.keys_sha256.as_deref().or(node_pin) else {
                anyhow::bail!("the node uses development keys; verify without --keys");
            };
            cairn_proofs::audit::KeySource::Pinned {
                dir: dir.clone(),
                sha256: pin.to_string(),
            }
        }
        (None, Some(pin)) => anyhow::bail!(
            "the node proves under pinned keys (manifest sha256 {pin}): give their directory \
             with --keys"
        ),
        (None, None) => {
            eprintln!("note: the node uses development keys, under which anyone can forge proofs");
            cairn_proofs::audit::KeySource::Dev(cairn_storage_node::config::default_keys_dir())
        }
    };
    let (seal, post) = params.load_keys(&source)?;
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
                "checks_passed": r.checks_passed, "checks_failed": r.checks_failed,
                "retired": r.retired,
                "problems": r.problems, "ok": r.problems.is_empty(),
            })
        );
    } else {
        println!(
            "{} entries: {} sector seal proofs verified, {} passing window proofs verified, {} failed proofs re-checked invalid, {} signed fail/miss claims (no proof to re-check), {} seal checks passed (re-verified), {} failed or missed, {} retirements",
            r.entries, r.sectors, r.passes, r.fails_rechecked, r.claims, r.checks_passed, r.checks_failed, r.retired
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
pub fn put(api: &str, token: Option<&str>, path: &Path, choice: &PutChoice) -> Result<PutReport> {
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
    Ok(api_client::put_report(read_json(r, "put")?)?)
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
pub fn remove(api: &str, token: Option<&str>, root: &Cid) -> Result<RemoveReport> {
    Ok(api_client::rm(api, token, &root.to_string())?)
}

/// The roots the node keeps.
pub fn pins(api: &str) -> Result<Vec<PinEntry>> {
    Ok(api_client::pins(api)?)
}

/// A scrub of the node's own blocks.
pub fn scrub(api: &str, token: Option<&str>) -> Result<Value> {
    api_post_json(api, token, "/api/v0/scrub")
}

/// Where each shard of `root` lives, from the node's point of view.
pub fn placement(api: &str, root: &Cid) -> Result<Vec<Vec<ShardPlacement>>> {
    let path = format!("/api/v0/placement/{root}");
    Ok(api_client::typed(api_get_json(api, &path)?, &path)?)
}

/// One repair round on the node.
pub fn repair(api: &str, token: Option<&str>) -> Result<RepairRound> {
    Ok(api_client::repair(api, token)?)
}

/// Bootstrap addresses of the node behind `api`.
pub(crate) fn bootstrap_of(api: &str) -> Result<Vec<Multiaddr>> {
    api_client::id(api)?
        .addrs
        .iter()
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
        let pb = crate::progress::bar(0, "fetching");
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
