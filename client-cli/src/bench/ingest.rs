//! `cairn bench ingest`: `cairn put` alternated, in one run, with the real commands it is judged
//! against (GitHub issue 20):
//!
//! 1. durable `cairn put` into a fresh repo vs `dd bs=8M conv=fdatasync`, and the put's peak RSS;
//! 2. `cairn put --only-hash` (blake3, cairn-v1) vs blake3 on one thread over the same file;
//! 3. `cairn put --only-hash --profile unixfs-v1-2025` (sha2-256) vs `ipfs-car pack`, whose
//!    root CID must be the same.
//!
//! Every command is a process of its own, timed from spawn to exit; the rounds alternate which
//! side goes first, and `sync` runs between commands so that one's writeback does not land in
//! the other's time.

use super::data::fill;
use super::report::{report, verdict};
use anyhow::{anyhow, ensure, Context, Result};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Durable put: the least acceptable ratio dd time / put time.
const PUT_TARGET: f64 = 0.7;
/// Durable put: the most peak RSS allowed for the `cairn put` child, in MiB.
const RSS_TARGET_MIB: f64 = 128.0;
/// Only-hash (blake3): the least acceptable ratio blake3-on-one-thread time / ours.
const HASH_TARGET: f64 = 1.5;
/// Only-hash (sha2-256): the least acceptable ratio ipfs-car time / ours.
const IPFS_CAR_TARGET: f64 = 10.0;
/// Size of the pieces the input is generated in, and of dd's blocks.
const PIECE: usize = 8 << 20;
/// Read buffer of the read-loop blake3 baseline.
const READ_BUF: usize = 1 << 20;

/// What `cairn bench ingest` measures.
pub(crate) struct IngestBench<'a> {
    /// Input size in MiB.
    pub mib: u64,
    /// Rounds of each comparison (the medians are reported).
    pub rounds: usize,
    /// Scratch directory (default: the system temp dir).
    pub dir: Option<&'a Path>,
    /// The ipfs-car executable (default: `ipfs-car` on PATH; without one, part 3 is skipped).
    pub ipfs_car: Option<&'a Path>,
}

/// Runs the three comparisons and reports them as one line each (or one JSON object).
pub(crate) fn run(b: &IngestBench<'_>, json: bool) -> Result<()> {
    ensure!(b.mib > 0, "--mib must be at least 1");
    ensure!(b.rounds > 0, "--rounds must be at least 1");
    // resolved first, so that a bad --ipfs-car fails before minutes of measuring
    let ipfs_car = find_ipfs_car(b.ipfs_car)?;
    let scratch = match b.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("creating scratch directory")?;
    let input = scratch.path().join("input.bin");
    write_input(&input, b.mib << 20)?;
    sync();
    let exe = std::env::current_exe().context("locating this executable")?;
    // the put first, while this process is small (see the clear_refs note in `durable_put`)
    let put = durable_put(&exe, &input, scratch.path(), b.rounds)?;
    let hash = only_hash_blake3(&exe, &input, b.rounds)?;
    let car = match &ipfs_car {
        Ok(path) => Ok(vs_ipfs_car(&exe, path, &input, scratch.path(), b.rounds)?),
        Err(why) => Err(why.clone()),
    };
    let mut fields = json!({"mib": b.mib, "rounds": b.rounds});
    let mut lines = Vec::new();
    put.add(b.mib, &mut fields, &mut lines);
    hash.add(b.mib, &mut fields, &mut lines);
    match &car {
        Ok(c) => c.add(b.mib, &mut fields, &mut lines),
        Err(why) => {
            fields["ipfs_car_skipped"] = json!(why);
            let mib = b.mib;
            lines.push(format!("sha2    {mib} MiB vs ipfs-car: skipped ({why})"));
        }
    }
    report(json, "ingest", fields, lines.join("\n"));
    Ok(())
}

