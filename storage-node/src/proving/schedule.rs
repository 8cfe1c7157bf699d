//! The audit schedule and the verdict on an answer: pure functions of their inputs (no clock,
//! no network, no randomness), so every case is a row of a table test.

use cairn_net::PeerId;
use cairn_proofs::audit::{AuditResponse, Verdict, MAX_REASON};
use std::time::Duration;

/// The peer `me` audits in `window`: the provers and `me`, sorted and deduplicated into a ring,
/// and the member a window-dependent offset ahead of `me`. The offset (1 to ring size - 1,
/// from blake3 of the window number) is the same for every auditor in a window, so the
/// auditor-to-prover map is a rotation of the ring: every member is audited exactly once per
/// window (when every member computes the same ring), by an auditor that changes from window
/// to window, and nobody audits itself. `None` when there is nobody else to audit.
pub(crate) fn audit_target(me: PeerId, provers: &[PeerId], window: u64) -> Option<PeerId> {
    let mut ring: Vec<PeerId> = provers.to_vec();
    ring.push(me);
    ring.sort();
    ring.dedup();
    if ring.len() < 2 {
        return None;
    }
    let h = blake3::hash(&window.to_le_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    let shift = 1 + (u64::from_le_bytes(first) % (ring.len() as u64 - 1)) as usize;
    let pos = ring.iter().position(|x| *x == me)?;
    Some(ring[(pos + shift) % ring.len()])
}

/// Whether a gossiped audit record's `window` may still count at a receiver whose current
/// window is `now`: the previous window (an audit made late in it arrives after the turn), the
/// current one, or the next (an auditor whose clock runs slightly ahead at the turn). Anything
/// else is refused, so nobody can gossip a verdict for a window long past or far ahead: a
/// `Fail` for window `u64::MAX` would otherwise never be cleared by a later pass.
pub(crate) fn window_is_current(window: u64, now: u64) -> bool {
    window.saturating_add(1) >= now && window <= now.saturating_add(1)
}

/// What an auditor got back for a window proof request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Nothing within the deadline.
    Late(Duration),
    /// The request did not reach the prover, or its answer did not come back (the network's
    /// error text).
    Unreachable(String),
    /// The prover answered with an error (it refuses, or does not hold a sector).
    Refused(String),
    /// The prover answered with audit-protocol bytes.
    Reply(Vec<u8>),
    /// The prover answered with another kind of control response.
    Unexpected,
}

/// The verdict on an answer, its reason (empty on a pass, at most `MAX_REASON` bytes) and
/// the proof bytes it carried. `verifies` checks a decoded proof against the request (it is
/// called only for a well-formed proof). A late or unreachable answer is a miss: it says
/// nothing about the prover's data; any answer the prover did give that is not a valid proof
/// is a failure.
pub(crate) fn judge(
    answer: &Answer,
    verifies: impl FnOnce(&[u8]) -> bool,
) -> (Verdict, String, Vec<u8>) {
    match answer {
        Answer::Late(d) => (
            Verdict::Missed,
            format!("no answer within {:.0} s", d.as_secs_f64()),
            Vec::new(),
        ),
        Answer::Unreachable(e) => (Verdict::Missed, cut(e), Vec::new()),
        Answer::Refused(e) => (Verdict::Fail, cut(e), Vec::new()),
        Answer::Unexpected => (Verdict::Fail, "unexpected answer".into(), Vec::new()),
        Answer::Reply(bytes) => match AuditResponse::decode(bytes) {
            Ok(AuditResponse::Proof(proof)) => {
                if verifies(&proof) {
                    (Verdict::Pass, String::new(), proof.to_vec())
                } else {
                    (
                        Verdict::Fail,
                        "the proof does not verify".into(),
                        proof.to_vec(),
                    )
                }
            }
            _ => (Verdict::Fail, "malformed answer".into(), Vec::new()),
        },
    }
}

