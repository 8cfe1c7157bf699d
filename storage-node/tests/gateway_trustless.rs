//! The IPFS HTTP gateway's trustless responses (raw blocks and CARs) over a repo loaded with
//! the gateway-conformance fixtures (`common::gateway`), answering real HTTP requests on
//! 127.0.0.1:0. Each `conformance_*` test ports one test function of the suite's Go files
//! (named in its doc comment), case by case; CAR bodies are parsed back with a verifying
//! reader, so every block is checked against its CID.

mod common;

use cid::Cid;
use common::gateway::*;
// ---------------------------------------------------------------------------------------
// trustless_gateway_raw_test.go and path_gateway_raw_test.go

/// `TestTrustlessRaw`.
#[test]
fn conformance_trustless_raw() {
    let f = fx(RAW_BLOCK);
    let dir = f.cid(&["dir"]);
    let file = f.cid(&["dir", "ascii.txt"]);
    let r = get(&format!("/ipfs/{dir}?format=raw"), &[]);
    assert_eq!((r.status, r.bytes()), (200, &f.raw(&dir)[..]));
    let raw = [("Accept", "application/vnd.ipld.raw")];
    let r = get(&format!("/ipfs/{dir}"), &raw);
    assert_eq!((r.status, r.bytes()), (200, &f.raw(&dir)[..]));
    let r = get(&format!("/ipfs/{file}"), &raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-type"), "application/vnd.ipld.raw");
    assert_eq!(r.h("content-length"), f.raw(&file).len().to_string());
    assert!(r.h("content-disposition").contains("attachment;"));
    assert_eq!(r.h("x-content-type-options"), "nosniff");
    assert_eq!(r.bytes(), &f.raw(&file)[..]);
    let r = get(&format!("/ipfs/{file}?filename=foobar.bin"), &raw);
    assert_eq!(r.status, 200);
    assert!(r.h("content-disposition").contains("attachment;"));
    assert!(r.h("content-disposition").contains("filename=\"foobar.bin"));
    let r = get(&format!("/ipfs/{file}"), &raw);
    assert!(!r.h("etag").is_empty());
    assert_eq!(r.h("x-ipfs-path"), format!("/ipfs/{file}"));
    assert!(r.h("x-ipfs-roots").contains(&file.to_string()));
    cache_control_is_immutable(r.h("cache-control"));
}

/// `TestTrustlessRawRanges` (the suite draws random ranges; these cover its shapes).
#[test]
fn conformance_trustless_raw_ranges() {
    let f = fx(RAW_BLOCK);
    let file = f.cid(&["dir", "ascii.txt"]);
    let data = f.raw(&file);
    let n = data.len();
    for (range, (s, e)) in [
        ("bytes=0-0".to_string(), (0, 1)),
        ("bytes=3-10".into(), (3, 11)),
        (format!("bytes={}-", n - 5), (n - 5, n)),
        ("bytes=-7".into(), (n - 7, n)),
        (format!("bytes=2-{}", n + 100), (2, n)),
    ] {
        let r = get(
            &format!("/ipfs/{file}"),
            &[("Accept", "application/vnd.ipld.raw"), ("Range", &range)],
        );
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.h("content-range"), format!("bytes {s}-{}/{n}", e - 1));
        assert_eq!(r.h("content-type"), "application/vnd.ipld.raw");
        assert_eq!(r.bytes(), &data[s..e], "{range}");
    }
}