/// Where ipfs-car is: `given` (which must exist), else `ipfs-car` on PATH; `Err` holds why the
/// comparison is skipped. The outer error is a `given` path that is not there.
fn find_ipfs_car(given: Option<&Path>) -> Result<std::result::Result<PathBuf, String>> {
    if let Some(p) = given {
        ensure!(p.is_file(), "--ipfs-car {}: no such file", p.display());
        return Ok(Ok(p.to_path_buf()));
    }
    let on_path = std::env::var_os("PATH").and_then(|dirs| {
        std::env::split_paths(&dirs)
            .map(|d| d.join("ipfs-car"))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    });
    Ok(on_path.ok_or_else(|| {
        "no --ipfs-car PATH or IPFS_CAR given and no ipfs-car on PATH; \
         scripts/bench-ingest.sh installs ipfs-car@3.1.0"
            .to_string()
    }))
}

/// Writes `len` seeded incompressible bytes to `path`, 8 MiB at a time.
fn write_input(path: &Path, len: u64) -> Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut buf = vec![0u8; PIECE];
    let mut left = len;
    let mut seed = 100;
    while left > 0 {
        let n = usize::try_from((PIECE as u64).min(left))?;
        fill(seed, &mut buf[..n]);
        f.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
        seed += 1;
    }
    Ok(())
}

/// Flushes every dirty page and inode to disk, so the next command times only its own writes.
fn sync() {
    // SAFETY: sync(2) takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::sync() }
}

/// Whether round `round` (counted from 1) runs the baseline first: odd rounds do, even rounds
/// run Cairn first.
fn baseline_first(round: usize) -> bool {
    round % 2 == 1
}

/// The median of `xs` (the mean of the middle two for an even count); `xs` is not empty.
fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Throughput in GB/s of `mib` MiB in `secs` seconds.
fn gbps(mib: u64, secs: f64) -> f64 {
    (mib << 20) as f64 / secs / 1e9
}

/// Per-round figures as `a, b, c` with `prec` decimals.
fn list(xs: &[f64], prec: usize) -> String {
    xs.iter()
        .map(|x| format!("{x:.prec$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The field `key` (such as `VmHWM:`, the peak RSS) of /proc/self/status, in KiB; 0 if unknown.
fn own_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A child process that ran to completion.
struct Finished {
    /// From just before spawn to its exit being reaped.
    elapsed: Duration,
    /// How it ended.
    status: ExitStatus,
    /// Its own peak resident set (`ru_maxrss` from `wait4`), in KiB.
    max_rss_kib: u64,
    /// Everything it wrote to stdout.
    stdout: String,
    /// Everything it wrote to stderr.
    stderr: String,
}

impl Finished {
    /// `Ok(self)` if it exited with status 0, else an error naming `what` with its stderr.
    fn success(self, what: &str) -> Result<Self> {
        ensure!(
            self.status.success(),
            "{what} failed ({}): {}",
            self.status,
            self.stderr.trim()
        );
        Ok(self)
    }
}

/// Runs `cmd` with stdin from /dev/null and its output captured, timing it as a whole process,
/// and reaps it with `wait4` so that its rusage is its own, not that of all our children.
fn run_child(cmd: &mut Command) -> Result<Finished> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))?;
    let pid = libc::pid_t::try_from(child.id())?;
    let out = child.stdout.take().context("child stdout not captured")?;
    let err = child.stderr.take().context("child stderr not captured")?;
    // drained while it runs, so a chatty child cannot block on a full pipe
    let out = std::thread::spawn(move || read_all(out));
    let err = std::thread::spawn(move || read_all(err));
    let (status, max_rss_kib) = wait4(pid)?;
    let elapsed = t.elapsed();
    // `child` was reaped above: it must not be waited on again (dropping it does not wait)
    drop(child);
    let stdout = out
        .join()
        .map_err(|_| anyhow!("stdout reader panicked"))??;
    let stderr = err
        .join()
        .map_err(|_| anyhow!("stderr reader panicked"))??;
    Ok(Finished {
        elapsed,
        status,
        max_rss_kib,
        stdout,
        stderr,
    })
}

/// Reads a pipe to its end, lossily as UTF-8.
fn read_all(mut r: impl Read) -> Result<String> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).context("reading a child's output")?;
    Ok(String::from_utf8_lossy(&v).into_owned())
}

