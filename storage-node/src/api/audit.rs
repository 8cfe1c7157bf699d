//! `POST /api/v0/audit` and `GET /api/v0/audit/last`: audits started by hand run in the
//! background (sealing first, which takes as long as the pending data needs), so a request
//! never waits on them longer than it asks to.

use super::jobs::AuditJob;
use super::state::{authorize, ApiError, ApiState};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Longest a `POST /api/v0/audit` waits for its audit to finish (`wait`), below common HTTP
/// client timeouts.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(20);

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    peer: Option<String>,
    /// Seconds to wait for the outcome before answering (default 0, at most [`MAX_WAIT`]).
    wait: Option<f64>,
}

/// The outcome of a finished audit, as the API reports it.
fn outcome(sealed: usize, a: Option<cairn_proofs::audit::AuditRecord>) -> Value {
    json!({
        "sealed": sealed,
        "audit": a.map(|a| json!({
            "prover": cairn_net::PeerId::from_bytes(&a.prover).map(|p| p.to_string()).unwrap_or_default(),
            "window": a.window,
            "verdict": a.verdict.name(),
            "role": a.role.name(),
            "counts": a.role != cairn_proofs::audit::Role::Manual,
            "reason": a.reason,
        })),
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts sealing what is pending and then an audit, in the background; answers at once, or
/// with the outcome if it comes within `wait` seconds.
pub(super) async fn start(
    State(s): State<ApiState>,
    Query(q): Query<AuditQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let peer = match &q.peer {
        None => None,
        Some(p) => Some(
            p.parse::<cairn_net::PeerId>()
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("peer {p:?}: {e}")))?,
        ),
    };
    let wait = match q.wait {
        None => Duration::ZERO,
        Some(w) if w.is_finite() && w >= 0.0 => Duration::from_secs_f64(w).min(MAX_WAIT),
        Some(w) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("wait={w}: seconds, 0 or more"),
            ))
        }
    };
    let (job, tx) = match s.audit.begin(q.peer.clone(), unix_now()) {
        Ok(j) => j,
        Err(running) => {
            return Ok(Json(
                json!({ "started": false, "running": running.to_json() }),
            ));
        }
    };
    let node = s.node.clone();
    tokio::spawn(async move {
        let done = async {
            let sealed = node.seal_now().await?;
            let a = match peer {
                None => node.audit_once().await?,
                Some(p) => node.audit_once_for(p).await?,
            };
            Ok::<_, crate::node::NodeError>(outcome(sealed, a))
        }
        .await;
        let v = done.unwrap_or_else(|e| json!({ "error": ApiError::from(e).1 }));
        tx.send_replace(Some(v));
    });
    Ok(Json(answer(job, wait).await))
}

/// The job's state after waiting up to `wait` for it to finish.
async fn answer(job: AuditJob, wait: Duration) -> Value {
    let mut rx = job.outcome.clone();
    if !wait.is_zero() {
        // a dropped sender (the task panicked) ends the wait too
        let _ = tokio::time::timeout(wait, rx.wait_for(|o| o.is_some())).await;
    }
    let mut v = job.to_json();
    if let Some(m) = v.as_object_mut() {
        m.insert("started".into(), true.into());
    }
    v
}

/// The audit last started by hand.
pub(super) async fn last(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    match s.audit.last() {
        Some(job) => Ok(Json(job.to_json())),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "no audit was started by hand on this node since it started".into(),
        )),
    }
}

/// `peer`'s designated auditors this window, as this node sees the ring.
pub(super) async fn auditors(
    State(s): State<ApiState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(p) = q.peer else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "peer= is required".into(),
        ));
    };
    let peer: cairn_net::PeerId = p
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("peer {p:?}: {e}")))?;
    let st = s.node.proof_status().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "proofs are off on this node ([proofs] enabled = false)".into(),
        )
    })?;
    let a = s.node.auditors_of(peer);
    Ok(Json(json!({
        "prover": peer.to_string(),
        "window": st.window,
        "primary": a.map(|(p, _)| p.to_string()),
        "confirmer": a.and_then(|(_, c)| c).map(|c| c.to_string()),
    })))
}
