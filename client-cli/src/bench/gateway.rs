//! `cairn bench gateway`: many HTTP clients at once, each streaming a different file from
//! `cairn serve`: the server's peak RSS (the memory bound) and its throughput, against the
//! same files read by as many threads straight from the repo, in process, and from disk.

use super::report::{report, verdict};
use anyhow::{bail, Context, Result};
use cairn_core::testgen::Gen;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The server's peak RSS must stay within this, whatever the number of clients.
pub const RSS_TARGET_MIB: f64 = 256.0;

/// Runs per measurement; the best counts (the first run of a reader may find cold caches).
const RUNS: usize = 2;

/// How often the server's RSS is sampled while clients stream.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// `cairn bench gateway` options.
pub(crate) struct GatewayBench<'a> {
    /// Files in the repo.
    pub files: usize,
    /// Size of each file in MiB.
    pub file_mib: u64,
    /// Concurrent clients; client `i` streams file `i % files`.
    pub clients: usize,
    /// Scratch directory (default: the system temp dir).
    pub dir: Option<&'a Path>,
}

fn file_name(i: usize) -> String {
    format!("file-{i:04}.bin")
}

/// Writes `n` seeded files of `len` bytes under `dir`; returns each file's blake3 hash.
fn write_files(dir: &Path, n: usize, len: u64) -> Result<Vec<blake3::Hash>> {
    std::fs::create_dir_all(dir)?;
    (0..n)
        .map(|i| {
            let p = dir.join(file_name(i));
            let mut f = std::io::BufWriter::new(std::fs::File::create(&p)?);
            let mut h = blake3::Hasher::new();
            let mut g = Gen::new(10_000 + i as u64, len);
            while let Some(c) = g.next_chunk(1 << 20) {
                h.update(&c);
                f.write_all(&c)?;
            }
            f.flush()?;
            Ok(h.finalize())
        })
        .collect()
}

/// Counts and hashes what is written to it.
struct Hashing {
    h: blake3::Hasher,
    n: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.h.update(buf);
        self.n += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Copies `r` into `w` in 256 KiB reads.
fn drain(mut r: impl Read, w: &mut dyn Write) -> Result<()> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(());
        }
        w.write_all(&buf[..k])?;
    }
}

/// Runs `clients` threads at once, thread `i` writing file `i % files` into a hasher with
/// `read`; checks every file's length and hash and returns the time from the first thread's
/// start to the last one's end (each thread times itself: with more threads than cores, the
/// spawning thread may not run again before they are done).
fn concurrently(
    clients: usize,
    want: &[blake3::Hash],
    len: u64,
    read: impl Fn(usize, &mut dyn Write) -> Result<()> + Sync,
) -> Result<Duration> {
    let barrier = Barrier::new(clients);
    std::thread::scope(|s| -> Result<Duration> {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (barrier, read) = (&barrier, &read);
                s.spawn(move || -> Result<(Instant, Instant)> {
                    barrier.wait();
                    let start = Instant::now();
                    let f = i % want.len();
                    let mut w = Hashing {
                        h: blake3::Hasher::new(),
                        n: 0,
                    };
                    read(f, &mut w).with_context(|| format!("reading file {f}"))?;
                    if w.n != len || w.h.finalize() != want[f] {
                        bail!(
                            "file {f}: {} bytes of {len}, or other bytes than written",
                            w.n
                        );
                    }
                    Ok((start, Instant::now()))
                })
            })
            .collect();
        let mut span: Option<(Instant, Instant)> = None;
        for h in handles {
            let (a, b) = h
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
            span = Some(span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
        let (a, b) = span.context("no clients")?;
        Ok(b - a)
    })
}