/// Waits for child `pid` to exit; returns its status and peak RSS in KiB.
fn wait4(pid: libc::pid_t) -> Result<(ExitStatus, u64)> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `rusage` is a plain C struct of integers, for which all-zero bytes are valid.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes only into `status` and `ru`, both live locals; `pid` is a child
        // of ours that nothing else waits for.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            return Ok((
                ExitStatus::from_raw(status),
                u64::try_from(ru.ru_maxrss).unwrap_or(0),
            ));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
}

/// `exe` (this binary) as a `cairn` child, never routed to a node API from the environment.
fn cairn(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    c.env_remove("CAIRN_API").env_remove("CAIRN_API_TOKEN");
    c
}

/// The `root` of a `cairn --json put` child's output.
fn put_root(out: &str) -> Result<(String, Value)> {
    let v: Value = serde_json::from_str(out.trim())
        .with_context(|| format!("parsing cairn put's output {:?}", out.trim()))?;
    let root = v["root"]
        .as_str()
        .with_context(|| format!("no root in cairn put's output {v}"))?
        .to_string();
    Ok((root, v))
}

/// A dd operand: `key` (such as `if=`) followed by a path.
fn operand(key: &str, p: &Path) -> OsString {
    let mut s = OsString::from(key);
    s.push(p);
    s
}

/// Part 1's results: durable put vs dd, and the put's peak RSS.
#[derive(Default)]
struct Put {
    /// dd's time per round, seconds.
    dd: Vec<f64>,
    /// `cairn put`'s time per round, seconds.
    put: Vec<f64>,
    /// The put child's peak RSS per round, MiB.
    rss: Vec<f64>,
    /// This process's peak RSS (VmHWM) when each put child was spawned, MiB.
    parent: Vec<f64>,
    /// The last put's JSON output.
    out: Value,
}

/// Part 1: `dd if=IN of=OUT bs=8M conv=fdatasync` vs `cairn --repo FRESH --json put IN`.
fn durable_put(exe: &Path, input: &Path, scratch: &Path, rounds: usize) -> Result<Put> {
    let copy = scratch.join("dd.out");
    let repo = scratch.join("repo");
    let mut r = Put::default();
    let mut root: Option<String> = None;
    for round in 1..=rounds {
        for dd in [baseline_first(round), !baseline_first(round)] {
            sync();
            if dd {
                let f = run_child(
                    Command::new("dd")
                        .arg(operand("if=", input))
                        .arg(operand("of=", &copy))
                        .args(["bs=8M", "conv=fdatasync", "status=none"]),
                )?
                .success("dd")?;
                r.dd.push(f.elapsed.as_secs_f64());
                std::fs::remove_file(&copy)
                    .with_context(|| format!("removing {}", copy.display()))?;
            } else {
                // Linux starts a child's peak RSS (ru_maxrss, even from wait4) at our memory
                // before its exec: our peak (VmHWM) under posix_spawn's CLONE_VM, at most our
                // current RSS after a fork. Reset our peak to our current RSS first; failing
                // that, the floor is only higher, and it is reported either way.
                let _ = std::fs::write("/proc/self/clear_refs", b"5");
                r.parent.push(own_status_kib("VmHWM:") as f64 / 1024.0);
                let f = run_child(
                    cairn(exe)
                        .arg("--repo")
                        .arg(&repo)
                        .args(["--json", "put"])
                        .arg(input),
                )?
                .success("cairn put")?;
                r.put.push(f.elapsed.as_secs_f64());
                r.rss.push(f.max_rss_kib as f64 / 1024.0);
                let (this, v) = put_root(&f.stdout)?;
                if let Some(prev) = &root {
                    ensure!(*prev == this, "cairn put gave {prev}, then {this}");
                }
                root = Some(this);
                r.out = v;
                std::fs::remove_dir_all(&repo)
                    .with_context(|| format!("removing {}", repo.display()))?;
            }
        }
    }
    sync();
    Ok(r)
}

