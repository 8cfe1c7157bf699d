//! Quotas of the audit protocol, pure counters (the window is passed in, no clock), so their
//! cases are rows of table tests:
//!
//! - [`ProveQuota`]: how many window proofs a prover makes per window for each asker;
//! - [`VerdictQuota`]: how many gossiped audit records one auditor may add to this node's log
//!   per window.
//!
//! An honest auditor gossips one verdict per window, a few more when an operator audits by
//! hand (`POST /api/v0/audit?peer=`) or a miss is retried. Without a cap, any peer could sign
//! records as fast as it likes and grow every node's audit log without bound. Records are
//! counted only once their signature verifies, so nobody spends another auditor's quota.

use cairn_net::PeerId;
use std::collections::HashMap;

/// Window proofs a first-class asker (one of the prover's designated auditors for the window it
/// asks about, or any member of its ring, asking for a window that is now) may ask for per
/// window (an auditor asks once; retries after a miss fit).
pub const PROOFS_PER_PEER_WINDOW: u32 = 4;
/// Window proofs any other peer (an operator auditing by hand) may ask for per window.
pub const PROOFS_PER_OTHER_PEER_WINDOW: u32 = 2;
/// Window proofs made per window for peers that are not designated auditors, all together: a
/// crowd of identities cannot keep the prover from answering its designated auditors. Those
/// proofs also wait until no designated auditor's request is waiting.
pub const PROOFS_FOR_OTHERS_PER_WINDOW: u32 = 4;

/// Gossiped audit records accepted per auditor per window.
pub(crate) const RECORDS_PER_AUDITOR_WINDOW: u32 = 16;
/// (auditor, window) pairs counted at once; past it, records of new auditors are refused
/// until the windows turn (the table is bounded whatever the number of identities).
pub(crate) const MAX_COUNTED: usize = 4096;

/// Records accepted per (auditor, window), for the previous, current and next window.
#[derive(Debug, Default)]
pub(crate) struct VerdictQuota {
    counts: HashMap<(Vec<u8>, u64), u32>,
}

impl VerdictQuota {
    /// Whether one more record by `auditor` for `window` may be accepted at current window
    /// `now`; counts it when it may. Counts of windows before `now - 1` are forgotten first.
    pub(crate) fn admit(&mut self, auditor: &[u8], window: u64, now: u64) -> bool {
        self.counts.retain(|(_, w), _| w.saturating_add(1) >= now);
        let key = (auditor.to_vec(), window);
        if !self.counts.contains_key(&key) && self.counts.len() >= MAX_COUNTED {
            return false;
        }
        let n = self.counts.entry(key).or_insert(0);
        if *n >= RECORDS_PER_AUDITOR_WINDOW {
            return false;
        }
        *n += 1;
        true
    }
}

/// Window proofs a prover makes per window, by kind of asker: a pure counter (the window is
/// passed in), so its cases are rows of a table test.
#[derive(Debug, Default)]
pub(crate) struct ProveQuota {
    window: u64,
    designated: HashMap<PeerId, u32>,
    others_total: u32,
    others: HashMap<PeerId, u32>,
}

impl ProveQuota {
    /// Counts one proof for `from` in window `now`, or says why not.
    pub(crate) fn admit(&mut self, now: u64, from: PeerId, designated: bool) -> Result<(), String> {
        if self.window != now {
            *self = ProveQuota {
                window: now,
                ..ProveQuota::default()
            };
        }
        if designated {
            let n = self.designated.entry(from).or_insert(0);
            if *n >= PROOFS_PER_PEER_WINDOW {
                return Err(format!(
                    "at most {PROOFS_PER_PEER_WINDOW} window proofs per peer per window"
                ));
            }
            *n += 1;
            return Ok(());
        }
        if self.others_total >= PROOFS_FOR_OTHERS_PER_WINDOW {
            return Err(format!(
                "busy: at most {PROOFS_FOR_OTHERS_PER_WINDOW} window proofs per window for peers that are not this window's auditors"
            ));
        }
        let n = self.others.entry(from).or_insert(0);
        if *n >= PROOFS_PER_OTHER_PEER_WINDOW {
            return Err(format!(
                "at most {PROOFS_PER_OTHER_PEER_WINDOW} window proofs per window for a peer that is not this window's auditor"
            ));
        }
        *n += 1;
        self.others_total += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_auditor_gets_its_own_quota_per_window_and_old_windows_are_forgotten() {
        let mut q = VerdictQuota::default();
        // a spends its whole quota for window 10
        for i in 0..RECORDS_PER_AUDITOR_WINDOW {
            assert!(q.admit(b"a", 10, 10), "record {i}");
        }
        // (auditor, window, current window, admitted)
        let cases: &[(&[u8], u64, u64, bool)] = &[
            (b"a", 10, 10, false), // a's quota for window 10 is spent
            (b"b", 10, 10, true),  // b has its own
            (b"a", 11, 10, true),  // and a has a fresh one for the next window
            (b"a", 10, 11, false), // window 10 is the previous one: still counted
            (b"a", 10, 12, true),  // two windows on, window 10's count is forgotten
        ];
        for &(auditor, window, now, want) in cases {
            assert_eq!(
                q.admit(auditor, window, now),
                want,
                "{auditor:?} {window} at {now}"
            );
        }
    }

    #[test]
    fn the_table_is_bounded_whatever_the_number_of_identities() {
        let mut q = VerdictQuota::default();
        for i in 0..MAX_COUNTED as u64 {
            assert!(q.admit(&i.to_le_bytes(), 5, 5));
        }
        assert!(!q.admit(b"one more identity", 5, 5));
        // a counted auditor still gets its own quota
        assert!(q.admit(&0u64.to_le_bytes(), 5, 5));
        // and when the windows turn, room comes back
        assert!(q.admit(b"one more identity", 7, 7));
        assert_eq!(q.counts.len(), 1);
    }

    #[test]
    fn proofs_per_asker_and_window() {
        let (d1, d2, o1, o2, o3) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        // (window, asker, designated, admitted)
        let mut steps: Vec<(u64, PeerId, bool, bool)> = Vec::new();
        // a designated auditor gets 4 per window, each of its own
        for _ in 0..PROOFS_PER_PEER_WINDOW {
            steps.push((5, d1, true, true));
        }
        steps.push((5, d1, true, false));
        steps.push((5, d2, true, true));
        // anyone else 2 per peer and 4 together
        steps.extend([
            (5, o1, false, true),
            (5, o1, false, true),
            (5, o1, false, false),
            (5, o2, false, true),
            (5, o2, false, true),
            (5, o3, false, false),
            // designated auditors are not held back by the others' total
            (5, d2, true, true),
            // a new window starts every count again
            (6, o3, false, true),
            (6, d1, true, true),
        ]);
        let mut q = ProveQuota::default();
        for (i, (window, asker, designated, admitted)) in steps.into_iter().enumerate() {
            assert_eq!(
                q.admit(window, asker, designated).is_ok(),
                admitted,
                "step {i}"
            );
        }
    }
}
