//! The multi-party setup end to end, at a small sector size: three contributors in each
//! phase, keys that prove and verify seals and windows, a transcript whose tampered steps
//! `verify` rejects, and keys pinned by digest that reject proofs made under the development
//! keys.

use ark_bn254::{Bn254, G1Affine};
use ark_ec::{AffineRepr, CurveGroup};
use ark_groth16::Groth16;
use ark_snark::SNARK;
use cairn_proofs::audit::{self, decode_proof, KeySource, NetParams};
use cairn_proofs::ceremony::beacon::Beacon;
use cairn_proofs::ceremony::{self, CeremonyError};
use cairn_proofs::post;
use std::path::{Path, PathBuf};

/// A beacon with few iterations (tests).
fn beacon(v: u8) -> Beacon {
    Beacon::new(vec![v; 32], 4).unwrap()
}

fn params() -> NetParams {
    NetParams {
        sector_size: 256,
        layers: 1,
        challenges: 2,
        batch: 1,
        seal_challenges: 1,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cairn-ceremony-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Replaces the G1 point at `offset` of a file by another valid point, so the file still
/// decodes and only the transcript's checks can catch it.
fn swap_point(path: &Path, offset: usize) {
    use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
    let mut b = std::fs::read(path).unwrap();
    let p = G1Affine::deserialize_uncompressed(&b[offset..offset + 64]).unwrap();
    let q = (p + G1Affine::generator()).into_affine();
    let mut enc = Vec::new();
    q.serialize_uncompressed(&mut enc).unwrap();
    b[offset..offset + 64].copy_from_slice(&enc);
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_three_party_ceremony_makes_keys_that_prove_and_pin() {
    let dir = tmp("three");
    let created = ceremony::new(&dir, params()).unwrap();
    assert!(created.constraints.iter().all(|c| *c > 0));
    assert!(matches!(
        ceremony::new(&dir, params()),
        Err(CeremonyError::State(_))
    ));
    // phase 2 needs a phase-1 contribution; finalize needs both phases
    assert!(ceremony::open_phase2(&dir).is_err());
    for i in 1..=3 {
        let c = ceremony::contribute(&dir).unwrap();
        assert_eq!((c.phase, c.index), (1, i));
    }
    // phase 2 opens only after a random beacon ends phase 1
    assert!(ceremony::open_phase2(&dir).is_err());
    let c = ceremony::beacon(&dir, &beacon(1)).unwrap();
    assert_eq!((c.phase, c.index), (1, 4));
    ceremony::open_phase2(&dir).unwrap();
    assert!(ceremony::finalize(&dir, &dir.join("keys")).is_err());
    for i in 1..=3 {
        let c = ceremony::contribute(&dir).unwrap();
        assert_eq!((c.phase, c.index, c.hashes.len()), (2, i, 2));
    }
    // nor are keys finalized before phase 2's beacon
    assert!(ceremony::finalize(&dir, &dir.join("keys")).is_err());
    ceremony::beacon(&dir, &beacon(2)).unwrap();
    // finalize verifies the whole transcript first
    let keys_dir = dir.join("keys");
    let pin = ceremony::finalize(&dir, &keys_dir).unwrap();
    let p = params();
    let pinned = KeySource::Pinned {
        dir: keys_dir.clone(),
        sha256: pin.clone(),
    };
    let (seal_keys, post_keys) = p.load_keys(&pinned).unwrap();

    // the keys prove and verify a seal and a window
    let data: Vec<u8> = (0..200u32).map(|i| (i * 31 % 251) as u8).collect();
    let (sealed, record) =
        audit::seal_sector(&p, &seal_keys, b"prover", 3, [7; 32], &data).unwrap();
    assert!(record.verify_seal(&p, &seal_keys).unwrap());
    let nonce = [9u8; 32];
    let proof = audit::prove_window(&p, &post_keys, &nonce, 5, &[(3, &sealed)]).unwrap();
    let inputs = post::public_inputs(p.post_shape(), &nonce, 5, &[(3, sealed.comm_r)]);
    let proof = decode_proof(&proof).unwrap();
    assert!(Groth16::<Bn254>::verify_with_processed_vk(&post_keys.pvk, &inputs, &proof).unwrap());
    let wrong = post::public_inputs(p.post_shape(), &nonce, 6, &[(3, sealed.comm_r)]);
    assert!(!Groth16::<Bn254>::verify_with_processed_vk(&post_keys.pvk, &wrong, &proof).unwrap());

    // proofs made under the development keys do not verify under the pinned keys
    let dev = KeySource::Dev(dir.join("dev-keys"));
    let (dev_seal, dev_post) = p.load_keys(&dev).unwrap();
    let (dev_sealed, dev_record) =
        audit::seal_sector(&p, &dev_seal, b"prover", 3, [7; 32], &data).unwrap();
    assert!(dev_record.verify_seal(&p, &dev_seal).unwrap());
    assert!(!dev_record.verify_seal(&p, &seal_keys).unwrap());
    let dev_proof = audit::prove_window(&p, &dev_post, &nonce, 5, &[(3, &dev_sealed)]).unwrap();
    let dev_inputs = post::public_inputs(p.post_shape(), &nonce, 5, &[(3, dev_sealed.comm_r)]);
    let dev_proof = decode_proof(&dev_proof).unwrap();
    assert!(
        !Groth16::<Bn254>::verify_with_processed_vk(&post_keys.pvk, &dev_inputs, &dev_proof)
            .unwrap()
    );

    // the pin holds: another digest, an edited manifest or key file, other parameters
    let other = KeySource::Pinned {
        dir: keys_dir.clone(),
        sha256: "00".repeat(32),
    };
    assert!(p.load_keys(&other).is_err());
    let mut q = p;
    q.challenges = 3;
    assert!(q.load_keys(&pinned).is_err());
    let vk = keys_dir.join("post.vk");
    let mut b = std::fs::read(&vk).unwrap();
    b[70] ^= 1;
    std::fs::write(&vk, &b).unwrap();
    assert!(p.load_keys(&pinned).is_err());
    tampered_transcripts_are_rejected(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

fn power(d: &Path) -> u32 {
    let text = std::fs::read_to_string(d.join("ceremony.txt")).unwrap();
    let line = text.lines().find(|l| l.starts_with("power ")).unwrap();
    line[6..].parse().unwrap()
}

/// `verify` rejects every tampered copy of the finished ceremony in `dir` (phase 1: three
/// contributions then a beacon; phase 2: three then a beacon). Phase 2's own tampering is
/// covered by the unit tests of `phase2`, at a small size.
fn tampered_transcripts_are_rejected(dir: &Path) {
    type Tamper = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Tamper)> = vec![
        // a power of tau changed (a valid point, so only the powers check can catch it)
        (
            "phase-1 power",
            Box::new(|d: &Path| swap_point(&d.join("phase1/0002.bin"), 8 + 5 * 64)),
        ),
        // [alpha]1 changed without a proof for it
        (
            "phase-1 alpha",
            Box::new(|d: &Path| {
                let n = 1usize << power(d);
                swap_point(&d.join("phase1/0001.bin"), 8 + (2 * n - 1) * 64)
            }),
        ),
        // a proof of knowledge replaced
        (
            "phase-1 proof",
            Box::new(|d: &Path| {
                let len = std::fs::metadata(d.join("phase1/0001.bin")).unwrap().len() as usize;
                swap_point(&d.join("phase1/0001.bin"), len - 3 * 256 + 256)
            }),
        ),
        // a contribution's bytes flipped: the file no longer decodes or checks
        (
            "flipped byte",
            Box::new(|d: &Path| {
                let p = d.join("phase1/0003.bin");
                let mut b = std::fs::read(&p).unwrap();
                b[40] ^= 0x55;
                std::fs::write(&p, b).unwrap();
            }),
        ),
        // two contributions swapped: each is bound to the file before it
        (
            "reordered",
            Box::new(|d: &Path| {
                let a = std::fs::read(d.join("phase1/0001.bin")).unwrap();
                let b = std::fs::read(d.join("phase1/0002.bin")).unwrap();
                std::fs::write(d.join("phase1/0001.bin"), b).unwrap();
                std::fs::write(d.join("phase1/0002.bin"), a).unwrap();
            }),
        ),
        // a file cut short
        (
            "truncated",
            Box::new(|d: &Path| {
                let p = d.join("phase1/0001.bin");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 1]).unwrap();
            }),
        ),
        // the beacon's value changed after the fact: the step no longer matches it
        (
            "beacon value",
            Box::new(|d: &Path| {
                std::fs::write(d.join("phase1/0004.beacon"), beacon(9).encode()).unwrap();
            }),
        ),
        // phase 2's beacon claimed for a step that was not one
        (
            "beacon claimed",
            Box::new(|d: &Path| {
                std::fs::write(d.join("phase2/0002.beacon"), beacon(2).encode()).unwrap();
            }),
        ),
        // the beacon that ended phase 1 removed: phase 2 was opened without one
        (
            "no beacon",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("phase1/0004.beacon")).unwrap();
            }),
        ),
    ];
    for (what, tamper) in cases {
        let copy = tmp(&format!("case-{}", what.replace(' ', "-")));
        copy_dir(dir, &copy);
        tamper(&copy);
        let r = ceremony::verify(&copy);
        assert!(r.is_err(), "{what}: verify accepted it");
        if what == "reordered" {
            assert!(ceremony::finalize(&copy, &copy.join("keys")).is_err());
        }
        let _ = std::fs::remove_dir_all(&copy);
    }
}