/// `TestGatewayBlock` (path_gateway_raw_test.go).
#[test]
fn conformance_path_gateway_block() {
    let f = fx(RAW_BLOCK);
    let root = f.root;
    let dir = f.cid(&["dir"]);
    let file = f.cid(&["dir", "ascii.txt"]);
    let raw = ("Accept", "application/vnd.ipld.raw");
    let r = get(&format!("/ipfs/{root}/dir?format=raw"), &[]);
    assert_eq!((r.status, r.bytes()), (200, &f.raw(&dir)[..]));
    let r = get(&format!("/ipfs/{root}/dir"), &[raw]);
    assert_eq!((r.status, r.bytes()), (200, &f.raw(&dir)[..]));
    let r = get(
        &format!("/ipfs/{root}/dir"),
        &[raw, ("Range", "bytes=6-16")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-type"), "application/vnd.ipld.raw");
    assert_eq!(r.h("content-range"), "bytes 6-16/57");
    assert_eq!(r.bytes(), &f.raw(&dir)[6..17]);
    let r = get(&format!("/ipfs/{root}/dir/ascii.txt"), &[raw]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-type"), "application/vnd.ipld.raw");
    assert_eq!(r.h("content-length"), f.raw(&file).len().to_string());
    assert!(r.h("content-disposition").contains("attachment;"));
    assert_eq!(r.h("x-content-type-options"), "nosniff");
    assert_eq!(r.bytes(), &f.raw(&file)[..]);
    let r = get(
        &format!("/ipfs/{root}/dir/ascii.txt?filename=foobar.bin"),
        &[raw],
    );
    assert!(r.h("content-disposition").contains("filename=\"foobar.bin"));
    let r = get(&format!("/ipfs/{root}/dir/ascii.txt"), &[raw]);
    assert!(!r.h("etag").is_empty());
    assert_eq!(r.h("x-ipfs-path"), format!("/ipfs/{root}/dir/ascii.txt"));
    assert!(r.h("x-ipfs-roots").contains(&root.to_string()));
    cache_control_is_immutable(r.h("cache-control"));
}

// ---------------------------------------------------------------------------------------
// trustless_gateway_car_test.go

/// `TestTrustlessCarPathing`.
#[test]
fn conformance_car_pathing() {
    let t = fx(TWO_FILES);
    let root = v1(&t.root);
    assert_eq!(
        car(&format!("/ipfs/{root}/subdir/ascii.txt"), ""),
        v1s(&[t.root, t.cid(&["subdir"]), t.cid(&["subdir", "ascii.txt"])])
    );
    let h = fx(HAMT);
    let file = h.cid(&["685.txt"]);
    let mut want = vec![h.root];
    want.extend(h.hamt_path(&h.root, "685.txt").unwrap());
    want.push(file);
    want.extend(h.descendants(&file));
    assert!(want.len() > 3, "the path crosses HAMT shards");
    assert_eq!(
        car(&format!("/ipfs/{}/685.txt", v1(&h.root)), ""),
        v1s(&want)
    );
    let c = fx(CBOR);
    let doc = c.cid(&["document"]);
    assert_eq!(doc.codec(), 0x71);
    // the link at files/single in the document: the file "hello world\n"
    let got = car(&format!("/ipfs/{doc}/files/single"), "");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], doc);
    assert_eq!(
        got[1].to_string(),
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    );
    // a missing path: the suite accepts a 404 (or a partial CAR)
    let r = get(
        &format!("/ipfs/{root}/subdir/i-do-not-exist?format=car"),
        &[],
    );
    assert_eq!(r.status, 404);
}

/// `TestTrustlessCarDagScopeBlock`.
#[test]
fn conformance_car_dag_scope_block() {
    let t = fx(TWO_FILES);
    let root = v1(&t.root);
    let subdir = t.cid(&["subdir"]);
    assert_eq!(
        car(&format!("/ipfs/{root}/subdir"), "dag-scope=block"),
        v1s(&[t.root, subdir])
    );
    assert_eq!(
        car(&format!("/ipfs/{root}/subdir/ascii.txt"), "dag-scope=block"),
        v1s(&[t.root, subdir, t.cid(&["subdir", "ascii.txt"])])
    );
    let h = fx(HAMT);
    let mut want = vec![h.root];
    want.extend(h.hamt_path(&h.root, "1.txt").unwrap());
    want.push(h.cid(&["1.txt"]));
    assert_eq!(
        car(&format!("/ipfs/{}/1.txt", v1(&h.root)), "dag-scope=block"),
        v1s(&want)
    );
}

/// `TestTrustlessCarDagScopeEntity`.
#[test]
fn conformance_car_dag_scope_entity() {
    let t = fx(TWO_FILES);
    assert_eq!(
        car(&format!("/ipfs/{}", v1(&t.root)), "dag-scope=entity"),
        v1s(&[t.root])
    );
    let h = fx(HAMT);
    let mut want = vec![h.root];
    want.extend(h.hamt_shards(&h.root));
    assert_eq!(
        car(&format!("/ipfs/{}", v1(&h.root)), "dag-scope=entity"),
        v1s(&want)
    );
    let m = fx(MIXED);
    let root = v1(&m.root);
    let subdir = m.cid(&["subdir"]);
    assert_eq!(
        car(
            &format!("/ipfs/{root}/subdir/ascii.txt"),
            "dag-scope=entity"
        ),
        v1s(&[m.root, subdir, m.cid(&["subdir", "ascii.txt"])])
    );
    let multi = m.cid(&["subdir", "multiblock.txt"]);
    let mut want = vec![m.root, subdir, multi];
    want.extend(m.descendants(&multi));
    assert_eq!(
        car(
            &format!("/ipfs/{root}/subdir/multiblock.txt"),
            "dag-scope=entity"
        ),
        v1s(&want)
    );
    let c = fx(CBOR);
    assert_eq!(
        car(
            &format!("/ipfs/{}/document", v1(&c.root)),
            "dag-scope=entity"
        ),
        v1s(&[c.root, c.cid(&["document"])])
    );
}

/// `TestTrustlessCarDagScopeAll`.
#[test]
fn conformance_car_dag_scope_all() {
    let m = fx(MIXED);
    let root = v1(&m.root);
    let subdir = m.cid(&["subdir"]);
    let mut want = vec![m.root, subdir];
    want.extend(m.descendants(&subdir));
    assert_eq!(
        car(&format!("/ipfs/{root}/subdir"), "dag-scope=all"),
        v1s(&want)
    );
    let multi = m.cid(&["subdir", "multiblock.txt"]);
    let mut want = vec![m.root, subdir, multi];
    want.extend(m.descendants(&multi));
    assert_eq!(
        car(
            &format!("/ipfs/{root}/subdir/multiblock.txt"),
            "dag-scope=all"
        ),
        v1s(&want)
    );
}

/// `TestTrustlessCarEntityBytes`.
#[test]
fn conformance_car_entity_bytes() {
    let miss = fx(MISSING);
    let mroot = v1(&miss.root);
    let q = |v: &str| format!("dag-scope=entity&entity-bytes={v}");
    let first: Cid = "QmPKt7ptM2ZYSGPUc8PmPT2VBkLDK3iqpG9TBJY7PCE9rF"
        .parse()
        .unwrap();
    let third: Cid = "QmWXY482zQdwecnfBsj78poUUuPXvyw2JAFAEMw4tzTavV"
        .parse()
        .unwrap();
    // the middle block is missing: ranges before and after it still succeed
    assert_eq!(
        car(&format!("/ipfs/{mroot}"), &q("0:1000")),
        v1s(&[miss.root, first])
    );
    assert_eq!(
        car(&format!("/ipfs/{mroot}"), &q("2200:*")),
        v1s(&[miss.root, third])
    );

    let m = fx(MIXED);
    let subdir = m.cid(&["subdir"]);
    let multi = m.cid(&["subdir", "multiblock.txt"]);
    let kids = m.descendants(&multi);
    assert_eq!(kids.len(), 5);
    let mut want = vec![m.root, subdir, multi];
    want.extend(kids.clone());
    assert_eq!(
        car(
            &format!("/ipfs/{}/subdir/multiblock.txt", v1(&m.root)),
            &q("0:*")
        ),
        v1s(&want)
    );
    let h = fx(HAMT);
    let mut want = vec![h.root];
    want.extend(h.hamt_shards(&h.root));
    assert_eq!(
        car(&format!("/ipfs/{}", v1(&h.root)), &q("0:*")),
        v1s(&want)
    );
    // (entity-bytes, chunks of the 1026-byte file sent after its root)
    for (range, chunks) in [
        ("512:*", 2..5),
        ("512:1023", 2..4),
        ("512:-256", 2..4),
        ("-5:*", 3..5),
        ("-9999:*", 0..5),
        ("-9999:-3", 0..4),
        ("0:0", 0..1),
    ] {
        let mut want = vec![multi];
        want.extend(kids[chunks].iter().copied());
        assert_eq!(
            car(&format!("/ipfs/{multi}"), &q(range)),
            v1s(&want),
            "{range}"
        );
    }
    assert_eq!(
        kids[4].to_string(),
        "bafkreifst3pqztuvj57lycamoi7z34b4emf7gawxs74nwrc2c7jncmpaqm"
    );
}

/// `TestTrustlessCarOrderAndDuplicates`.
#[test]
fn conformance_car_order_and_duplicates() {
    let d = fx(DUPS);
    let root = d.root;
    let multi: Vec<Cid> = [
        "bafkreie5noke3mb7hqxukzcy73nl23k6lxszxi5w3dtmuwz62wnvkpsscm",
        "bafkreih4ephajybraj6wnxsbwjwa77fukurtpl7oj7t7pfq545duhot7cq",
        "bafkreigu7buvm3cfunb35766dn7tmqyh2um62zcio63en2btvxuybgcpue",
        "bafkreicll3huefkc3qnrzeony7zcfo7cr3nbx64hnxrqzsixpceg332fhe",
        "bafkreifst3pqztuvj57lycamoi7z34b4emf7gawxs74nwrc2c7jncmpaqm",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let with_dups = {
        let mut v = vec![
            root,
            d.cid(&["ascii-copy.txt"]),
            d.cid(&["ascii.txt"]),
            d.cid(&["hello.txt"]),
            d.cid(&["multiblock.txt"]),
        ];
        v.extend(multi.iter().copied());
        v
    };
    assert_eq!(d.cid(&["ascii.txt"]), d.cid(&["ascii-copy.txt"]));
    let mut no_dups = with_dups.clone();
    no_dups.remove(2);
    for (path, accept, want, ct) in [
        (
            format!("/ipfs/{root}"),
            "application/vnd.ipld.car; version=1; order=dfs; dups=y",
            &with_dups,
            ["order=dfs", "dups=y"],
        ),
        (
            format!("/ipfs/{root}"),
            "application/vnd.ipld.car; version=1; order=dfs; dups=n",
            &no_dups,
            ["order=dfs", "dups=n"],
        ),
        // format=car keeps the Accept's parameters
        (
            format!("/ipfs/{root}?format=car"),
            "application/vnd.ipld.car; version=1; order=dfs; dups=y",
            &with_dups,
            ["order=dfs", "dups=y"],
        ),
    ] {
        let r = get(&path, &[("Accept", accept)]);
        assert!(r.h("content-type").contains("application/vnd.ipld.car"));
        for c in ct {
            assert!(r.h("content-type").contains(c), "{}", r.h("content-type"));
        }
        assert_eq!(&r.car(), want, "{accept}");
    }
    // order=unk: an explicit order comes back, and every block
    let r = get(
        &format!("/ipfs/{root}"),
        &[("Accept", "application/vnd.ipld.car; version=1; order=unk")],
    );
    assert!(r.h("content-type").contains("order="));
    let got = r.car();
    assert!(with_dups.iter().all(|c| got.contains(c)));
    // identity CIDs are never sent as blocks, even with dups=y
    let r = get(
        "/ipfs/bafkqaf3imvwgy3zaneqgc3janfxgy2lomvscay3jmqfa",
        &[("Accept", "application/vnd.ipld.car; dups=y")],
    );
    assert!(r.h("content-type").contains("dups=y"));
    assert!(r.car().is_empty());
    // query parameters take precedence over the Accept parameters (IPIP-0523)
    let r = get(
        &format!("/ipfs/{root}?format=car&car-order=dfs"),
        &[("Accept", "application/vnd.ipld.car; order=unk")],
    );
    assert!(r.h("content-type").contains("order=dfs"));
    let r = get(
        &format!("/ipfs/{root}?format=car&car-dups=y"),
        &[("Accept", "application/vnd.ipld.car; dups=n")],
    );
    assert!(r.h("content-type").contains("dups=y"));
    assert_eq!(&r.car(), &with_dups);
}

/// `TestTrustlessCarFormatPrecedence`.
#[test]
fn conformance_car_format_precedence() {
    let dir = fx(RAW_BLOCK).cid(&["dir"]);
    let r = get(
        &format!("/ipfs/{dir}?format=car"),
        &[("Accept", "application/vnd.ipld.raw")],
    );
    assert_eq!(r.status, 200);
    assert!(r.h("content-type").contains("application/vnd.ipld.car"));
    let r = get(
        &format!("/ipfs/{dir}?format=raw"),
        &[("Accept", "application/vnd.ipld.car")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-type"), "application/vnd.ipld.raw");
}
