//! The simulator: feeds a request stream to a policy, models read latency on two tiers, and
//! measures what the fast tier served.
//!
//! Latency model (see `docs/placement.md`): a read served by the fast tier costs
//! `fast_base + size / fast_bandwidth`; a miss is served from the erasure-coded base placement
//! at `slow_base + size / slow_bandwidth`, where `slow_base` is drawn per request from a
//! log-normal distribution (network round trips and k-of-n fetches vary). The draws come from a
//! seeded generator, one per request whether it hits or not, so every policy sees the same
//! latencies for the same misses.

use crate::policy::Policy;
use crate::trace::Request;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Two-tier latency model, in microseconds and bytes per microsecond (= MB/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyModel {
    /// Fixed cost of a fast-tier read.
    pub fast_base_us: f64,
    /// Fast-tier bandwidth (bytes per microsecond).
    pub fast_bytes_per_us: f64,
    /// Median of the log-normal base cost of a read from the erasure-coded tier.
    pub slow_median_us: f64,
    /// Log-normal sigma of that base cost.
    pub slow_sigma: f64,
    /// Erasure-coded tier bandwidth (bytes per microsecond).
    pub slow_bytes_per_us: f64,
    /// Seed of the base-cost draws.
    pub seed: u64,
}

impl Default for LatencyModel {
    /// A local NVMe-backed fast node (0.2 ms, 2 GB/s) over a wide-area erasure-coded tier
    /// (5 ms median, sigma 0.5, 200 MB/s).
    fn default() -> Self {
        LatencyModel {
            fast_base_us: 200.0,
            fast_bytes_per_us: 2000.0,
            slow_median_us: 5000.0,
            slow_sigma: 0.5,
            slow_bytes_per_us: 200.0,
            seed: 1,
        }
    }
}

/// A log-bucketed latency histogram (1 % wide buckets): bounded memory for any trace length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
}

const GROWTH: f64 = 1.01;
const BUCKETS: usize = 2100; // 1.01^2100 us ~ 1.2e9 us

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
        }
    }
}

impl Histogram {
    /// Records a value in microseconds.
    pub fn record(&mut self, us: f64) {
        let i = if us <= 1.0 {
            0
        } else {
            (us.ln() / GROWTH.ln()) as usize
        };
        self.buckets[i.min(BUCKETS - 1)] += 1;
        self.count += 1;
    }

    /// The `q`-quantile (0..=1) in microseconds (the upper edge of its bucket).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let target = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return GROWTH.powi(i as i32 + 1);
            }
        }
        GROWTH.powi(BUCKETS as i32)
    }
}

/// What a run measured, over the requests after warm-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Requests counted.
    pub requests: u64,
    /// Of which missed the fast tier.
    pub misses: u64,
    /// Misses for objects never seen before in the whole trace (no policy can avoid them).
    pub compulsory_misses: u64,
    /// Bytes requested.
    pub bytes: u64,
    /// Bytes missed.
    pub byte_misses: u64,
    /// Bytes copied into the fast tier (promotions).
    pub bytes_promoted: u64,
    /// Sum of modelled read latencies, microseconds.
    pub latency_sum_us: f64,
    /// Modelled read latencies.
    pub latency: Histogram,
    /// Reads at or under the SLO.
    pub within_slo: u64,
    /// Wall time the policy spent deciding, nanoseconds.
    pub policy_ns: u64,
    /// For a policy that keeps per-object history ([`crate::policy::Policy::footprint`]), at
    /// the end of the run: objects tracked and heap bytes of its bookkeeping.
    pub footprint: Option<(u64, u64)>,
}

impl Metrics {
    /// Heap bytes of bookkeeping per tracked object, when the policy reports its footprint.
    pub fn bytes_per_tracked(&self) -> Option<f64> {
        self.footprint
            .filter(|&(n, _)| n > 0)
            .map(|(n, b)| b as f64 / n as f64)
    }

