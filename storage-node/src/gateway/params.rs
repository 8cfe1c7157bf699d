//! Parsing what a request asks for: the content path, the response format (`format` query
//! parameter or `Accept`), CAR parameters, `dag-scope`, `entity-bytes`, `Range`,
//! `If-None-Match` and `Cache-Control: only-if-cached`. Pure functions over strings; every
//! failure is a [`GatewayError`] with the status the specs give it.

use super::error::GatewayError;
use super::headers;
use cairn_core::block::{parse_cid, CidError};
use cid::Cid;

/// Multihash code of the identity "hash" (the digest is the data itself).
pub const IDENTITY: u64 = 0x00;

/// Longest content path accepted, in bytes (percent-encoded). Paths name entries in a DAG; a
/// longer one is abuse, and each segment costs a directory lookup.
pub const MAX_PATH_LEN: usize = 4096;

/// A parsed `/ipfs/{cid}[/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentPath {
    /// The root CID.
    pub root: Cid,
    /// The root CID as written in the request (links in listings repeat it).
    pub root_text: String,
    /// Percent-decoded path segments after the CID (empty segments dropped).
    pub segments: Vec<String>,
    /// Whether the path ends with `/`.
    pub trailing_slash: bool,
}

/// Parses the part of a request path after `/ipfs/` (still percent-encoded).
pub fn content_path(rest: &str) -> Result<ContentPath, GatewayError> {
    if rest.len() > MAX_PATH_LEN {
        return Err(GatewayError::InvalidPath(format!(
            "longer than {MAX_PATH_LEN} bytes"
        )));
    }
    let mut parts = rest.split('/');
    let cid_part = parts.next().unwrap_or_default();
    let root = parse_root(cid_part)?;
    let mut segments = Vec::new();
    for raw in parts.filter(|p| !p.is_empty()) {
        let bytes = headers::decode(raw)
            .ok_or_else(|| GatewayError::InvalidPath(format!("bad percent-encoding in {raw:?}")))?;
        let seg = String::from_utf8(bytes)
            .map_err(|_| GatewayError::InvalidPath(format!("{raw:?} is not UTF-8")))?;
        if seg == "." || seg == ".." || seg.contains('/') || seg.contains('\0') {
            return Err(GatewayError::InvalidPath(format!(
                "{seg:?} cannot be a UnixFS name"
            )));
        }
        segments.push(seg);
    }
    Ok(ContentPath {
        root,
        root_text: cid_part.to_string(),
        segments,
        trailing_slash: rest.ends_with('/') && rest.len() > cid_part.len(),
    })
}

/// Parses a root CID: any CID whose hash Cairn verifies, or an identity CID (its data is in
/// the CID, as in the `bafkqaaa` probe).
pub fn parse_root(s: &str) -> Result<Cid, GatewayError> {
    let invalid = |reason: String| GatewayError::InvalidCid {
        input: s.chars().take(100).collect(),
        reason,
    };
    let cid = Cid::try_from(s).map_err(|e| invalid(e.to_string()))?;
    if cid.hash().code() == IDENTITY {
        return Ok(cid);
    }
    parse_cid(s).map_err(|e| match e {
        CidError::Invalid { reason, .. } => invalid(reason),
        CidError::UnsupportedHash(_, code) => invalid(format!(
            "hash function 0x{code:x} is not one this gateway verifies (sha2-256, blake3, identity)"
        )),
    })
}

/// How the target is to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The path gateway: file bytes, a directory's `index.html` or listing, a symlink's target.
    Deserialized,
    /// One block, `application/vnd.ipld.raw`.
    Raw,
    /// A CAR stream, `application/vnd.ipld.car`.
    Car(CarParams),
    /// A directory listing as JSON (`application/json`).
    Json,
}

/// What the client asked of a CAR stream. The order is always `dfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarParams {
    /// Send a block again each time the walk meets it (`dups=y`); default `n`.
    pub dups: bool,
}

/// Response types named by the specs that this gateway does not produce.
const UNSUPPORTED_TYPES: &[&str] = &[
    "application/x-tar",
    "application/vnd.ipld.dag-json",
    "application/vnd.ipld.dag-cbor",
    "application/vnd.ipfs.ipns-record",
    "application/cbor",
];

/// The `format` values of the specs that this gateway does not produce.
const UNSUPPORTED_FORMATS: &[&str] = &["tar", "dag-json", "dag-cbor", "cbor", "ipns-record"];

/// One media range of an `Accept` header: type, parameters, quality.
type MediaRange = (String, Vec<(String, String)>, f32);

