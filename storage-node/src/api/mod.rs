//! The node's HTTP API (loopback by default) and the daemon entry point.
//!
//! | method | path | auth | what |
//! |---|---|---|---|
//! | GET | `/api/v0/id` | – | peer id and listen addresses |
//! | GET | `/api/v0/status` | – | capacity, use, peers, last repair and scrub, the gateway's address (`gateway`, `http://host:port`, when on) |
//! | GET | `/api/v0/auth` | token | checks the token (clients call it before an upload) |
//! | POST | `/api/v0/put?tar=true&profile=P&k=K&m=M` | token | body: a file, or a tar of a directory; imports (profile, k and m default to the node's config), places, announces |
//! | POST | `/api/v0/rm/{root}` | token | takes a dataset this node published off the network: every live holder drops it |
//! | GET | `/api/v0/pins` | – | the roots this node keeps (datasets with their manifest) |
//! | GET | `/api/v0/placement/{root}` | – | which live nodes hold each shard |
//! | GET | `/api/v0/placement/status?n=20` | – | the shards read most here lately (decayed read counts), peers' measured speeds, promoted shards, copies kept for peers, the last window's plan and the latest moves |
//! | POST | `/api/v0/placement/run` | token | run one placement window now; returns its plan and outcome |
//! | POST | `/api/v0/repair` | token | one repair round now |
//! | POST | `/api/v0/scrub` | token | verify every local block now (blocks checked, bytes, corrupt ones) |
//! | POST | `/api/v0/collect` | token | one collection pass: blocks no dataset, pin or recent push needs are noted, those noted by the pass before too removed (`skipped`, `unneeded`, `removed`, `bytes`) |
//! | POST | `/api/v0/plan` | token | body `{"root", "files": [cid, ...], "rate", "job"}` (or the Python package's `"shards": [{"path", "cid"}, ...]`, or with neither a `"seed"`): a reader's order of the dataset's files this epoch, ranked by the placement engine and prefetched onto fast peers ahead of the reader (`files`, `blocks`, `bytes`) |
//! | GET | `/api/v0/proofs` | – | sealing, proving and audit counters, faulty peers |
//! | GET | `/api/v0/audit/log?from=N` | – | up to 1000 audit log entries from position N (encoded entry in hex, plus a summary) |
//! | POST | `/api/v0/audit?peer=ID&wait=S` | token | starts, in the background, sealing what is pending and then an audit of this window's peer (or `peer`); answers at once (or when done, if that is within `wait` seconds, at most 20) with what it started (`started`, `done`, and once done `sealed` and `audit`; `role` says whether this node is `peer`'s designated auditor: only then the verdict `counts`). One such audit runs at a time: while one runs, `started` is false and `running` describes it |
//! | GET | `/api/v0/audit/last` | – | the audit last started by hand: `running`, `peer`, `started_at`, and once done its outcome as above (404 before the first) |
//! | GET | `/api/v0/audit/auditors?peer=ID` | – | `peer`'s designated auditors this window (`primary`, `confirmer`) as this node sees the ring |
//!
//! Writes need `Authorization: Bearer <token>`, the token being the repo's `api.token` file.

