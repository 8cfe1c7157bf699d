//! What a node observes for placement (design §4): every shard read it serves, and its peers'
//! round-trip times (from the network's pings) and throughput (from timed block fetches).
//!
//! - [`AccessLog`]: per shard, reads served, bytes, first and last access and an exponentially
//!   decayed read rate (half-life [`HALF_LIFE_SECS`]), plus a ring of the latest reads for the
//!   placement engine. Both are bounded: at most [`MAX_TRACKED`] shards (the coldest tenth is
//!   dropped when full) and [`RECENT`] recent reads.
//! - [`PeerSpeeds`]: per peer, a smoothed RTT (EWMA, weight 1/4 for a new sample) and its last
//!   sample, measured by libp2p pings, and a throughput from probes (timed, verified block
//!   fetches; the median of the last five); measured, never declared by the peer.

use cairn_core::Cid;
use cairn_net::PeerId;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Half-life of the decayed read rate.
pub const HALF_LIFE_SECS: f64 = 600.0;
/// Shards tracked at most.
pub const MAX_TRACKED: usize = 100_000;
/// Latest reads kept in order.
pub const RECENT: usize = 65_536;
/// Peers tracked at most.
pub const MAX_PEERS: usize = 4096;
/// Throughput probes a peer's estimate is the median of.
pub const PROBE_HISTORY: usize = 5;

/// One shard's read history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Heat {
    /// Reads served.
    pub reads: u64,
    /// Block size in bytes.
    pub size: u64,
    /// First read, ms since the Unix epoch.
    pub first_ms: u64,
    /// Last read, ms since the Unix epoch.
    pub last_ms: u64,
    /// Decayed reads (each read adds 1; the sum halves every [`HALF_LIFE_SECS`]), as of `last_ms`.
    pub score: f64,
}

impl Heat {
    /// The decayed score as of `now_ms`.
    pub fn score_at(&self, now_ms: u64) -> f64 {
        let dt = now_ms.saturating_sub(self.last_ms) as f64 / 1e3;
        self.score * (-dt * std::f64::consts::LN_2 / HALF_LIFE_SECS).exp()
    }
}

/// A read, for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Read {
    /// The shard.
    #[serde(serialize_with = "cid_str")]
    pub cid: Cid,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Bytes.
    pub size: u64,
}

fn cid_str<S: serde::Serializer>(c: &Cid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.to_string())
}

#[derive(Default)]
struct Log {
    shards: HashMap<Cid, Heat>,
    recent: VecDeque<Read>,
    /// Reads pushed to `recent` so far (the sequence number of the next one).
    seq: u64,
}

/// Reads of one shard pushed to the recent ring at most per [`AccessLog::record_many`] call.
const MAX_RING_PER_CALL: u64 = 64;