impl Put {
    /// Adds part 1's JSON fields and its two lines (time, RSS).
    fn add(&self, mib: u64, fields: &mut Value, lines: &mut Vec<String>) {
        let (dd, put) = (median(&self.dd), median(&self.put));
        let ratio = dd / put;
        let peak = self.rss.iter().copied().fold(0.0, f64::max);
        let parent = self.parent.iter().copied().fold(0.0, f64::max);
        let n = self.put.len();
        fields["dd_s"] = json!(dd);
        fields["put_s"] = json!(put);
        fields["ratio"] = json!(ratio);
        fields["target"] = json!(PUT_TARGET);
        fields["dd_rounds_s"] = json!(self.dd);
        fields["put_rounds_s"] = json!(self.put);
        fields["peak_rss_mib"] = json!(peak);
        fields["peak_rss_rounds_mib"] = json!(self.rss);
        fields["rss_target_mib"] = json!(RSS_TARGET_MIB);
        fields["parent_rss_floor_mib"] = json!(parent);
        fields["put"] = self.out.clone();
        lines.push(format!(
            "ingest  {mib} MiB, median of {n}: dd bs=8M conv=fdatasync {dd:.2} s ({:.2} GB/s) | cairn put (RS(4,2), pack files + RocksDB index, synced) {put:.2} s ({:.2} GB/s) | ratio {ratio:.2}x (target >= {PUT_TARGET}x) {} [dd {} s; put {} s]",
            gbps(mib, dd),
            gbps(mib, put),
            verdict(ratio >= PUT_TARGET),
            list(&self.dd, 2),
            list(&self.put, 2),
        ));
        lines.push(format!(
            "rss     {mib} MiB put: peak RSS {peak:.1} MiB, largest of {n} (target <= {RSS_TARGET_MIB} MiB; it includes this process's {parent:.1} MiB peak at spawn, a floor on the figure) {} [{} MiB]",
            verdict(peak <= RSS_TARGET_MIB),
            list(&self.rss, 1),
        ));
    }
}

/// A read-only private mapping of a whole file, unmapped when dropped.
struct Mapped {
    /// Start of the mapping.
    ptr: *mut libc::c_void,
    /// Its length in bytes (the file's, not zero).
    len: usize,
}

impl Mapped {
    /// Maps `path`. Its pages fault in as they are read (MAP_POPULATE, MADV_SEQUENTIAL and
    /// MADV_WILLNEED measured no faster here).
    fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = usize::try_from(f.metadata()?.len())?;
        ensure!(len > 0, "{} is empty", path.display());
        // SAFETY: a fresh mapping chosen by the kernel (no address hint), of a file descriptor
        // open for reading; it overlaps nothing of ours, and the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mapping {}", path.display()));
        }
        // the mapping keeps the file referenced; its descriptor can close
        Ok(Self { ptr, len })
    }

    /// The file's bytes.
    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes until `self` drops, which
        // the returned borrow cannot outlive. The file is this benchmark's own scratch input:
        // nothing writes or truncates it while it is mapped, so the bytes do not change.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    /// Unmaps the file.
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `open`, unmapped only here, and
        // no borrow of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// blake3 of the file on one thread, `Hasher::update` over a read loop with a 1 MiB buffer.
fn blake3_read(path: &Path) -> Result<blake3::Hash> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; READ_BUF];
    let mut h = blake3::Hasher::new();
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(h.finalize())
}

/// blake3 of the file on one thread, one `Hasher::update` over an mmap of it.
fn blake3_mmap(path: &Path) -> Result<blake3::Hash> {
    let m = Mapped::open(path)?;
    let mut h = blake3::Hasher::new();
    h.update(m.bytes());
    Ok(h.finalize())
}

/// Part 2's results: `cairn put --only-hash` vs blake3 on one thread.
struct Hash {
    /// The only-hash child's time per round, seconds.
    ours: Vec<f64>,
    /// The read-loop baseline's time per round, seconds.
    read: Vec<f64>,
    /// The mmap baseline's time per round, seconds.
    mmap: Vec<f64>,
    /// The file's blake3 hash, the same from both baselines in every round.
    hash: blake3::Hash,
    /// The only-hash root CID.
    root: String,
}

