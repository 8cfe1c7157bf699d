//! Directory listings, HTML and JSON, streamed entry by entry (a HAMT-sharded directory's
//! shards are fetched as the listing goes, a few ahead).
//!
//! Entry names come from the DAG and may be hostile: in HTML they are escaped, in links
//! percent-encoded. Entries are listed in the order the directory holds them (flat
//! directories: sorted by name; HAMT shards: by hash).

use super::error::GatewayError;
use super::headers::{encode, html_escape, Set};
use super::resolve::decode;
use super::source::BlockSource;
use super::walk::{send, Queue, Tx};
use bytes::Bytes;
use cairn_core::dag::{DagError, Node, MAX_DEPTH};
use cid::Cid;
use std::collections::HashSet;
use std::sync::Arc;

/// Listing output is sent in chunks of about this many bytes.
const CHUNK: usize = 32 << 10;

const HTML_HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.2em; word-break: break-all; }
table { border-collapse: collapse; }
td { padding: 0.2em 1em 0.2em 0; vertical-align: top; }
.ipfs-hash { font-family: monospace; color: #666; }
.size { text-align: right; white-space: nowrap; }
</style>
</head>
<body>
"#;

const HTML_TAIL: &str = "</table>\n</body>\n</html>\n";

/// `Etag` of an HTML listing of `dir`: it changes with the listing's template, as the path
/// gateway spec asks of generated pages.
pub fn html_etag(dir: &Cid) -> String {
    let v = blake3::hash(HTML_HEAD.as_bytes());
    let v: String = v.as_bytes()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"DirIndex-{v}_CID-{dir}\"")
}

/// `Etag` of a JSON listing of `dir`.
pub fn json_etag(dir: &Cid) -> String {
    format!("\"DirIndexJSON-1_CID-{dir}\"")
}

/// The listing's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `text/html`.
    Html,
    /// `application/json`: `{"cid", "path", "entries": [{"name", "cid", "size"}]}`.
    Json,
}

/// What to list.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The root CID as written in the request.
    pub root_text: String,
    /// The path segments from the root to the directory.
    pub segments: Vec<String>,
    /// The directory.
    pub dir: Cid,
    /// Its block.
    pub block: Bytes,
    /// HTML or JSON.
    pub style: Style,
}

impl Listing {
    /// `/ipfs/{root}` plus the first `n` segments, percent-encoded.
    fn href(&self, n: usize) -> String {
        let mut h = format!("/ipfs/{}", encode(&self.root_text, Set::PathSegment));
        for s in &self.segments[..n] {
            h.push('/');
            h.push_str(&encode(s, Set::PathSegment));
        }
        h
    }

    fn head(&self) -> String {
        let mut display = format!("/ipfs/{}/", self.root_text);
        for s in &self.segments {
            display.push_str(s);
            display.push('/');
        }
        match self.style {
            Style::Json => format!(
                "{{\"cid\":{},\"path\":{},\"entries\":[",
                json(&self.dir.to_string()),
                json(&display)
            ),
            Style::Html => {
                let mut out = HTML_HEAD.replace("{title}", &html_escape(&display));
                out.push_str("<h1>Index of /ipfs/");
                let root = html_escape(&self.root_text);
                out.push_str(&format!("<a href=\"{}\">{root}</a>", self.href(0)));
                for (i, s) in self.segments.iter().enumerate() {
                    out.push_str(&format!(
                        "/<a href=\"{}\">{}</a>",
                        self.href(i + 1),
                        html_escape(s)
                    ));
                }
                out.push_str(&format!(
                    "</h1>\n<p class=\"ipfs-hash\" translate=\"no\">{}</p>\n<table>\n",
                    self.dir
                ));
                if !self.segments.is_empty() {
                    out.push_str(&format!(
                        "<tr><td><a href=\"{}/..\">..</a></td><td></td><td></td></tr>\n",
                        self.href(self.segments.len())
                    ));
                }
                out
            }
        }
    }

    fn entry(&self, first: bool, name: &str, cid: &Cid, size: u64, out: &mut String) {
        match self.style {
            Style::Json => {
                if !first {
                    out.push(',');
                }
                out.push_str(&format!(
                    "{{\"name\":{},\"cid\":{},\"size\":{size}}}",
                    json(name),
                    json(&cid.to_string())
                ));
            }
            Style::Html => {
                let seg = encode(name, Set::PathSegment);
                out.push_str(&format!(
                    "<tr><td><a href=\"{}/{seg}\">{}</a></td>\
                     <td><a class=\"ipfs-hash\" translate=\"no\" href=\"/ipfs/{cid}?filename={}\">{cid}</a></td>\
                     <td class=\"size\">{}</td></tr>\n",
                    self.href(self.segments.len()),
                    html_escape(name),
                    encode(&seg, Set::Unreserved),
                    human(size)
                ));
            }
        }
    }