fn best(runs: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        best = best.min(f()?);
    }
    Ok(best)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `cairn serve` on `repo`, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(repo: &Path) -> Result<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--repo")
            .arg(repo)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting cairn serve")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let Some(url) = line.trim().strip_prefix("gateway listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cairn serve printed {line:?}, not its address");
        };
        Ok(Server {
            url: url.to_string(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: SIGTERM to the child we started; it exits once its requests are done
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// `cairn bench gateway`.
pub(crate) fn bench_gateway(o: &GatewayBench, json: bool) -> Result<()> {
    if o.files == 0 || o.clients == 0 || o.file_mib == 0 {
        bail!("--files, --clients and --file-mib must be at least 1");
    }
    let base = o
        .dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new()
        .prefix("cairn-bench-gateway-")
        .tempdir_in(&base)?;
    let (data, repo) = (scratch.path().join("data"), scratch.path().join("repo"));
    let len = o.file_mib << 20;
    let total = len * o.clients as u64;
    eprintln!(
        "writing {} files of {} MiB and putting them into a repo",
        o.files, o.file_mib
    );
    let want = write_files(&data, o.files, len)?;
    let put = Command::new(std::env::current_exe()?)
        .arg("--repo")
        .arg(&repo)
        .arg("put")
        .arg(&data)
        .stdin(Stdio::null())
        .output()?;
    if !put.status.success() {
        bail!("cairn put: {}", String::from_utf8_lossy(&put.stderr).trim());
    }
    let root = String::from_utf8_lossy(&put.stdout).trim().to_string();

    // baseline: the same files from disk, by as many threads
    let disk = best(RUNS, || {
        concurrently(o.clients, &want, len, |i, w| {
            drain(std::fs::File::open(data.join(file_name(i)))?, w)
        })
    })?;
    // context: straight from the repo in this process (the blocks the gateway reads, verified,
    // without HTTP); closed before the server opens it
    let in_process = {
        let r = cairn_repo::Repo::open(&repo)?;
        let dir = cairn_core::block::parse_cid(&root)?;
        let cids: Vec<cairn_core::Cid> = (0..o.files)
            .map(|i| r.resolve(&dir, &file_name(i)))
            .collect::<Result<_, _>>()?;
        best(RUNS, || {
            concurrently(o.clients, &want, len, |i, w| {
                r.cat(&cids[i], w)?;
                Ok(())
            })
        })?
    };

    let server = Server::start(&repo)?;
    let pid = server.pid();
    let idle_kib = status_kib(pid, "VmRSS:").unwrap_or(0);
    let sampled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (sampled, done) = (sampled.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(k) = status_kib(pid, "VmRSS:") {
                    sampled.fetch_max(k, Ordering::Relaxed);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections_per_host(o.clients)
        .build()
        .into();
    let served = best(RUNS, || {
        concurrently(o.clients, &want, len, |i, w| {
            let url = format!("{}/ipfs/{root}/{}", server.url, file_name(i));
            let resp = agent
                .get(&url)
                .call()
                .with_context(|| format!("GET {url}"))?;
            if resp.status() != 200 {
                bail!("GET {url}: {}", resp.status());
            }
            drain(resp.into_body().into_reader(), w)
        })
    });
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let served = served?;
    let peak_kib = status_kib(pid, "VmHWM:").unwrap_or(0);
    drop(server);

    let (peak, sampled, idle) = (
        peak_kib as f64 / 1024.0,
        sampled.load(Ordering::Relaxed) as f64 / 1024.0,
        idle_kib as f64 / 1024.0,
    );
    let (ours, base, repo_rate) = (
        mbps(total, served),
        mbps(total, disk),
        mbps(total, in_process),
    );
    let ratio = ours / base;
    let ratio_repo = ours / repo_rate;
    report(
        json,
        "gateway",
        json!({"files": o.files, "file_mib": o.file_mib, "clients": o.clients, "bytes": total,
               "gateway_s": served.as_secs_f64(), "gateway_mbps": ours,
               "disk_s": disk.as_secs_f64(), "disk_mbps": base, "ratio": ratio,
               "repo_in_process_s": in_process.as_secs_f64(), "repo_in_process_mbps": repo_rate,
               "ratio_repo_in_process": ratio_repo,
               "server_peak_rss_mib": peak, "server_sampled_max_rss_mib": sampled,
               "server_idle_rss_mib": idle, "rss_target_mib": RSS_TARGET_MIB}),
        format!(
            "gateway {} clients, each streaming a different {} MiB file ({} files, {} MiB in all), best of {RUNS}:\n  \
             files from disk (page cache), {} threads: {:.2} s ({base:.0} MB/s)\n  \
             the repo in process (Repo::cat, blocks verified), {} threads: {:.2} s ({repo_rate:.0} MB/s)\n  \
             cairn serve over HTTP: {:.2} s ({ours:.0} MB/s) -> {ratio:.2}x disk, {ratio_repo:.2}x the repo in process\n  \
             server peak RSS {peak:.1} MiB (target <= {RSS_TARGET_MIB:.0} MiB) {}; idle {idle:.1} MiB, largest sample while streaming {sampled:.1} MiB",
            o.clients,
            o.file_mib,
            o.files,
            total >> 20,
            o.clients,
            disk.as_secs_f64(),
            o.clients,
            in_process.as_secs_f64(),
            served.as_secs_f64(),
            verdict(peak <= RSS_TARGET_MIB),
        ),
    );
    Ok(())
}
