//! `cairn bench window`: what a window proof costs a node holding `--gib` GiB of sealed
//! sectors (issue 18, item 3). The sectors are stored as a node stores them (the replica and
//! the top of its tree, in the repo's RocksDB `replicas` table), an auditor's sample of
//! `batch` sectors is drawn at random, and the proof is made the way the node makes it
//! (`audit::prove_window_with` over `post::StoredReplica`): the CPU seconds of each window
//! proof are compared with a window's CPU (window length x cores).

use super::report::{report, verdict};
use anyhow::{anyhow, bail, Context, Result};
use ark_bn254::Bn254;
use ark_groth16::Groth16;
use ark_snark::SNARK;
use ark_std::rand::{Rng, RngCore, SeedableRng};
use cairn_proofs::audit::{self, decode_proof, NetParams};
use cairn_proofs::post::{self, Openable, StoredReplica, KEPT_FROM};
use cairn_proofs::sdr;
use cairn_repo::store::{Batch, Durability, Table};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// The node's defaults: 10 challenges per sector, 2 sectors per window proof, 60 s windows.
const CHALLENGES: usize = 10;
const BATCH: usize = 2;
const WINDOW_SECS: f64 = 60.0;
/// Distinct sectors actually sealed; the others are copies of them (a window's cost depends on
/// which sectors it samples and their size, not on their contents).
const DISTINCT: usize = 2;