    fn tail(&self) -> &'static str {
        match self.style {
            Style::Json => "]}\n",
            Style::Html => HTML_TAIL,
        }
    }
}

fn json(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A byte count for people: `34 B`, `1.5 KiB`, `2.0 GiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Streams the listing of `l.dir` (a flat or HAMT-sharded directory).
pub async fn stream<S: BlockSource>(
    src: Arc<S>,
    l: Listing,
    mut tx: Tx,
) -> Result<(), GatewayError> {
    let mut out = l.head();
    let mut first = true;
    let mut seen = HashSet::new();
    let mut q = Queue::new(src);
    q.push_ready(l.dir, 0usize, l.block.clone());
    while let Some(next) = q.pop().await {
        let (cid, depth, bytes) = next?;
        if depth > MAX_DEPTH {
            return Err(GatewayError::Decode {
                cid,
                source: DagError::TooDeep,
            });
        }
        let mut shards = Vec::new();
        match decode(&cid, &bytes)? {
            Node::Directory(entries) if depth == 0 => {
                for (name, c, size) in entries {
                    l.entry(first, &name, &c, size, &mut out);
                    first = false;
                    if out.len() >= CHUNK
                        && !send(&mut tx, Bytes::from(std::mem::take(&mut out))).await
                    {
                        return Ok(());
                    }
                }
            }
            Node::Hamt(links) => {
                for (name, c, size) in links {
                    match name.get(2..) {
                        // a shard linked twice would list its entries twice (or, nested,
                        // exponentially often): refused
                        Some("") if !seen.insert(c) => {
                            return Err(GatewayError::Decode {
                                cid,
                                source: DagError::NotADirectory(c),
                            })
                        }
                        Some("") => shards.push((c, depth + 1)),
                        Some(entry) => {
                            l.entry(first, entry, &c, size, &mut out);
                            first = false;
                        }
                        None => {
                            return Err(GatewayError::Decode {
                                cid,
                                source: DagError::NotADirectory(cid),
                            })
                        }
                    }
                    if out.len() >= CHUNK
                        && !send(&mut tx, Bytes::from(std::mem::take(&mut out))).await
                    {
                        return Ok(());
                    }
                }
            }
            _ => {
                return Err(GatewayError::Decode {
                    cid,
                    source: DagError::NotADirectory(cid),
                })
            }
        }
        q.push_children(shards);
    }
    out.push_str(l.tail());
    send(&mut tx, Bytes::from(out)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        for (n, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (3 << 30, "3.0 GiB"),
            (u64::MAX, "16384.0 PiB"),
        ] {
            assert_eq!(human(n), want);
        }
    }

    #[test]
    fn listing_links_are_encoded_and_names_escaped() {
        let dir = cairn_core::block::HashAlg::Sha2_256.cid(cairn_core::block::DAG_PB, b"d");
        let l = Listing {
            root_text: "bafyroot".into(),
            segments: vec!["ą".into(), "ę".into()],
            dir,
            block: Bytes::new(),
            style: Style::Html,
        };
        let head = l.head();
        assert!(head.contains(
            r#"/ipfs/<a href="/ipfs/bafyroot">bafyroot</a>/<a href="/ipfs/bafyroot/%C4%85">ą</a>/<a href="/ipfs/bafyroot/%C4%85/%C4%99">ę</a>"#
        ));
        assert!(head.contains(r#"<a href="/ipfs/bafyroot/%C4%85/%C4%99/..">..</a>"#));
        let mut row = String::new();
        l.entry(true, "<script>\"x\".txt", &dir, 5, &mut row);
        assert!(row.contains("&lt;script&gt;&quot;x&quot;.txt</a>"), "{row}");
        assert!(!row.contains("<script>"));
        assert!(
            row.contains(r#"href="/ipfs/bafyroot/%C4%85/%C4%99/%3Cscript%3E%22x%22.txt""#),
            "{row}"
        );
        // a root listing has no link up
        let root = Listing {
            segments: vec![],
            ..l.clone()
        };
        assert!(!root.head().contains(">..</a>"));
        let j = Listing {
            style: Style::Json,
            ..l
        };
        let mut body = j.head();
        j.entry(true, "a\"b", &dir, 1, &mut body);
        j.entry(false, "c", &dir, 2, &mut body);
        body.push_str(j.tail());
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["entries"][0]["name"], "a\"b");
        assert_eq!(v["entries"][1]["size"], 2);
        assert_eq!(v["path"], "/ipfs/bafyroot/ą/ę/");
    }
}
