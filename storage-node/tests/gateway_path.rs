//! The IPFS HTTP gateway's path responses (UnixFS files, ranges, directory listings, symlinks,
//! cache headers) over a repo loaded with the gateway-conformance fixtures (`common::gateway`),
//! answering real HTTP requests on 127.0.0.1:0. Each `conformance_*` test ports one test
//! function of the suite's Go files (named in its doc comment), case by case. The other tests
//! cover what the suite does not: truncation when a block goes missing mid-stream, that a range
//! reads only the blocks under it, HAMT directories, error statuses, and a node's gateway
//! fetching what it lacks from providers.

mod common;

use bytes::Bytes;
use cairn_core::block::{Block, HashAlg, DAG_PB, RAW};
use cairn_core::car::CarReader;
use cairn_core::dagpb::PbNode;
use cairn_core::importer::{build_directory, import_bytes, DirEntry};
use cairn_core::profile::Profile;
use cairn_core::testgen::Gen;
use cairn_core::unixfs::{DataType, UnixFsData};
use cairn_net::{Keypair, NetConfig};
use cairn_repo::store::{Batch, Durability};
use cairn_repo::Repo;
use cairn_storage_node::gateway::{self, BlockSource, GatewayError, RepoSource};
use cairn_storage_node::node::Node;
use cid::Cid;
use common::gateway::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
// ---------------------------------------------------------------------------------------
// path_gateway_unixfs_test.go

/// `TestUnixFSDirectoryListing`.
#[test]
fn conformance_directory_listing() {
    let l = fx(LISTING);
    let root = l.root;
    let file = l.cid(&["ą", "ę", "file-źł.txt"]);
    let r = get(&format!("/ipfs/{root}/"), &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("Index of"));
    assert!(!body.contains(&format!("<a href=\"/ipfs/{root}/\">..</a>")));
    let r = get(&format!("/ipfs/{root}/%C4%85/%C4%99"), &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.h("location"), format!("/ipfs/{root}/%C4%85/%C4%99/"));
    let r = get(&format!("/ipfs/{root}/%C4%85/%C4%99/"), &[]);
    assert_eq!(r.status, 200);
    assert!(r.h("etag").contains("\"DirIndex-"));
    let body = r.text();
    for want in [
        "Index of".to_string(),
        format!("/ipfs/<a href=\"/ipfs/{root}\">{root}</a>/<a href=\"/ipfs/{root}/%C4%85\">ą</a>/<a href=\"/ipfs/{root}/%C4%85/%C4%99\">ę</a>"),
        format!("<a href=\"/ipfs/{root}/%C4%85/%C4%99/..\">..</a>"),
        format!("<a href=\"/ipfs/{root}/%C4%85/%C4%99/file-%C5%BA%C5%82.txt\">file-źł.txt</a>"),
        format!("<a class=\"ipfs-hash\" translate=\"no\" href=\"/ipfs/{file}?filename=file-%25C5%25BA%25C5%2582.txt\">"),
    ] {
        assert!(body.contains(&want), "{want}\nnot in\n{body}");
    }
    assert_eq!(
        get(&format!("/ipfs/{root}/i-do-not-exist"), &[]).status,
        404
    );
}

