//! `cairn bench tier`: training jobs reading datasets from a 6-node devnet whose nodes 0-3
//! emulate slow media, under four fast-tier policies, each on a fresh devnet: no fast tier,
//! LRU-driven promotion, the placement engine, and the engine with the jobs' access plans.
//! Per epoch: read time and p50/p99 file latency; overall: read throughput and bytes copied
//! to fast peers, and the ratios of the engine with plans against the others.

use super::data::sample_dataset;
use super::report::{report, verdict};
use crate::devnet::{devnet_down, devnet_up_with, token_of, Devnet, DEVNET_SLOW_MS};
use crate::node_api::{api_get_json, api_post_json, bootstrap_of, client_net, put, PutChoice};
use anyhow::Result;
use cairn_core::Cid;
use cairn_retrieval::dataset::{Dataset, Order};
use cairn_retrieval::{Client, Options};
use cairn_storage_node::config::NodeConfig;
use cairn_storage_node::tier::TierPolicy;
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// The devnet nodes that emulate slow media (+[`DEVNET_SLOW_MS`] per block served).
const SLOW: [usize; 4] = [0, 1, 2, 3];
/// Jobs: which dataset each reads (two read the popular one).
const JOBS: [usize; 3] = [0, 0, 1];
/// Target: read throughput of the engine with plans over no fast tier, and over LRU.
const TARGET_VS_NONE: f64 = 1.5;
const TARGET_VS_LRU: f64 = 1.2;

/// The benchmark's sizes.
pub(crate) struct TierBench<'a> {
    /// Files per dataset.
    pub files: u32,
    /// Size of each file (a WebDataset tar shard), MiB.
    pub file_mib: u64,
    /// Epochs each job reads.
    pub epochs: u32,
    /// Fast-tier bytes each node keeps for its peers, MiB (each promoter may use half).
    pub cache_mib: u64,
    /// Scratch directory (default: the system temp dir).
    pub dir: Option<&'a Path>,
    /// Only these policies (by name; all when empty). The ratios need `none`, `lru` and
    /// `engine+plans`.
    pub only: &'a [String],
}

/// A fast-tier policy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    None,
    Lru,
    Engine,
    EnginePlans,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::None, Mode::Lru, Mode::Engine, Mode::EnginePlans];

    fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Lru => "lru",
            Mode::Engine => "engine",
            Mode::EnginePlans => "engine+plans",
        }
    }

    /// The node configuration of this mode. Placement windows run every second (so LRU
    /// promotes what was read within a second of the read, as a cache admitting every miss
    /// would) and again before the first epoch and after each; a promoted shard is demoted
    /// by its ranker, not for being idle.
    fn configure(self, cfg: &mut NodeConfig, cache: u64) {
        let p = &mut cfg.placement;
        p.enabled = self != Mode::None;
        p.window_secs = 1;
        p.idle_windows = 1_000;
        p.cache_bytes = cache;
        p.plan_bytes = 0;
        p.prefetch_ms = 100;
        match self {
            Mode::None => p.cache_bytes = 0,
            Mode::Lru => {
                p.policy = TierPolicy::Lru;
                p.min_reads = 1;
            }
            Mode::Engine => p.policy = TierPolicy::Engine,
            Mode::EnginePlans => {
                p.policy = TierPolicy::Engine;
                p.plan_bytes = cache;
            }
        }
    }
}

/// One epoch of every job.
#[derive(Debug, Clone)]
struct Epoch {
    secs: f64,
    bytes: u64,
    latencies_ms: Vec<f64>,
    /// Each job's read time, s, and its reads slower than the emulated delay (served by a
    /// slow holder).
    jobs: Vec<(f64, usize)>,
}

impl Epoch {
    fn pct(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }
}

/// The `p` quantile (0..=1) of `v`, nearest rank; 0 for none.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

/// One mode's run.
#[derive(Debug, Clone)]
struct ModeRun {
    mode: Mode,
    epochs: Vec<Epoch>,
    promoted: u64,
    prefetched: u64,
    trainings: u64,
    /// Per node: bytes it promoted, bytes it copied for plans, and the plans it followed.
    nodes: Vec<serde_json::Value>,
}

impl ModeRun {
    fn secs(&self) -> f64 {
        self.epochs.iter().map(|e| e.secs).sum()
    }

    fn bytes(&self) -> u64 {
        self.epochs.iter().map(|e| e.bytes).sum()
    }

    fn mbps(&self) -> f64 {
        self.bytes() as f64 / self.secs().max(1e-9) / 1e6
    }

    fn copied(&self) -> u64 {
        self.promoted + self.prefetched
    }

    fn all_latencies(&self) -> Vec<f64> {
        self.epochs
            .iter()
            .flat_map(|e| e.latencies_ms.iter().copied())
            .collect()
    }
}