/// The media ranges of an `Accept` header, best first; those of quality 0 left out.
fn media_ranges(accept: &str) -> Vec<MediaRange> {
    let mut out: Vec<MediaRange> = accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let ty = parts.next()?.trim().to_ascii_lowercase();
            if ty.is_empty() {
                return None;
            }
            let mut q = 1.0f32;
            let mut params = Vec::new();
            for p in parts {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"'));
                if k == "q" {
                    q = v.parse().unwrap_or(0.0);
                } else {
                    params.push((k, v.to_ascii_lowercase()));
                }
            }
            Some((ty, params, q))
        })
        .filter(|(_, _, q)| *q > 0.0)
        .collect();
    // highest quality first; equal qualities keep the client's order
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out
}

/// The CAR query parameters (`car-version`, `car-order`, `car-dups`), which take precedence
/// over the `Accept` parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct CarQuery<'a> {
    /// `car-version`.
    pub version: Option<&'a str>,
    /// `car-order`.
    pub order: Option<&'a str>,
    /// `car-dups`.
    pub dups: Option<&'a str>,
}

fn car_params(accept: &[(String, String)], q: CarQuery<'_>) -> Result<CarParams, GatewayError> {
    let param = |name: &str| {
        accept
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let version = q.version.or(param("version"));
    let order = q.order.or(param("order"));
    let dups = q.dups.or(param("dups"));
    if let Some(v) = version {
        if v != "1" {
            return Err(GatewayError::NotAcceptable(format!(
                "CAR version {v:?}: only version=1 is produced"
            )));
        }
    }
    if let Some(o) = order {
        if o != "dfs" && o != "unk" {
            return Err(GatewayError::NotAcceptable(format!(
                "CAR order {o:?}: only dfs (or unk) is produced"
            )));
        }
    }
    let dups = match dups {
        None | Some("n") => false,
        Some("y") => true,
        Some(d) => {
            return Err(GatewayError::NotAcceptable(format!(
                "CAR dups {d:?}: y or n"
            )))
        }
    };
    Ok(CarParams { dups })
}

/// Picks the response format: the `format` query parameter first, then the `Accept` header
/// (by quality). Accept values naming no special type (`text/html`, `*/*`, `image/png`, ...)
/// mean the deserialized path gateway response; an Accept that names only types this gateway
/// does not produce is 406.
pub fn negotiate(
    format: Option<&str>,
    accept: Option<&str>,
    car: CarQuery<'_>,
) -> Result<Format, GatewayError> {
    let ranges = accept.map(media_ranges).unwrap_or_default();
    let car_accept = ranges
        .iter()
        .find(|(t, _, _)| t == "application/vnd.ipld.car")
        .map(|(_, p, _)| p.as_slice())
        .unwrap_or(&[]);
    if let Some(f) = format {
        return match f {
            "raw" => Ok(Format::Raw),
            "car" => Ok(Format::Car(car_params(car_accept, car)?)),
            "json" => Ok(Format::Json),
            f if UNSUPPORTED_FORMATS.contains(&f) => Err(GatewayError::NotAcceptable(format!(
                "format={f} is not produced by this gateway (raw, car, json)"
            ))),
            f => Err(GatewayError::BadParam {
                name: "format",
                value: f.chars().take(100).collect(),
                reason: "not a known response format".into(),
            }),
        };
    }
    let mut refused = None;
    for (ty, params, _) in &ranges {
        match ty.as_str() {
            "application/vnd.ipld.raw" => return Ok(Format::Raw),
            "application/vnd.ipld.car" => return Ok(Format::Car(car_params(params, car)?)),
            "application/json" => return Ok(Format::Json),
            t if UNSUPPORTED_TYPES.contains(&t) => refused = Some(t.to_string()),
            _ => return Ok(Format::Deserialized),
        }
    }
    match refused {
        Some(t) => Err(GatewayError::NotAcceptable(format!(
            "{t} is not produced by this gateway"
        ))),
        None => Ok(Format::Deserialized),
    }
}

/// `dag-scope`: which part of the DAG at the end of the path a CAR carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the terminal block.
    Block,
    /// What it takes to read the terminal entity: a whole file, or a directory's own blocks.
    Entity,
    /// The whole DAG under the terminal block.
    All,
}

impl Scope {
    /// The name used in the query parameter and the Etag.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Block => "block",
            Scope::Entity => "entity",
            Scope::All => "all",
        }
    }
}

