//! `cairn serve`: the IPFS gateway over the embedded repo, as a user runs it. A sample dataset
//! is put into a repo and served on port 0; a file comes back byte for byte, and its CAR
//! verifies block by block and holds the whole file.

use cairn_core::car::CarReader;
use cairn_core::dag::DagReader;
use cairn_core::Cid;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cairn(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("CAIRN_REPO")
        .env_remove("CAIRN_API")
        .output()
        .unwrap()
}

fn ok(repo: &Path, args: &[&str]) -> String {
    let o = cairn(repo, args);
    assert!(
        o.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A running `cairn serve`, killed if the test fails before stopping it.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(repo: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("--repo")
            .arg(repo)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("CAIRN_API")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("cairn serve printed no address");
        let url = line
            .trim()
            .strip_prefix("gateway listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> (ureq::http::HeaderMap, Vec<u8>) {
    let resp = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(resp.status(), 200, "{url}");
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap();
    (headers, body)
}

#[test]
fn serve_sends_a_file_and_a_verifiable_car_of_it() {
    let t = tempfile::tempdir().unwrap();
    let (repo, ds) = (t.path().join("repo"), t.path().join("ds"));
    let ds_s = ds.to_str().unwrap();
    ok(
        &repo,
        &[
            "bench",
            "sample-dataset",
            "--out",
            ds_s,
            "--shards",
            "2",
            "--shard-mib",
            "3",
        ],
    );
    let root = ok(&repo, &["put", ds_s]).trim().to_string();
    let root_cid: Cid = root.parse().unwrap();

    // through --api there is nothing to serve here: one line, exit 1
    let o = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--api", "127.0.0.1:1", "serve"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("local-only") && err.lines().count() == 1,
        "{err}"
    );

    let s = Serve::start(&repo);
    let file = "train/shard-000001.tar";
    let want = std::fs::read(ds.join(file)).unwrap();
    assert!(want.len() > 2 << 20, "several blocks");
    let (h, body) = get(&format!("{}/ipfs/{root}/{file}", s.url));
    assert!(body == want, "the file differs ({} bytes)", body.len());
    assert_eq!(h["content-type"], "application/x-tar");
    let (_, meta) = get(&format!("{}/ipfs/{root}/dataset.json", s.url));
    assert_eq!(meta, std::fs::read(ds.join("dataset.json")).unwrap());

    // the CAR of the path: every block verifies, the root is the URL's, and the blocks hold
    // the path and the whole file
    let (h, car) = get(&format!("{}/ipfs/{root}/{file}?format=car", s.url));
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/vnd.ipld.car"),
        "{h:?}"
    );
    let mut r = CarReader::new(car.as_slice()).unwrap();
    assert_eq!(r.roots(), [root_cid]);
    let mut blocks = HashMap::new();
    while let Some(b) = r.next_block().unwrap() {
        blocks.insert(b.cid, b.data.to_vec());
    }
    let mut dag = DagReader::new(|c: &Cid| {
        blocks
            .get(c)
            .cloned()
            .ok_or_else(|| format!("{c} is not in the CAR").into())
    });
    let target = dag.resolve(&root_cid, file).unwrap();
    let mut got = Vec::new();
    dag.read_file(&target, &mut got).unwrap();
    assert!(got == want, "the CAR's file differs");

    // SIGTERM: it stops, cleanly
    let mut s = s;
    // SAFETY: signals the child this test started
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "cairn serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // and the repo is free again
    ok(&repo, &["ls", &root]);
}