/// The seed of job `j`'s shuffle in epoch `e`: a fresh order every epoch.
fn seed(j: usize, e: u32) -> u64 {
    0x7153_0000 + (j as u64) * 1_000 + u64::from(e)
}

/// Job `j`'s reads of one epoch of `root` (a fresh client, which finds the copies made so
/// far): the file latencies, bytes, and the time from the first read to the end of the last
/// (opening the dataset, which lists it and asks the nodes what they hold, is left out).
async fn job_epoch(
    net: cairn_net::NetClient,
    root: Cid,
    j: usize,
    e: u32,
    plans: bool,
    rate: Option<f64>,
) -> Result<(Vec<f64>, u64, f64, u64)> {
    let client = Client::new(
        net,
        Options {
            register_plans: plans,
            read_rate: rate,
            ..Options::default()
        },
    );
    let ds = Dataset::open(client, &root).await?;
    let mut lat = Vec::new();
    let mut bytes = 0;
    let files: Vec<_> = ds
        .readers(Order::Shuffled { seed: seed(j, e) })
        .map(|x| x.0)
        .collect();
    let start = Instant::now();
    let start_ms = wall_ms();
    for f in files {
        let t = Instant::now();
        let b = ds.read(&f).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        bytes += b.len() as u64;
    }
    Ok((lat, bytes, start.elapsed().as_secs_f64(), start_ms))
}

/// Milliseconds since the Unix epoch (the nodes' clock for plans' registration).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs a placement window on every node (they measure their peers and move shards).
fn windows(net: &Devnet) -> Result<()> {
    for n in &net.nodes {
        api_post_json(&n.api, Some(&token_of(n)?), "/api/v0/placement/run")?;
    }
    Ok(())
}

fn run_mode(
    work: &Path,
    mode: Mode,
    b: &TierBench,
    data: &[&Path; 2],
    rt: &tokio::runtime::Runtime,
) -> Result<ModeRun> {
    let dn = work.join(format!("devnet-{}", mode.name()));
    let cache = b.cache_mib << 20;
    eprintln!("{}: starting a 6-node devnet (nodes 0-3 slow)", mode.name());
    let net = devnet_up_with(6, &dn, false, &SLOW, &|_, c| mode.configure(c, cache))?;
    let out = (|| -> Result<ModeRun> {
        let entry = &net.nodes[0];
        let mut roots = Vec::new();
        for d in data {
            let rep = put(
                &entry.api,
                Some(&token_of(entry)?),
                d,
                &PutChoice::default(),
            )?;
            roots.push(cairn_core::block::parse_cid(&rep.root)?);
        }
        if mode != Mode::None {
            windows(&net)?;
        }
        // the put's writes (and an earlier mode's) are flushed before the reads are timed,
        // so no mode's first epoch pays for another's writeback
        // SAFETY: sync(2) takes no arguments and cannot fail
        unsafe { libc::sync() };
        // each job reads through its own connection, bootstrapped from a fast node
        let boot = bootstrap_of(&net.nodes[4].api)?;
        let nets = rt.block_on(async {
            let mut v = Vec::new();
            for _ in JOBS {
                v.push(client_net(&boot).await?);
            }
            anyhow::Ok(v)
        })?;
        let mut epochs = Vec::new();
        // with plans, each job declares the rate it read at in its previous epoch
        let mut rates: Vec<Option<f64>> = vec![None; JOBS.len()];
        for e in 0..b.epochs {
            let got = rt.block_on(async {
                let tasks: Vec<_> = JOBS
                    .iter()
                    .enumerate()
                    .map(|(j, &d)| {
                        tokio::spawn(job_epoch(
                            nets[j].clone(),
                            roots[d],
                            j,
                            e,
                            mode == Mode::EnginePlans,
                            rates[j],
                        ))
                    })
                    .collect();
                let mut v = Vec::new();
                for t in tasks {
                    v.push(t.await??);
                }
                anyhow::Ok(v)
            })?;
            for (r, g) in rates.iter_mut().zip(&got) {
                *r = Some(g.1 as f64 / g.2.max(1e-3));
            }
            // the jobs read at once: the epoch's read time is the slowest job's
            let secs = got.iter().map(|x| x.2).fold(0.0, f64::max);
            let slow_ms = DEVNET_SLOW_MS as f64;
            let jobs = got
                .iter()
                .map(|x| (x.2, x.0.iter().filter(|l| **l >= slow_ms).count()))
                .collect();
            let reads_began_ms = got.iter().map(|x| x.3).min().unwrap_or(0);
            let ep = Epoch {
                secs,
                jobs,
                bytes: got.iter().map(|x| x.1).sum(),
                latencies_ms: got.into_iter().flat_map(|x| x.0).collect(),
            };
            let per_job: Vec<String> = ep
                .jobs
                .iter()
                .map(|(s, n)| format!("{s:.2} s ({n} slow)"))
                .collect();
            eprintln!(
                "{}: epoch {}: {:.2} s, {:.1} MB/s, file p50 {:.1} ms, p99 {:.1} ms; jobs {}",
                mode.name(),
                e + 1,
                ep.secs,
                ep.bytes as f64 / ep.secs / 1e6,
                ep.pct(0.5),
                ep.pct(0.99),
                per_job.join(", ")
            );
            epochs.push(ep);
            if mode == Mode::EnginePlans {
                // how long after the jobs started reading their plans were registered
                let mut lag = Vec::new();
                for n in &net.nodes {
                    let st = api_get_json(&n.api, "/api/v0/placement/status?n=1")?;
                    for p in st["plans"].as_array().into_iter().flatten() {
                        let at = p["registered_ms"].as_u64().unwrap_or(0);
                        lag.push(at as i64 - reads_began_ms as i64);
                    }
                }
                lag.sort_unstable();
                eprintln!(
                    "{}: epoch {}: plans registered {lag:?} ms after the first job's reads began",
                    mode.name(),
                    e + 1
                );
            }
            if mode != Mode::None && e + 1 < b.epochs {
                windows(&net)?;
            }
        }
        let (mut promoted, mut prefetched, mut trainings) = (0, 0, 0);
        let mut nodes = Vec::new();
        for (i, n) in net.nodes.iter().enumerate() {
            let st = api_get_json(&n.api, "/api/v0/placement/status?n=1")?;
            let (p, f) = (
                st["promoted_bytes_total"].as_u64().unwrap_or(0),
                st["prefetched_bytes_total"].as_u64().unwrap_or(0),
            );
            promoted += p;
            prefetched += f;
            trainings += st["last_window"]["engine_trainings"].as_u64().unwrap_or(0);
            let plans: Vec<String> = st["plans"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|x| format!("{} ({} copies held)", x["job"], x["held"]))
                        .collect()
                })
                .unwrap_or_default();
            if p + f > 0 || !plans.is_empty() {
                eprintln!(
                    "{}: node-{i}: promoted {:.1} MiB, copied for plans {:.1} MiB, plans: {}",
                    mode.name(),
                    p as f64 / 1048576.0,
                    f as f64 / 1048576.0,
                    if plans.is_empty() {
                        "none".into()
                    } else {
                        plans.join(", ")
                    }
                );
            }
            nodes.push(json!({"promoted_bytes": p, "prefetched_bytes": f, "plans": st["plans"]}));
        }
        Ok(ModeRun {
            mode,
            epochs,
            promoted,
            prefetched,
            trainings,
            nodes,
        })
    })();
    let _ = devnet_down(&dn);
    out
}

