//! The gateway's errors and the HTTP status each one answers with.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::cbor::CborError;
use cairn_core::dag::DagError;
use cid::Cid;
use thiserror::Error;

/// Why a gateway request failed. Each variant maps to one status ([`GatewayError::status`]).
#[derive(Debug, Error)]
pub enum GatewayError {
    /// The CID in the path is not a CID, or uses a hash function this gateway cannot verify
    /// (400).
    #[error("invalid CID {input:?}: {reason}")]
    InvalidCid {
        /// What was given (at most 100 characters).
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// The content path is malformed (400).
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// A query parameter has a value this gateway does not understand (400).
    #[error("invalid {name} {value:?}: {reason}")]
    BadParam {
        /// The parameter.
        name: &'static str,
        /// Its value (at most 100 characters).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The requested response type is not produced here, or does not fit the content (406).
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// No range of the `Range` header lies within the representation (416).
    #[error("range not satisfiable: the representation has {size} bytes")]
    RangeNotSatisfiable {
        /// The representation's length.
        size: u64,
    },
    /// The root block of the path cannot be had (404).
    #[error("{0} is not available from this gateway")]
    RootNotFound(Cid),
    /// A path segment names no entry (404).
    #[error("no entry {name:?} under {parent}")]
    NoSuchEntry {
        /// The directory (or DAG-CBOR block) searched.
        parent: Cid,
        /// The missing name.
        name: String,
    },
    /// A path continues through something that is not a directory: a file, a symlink (which
    /// this gateway never follows) or a raw block (404).
    #[error("cannot resolve {name:?} under {cid}: {reason}")]
    NotTraversable {
        /// The block that cannot be pathed through.
        cid: Cid,
        /// The segment that was to be resolved in it.
        name: String,
        /// What the block is.
        reason: &'static str,
    },
    /// `Cache-Control: only-if-cached` and the root block is not held locally (412).
    #[error("{0} is not held locally (Cache-Control: only-if-cached)")]
    NotCached(Cid),
    /// A block needed before the response could start cannot be had (502: a recursive source
    /// may find it later).
    #[error("block {0} cannot be had")]
    BlockUnavailable(Cid),
    /// The block source failed (502).
    #[error("block source failed on {cid}: {reason}")]
    Source {
        /// The block asked for.
        cid: Cid,
        /// What the source said.
        reason: String,
    },
    /// A block is not a valid node of its codec, or a file's sizes do not add up (502: the
    /// content is broken, not the request).
    #[error("block {cid} cannot be read: {source}")]
    Decode {
        /// The block.
        cid: Cid,
        /// Why.
        source: DagError,
    },
    /// A DAG-CBOR block cannot be read (502).
    #[error("DAG-CBOR block {cid} cannot be read: {source}")]
    Cbor {
        /// The block.
        cid: Cid,
        /// Why.
        source: CborError,
    },
    /// A content type this gateway cannot serve for this content, such as pathing into a
    /// value inside a DAG-CBOR block (501).
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl GatewayError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::InvalidCid { .. }
            | GatewayError::InvalidPath(_)
            | GatewayError::BadParam { .. } => StatusCode::BAD_REQUEST,
            GatewayError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            GatewayError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            GatewayError::RootNotFound(_)
            | GatewayError::NoSuchEntry { .. }
            | GatewayError::NotTraversable { .. } => StatusCode::NOT_FOUND,
            GatewayError::NotCached(_) => StatusCode::PRECONDITION_FAILED,
            GatewayError::BlockUnavailable(_)
            | GatewayError::Source { .. }
            | GatewayError::Decode { .. }
            | GatewayError::Cbor { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "gateway request failed");
        } else {
            tracing::debug!(error = %self, "gateway request refused");
        }
        let mut resp = (status, format!("{self}\n")).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let GatewayError::RangeNotSatisfiable { size } = self {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
        }
        if status == StatusCode::BAD_GATEWAY {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        resp
    }
}
