//! Crash safety of the store (issue 14, item 8): a process SIGKILLed at seeded random points of
//! a put, and a node SIGKILLed while a peer pushes shards to it, leave a repo in which every
//! indexed block reads back and verifies, every stored block is indexed, the cache tables agree,
//! and pins and datasets name only manifests that are present.
//!
//! Kill times are drawn uniformly from a seeded RNG over the span of the fastest of a few
//! uninterrupted runs measured first, so they scale with the machine instead of assuming how
//! fast it is. Set
//! `CAIRN_CRASH_SEED` to try other seeds; a failure names its seed and kill.

use cairn_core::block::{cid_from_bytes, Block};
use cairn_core::profile::Profile;
use cairn_core::testgen::Gen;
use cairn_repo::store::Table;
use cairn_repo::Repo;
use cairn_storage_node::config::NodeConfig;
use cid::Cid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The committed seed (issue 14, item 8).
const SEED: u64 = 1408;
/// Uninterrupted puts measured before the kills.
const PUT_MEASURES: usize = 2;
/// Puts killed, each in a fresh repo.
const PUT_KILLS: usize = 8;
/// Pushes during which the receiving node is killed (its repo is kept from kill to kill).
const PUSH_KILLS: usize = 8;
/// The put's input: 40 MiB in three files, so one put writes 60 MiB of shards (RS(4,2)), several
/// times the 16 MiB blocks memtable: kills land before, between and after automatic flushes.
const PUT_FILES: [(&str, u64); 3] = [
    ("a.bin", 24 << 20),
    ("b.bin", (15 << 20) + 12_345),
    ("c/d.bin", 1 << 20),
];
/// Uninterrupted pushes measured before the kills.
const PUSH_MEASURES: usize = 3;
/// Each pushed file: with k = 1, m = 1 the receiving node gets one shard of every stripe, 32 MiB
/// in pushes of 8 blocks, more than its 16 MiB blocks memtable, so it flushes mid-push.
const PUSH_FILE: u64 = 32 << 20;
/// With [`CHILD_INPUT`], makes this test binary the child that puts: the repo.
const CHILD_REPO: &str = "CAIRN_CRASH_PUT_REPO";
/// The child's input.
const CHILD_INPUT: &str = "CAIRN_CRASH_PUT_INPUT";
/// How long a node may take to start or to see its peer.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