/// `cairn bench tier`.
pub(crate) fn run(b: &TierBench, json: bool) -> Result<()> {
    anyhow::ensure!(
        b.files > 0 && b.file_mib > 0 && b.epochs > 0,
        "files, file size and epochs must be positive"
    );
    let base = b
        .dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("cairn-bench-tier-")
        .tempdir_in(&base)?;
    let work = work.path();
    let (a, z) = (work.join("popular"), work.join("other"));
    sample_dataset(&a, b.files, b.file_mib << 20, 11)?;
    sample_dataset(&z, b.files, b.file_mib << 20, 12)?;
    let rt = tokio::runtime::Runtime::new()?;
    for o in b.only {
        anyhow::ensure!(
            Mode::ALL.iter().any(|m| m.name() == o),
            "unknown policy {o:?} (none, lru, engine, engine+plans)"
        );
    }
    let mut runs = Vec::new();
    for mode in Mode::ALL {
        if b.only.is_empty() || b.only.iter().any(|o| o == mode.name()) {
            runs.push(run_mode(work, mode, b, &[&a, &z], &rt)?);
        }
    }
    let get = |m: Mode| runs.iter().find(|r| r.mode == m);
    let (Some(none), Some(lru), Some(plans)) =
        (get(Mode::None), get(Mode::Lru), get(Mode::EnginePlans))
    else {
        for r in &runs {
            eprintln!(
                "{}: {:.1} MB/s, copied {:.1} MiB ({:.1} promoted, {:.1} prefetched)",
                r.mode.name(),
                r.mbps(),
                r.copied() as f64 / (1u64 << 20) as f64,
                r.promoted as f64 / (1u64 << 20) as f64,
                r.prefetched as f64 / (1u64 << 20) as f64
            );
        }
        eprintln!("(the ratios need none, lru and engine+plans)");
        return Ok(());
    };
    let vs_none = plans.mbps() / none.mbps().max(1e-9);
    let vs_lru = plans.mbps() / lru.mbps().max(1e-9);
    let bytes_ok = plans.copied() <= lru.copied();
    let modes: Vec<_> = runs
        .iter()
        .map(|r| {
            let lat = r.all_latencies();
            json!({
                "mode": r.mode.name(),
                "read_secs": r.secs(),
                "read_mbps": r.mbps(),
                "p50_ms": percentile(&lat, 0.5),
                "p99_ms": percentile(&lat, 0.99),
                "epochs": r.epochs.iter().map(|e| json!({
                    "secs": e.secs,
                    "bytes": e.bytes,
                    "p50_ms": e.pct(0.5),
                    "p99_ms": e.pct(0.99),
                    "jobs": e.jobs.iter().map(|(s, n)| json!({"secs": s, "slow_reads": n})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "promoted_bytes": r.promoted,
                "prefetched_bytes": r.prefetched,
                "engine_trainings": r.trainings,
                "nodes": r.nodes,
            })
        })
        .collect();
    let mut line = format!(
        "tier: 6-node devnet, nodes 0-3 slow (+{DEVNET_SLOW_MS} ms per block), {} jobs ({} on the popular dataset), 2 datasets of {} x {} MiB, {} epochs, a fresh seeded shuffle each; fast tier {} MiB on each node (half per promoter)\n",
        JOBS.len(),
        JOBS.iter().filter(|d| **d == 0).count(),
        b.files,
        b.file_mib,
        b.epochs,
        b.cache_mib
    );
    for r in &runs {
        let lat = r.all_latencies();
        let per: Vec<String> = r
            .epochs
            .iter()
            .map(|e| {
                format!(
                    "{:.2} s (p50 {:.1}, p99 {:.1} ms)",
                    e.secs,
                    e.pct(0.5),
                    e.pct(0.99)
                )
            })
            .collect();
        line += &format!(
            "  {:<13} {:>6.1} MB/s  p50 {:>6.1} ms  p99 {:>6.1} ms  copied to fast peers {:>5.1} MiB ({:.1} promoted, {:.1} prefetched), {} engine models trained  epochs: {}\n",
            r.mode.name(),
            r.mbps(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            r.copied() as f64 / (1u64 << 20) as f64,
            r.promoted as f64 / (1u64 << 20) as f64,
            r.prefetched as f64 / (1u64 << 20) as f64,
            r.trainings,
            per.join(", ")
        );
    }
    line += &format!(
        "  engine+plans vs none: {vs_none:.2}x read throughput (target >= {TARGET_VS_NONE}: {}); vs LRU: {vs_lru:.2}x (target >= {TARGET_VS_LRU}: {}); bytes copied {} vs LRU {} (target <=: {})",
        verdict(vs_none >= TARGET_VS_NONE),
        verdict(vs_lru >= TARGET_VS_LRU),
        plans.copied(),
        lru.copied(),
        verdict(bytes_ok)
    );
    report(
        json,
        "tier",
        json!({
            "ratio_vs_none": vs_none,
            "ratio_vs_lru": vs_lru,
            "promoted_bytes_engine": plans.copied(),
            "promoted_bytes_lru": lru.copied(),
            "modes": modes,
            "files": b.files,
            "file_mib": b.file_mib,
            "epochs": b.epochs,
            "cache_mib": b.cache_mib,
            "slow_ms": DEVNET_SLOW_MS,
        }),
        line,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_table() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        for (p, want) in [(0.5, 50.0), (0.99, 99.0), (1.0, 100.0), (0.0, 1.0)] {
            assert_eq!(percentile(&v, p), want, "p {p}");
        }
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn each_mode_sets_what_defines_it() {
        let cache = 8 << 20;
        let cfg = |m: Mode| {
            let mut c = NodeConfig::default();
            m.configure(&mut c, cache);
            c.placement
        };
        assert_eq!(cfg(Mode::None).cache_bytes, 0);
        assert_eq!(cfg(Mode::None).plan_bytes, 0);
        assert_eq!(cfg(Mode::Lru).policy, TierPolicy::Lru);
        assert_eq!(cfg(Mode::Lru).min_reads, 1);
        assert_eq!(cfg(Mode::Engine).policy, TierPolicy::Engine);
        assert_eq!(cfg(Mode::Engine).plan_bytes, 0);
        assert_eq!(cfg(Mode::EnginePlans).plan_bytes, cache);
        assert!(!cfg(Mode::None).enabled);
        for m in [Mode::Lru, Mode::Engine, Mode::EnginePlans] {
            assert_eq!((cfg(m).enabled, cfg(m).window_secs), (true, 1), "{m:?}");
        }
        assert_ne!(seed(0, 1), seed(0, 2));
        assert_ne!(seed(0, 1), seed(1, 1));
    }
}
