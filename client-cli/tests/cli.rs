//! The `cairn` binary end to end: the walk-through, one-line errors with nonzero exit codes,
//! corrupted blocks on disk, a full disk, and a folder of 100,000 files checked against the
//! reference importer's CID.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cairn(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("CAIRN_REPO")
        .output()
        .unwrap()
}

fn ok(repo: &Path, args: &[&str]) -> String {
    let o = cairn(repo, args);
    assert!(
        o.status.success(),
        "cairn {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Fails with exit code 1 and exactly one `error:` line on stderr; returns that line.
fn fails(repo: &Path, args: &[&str]) -> String {
    let o = cairn(repo, args);
    assert_eq!(o.status.code(), Some(1), "cairn {args:?}: {o:?}");
    let err = String::from_utf8(o.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "cairn {args:?} stderr: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

fn sample(dir: &Path) -> PathBuf {
    let d = dir.join("ds");
    std::fs::create_dir_all(d.join("shards")).unwrap();
    std::fs::write(
        d.join("shards/0.tar"),
        cairn_core::testgen::Gen::bytes(1, 2_500_000),
    )
    .unwrap();
    std::fs::write(d.join("meta.json"), b"{\"n\": 1}").unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn walkthrough() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let ds = sample(t.path());
    let line = ok(&repo, &["--json", "put", s(&ds)]);
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    let root = v["root"].as_str().unwrap().to_string();
    assert!(root.starts_with("bafyb4i"), "{root}"); // CIDv1 dag-pb blake3
    assert_eq!(v["bytes"], 2_500_000 + 8);
    assert!(v["blocks"].as_u64().unwrap() >= 5);
    assert!(v["manifest"].as_str().unwrap().starts_with("bafyr4i")); // dag-cbor blake3
                                                                     // plain output is just the CID, and --only-hash agrees without touching the repo
    assert_eq!(ok(&repo, &["put", s(&ds)]).trim(), root);
    let other = t.path().join("other-repo");
    assert_eq!(ok(&other, &["put", "--only-hash", s(&ds)]).trim(), root);
    assert!(!other.exists());

    let out = t.path().join("out");
    ok(&repo, &["get", &root, "-o", s(&out)]);
    assert_eq!(
        std::fs::read(out.join("shards/0.tar")).unwrap(),
        std::fs::read(ds.join("shards/0.tar")).unwrap()
    );
    assert_eq!(
        ok(&repo, &["cat", &format!("{root}/meta.json")]),
        "{\"n\": 1}"
    );
    assert_eq!(
        ok(&repo, &["cat", &format!("/ipfs/{root}/meta.json")]),
        "{\"n\": 1}"
    );
    let ls = ok(&repo, &["--json", "ls", &root]);
    let names: Vec<String> = ls
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["meta.json", "shards"]);
    let st: Value = serde_json::from_str(&ok(&repo, &["--json", "stat", &root])).unwrap();
    assert_eq!(st["kind"], "directory");
    assert_eq!(st["pinned"], true);
    assert_eq!((st["k"].as_u64(), st["m"].as_u64()), (Some(4), Some(2)));
    let vr: Value = serde_json::from_str(&ok(&repo, &["--json", "verify"])).unwrap();
    assert_eq!(vr["corrupt"].as_array().unwrap().len(), 0);
    assert!(ok(&repo, &["pin", "ls"]).contains(&root));

    let car = t.path().join("ds.car");
    ok(&repo, &["car", "export", &root, "-o", s(&car)]);
    let repo2 = t.path().join("repo2");
    let imp: Value =
        serde_json::from_str(&ok(&repo2, &["--json", "car", "import", s(&car)])).unwrap();
    assert_eq!(imp["roots"][0], root.as_str());
    assert_eq!(
        ok(&repo2, &["cat", &format!("{root}/meta.json")]),
        "{\"n\": 1}"
    );

    ok(&repo, &["pin", "rm", &root]);
    let gc: Value = serde_json::from_str(&ok(&repo, &["--json", "gc"])).unwrap();
    assert!(gc["removed"].as_u64().unwrap() > 0);
    fails(&repo, &["cat", &format!("{root}/meta.json")]);
}

#[test]
fn bad_input_is_one_clear_line_and_exit_1() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let ds = sample(t.path());
    let root = ok(&repo, &["put", s(&ds)]).trim().to_string();
    assert!(fails(&repo, &["put", "/no/such/path"]).contains("No such file"));
    assert!(fails(&repo, &["cat", "bafyNOTACID"]).contains("invalid CID"));
    assert!(fails(
        &repo,
        &["cat", "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco"]
    )
    .contains("not in the repo"));
    assert!(fails(&repo, &["put", "--profile", "nope", s(&ds)]).contains("unknown profile"));
    assert!(fails(&repo, &["put", "-k", "0", s(&ds)]).contains("invalid erasure parameters"));
    assert!(fails(&repo, &["cat", &root]).contains("is a directory"));
    assert!(fails(&repo, &["get", &root, "-o", s(&ds)]).contains("already exists"));
    assert!(fails(&repo, &["ls", &format!("{root}/missing")]).contains("no entry"));
    assert!(fails(
        &repo,
        &[
            "pin",
            "rm",
            "bafkr4icj3sdq34o6p7lapfgoxtset5om3lsxll72uz5cjnrkzmb6aoo3si"
        ]
    )
    .contains("not pinned"));
    let junk = t.path().join("junk.car");
    std::fs::write(&junk, b"\x0fthis is no car file").unwrap();
    assert!(fails(&repo, &["car", "import", s(&junk)]).contains("CAR"));
    // clap's own usage errors also exit nonzero
    let o = cairn(&repo, &["put"]);
    assert_eq!(o.status.code(), Some(2));
    // none of it hurt the repo
    ok(&repo, &["verify"]);
}

#[test]
fn corrupted_blocks_on_disk_are_found_and_repaired() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let ds = sample(t.path());
    let root = ok(&repo, &["put", s(&ds)]).trim().to_string();
    // block bytes live in RocksDB blob files (small blocks) and pack files (large ones)
    let packs = repo.join("blocks").join("packs");
    let files = std::fs::read_dir(repo.join("blocks"))
        .unwrap()
        .chain(std::fs::read_dir(&packs).unwrap());
    let mut hit = 0;
    for e in files {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "blob" || x == "pack") {
            let mut b = std::fs::read(&p).unwrap();
            let at = b.len() / 3;
            b[at] ^= 0xff;
            std::fs::write(&p, b).unwrap();
            hit += 1;
        }
    }
    assert!(hit > 0, "no block files found to corrupt");
    let o = cairn(&repo, &["verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("corrupt "));
    let r: Value = serde_json::from_str(&ok(&repo, &["--json", "repair"])).unwrap();
    assert!(!r["repaired"].as_array().unwrap().is_empty());
    ok(&repo, &["verify"]);
    let out = t.path().join("out");
    ok(&repo, &["get", &root, "-o", s(&out)]);
    assert_eq!(
        std::fs::read(out.join("shards/0.tar")).unwrap(),
        std::fs::read(ds.join("shards/0.tar")).unwrap()
    );
}

/// A tmpfs of a few MiB, unmounted on drop.
struct SmallDisk(PathBuf);

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_repo_stays_consistent() {
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "this test needs to mount a tmpfs (run as root, as CI does)"
    );
    let _disk = SmallDisk(mnt.clone());
    let repo = mnt.join("repo");
    let small = t.path().join("small.txt");
    std::fs::write(&small, b"kept safe").unwrap();
    let root = ok(&repo, &["put", s(&small)]).trim().to_string();
    let big = t.path().join("big.bin");
    std::fs::write(&big, cairn_core::testgen::Gen::bytes(5, 48 << 20)).unwrap();
    let line = fails(&repo, &["put", s(&big)]);
    assert!(line.to_lowercase().contains("no space left"), "{line}");
    // the earlier dataset is intact and nothing half-written is visible
    assert_eq!(ok(&repo, &["cat", &root]), "kept safe");
    assert_eq!(ok(&repo, &["pin", "ls"]).trim(), root);
    ok(&repo, &["verify"]);
    ok(&repo, &["gc"]);
    assert_eq!(ok(&repo, &["cat", &root]), "kept safe");
}

#[test]
fn a_folder_of_100000_files_matches_the_reference_importer() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("root");
    std::fs::create_dir(&d).unwrap();
    // the 'HAMT: 100000 files' case of fixtures/vectors.json
    for i in 0..100_000u64 {
        std::fs::write(
            d.join(format!("{i}.jpg")),
            cairn_core::testgen::Gen::bytes(i, 1 + (i % 5) as usize),
        )
        .unwrap();
    }
    let repo = t.path().join("repo");
    let v2025 = ok(
        &repo,
        &["put", "--only-hash", "--profile", "unixfs-v1-2025", s(&d)],
    );
    assert_eq!(
        v2025.trim(),
        "bafybeihv5khqfbl3vhp2fq5opo7yq3q5hcflnqe65hnh7zjxghoopa2j5a"
    );
    let root = ok(&repo, &["put", s(&d)]);
    assert_eq!(
        root.trim(),
        "bafyb4ih7rtvhnfgivts2lncpj5gi5dr435refrgbsxtmjttcuyspmt3pve"
    );
    assert_eq!(ok(&repo, &["ls", root.trim()]).lines().count(), 100_000);
    let o = cairn(&repo, &["cat", &format!("{}/99999.jpg", root.trim())]);
    assert!(o.status.success());
    assert_eq!(
        o.stdout,
        cairn_core::testgen::Gen::bytes(99_999, 1 + 99_999 % 5)
    );
}

