//! Which provers count as faulty: a pure state machine over accepted audit records (no clock,
//! no network), so its rules are rows of a table test, and replaying the audit log through it
//! after a restart gives back the same faulty set.
//!
//! The rules (docs/threat-model.md):
//! - only the verdicts of a window's designated auditors count ([`Role::Primary`],
//!   [`Role::Confirmer`]); a [`Role::Manual`] record changes nothing;
//! - a `Fail` makes the prover faulty at once: it carries the prover's own signed answer (a
//!   proof that does not verify, or a refusal), which every node re-checks;
//! - a `Missed` is only the auditor's claim: the prover is faulty once both the primary and the
//!   confirming auditor of the same window report a miss, so one slow answer, or one lying
//!   auditor, is not enough;
//! - a designated `Pass` for a later window than the fault clears it.

use cairn_proofs::audit::{Role, Verdict};
use std::collections::HashMap;

/// Windows of misses kept per prover waiting for their confirmation (the current and the
/// previous window are all a confirmation can arrive in).
const MISS_WINDOWS: u64 = 2;
/// Provers with unconfirmed misses tracked at once (bounded whatever the gossip).
pub(crate) const MAX_PENDING_MISSES: usize = 4096;

/// What applying a record changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing.
    None,
    /// The prover was not faulty and now is.
    Faulty,
    /// The prover was faulty and a later designated pass cleared it.
    Cleared,
    /// The prover was faulty already; the window of its fault moved on.
    StillFaulty,
}

/// The faulty set and the misses waiting for a second auditor.
#[derive(Debug, Default, Clone)]
pub(crate) struct Faults {
    /// prover -> window of its latest counted fault.
    faulty: HashMap<Vec<u8>, u64>,
    /// (prover, window) -> the roles that reported a miss (bit 0 primary, bit 1 confirmer).
    misses: HashMap<(Vec<u8>, u64), u8>,
}

impl Faults {
    /// Applies one accepted record: `prover`'s verdict for `window` by an auditor in `role`.
    pub(crate) fn apply(
        &mut self,
        prover: &[u8],
        window: u64,
        role: Role,
        verdict: Verdict,
    ) -> Change {
        if role == Role::Manual {
            return Change::None;
        }
        match verdict {
            Verdict::Pass => match self.faulty.get(prover) {
                Some(w) if *w < window => {
                    self.faulty.remove(prover);
                    Change::Cleared
                }
                _ => Change::None,
            },
            Verdict::Fail => self.mark(prover, window),
            Verdict::Missed => {
                // a prover's own older misses only: replaying a compacted log brings a carried
                // miss after newer records of other provers, and it must still meet its pair
                self.misses
                    .retain(|(p, w), _| p != prover || w.saturating_add(MISS_WINDOWS) > window);
                let key = (prover.to_vec(), window);
                if !self.misses.contains_key(&key) && self.misses.len() >= MAX_PENDING_MISSES {
                    return Change::None;
                }
                let bit = if role == Role::Primary { 1 } else { 2 };
                let seen = self.misses.entry(key.clone()).or_insert(0);
                *seen |= bit;
                if *seen == 3 {
                    self.misses.remove(&key);
                    self.mark(prover, window)
                } else {
                    Change::None
                }
            }
        }
    }

    fn mark(&mut self, prover: &[u8], window: u64) -> Change {
        match self.faulty.get_mut(prover) {
            Some(w) => {
                *w = (*w).max(window);
                Change::StillFaulty
            }
            None => {
                self.faulty.insert(prover.to_vec(), window);
                Change::Faulty
            }
        }
    }

    /// Whether `prover` is faulty.
    pub(crate) fn is_faulty(&self, prover: &[u8]) -> bool {
        self.faulty.contains_key(prover)
    }

