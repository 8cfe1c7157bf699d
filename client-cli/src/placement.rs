//! `cairn placement eval`: policies through the fast-tier simulator on a real trace.

use anyhow::{bail, Context, Result};
use cairn_placement::registry::{by_name, Setup, POLICIES};
use cairn_placement::sim::{run, Metrics, SimConfig};
use cairn_placement::trace::{Request, TraceReader};
use clap::Subcommand;
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Placement commands.
#[derive(Subcommand)]
pub enum PlacementCmd {
    /// Evaluate policies on a trace (libCacheSim oracleGeneral, plain or zstd).
    Eval {
        /// Trace file.
        #[arg(long)]
        trace: PathBuf,
        /// Fast-tier sizes as fractions of the trace's working-set bytes.
        #[arg(long, value_delimiter = ',', default_value = "0.01,0.05,0.1")]
        fast_fraction: Vec<f64>,
        /// Policies to evaluate.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "static-hash,static-top,lru,fifo,lfu,arc,sieve,s3fifo,lhd,engine,belady"
        )]
        policies: Vec<String>,
        /// Leading share of the trace that trains every policy without being counted.
        #[arg(long, default_value_t = 0.5)]
        warmup_fraction: f64,
        /// Seed of the randomized policies' draws (engine, lhd); 0 is their default. Other
        /// seeds show how much a result owes to the random stream.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn requests(path: &Path) -> Result<impl Iterator<Item = Result<Request>>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let r = TraceReader::new(f).with_context(|| format!("reading {}", path.display()))?;
    Ok(r.map(|x| x.map_err(anyhow::Error::from)))
}

/// Streams the trace through one policy; a read error mid-trace is an error, not a partial
/// result.
fn eval_one(path: &Path, policy: &str, setup: Setup, cfg: &SimConfig) -> Result<Metrics> {
    let Some(mut p) = by_name(policy, setup) else {
        bail!("unknown policy {policy:?} (known: {})", POLICIES.join(", "));
    };
    let mut err = None;
    let reqs = requests(path)?.map_while(|r| match r {
        Ok(r) => Some(r),
        Err(e) => {
            err = Some(e);
            None
        }
    });
    let m = run(reqs, p.as_mut(), cfg);
    if let Some(e) = err {
        return Err(e.context(format!("trace {}", path.display())));
    }
    Ok(m)
}

/// Runs a placement command.
pub fn run_cmd(cmd: &PlacementCmd, json: bool) -> Result<()> {
    let PlacementCmd::Eval {
        trace,
        fast_fraction,
        policies,
        warmup_fraction,
        seed,
    } = cmd;
    if !(0.0..1.0).contains(warmup_fraction) {
        bail!("--warmup-fraction must be in [0, 1), got {warmup_fraction}");
    }
    for p in policies {
        if by_name(
            p,
            Setup {
                cap: 1,
                wss: 1,
                warmup: 0,
                seed: 0,
            },
        )
        .is_none()
        {
            bail!("unknown policy {p:?} (known: {})", POLICIES.join(", "));
        }
    }
    // first pass: request count and working-set bytes (first size seen per object)
    let (mut n, mut wss, mut ids) = (0u64, 0u64, HashSet::new());
    for r in requests(trace)? {
        let r = r.with_context(|| format!("trace {}", trace.display()))?;
        n += 1;
        if ids.insert(r.id) {
            wss += u64::from(r.size);
        }
    }
    drop(ids);
    let cfg = SimConfig {
        warmup: (n as f64 * warmup_fraction) as u64,
        ..SimConfig::default()
    };
    let mut rows = Vec::new();
    for &frac in fast_fraction {
        if !(frac > 0.0 && frac <= 1.0) {
            bail!("--fast-fraction values must be in (0, 1], got {frac}");
        }
        let setup = Setup {
            cap: (wss as f64 * frac) as u64,
            wss,
            warmup: cfg.warmup,
            seed: *seed,
        };
        let lru = eval_one(trace, "lru", setup, &cfg)?.byte_miss_ratio();
        let opt = eval_one(trace, "belady", setup, &cfg)?.byte_miss_ratio();
        for p in policies {
            let m = eval_one(trace, p, setup, &cfg)?;
            let gap = if (lru - opt).abs() < 1e-12 {
                0.0
            } else {
                (lru - m.byte_miss_ratio()) / (lru - opt)
            };
            let row = json!({
                "policy": p, "fast_fraction": frac, "byte_miss_ratio": m.byte_miss_ratio(),
                "object_miss_ratio": m.miss_ratio(), "p99_latency_ms": m.latency.quantile(0.99) / 1000.0,
                "bytes_promoted": m.bytes_promoted, "gap_closed": gap,
                "p50_latency_ms": m.latency.quantile(0.5) / 1000.0, "mean_latency_ms": m.mean_ms(),
                "slo_share": m.slo_share(), "compulsory_misses": m.compulsory_misses, "requests": m.requests,
                "ns_per_request": m.ns_per_request(), "fast_tier_bytes": setup.cap,
                "tracked_objects": m.footprint.map(|f| f.0),
                "bytes_per_tracked_object": m.bytes_per_tracked(),
            });
            if !json {
                println!(
                    "{:<8} {:>5.1}%  byte MR {:.4}  obj MR {:.4}  p99 {:>8.2} ms  promoted {:>14}  gap closed {:>6.3}",
                    p,
                    frac * 100.0,
                    m.byte_miss_ratio(),
                    m.miss_ratio(),
                    m.latency.quantile(0.99) / 1000.0,
                    m.bytes_promoted,
                    gap
                );
                if let (Some((n, _)), Some(per)) = (m.footprint, m.bytes_per_tracked()) {
                    println!(
                        "         {:.2} us per request; {n} objects tracked, {per:.0} bytes each",
                        m.ns_per_request() / 1000.0
                    );
                }
            }
            rows.push(row);
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    }
    Ok(())
}