#[test]
fn placement_eval_reports_every_policy_and_size() {
    let t = tempfile::tempdir().unwrap();
    let trace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/traces/cache2k-web07.oracleGeneral.bin.zst");
    let out = ok(
        &t.path().join("repo"),
        &["--json", "placement", "eval", "--trace", s(&trace)],
    );
    let rows: Vec<Value> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(rows.len(), 33); // 11 policies x 3 sizes
    assert!(rows.iter().any(|r| r["policy"] == "engine"));
    for r in &rows {
        for k in [
            "policy",
            "fast_fraction",
            "byte_miss_ratio",
            "object_miss_ratio",
            "p99_latency_ms",
            "bytes_promoted",
            "gap_closed",
        ] {
            assert!(r.get(k).is_some(), "{k} missing in {r}");
        }
        let mr = r["byte_miss_ratio"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&mr));
        // the engine reports its memory per tracked object, the baselines do not
        assert_eq!(
            r["bytes_per_tracked_object"]
                .as_f64()
                .is_some_and(|b| b > 0.0),
            r["policy"] == "engine",
            "{r}"
        );
        match r["policy"].as_str().unwrap() {
            "lru" => assert_eq!(r["gap_closed"], 0.0),
            "belady" => assert_eq!(r["gap_closed"], 1.0),
            _ => {}
        }
    }
    // another seed reruns the engine on another random stream: a valid, different result
    let engine_at = |seed: &str| -> Vec<f64> {
        let out = ok(
            &t.path().join("repo"),
            &[
                "--json",
                "placement",
                "eval",
                "--trace",
                s(&trace),
                "--policies",
                "engine",
                "--seed",
                seed,
            ],
        );
        let rows: Vec<Value> = serde_json::from_str(out.trim()).unwrap();
        rows.iter()
            .map(|r| r["byte_miss_ratio"].as_f64().unwrap())
            .collect()
    };
    let (zero, three) = (engine_at("0"), engine_at("3"));
    let default: Vec<f64> = rows
        .iter()
        .filter(|r| r["policy"] == "engine")
        .map(|r| r["byte_miss_ratio"].as_f64().unwrap())
        .collect();
    assert_eq!(zero, default);
    assert_ne!(three, zero);
    assert!(three.iter().all(|mr| (0.0..=1.0).contains(mr)));
    // a file that is not a trace, and an unknown policy: one clear line each
    let junk = t.path().join("junk");
    std::fs::write(&junk, b"not a trace at all").unwrap();
    assert!(fails(
        &t.path().join("repo"),
        &["placement", "eval", "--trace", s(&junk)]
    )
    .contains("truncated"));
    assert!(fails(
        &t.path().join("repo"),
        &[
            "placement",
            "eval",
            "--trace",
            s(&trace),
            "--policies",
            "nope"
        ]
    )
    .contains("unknown policy"));
}

