//! The seal check's catch rate, against the figure docs/proofs.md states: a sealer whose labels
//! of a fraction `ε` of the nodes do not follow from their parents (it skipped or faked their
//! labelling) passes the `k` challenged nodes' label checks with probability `(1 - ε)^k`, the
//! challenges being derived the real way (`porep::seal_challenge` from `replica_id` and
//! `comm_r`). 1,000 trials per fraction, each a fresh replica and fresh faked nodes.

use ark_bn254::Fr;
use ark_std::rand::{RngCore, SeedableRng};
use cairn_proofs::porep::{
    check_challenge, check_revealed, check_revealed_for, check_seed, parent_indices,
    seal_challenge, RevealError,
};
use cairn_proofs::sdr::{fr_label, label, label_fr, parents, Label, SectorParams};

/// The seeded generator every draw comes from, so that every run draws the same trials.
type Gen = ark_std::rand::rngs::StdRng;

/// The cheater's labels: a node in `fake` gets a random label in every layer, the others are
/// labelled honestly from the cheater's own (possibly fake) parents.
fn cheat_labels(p: &SectorParams, rid: Fr, fake: &[bool], g: &mut Gen) -> Vec<Vec<Label>> {
    let rid = fr_label(&rid);
    let mut labels: Vec<Vec<Label>> = Vec::with_capacity(p.layers);
    for l in 0..p.layers {
        let mut layer: Vec<Label> = Vec::with_capacity(p.nodes);
        for (i, faked) in fake.iter().enumerate().take(p.nodes) {
            let x = if *faked {
                let mut b = [0u8; 32];
                for c in b.chunks_mut(8) {
                    c.copy_from_slice(&g.next_u64().to_le_bytes());
                }
                b[31] &= 0x1f;
                b
            } else {
                let par: Vec<Label> = parents(p, l, i)
                    .iter()
                    .map(|par| match par {
                        None => [0u8; 32],
                        Some((pl, pi)) if *pl == l => layer[*pi],
                        Some((pl, pi)) => labels[*pl][*pi],
                    })
                    .collect();
                label(&rid, l, i, &par)
            };
            layer.push(x);
        }
        labels.push(layer);
    }
    labels
}