use crate::config::NodeConfig;
use crate::node::{Node, NodeError, NodeOptions};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_core::block::parse_cid;
use cairn_net::NetConfig;
use cairn_repo::Repo;
use futures::StreamExt;
use serde::Deserialize;
use state::{authorize, ApiError, ApiState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use types::{Id, PinEntry};

mod audit;
pub mod client;
mod jobs;
mod state;
pub mod types;
pub use types::Ready;

/// File in the repo holding the API token.
pub const TOKEN_FILE: &str = "api.token";
/// File in the repo holding the running node's bound API address (removed at shutdown).
pub const API_ADDR_FILE: &str = "api.addr";
/// File in the repo holding the node's ed25519 key.
pub const IDENTITY_FILE: &str = "identity.key";

async fn id(State(s): State<ApiState>) -> Json<Id> {
    let st = s.node.status().await;
    Json(Id {
        peer_id: st.peer_id,
        addrs: st.addrs,
    })
}

async fn auth(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&s, &headers)?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn status(State(s): State<ApiState>) -> Json<crate::node::NodeStatus> {
    let mut st = s.node.status().await;
    st.gateway = s.gateway.as_deref().cloned();
    Json(st)
}

/// One file of a plan: its CID (the Python package also sends its path, ignored here).
#[derive(Deserialize)]
struct PlanFile {
    cid: String,
}

/// `POST /api/v0/plan`: a reader's plan for an epoch: its order of the dataset's files, as
/// CIDs (`files`) or as the Python package's `shards` (`{path, cid}` each), or, with neither,
/// every file in the seeded shuffle of `seed` (the Rust `Dataset`'s `Order::Shuffled`) or in
/// path order; `rate`, the reader's bytes per second; `job`, a name (a plan replaces the one
/// of the same root and job). Other keys (the Python package's epoch, pattern, world size)
/// are accepted and not used.
#[derive(Deserialize)]
struct PlanBody {
    root: String,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    shards: Vec<PlanFile>,
    #[serde(default)]
    seed: Option<serde_json::Value>,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    job: Option<String>,
}

async fn plan(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Json(body): Json<PlanBody>,
) -> Result<Json<crate::node::PlanReport>, ApiError> {
    authorize(&s, &headers)?;
    let root = parse_cid(&body.root).map_err(bad_request)?;
    let files = body
        .files
        .iter()
        .map(String::as_str)
        .chain(body.shards.iter().map(|f| f.cid.as_str()))
        .map(parse_cid)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_request)?;
    // the seed orders the files only when none are listed (the Python package lists them,
    // and sends its own seed, of another shuffle, along)
    let seed =
        match (&body.seed, files.is_empty()) {
            (Some(v), true) => Some(v.as_u64().ok_or_else(|| {
                bad_request(format!("seed is an unsigned 64-bit integer, not {v}"))
            })?),
            _ => None,
        };
    let req = crate::node::PlanRequest {
        root,
        files,
        seed,
        rate: body.rate,
        job: body.job.unwrap_or_default(),
        from_peer: false,
    };
    let report = s.node.register_plan(req).await.map_err(|e| match e {
        NodeError::Invalid(msg) => ApiError(StatusCode::BAD_REQUEST, msg),
        e => e.into(),
    })?;
    Ok(Json(report))
}

async fn collect(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<crate::node::CollectReport>, ApiError> {
    authorize(&s, &headers)?;
    Ok(Json(s.node.collect_garbage().await?))
}

#[derive(Deserialize)]
struct PutQuery {
    #[serde(default)]
    tar: bool,
    /// Import profile (default: the node's).
    profile: Option<String>,
    /// Data shards per stripe (default: the profile's, or the node's).
    k: Option<usize>,
    /// Parity shards per stripe.
    m: Option<usize>,
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

async fn put(
    State(s): State<ApiState>,
    Query(q): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<crate::node::PutReport>, ApiError> {
    authorize(&s, &headers)?;
    let opts = crate::node::PutOptions {
        profile: q.profile.clone(),
        k: q.k,
        m: q.m,
    };
    // refuse bad choices before reading a possibly large body
    if let Some(p) = &opts.profile {
        cairn_core::profile::Profile::by_name(p).map_err(bad_request)?;
    }
    let bad =
        |e: &dyn std::fmt::Display| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    std::fs::create_dir_all(&s.tmp).map_err(|e| bad(&e))?;
    let dir = tempfile::Builder::new()
        .prefix("upload-")
        .tempdir_in(&s.tmp)
        .map_err(|e| bad(&e))?;
    let upload = dir.path().join("upload");
    let mut f = tokio::fs::File::create(&upload)
        .await
        .map_err(|e| bad(&e))?;
    let mut stream = body.into_data_stream();
    let limit = {
        let st = s.node.status().await;
        st.capacity.saturating_sub(st.used)
    };
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
        n += chunk.len() as u64;
        if n > limit {
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("upload exceeds this node's free capacity ({limit} bytes)"),
            ));
        }
        f.write_all(&chunk).await.map_err(|e| bad(&e))?;
    }
    f.flush().await.map_err(|e| bad(&e))?;
    drop(f);
    let path = if q.tar {
        let data = dir.path().join("data");
        let (u, d) = (upload.clone(), data.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir(&d)?;
            let mut a = tar::Archive::new(std::fs::File::open(&u)?);
            a.set_preserve_permissions(false);
            // `unpack` refuses entries that would land outside `d` (absolute paths, `..`)
            a.unpack(&d)?;
            std::fs::remove_file(&u)
        })
        .await
        .map_err(|e| bad(&e))?
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad tar upload: {e}")))?;
        data
    } else {
        upload
    };
    let report = s.node.put_with(&path, &opts).await.map_err(|e| match e {
        NodeError::Invalid(msg) => ApiError(StatusCode::BAD_REQUEST, msg),
        e => e.into(),
    })?;
    Ok(Json(report))
}

