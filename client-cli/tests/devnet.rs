//! End-to-end through separate `cairn-node` processes: `cairn demo` (devnet of 6, publish,
//! kill 2, fetch and compare), and `cairn devnet up/down` with `put`/`stat`/`get --api` and
//! each node's IPFS gateway.
//! Needs the `cairn-node` binary beside `cairn` (built by `cargo test --workspace`).

use std::path::Path;
use std::process::{Command, Output};

fn cairn(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.args(args)
        .env_remove("CAIRN_API")
        .env_remove("CAIRN_API_TOKEN");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Stops the devnet when the test ends, even on failure.
struct Down(std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if self.0.join("devnet.json").exists() {
            let _ = cairn(
                &[
                    "devnet",
                    "down",
                    "--dir",
                    self.0.to_str().unwrap_or_default(),
                ],
                &[],
            );
        }
    }
}

/// `GET url` (with `Cache-Control: only-if-cached` when `cached_only`): status and body.
fn http_get(url: &str, cached_only: bool) -> (u16, Vec<u8>) {
    use std::io::Read;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into();
    let mut req = agent.get(url);
    if cached_only {
        req = req.header("Cache-Control", "only-if-cached");
    }
    let resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (status, body)
}

fn node_binary_present() -> bool {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
        .with_file_name("cairn-node")
        .exists()
}

#[test]
fn demo_fetches_every_byte_with_two_of_six_nodes_killed() {
    assert!(
        node_binary_present(),
        "build cairn-node first (cargo test --workspace does)"
    );
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("demo");
    let o = cairn(&["demo", "--dir", dir.to_str().unwrap()], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("spread over 6 nodes"), "{out}");
    assert!(out.contains("every byte of 5 files matches"), "{out}");
    // node-3 keeps its sealed data only in replicas and still serves and proves it
    assert!(out.contains("(replica-only: no plain copy)"), "{out}");
    // fast tier: the hot shard moves to a measured-fast node, reads follow it, it moves back
    assert!(out.contains("FAST"), "{out}");
    assert!(out.contains("it finds the promoted copy on node-"), "{out}");
    assert!(out.contains(": promote "), "{out}");
    assert!(out.contains(": demote "), "{out}");
    assert!(out.contains("no longer keeps a copy"), "{out}");
    // proofs: every live node passes; the wiped node (its log and sectors gone) cannot prove
    // and says so unsigned, a miss, which its confirming auditor confirms: it is faulty; the
    // log re-verifies
    assert!(out.matches(", PASS").count() >= 4, "{out}");
    assert!(out.contains("was never committed here"), "{out}");
    assert!(out.contains("now counts as faulty"), "{out}");
    assert!(out.contains("the audit log verifies"), "{out}");
    assert!(out.contains("entries"), "{out}");
    assert!(!dir.exists(), "demo did not clean up");
}