#[test]
fn a_sealer_that_faked_a_fraction_of_its_labels_passes_at_the_stated_rate() {
    let p = SectorParams {
        nodes: 1024,
        layers: 2,
        graph_seed: [9; 32],
    };
    let k = 2usize;
    let trials = 1000u64;
    let mut g = Gen::seed_from_u64(18);
    for want in [0.01f64, 0.1, 0.5] {
        let mut passed = 0u64;
        let mut eps_sum = 0.0;
        let mut expected_sum = 0.0;
        for t in 0..trials {
            // a fresh replica, and a fresh set of faked nodes (node 0 is never challenged)
            let rid = Fr::from(g.next_u64()) + Fr::from(t);
            let fake: Vec<bool> = (0..p.nodes)
                .map(|i| i > 0 && (g.next_u64() % 1_000_000) as f64 / 1e6 < want)
                .collect();
            let eps = fake.iter().filter(|f| **f).count() as f64 / (p.nodes - 1) as f64;
            eps_sum += eps;
            expected_sum += (1.0 - eps).powi(k as i32);
            let labels = cheat_labels(&p, rid, &fake, &mut g);
            // the cheater's commitment: any value it likes (it cannot pick the challenges
            // without grinding, which this test does not do)
            let comm_r = Fr::from(g.next_u64());
            let mut revealed = Vec::new();
            for c in 0..k as u64 {
                let j = seal_challenge(rid, comm_r, c, p.nodes);
                let mut cols = vec![j];
                cols.extend(parent_indices(&p, j));
                for i in cols {
                    revealed.extend(labels.iter().map(|layer| label_fr(&layer[i])));
                }
            }
            match check_revealed(&p, k, rid, comm_r, &revealed) {
                Ok(_) => passed += 1,
                Err(RevealError::Label { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        let eps = eps_sum / trials as f64;
        // the mean over the trials of each trial's (1 - eps)^k
        let expected = expected_sum / trials as f64;
        let observed = passed as f64 / trials as f64;
        let sigma = (expected * (1.0 - expected) / trials as f64).sqrt();
        eprintln!(
            "faked {:.1} % of the labels: passed {observed:.3} of {trials}, stated (1-eps)^{k} = {expected:.3}",
            eps * 100.0
        );
        assert!(
            (observed - expected).abs() <= 4.0 * sigma + 1e-9,
            "eps {eps}: passed {observed}, stated {expected}"
        );
    }
}

/// The labels a seal proof over `k` challenges reveals, `seed` choosing the challenges (the
/// record's own when `None`, a seal check's otherwise).
fn revealed_for(
    p: &SectorParams,
    k: usize,
    rid: Fr,
    comm_r: Fr,
    seed: Option<Fr>,
    labels: &[Vec<Label>],
) -> Vec<Fr> {
    let mut revealed = Vec::new();
    for c in 0..k as u64 {
        let j = match seed {
            None => seal_challenge(rid, comm_r, c, p.nodes),
            Some(s) => check_challenge(rid, comm_r, s, c, p.nodes),
        };
        let mut cols = vec![j];
        cols.extend(parent_indices(p, j));
        for i in cols {
            revealed.extend(labels.iter().map(|layer| label_fr(&layer[i])));
        }
    }
    revealed
}

/// Grinding: a sealer that faked half its labels seals again (a new ticket, so a new
/// `replica_id`) until its record's own challenges miss every faked node, so its record's
/// seal proof passes. A seal check's challenges come from the auditor's nonce, drawn after the
/// record is public: over 1,000 nonces the ground replica passes at the rate `(1 - ε)^k` of
/// any replica, not more; the prover's choice did not carry over.
#[test]
fn a_sealer_that_ground_its_record_challenges_passes_seal_checks_at_the_stated_rate() {
    let p = SectorParams {
        nodes: 1024,
        layers: 2,
        graph_seed: [9; 32],
    };
    let k = 2usize;
    let nonces = 1000u64;
    let mut g = Gen::seed_from_u64(40);
    for want in [0.1f64, 0.5] {
        let fake: Vec<bool> = (0..p.nodes)
            .map(|i| i > 0 && (g.next_u64() % 1_000_000) as f64 / 1e6 < want)
            .collect();
        let eps = fake.iter().filter(|f| **f).count() as f64 / (p.nodes - 1) as f64;
        // grind: new tickets until the record's challenges all pass
        let mut tries = 0u64;
        let (rid, comm_r, labels) = loop {
            tries += 1;
            assert!(tries < 10_000, "grinding never succeeded");
            let rid = Fr::from(g.next_u64());
            let labels = cheat_labels(&p, rid, &fake, &mut g);
            let comm_r = Fr::from(g.next_u64());
            let revealed = revealed_for(&p, k, rid, comm_r, None, &labels);
            if check_revealed(&p, k, rid, comm_r, &revealed).is_ok() {
                break (rid, comm_r, labels);
            }
        };
        let mut passed = 0u64;
        let mut same_challenges = 0u64;
        for _ in 0..nonces {
            let mut nonce = [0u8; 32];
            g.fill_bytes(&mut nonce);
            let seed = check_seed(&nonce);
            if (0..k as u64).all(|c| {
                check_challenge(rid, comm_r, seed, c, p.nodes)
                    == seal_challenge(rid, comm_r, c, p.nodes)
            }) {
                same_challenges += 1;
            }
            let revealed = revealed_for(&p, k, rid, comm_r, Some(seed), &labels);
            match check_revealed_for(&p, k, rid, comm_r, Some(seed), &revealed) {
                Ok(_) => passed += 1,
                Err(RevealError::Label { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        let expected = (1.0 - eps).powi(k as i32);
        let observed = passed as f64 / nonces as f64;
        let sigma = (expected * (1.0 - expected) / nonces as f64).sqrt();
        eprintln!(
            "faked {:.1} %, ground in {tries} seals: record challenges passed; seal checks passed {observed:.3} of {nonces}, stated (1-eps)^{k} = {expected:.3}",
            eps * 100.0
        );
        assert!(
            (observed - expected).abs() <= 4.0 * sigma + 1e-9,
            "eps {eps}: checks passed {observed}, stated {expected}"
        );
        // the check's challenges are the record's only by chance (1 in about (n - 1)^k)
        assert!(
            same_challenges <= 1,
            "{same_challenges} checks reused the record's challenges"
        );
    }
}
