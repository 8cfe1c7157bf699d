//! `cairn bench proofs`: constraints, setup, prove and verify times and proof size of the
//! window proof (PoSt) and the seal proof, and native labelling throughput against arkworks'
//! reference Poseidon sponge computing the very same labels, in the same run.

use super::report::{report, verdict};
use anyhow::{bail, Context, Result};
use ark_bn254::{Bn254, Fr};
use ark_crypto_primitives::sponge::poseidon::{PoseidonConfig, PoseidonSponge};
use ark_crypto_primitives::sponge::CryptographicSponge;
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use ark_snark::SNARK;
use ark_std::rand::{RngCore, SeedableRng};
use cairn_proofs::audit::{encode_proof, graph_seed, DEV_SETUP_SEED};
use cairn_proofs::merkle::MerkleTree;
use cairn_proofs::porep::{self, SealCircuit};
use cairn_proofs::poseidon::{self, hash, Domain};
use cairn_proofs::post::{self, PostCircuit, Shape, DEFAULT_CHALLENGES};
use cairn_proofs::sdr::{self, Sealed, SectorParams};
use serde_json::json;
use std::time::{Duration, Instant};

fn constraints<C: ConstraintSynthesizer<Fr>>(c: C) -> Result<usize> {
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_mode(ark_relations::gr1cs::SynthesisMode::Setup);
    c.generate_constraints(cs.clone())
        .map_err(|e| anyhow::anyhow!("synthesis: {e}"))?;
    Ok(cs.num_constraints())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the proofs benchmarks.
pub fn run(post_depth: u32, seal_sector: usize, label_sector: usize, json: bool) -> Result<()> {
    if !(4..=24).contains(&post_depth) {
        bail!("--post-depth must be between 4 and 24");
    }
    for (what, s) in [
        ("--seal-sector", seal_sector),
        ("--label-sector", label_sector),
    ] {
        if !s.is_power_of_two() || !(1 << 10..=1 << 26).contains(&s) {
            bail!("{what} must be a power of two between 1 KiB and 64 MiB");
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rng = ark_std::rand::rngs::StdRng::seed_from_u64(7);
    post_bench(post_depth, threads, &mut rng, json)?;
    seal_bench(seal_sector, threads, &mut rng, json)?;
    label_bench(label_sector, json)
}

fn post_bench(
    depth: u32,
    threads: usize,
    rng: &mut ark_std::rand::rngs::StdRng,
    json: bool,
) -> Result<()> {
    let n = 1usize << depth;
    let shape = Shape {
        sectors: 1,
        depth: depth as usize,
        challenges: DEFAULT_CHALLENGES,
    };
    // the PoSt circuit opens replica leaves against comm_r_last and checks comm_r; how the
    // replica was labelled does not change its cost, so a random replica stands in for a
    // sealed one (sealing 2^20 leaves takes minutes and is measured below per byte)
    let t = Instant::now();
    let replica: Vec<Fr> = (0..n).map(|_| Fr::from(rng.next_u64())).collect();
    let tree = MerkleTree::new(&replica)?;
    let comm_c = Fr::from(rng.next_u64());
    let comm_r_last = tree.root();
    let sealed = Sealed {
        replica,
        replica_id: Fr::from(1u64),
        comm_d: Fr::from(2u64),
        comm_c,
        comm_r_last,
        comm_r: hash(Domain::CommR, &[comm_c, comm_r_last]),
    };
    let tree_time = t.elapsed();
    let cons = constraints(PostCircuit::blank(shape))?;
    let t = Instant::now();
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(
        PostCircuit::blank(shape),
        &mut ark_std::rand::rngs::StdRng::seed_from_u64(DEV_SETUP_SEED),
    )
    .map_err(|e| anyhow::anyhow!("setup: {e}"))?;
    let setup = t.elapsed();
    let pvk = Groth16::<Bn254>::process_vk(&vk).map_err(|e| anyhow::anyhow!("{e}"))?;
    let nonce = [9u8; 32];
    let window = 42;
    let mut best_prove = Duration::MAX;
    let mut witness = Duration::MAX;
    let mut proof = None;
    for _ in 0..3 {
        let t = Instant::now();
        let circuit = PostCircuit::prove_with_trees(shape, &nonce, window, &[(5, &sealed, &tree)])?;
        let w = t.elapsed();
        let t = Instant::now();
        let p = Groth16::<Bn254>::prove(&pk, circuit, rng)
            .map_err(|e| anyhow::anyhow!("proving: {e}"))?;
        let d = t.elapsed();
        if d < best_prove {
            best_prove = d;
            witness = w;
        }
        proof = Some(p);
    }
    let proof = proof.context("no proof")?;
    let inputs = post::public_inputs(shape, &nonce, window, &[(5, sealed.comm_r)]);
    let runs = 200;
    let t = Instant::now();
    for _ in 0..runs {
        if !Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs, &proof).unwrap_or(false) {
            bail!("a PoSt proof made here does not verify");
        }
    }
    let verify = t.elapsed() / runs;
    // the verifier's whole job: recompute the challenges, then check the proof
    let t = Instant::now();
    for _ in 0..runs {
        let inputs = post::public_inputs(shape, &nonce, window, &[(5, sealed.comm_r)]);
        let _ = Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs, &proof);
    }
    let verify_all = t.elapsed() / runs;
    let size = encode_proof(&proof).len();
    let prove_ok = best_prove.as_secs_f64() <= 4.0;
    let verify_ok = ms(verify_all) <= 3.0;
    report(
        json,
        "proofs-post",
        json!({"leaves": n, "challenges": DEFAULT_CHALLENGES, "constraints": cons,
            "setup_s": setup.as_secs_f64(), "tree_s": tree_time.as_secs_f64(),
            "openings_s": witness.as_secs_f64(), "prove_s": best_prove.as_secs_f64(),
            "verify_ms": ms(verify), "verify_with_challenges_ms": ms(verify_all),
            "proof_bytes": size, "threads": threads,
            "prove_target_s": 4.0, "verify_target_ms": 3.0}),
        format!(
            "PoSt, 1 sector of 2^{depth} leaves, {DEFAULT_CHALLENGES} challenges: {cons} constraints; setup {:.1} s; \
             replica tree {:.1} s (built once, at sealing); openings {:.3} s (from the kept tree); prove {:.2} s on {threads} threads \
             (target <= 4 s: {}); verify {:.2} ms, {:.2} ms with the challenges recomputed (target <= 3 ms: {}); \
             proof {size} bytes (target 128: {})",
            setup.as_secs_f64(),
            tree_time.as_secs_f64(),
            witness.as_secs_f64(),
            best_prove.as_secs_f64(),
            verdict(prove_ok),
            ms(verify),
            ms(verify_all),
            verdict(verify_ok),
            verdict(size == 128),
        ),
    );
    Ok(())
}

fn seal_bench(
    sector: usize,
    threads: usize,
    rng: &mut ark_std::rand::rngs::StdRng,
    json: bool,
) -> Result<()> {
    let p = SectorParams {
        nodes: sector / 32,
        layers: 2,
        graph_seed: graph_seed(),
    };
    let k = 2;
    let mut data = vec![0u8; p.capacity()];
    rng.fill_bytes(&mut data);
    let t = Instant::now();
    let (sealed, labels) = sdr::seal_keeping_labels(&p, &data, &[1; 32], 0, &[2; 32])?;
    let seal_time = t.elapsed();
    let cons = constraints(SealCircuit::blank(p.clone(), k))?;
    let t = Instant::now();
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(
        SealCircuit::blank(p.clone(), k),
        &mut ark_std::rand::rngs::StdRng::seed_from_u64(DEV_SETUP_SEED),
    )
    .map_err(|e| anyhow::anyhow!("setup: {e}"))?;
    let setup = t.elapsed();
    let pvk = Groth16::<Bn254>::process_vk(&vk).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut best = Duration::MAX;
    let mut proof = None;
    for _ in 0..2 {
        let t = Instant::now();
        let c = SealCircuit::prove_with_labels(&p, k, &data, &sealed, &labels)?;
        let pr = Groth16::<Bn254>::prove(&pk, c, rng).map_err(|e| anyhow::anyhow!("{e}"))?;
        best = best.min(t.elapsed());
        proof = Some(pr);
    }
    let proof = proof.context("no proof")?;
    let inputs = porep::public_inputs(&p, k, sealed.replica_id, sealed.comm_d, sealed.comm_r);
    let t = Instant::now();
    let ok = Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs, &proof).unwrap_or(false);
    let verify = t.elapsed();
    if !ok {
        bail!("a seal proof made here does not verify");
    }
    report(
        json,
        "proofs-seal",
        json!({"sector_bytes": sector, "layers": 2, "challenges": k, "constraints": cons,
            "label_and_commit_s": seal_time.as_secs_f64(), "setup_s": setup.as_secs_f64(),
            "prove_s": best.as_secs_f64(), "verify_ms": ms(verify), "threads": threads,
            "prove_target_s": 5.0}),
        format!(
            "seal proof, {} KiB sector, 2 layers, {k} challenges: {cons} constraints; labelling + commitments {:.2} s; \
             setup {:.1} s; prove {:.2} s on {threads} threads (target <= 5 s: {}); verify {:.2} ms",
            sector >> 10,
            seal_time.as_secs_f64(),
            setup.as_secs_f64(),
            best.as_secs_f64(),
            verdict(best.as_secs_f64() <= 5.0),
            ms(verify),
        ),
    );
    Ok(())
}

