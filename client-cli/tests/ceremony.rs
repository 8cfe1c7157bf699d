//! `cairn ceremony` end to end: a two-contributor ceremony at a small sector size, each phase
//! ended by a beacon, `verify`
//! (exit 0, and 1 on a tampered transcript), `finalize` (prints the pin), then
//! `cairn proofs seal|post|verify|verify-seal --keys` under the finalized keys, and a wrong pin
//! refused.

use std::path::Path;
use std::process::{Command, Output};

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_ceremony_from_the_command_line_makes_keys_the_proofs_commands_use() {
    let d = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let dir = s(&d.path().join("ceremony"));
    ok(&cairn(&[
        "ceremony",
        "new",
        "--dir",
        &dir,
        "--sector-size",
        "256",
        "--layers",
        "1",
        "--challenges",
        "2",
        "--batch",
        "1",
        "--seal-challenges",
        "1",
    ]));
    // a second `new` in the same directory is refused
    assert!(!cairn(&["ceremony", "new", "--dir", &dir]).status.success());
    for _ in 0..2 {
        let out = ok(&cairn(&["ceremony", "contribute", "--dir", &dir]));
        // the contribution's hash: 64 hex digits before the file name
        assert!(out
            .lines()
            .any(|l| l.split_whitespace().next().map(str::len) == Some(64)));
    }
    // a tampered copy of phase 1 does not verify: exit 1
    let copy = d.path().join("tampered");
    std::fs::create_dir_all(copy.join("phase1")).unwrap();
    std::fs::copy(
        d.path().join("ceremony/ceremony.txt"),
        copy.join("ceremony.txt"),
    )
    .unwrap();
    for f in ["0000.bin", "0001.bin", "0002.bin"] {
        std::fs::copy(
            d.path().join("ceremony/phase1").join(f),
            copy.join("phase1").join(f),
        )
        .unwrap();
    }
    let p = copy.join("phase1/0002.bin");
    let mut b = std::fs::read(&p).unwrap();
    let n = b.len();
    b[n - 100] ^= 1;
    std::fs::write(&p, b).unwrap();
    assert_eq!(
        cairn(&["ceremony", "verify", "--dir", &s(&copy)])
            .status
            .code(),
        Some(1)
    );

    // phase 2 opens after phase 1's beacon; keys come after phase 2's
    assert!(!cairn(&["ceremony", "phase2", "--dir", &dir])
        .status
        .success());
    let beacon = |value: &str| {
        ok(&cairn(&[
            "ceremony",
            "beacon",
            "--dir",
            &dir,
            "--value",
            value,
            "--iterations-exp",
            "4",
        ]))
    };
    beacon("0badc0ffee");
    ok(&cairn(&["ceremony", "phase2", "--dir", &dir]));
    for _ in 0..2 {
        ok(&cairn(&["ceremony", "contribute", "--dir", &dir]));
    }
    beacon("c0ffee");
    let out = ok(&cairn(&["ceremony", "verify", "--dir", &dir]));
    assert!(out.contains("phase 1 beacon 3"), "{out}");
    assert!(out.contains("phase 2 contribution 2"), "{out}");
    assert!(out.contains("phase 2 beacon 3"), "{out}");
    let keys = s(&d.path().join("keys"));
    let pin = ok(&cairn(&[
        "ceremony", "finalize", "--dir", &dir, "--out", &keys,
    ]));
    let pin = pin.trim().to_string();
    assert_eq!(pin.len(), 64);

    let input = d.path().join("in.bin");
    std::fs::write(&input, cairn_core::testgen::Gen::bytes(4, 200)).unwrap();
    let sec = s(&d.path().join("sec"));
    let with_keys = |args: &[&str]| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--keys", &keys, "--keys-sha256", &pin]);
        cairn(&a)
    };
    ok(&with_keys(&[
        "proofs",
        "seal",
        "--input",
        &s(&input),
        "--sector-size",
        "256",
        "--out",
        &sec,
    ]));
    let commitments = format!("{sec}/commitments.json");
    let seal_proof = format!("{sec}/seal.proof");
    let o = with_keys(&[
        "proofs",
        "verify-seal",
        "--commitments",
        &commitments,
        "--proof",
        &seal_proof,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let nonce = "22".repeat(32);
    let proof = s(&d.path().join("w.proof"));
    ok(&with_keys(&[
        "proofs", "post", "--sealed", &sec, "--nonce", &nonce, "--window", "4", "--out", &proof,
    ]));
    let verify = |window: &str| {
        with_keys(&[
            "proofs",
            "verify",
            "--commitments",
            &commitments,
            "--nonce",
            &nonce,
            "--window",
            window,
            "--proof",
            &proof,
        ])
        .status
        .code()
    };
    assert_eq!(verify("4"), Some(0));
    assert_eq!(verify("5"), Some(1));
    // a pin the manifest does not match: the keys are not used
    let o = cairn(&[
        "proofs",
        "verify-seal",
        "--commitments",
        &commitments,
        "--proof",
        &seal_proof,
        "--keys",
        &keys,
        "--keys-sha256",
        &"0".repeat(64),
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("digest"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