/// Parses `dag-scope`; absent means `all`, or `entity` when `entity-bytes` is given.
pub fn scope(value: Option<&str>, has_entity_bytes: bool) -> Result<Scope, GatewayError> {
    match value {
        None if has_entity_bytes => Ok(Scope::Entity),
        None | Some("all") => Ok(Scope::All),
        Some("entity") => Ok(Scope::Entity),
        Some("block") => Ok(Scope::Block),
        Some(v) => Err(GatewayError::BadParam {
            name: "dag-scope",
            value: v.chars().take(100).collect(),
            reason: "block, entity or all".into(),
        }),
    }
}

/// `entity-bytes=from:to`, inclusive; negative values count from the end, `to` may be `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityBytes {
    /// First byte (negative: from the end).
    pub from: i64,
    /// Last byte (negative: from the end); `None` for `*`.
    pub to: Option<i64>,
}

/// Parses `entity-bytes`.
pub fn entity_bytes(value: &str) -> Result<EntityBytes, GatewayError> {
    let bad = |reason: &str| GatewayError::BadParam {
        name: "entity-bytes",
        value: value.chars().take(100).collect(),
        reason: reason.into(),
    };
    let (from, to) = value
        .split_once(':')
        .ok_or_else(|| bad("expected from:to"))?;
    let int = |s: &str| -> Result<i64, GatewayError> {
        if s.is_empty()
            || !s
                .trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad("from and to are integers (to may be *)"));
        }
        s.parse().map_err(|_| bad("offset out of range"))
    };
    let from = int(from)?;
    let to = if to == "*" { None } else { Some(int(to)?) };
    if let (true, Some(t)) = (from >= 0, to) {
        if t >= 0 && t < from {
            return Err(bad("to is before from"));
        }
    }
    Ok(EntityBytes { from, to })
}

impl EntityBytes {
    /// The half-open byte span `[start, end)` of a `size`-byte entity, or `None` when it is
    /// empty (then only the entity's root block is sent). `Err` when `from` lies past the end
    /// (the spec's 400 for a range known to be outside the entity).
    pub fn resolve(self, size: u64) -> Result<Option<(u64, u64)>, GatewayError> {
        let at = |v: i64| -> u64 {
            if v >= 0 {
                v as u64
            } else {
                size.saturating_sub(v.unsigned_abs())
            }
        };
        let start = at(self.from);
        if start >= size && size > 0 {
            return Err(GatewayError::BadParam {
                name: "entity-bytes",
                value: format!(
                    "{}:{}",
                    self.from,
                    self.to.map_or("*".into(), |t| t.to_string())
                ),
                reason: format!("starts past the end of the {size}-byte entity"),
            });
        }
        let end = match self.to {
            None => size,
            Some(t) if t < 0 && t.unsigned_abs() > size => 0,
            Some(t) => at(t).saturating_add(1).min(size),
        };
        Ok((start < end).then_some((start, end)))
    }
}

