//! What every API handler shares: the state, the error type and the token check.

use crate::node::{Node, NodeError};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone)]
/// The state of the API's handlers.
pub(super) struct ApiState {
    /// The node.
    pub(super) node: Node,
    /// The API token.
    pub(super) token: Arc<String>,
    /// Where uploads are spooled.
    pub(super) tmp: PathBuf,
    /// The gateway's base URL, when the daemon serves one.
    pub(super) gateway: Option<Arc<String>>,
    /// The audit started by hand (`POST /api/v0/audit`), running or done.
    pub(super) audit: Arc<super::jobs::AuditJobs>,
}

/// An API error: status plus one line.
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg)
    }
}

/// Checks the bearer token.
pub(super) fn authorize(s: &ApiState, h: &HeaderMap) -> Result<(), ApiError> {
    let want = format!("Bearer {}", s.token);
    match h.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(v) if v.len() == want.len() && constant_eq(v.as_bytes(), want.as_bytes()) => Ok(()),
        _ => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this call needs `Authorization: Bearer <token>` (the node repo's api.token)".into(),
        )),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
