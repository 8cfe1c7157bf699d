//! The `/ipfs/` handler: negotiates the response type, resolves the path, then answers with a
//! raw block, a CAR stream, file bytes (ranges included), a directory's `index.html` or
//! listing, or a symlink's target. Headers follow the path and trustless gateway specs.

use super::error::GatewayError;
use super::headers::{content_disposition, content_type_for, CACHE_IMMUTABLE, CACHE_LISTING};
use super::listing::{self, Listing, Style};
use super::params::{self, CarParams, CarQuery, ContentPath, Format, Scope};
use super::resolve::{self, decode, Resolved};
use super::source::{fetch, BlockSource, LocalOnly, Rooted};
use super::walk::{self, CarPlan};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cairn_core::block::{DAG_CBOR, DAG_PB, RAW};
use cairn_core::dag::Node;
use cid::Cid;
use std::collections::HashMap;
use std::sync::Arc;

const X_IPFS_PATH: HeaderName = HeaderName::from_static("x-ipfs-path");
const X_IPFS_ROOTS: HeaderName = HeaderName::from_static("x-ipfs-roots");

/// What the handlers need of a request.
struct Req {
    head: bool,
    /// The request path as sent (percent-encoded).
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    q: HashMap<String, String>,
}

impl Req {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.q.get(name).map(String::as_str)
    }

    /// Whether `If-None-Match` matches `etag`.
    fn not_modified(&self, etag: &str) -> bool {
        self.headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| params::etag_matches(v, etag))
    }

    /// A body for a GET; nothing for a HEAD (whose headers still say what a GET would send).
    /// The empty body of a HEAD has no known size, so a response whose GET streams without a
    /// `Content-Length` (a CAR, a listing) does not claim a length of 0.
    fn body(&self, make: impl FnOnce() -> Body) -> Body {
        if self.head {
            Body::from_stream(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        } else {
            make()
        }
    }
}

/// `GET` and `HEAD` of `/ipfs/{cid}[/path]`.
pub async fn ipfs<S: BlockSource>(
    State(src): State<Arc<S>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let only_cached = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(params::only_if_cached);
    let req = Req {
        head: method == Method::HEAD,
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        q,
    };
    tracing::debug!(%method, path = %req.path, only_cached, "gateway request");
    let result = if only_cached {
        // nothing may be fetched: a block that is not local is a failed precondition
        handle(Arc::new(LocalOnly(src)), &req)
            .await
            .map_err(|e| match e {
                GatewayError::RootNotFound(c) | GatewayError::BlockUnavailable(c) => {
                    GatewayError::NotCached(c)
                }
                e => e,
            })
    } else {
        handle(src, &req).await
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `/ipns/` names are not resolved by this gateway.
pub async fn ipns() -> Response {
    GatewayError::Unsupported("IPNS names are not resolved by this gateway; use /ipfs/{cid}".into())
        .into_response()
}

/// Anything else.
pub async fn fallback(uri: Uri) -> Response {
    if uri.path() == "/ipfs" || uri.path() == "/ipfs/" {
        GatewayError::InvalidPath("expected /ipfs/{cid}[/path]".into()).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            "not found: this gateway serves /ipfs/{cid}[/path]\n",
        )
            .into_response()
    }
}

fn set(h: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            h.insert(name, v);
        }
        Err(_) => tracing::debug!(%name, "header value dropped (not valid in a header)"),
    }
}