async fn remove(
    State(s): State<ApiState>,
    UrlPath(root): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<crate::node::RemoveReport>, ApiError> {
    authorize(&s, &headers)?;
    let root = parse_cid(&root).map_err(bad_request)?;
    Ok(Json(s.node.remove(&root).await.map_err(|e| match e {
        NodeError::Repo(cairn_repo::RepoError::NotHeld(c)) => ApiError(
            StatusCode::NOT_FOUND,
            format!("this node holds no dataset with root {c}"),
        ),
        NodeError::Invalid(msg) => ApiError(StatusCode::FORBIDDEN, msg),
        e => e.into(),
    })?))
}

async fn pins(State(s): State<ApiState>) -> Result<Json<Vec<PinEntry>>, ApiError> {
    let repo = s.node.repo_arc();
    let pins =
        tokio::task::spawn_blocking(move || -> Result<Vec<PinEntry>, cairn_repo::RepoError> {
            let datasets: std::collections::HashMap<_, _> = repo.datasets()?.into_iter().collect();
            Ok(repo
                .pin_ls()?
                .into_iter()
                .map(|root| PinEntry {
                    root: root.to_string(),
                    manifest: datasets.get(&root).map(|m| m.to_string()),
                })
                .collect())
        })
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(pins))
}

async fn placement(
    State(s): State<ApiState>,
    UrlPath(root): UrlPath<String>,
) -> Result<Json<Vec<Vec<crate::node::ShardPlacement>>>, ApiError> {
    let root = parse_cid(&root).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(s.node.placement(&root).await.map_err(
        |e| match e {
            NodeError::Repo(cairn_repo::RepoError::Missing(c)) => ApiError(
                StatusCode::NOT_FOUND,
                format!("this node holds no dataset with root {c}"),
            ),
            e => e.into(),
        },
    )?))
}

