//! Shared by the gateway tests (`gateway_trustless.rs`, `gateway_path.rs`): the
//! gateway-conformance fixtures (`fixtures/gateway-conformance/`, ipfs/gateway-conformance at
//! 22c76440) loaded into one repo behind one gateway on 127.0.0.1:0, and an HTTP client whose
//! CAR bodies are parsed back with a verifying reader, so every block is checked against its
//! CID.

use bytes::Bytes;
use cairn_core::block::DAG_PB;
use cairn_core::car::CarReader;
use cairn_core::dag::DagReader;
use cairn_core::dagpb::PbNode;
use cairn_repo::store::{Batch, Durability};
use cairn_repo::Repo;
use cairn_storage_node::gateway::{self, BlockSource, RepoSource};
use cid::Cid;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------------------------------
// fixtures

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/gateway-conformance/fixtures")
        .join(name)
}

/// One fixture CAR: its root and blocks (verified against their CIDs on reading).
pub struct Fixture {
    pub root: Cid,
    pub blocks: HashMap<Cid, Bytes>,
}

/// `cid` as CIDv1 (kubo's CIDv0 fixtures link `Qm...`; the gateway answers under either).
pub fn v1(cid: &Cid) -> Cid {
    Cid::new_v1(cid.codec(), *cid.hash())
}

impl Fixture {
    pub fn load(repo: &Repo, name: &str) -> Fixture {
        let bytes = std::fs::read(fixture_path(name)).unwrap();
        let mut r = CarReader::new(bytes.as_slice()).unwrap();
        let root = r.roots()[0];
        let mut blocks = HashMap::new();
        let mut batch = Batch::new();
        while let Some(b) = r.next_block().unwrap() {
            blocks.insert(v1(&b.cid), b.data.clone());
            batch.put_block(b);
        }
        repo.store().write(batch, Durability::Sync).unwrap();
        Fixture { root, blocks }
    }

    pub fn raw(&self, cid: &Cid) -> Bytes {
        self.blocks[&v1(cid)].clone()
    }

    /// The CID at `path` under the root, found by listing whole directories (flat or HAMT)
    /// with the DAG reader, independently of the gateway's hashed HAMT lookup.
    pub fn cid(&self, path: &[&str]) -> Cid {
        let mut r = DagReader::new(|c: &Cid| {
            self.blocks
                .get(&v1(c))
                .map(|b| b.to_vec())
                .ok_or_else(|| "missing".into())
        });
        r.resolve(&self.root, &path.join("/")).unwrap()
    }

    pub fn links(&self, cid: &Cid) -> Vec<(String, Cid)> {
        if cid.codec() != DAG_PB {
            return vec![];
        }
        PbNode::decode(&self.raw(cid))
            .unwrap()
            .links
            .into_iter()
            .map(|l| (l.name.unwrap_or_default(), l.hash))
            .collect()
    }

    /// Every block under `cid` (not itself), depth-first, repeats included.
    pub fn descendants(&self, cid: &Cid) -> Vec<Cid> {
        let mut out = Vec::new();
        for (_, c) in self.links(cid) {
            out.push(c);
            out.extend(self.descendants(&c));
        }
        out
    }

    /// The shards of the HAMT at `dir` (not itself), depth-first.
    pub fn hamt_shards(&self, dir: &Cid) -> Vec<Cid> {
        let mut out = Vec::new();
        for (name, c) in self.links(dir) {
            if name.len() == 2 {
                out.push(c);
                out.extend(self.hamt_shards(&c));
            }
        }
        out
    }

    /// The shards between the HAMT at `dir` and the shard that links `name`, found by search.
    pub fn hamt_path(&self, dir: &Cid, name: &str) -> Option<Vec<Cid>> {
        for (n, c) in self.links(dir) {
            if n.len() == 2 {
                if let Some(mut rest) = self.hamt_path(&c, name) {
                    rest.insert(0, c);
                    return Some(rest);
                }
            } else if &n[2..] == name {
                return Some(vec![]);
            }
        }
        None
    }
}

pub struct World {
    pub base: String,
    pub agent: ureq::Agent,
    pub fx: HashMap<&'static str, Fixture>,
    _rt: tokio::runtime::Runtime,
}

pub const CARS: &[&str] = &[
    "gateway-raw-block.car",
    "trustless_gateway_car/subdir-with-two-single-block-files.car",
    "trustless_gateway_car/single-layer-hamt-with-multi-block-files.car",
    "trustless_gateway_car/dir-with-dag-cbor-with-links.car",
    "trustless_gateway_car/subdir-with-mixed-block-files.car",
    "trustless_gateway_car/file-3k-and-3-blocks-missing-block.car",
    "trustless_gateway_car/dir-with-duplicate-files.car",
    "dir_listing/fixtures.car",
    "gateway-cache/fixtures.car",
    "path_gateway_unixfs/symlink.car",
    "path_gateway_unixfs/dir-with-files.car",
    "path_gateway_unixfs/dir-with-percent-encoded-filename.car",
];

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// Starts a gateway over `src` on 127.0.0.1:0; the runtime lives as long as the result.
pub fn start<S: BlockSource>(src: Arc<S>) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(gateway::serve(listener, src));
    (base, rt)
}

