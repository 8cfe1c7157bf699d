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
    let o = cairn(
        &keys,
        &[
            "proofs",
            "verify-seal",
            "--commitments",
            &commitments,
            "--proof",
            &s(&sec.join("seal.proof")),
        ],
    );
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
    // the seal proof is not a PoSt proof
    assert_eq!(
        verify(&nonce, "3", &sec.join("seal.proof")).status.code(),
        Some(1)
    );
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