    /// The faulty provers and the window of each one's latest fault.
    pub(crate) fn faulty(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.faulty.iter().map(|(p, w)| (p.as_slice(), *w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Confirmer, Manual, Primary};
    use Verdict::{Fail, Missed, Pass};

    const P: &[u8] = b"prover";
    const Q: &[u8] = b"other";

    #[test]
    fn table() {
        // each case: records applied in order as (prover, window, role, verdict), the change
        // each one makes, and whether P is faulty at the end
        type Step = (&'static [u8], u64, Role, Verdict, Change);
        let cases: Vec<(&str, Vec<Step>, bool)> = vec![
            (
                "a pass changes nothing",
                vec![(P, 5, Primary, Pass, Change::None)],
                false,
            ),
            (
                "a designated fail is a fault at once",
                vec![(P, 5, Primary, Fail, Change::Faulty)],
                true,
            ),
            (
                "so is the confirmer's",
                vec![(P, 5, Confirmer, Fail, Change::Faulty)],
                true,
            ),
            (
                "a manual fail counts for nothing",
                vec![(P, 5, Manual, Fail, Change::None)],
                false,
            ),
            (
                "one miss is not a fault",
                vec![(P, 5, Primary, Missed, Change::None)],
                false,
            ),
            (
                "nor two misses by the same auditor role",
                vec![
                    (P, 5, Primary, Missed, Change::None),
                    (P, 5, Primary, Missed, Change::None),
                ],
                false,
            ),
            (
                "a miss confirmed by the second auditor is",
                vec![
                    (P, 5, Primary, Missed, Change::None),
                    (P, 5, Confirmer, Missed, Change::Faulty),
                ],
                true,
            ),
            (
                "in either order",
                vec![
                    (P, 5, Confirmer, Missed, Change::None),
                    (P, 5, Primary, Missed, Change::Faulty),
                ],
                true,
            ),
            (
                "misses of different windows do not add up",
                vec![
                    (P, 5, Primary, Missed, Change::None),
                    (P, 6, Confirmer, Missed, Change::None),
                ],
                false,
            ),
            (
                "misses of different provers do not add up",
                vec![
                    (Q, 5, Primary, Missed, Change::None),
                    (P, 5, Confirmer, Missed, Change::None),
                ],
                false,
            ),
            (
                "a manual miss does not confirm",
                vec![
                    (P, 5, Primary, Missed, Change::None),
                    (P, 5, Manual, Missed, Change::None),
                ],
                false,
            ),
            (
                "a later designated pass clears a fault",
                vec![
                    (P, 5, Primary, Fail, Change::Faulty),
                    (P, 6, Primary, Pass, Change::Cleared),
                ],
                false,
            ),
            (
                "a pass of the same window does not",
                vec![
                    (P, 5, Primary, Fail, Change::Faulty),
                    (P, 5, Confirmer, Pass, Change::None),
                ],
                true,
            ),
            (
                "nor a manual pass",
                vec![
                    (P, 5, Primary, Fail, Change::Faulty),
                    (P, 9, Manual, Pass, Change::None),
                ],
                true,
            ),
            (
                "a fault of a later window needs a later pass",
                vec![
                    (P, 5, Primary, Fail, Change::Faulty),
                    (P, 7, Primary, Fail, Change::StillFaulty),
                    (P, 6, Primary, Pass, Change::None),
                    (P, 8, Primary, Pass, Change::Cleared),
                ],
                false,
            ),
            (
                "an unconfirmed miss older than two windows is forgotten",
                vec![
                    (P, 5, Primary, Missed, Change::None),
                    (P, 7, Primary, Missed, Change::None),
                    (P, 5, Confirmer, Missed, Change::None),
                ],
                false,
            ),
            (
                "but not because of another prover's newer records (a compacted log's order)",
                vec![
                    (P, 5, Confirmer, Missed, Change::None),
                    (Q, 90, Primary, Missed, Change::None),
                    (P, 5, Primary, Missed, Change::Faulty),
                ],
                true,
            ),
        ];
        for (what, steps, faulty) in cases {
            let mut f = Faults::default();
            for (i, (prover, window, role, verdict, change)) in steps.into_iter().enumerate() {
                assert_eq!(
                    f.apply(prover, window, role, verdict),
                    change,
                    "{what}: step {i}"
                );
            }
            assert_eq!(f.is_faulty(P), faulty, "{what}");
        }
    }

    #[test]
    fn pending_misses_are_bounded() {
        let mut f = Faults::default();
        for i in 0..(MAX_PENDING_MISSES as u32 + 100) {
            f.apply(&i.to_le_bytes(), 5, Primary, Missed);
        }
        assert!(f.misses.len() <= MAX_PENDING_MISSES);
        // a fail still counts when the table is full
        assert_eq!(f.apply(P, 5, Primary, Fail), Change::Faulty);
    }
}