async fn repair(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<crate::node::RepairRound>, ApiError> {
    authorize(&s, &headers)?;
    Ok(Json(s.node.repair_round().await?))
}

async fn scrub(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&s, &headers)?;
    let r = s.node.scrub_report().await?;
    Ok(Json(serde_json::json!({
        "corrupt": r.corrupt.len(),
        "checked": r.checked,
        "bytes": r.bytes,
        "corrupt_blocks": r.corrupt.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct HotQuery {
    #[serde(default = "default_hot")]
    n: usize,
}

fn default_hot() -> usize {
    20
}

async fn placement_status(
    State(s): State<ApiState>,
    Query(q): Query<HotQuery>,
) -> Json<serde_json::Value> {
    let now = crate::heat::now_ms();
    let hot: Vec<serde_json::Value> = s
        .node
        .hot_shards(q.n.min(1000))
        .into_iter()
        .map(|(cid, h, score)| {
            serde_json::json!({
                "cid": cid.to_string(),
                "reads": h.reads,
                "score": score,
                "size": h.size,
                "last_read_s_ago": now.saturating_sub(h.last_ms) as f64 / 1e3,
            })
        })
        .collect();
    let mut v = serde_json::to_value(s.node.tier_status().await).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("tracked".into(), s.node.tracked_shards().into());
        m.insert("hot".into(), hot.into());
    }
    Json(v)
}

async fn placement_run(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<crate::tier::WindowReport>, ApiError> {
    authorize(&s, &headers)?;
    Ok(Json(s.node.placement_window().await?))
}

#[derive(Deserialize)]
struct LogQuery {
    #[serde(default)]
    from: u64,
}

async fn audit_log(
    State(s): State<ApiState>,
    Query(q): Query<LogQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let entries = s.node.audit_log(q.from).await?;
    Ok(Json(serde_json::json!({
        "entries": entries.iter().map(crate::proving::describe).collect::<Vec<_>>(),
    })))
}

async fn proofs(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    match s.node.proof_status() {
        Some(p) => Ok(Json(serde_json::to_value(p).unwrap_or_default())),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "proofs are off on this node ([proofs] enabled = false)".into(),
        )),
    }
}

/// The API router for `node`; `gateway` is the base URL of the gateway serving beside it, if
/// any (reported by `/api/v0/status`).
pub fn router(node: Node, token: String, tmp: PathBuf, gateway: Option<String>) -> Router {
    Router::new()
        .route("/api/v0/id", get(id))
        .route("/api/v0/status", get(status))
        .route("/api/v0/auth", get(auth))
        .route("/api/v0/put", post(put))
        .route("/api/v0/rm/{root}", post(remove))
        .route("/api/v0/pins", get(pins))
        .route("/api/v0/placement/status", get(placement_status))
        .route("/api/v0/placement/run", post(placement_run))
        .route("/api/v0/placement/{root}", get(placement))
        .route("/api/v0/repair", post(repair))
        .route("/api/v0/scrub", post(scrub))
        .route("/api/v0/collect", post(collect))
        .route("/api/v0/plan", post(plan))
        .route("/api/v0/audit/log", get(audit_log))
        .route("/api/v0/audit", post(audit::start))
        .route("/api/v0/audit/last", get(audit::last))
        .route("/api/v0/audit/auditors", get(audit::auditors))
        .route("/api/v0/proofs", get(proofs))
        .layer(DefaultBodyLimit::disable())
        .with_state(ApiState {
            node,
            token: Arc::new(token),
            tmp,
            gateway: gateway.map(Arc::new),
            audit: Arc::new(jobs::AuditJobs::default()),
        })
}

/// Reads the repo's API token, creating a random one if absent.
pub fn load_or_create_token(repo: &Path) -> std::io::Result<String> {
    let p = repo.join(TOKEN_FILE);
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(t.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::RngCore;
            let mut b = [0u8; 24];
            rand::thread_rng().fill_bytes(&mut b);
            let t: String = b.iter().map(|x| format!("{x:02x}")).collect();
            std::fs::create_dir_all(repo)?;
            std::fs::write(&p, &t)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(t)
        }
        Err(e) => Err(e),
    }
}

/// Daemon failures.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The repo failed.
    #[error(transparent)]
    Repo(#[from] cairn_repo::RepoError),
    /// The identity key failed.
    #[error(transparent)]
    Identity(#[from] cairn_net::identity::IdentityError),
    /// A config value is invalid.
    #[error("config: {0}")]
    Config(String),
    /// I/O failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How long requests in progress on the gateway may take to finish once the node is told to
/// stop (a client streaming a large file would otherwise hold the shutdown up); then the
/// daemon stops waiting and they end with the runtime.
pub const GATEWAY_DRAIN: Duration = Duration::from_secs(5);

/// The base URL of a gateway listening on `addr`.
pub fn gateway_url(addr: std::net::SocketAddr) -> String {
    format!("http://{addr}")
}

/// Runs a node from `config` with its API on `api` and its IPFS gateway on `gateway` (when
/// given: see [`NodeConfig::gateway_addr`]) until `shutdown` resolves; `ready` is called once
/// the node, the API and the gateway are up.
pub async fn run(
    config: NodeConfig,
    api: tokio::net::TcpListener,
    gateway: Option<tokio::net::TcpListener>,
    ready: impl FnOnce(Ready),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let parse = |v: &[String]| -> Result<Vec<cairn_net::Multiaddr>, DaemonError> {
        v.iter()
            .map(|a| {
                a.parse()
                    .map_err(|e| DaemonError::Config(format!("address {a:?}: {e}")))
            })
            .collect()
    };
    let net = NetConfig {
        listen: parse(&config.listen)?,
        bootstrap: parse(&config.bootstrap)?,
        server: true,
        serve_delay: Duration::from_millis(config.placement.emulated_read_delay_ms),
        ..NetConfig::default()
    };
    std::fs::create_dir_all(&config.repo)?;
    let key = cairn_net::identity::load_or_create(&config.repo.join(IDENTITY_FILE))?;
    let proofs = config
        .proofs
        .options()
        .map_err(|e| DaemonError::Config(format!("[proofs]: {e}")))?;
    let token = load_or_create_token(&config.repo)?;
    let repo = Repo::open(&config.repo)?;
    let opts = NodeOptions {
        capacity: config.capacity,
        profile: config.profile.clone(),
        k: config.k,
        m: config.m,
        repair_interval: Duration::from_secs(config.repair_interval_secs),
        scrub_interval: Duration::from_secs(config.scrub_interval_secs),
        collect_interval: Duration::from_secs(config.collect_interval_secs),
        proofs,
        tier: config.placement.options(),
    };
    if let Some(p) = &opts.proofs {
        p.params
            .check()
            .map_err(|e| DaemonError::Config(format!("[proofs]: {e}")))?;
    }
    let node = Node::start(repo, key, net, opts).await?;
    let api_addr = api.local_addr()?;
    // the bound address (the config may say port 0), for local tools like `cairn-node audit log`
    std::fs::write(config.repo.join(API_ADDR_FILE), api_addr.to_string())?;
    // one stop signal for both servers: `shutdown`, or the API server ending on its own
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let gateway = match gateway {
        Some(l) => {
            let url = gateway_url(l.local_addr()?);
            let src = Arc::new(node.clone());
            let task = tokio::spawn(crate::gateway::serve_until(
                l,
                src,
                stopped(stop_rx.clone()),
            ));
            Some((url, task))
        }
        None => None,
    };
    let gateway_base = gateway.as_ref().map(|(u, _)| u.clone());
    let app = router(
        node.clone(),
        token,
        config.repo.join("tmp"),
        gateway_base.clone(),
    );
    let st = node.status().await;
    ready(Ready {
        peer_id: st.peer_id,
        api: api_addr.to_string(),
        gateway: gateway_base.clone(),
        addrs: st.addrs,
    });
    tracing::info!(
        api = %api_addr,
        gateway = gateway_base.as_deref().unwrap_or("off"),
        peer = %node.peer_id(),
        "node running"
    );
    let tx = stop_tx.clone();
    let served = axum::serve(api, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tx.send_replace(true);
        })
        .await;
    tracing::info!("shutting down");
    stop_tx.send_replace(true);
    if let Some((url, mut task)) = gateway {
        match tokio::time::timeout(GATEWAY_DRAIN, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(%url, error = %e, "the gateway failed"),
            Ok(Err(e)) => tracing::warn!(%url, error = %e, "the gateway task failed"),
            Err(_) => {
                tracing::info!(%url, "gateway requests still running; cutting them");
                task.abort();
            }
        }
    }
    let _ = std::fs::remove_file(config.repo.join(API_ADDR_FILE));
    node.shutdown().await;
    served?;
    Ok(())
}