/// One range of a `Range: bytes=` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` or `first-` (inclusive).
    FromTo(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Parses a `Range` header; `None` when it is not a well-formed `bytes` range set (such a
/// header is ignored and the whole representation sent, as RFC 9110 §14.2 says).
pub fn parse_range(header: &str) -> Option<Vec<RangeSpec>> {
    let set = header.trim().strip_prefix("bytes=")?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut out = Vec::new();
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        let (a, b) = spec.split_once('-')?;
        if a.trim().is_empty() {
            out.push(RangeSpec::Suffix(num(b)?));
        } else {
            let first = num(a)?;
            let last = if b.trim().is_empty() {
                None
            } else {
                Some(num(b)?)
            };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            out.push(RangeSpec::FromTo(first, last));
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The half-open span `[start, end)` to send of a `size`-byte representation: the first
/// satisfiable range (several ranges are answered with the first one only, as the
/// conformance suite allows), or 416.
pub fn select_range(specs: &[RangeSpec], size: u64) -> Result<(u64, u64), GatewayError> {
    for s in specs {
        match *s {
            RangeSpec::FromTo(first, last) if first < size => {
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                return Ok((first, end));
            }
            RangeSpec::Suffix(n) if n > 0 && size > 0 => return Ok((size.saturating_sub(n), size)),
            _ => {}
        }
    }
    Err(GatewayError::RangeNotSatisfiable { size })
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, `*` matches anything).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let want = strip(etag);
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || strip(t) == want)
}

/// Whether a `Cache-Control` request header holds the `only-if-cached` directive.
pub fn only_if_cached(cache_control: &str) -> bool {
    cache_control
        .split(',')
        .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = "bafybeie72edlprgtlwwctzljf6gkn2wnlrddqjbkxo3jomh4n7omwblxly";

    #[test]
    fn content_paths() {
        let p = content_path(&format!("{DIR}/%C4%85/%C4%99/")).unwrap();
        assert_eq!(p.segments, ["ą", "ę"]);
        assert!(p.trailing_slash);
        let p = content_path(DIR).unwrap();
        assert!(p.segments.is_empty() && !p.trailing_slash);
        let p = content_path(&format!("{DIR}/")).unwrap();
        assert!(p.segments.is_empty() && p.trailing_slash);
        let p = content_path(&format!("{DIR}//a//b")).unwrap();
        assert_eq!(p.segments, ["a", "b"]);
        let p = content_path(&format!(
            "{DIR}/Portugal%252C+Espa%C3%B1a=Peninsula%20Ib%C3%A9rica.txt"
        ))
        .unwrap();
        assert_eq!(p.segments, ["Portugal%2C+España=Peninsula Ibérica.txt"]);
        for bad in [
            "".to_string(),
            "not-a-cid".into(),
            format!("{DIR}/%zz"),
            format!("{DIR}/%ff"),   // not UTF-8
            format!("{DIR}/.."),    // never a UnixFS name
            format!("{DIR}/a%2Fb"), // a slash inside a name
            format!("{DIR}/a%00b"), // NUL
            format!("{DIR}/{}", "a/".repeat(MAX_PATH_LEN)),
        ] {
            assert!(content_path(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn root_cids() {
        // the empty identity CID (the trustless gateway probe) and a CIDv0
        assert!(parse_root("bafkqaaa").is_ok());
        assert!(parse_root("QmYzfKSE55XCjD1MW128RfciAf2DViABhEiXfgVFMabSjN").is_ok());
        assert!(parse_root(DIR).is_ok());
        // sha3-256 (0x16): a valid CID this gateway cannot verify
        let sha3 = Cid::new_v1(
            0x55,
            cid::multihash::Multihash::<64>::wrap(0x16, &[1; 32]).unwrap(),
        );
        assert!(matches!(
            parse_root(&sha3.to_string()),
            Err(GatewayError::InvalidCid { .. })
        ));
        assert!(parse_root("bafy").is_err());
    }

    #[test]
    fn format_negotiation() {
        use Format::*;
        let car = |dups| Car(CarParams { dups });
        let none = CarQuery::default();
        for (format, accept, want) in [
            (None, None, Deserialized),
            (Some("raw"), None, Raw),
            (Some("car"), None, car(false)),
            (Some("json"), None, Json),
            (None, Some("application/vnd.ipld.raw"), Raw),
            (None, Some("application/vnd.ipld.car"), car(false)),
            (
                None,
                Some("application/vnd.ipld.car; version=1; order=dfs; dups=y"),
                car(true),
            ),
            (
                None,
                Some("application/vnd.ipld.car; order=unk"),
                car(false),
            ),
            (None, Some("application/json"), Json),
            (
                None,
                Some("text/html,application/xhtml+xml,*/*;q=0.8"),
                Deserialized,
            ),
            (None, Some("*/*"), Deserialized),
            // quality decides, then order
            (
                None,
                Some("application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car"),
                car(false),
            ),
            (
                None,
                Some("application/x-tar, application/vnd.ipld.raw;q=0.9"),
                Raw,
            ),
            (
                None,
                Some("application/vnd.ipld.raw;q=0, text/html"),
                Deserialized,
            ),
            // format wins over Accept, and takes the Accept's CAR parameters
            (Some("car"), Some("application/vnd.ipld.raw"), car(false)),
            (Some("raw"), Some("application/vnd.ipld.car"), Raw),
            (
                Some("car"),
                Some("application/vnd.ipld.car; version=1; order=dfs; dups=y"),
                car(true),
            ),
        ] {
            assert_eq!(
                negotiate(format, accept, none).unwrap(),
                want,
                "{format:?} {accept:?}"
            );
        }
        // query parameters win over Accept parameters
        let q = CarQuery {
            dups: Some("y"),
            order: Some("dfs"),
            version: None,
        };
        assert_eq!(
            negotiate(Some("car"), Some("application/vnd.ipld.car; dups=n"), q).unwrap(),
            car(true)
        );
        for (format, accept, status) in [
            (Some("tar"), None, 406),
            (Some("dag-json"), None, 406),
            (Some("bogus"), None, 400),
            (None, Some("application/x-tar"), 406),
            (None, Some("application/vnd.ipld.dag-json"), 406),
            (None, Some("application/vnd.ipld.car; version=2"), 406),
            (None, Some("application/vnd.ipld.car; dups=maybe"), 406),
            (None, Some("application/vnd.ipld.car; order=bfs"), 406),
        ] {
            let e = negotiate(format, accept, none).unwrap_err();
            assert_eq!(e.status().as_u16(), status, "{format:?} {accept:?}");
        }
    }

    #[test]
    fn dag_scopes() {
        assert_eq!(scope(None, false).unwrap(), Scope::All);
        assert_eq!(scope(None, true).unwrap(), Scope::Entity);
        assert_eq!(scope(Some("block"), true).unwrap(), Scope::Block);
        assert_eq!(scope(Some("entity"), false).unwrap(), Scope::Entity);
        assert!(scope(Some("everything"), false).is_err());
    }

    #[test]
    fn entity_bytes_parse_and_resolve() {
        // (value, size, span): the conformance cases on the 1026-byte multiblock.txt first
        for (value, size, want) in [
            ("0:*", 1026, Some((0, 1026))),
            ("0:0", 1026, Some((0, 1))),
            ("512:*", 1026, Some((512, 1026))),
            ("512:1023", 1026, Some((512, 1024))),
            ("512:-256", 1026, Some((512, 771))),
            ("-5:*", 1026, Some((1021, 1026))),
            ("-9999:*", 1026, Some((0, 1026))),
            ("-9999:-3", 1026, Some((0, 1024))),
            ("0:1000", 3072, Some((0, 1001))),
            ("2200:*", 3072, Some((2200, 3072))),
            ("0:99999", 10, Some((0, 10))), // to past the end is clamped
            ("5:-9999", 10, None),          // ends before the start: the root block only
            ("0:*", 0, None),               // an empty file
        ] {
            let eb = entity_bytes(value).unwrap();
            assert_eq!(eb.resolve(size).unwrap(), want, "{value} of {size}");
        }
        assert!(entity_bytes("2000:*").unwrap().resolve(1026).is_err());
        for bad in [
            "",
            "5",
            "a:b",
            "1:",
            ":1",
            "5:3",
            "1.5:*",
            "--1:*",
            "99999999999999999999:*",
        ] {
            assert!(entity_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_parse_and_select() {
        use RangeSpec::*;
        for (header, want) in [
            ("bytes=6-16", Some(vec![FromTo(6, Some(16))])),
            ("bytes=-3", Some(vec![Suffix(3)])),
            ("bytes=5-", Some(vec![FromTo(5, None)])),
            (
                "bytes=6-16,0-4",
                Some(vec![FromTo(6, Some(16)), FromTo(0, Some(4))]),
            ),
            ("bytes= 1-2 , -1", Some(vec![FromTo(1, Some(2)), Suffix(1)])),
            ("bytes=5-4", None), // last before first: invalid, ignored
            ("items=1-2", None),
            ("bytes=", None),
            ("bytes=a-b", None),
            ("bytes=1", None),
            ("bytes=--1", None),
        ] {
            assert_eq!(parse_range(header), want, "{header}");
        }
        // (header, size, span or 416): the conformance ascii.txt is 31 bytes
        for (header, size, want) in [
            ("bytes=6-16", 31, Some((6, 17))),
            ("bytes=-3", 31, Some((28, 31))),
            ("bytes=6-16,0-4", 31, Some((6, 17))),
            ("bytes=0-999", 31, Some((0, 31))),
            ("bytes=-999", 31, Some((0, 31))),
            ("bytes=30-", 31, Some((30, 31))),
            ("bytes=31-", 31, None),
            ("bytes=-0", 31, None),
            ("bytes=99-100,2-3", 31, Some((2, 4))), // the first satisfiable one
            ("bytes=0-0", 0, None),                 // nothing of an empty file
            ("bytes=-1", 0, None),
        ] {
            let specs = parse_range(header).unwrap();
            let got = select_range(&specs, size);
            match want {
                Some(span) => assert_eq!(got.unwrap(), span, "{header}"),
                None => assert!(
                    matches!(got, Err(GatewayError::RangeNotSatisfiable { .. })),
                    "{header}"
                ),
            }
        }
    }

    #[test]
    fn conditional_headers() {
        let e = "\"bafyfoo\"";
        for (inm, want) in [
            ("\"bafyfoo\"", true),
            ("W/\"bafyfoo\"", true),
            ("*", true),
            ("\"a\", \"b\", \"bafyfoo\"", true),
            ("\"bafybar\"", false),
            ("bafyfoo", false),
        ] {
            assert_eq!(etag_matches(inm, e), want, "{inm}");
        }
        assert!(only_if_cached("only-if-cached"));
        assert!(only_if_cached("max-age=0, Only-If-Cached"));
        assert!(!only_if_cached("no-cache"));
    }
}
