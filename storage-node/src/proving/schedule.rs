//! The audit schedule and the verdict on an answer: pure functions of their inputs (no clock,
//! no network, no randomness), so every case is a row of a table test.

use cairn_net::PeerId;
use cairn_proofs::audit::{AuditResponse, Opening, Role, Verdict, MAX_REASON};
use std::time::Duration;

/// The ring of a window's audits: the provers (peers with a verified sector record, this node
/// included when it has one), sorted and deduplicated, so every node that knows the same
/// provers computes the same ring.
pub(crate) fn ring_of(provers: &[PeerId]) -> Vec<PeerId> {
    let mut ring = provers.to_vec();
    ring.sort();
    ring.dedup();
    ring
}

/// A window's two ring offsets (1 to `n` - 1, different from each other when `n` ≥ 3): the
/// primary auditor of the prover at position `i` sits at `i - primary`, its confirming
/// auditor at `i - confirm`. Both come from blake3 of the window number (in two domains), so
/// they are the same at every node and change from window to window.
fn offsets(n: usize, window: u64) -> (usize, Option<usize>) {
    let draw = |domain: &[u8]| {
        let mut h = blake3::Hasher::new();
        h.update(domain);
        h.update(&window.to_le_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.finalize().as_bytes()[..8]);
        1 + (u64::from_le_bytes(first) % (n as u64 - 1)) as usize
    };
    let primary = draw(b"");
    if n < 3 {
        return (primary, None);
    }
    let mut confirm = draw(b"cairn confirming auditor");
    if confirm == primary {
        confirm = confirm % (n - 1) + 1;
    }
    (primary, Some(confirm))
}

/// The designated auditors of `prover` in `window` over `provers` ([`ring_of`]): the primary,
/// and the confirming auditor when the ring has three or more members. `None` when the prover
/// is not in the ring or the ring has one member. Every member is the primary of exactly one
/// other member per window (the map is a rotation of the ring), nobody audits itself, and the
/// confirmer is never the primary.
pub(crate) fn auditors_of(
    prover: PeerId,
    provers: &[PeerId],
    window: u64,
) -> Option<(PeerId, Option<PeerId>)> {
    let ring = ring_of(provers);
    let n = ring.len();
    if n < 2 {
        return None;
    }
    let pos = ring.iter().position(|x| *x == prover)?;
    let (primary, confirm) = offsets(n, window);
    Some((
        ring[(pos + n - primary) % n],
        confirm.map(|c| ring[(pos + n - c) % n]),
    ))
}

/// `auditor`'s duty for `prover` in `window` over `provers`.
pub(crate) fn role_of(auditor: PeerId, prover: PeerId, provers: &[PeerId], window: u64) -> Role {
    match auditors_of(prover, provers, window) {
        Some((p, _)) if p == auditor => Role::Primary,
        Some((_, Some(c))) if c == auditor => Role::Confirmer,
        _ => Role::Manual,
    }
}

/// The prover `me` is the primary auditor of in `window`: the member `primary` places ahead of
/// `me` in the ring. `None` when `me` is not a prover or there is nobody else.
pub(crate) fn audit_target(me: PeerId, provers: &[PeerId], window: u64) -> Option<PeerId> {
    let ring = ring_of(provers);
    let n = ring.len();
    if n < 2 {
        return None;
    }
    let pos = ring.iter().position(|x| *x == me)?;
    let (primary, _) = offsets(n, window);
    Some(ring[(pos + primary) % n])
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
    /// The prover declined with an unsigned control error (busy, a rate limit): load
    /// shedding, which says nothing about its data.
    Declined(String),
    /// The prover answered with audit-protocol bytes.
    Reply(Vec<u8>),
    /// The prover answered with another kind of control response.
    Unexpected,
}

/// An auditor's judgement of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// The verdict.
    pub(crate) verdict: Verdict,
    /// Why (empty on a pass; the prover's own words on a signed refusal), at most
    /// `MAX_REASON` bytes.
    pub(crate) reason: String,
    /// The proof the prover sent (empty when none).
    pub(crate) proof: Vec<u8>,
    /// The leaves it opened with the proof.
    pub(crate) openings: Vec<Opening>,
    /// The prover's signature on its answer (empty when it gave no signed answer).
    pub(crate) answer_sig: Vec<u8>,
}