fn respond(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// 304 with the headers a 200 would carry for caching.
fn not_modified(mut h: HeaderMap, etag: &str) -> Response {
    set(&mut h, header::ETAG, etag);
    respond(StatusCode::NOT_MODIFIED, h, Body::empty())
}

async fn handle<S: BlockSource>(src: Arc<S>, r: &Req) -> Result<Response, GatewayError> {
    let rest = r
        .path
        .strip_prefix("/ipfs/")
        .ok_or_else(|| GatewayError::InvalidPath("expected /ipfs/{cid}[/path]".into()))?;
    let path = params::content_path(rest)?;
    // every block of this request is asked for as part of the DAG the URL names
    let src = Arc::new(Rooted {
        inner: src,
        root: path.root,
    });
    let car_query = CarQuery {
        version: r.param("car-version"),
        order: r.param("car-order"),
        dups: r.param("car-dups"),
    };
    let format = params::negotiate(r.param("format"), r.header(header::ACCEPT), car_query)?;
    let resolved = resolve::resolve(&*src, &path).await?;
    let mut common = HeaderMap::new();
    set(&mut common, X_IPFS_PATH, &r.path);
    let roots: Vec<String> = resolved.roots.iter().map(Cid::to_string).collect();
    set(&mut common, X_IPFS_ROOTS, &roots.join(","));
    set(&mut common, header::VARY, "Accept");
    match format {
        Format::Raw => Ok(raw_block(r, &resolved, common)?),
        Format::Car(p) => car(src, r, resolved, p, common),
        Format::Json => match unixfs_kind(&resolved)? {
            Some(Kind::Directory) => Ok(listing(src, r, &path, resolved, Style::Json, common)),
            _ => Err(GatewayError::NotAcceptable(format!(
                "format=json lists directories; {} is not one",
                resolved.target
            ))),
        },
        Format::Deserialized => deserialized(src, r, &path, resolved, common).await,
    }
}

/// The span to send of a `size`-byte representation with base Etag `etag`: `Range` (unless
/// an `If-Range` names another representation), or everything.
fn range(r: &Req, etag: &str, size: u64) -> Result<Option<(u64, u64)>, GatewayError> {
    let Some(h) = r.header(header::RANGE) else {
        return Ok(None);
    };
    if r.header(header::IF_RANGE)
        .is_some_and(|v| !params::etag_matches(v, etag))
    {
        return Ok(None);
    }
    match params::parse_range(h) {
        Some(specs) => params::select_range(&specs, size).map(Some),
        None => Ok(None),
    }
}

/// Status, Content-Length and Content-Range of a possibly ranged body; the Etag of a partial
/// body names its range.
fn ranged_headers(
    h: &mut HeaderMap,
    etag: &str,
    span: Option<(u64, u64)>,
    size: u64,
) -> StatusCode {
    set(h, header::ACCEPT_RANGES, "bytes");
    match span {
        Some((s, e)) => {
            let base = etag.trim_end_matches('"');
            set(h, header::ETAG, &format!("{base}.{s}-{}\"", e - 1));
            set(
                h,
                header::CONTENT_RANGE,
                &format!("bytes {s}-{}/{size}", e - 1),
            );
            set(h, header::CONTENT_LENGTH, &(e - s).to_string());
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            set(h, header::ETAG, etag);
            set(h, header::CONTENT_LENGTH, &size.to_string());
            StatusCode::OK
        }
    }
}

fn raw_block(r: &Req, res: &Resolved, mut h: HeaderMap) -> Result<Response, GatewayError> {
    let etag = format!("\"{}.raw\"", res.target);
    set(&mut h, header::CACHE_CONTROL, CACHE_IMMUTABLE);
    if r.not_modified(&etag) {
        return Ok(not_modified(h, &etag));
    }
    let size = res.block.len() as u64;
    let span = range(r, &etag, size)?;
    let status = ranged_headers(&mut h, &etag, span, size);
    set(&mut h, header::CONTENT_TYPE, "application/vnd.ipld.raw");
    set(&mut h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let name = r
        .param("filename")
        .map_or_else(|| format!("{}.bin", res.target), str::to_string);
    set(
        &mut h,
        header::CONTENT_DISPOSITION,
        &content_disposition("attachment", &name),
    );
    let (s, e) = span.unwrap_or((0, size));
    let block = res.block.slice(s as usize..e as usize);
    Ok(respond(status, h, r.body(|| Body::from(block))))
}

/// The file size of a UnixFS file target, its kind otherwise.
enum Kind {
    File(u64),
    Directory,
    Other,
}

fn unixfs_kind(res: &Resolved) -> Result<Option<Kind>, GatewayError> {
    Ok(Some(match res.target.codec() {
        RAW => Kind::File(res.block.len() as u64),
        DAG_PB => match decode(&res.target, &res.block)? {
            Node::File { size, .. } => Kind::File(size),
            Node::Raw(b) => Kind::File(b.len() as u64),
            Node::Directory(_) | Node::Hamt(_) => Kind::Directory,
            Node::Symlink(_) => Kind::Other,
        },
        _ => return Ok(None),
    }))
}

fn car<S: BlockSource>(
    src: Arc<S>,
    r: &Req,
    res: Resolved,
    p: CarParams,
    mut h: HeaderMap,
) -> Result<Response, GatewayError> {
    let entity = r
        .param("entity-bytes")
        .map(params::entity_bytes)
        .transpose()?;
    let mut scope = params::scope(r.param("dag-scope"), entity.is_some())?;
    let mut span = None;
    if let (Some(eb), true) = (entity, scope != Scope::Block) {
        // entity-bytes applies to files; for anything else it is ignored
        if let Some(Kind::File(size)) = unixfs_kind(&res)? {
            match eb.resolve(size)? {
                Some(s) => span = Some(s),
                None => scope = Scope::Block,
            }
        }
    }
    let key = format!(
        "{}|{}|{}|{}",
        r.path,
        scope.name(),
        r.param("entity-bytes").unwrap_or(""),
        p.dups
    );
    let digest = blake3::hash(key.as_bytes());
    let tag: String = digest.as_bytes()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let etag = format!("\"{}.car.{}.{tag}\"", res.target, scope.name());
    set(&mut h, header::CACHE_CONTROL, CACHE_IMMUTABLE);
    if r.not_modified(&etag) {
        return Ok(not_modified(h, &etag));
    }
    set(&mut h, header::ETAG, &etag);
    let dups = if p.dups { "y" } else { "n" };
    set(
        &mut h,
        header::CONTENT_TYPE,
        &format!("application/vnd.ipld.car; version=1; order=dfs; dups={dups}"),
    );
    set(&mut h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let name = r
        .param("filename")
        .map_or_else(|| format!("{}.car", res.target), str::to_string);
    set(
        &mut h,
        header::CONTENT_DISPOSITION,
        &content_disposition("attachment", &name),
    );
    let plan = CarPlan {
        root: res.roots.first().copied().unwrap_or(res.target),
        trail: res.trail,
        target: res.target,
        block: res.block,
        scope,
        range: span,
        dups: p.dups,
    };
    let what = r.path.clone();
    let body = r.body(|| walk::spawn_body(what, move |tx| walk::car_stream(src, plan, tx)));
    Ok(respond(StatusCode::OK, h, body))
}

async fn deserialized<S: BlockSource>(
    src: Arc<S>,
    r: &Req,
    path: &ContentPath,
    res: Resolved,
    mut h: HeaderMap,
) -> Result<Response, GatewayError> {
    let name = path.segments.last().cloned();
    match res.target.codec() {
        RAW => {
            let size = res.block.len() as u64;
            let etag = format!("\"{}\"", res.target);
            file(src, r, res, size, name.as_deref(), &etag, h)
        }
        DAG_PB => match decode(&res.target, &res.block)? {
            Node::File { size, .. } => {
                let etag = format!("\"{}\"", res.target);
                file(src, r, res, size, name.as_deref(), &etag, h)
            }
            Node::Directory(_) | Node::Hamt(_) => directory(src, r, path, res, h).await,
            Node::Symlink(target) => {
                // served as its target's text, never followed
                let etag = format!("\"{}\"", res.target);
                set(&mut h, header::CACHE_CONTROL, CACHE_IMMUTABLE);
                if r.not_modified(&etag) {
                    return Ok(not_modified(h, &etag));
                }
                set(&mut h, header::ETAG, &etag);
                set(&mut h, header::CONTENT_TYPE, "text/plain; charset=utf-8");
                set(&mut h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
                set(&mut h, header::CONTENT_LENGTH, &target.len().to_string());
                Ok(respond(StatusCode::OK, h, r.body(|| Body::from(target))))
            }
            Node::Raw(_) => Err(GatewayError::Unsupported("a raw node in dag-pb".into())),
        },
        codec => {
            // other codecs have no deserialized view here: their block as it is
            let (ty, ext) = match codec {
                DAG_CBOR => ("application/vnd.ipld.dag-cbor", "dag-cbor"),
                0x0129 => ("application/vnd.ipld.dag-json", "dag-json"),
                0x0200 => ("application/json", "json"),
                0x51 => ("application/cbor", "cbor"),
                _ => {
                    return Err(GatewayError::NotAcceptable(format!(
                    "codec 0x{codec:x} has no deserialized view; ask for format=raw or format=car"
                )))
                }
            };
            let etag = format!("\"{}.{ext}\"", res.target);
            set(&mut h, header::CACHE_CONTROL, CACHE_IMMUTABLE);
            if r.not_modified(&etag) {
                return Ok(not_modified(h, &etag));
            }
            set(&mut h, header::ETAG, &etag);
            set(&mut h, header::CONTENT_TYPE, ty);
            set(&mut h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
            set(&mut h, header::CONTENT_LENGTH, &res.block.len().to_string());
            let block = res.block;
            Ok(respond(StatusCode::OK, h, r.body(|| Body::from(block))))
        }
    }
}

/// A UnixFS file (or raw block) of `size` bytes: ranges, type from `name`, streamed.
fn file<S: BlockSource>(
    src: Arc<S>,
    r: &Req,
    res: Resolved,
    size: u64,
    name: Option<&str>,
    etag: &str,
    mut h: HeaderMap,
) -> Result<Response, GatewayError> {
    set(&mut h, header::CACHE_CONTROL, CACHE_IMMUTABLE);
    if r.not_modified(etag) {
        return Ok(not_modified(h, etag));
    }
    let span = range(r, etag, size)?;
    let status = ranged_headers(&mut h, etag, span, size);
    let filename = r.param("filename").or(name);
    set(
        &mut h,
        header::CONTENT_TYPE,
        filename.map_or("application/octet-stream", content_type_for),
    );
    set(&mut h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let download = r.param("download") == Some("true");
    if download || r.param("filename").is_some() {
        let disposition = if download { "attachment" } else { "inline" };
        let fallback = res.target.to_string();
        set(
            &mut h,
            header::CONTENT_DISPOSITION,
            &content_disposition(disposition, filename.unwrap_or(&fallback)),
        );
    }
    let (s, e) = span.unwrap_or((0, size));
    let body = r.body(|| {
        if res.target.codec() == RAW {
            Body::from(res.block.slice(s as usize..e as usize))
        } else if s == e {
            Body::empty()
        } else {
            let (what, target, block) = (r.path.clone(), res.target, res.block);
            walk::spawn_body(what, move |tx| {
                walk::file_bytes(src, target, block, size, (s, e), tx)
            })
        }
    });
    Ok(respond(status, h, body))
}

async fn directory<S: BlockSource>(
    src: Arc<S>,
    r: &Req,
    path: &ContentPath,
    res: Resolved,
    mut h: HeaderMap,
) -> Result<Response, GatewayError> {
    if !path.trailing_slash {
        // relative links in a directory's pages need the trailing slash
        let mut location = format!("{}/", r.path);
        if let Some(q) = &r.query {
            location.push('?');
            location.push_str(q);
        }
        set(&mut h, header::LOCATION, &location);
        return Ok(respond(StatusCode::MOVED_PERMANENTLY, h, Body::empty()));
    }
    let node = decode(&res.target, &res.block)?;
    let mut trail = Vec::new();
    match resolve::lookup(&*src, &res.target, node, "index.html", &mut trail).await {
        Ok(index) => {
            let block = fetch(&*src, &index).await?;
            let size = match index.codec() {
                RAW => Some(block.len() as u64),
                _ => match decode(&index, &block)? {
                    Node::File { size, .. } => Some(size),
                    _ => None,
                },
            };
            if let Some(size) = size {
                let etag = format!("\"{}\"", res.target);
                let page = Resolved {
                    target: index,
                    block,
                    ..res
                };
                return file(src, r, page, size, Some("index.html"), &etag, h);
            }
        }
        Err(GatewayError::NoSuchEntry { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(listing(src, r, path, res, Style::Html, h))
}

fn listing<S: BlockSource>(
    src: Arc<S>,
    r: &Req,
    path: &ContentPath,
    res: Resolved,
    style: Style,
    mut h: HeaderMap,
) -> Response {
    let (etag, ty) = match style {
        Style::Html => (listing::html_etag(&res.target), "text/html; charset=utf-8"),
        Style::Json => (listing::json_etag(&res.target), "application/json"),
    };
    set(&mut h, header::CACHE_CONTROL, CACHE_LISTING);
    if r.not_modified(&etag) {
        return not_modified(h, &etag);
    }
    set(&mut h, header::ETAG, &etag);
    set(&mut h, header::CONTENT_TYPE, ty);
    set(&mut h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    let l = Listing {
        root_text: path.root_text.clone(),
        segments: path.segments.clone(),
        dir: res.target,
        block: res.block,
        style,
    };
    let what = r.path.clone();
    let body = r.body(|| walk::spawn_body(what, move |tx| listing::stream(src, l, tx)));
    respond(StatusCode::OK, h, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranged_etags_name_their_range() {
        let mut h = HeaderMap::new();
        assert_eq!(
            ranged_headers(&mut h, "\"bafyx\"", Some((6, 17)), 31),
            StatusCode::PARTIAL_CONTENT
        );
        assert_eq!(h[header::ETAG], "\"bafyx.6-16\"");
        assert_eq!(h[header::CONTENT_RANGE], "bytes 6-16/31");
        assert_eq!(h[header::CONTENT_LENGTH], "11");
        let mut h = HeaderMap::new();
        assert_eq!(
            ranged_headers(&mut h, "\"bafyx\"", None, 31),
            StatusCode::OK
        );
        assert_eq!(h[header::ETAG], "\"bafyx\"");
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    }
}