    /// Object miss ratio.
    pub fn miss_ratio(&self) -> f64 {
        ratio(self.misses, self.requests)
    }
    /// Byte miss ratio.
    pub fn byte_miss_ratio(&self) -> f64 {
        ratio(self.byte_misses, self.bytes)
    }
    /// Mean modelled latency, milliseconds.
    pub fn mean_ms(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.latency_sum_us / self.requests as f64 / 1000.0
        }
    }
    /// Share of reads within the SLO.
    pub fn slo_share(&self) -> f64 {
        ratio(self.within_slo, self.requests)
    }
    /// Policy CPU per request, nanoseconds.
    pub fn ns_per_request(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.policy_ns as f64 / self.requests as f64
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Run parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// Requests that train the policy before counting starts.
    pub warmup: u64,
    /// Latency model.
    pub model: LatencyModel,
    /// Latency SLO, microseconds.
    pub slo_us: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            warmup: 0,
            model: LatencyModel::default(),
            slo_us: 10_000.0,
        }
    }
}

/// splitmix64: small, seeded, good enough for latency draws.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next_f64(), self.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Runs `policy` over `reqs` with `cfg`.
pub fn run(
    reqs: impl Iterator<Item = Request>,
    policy: &mut dyn Policy,
    cfg: &SimConfig,
) -> Metrics {
    let mut m = Metrics::default();
    let mut seen = HashSet::new();
    let mut rng = Rng(cfg.model.seed);
    let lm = cfg.model;
    for (i, r) in reqs.enumerate() {
        let first = seen.insert(r.id);
        let slow_base = lm.slow_median_us * (lm.slow_sigma * rng.normal()).exp();
        let t = Instant::now();
        let hit = policy.access(&r);
        let admitted = !hit && policy.contains(r.id);
        let spent = t.elapsed().as_nanos() as u64;
        if (i as u64) < cfg.warmup {
            continue;
        }
        let size = u64::from(r.size);
        m.requests += 1;
        m.bytes += size;
        m.policy_ns += spent;
        let lat = if hit {
            lm.fast_base_us + size as f64 / lm.fast_bytes_per_us
        } else {
            m.misses += 1;
            m.byte_misses += size;
            if first {
                m.compulsory_misses += 1;
            }
            slow_base + size as f64 / lm.slow_bytes_per_us
        };
        if admitted {
            m.bytes_promoted += size;
        }
        m.latency_sum_us += lat;
        m.latency.record(lat);
        if lat <= cfg.slo_us {
            m.within_slo += 1;
        }
    }
    m.footprint = policy.footprint();
    m
}

/// Runs `policy` over `reqs` with the default model; the first `warmup` requests are not
/// counted.
pub fn simulate(
    reqs: impl Iterator<Item = Request>,
    policy: &mut dyn Policy,
    warmup: u64,
) -> Metrics {
    run(
        reqs,
        policy,
        &SimConfig {
            warmup,
            ..SimConfig::default()
        },
    )
}

/// Fills in `next` (1-based index of the next request for the same id, -1 if none), as the
/// oracleGeneral format does, for traces made in memory.
pub fn annotate_next(reqs: &mut [Request]) {
    let mut last: HashMap<u64, usize> = HashMap::new();
    for i in (0..reqs.len()).rev() {
        reqs[i].next = last.get(&reqs[i].id).map_or(-1, |&j| j as i64 + 1);
        last.insert(reqs[i].id, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Lru;

    #[test]
    fn latency_and_promotion_by_hand() {
        // sizes 2000 bytes: fast read = 200 + 1 = 201 us; slow = base + 10 us
        let reqs: Vec<Request> = [1u64, 1, 2, 1]
            .iter()
            .map(|&id| Request {
                time: 0,
                id,
                size: 2000,
                next: -1,
            })
            .collect();
        let m = simulate(reqs.iter().copied(), &mut Lru::new(4000), 0);
        assert_eq!(
            (m.requests, m.misses, m.bytes_promoted, m.compulsory_misses),
            (4, 2, 4000, 2)
        );
        assert!((m.latency.quantile(0.5) - 201.0).abs() / 201.0 < 0.011);
        assert!(m.latency.quantile(0.99) > 1000.0);
        // warm-up requests train but are not counted
        let w = simulate(reqs.iter().copied(), &mut Lru::new(4000), 2);
        assert_eq!((w.requests, w.misses, w.bytes_promoted), (2, 1, 2000));
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v as f64);
        }
        assert!((h.quantile(0.5) - 500.0).abs() < 10.0);
        assert!((h.quantile(0.99) - 990.0).abs() < 15.0);
        h.record(1e12); // clamps, no panic
    }
}
