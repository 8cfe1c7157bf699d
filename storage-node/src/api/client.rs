//! A blocking client of a node's HTTP API (`/api/v0/*`), shared by `cairn-node` and `cairn`:
//! the one place that builds URLs, sends the token, caps and decodes JSON answers, turns a
//! refusal into the node's own one-line reason, and pages through the audit log.

use super::types::{Id, PinEntry};
use crate::node::{NodeStatus, PutReport, RemoveReport, RepairRound};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Largest JSON answer read (an audit log page of [`crate::proving::LOG_PAGE`] entries fits
/// many times over).
pub const MAX_ANSWER: u64 = 64 << 20;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No HTTP answer at all (connection refused, reset, timed out).
    #[error("cannot reach the node API at {api}")]
    Unreachable {
        /// The API address.
        api: String,
        /// What the transport said.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The answer is not JSON, or is larger than [`MAX_ANSWER`].
    #[error("{what}: the node's answer is not JSON (HTTP {status})")]
    NotJson {
        /// The call (its path, or a command name).
        what: String,
        /// The HTTP status.
        status: ureq::http::StatusCode,
        /// Why it did not decode.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The node answered with an error status and its reason.
    #[error("{what}: the node said {status}: {reason}")]
    Refused {
        /// The call.
        what: String,
        /// The HTTP status.
        status: ureq::http::StatusCode,
        /// The node's `error` field.
        reason: String,
    },
    /// The JSON is not the shape this build expects of the route.
    #[error("{what}: the node's answer is not what this build expects")]
    Shape {
        /// The call.
        what: String,
        /// Where it differs.
        #[source]
        source: serde_json::Error,
    },
}

/// An agent that reads error statuses as answers (their JSON carries the reason).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// The URL of `path` on the API at `api` (`host:port`, or a URL with its scheme).
pub fn url(api: &str, path: &str) -> String {
    let base = api.trim_end_matches('/');
    if base.starts_with("http://") || base.starts_with("https://") {
        format!("{base}{path}")
    } else {
        format!("http://{base}{path}")
    }
}

/// The JSON body of an answer (at most [`MAX_ANSWER`] bytes); an error status becomes
/// [`ClientError::Refused`] with the node's reason.
pub fn read_json(
    mut resp: ureq::http::Response<ureq::Body>,
    what: &str,
) -> Result<Value, ClientError> {
    let status = resp.status();
    let v: Value = resp
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .read_json()
        .map_err(|e| ClientError::NotJson {
            what: what.to_string(),
            status,
            source: Box::new(e),
        })?;
    if !status.is_success() {
        let reason = v
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no reason given")
            .to_string();
        return Err(ClientError::Refused {
            what: what.to_string(),
            status,
            reason,
        });
    }
    Ok(v)
}

fn unreachable(api: &str) -> impl FnOnce(ureq::Error) -> ClientError + '_ {
    move |e| ClientError::Unreachable {
        api: api.to_string(),
        source: Box::new(e),
    }
}

/// `GET path` as JSON.
pub fn get_json(api: &str, path: &str) -> Result<Value, ClientError> {
    let r = agent()
        .get(url(api, path))
        .call()
        .map_err(unreachable(api))?;
    read_json(r, path)
}

/// `POST path` (no body, with the bearer `token` when given) as JSON.
pub fn post_json(api: &str, token: Option<&str>, path: &str) -> Result<Value, ClientError> {
    let mut req = agent().post(url(api, path));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let r = req.send_empty().map_err(unreachable(api))?;
    read_json(r, path)
}

/// Decodes an answer as the route's typed answer.
pub fn typed<T: DeserializeOwned>(v: Value, what: &str) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|source| ClientError::Shape {
        what: what.to_string(),
        source,
    })
}

/// `GET /api/v0/id`.
pub fn id(api: &str) -> Result<Id, ClientError> {
    typed(get_json(api, "/api/v0/id")?, "/api/v0/id")
}

/// `GET /api/v0/status`.
pub fn status(api: &str) -> Result<NodeStatus, ClientError> {
    typed(get_json(api, "/api/v0/status")?, "/api/v0/status")
}

/// `GET /api/v0/pins`.
pub fn pins(api: &str) -> Result<Vec<PinEntry>, ClientError> {
    typed(get_json(api, "/api/v0/pins")?, "/api/v0/pins")
}

/// `POST /api/v0/rm/{root}`.
pub fn rm(api: &str, token: Option<&str>, root: &str) -> Result<RemoveReport, ClientError> {
    let path = format!("/api/v0/rm/{root}");
    typed(post_json(api, token, &path)?, &path)
}

/// `POST /api/v0/repair`.
pub fn repair(api: &str, token: Option<&str>) -> Result<RepairRound, ClientError> {
    typed(post_json(api, token, "/api/v0/repair")?, "/api/v0/repair")
}

/// Decodes the answer of `POST /api/v0/put`.
pub fn put_report(v: Value) -> Result<PutReport, ClientError> {
    typed(v, "put")
}

/// The audit log from position `from` on (a compacted log starts above 0), every page of
/// `GET /api/v0/audit/log` read until a short one, each next page from the position after the
/// last entry; each entry as the API describes it (`entry` holds the encoded bytes in hex).
pub fn audit_log(api: &str, from: u64) -> Result<Vec<Value>, ClientError> {
    let mut out: Vec<Value> = Vec::new();
    let mut next = from;
    loop {
        let page = get_json(api, &format!("/api/v0/audit/log?from={next}"))?;
        let list = page["entries"].as_array().cloned().unwrap_or_default();
        let n = list.len();
        let last = list.last().and_then(|e| e["seq"].as_u64());
        out.extend(list);
        match last {
            Some(seq) if n >= crate::proving::LOG_PAGE && seq >= next => next = seq + 1,
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_an_address_or_a_url() {
        assert_eq!(url("127.0.0.1:5001", "/x"), "http://127.0.0.1:5001/x");
        assert_eq!(url("http://h:1/", "/x"), "http://h:1/x");
        assert_eq!(url("https://h", "/api"), "https://h/api");
    }

    #[test]
    fn a_refused_call_carries_the_nodes_reason_and_shapes_are_checked() {
        let e = ClientError::Refused {
            what: "/api/v0/rm/x".into(),
            status: ureq::http::StatusCode::FORBIDDEN,
            reason: "not yours".into(),
        };
        assert_eq!(
            e.to_string(),
            "/api/v0/rm/x: the node said 403 Forbidden: not yours"
        );
        let bad: Result<Id, _> = typed(serde_json::json!({"peer_id": 1}), "/api/v0/id");
        assert!(matches!(bad, Err(ClientError::Shape { .. })));
        let ok: Id = typed(
            serde_json::json!({"peer_id": "p", "addrs": ["/ip4/127.0.0.1/tcp/1"]}),
            "/api/v0/id",
        )
        .unwrap();
        assert_eq!(ok.addrs.len(), 1);
    }
}
