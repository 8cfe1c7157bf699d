//! `cairn proofs`: seal, prove a window, verify; exit 0 valid, 1 invalid, 2 malformed input,
//! one line each.

use std::path::Path;
use std::process::{Command, Output};

fn cairn(keys: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_KEYS", keys)
        .output()
        .unwrap()
}

#[test]
fn seal_post_verify_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    let input = d.path().join("in.bin");
    std::fs::write(&input, cairn_core::testgen::Gen::bytes(3, 1500)).unwrap();
    let sec = d.path().join("sec");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let o = cairn(
        &keys,
        &[
            "proofs",
            "seal",
            "--input",
            &s(&input),
            "--sector-size",
            "2048",
            "--out",
            &s(&sec),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let commitments = s(&sec.join("commitments.json"));
    let verify_seal = |p: &Path| {
        cairn(
            &keys,
            &[
                "proofs",
                "verify-seal",
                "--commitments",
                &commitments,
                "--proof",
                &s(p),
            ],
        )
    };
    let o = verify_seal(&sec.join("seal.proof"));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let nonce = "11".repeat(32);
    let proof = d.path().join("w3.proof");
    let o = cairn(
        &keys,
        &[
            "proofs",
            "post",
            "--sealed",
            &s(&sec),
            "--nonce",
            &nonce,
            "--window",
            "3",
            "--out",
            &s(&proof),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verify = |nonce: &str, window: &str, proof: &Path| {
        cairn(
            &keys,
            &[
                "proofs",
                "verify",
                "--commitments",
                &commitments,
                "--nonce",
                nonce,
                "--window",
                window,
                "--proof",
                &s(proof),
            ],
        )
    };
    assert_eq!(verify(&nonce, "3", &proof).status.code(), Some(0));
    // replay into the next window, another nonce: invalid
    let o = verify(&nonce, "4", &proof);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    assert_eq!(verify(&"12".repeat(32), "3", &proof).status.code(), Some(1));
    // the seal proof's Groth16 part is not a PoSt proof; the whole seal proof file is not
    // even shaped like one
    let seal_bytes = std::fs::read(sec.join("seal.proof")).unwrap();
    let groth = d.path().join("groth.proof");
    std::fs::write(&groth, &seal_bytes[..128]).unwrap();
    assert_eq!(verify(&nonce, "3", &groth).status.code(), Some(1));
    assert_eq!(
        verify(&nonce, "3", &sec.join("seal.proof")).status.code(),
        Some(2)
    );
    // a seal proof with one revealed label changed is invalid; cut inside a label, or with a
    // label missing, it is malformed
    let bad_seal = d.path().join("bad-seal.proof");
    let mut b = seal_bytes.clone();
    b[128] ^= 0x01;
    std::fs::write(&bad_seal, &b).unwrap();
    let o = verify_seal(&bad_seal);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for cut in [seal_bytes.len() - 5, seal_bytes.len() - 32, 100] {
        std::fs::write(&bad_seal, &seal_bytes[..cut]).unwrap();
        assert_eq!(
            verify_seal(&bad_seal).status.code(),
            Some(2),
            "cut at {cut}"
        );
    }
    // malformed: bad nonce, random or truncated proof bytes, missing file
    for bad in ["zz", "11"] {
        let o = verify(bad, "3", &proof);
        assert_eq!(o.status.code(), Some(2));
        assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    }
    let junk = d.path().join("junk.proof");
    std::fs::write(&junk, cairn_core::testgen::Gen::bytes(9, 128)).unwrap();
    assert_eq!(verify(&nonce, "3", &junk).status.code(), Some(2));
    let bytes = std::fs::read(&proof).unwrap();
    std::fs::write(&junk, &bytes[..100]).unwrap();
    assert_eq!(verify(&nonce, "3", &junk).status.code(), Some(2));
    assert_eq!(
        verify(&nonce, "3", &d.path().join("absent")).status.code(),
        Some(2)
    );
    // flipped proof bytes: malformed or invalid, never valid
    for pos in [0usize, 40, 127] {
        let mut b = bytes.clone();
        b[pos] ^= 0x04;
        std::fs::write(&junk, &b).unwrap();
        let code = verify(&nonce, "3", &junk).status.code();
        assert!(matches!(code, Some(1) | Some(2)), "flip at {pos}: {code:?}");
    }
}