/// A hostile dataset (a CAR anyone could hand out) never makes `get` write outside its output
/// folder: a directory listing one name twice (a symlink to a file outside, then a file of the
/// same name) is refused with the directory's CID, and a lone symlink is written as a link,
/// never followed (docs/threat-model.md).
#[test]
fn hostile_dags_never_write_outside_the_output_folder() {
    use cairn_core::block::{HashAlg, DAG_PB, RAW};
    use cairn_core::dagpb::{PbLink, PbNode};
    use cairn_core::unixfs::{DataType, UnixFsData};
    use cairn_core::Block;
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let victim = t.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let pb = |links: Vec<(&str, &Block)>, data: UnixFsData| {
        let node = PbNode {
            links: links
                .into_iter()
                .map(|(name, b)| PbLink {
                    hash: b.cid,
                    name: Some(name.to_string()),
                    tsize: Some(b.data.len() as u64),
                })
                .collect(),
            data: Some(data.encode()),
        };
        Block::new(HashAlg::Sha2_256, DAG_PB, node.encode())
    };
    let mut link = UnixFsData::new(DataType::Symlink);
    link.data = victim.to_string_lossy().as_bytes().to_vec();
    let symlink = pb(vec![], link);
    let evil = Block::new(HashAlg::Sha2_256, RAW, b"overwritten".to_vec());
    let car_of = |root: &Block, blocks: &[&Block]| {
        let mut out = cairn_core::car::header(&[root.cid]);
        for b in blocks {
            cairn_core::car::section(b, &mut out);
        }
        out
    };
    // (what, directory links, the error or none)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a Block)>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "a symlink and a file of one name",
            vec![("x", &symlink), ("x", &evil)],
            Some("duplicate"),
        ),
        ("a lone symlink", vec![("x", &symlink)], None),
    ];
    for (i, (what, links, error)) in cases.into_iter().enumerate() {
        let dir = pb(links, UnixFsData::new(DataType::Directory));
        let car = t.path().join(format!("hostile-{i}.car"));
        std::fs::write(&car, car_of(&dir, &[&dir, &symlink, &evil])).unwrap();
        let out = t.path().join(format!("out-{i}"));
        let imported = cairn(&repo, &["car", "import", s(&car)]);
        let got = cairn(&repo, &["get", &dir.cid.to_string(), "-o", s(&out)]);
        match error {
            Some(e) => {
                assert!(!got.status.success(), "{what}: get succeeded");
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&imported.stderr),
                    String::from_utf8_lossy(&got.stderr)
                );
                assert!(text.contains(e), "{what}: {text}");
                assert!(text.contains(&dir.cid.to_string()), "{what}: {text}");
            }
            None => {
                assert!(got.status.success(), "{what}: {got:?}");
                let x = out.join("x");
                let meta = std::fs::symlink_metadata(&x).unwrap();
                assert!(
                    meta.file_type().is_symlink(),
                    "{what}: not written as a link"
                );
                assert_eq!(std::fs::read_link(&x).unwrap(), victim);
            }
        }
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"precious",
            "{what}: the file outside the output folder was written"
        );
    }
}