/// One gateway over one repo holding every fixture, shared by the tests.
pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let repo = Repo::in_memory();
        let fx = CARS.iter().map(|n| (*n, Fixture::load(&repo, n))).collect();
        let (base, rt) = start(Arc::new(RepoSource::new(Arc::new(repo))));
        World {
            base,
            agent: agent(),
            fx,
            _rt: rt,
        }
    })
}

pub fn fx(name: &str) -> &'static Fixture {
    &world().fx[name]
}

// ---------------------------------------------------------------------------------------
// HTTP

pub struct Resp {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    /// The body, or the error that cut it short.
    pub body: Result<Vec<u8>, String>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn h(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn bytes(&self) -> &[u8] {
        self.body
            .as_deref()
            .unwrap_or_else(|e| panic!("body cut short: {e}"))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.bytes().to_vec()).unwrap()
    }

    /// The body as a CAR, every block verified against its CID: the CIDs in order.
    pub fn car(&self) -> Vec<Cid> {
        assert_eq!(
            self.status,
            200,
            "{:?}",
            self.body
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
        );
        parse_car(self.bytes())
    }
}

/// The CIDs of a CAR's blocks, in order, each block verified against its CID. The header's
/// roots may be identity CIDs, which Cairn's reader refuses (it verifies what it reads), so
/// the header is checked to parse as a length-prefixed section and replaced by an empty one.
pub fn parse_car(bytes: &[u8]) -> Vec<Cid> {
    let (len, n) = cairn_core::varint::read(bytes).unwrap();
    let rest = bytes
        .get(n + len as usize..)
        .expect("CAR header runs past the end");
    let mut car = cairn_core::car::header(&[]);
    car.extend_from_slice(rest);
    let mut r = CarReader::new(car.as_slice()).unwrap();
    let mut out = Vec::new();
    while let Some(b) = r.next_block().unwrap() {
        out.push(b.cid);
    }
    out
}

pub fn call_on(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let url = format!("{base}{path}");
    let mut resp = match method {
        "HEAD" => {
            let mut r = agent.head(&url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call()
        }
        _ => {
            let mut r = agent.get(&url);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call()
        }
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let body = if method == "HEAD" {
        Ok(Vec::new())
    } else {
        resp.body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| e.to_string())
    };
    Resp {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body,
    }
}

pub fn get(path: &str, headers: &[(&str, &str)]) -> Resp {
    let w = world();
    call_on(&w.agent, &w.base, "GET", path, headers)
}

pub fn head(path: &str, headers: &[(&str, &str)]) -> Resp {
    let w = world();
    call_on(&w.agent, &w.base, "HEAD", path, headers)
}

/// A CAR request both ways the suite's `StandardCARTestTransforms` makes it: `?format=car`,
/// and `Accept: application/vnd.ipld.car`. Both must give the same blocks.
pub fn car(path: &str, query: &str) -> Vec<Cid> {
    let sep = if query.is_empty() { "" } else { "&" };
    let a = get(&format!("{path}?format=car{sep}{query}"), &[]).car();
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let b = get(
        &format!("{path}{q}"),
        &[("Accept", "application/vnd.ipld.car")],
    )
    .car();
    assert_eq!(a, b, "{path}?{query}: format=car and Accept differ");
    a.iter().map(v1).collect()
}

pub fn v1s(cids: &[Cid]) -> Vec<Cid> {
    cids.iter().map(v1).collect()
}

pub fn cache_control_is_immutable(v: &str) {
    let d: Vec<&str> = v.split(',').map(str::trim).collect();
    assert!(d.contains(&"public") && d.contains(&"immutable"), "{v}");
    let age = d
        .iter()
        .find_map(|x| x.strip_prefix("max-age="))
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(age >= 29030400, "{v}");
}

pub const RAW_BLOCK: &str = "gateway-raw-block.car";
pub const TWO_FILES: &str = "trustless_gateway_car/subdir-with-two-single-block-files.car";
pub const HAMT: &str = "trustless_gateway_car/single-layer-hamt-with-multi-block-files.car";
pub const CBOR: &str = "trustless_gateway_car/dir-with-dag-cbor-with-links.car";
pub const MIXED: &str = "trustless_gateway_car/subdir-with-mixed-block-files.car";
pub const MISSING: &str = "trustless_gateway_car/file-3k-and-3-blocks-missing-block.car";
pub const DUPS: &str = "trustless_gateway_car/dir-with-duplicate-files.car";
pub const LISTING: &str = "dir_listing/fixtures.car";
pub const CACHE: &str = "gateway-cache/fixtures.car";
pub const SYMLINK: &str = "path_gateway_unixfs/symlink.car";
pub const FILES: &str = "path_gateway_unixfs/dir-with-files.car";
pub const PERCENT: &str = "path_gateway_unixfs/dir-with-percent-encoded-filename.car";