/// The verdict on an answer. `signed(proof, openings, refusal, signature)` checks the prover's
/// signature on its answer; `verifies(proof, openings)` checks a well-formed, signed proof and
/// its openings against the request (`Err` says what is wrong). Only what the prover signed can
/// fail it: a signed proof or opening that does not verify, or a signed refusal. Anything else
/// (no answer, an unsigned error, a malformed or unsigned answer) is a miss: a claim of the
/// auditor's alone, which a second auditor must confirm.
pub(crate) fn judge(
    answer: &Answer,
    signed: impl Fn(&[u8], &[Opening], &str, &[u8]) -> bool,
    verifies: impl FnOnce(&[u8], &[Opening]) -> Result<(), String>,
) -> Judgement {
    let missed = |reason: String| Judgement {
        verdict: Verdict::Missed,
        reason: cut(&reason),
        proof: Vec::new(),
        openings: Vec::new(),
        answer_sig: Vec::new(),
    };
    match answer {
        Answer::Late(d) => missed(format!("no answer within {:.0} s", d.as_secs_f64())),
        Answer::Unreachable(e) => missed(e.clone()),
        Answer::Declined(e) => missed(format!("declined: {e}")),
        Answer::Unexpected => missed("unexpected answer".into()),
        Answer::Reply(bytes) => match AuditResponse::decode(bytes) {
            Ok(AuditResponse::Proof {
                proof,
                openings,
                signature,
            }) => {
                if !signed(&proof, &openings, "", &signature) {
                    return missed("a proof the prover did not sign".into());
                }
                let (verdict, reason) = match verifies(&proof, &openings) {
                    Ok(()) => (Verdict::Pass, String::new()),
                    Err(e) => (Verdict::Fail, cut(&e)),
                };
                Judgement {
                    verdict,
                    reason,
                    proof: proof.to_vec(),
                    openings,
                    answer_sig: signature,
                }
            }
            Ok(AuditResponse::Refused { reason, signature }) => {
                if !signed(&[], &[], &reason, &signature) {
                    return missed("a refusal the prover did not sign".into());
                }
                Judgement {
                    verdict: Verdict::Fail,
                    reason,
                    proof: Vec::new(),
                    openings: Vec::new(),
                    answer_sig: signature,
                }
            }
            _ => missed("malformed answer".into()),
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
        let table: [(Vec<PeerId>, bool); 5] = [
            (vec![], false),
            (vec![me], false),                  // only itself
            (vec![me, me], false),              // duplicates of itself
            (peers(1), false),                  // me not a prover: I audit nobody
            (vec![me, PeerId::random()], true), // one other prover: always that one
        ];
        for (provers, want) in table {
            for window in 0..50 {
                let t = audit_target(me, &provers, window);
                assert_eq!(t.is_some(), want, "{provers:?}");
                if let Some(t) = t {
                    assert_ne!(t, me);
                    assert!(provers.contains(&t));
                    assert_eq!(auditors_of(t, &provers, window).unwrap().0, me);
                }
            }
        }
    }

    #[test]
    fn each_window_is_a_rotation_every_member_audited_once_never_by_itself() {
        for n in [2, 3, 5, 8, 13] {
            let ring = peers(n);
            let mut primaries: Vec<HashSet<PeerId>> = vec![HashSet::new(); n];
            for window in 0..200u64 {
                let mut audited = HashSet::new();
                let mut confirmed = HashSet::new();
                for me in &ring {
                    let t = audit_target(*me, &ring, window).expect("a target");
                    assert_ne!(t, *me, "n {n}, window {window}");
                    assert!(audited.insert(t), "{t} audited twice in window {window}");
                    let j = ring.iter().position(|p| *p == t).expect("a member");
                    primaries[j].insert(*me);
                    // the schedule seen from the prover's side agrees
                    let (primary, confirmer) = auditors_of(t, &ring, window).unwrap();
                    assert_eq!(primary, *me);
                    assert_eq!(role_of(*me, t, &ring, window), Role::Primary);
                    match confirmer {
                        None => assert_eq!(n, 2),
                        Some(c) => {
                            assert!(c != t && c != primary, "n {n}");
                            assert_eq!(role_of(c, t, &ring, window), Role::Confirmer);
                            // every member confirms exactly one other member too
                            assert!(confirmed.insert(c), "{c} confirms twice");
                        }
                    }
                }
                assert_eq!(audited.len(), n);
            }
            // the auditor changes from window to window: over 200 windows every member is
            // audited by every other member (for n = 2 there is only one)
            for a in &primaries {
                assert_eq!(a.len(), n - 1, "n {n}");
            }
        }
    }

    #[test]
    fn roles_by_position() {
        let ring = peers(5);
        let outsider = PeerId::random();
        for window in 0..50 {
            for p in &ring {
                let (primary, confirmer) = auditors_of(*p, &ring, window).unwrap();
                let confirmer = confirmer.unwrap();
                // (auditor, role)
                let table = [
                    (primary, Role::Primary),
                    (confirmer, Role::Confirmer),
                    (*p, Role::Manual),
                    (outsider, Role::Manual),
                ];
                for (a, role) in table {
                    assert_eq!(role_of(a, *p, &ring, window), role);
                }
            }
            // a prover outside the ring has no designated auditor
            assert_eq!(auditors_of(outsider, &ring, window), None);
            assert_eq!(role_of(ring[0], outsider, &ring, window), Role::Manual);
        }
    }

    #[test]
    fn the_target_depends_only_on_the_ring_and_the_window() {
        let ring = peers(6);
        let mut shuffled = ring.clone();
        shuffled.reverse();
        shuffled.push(ring[1]);
        for window in 0..100 {
            assert_eq!(
                audit_target(ring[2], &ring, window),
                audit_target(ring[2], &shuffled, window)
            );
            assert_eq!(
                auditors_of(ring[2], &ring, window),
                auditors_of(ring[2], &shuffled, window)
            );
        }
    }

    #[test]
    fn verdicts_by_answer() {
        const SIG: &[u8] = &[9; 64];
        let proof = |sig: &[u8]| {
            AuditResponse::Proof {
                proof: [7u8; PROOF_LEN],
                openings: Vec::new(),
                signature: sig.to_vec(),
            }
            .encode()
        };
        let refusal = |sig: &[u8]| {
            AuditResponse::Refused {
                reason: "sector 3 is not held here".into(),
                signature: sig.to_vec(),
            }
            .encode()
        };
        let sectors = AuditResponse::Sectors(Vec::new()).encode();
        let long = "x".repeat(MAX_REASON + 50);
        // (answer, proof verifies, verdict, reason, carries the proof, carries the prover's
        // signature)
        let table: Vec<(Answer, bool, Verdict, String, bool, bool)> = vec![
            (
                Answer::Late(Duration::from_secs(9)),
                true,
                Verdict::Missed,
                "no answer within 9 s".into(),
                false,
                false,
            ),
            (
                Answer::Unreachable("connection closed".into()),
                true,
                Verdict::Missed,
                "connection closed".into(),
                false,
                false,
            ),
            (
                Answer::Unreachable(long.clone()),
                true,
                Verdict::Missed,
                "x".repeat(MAX_REASON),
                false,
                false,
            ),
            // load shedding is never a fail
            (
                Answer::Declined("busy".into()),
                true,
                Verdict::Missed,
                "declined: busy".into(),
                false,
                false,
            ),
            (
                Answer::Declined(long),
                true,
                Verdict::Missed,
                format!("declined: {}", "x".repeat(MAX_REASON - 10)),
                false,
                false,
            ),
            (
                Answer::Unexpected,
                true,
                Verdict::Missed,
                "unexpected answer".into(),
                false,
                false,
            ),
            (
                Answer::Reply(proof(SIG)),
                true,
                Verdict::Pass,
                String::new(),
                true,
                true,
            ),
            (
                Answer::Reply(proof(SIG)),
                false,
                Verdict::Fail,
                "the proof does not verify".into(),
                true,
                true,
            ),
            // an unsigned (or badly signed) proof proves nothing either way
            (
                Answer::Reply(proof(&[1; 64])),
                false,
                Verdict::Missed,
                "a proof the prover did not sign".into(),
                false,
                false,
            ),
            (
                Answer::Reply(refusal(SIG)),
                true,
                Verdict::Fail,
                "sector 3 is not held here".into(),
                false,
                true,
            ),
            (
                Answer::Reply(refusal(&[])),
                true,
                Verdict::Missed,
                "a refusal the prover did not sign".into(),
                false,
                false,
            ),
            (
                Answer::Reply(sectors),
                true,
                Verdict::Missed,
                "malformed answer".into(),
                false,
                false,
            ),
            (
                Answer::Reply(vec![]),
                true,
                Verdict::Missed,
                "malformed answer".into(),
                false,
                false,
            ),
            (
                Answer::Reply(vec![0xff; 300]),
                true,
                Verdict::Missed,
                "malformed answer".into(),
                false,
                false,
            ),
        ];
        for (answer, ok, verdict, reason, carries, signed) in table {
            let mut called = false;
            let j = judge(
                &answer,
                |_, _, _, sig| sig == SIG,
                |p, _| {
                    called = true;
                    assert_eq!(p, &[7u8; PROOF_LEN][..]);
                    if ok {
                        Ok(())
                    } else {
                        Err("the proof does not verify".into())
                    }
                },
            );
            assert_eq!(j.verdict, verdict, "{answer:?}");
            assert_eq!(j.reason, reason, "{answer:?}");
            assert_eq!(!j.proof.is_empty(), carries, "{answer:?}");
            assert_eq!(!j.answer_sig.is_empty(), signed, "{answer:?}");
            // only a well-formed, signed proof is checked
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
