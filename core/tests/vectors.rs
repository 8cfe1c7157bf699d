//! Root CIDs against the IPFS reference importer (`fixtures/vectors.json`, made by
//! `fixtures/reference/gen.mjs` with npm `ipfs-unixfs-importer`), for every profile and the
//! boundary sizes each case names (empty, one byte, chunk-1, chunk, chunk+1, links*chunk,
//! links*chunk+1, deeper trees), plus flat, nested, unicode-named and HAMT-sharded directories.

use cairn_core::block::HashAlg;
use cairn_core::importer::{build_directory, DirEntry, Entry, FileImporter};
use cairn_core::profile::{Profile, ShardSplit};
use cairn_core::testgen::Gen;
use serde_json::Value;
use std::collections::BTreeMap;

fn profile(params: &Value) -> Profile {
    let mut p = Profile::cairn_v1();
    p.hash = match params["hash"].as_str().unwrap() {
        "blake3" => HashAlg::Blake3,
        _ => HashAlg::Sha2_256,
    };
    p.chunk_size = params["chunk"].as_u64().unwrap() as usize;
    p.max_links = params["links"].as_u64().unwrap() as usize;
    p.shard_split = match params["split"].as_str().unwrap() {
        "links-bytes" => ShardSplit::LinksBytes,
        _ => ShardSplit::BlockBytes,
    };
    p
}

fn import_file(p: &Profile, seed: u64, size: u64) -> Entry {
    // generator pieces are 1 MiB in the JS; chunks are a divisor or multiple of 4, so the byte
    // stream is the same whichever way it is cut
    let mut g = Gen::new(seed, size);
    let mut f = FileImporter::new(p);
    let mut sink = Vec::new();
    let mut batch = Vec::new();
    while let Some(c) = g.next_chunk(p.chunk_size) {
        batch.push(c.into());
        if batch.len() == 8 {
            f.add_chunks(std::mem::take(&mut batch), &mut sink);
            sink.clear();
        }
    }
    f.add_chunks(batch, &mut sink);
    f.finish(&mut sink)
}

#[derive(Default)]
struct Dir {
    children: BTreeMap<String, Node>,
}

enum Node {
    File(u64, u64),
    Dir(Dir),
}

fn expand(files: &[Value]) -> Vec<(String, i64, u64)> {
    let mut out = Vec::new();
    for f in files {
        let a = f.as_array().unwrap();
        if a[0] == "range" {
            let (prefix, suffix) = (a[1].as_str().unwrap(), a[2].as_str().unwrap());
            let (count, m, add, seed) = (
                a[3].as_u64().unwrap(),
                a[4].as_u64().unwrap(),
                a[5].as_u64().unwrap(),
                a[6].as_u64().unwrap(),
            );
            for i in 0..count {
                out.push((
                    format!("{prefix}{i}{suffix}"),
                    (i % m + add) as i64,
                    i + seed,
                ));
            }
        } else {
            out.push((
                a[0].as_str().unwrap().to_string(),
                a[1].as_i64().unwrap(),
                a[2].as_u64().unwrap(),
            ));
        }
    }
    out
}

fn build(p: &Profile, d: &Dir) -> Entry {
    let entries = d
        .children
        .iter()
        .map(|(name, n)| match n {
            Node::File(size, seed) => DirEntry {
                name: name.clone(),
                entry: import_file(p, *seed, *size),
                counts_in_estimate: true,
            },
            Node::Dir(sub) => DirEntry {
                name: name.clone(),
                entry: build(p, sub),
                counts_in_estimate: sub.children.is_empty(),
            },
        })
        .collect();
    build_directory(p, entries, &mut Vec::new()).unwrap()
}

fn import_dir(p: &Profile, files: &[Value]) -> Entry {
    let mut root = Dir::default();
    for (path, size, seed) in expand(files) {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut d = &mut root;
        for (i, part) in parts.iter().enumerate() {
            let last = i == parts.len() - 1;
            if last && size >= 0 {
                d.children
                    .insert(part.to_string(), Node::File(size as u64, seed));
            } else {
                let n = d
                    .children
                    .entry(part.to_string())
                    .or_insert_with(|| Node::Dir(Dir::default()));
                let Node::Dir(sub) = n else {
                    panic!("file and dir share a name")
                };
                d = sub;
            }
        }
    }
    build(p, &root)
}

#[test]
fn root_cids_match_reference_importer() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/vectors.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 60);
    let mut failures = Vec::new();
    for t in vectors {
        let p = profile(&t["params"]);
        let got = match t["kind"].as_str().unwrap() {
            "file" => import_file(&p, t["seed"].as_u64().unwrap(), t["size"].as_u64().unwrap()),
            _ => import_dir(&p, t["files"].as_array().unwrap()),
        };
        let want = t["cid"].as_str().unwrap();
        if got.cid.to_string() != want {
            failures.push(format!(
                "{} / {}: got {} want {want}",
                t["profile"], t["what"], got.cid
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn builtin_profiles_match_their_vectors() {
    // The named profiles carry exactly the parameters the vectors were made with.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/vectors.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    for t in v["vectors"].as_array().unwrap() {
        if let Ok(named) = Profile::by_name(t["profile"].as_str().unwrap()) {
            let p = profile(&t["params"]);
            assert_eq!(
                (
                    named.hash,
                    named.chunk_size,
                    named.max_links,
                    named.shard_split
                ),
                (p.hash, p.chunk_size, p.max_links, p.shard_split)
            );
        }
    }
}
