//! How many gossiped audit records one auditor may add to this node's log per window: a pure
//! counter (the window is passed in, no clock), so its cases are rows of a table test.
//!
//! An honest auditor gossips one verdict per window, a few more when an operator audits by
//! hand (`POST /api/v0/audit?peer=`) or a miss is retried. Without a cap, any peer could sign
//! records as fast as it likes and grow every node's audit log without bound. Records are
//! counted only once their signature verifies, so nobody spends another auditor's quota.

use std::collections::HashMap;

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
}
