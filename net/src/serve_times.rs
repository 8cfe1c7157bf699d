//! How long this node takes to serve a block itself: from a `GET` of it to its bytes in hand
//! (the store's read, and the emulated delay of a devnet's slow node), the last
//! [`SERVE_SAMPLES`] blocks of at least [`MIN_SAMPLE_BYTES`], each scaled to 1 MiB. Peers
//! measure each other from outside (ping and probe fetches); this is the one measure a node
//! has of itself, so it can tell whether it is fast among them (a fast node does not copy its
//! shards to another fast node).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Blocks remembered.
pub const SERVE_SAMPLES: usize = 64;
/// Smaller blocks are not timed (their time is mostly fixed costs).
pub const MIN_SAMPLE_BYTES: usize = 256 << 10;
/// Samples needed before there is a measure.
pub const MIN_SAMPLES: usize = 8;

/// The latest serve times, ms per MiB.
#[derive(Debug, Default)]
pub struct ServeTimes {
    recent: Mutex<VecDeque<f64>>,
}

impl ServeTimes {
    /// Records a block of `len` bytes that took `took` to have in hand.
    pub fn record(&self, len: usize, took: Duration) {
        if len < MIN_SAMPLE_BYTES {
            return;
        }
        let ms = took.as_secs_f64() * 1e3 * (1u64 << 20) as f64 / len as f64;
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == SERVE_SAMPLES {
                r.pop_front();
            }
            r.push_back(ms);
        }
    }

    /// The median over the latest samples, ms per MiB; `None` with fewer than
    /// [`MIN_SAMPLES`].
    pub fn median_mib_ms(&self) -> Option<f64> {
        let mut v: Vec<f64> = self.recent.lock().ok()?.iter().copied().collect();
        if v.len() < MIN_SAMPLES {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_times_table() {
        let ms = Duration::from_millis;
        // (samples as (bytes, ms)), median ms per MiB
        type Case = (&'static [(usize, u64)], Option<f64>);
        let cases: [Case; 4] = [
            (&[(1 << 20, 40); 7], None),
            (&[(1 << 20, 40); 8], Some(40.0)),
            // half a MiB in 20 ms is 40 ms per MiB; small blocks are not timed
            (
                &[
                    (512 << 10, 20),
                    (1 << 20, 2),
                    (1 << 20, 3),
                    (1 << 20, 40),
                    (1 << 20, 41),
                    (1 << 20, 42),
                    (1 << 20, 43),
                    (1 << 20, 44),
                    (1 << 10, 900),
                ],
                Some(41.0),
            ),
            (&[(1 << 10, 1); 20], None),
        ];
        for (samples, want) in cases {
            let t = ServeTimes::default();
            for &(len, took) in samples {
                t.record(len, ms(took));
            }
            let got = t.median_mib_ms();
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 0.01, "{samples:?}: {g}"),
                _ => assert_eq!(got, want, "{samples:?}"),
            }
        }
        // only the latest are kept
        let t = ServeTimes::default();
        for _ in 0..SERVE_SAMPLES {
            t.record(1 << 20, ms(40));
        }
        for _ in 0..SERVE_SAMPLES / 2 + 1 {
            t.record(1 << 20, ms(2));
        }
        assert_eq!(t.median_mib_ms(), Some(2.0));
    }
}