/// `TestGatewayCache`.
#[test]
fn conformance_gateway_cache() {
    let c = fx(CACHE);
    let root = c.root;
    let (r2, r3) = (c.cid(&["root2"]), c.cid(&["root2", "root3"]));
    let r4 = c.cid(&["root2", "root3", "root4"]);
    let index = c.cid(&["root2", "root3", "root4", "index.html"]);
    let r = get(&format!("/ipfs/{root}/root2/root3/"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("x-ipfs-path"), format!("/ipfs/{root}/root2/root3/"));
    assert_eq!(r.h("x-ipfs-roots"), format!("{root},{r2},{r3}"));
    let etag = r.h("etag").to_string();
    assert!(
        etag.starts_with("\"DirIndex-") && etag.ends_with(&format!("_CID-{r3}\"")),
        "{etag}"
    );
    assert!(matches!(
        r.header("cache-control"),
        None | Some("public, max-age=604800, stale-while-revalidate=2678400")
    ));
    let r = get(&format!("/ipfs/{root}/root2/root3/root4/"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("cache-control"), "public, max-age=29030400, immutable");
    assert_eq!(
        r.h("x-ipfs-path"),
        format!("/ipfs/{root}/root2/root3/root4/")
    );
    assert_eq!(r.h("x-ipfs-roots"), format!("{root},{r2},{r3},{r4}"));
    assert_eq!(r.h("etag"), format!("\"{r4}\""));
    assert_eq!(r.text(), "hello\n");
    let r = get(&format!("/ipfs/{root}/root2/root3/root4/index.html"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("cache-control"), "public, max-age=29030400, immutable");
    assert_eq!(
        r.h("x-ipfs-roots"),
        format!("{root},{r2},{r3},{r4},{index}")
    );
    assert_eq!(r.h("etag"), format!("\"{index}\""));
    assert_eq!(r.h("content-type"), "text/html; charset=utf-8");
    let r = get(&format!("/ipfs/{root}/root2/root3/root4/?format=raw"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("cache-control"), "public, max-age=29030400, immutable");
    assert_eq!(
        r.bytes(),
        [
            0x12, 0x34, 0x0a, 0x24, 0x01, 0x55, 0x12, 0x20, 0x58, 0x91, 0xb5, 0xb5, 0x22, 0xd5,
            0xdf, 0x08, 0x6d, 0x0f, 0xf0, 0xb1, 0x10, 0xfb, 0xd9, 0xd2, 0x1b, 0xb4, 0xfc, 0x71,
            0x63, 0xaf, 0x34, 0xd0, 0x82, 0x86, 0xa2, 0xe8, 0x46, 0xf6, 0xbe, 0x03, 0x12, 0x0a,
            0x69, 0x6e, 0x64, 0x65, 0x78, 0x2e, 0x68, 0x74, 0x6d, 0x6c, 0x18, 0x06, 0x0a, 0x02,
            0x08, 0x01,
        ]
    );
    let cached = [("Cache-Control", "only-if-cached")];
    let absent = "/ipfs/QmYzfKSE55XCjD1MW128RfciAf2DViABhEiXfgVFMabSjN";
    assert_eq!(
        head(
            &format!("/ipfs/{root}/root2/root3/root4/?format=raw"),
            &cached
        )
        .status,
        200
    );
    assert_eq!(head(absent, &cached).status, 412);
    assert_eq!(
        get(
            &format!("/ipfs/{root}/root2/root3/root4/?format=raw"),
            &cached
        )
        .status,
        200
    );
    assert_eq!(get(absent, &cached).status, 412);
    // If-None-Match
    let file = format!("/ipfs/{root}/root2/root3/root4/index.html");
    for inm in [
        format!("\"{index}\""),
        format!("\"fakeEtag1\", \"fakeEtag2\", \"{index}\""),
        format!("W/\"{index}\""),
        "*".to_string(),
    ] {
        assert_eq!(get(&file, &[("If-None-Match", &inm)]).status, 304, "{inm}");
    }
    let r4_inm = format!("\"{r4}\"");
    assert_eq!(
        get(
            &format!("/ipfs/{root}/root2/root3/root4/"),
            &[("If-None-Match", &r4_inm)]
        )
        .status,
        304
    );
    let dir = format!("/ipfs/{root}/root2/root3/");
    let tag = etag.trim_matches('"');
    assert_eq!(
        get(&dir, &[("If-None-Match", &format!("\"{tag}\""))]).status,
        304
    );
    assert_eq!(
        get(&dir, &[("If-None-Match", &format!("W/\"{tag}\""))]).status,
        304
    );
}

/// `TestGatewaySymlink`.
#[test]
fn conformance_symlink() {
    let s = fx(SYMLINK);
    let root = s.root;
    let body = get(&format!("/ipfs/{root}/"), &[]).text();
    assert!(body.contains(">foo<") && body.contains(">bar<"), "{body}");
    let r = get(&format!("/ipfs/{root}?format=raw"), &[]);
    assert_eq!((r.status, r.bytes()), (200, &s.raw(&root)[..]));
    let r = get(&format!("/ipfs/{root}/bar"), &[]);
    assert_eq!((r.status, r.bytes()), (200, &b"foo"[..]));
    // never followed: a path through the symlink is not found
    assert_eq!(get(&format!("/ipfs/{root}/bar/x"), &[]).status, 404);
}

/// `TestGatewayUnixFSFileRanges`.
#[test]
fn conformance_file_ranges() {
    let f = fx(FILES);
    let path = format!("/ipfs/{}/ascii.txt", f.root);
    let data = f.raw(&f.cid(&["ascii.txt"]));
    let r = get(&path, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("accept-ranges"), "bytes");
    assert_eq!(r.bytes(), &data[..]);
    for (range, content_range, (s, e)) in [
        ("bytes=6-16", "bytes 6-16/31", (6, 17)),
        ("bytes=-3", "bytes 28-30/31", (28, 31)),
        // several ranges: the first one (the suite's option A)
        ("bytes=6-16,0-4", "bytes 6-16/31", (6, 17)),
    ] {
        let r = get(&path, &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.h("content-range"), content_range);
        assert_eq!(r.bytes(), &data[s..e]);
    }
    // a block missing after or before the range does not matter
    let m = format!("/ipfs/{}", v1(&fx(MISSING).root));
    let r = get(&m, &[("Range", "bytes=997-1000")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), "bytes 997-1000/3072");
    assert_eq!(r.bytes().len(), 4);
    let r = get(&m, &[("Range", "bytes=2200-2201")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), "bytes 2200-2201/3072");
    assert_eq!(r.bytes().len(), 2);
}

/// `TestPathGatewayMiscellaneous`.
#[test]
fn conformance_percent_encoded_filename() {
    let p = fx(PERCENT);
    let name = "Portugal%2C+España=Peninsula Ibérica.txt";
    let r = get(
        &format!(
            "/ipfs/{}/Portugal%252C+Espa%C3%B1a=Peninsula%20Ib%C3%A9rica.txt",
            p.root
        ),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes(), &p.raw(&p.cid(&[name]))[..]);
}

// ---------------------------------------------------------------------------------------
// beyond the suite

#[test]
fn empty_identity_cid_probe() {
    for path in ["/ipfs/bafkqaaa?format=raw", "/ipfs/bafkqaaa"] {
        let r = get(path, &[]);
        assert_eq!((r.status, r.bytes()), (200, &b""[..]), "{path}");
        let r = head(path, &[("Cache-Control", "only-if-cached")]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.h("content-length"), "0");
    }
    let r = get("/ipfs/bafkqaaa", &[("Accept", "application/vnd.ipld.raw")]);
    assert_eq!(r.h("content-type"), "application/vnd.ipld.raw");
    assert!(get("/ipfs/bafkqaaa?format=car", &[]).car().is_empty());
}

#[test]
fn statuses_for_bad_requests() {
    let f = fx(FILES);
    let file = format!("/ipfs/{}/ascii.txt", f.root);
    // (path, headers, status)
    for (path, headers, status) in [
        ("/ipfs/not-a-cid".to_string(), vec![], 400),
        ("/ipfs/".into(), vec![], 400),
        (format!("/ipfs/{}/%zz", f.root), vec![], 400),
        (format!("{file}?format=tar"), vec![], 406),
        (format!("{file}?format=bogus"), vec![], 400),
        (file.clone(), vec![("Accept", "application/x-tar")], 406),
        (format!("{file}?format=car&car-version=2"), vec![], 406),
        (format!("{file}?format=json"), vec![], 406),
        (format!("{file}?format=car&dag-scope=most"), vec![], 400),
        (format!("{file}?format=car&entity-bytes=5:3"), vec![], 400),
        (format!("{file}?format=car&entity-bytes=100:*"), vec![], 400),
        (file.clone(), vec![("Range", "bytes=31-")], 416),
        (file.clone(), vec![("Range", "bytes=-0")], 416),
        // a malformed Range is ignored
        (file.clone(), vec![("Range", "bytes=9-2")], 200),
        (format!("/ipfs/{}/ascii.txt/deeper", f.root), vec![], 404),
        (
            format!("/ipfs/{}", HashAlg::Sha2_256.cid(RAW, b"absent")),
            vec![],
            404,
        ),
        (
            format!(
                "/ipfs/{}?format=car",
                HashAlg::Blake3.cid(DAG_PB, b"absent")
            ),
            vec![],
            404,
        ),
        ("/ipns/example.com".into(), vec![], 501),
        ("/elsewhere".into(), vec![], 404),
    ] {
        let r = get(&path, &headers);
        assert_eq!(
            r.status,
            status,
            "{path} {headers:?}: {:?}",
            r.body
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
        );
        if status == 416 {
            assert_eq!(r.h("content-range"), "bytes */31");
        }
    }
}

#[test]
fn head_and_download_headers() {
    let f = fx(MIXED);
    let path = format!("/ipfs/{}/subdir/multiblock.txt", f.root);
    let r = head(&path, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-length"), "1026");
    assert_eq!(r.h("content-type"), "text/plain; charset=utf-8");
    let r = head(&path, &[("Range", "bytes=100-199")]);
    assert_eq!((r.status, r.h("content-length")), (206, "100"));
    // a CAR streams with no length known ahead: its HEAD claims none (not 0)
    let r = head(&format!("{path}?format=car"), &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.headers.get("content-length").is_none_or(|v| v != "0"),
        "{:?}",
        r.headers
    );
    let r = get(&format!("{path}?download=true&filename=zażółć.txt"), &[]);
    assert_eq!(
        r.h("content-disposition"),
        "attachment; filename=\"za____.txt\"; filename*=UTF-8''za%C5%BC%C3%B3%C5%82%C4%87.txt"
    );
    assert_eq!(r.bytes().len(), 1026);
    let r = get(&format!("{path}?filename=x.json"), &[]);
    assert_eq!(r.h("content-disposition"), "inline; filename=\"x.json\"");
    assert_eq!(r.h("content-type"), "application/json");
    // Etags differ by response type, scope and range
    let plain = get(&path, &[]).h("etag").to_string();
    let ranged = get(&path, &[("Range", "bytes=0-9")]).h("etag").to_string();
    let raw = get(&format!("{path}?format=raw"), &[])
        .h("etag")
        .to_string();
    let car_all = get(&format!("{path}?format=car"), &[])
        .h("etag")
        .to_string();
    let car_block = get(&format!("{path}?format=car&dag-scope=block"), &[])
        .h("etag")
        .to_string();
    let car_range = get(&format!("{path}?format=car&entity-bytes=0:9"), &[])
        .h("etag")
        .to_string();
    let all = [&plain, &ranged, &raw, &car_all, &car_block, &car_range];
    for (i, a) in all.iter().enumerate() {
        assert!(all[i + 1..].iter().all(|b| b != a), "{all:?}");
    }
    // JSON listing
    let r = get(&format!("/ipfs/{}/subdir?format=json", f.root), &[]);
    assert_eq!(r.h("content-type"), "application/json");
    let v: serde_json::Value = serde_json::from_slice(r.bytes()).unwrap();
    let names: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ascii.txt", "hello.txt", "multiblock.txt"]);
    let r = get(
        &format!("/ipfs/{}/subdir/", f.root),
        &[("Accept", "application/json")],
    );
    assert!(r.h("etag").contains("DirIndexJSON"));
}

#[test]
fn a_block_missing_mid_stream_cuts_the_response_short() {
    let m = format!("/ipfs/{}", v1(&fx(MISSING).root));
    // the root is here, so the response starts, and then cannot finish
    let r = get(&m, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-length"), "3072");
    assert!(
        r.body.is_err(),
        "a file with a missing block must not look complete"
    );
    let r = get(&format!("{m}?format=car"), &[]);
    assert_eq!(r.status, 200);
    match &r.body {
        Err(_) => {}
        Ok(bytes) => {
            // the chunked body was cut: the CAR holds the root and the first block only
            let mut rd = CarReader::new(bytes.as_slice()).unwrap();
            let mut n = 0;
            while let Ok(Some(_)) = rd.next_block() {
                n += 1;
            }
            panic!("a truncated CAR was delivered as complete ({n} blocks)");
        }
    }
}

/// A source that counts the blocks fetched through it.
struct Counting {
    inner: RepoSource,
    fetched: Arc<std::sync::Mutex<Vec<Cid>>>,
    calls: AtomicUsize,
}

impl BlockSource for Counting {
    async fn block(&self, cid: &Cid) -> Result<Option<Bytes>, GatewayError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.fetched.lock().unwrap().push(*cid);
        self.inner.block(cid).await
    }

    fn has_local(&self, cid: &Cid) -> bool {
        self.inner.has_local(cid)
    }
}

#[test]
fn ranges_of_a_deep_file_read_only_the_blocks_under_them() {
    // 1 KiB chunks, 4 links per node: a 4-level tree over 70 chunks
    let mut p = Profile::cairn_v1();
    p.chunk_size = 1024;
    p.max_links = 4;
    let data = Gen::bytes(17, 70 * 1024 + 300);
    let mut blocks = Vec::new();
    let file = import_bytes(&p, &data, &mut blocks);
    let repo = Repo::in_memory();
    let mut b = Batch::new();
    for bl in &blocks {
        b.put_block(bl.clone());
    }
    repo.store().write(b, Durability::Sync).unwrap();
    let fetched = Arc::new(std::sync::Mutex::new(Vec::new()));
    let src = Arc::new(Counting {
        inner: RepoSource::new(Arc::new(repo)),
        fetched: fetched.clone(),
        calls: AtomicUsize::new(0),
    });
    let (base, _rt) = start(src.clone());
    let a = agent();
    let n = data.len() as u64;
    let path = format!("/ipfs/{}", file.cid);
    // (range, first byte, end): boundaries of chunks and of subtrees
    for (range, s, e) in [
        ("bytes=0-0".to_string(), 0u64, 1u64),  // first byte: one leaf
        ("bytes=1023-1024".into(), 1023, 1025), // across two leaves
        ("bytes=4096-8191".into(), 4096, 8192), // exactly the second subtree of 4 leaves
        ("bytes=16383-16384".into(), 16383, 16385), // across two level-2 subtrees
        (format!("bytes={}-", n - 1), n - 1, n), // the last byte (a short leaf)
        ("bytes=-300".into(), n - 300, n),      // the short last leaf exactly
        ("bytes=5000-60000".into(), 5000, 60001), // many leaves
    ] {
        fetched.lock().unwrap().clear();
        let r = call_on(&a, &base, "GET", &path, &[("Range", &range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.bytes(), &data[s as usize..e as usize], "{range}");
        let leaves = fetched
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.codec() == RAW)
            .count() as u64;
        let want = (e - 1) / 1024 - s / 1024 + 1;
        assert_eq!(leaves, want, "{range}: leaves outside the range were read");
    }
    // the whole file, and its CAR rebuilt block by block
    let r = call_on(&a, &base, "GET", &path, &[]);
    assert_eq!(r.bytes(), &data[..]);
    let car = call_on(&a, &base, "GET", &format!("{path}?format=car"), &[]).car();
    assert_eq!(car.len(), blocks.len());
    assert!(src.calls.load(Ordering::Relaxed) > 0);
}

#[test]
fn hamt_directories_resolve_list_and_scope() {
    let mut p = Profile::cairn_v1();
    p.shard_threshold = 1000; // a HAMT with sub-shards from a few hundred entries
    let mut blocks = Vec::new();
    let entries: Vec<DirEntry> = (0..600)
        .map(|i| DirEntry {
            name: format!("file-{i:04}.txt"),
            entry: import_bytes(&p, format!("content {i}\n").as_bytes(), &mut blocks),
            counts_in_estimate: true,
        })
        .collect();
    let dir = build_directory(&p, entries, &mut blocks).unwrap();
    let root_node =
        PbNode::decode(&blocks.iter().find(|b| b.cid == dir.cid).unwrap().data).unwrap();
    let kind = UnixFsData::decode(root_node.data.as_deref().unwrap())
        .unwrap()
        .kind;
    assert_eq!(kind, DataType::HamtShard);
    let repo = Repo::in_memory();
    let mut b = Batch::new();
    for bl in &blocks {
        b.put_block(bl.clone());
    }
    repo.store().write(b, Durability::Sync).unwrap();
    let (base, _rt) = start(Arc::new(RepoSource::new(Arc::new(repo))));
    let a = agent();
    for i in [0, 1, 299, 599] {
        let r = call_on(
            &a,
            &base,
            "GET",
            &format!("/ipfs/{}/file-{i:04}.txt", dir.cid),
            &[],
        );
        assert_eq!(r.text(), format!("content {i}\n"));
    }
    assert_eq!(
        call_on(
            &a,
            &base,
            "GET",
            &format!("/ipfs/{}/file-0600.txt", dir.cid),
            &[]
        )
        .status,
        404
    );
    let r = call_on(
        &a,
        &base,
        "GET",
        &format!("/ipfs/{}/?format=json", dir.cid),
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(r.bytes()).unwrap();
    let mut names: Vec<String> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let want: Vec<String> = (0..600).map(|i| format!("file-{i:04}.txt")).collect();
    assert_eq!(names, want);
    let html = call_on(&a, &base, "GET", &format!("/ipfs/{}/", dir.cid), &[]).text();
    assert_eq!(
        html.matches("class=\"ipfs-hash\" translate=\"no\" href=")
            .count(),
        600
    );
    // dag-scope=entity: the HAMT's shards, no entries
    let by_cid: HashMap<Cid, &Block> = blocks.iter().map(|b| (b.cid, b)).collect();
    let shards = call_on(
        &a,
        &base,
        "GET",
        &format!("/ipfs/{}?format=car&dag-scope=entity", dir.cid),
        &[],
    )
    .car();
    assert!(shards.len() > 1);
    for c in &shards {
        let node = PbNode::decode(&by_cid[c].data).unwrap();
        let kind = UnixFsData::decode(node.data.as_deref().unwrap())
            .unwrap()
            .kind;
        assert_eq!(kind, DataType::HamtShard);
    }
    // dag-scope=all: every block of the directory, each once
    let all = call_on(
        &a,
        &base,
        "GET",
        &format!("/ipfs/{}?format=car", dir.cid),
        &[],
    )
    .car();
    let distinct: std::collections::HashSet<&Cid> = blocks.iter().map(|b| &b.cid).collect();
    assert_eq!(all.len(), distinct.len());
}

/// `impl BlockSource for Node`: a gateway on a node serves a dataset another node published,
/// fetching the blocks it lacks from their providers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gateway_fetches_what_it_lacks_from_providers() {
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let n = Node::start(
            Repo::in_memory(),
            Keypair::generate_ed25519(),
            NetConfig::default(),
            common::opts(false),
        )
        .await
        .unwrap();
        nodes.push(n);
    }
    let addr = nodes[1].net().listen_addrs().await.unwrap()[0].clone();
    nodes[0].net().dial(addr).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = Gen::bytes(5, 600 << 10);
    let file = dir.path().join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let root: Cid = nodes[0].put(&file).await.unwrap().root.parse().unwrap();
    let mut dag = Vec::new();
    nodes[0]
        .repo()
        .reader()
        .walk(&root, &mut |c| dag.push(*c))
        .unwrap();
    let lacking = dag
        .iter()
        .filter(|c| !nodes[1].repo().store().has(c).unwrap())
        .count();
    assert!(
        lacking > 0,
        "the gateway's node must have something to fetch"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gateway::serve(listener, Arc::new(nodes[1].clone())));
    let (b, path) = (base.clone(), format!("/ipfs/{root}"));
    let r = tokio::task::spawn_blocking(move || call_on(&agent(), &b, "GET", &path, &[]))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes(), &data[..]);
    let (b, path) = (base, format!("/ipfs/{root}?format=car"));
    let car = tokio::task::spawn_blocking(move || call_on(&agent(), &b, "GET", &path, &[]).car())
        .await
        .unwrap();
    assert_eq!(car[0], root);
    for n in &nodes {
        n.shutdown().await;
    }
}