fn label_bench(sector: usize, json: bool) -> Result<()> {
    let p = SectorParams {
        nodes: sector / 32,
        layers: 2,
        graph_seed: graph_seed(),
    };
    let rid = Fr::from(12345u64);
    let params = poseidon::params();
    let cfg = PoseidonConfig::new(
        poseidon::FULL_ROUNDS,
        poseidon::PARTIAL_ROUNDS,
        5,
        params.mds.clone(),
        params.ark.clone(),
        2,
        1,
    );
    // the sponge with our domain tag and length in the capacity element computes exactly
    // H_Label; the two labellings must agree
    let mut reference = |x: &[Fr]| -> Fr {
        let mut s = PoseidonSponge::<Fr>::new(&cfg);
        s.state[0] = Fr::from(Domain::Label as u64) + Fr::from(256u64) * Fr::from(x.len() as u64);
        s.absorb(&x);
        s.squeeze_field_elements::<Fr>(1)
            .first()
            .copied()
            .unwrap_or_default()
    };
    let t = Instant::now();
    let theirs = sdr::labels_with(&p, rid, &mut reference)?;
    let ref_time = t.elapsed();
    let mut ours_best = Duration::MAX;
    let mut ours = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        ours = sdr::labels(&p, rid)?;
        ours_best = ours_best.min(t.elapsed());
    }
    if ours != theirs {
        bail!("native labels differ from the reference sponge's");
    }
    // a node seals the sectors it has pending together: eight sectors on the same graph,
    // one per replica id, labelled at once (one per AVX-512 IFMA lane where the CPU has it)
    let lanes = 8usize;
    let rids: Vec<Fr> = (0..lanes as u64).map(|k| rid + Fr::from(k)).collect();
    let mut batch_best = Duration::MAX;
    let mut batch = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        batch = sdr::labels_many(&p, &rids)?;
        batch_best = batch_best.min(t.elapsed());
    }
    // lane 0 against the reference sponge, the last lane against the one-sector labelling
    if batch.first() != Some(&theirs) {
        bail!("labels of the first sector of a batch differ from the reference sponge's");
    }
    if batch.last() != Some(&sdr::labels(&p, rids[lanes - 1])?) {
        bail!("labels of the last sector of a batch differ from labelling it alone");
    }
    let labels = (p.nodes * p.layers) as f64;
    let us = |d: Duration, n: f64| d.as_secs_f64() * 1e6 / n;
    let (ref_us, one_us) = (us(ref_time, labels), us(ours_best, labels));
    let batch_us = us(batch_best, labels * lanes as f64);
    let bytes_per_label = sdr::BYTES_PER_LEAF as f64 / p.layers as f64;
    let one_ratio = ref_us / one_us;
    let ratio = ref_us / batch_us;
    report(
        json,
        "proofs-labelling",
        json!({"sector_bytes": sector, "layers": 2, "labels": labels,
            "reference_us_per_label": ref_us,
            "native_one_sector_us_per_label": one_us, "ratio_one_sector": one_ratio,
            "batch_sectors": lanes, "native_batch_us_per_label": batch_us,
            "native_kb_per_s": bytes_per_label / batch_us * 1e3,
            "ratio": ratio, "target": 4.0}),
        format!(
            "labelling, {} KiB sectors, 2 layers, one thread: arkworks PoseidonSponge {ref_us:.1} us/label; \
             native, one sector alone {one_us:.1} us/label ({one_ratio:.2}x); native, {lanes} sectors at once \
             {batch_us:.1} us/label ({:.0} KB/s of data), same labels: {ratio:.2}x (target >= 4x: {})",
            sector >> 10,
            bytes_per_label / batch_us * 1e3,
            verdict(ratio >= 4.0),
        ),
    );
    Ok(())
}