/// This process's CPU time so far (user + system), from `/proc/self/stat` (in clock ticks of
/// 1/100 s, Linux's fixed `USER_HZ`).
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // the fields after the command name, which is in parentheses and may hold spaces
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("/proc/self/stat has no command name"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name
    let ticks = |i: usize| -> Result<u64> {
        f.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("/proc/self/stat field {i} unreadable"))
    };
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// Runs the benchmark: `gib` GiB in sectors of `sector_mib` MiB, `windows` window proofs.
pub fn bench_window(
    gib: u64,
    sector_mib: usize,
    windows: usize,
    dir: Option<&Path>,
    json: bool,
) -> Result<()> {
    if !sector_mib.is_power_of_two() || !(1..=1024).contains(&sector_mib) {
        bail!("--sector-mib must be a power of two from 1 to 1024");
    }
    if gib == 0 || gib > 1024 || windows == 0 || windows > 100 {
        bail!("--gib must be 1 to 1024 and --windows 1 to 100");
    }
    let params = NetParams {
        sector_size: sector_mib << 20,
        layers: 2,
        challenges: CHALLENGES,
        batch: BATCH,
        seal_challenges: 2,
    };
    params.check()?;
    let count = (gib as usize * 1024).div_ceil(sector_mib);
    let scratch = match dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("making a scratch directory")?;
    let repo = cairn_repo::Repo::open(&scratch.path().join("repo"))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rng = ark_std::rand::rngs::StdRng::seed_from_u64(18);
    let p = params.sector();

    // seal the distinct sectors (labels and trees; their seal proofs play no part here)
    let t = Instant::now();
    let mut sealed = Vec::new();
    for k in 0..DISTINCT {
        let mut data = vec![0u8; p.capacity()];
        rng.fill_bytes(&mut data);
        let (s, work) = sdr::seal_keeping_work(&p, &data, &[k as u8; 32], k as u64, &[7; 32])?;
        let value = StoredReplica::value(&s.replica, &work.replica.top(KEPT_FROM));
        sealed.push((s, value));
    }
    let seal_secs = t.elapsed().as_secs_f64();

    // store `count` sectors the way a node does
    let t = Instant::now();
    for id in 0..count {
        let mut b = Batch::new();
        b.put(
            Table::Replicas,
            (id as u64).to_be_bytes().to_vec(),
            sealed[id % DISTINCT].1.clone(),
        );
        repo.store().write(b, Durability::Deferred)?;
    }
    let store_secs = t.elapsed().as_secs_f64();
    let stored_bytes = count as u64 * sealed[0].1.len() as u64;

    let keys_dir = scratch.path().join("keys");
    let t = Instant::now();
    let keys = params.post_keys(&keys_dir)?;
    let setup_secs = t.elapsed().as_secs_f64();

    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    let mut verify = Duration::MAX;
    for w in 0..windows as u64 {
        let ids: Vec<usize> = (0..BATCH).map(|_| rng.gen_range(0..count)).collect();
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let (c0, t0) = (cpu_time()?, Instant::now());
        let mut loaded = Vec::new();
        for &id in &ids {
            let value = repo
                .store()
                .table_get(Table::Replicas, &(id as u64).to_be_bytes())?
                .ok_or_else(|| anyhow!("sector {id} is missing"))?;
            let s = &sealed[id % DISTINCT].0;
            let comms = (s.comm_c, s.comm_r_last, s.comm_r);
            let stored = StoredReplica::from_value(value, p.nodes, comms)
                .ok_or_else(|| anyhow!("sector {id} is stored wrong"))?;
            loaded.push((id as u64, stored));
        }
        let refs: Vec<(u64, &dyn Openable)> = loaded
            .iter()
            .map(|(i, s)| (*i, s as &dyn Openable))
            .collect();
        let proof = audit::prove_window_with(&params, &keys, &nonce, w, &refs)?;
        cpu.push((cpu_time()? - c0).as_secs_f64());
        wall.push(t0.elapsed().as_secs_f64());
        let t = Instant::now();
        let comm_rs: Vec<(u64, ark_bn254::Fr)> =
            loaded.iter().map(|(i, s)| (*i, s.comm_r)).collect();
        let inputs = post::public_inputs(params.post_shape(), &nonce, w, &comm_rs);
        let ok =
            Groth16::<Bn254>::verify_with_processed_vk(&keys.pvk, &inputs, &decode_proof(&proof)?)
                .unwrap_or(false);
        verify = verify.min(t.elapsed());
        if !ok {
            bail!("a window proof made here does not verify");
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (cpu_mean, wall_mean) = (mean(&cpu), mean(&wall));
    let share = cpu_mean / (WINDOW_SECS * threads as f64);
    let verify_ms = verify.as_secs_f64() * 1e3;
    report(
        json,
        "window",
        json!({"stored_bytes": stored_bytes, "sectors": count, "sector_bytes": params.sector_size,
            "distinct_sectors": DISTINCT, "batch": BATCH, "challenges": CHALLENGES,
            "threads": threads, "window_s": WINDOW_SECS, "seal_s": seal_secs,
            "store_s": store_secs, "setup_s": setup_secs, "windows": windows,
            "proof_cpu_s": cpu, "proof_wall_s": wall, "proof_cpu_mean_s": cpu_mean,
            "cpu_share": share, "target_cpu_share": 0.10, "verify_ms": verify_ms,
            "proof_bytes": audit::PROOF_LEN, "kept_tree_from_level": KEPT_FROM}),
        format!(
            "window proofs for a node holding {:.1} GiB ({count} sectors of {sector_mib} MiB, \
             copies of {DISTINCT} sealed; kept tree levels from {KEPT_FROM} up): {BATCH} sampled \
             sectors x {CHALLENGES} challenges, {windows} windows: {cpu_mean:.2} CPU s \
             ({wall_mean:.2} s wall) per proof, {:.1} % of a {WINDOW_SECS:.0} s window on \
             {threads} cores (target <= 10 %: {}); verify {verify_ms:.2} ms (target <= 3 ms: {}); \
             proof {} bytes. Setup: sealing {seal_secs:.1} s, storing {store_secs:.1} s, keys \
             {setup_secs:.1} s",
            stored_bytes as f64 / (1u64 << 30) as f64,
            share * 100.0,
            verdict(share <= 0.10),
            verdict(verify_ms <= 3.0),
            audit::PROOF_LEN,
        ),
    );
    Ok(())
}