/// Part 2: `cairn --json put --only-hash IN` vs blake3 over the file on one thread (read loop
/// and mmap, the faster being the baseline).
fn only_hash_blake3(exe: &Path, input: &Path, rounds: usize) -> Result<Hash> {
    let (mut ours, mut read, mut mmap) = (Vec::new(), Vec::new(), Vec::new());
    let mut hash: Option<blake3::Hash> = None;
    let mut root: Option<String> = None;
    for round in 1..=rounds {
        for base in [baseline_first(round), !baseline_first(round)] {
            sync();
            if base {
                let t = Instant::now();
                let a = blake3_read(input)?;
                read.push(t.elapsed().as_secs_f64());
                sync();
                let t = Instant::now();
                let b = blake3_mmap(input)?;
                mmap.push(t.elapsed().as_secs_f64());
                // both hashes are used, so neither loop can be optimised away
                ensure!(a == b, "blake3 of the file: read loop {a}, mmap {b}");
                if let Some(h) = hash {
                    ensure!(h == a, "blake3 of the file: {h}, then {a}");
                }
                hash = Some(a);
            } else {
                let f = run_child(cairn(exe).args(["--json", "put", "--only-hash"]).arg(input))?
                    .success("cairn put --only-hash")?;
                ours.push(f.elapsed.as_secs_f64());
                let (this, _) = put_root(&f.stdout)?;
                if let Some(prev) = &root {
                    ensure!(
                        *prev == this,
                        "cairn put --only-hash gave {prev}, then {this}"
                    );
                }
                root = Some(this);
            }
        }
    }
    Ok(Hash {
        ours,
        read,
        mmap,
        hash: hash.context("no baseline round")?,
        root: root.context("no only-hash round")?,
    })
}

impl Hash {
    /// Adds part 2's JSON fields and line.
    fn add(&self, mib: u64, fields: &mut Value, lines: &mut Vec<String>) {
        let (ours, read, mmap) = (median(&self.ours), median(&self.read), median(&self.mmap));
        let base = read.min(mmap);
        let ratio = base / ours;
        let n = self.ours.len();
        fields["only_hash_blake3_s"] = json!(ours);
        fields["blake3_one_thread_s"] = json!(base);
        fields["blake3_read_s"] = json!(read);
        fields["blake3_mmap_s"] = json!(mmap);
        fields["ratio_only_hash"] = json!(ratio);
        fields["target_only_hash"] = json!(HASH_TARGET);
        fields["only_hash_blake3_rounds_s"] = json!(self.ours);
        fields["blake3_read_rounds_s"] = json!(self.read);
        fields["blake3_mmap_rounds_s"] = json!(self.mmap);
        fields["blake3_file_hash"] = json!(self.hash.to_hex().as_str());
        fields["only_hash_blake3_root"] = json!(self.root);
        lines.push(format!(
            "hash    {mib} MiB blake3 (cairn-v1), median of {n}: blake3 1 thread {base:.3} s ({:.2} GB/s; read loop 1 MiB {read:.3} s, mmap {mmap:.3} s; hash {}) | cairn put --only-hash {ours:.3} s ({:.2} GB/s) | ratio {ratio:.2}x (target >= {HASH_TARGET}x) {} [read {} s; mmap {} s; ours {} s]",
            gbps(mib, base),
            &self.hash.to_hex()[..16],
            gbps(mib, ours),
            verdict(ratio >= HASH_TARGET),
            list(&self.read, 3),
            list(&self.mmap, 3),
            list(&self.ours, 3),
        ));
    }
}

/// Part 3's results: `cairn put --only-hash --profile unixfs-v1-2025` vs `ipfs-car pack`.
struct Car {
    /// The ipfs-car executable.
    path: PathBuf,
    /// What `ipfs-car --version` printed.
    version: String,
    /// ipfs-car's time per round, seconds.
    car: Vec<f64>,
    /// Our only-hash time per round, seconds.
    ours: Vec<f64>,
    /// The root CID both printed.
    root: String,
}