#[test]
fn devnet_put_stat_get_through_the_api() {
    assert!(
        node_binary_present(),
        "build cairn-node first (cargo test --workspace does)"
    );
    let d = tempfile::tempdir().unwrap();
    let dn = d.path().join("dn");
    let _down = Down(dn.clone());
    let up = cairn(
        &[
            "--json",
            "devnet",
            "up",
            "--nodes",
            "6",
            "--dir",
            dn.to_str().unwrap(),
            // this test is about the data path; the demo test covers proofs
            "--no-proofs",
        ],
        &[],
    );
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let net: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    let nodes = net["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6);
    for n in nodes {
        for k in ["pid", "api", "peer_id", "repo", "gateway"] {
            assert!(!n[k].is_null(), "devnet.json lacks {k}");
        }
        let gw = n["gateway"].as_str().unwrap();
        assert!(gw.starts_with("http://127.0.0.1:"), "{gw}");
        // the node reports the address it bound (the config says port 0)
        let st = http_get(
            &format!("http://{}/api/v0/status", n["api"].as_str().unwrap()),
            false,
        );
        let st: serde_json::Value = serde_json::from_slice(&st.1).unwrap();
        assert_eq!(st["gateway"], n["gateway"], "{st}");
    }
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dn.join("devnet.json")).unwrap()).unwrap();
    assert_eq!(written["nodes"].as_array().unwrap().len(), 6);
    let api = nodes[0]["api"].as_str().unwrap().to_string();
    let token = std::fs::read_to_string(dn.join("node-0/api.token")).unwrap();
    let data = d.path().join("data.bin");
    std::fs::write(&data, cairn_core::testgen::Gen::bytes(5, 5 << 20)).unwrap();

    // writes need the token
    let denied = cairn(&["--api", &api, "put", data.to_str().unwrap()], &[]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));

    let env = [
        ("CAIRN_API", api.as_str()),
        ("CAIRN_API_TOKEN", token.trim()),
    ];
    let put = cairn(&["--json", "put", data.to_str().unwrap()], &env);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&put.stdout).unwrap();
    assert_eq!(rep["distributed"], true);
    assert_eq!(rep["nodes"], 6);
    let root = rep["root"].as_str().unwrap().to_string();
    // the CID is the one the embedded repo computes for the same bytes
    let local = cairn(&["put", "--only-hash", data.to_str().unwrap()], &[]);
    assert_eq!(String::from_utf8_lossy(&local.stdout).trim(), root);

    let stat = cairn(&["--json", "stat", &root], &env);
    assert!(
        stat.status.success(),
        "{}",
        String::from_utf8_lossy(&stat.stderr)
    );
    let pl: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
    for stripe in pl.as_array().unwrap() {
        for shard in stripe.as_array().unwrap() {
            assert_eq!(shard["holders"].as_array().unwrap().len(), 1, "{shard}");
        }
    }
    let out = d.path().join("out.bin");
    let get = cairn(&["get", &root, "-o", out.to_str().unwrap()], &env);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&data).unwrap());

    // a bad CID is one clear line, exit 1
    let bad = cairn(&["get", "not-a-cid", "-o", "x"], &env);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);

    // every repo command goes through the node or says it is local-only
    let tree = d.path().join("tree");
    std::fs::create_dir_all(tree.join("train")).unwrap();
    let shard = cairn_core::testgen::Gen::bytes(6, 3 << 20);
    std::fs::write(tree.join("train/shard-0.tar"), &shard).unwrap();
    std::fs::write(tree.join("dataset.json"), b"{\"n\": 1}").unwrap();
    let run = |args: &[&str]| {
        let o = cairn(args, &env);
        assert!(
            o.status.success(),
            "cairn {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    let put = run(&[
        "--json",
        "put",
        "-k",
        "2",
        "-m",
        "1",
        "--profile",
        "unixfs-v1-2025",
        tree.to_str().unwrap(),
    ]);
    let rep: serde_json::Value = serde_json::from_slice(&put).unwrap();
    let troot = rep["root"].as_str().unwrap().to_string();
    // the publisher's profile: the CID kubo gives, and stripes of k + m = 3 shards
    let hashed = cairn(
        &[
            "put",
            "--only-hash",
            "--profile",
            "unixfs-v1-2025",
            tree.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&hashed.stdout).trim(), troot);
    let pl: serde_json::Value = serde_json::from_slice(&run(&["--json", "stat", &troot])).unwrap();
    // k + m = 3 shards per stripe (the last stripe may hold fewer data shards)
    let stripes = pl.as_array().unwrap();
    assert_eq!(stripes[0].as_array().unwrap().len(), 3, "{pl}");
    assert!(
        stripes.iter().all(|s| s.as_array().unwrap().len() <= 3),
        "{pl}"
    );
    let ls = String::from_utf8(run(&["ls", &troot])).unwrap();
    assert!(ls.contains("dataset.json") && ls.contains("train"), "{ls}");
    let ls2 = String::from_utf8(run(&["ls", &format!("{troot}/train")])).unwrap();
    assert!(ls2.contains("shard-0.tar"), "{ls2}");
    assert_eq!(
        run(&["cat", &format!("{troot}/dataset.json")]),
        b"{\"n\": 1}"
    );
    assert_eq!(
        run(&["cat", &format!("/ipfs/{troot}/train/shard-0.tar")]),
        shard
    );
    // a node's gateway serves a file of the dataset that it does not hold every block of
    // (`only-if-cached` says so with 412): the rest comes from its peers, byte for byte
    let file_url = |n: &serde_json::Value| {
        format!(
            "{}/ipfs/{troot}/train/shard-0.tar",
            n["gateway"].as_str().unwrap()
        )
    };
    let lacking = nodes
        .iter()
        .find(|n| http_get(&file_url(n), true).0 == 412)
        .expect("every node holds every block of the file");
    let (status, body) = http_get(&file_url(lacking), false);
    assert_eq!(status, 200);
    assert!(
        body == shard,
        "the gateway sent other bytes ({} of {})",
        body.len(),
        shard.len()
    );
    let sub = d.path().join("sub");
    run(&[
        "get",
        &format!("{troot}/train"),
        "-o",
        sub.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(sub.join("shard-0.tar")).unwrap(), shard);
    let car = d.path().join("t.car");
    run(&["car", "export", &troot, "-o", car.to_str().unwrap()]);
    assert!(std::fs::metadata(&car).unwrap().len() > shard.len() as u64);
    let v: serde_json::Value = serde_json::from_slice(&run(&["--json", "verify"])).unwrap();
    assert!(v["checked"].as_u64().unwrap() > 0, "{v}");
    let pins = String::from_utf8(run(&["pin", "ls"])).unwrap();
    assert!(pins.contains(&troot), "{pins}");
    for args in [
        vec!["gc"],
        vec!["car", "import", "t.car"],
        vec!["pin", "add", &troot],
    ] {
        let o = cairn(&args, &env);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("error: ") && err.contains("local-only"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // a path that is not there, and a node that is down: one error line each
    let o = cairn(&["cat", &format!("{troot}/nope")], &env);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "{o:?}"
    );
    let o = cairn(&["--api", "127.0.0.1:1", "ls", &troot], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "{o:?}"
    );
    // rm needs the publisher: another node's token is refused
    let other_api = nodes[1]["api"].as_str().unwrap();
    let other_token = std::fs::read_to_string(dn.join("node-1/api.token")).unwrap();
    let o = cairn(
        &["rm", &troot],
        &[
            ("CAIRN_API", other_api),
            ("CAIRN_API_TOKEN", other_token.trim()),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let rm: serde_json::Value = serde_json::from_slice(&run(&["--json", "rm", &troot])).unwrap();
    assert!(rm["failed"].as_array().unwrap().is_empty(), "{rm}");
    assert!(rm["removed_from"].as_array().unwrap().len() >= 3, "{rm}");
    for n in nodes {
        let o = cairn(&["pin", "ls"], &[("CAIRN_API", n["api"].as_str().unwrap())]);
        assert!(!String::from_utf8_lossy(&o.stdout).contains(&troot));
    }
    let o = cairn(&["stat", &troot], &env);
    assert_eq!(o.status.code(), Some(1));
    // the first dataset is untouched
    let out2 = d.path().join("out2.bin");
    run(&["get", &root, "-o", out2.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out2).unwrap(), std::fs::read(&data).unwrap());

    let down = cairn(&["devnet", "down", "--dir", dn.to_str().unwrap()], &[]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!dn.join("devnet.json").exists());
    for n in nodes {
        let pid = n["pid"].as_u64().unwrap();
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists() || {
                // a zombie until its parent (the exited `devnet up`) is reaped by init
                std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .map(|s| s.contains("State:\tZ"))
                    .unwrap_or(true)
            }
        );
    }
}