/// The two tests measure run times: they run one at a time so the other does not skew them.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn seed() -> u64 {
    std::env::var("CAIRN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

fn write_file(path: &Path, seed: u64, len: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut g = Gen::new(seed, len);
    while let Some(c) = g.next_chunk(1 << 20) {
        f.write_all(&c).unwrap();
    }
    f.flush().unwrap();
}

/// SIGKILLs `child` (`Child::kill` sends SIGKILL on Unix) once `at` has passed since `start`;
/// returns false, without killing, if it had already exited (successfully).
fn kill_at(child: &mut Child, start: Instant, at: Duration) -> bool {
    if let Some(left) = (start + at).checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    if let Some(st) = child.try_wait().unwrap() {
        assert!(st.success(), "the child failed on its own: {st}");
        return false;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// What a crashed repo holds.
#[derive(Debug, Default)]
struct Found {
    blocks: usize,
    bytes: u64,
    datasets: usize,
}

/// Checks a repo reopened after a crash: `block_index` and `blocks` name the same blocks and
/// each reads back and verifies; `cache` and `cache_index` name the same copies; every manifest
/// a pin or dataset names is stored with its second copy; nothing is quarantined. With `whole`,
/// every shard of every recorded dataset is stored too (a repo that ingested it itself).
fn check(repo: &Repo, whole: bool, what: &str) -> Found {
    let s = repo.store();
    let mut found = Found::default();
    let mut indexed = Vec::new();
    s.for_each_cid(&mut |c| {
        indexed.push(c);
        true
    })
    .unwrap();
    for c in &indexed {
        let size = s.size(c).unwrap().unwrap();
        let data = s
            .get_raw(c)
            .unwrap_or_else(|e| panic!("{what}: indexed block {c} is unreadable: {e}"))
            .unwrap_or_else(|| panic!("{what}: block_index has {c}, blocks has no bytes for it"));
        assert_eq!(
            data.len() as u64,
            size,
            "{what}: {c} has a wrong indexed size"
        );
        Block::verify(c, &data).unwrap_or_else(|e| panic!("{what}: {c} does not verify: {e}"));
        found.bytes += size;
    }
    found.blocks = indexed.len();
    let mut stored = Vec::new();
    s.for_each_stored_cid(&mut |c| {
        stored.push(c);
        true
    })
    .unwrap();
    let unindexed: Vec<&Cid> = stored.iter().filter(|c| !s.has(c).unwrap()).collect();
    assert!(
        unindexed.is_empty(),
        "{what}: {} of {} stored blocks have no block_index entry (first: {})",
        unindexed.len(),
        stored.len(),
        unindexed[0]
    );
    assert_eq!(stored, indexed, "{what}: blocks and block_index disagree");

    let keys = |t: Table| -> Vec<Vec<u8>> {
        s.table_scan(t)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(
        keys(Table::Cache),
        keys(Table::CacheIndex),
        "{what}: cache and cache_index disagree"
    );
    for t in [Table::Cache, Table::Manifests] {
        for (k, v) in s.table_scan(t).unwrap() {
            let c = cid_from_bytes(&k).unwrap();
            Block::verify(&c, &v)
                .unwrap_or_else(|e| panic!("{what}: {} copy of {c} is bad: {e}", t.name()));
        }
    }
    assert!(
        s.table_scan(Table::Quarantine).unwrap().is_empty(),
        "{what}: blocks were quarantined"
    );

    let manifest_present = |m: &Cid| {
        assert!(
            s.has(m).unwrap(),
            "{what}: manifest {m} is named but not stored"
        );
        assert!(
            s.table_get(Table::Manifests, &m.to_bytes())
                .unwrap()
                .is_some(),
            "{what}: manifest {m} has no second copy"
        );
    };
    for (root, mcid) in repo.datasets().unwrap() {
        manifest_present(&mcid);
        let m = repo.manifest(&mcid).unwrap();
        assert_eq!(
            m.root, root,
            "{what}: dataset {root} names another's manifest"
        );
        for p in &m.pages {
            manifest_present(p);
        }
        if whole {
            for st in repo.stripes(&m).unwrap() {
                for c in st.shards() {
                    assert!(s.has(c).unwrap(), "{what}: shard {c} of {root} is missing");
                }
            }
        }
        found.datasets += 1;
    }
    for (k, v) in s.table_scan(Table::Pins).unwrap() {
        let root = cid_from_bytes(&k).unwrap();
        if v.is_empty() {
            continue;
        }
        let mcid = cid_from_bytes(&v).unwrap();
        manifest_present(&mcid);
        let datasets = s.table_get(Table::Datasets, &k).unwrap();
        assert_eq!(
            datasets,
            Some(v),
            "{what}: pin {root} and its dataset disagree"
        );
    }
    found
}

// ---------------------------------------------------------------------------------------------
// A put killed at random points

/// The child: puts the input into the repo (this test binary re-executed with [`CHILD_REPO`]
/// and [`CHILD_INPUT`] set; run normally it does nothing).
#[test]
fn child_process_for_put_crashes() {
    let (Some(repo), Some(input)) = (std::env::var_os(CHILD_REPO), std::env::var_os(CHILD_INPUT))
    else {
        return;
    };
    let repo = Repo::open(Path::new(&repo)).unwrap();
    repo.put(Path::new(&input), &Profile::cairn_v1(), &|_| {})
        .unwrap();
}

fn spawn_put(repo: &Path, input: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_for_put_crashes",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD_REPO, repo)
        .env(CHILD_INPUT, input)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn put_killed_at_random_points_leaves_blocks_index_and_pins_in_agreement() {
    let _serial = serial();
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    for (i, (name, len)) in PUT_FILES.iter().enumerate() {
        write_file(&input.join(name), seed * 10 + i as u64, *len);
    }

    // uninterrupted runs: the span kills are drawn from (the fastest run's), and the root every
    // resumed put must give
    let mut span = Duration::MAX;
    let mut root = None;
    for j in 0..PUT_MEASURES {
        let clean = dir.path().join(format!("clean-{j}"));
        let start = Instant::now();
        assert!(spawn_put(&clean, &input).wait().unwrap().success());
        span = span.min(start.elapsed());
        let repo = Repo::open(&clean).unwrap();
        let f = check(&repo, true, "uninterrupted put");
        assert_eq!(f.datasets, 1);
        let r = repo.datasets().unwrap()[0].0;
        assert_eq!(
            *root.get_or_insert(r),
            r,
            "two puts of one input gave two roots"
        );
        drop(repo);
        std::fs::remove_dir_all(&clean).unwrap();
    }
    let root = root.unwrap();
    eprintln!("seed {seed}: one put takes {span:?}");

    for i in 0..PUT_KILLS {
        let what = format!("seed {seed}, put kill {i}");
        let at = span.mul_f64(rng.gen_range(0.0..1.0));
        let path = dir.path().join(format!("kill-{i}"));
        let start = Instant::now();
        let mut child = spawn_put(&path, &input);
        let killed = kill_at(&mut child, start, at);
        let repo = Repo::open(&path).unwrap();
        let f = check(&repo, true, &what);
        eprintln!(
            "{what}: {} at {at:?}: {} blocks ({} MiB) durable, {} datasets",
            if killed { "killed" } else { "finished" },
            f.blocks,
            f.bytes >> 20,
            f.datasets
        );
        // a re-run completes what the crash interrupted, to the same root, and the repo is whole
        let r = repo
            .put(&input, &Profile::cairn_v1(), &|_| {})
            .unwrap_or_else(|e| panic!("{what}: resumed put: {e}"));
        assert_eq!(r.root, root, "{what}: resumed put gave another root");
        let scrub = repo.scrub(&|_| {}).unwrap();
        assert!(
            scrub.missing.is_empty() && scrub.corrupt.is_empty(),
            "{what}: after the resumed put: {scrub:?}"
        );
        check(&repo, true, &format!("{what}, resumed"));
        drop(repo);
        std::fs::remove_dir_all(&path).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// A push killed at random points

/// A running `cairn-node`, SIGKILLed when dropped.
struct Daemon {
    child: Child,
    api: String,
    addrs: Vec<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const NODE_BIN: &str = env!("CARGO_BIN_EXE_cairn-node");

/// `cairn-node init` with k = 1, m = 1 (so a put spreads each stripe over both nodes), and no
/// proofs, fast tier, scrub or timed repair: only the push touches the store.
fn init_node(repo: &Path, bootstrap: Option<&str>) {
    let mut cmd = Command::new(NODE_BIN);
    cmd.arg("init")
        .arg("--repo")
        .arg(repo)
        .args(["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"])
        // two nodes on one machine: not both on the default gateway port
        .args(["--gateway", "127.0.0.1:0"])
        .args(["--repair-interval", "0"]);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = repo.join("config.toml");
    let mut c = NodeConfig::load(&path).unwrap();
    c.k = 1;
    c.m = 1;
    c.scrub_interval_secs = 0;
    c.proofs.enabled = false;
    c.placement.enabled = false;
    c.save(&path).unwrap();
}

/// `cairn-node run`, once it printed its ready line (logs go to `<repo>.log`).
fn start_node(repo: &Path) -> Daemon {
    let mut log = repo.as_os_str().to_owned();
    log.push(".log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(PathBuf::from(log))
        .unwrap();
    let mut child = Command::new(NODE_BIN)
        .arg("run")
        .arg("--config")
        .arg(repo.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(NODE_TIMEOUT).unwrap_or_default();
    let mut d = Daemon {
        child,
        api: String::new(),
        addrs: Vec::new(),
    };
    let ready: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|_| panic!("node in {} did not start", repo.display()));
    d.api = ready["api"].as_str().unwrap().to_string();
    d.addrs = ready["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    d
}

fn status(api: &str) -> Value {
    ureq::get(&format!("http://{api}/api/v0/status"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// Waits until a put through `a` spreads to `b`: both see each other, and a small probe put
/// (`dir/probe-<n>.bin`) comes back distributed (a fresh connection can take a moment before
/// `a` counts `b` among the live nodes).
fn spreading(a: &Daemon, b: &Daemon, token: &str, dir: &Path, n: usize) {
    let deadline = Instant::now() + NODE_TIMEOUT;
    for attempt in 0.. {
        assert!(Instant::now() < deadline, "puts through A do not reach B");
        if status(&a.api)["peers"].as_u64() < Some(1) || status(&b.api)["peers"].as_u64() < Some(1)
        {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let probe = dir.join(format!("probe-{n}-{attempt}.bin"));
        write_file(&probe, u64::MAX - (n * 1000 + attempt) as u64, 4096);
        let report = put_through(&a.api, token, &probe).join().unwrap();
        if report.is_ok_and(|r| r["distributed"] == true) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST /api/v0/put` of a plain file, in a thread.
fn put_through(
    api: &str,
    token: &str,
    file: &Path,
) -> std::thread::JoinHandle<Result<Value, String>> {
    let (url, auth, file) = (
        format!("http://{api}/api/v0/put"),
        format!("Bearer {token}"),
        file.to_path_buf(),
    );
    std::thread::spawn(move || {
        let mut f = std::fs::File::open(&file).map_err(|e| e.to_string())?;
        let mut r = ureq::post(&url)
            .header("Authorization", &auth)
            .send(ureq::SendBody::from_reader(&mut f))
            .map_err(|e| e.to_string())?;
        r.body_mut().read_json().map_err(|e| e.to_string())
    })
}

#[test]
fn node_killed_during_a_push_keeps_blocks_index_and_pins_in_agreement() {
    let _serial = serial();
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e37_79b9);
    let dir = tempfile::tempdir().unwrap();
    let (a_repo, b_repo) = (dir.path().join("a"), dir.path().join("b"));
    init_node(&a_repo, None);
    let a = start_node(&a_repo);
    init_node(&b_repo, Some(&a.addrs[0]));
    let mut b = start_node(&b_repo);
    let token = std::fs::read_to_string(a_repo.join("api.token")).unwrap();
    let token = token.trim();
    spreading(&a, &b, token, dir.path(), 0);
    let file = |i: usize| {
        let p = dir.path().join(format!("push-{i}.bin"));
        write_file(&p, seed * 100 + i as u64, PUSH_FILE);
        p
    };

    // uninterrupted puts: the push span is from B's first stored byte to B's commit of the
    // dataset (after which A only tidies up and announces), in the fastest of them (the first
    // push between two fresh nodes is slower than the rest)
    let (mut first, mut end) = (Duration::MAX, Duration::MAX);
    for j in 0..PUSH_MEASURES {
        let st = status(&b.api);
        let (used, datasets) = (st["used"].as_u64(), st["datasets"].as_u64());
        let input = file(PUSH_KILLS + 1 + j);
        let start = Instant::now();
        let put = put_through(&a.api, token, &input);
        let (mut stored, mut committed) = (None, None);
        while !put.is_finished() {
            let st = status(&b.api);
            if stored.is_none() && st["used"].as_u64() > used {
                stored = Some(start.elapsed());
            }
            if committed.is_none() && st["datasets"].as_u64() > datasets {
                committed = Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let report = put.join().unwrap().unwrap();
        assert_eq!(
            report["distributed"], true,
            "the put was not spread: {report}"
        );
        first = first.min(stored.expect("B stored nothing during the push"));
        end = end.min(committed.unwrap_or_else(|| start.elapsed()));
    }
    assert!(end > first, "the measured pushes took no time");
    eprintln!("seed {seed}: the push into B runs from {first:?} to {end:?} of the put");

    let mut interrupted = 0;
    for i in 1..=PUSH_KILLS {
        let what = format!("seed {seed}, push kill {i}");
        let at = first + (end - first).mul_f64(rng.gen_range(0.0..1.0));
        let input = file(i);
        let start = Instant::now();
        let put = put_through(&a.api, token, &input);
        assert!(
            kill_at(&mut b.child, start, at),
            "{what}: B exited by itself"
        );
        let outcome = match put.join().unwrap() {
            Ok(r) if r["distributed"] == true => "done before the kill",
            Ok(_) => "kept on A: B was not seen",
            Err(_) => {
                interrupted += 1;
                "interrupted"
            }
        };
        drop(b);
        let repo = Repo::open(&b_repo).unwrap();
        let f = check(&repo, false, &what);
        drop(repo);
        eprintln!(
            "{what}: killed at {at:?}, put {outcome}: B holds {} blocks ({} MiB), {} datasets",
            f.blocks,
            f.bytes >> 20,
            f.datasets
        );
        b = start_node(&b_repo);
        spreading(&a, &b, token, dir.path(), i);
    }
    assert!(interrupted > 0, "seed {seed}: no kill landed during a push");
    // B still takes pushes after its crashes
    let report = put_through(&a.api, token, &file(0))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(report["distributed"], true, "{report}");
    drop(b);
    let repo = Repo::open(&b_repo).unwrap();
    check(&repo, false, &format!("seed {seed}, after the last push"));
}