/// Part 3: `ipfs-car pack IN --no-wrap --output OUT.car` vs
/// `cairn --json put --only-hash --profile unixfs-v1-2025 IN`; the roots must be equal.
fn vs_ipfs_car(
    exe: &Path,
    ipfs_car: &Path,
    input: &Path,
    scratch: &Path,
    rounds: usize,
) -> Result<Car> {
    let version = run_child(Command::new(ipfs_car).arg("--version"))?
        .success("ipfs-car --version")?
        .stdout
        .trim()
        .to_string();
    let out = scratch.join("out.car");
    let (mut car, mut ours) = (Vec::new(), Vec::new());
    // the root CID each side printed: [ipfs-car, cairn]
    let mut roots: [Option<String>; 2] = [None, None];
    for round in 1..=rounds {
        for base in [baseline_first(round), !baseline_first(round)] {
            sync();
            // ipfs-car prints the root CID on stdout (when the CAR goes to --output)
            let (this, side) = if base {
                let f = run_child(
                    Command::new(ipfs_car)
                        .arg("pack")
                        .arg(input)
                        .arg("--no-wrap")
                        .arg("--output")
                        .arg(&out),
                )?
                .success("ipfs-car pack")?;
                car.push(f.elapsed.as_secs_f64());
                match std::fs::remove_file(&out) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).with_context(|| format!("removing {}", out.display()))
                    }
                    _ => {}
                }
                let cid = f.stdout.lines().map(str::trim).rfind(|l| !l.is_empty());
                let cid =
                    cid.with_context(|| format!("ipfs-car printed no root CID: {:?}", f.stdout))?;
                (cid.to_string(), 0)
            } else {
                let f = run_child(
                    cairn(exe)
                        .args([
                            "--json",
                            "put",
                            "--only-hash",
                            "--profile",
                            "unixfs-v1-2025",
                        ])
                        .arg(input),
                )?
                .success("cairn put --only-hash --profile unixfs-v1-2025")?;
                ours.push(f.elapsed.as_secs_f64());
                (put_root(&f.stdout)?.0, 1)
            };
            if let Some(prev) = &roots[side] {
                ensure!(
                    *prev == this,
                    "round {round} gave root {this}, an earlier one {prev}"
                );
            }
            roots[side] = Some(this);
            if let [Some(theirs), Some(ours)] = &roots {
                ensure!(
                    theirs == ours,
                    "root CIDs differ: ipfs-car pack --no-wrap gave {theirs}, cairn put \
                     --only-hash --profile unixfs-v1-2025 gave {ours}; the profile must build \
                     the same DAG as ipfs-car"
                );
            }
        }
    }
    Ok(Car {
        path: ipfs_car.to_path_buf(),
        version,
        car,
        ours,
        root: roots[1].take().context("no round")?,
    })
}

impl Car {
    /// Adds part 3's JSON fields and line.
    fn add(&self, mib: u64, fields: &mut Value, lines: &mut Vec<String>) {
        let (car, ours) = (median(&self.car), median(&self.ours));
        let ratio = car / ours;
        let n = self.ours.len();
        fields["ipfs_car_s"] = json!(car);
        fields["only_hash_sha2_s"] = json!(ours);
        fields["ratio_vs_ipfs_car"] = json!(ratio);
        fields["target_vs_ipfs_car"] = json!(IPFS_CAR_TARGET);
        fields["ipfs_car_rounds_s"] = json!(self.car);
        fields["only_hash_sha2_rounds_s"] = json!(self.ours);
        fields["sha2_root"] = json!(self.root);
        fields["ipfs_car"] = json!(self.path.display().to_string());
        fields["ipfs_car_version"] = json!(self.version);
        lines.push(format!(
            "sha2    {mib} MiB sha2-256 (unixfs-v1-2025), median of {n}: ipfs-car pack --no-wrap {car:.2} s ({:.2} GB/s) | cairn put --only-hash {ours:.3} s ({:.2} GB/s) | ratio {ratio:.1}x (target >= {IPFS_CAR_TARGET}x) {} [same root {}; ipfs-car {} s; ours {} s; {}]",
            gbps(mib, car),
            gbps(mib, ours),
            verdict(ratio >= IPFS_CAR_TARGET),
            self.root,
            list(&self.car, 2),
            list(&self.ours, 3),
            self.version,
        ));
    }
}