/// Reads served by this node, bounded.
#[derive(Default)]
pub struct AccessLog {
    inner: Mutex<Log>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl AccessLog {
    /// Records a read of `cid` (`size` bytes) at `at_ms`.
    pub fn record(&self, cid: Cid, size: u64, at_ms: u64) {
        self.record_many(cid, size, 1, at_ms);
    }

    /// Records `n` reads of `cid` at `at_ms` (reads served elsewhere on this node's behalf,
    /// such as by a promoted copy). At most 64 of them enter the recent ring.
    pub fn record_many(&self, cid: Cid, size: u64, n: u64, at_ms: u64) {
        if n == 0 {
            return;
        }
        let Ok(mut log) = self.inner.lock() else {
            return;
        };
        if log.shards.len() >= MAX_TRACKED && !log.shards.contains_key(&cid) {
            // drop the coldest tenth at once, so eviction stays rare
            let mut scores: Vec<(f64, Cid)> = log
                .shards
                .iter()
                .map(|(c, h)| (h.score_at(at_ms), *c))
                .collect();
            scores.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (_, c) in scores.iter().take(MAX_TRACKED / 10) {
                log.shards.remove(c);
            }
        }
        let h = log.shards.entry(cid).or_insert(Heat {
            reads: 0,
            size,
            first_ms: at_ms,
            last_ms: at_ms,
            score: 0.0,
        });
        h.score = h.score_at(at_ms.max(h.last_ms)) + n as f64;
        h.reads += n;
        h.size = size;
        h.last_ms = h.last_ms.max(at_ms);
        for _ in 0..n.min(MAX_RING_PER_CALL) {
            if log.recent.len() == RECENT {
                log.recent.pop_front();
            }
            log.recent.push_back(Read { cid, at_ms, size });
            log.seq += 1;
        }
    }

    /// The reads recorded since sequence number `seq` (those still in the ring), oldest first,
    /// and the sequence number to ask from next time.
    pub fn since(&self, seq: u64) -> (Vec<Read>, u64) {
        let Ok(log) = self.inner.lock() else {
            return (Vec::new(), seq);
        };
        let first = log.seq - log.recent.len() as u64;
        let skip = seq.saturating_sub(first) as usize;
        (log.recent.iter().skip(skip).copied().collect(), log.seq)
    }

    /// One shard's history.
    pub fn get(&self, cid: &Cid) -> Option<Heat> {
        self.inner.lock().ok()?.shards.get(cid).copied()
    }

    /// The `n` hottest shards as of `now_ms`, hottest first.
    pub fn hottest(&self, n: usize, now_ms: u64) -> Vec<(Cid, Heat, f64)> {
        let Ok(log) = self.inner.lock() else {
            return Vec::new();
        };
        let mut v: Vec<(Cid, Heat, f64)> = log
            .shards
            .iter()
            .map(|(c, h)| (*c, *h, h.score_at(now_ms)))
            .collect();
        v.sort_by(|a, b| {
            b.2.total_cmp(&a.2)
                .then(a.0.to_bytes().cmp(&b.0.to_bytes()))
        });
        v.truncate(n);
        v
    }

    /// Shards tracked.
    pub fn tracked(&self) -> usize {
        self.inner.lock().map(|l| l.shards.len()).unwrap_or(0)
    }

    /// The latest reads, oldest first.
    pub fn recent(&self) -> Vec<Read> {
        self.inner
            .lock()
            .map(|l| l.recent.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// A peer's measured speed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Speed {
    /// Smoothed RTT in ms.
    pub rtt_ms: f64,
    /// Last sample in ms.
    pub last_rtt_ms: f64,
    /// Samples taken.
    pub samples: u64,
    /// Throughput of block fetches from the peer in bytes per second: the median of the last
    /// [`PROBE_HISTORY`] probes (one stalled probe does not make a fast peer slow), 0 until
    /// probed.
    pub throughput_bps: f64,
    /// The last probes' throughputs, oldest first (unused slots are 0).
    #[serde(skip)]
    pub recent_bps: [f64; PROBE_HISTORY],
    /// Throughput probes taken.
    pub probes: u64,
}

impl Speed {
    /// Estimated time to fetch 1 MiB from the peer: RTT plus transfer at the measured
    /// throughput; `None` until probed.
    pub fn mib_ms(&self) -> Option<f64> {
        (self.probes > 0 && self.throughput_bps > 0.0)
            .then(|| self.rtt_ms + (1u64 << 20) as f64 / self.throughput_bps * 1e3)
    }
}

/// Peers' round-trip times, bounded.
#[derive(Default)]
pub struct PeerSpeeds {
    inner: Mutex<HashMap<PeerId, Speed>>,
}

impl PeerSpeeds {
    /// Records one RTT sample.
    pub fn sample(&self, peer: PeerId, rtt: Duration) {
        let Ok(mut m) = self.inner.lock() else {
            return;
        };
        if m.len() >= MAX_PEERS && !m.contains_key(&peer) {
            return;
        }
        let ms = rtt.as_secs_f64() * 1e3;
        let s = m.entry(peer).or_insert(Speed {
            rtt_ms: ms,
            last_rtt_ms: ms,
            samples: 0,
            throughput_bps: 0.0,
            recent_bps: [0.0; PROBE_HISTORY],
            probes: 0,
        });
        s.rtt_ms = if s.samples == 0 {
            ms
        } else {
            0.75 * s.rtt_ms + 0.25 * ms
        };
        s.last_rtt_ms = ms;
        s.samples += 1;
    }

    /// Records one throughput probe: `bytes` fetched in `elapsed` (a verified block fetch).
    pub fn probe(&self, peer: PeerId, bytes: u64, elapsed: Duration) {
        let Ok(mut m) = self.inner.lock() else {
            return;
        };
        if m.len() >= MAX_PEERS && !m.contains_key(&peer) {
            return;
        }
        let bps = bytes as f64 / elapsed.as_secs_f64().max(1e-6);
        let s = m.entry(peer).or_insert(Speed {
            rtt_ms: 0.0,
            last_rtt_ms: 0.0,
            samples: 0,
            throughput_bps: bps,
            recent_bps: [0.0; PROBE_HISTORY],
            probes: 0,
        });
        s.recent_bps.rotate_left(1);
        s.recent_bps[PROBE_HISTORY - 1] = bps;
        s.probes += 1;
        let mut v: Vec<f64> =
            s.recent_bps[PROBE_HISTORY - (s.probes as usize).min(PROBE_HISTORY)..].to_vec();
        v.sort_by(f64::total_cmp);
        s.throughput_bps = v[v.len() / 2];
    }

    /// Forgets a peer (it disconnected).
    pub fn forget(&self, peer: &PeerId) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(peer);
        }
    }

    /// Every peer, fastest first.
    pub fn all(&self) -> Vec<(PeerId, Speed)> {
        let mut v: Vec<(PeerId, Speed)> = self
            .inner
            .lock()
            .map(|m| m.iter().map(|(p, s)| (*p, *s)).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.1.rtt_ms.total_cmp(&b.1.rtt_ms));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Block;

    fn cid(i: u32) -> Cid {
        Block::new(
            cairn_core::block::HashAlg::Blake3,
            cairn_core::block::RAW,
            i.to_le_bytes().to_vec(),
        )
        .cid
    }

    #[test]
    fn hot_shards_rank_by_decayed_reads_and_the_log_is_bounded() {
        let log = AccessLog::default();
        let t0 = 1_000_000;
        for _ in 0..5 {
            log.record(cid(1), 100, t0);
        }
        log.record(cid(2), 100, t0);
        let top = log.hottest(2, t0);
        assert_eq!(top[0].0, cid(1));
        assert_eq!(top[0].1.reads, 5);
        assert!((top[0].2 - 5.0).abs() < 1e-9);
        // two half-lives later, 5 old reads weigh 1.25: a burst of 2 new reads beats them
        let later = t0 + (2.0 * HALF_LIFE_SECS * 1e3) as u64;
        log.record(cid(2), 100, later);
        log.record(cid(2), 100, later);
        let top = log.hottest(2, later);
        assert_eq!(top[0].0, cid(2));
        assert!((top[1].2 - 1.25).abs() < 1e-6, "{top:?}");
        for i in 0..(MAX_TRACKED as u32 + 10) {
            log.record(cid(1000 + i), 1, later + 1);
        }
        assert!(log.tracked() <= MAX_TRACKED);
        assert_eq!(log.recent().len(), RECENT);
        let (tail, seq) = log.since(0);
        assert_eq!(tail.len(), RECENT);
        log.record_many(cid(3), 10, 1000, later + 2);
        let (new, seq2) = log.since(seq);
        assert_eq!(new.len(), 64);
        assert_eq!(seq2, seq + 64);
        assert_eq!(log.get(&cid(3)).map(|h| h.reads), Some(1000));
        assert!(log.since(seq2).0.is_empty());
    }

    #[test]
    fn rtt_is_smoothed_and_sorted() {
        let s = PeerSpeeds::default();
        let a = PeerId::random();
        let b = PeerId::random();
        s.sample(a, Duration::from_millis(10));
        s.sample(a, Duration::from_millis(30));
        s.sample(b, Duration::from_millis(1));
        let all = s.all();
        assert_eq!(all[0].0, b);
        assert!((all[1].1.rtt_ms - 15.0).abs() < 1e-9);
        assert_eq!(all[1].1.samples, 2);
        assert_eq!(all[0].1.mib_ms(), None);
        s.probe(b, 1 << 20, Duration::from_millis(100));
        s.probe(b, 1 << 20, Duration::from_millis(100));
        let mib = s.all()[0].1.mib_ms().unwrap();
        assert!((mib - 101.0).abs() < 1e-6, "{mib}");
        // one stalled probe does not change the median of three
        s.probe(b, 1 << 20, Duration::from_secs(10));
        let mib = s.all()[0].1.mib_ms().unwrap();
        assert!((mib - 101.0).abs() < 1e-6, "{mib}");
        s.forget(&a);
        assert_eq!(s.all().len(), 1);
    }
}