/// `s` cut to at most [`MAX_REASON`] bytes, on a character boundary.
pub(crate) fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_REASON);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proofs::audit::PROOF_LEN;
    use std::collections::HashSet;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn nobody_to_audit_gives_none() {
        let me = PeerId::random();
        // (provers, want a target)
        let table: [(Vec<PeerId>, bool); 4] = [
            (vec![], false),
            (vec![me], false),     // only itself
            (vec![me, me], false), // duplicates of itself
            (peers(1), true),      // one other peer: always that one
        ];
        for (provers, want) in table {
            for window in 0..50 {
                let t = audit_target(me, &provers, window);
                assert_eq!(t.is_some(), want, "{provers:?}");
                if let Some(t) = t {
                    assert_ne!(t, me);
                    assert!(provers.contains(&t));
                }
            }
        }
    }

    #[test]
    fn each_window_is_a_rotation_every_member_audited_once_never_by_itself() {
        for n in [2, 3, 5, 8, 13] {
            let ring = peers(n);
            let mut auditors_of: Vec<HashSet<PeerId>> = vec![HashSet::new(); n];
            for window in 0..200u64 {
                let mut audited = HashSet::new();
                for (i, me) in ring.iter().enumerate() {
                    // every member knows the others as provers (and may list itself)
                    let mut known: Vec<PeerId> = ring.clone();
                    if i % 2 == 0 {
                        known.retain(|p| p != me);
                    }
                    let t = audit_target(*me, &known, window).expect("a target");
                    assert_ne!(t, *me, "n {n}, window {window}");
                    assert!(audited.insert(t), "{t} audited twice in window {window}");
                    let j = ring.iter().position(|p| *p == t).expect("a member");
                    auditors_of[j].insert(*me);
                }
                assert_eq!(audited.len(), n);
            }
            // the auditor changes from window to window: over 200 windows every member is
            // audited by every other member (for n = 2 there is only one)
            for a in &auditors_of {
                assert_eq!(a.len(), n - 1, "n {n}");
            }
        }
    }

    #[test]
    fn the_target_depends_only_on_the_ring_and_the_window() {
        let ring = peers(6);
        let mut shuffled = ring.clone();
        shuffled.reverse();
        for window in 0..100 {
            assert_eq!(
                audit_target(ring[2], &ring, window),
                audit_target(ring[2], &shuffled, window)
            );
        }
    }

    #[test]
    fn verdicts_by_answer() {
        let good = AuditResponse::Proof([7u8; PROOF_LEN]).encode();
        let sectors = AuditResponse::Sectors(Vec::new()).encode();
        let long = "x".repeat(MAX_REASON + 50);
        // (answer, proof verifies, verdict, reason, carries the proof)
        let table: Vec<(Answer, bool, Verdict, String, bool)> = vec![
            (
                Answer::Late(Duration::from_secs(9)),
                true,
                Verdict::Missed,
                "no answer within 9 s".into(),
                false,
            ),
            (
                Answer::Unreachable("connection closed".into()),
                true,
                Verdict::Missed,
                "connection closed".into(),
                false,
            ),
            (
                Answer::Unreachable(long.clone()),
                true,
                Verdict::Missed,
                "x".repeat(MAX_REASON),
                false,
            ),
            (
                Answer::Refused("sector 3 is not held here".into()),
                true,
                Verdict::Fail,
                "sector 3 is not held here".into(),
                false,
            ),
            (
                Answer::Refused(long),
                true,
                Verdict::Fail,
                "x".repeat(MAX_REASON),
                false,
            ),
            (
                Answer::Unexpected,
                true,
                Verdict::Fail,
                "unexpected answer".into(),
                false,
            ),
            (
                Answer::Reply(good.clone()),
                true,
                Verdict::Pass,
                String::new(),
                true,
            ),
            (
                Answer::Reply(good),
                false,
                Verdict::Fail,
                "the proof does not verify".into(),
                true,
            ),
            (
                Answer::Reply(sectors),
                true,
                Verdict::Fail,
                "malformed answer".into(),
                false,
            ),
            (
                Answer::Reply(vec![]),
                true,
                Verdict::Fail,
                "malformed answer".into(),
                false,
            ),
            (
                Answer::Reply(vec![0xff; 300]),
                true,
                Verdict::Fail,
                "malformed answer".into(),
                false,
            ),
        ];
        for (answer, ok, verdict, reason, carries) in table {
            let mut called = false;
            let (v, r, proof) = judge(&answer, |p| {
                called = true;
                assert_eq!(p, &[7u8; PROOF_LEN][..]);
                ok
            });
            assert_eq!(v, verdict, "{answer:?}");
            assert_eq!(r, reason, "{answer:?}");
            assert_eq!(!proof.is_empty(), carries, "{answer:?}");
            // only a well-formed proof is checked
            assert_eq!(called, carries, "{answer:?}");
        }
    }

    #[test]
    fn cut_keeps_to_character_boundaries() {
        let s = "é".repeat(MAX_REASON); // 2 bytes each
        let c = cut(&s);
        assert!(c.len() <= MAX_REASON);
        assert!(c.chars().all(|ch| ch == 'é'));
        assert_eq!(cut("short"), "short");
    }

    #[test]
    fn only_verdicts_of_the_previous_current_or_next_window_count() {
        // (record's window, receiver's current window, counts)
        let cases: &[(u64, u64, bool)] = &[
            (10, 10, true),
            (9, 10, true),
            (11, 10, true),
            (8, 10, false),
            (12, 10, false),
            (u64::MAX, 10, false),
            (0, 10, false),
            (0, 0, true),
            (1, 0, true),
            (u64::MAX, u64::MAX, true),
            (u64::MAX - 1, u64::MAX, true),
            (u64::MAX, u64::MAX - 1, true),
        ];
        for &(window, now, counts) in cases {
            assert_eq!(
                window_is_current(window, now),
                counts,
                "window {window} at {now}"
            );
        }
    }
}
