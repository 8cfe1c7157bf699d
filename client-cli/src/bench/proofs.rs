//! `cairn bench proofs`: constraints, setup, prove and verify times and proof size of the
//! window proof (PoSt); sealing end to end (labels, trees, seal proof) in MB/s per core, beside
//! format 1's design measured in the same run and SupraSeal's per-core figure as a fixed
//! reference; and unsealing's throughput.

use super::report::{report, verdict};
use anyhow::{bail, Context, Result};
use ark_bn254::{Bn254, Fr};
use ark_groth16::Groth16;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use ark_snark::SNARK;
use ark_std::rand::{RngCore, SeedableRng};
use cairn_proofs::audit::{encode_proof, graph_seed, DEV_SETUP_SEED};
use cairn_proofs::baseline::{self, BaselineSealCircuit};
use cairn_proofs::merkle::MerkleTree;
use cairn_proofs::porep::{self, SealCircuit};
use cairn_proofs::poseidon::{hash, Domain};
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
pub fn run(post_depth: u32, seal_sector: usize, baseline_sector: usize, json: bool) -> Result<()> {
    if !(4..=24).contains(&post_depth) {
        bail!("--post-depth must be between 4 and 24");
    }
    for (what, s) in [
        ("--seal-sector", seal_sector),
        ("--baseline-sector", baseline_sector),
    ] {
        if !s.is_power_of_two() || !(1 << 10..=1 << 26).contains(&s) {
            bail!("{what} must be a power of two between 1 KiB and 64 MiB");
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rng = ark_std::rand::rngs::StdRng::seed_from_u64(7);
    post_bench(post_depth, threads, &mut rng, json)?;
    seal_bench(seal_sector, baseline_sector, threads, &mut rng, json)
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

/// SupraSeal's PC1 (SHA-256 layer labelling) per core: 64 x 32 GiB sectors in 3 h 30 min on a
/// 32-core Threadripper PRO (issue 18's anchor), a fixed reference.
const SUPRASEAL_MB_PER_CORE: f64 = 5.4;

/// One design's seal, end to end: the data bytes, labelling + commitments, the seal proof.
struct SealRun {
    bytes: usize,
    label_commit: Duration,
    prove: Duration,
    cons: usize,
    setup: Duration,
}

impl SealRun {
    fn mb_per_core(&self, threads: usize) -> f64 {
        self.bytes as f64 / (self.label_commit + self.prove).as_secs_f64() / threads as f64 / 1e6
    }
}

fn setup<C: ConstraintSynthesizer<Fr>>(
    c: C,
) -> Result<(
    ark_groth16::ProvingKey<Bn254>,
    ark_groth16::PreparedVerifyingKey<Bn254>,
    Duration,
)> {
    let t = Instant::now();
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(
        c,
        &mut ark_std::rand::rngs::StdRng::seed_from_u64(DEV_SETUP_SEED),
    )
    .map_err(|e| anyhow::anyhow!("setup: {e}"))?;
    let pvk = Groth16::<Bn254>::process_vk(&vk).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((pk, pvk, t.elapsed()))
}

/// Format 1 ("today's design" when issue 18 was filed): Poseidon labels, labels recomputed in
/// the seal circuit.
fn baseline_seal(
    sector: usize,
    k: usize,
    rng: &mut ark_std::rand::rngs::StdRng,
) -> Result<SealRun> {
    let p = SectorParams {
        nodes: sector / 32,
        layers: 2,
        graph_seed: graph_seed(),
    };
    let mut data = vec![0u8; p.capacity()];
    rng.fill_bytes(&mut data);
    let cons = constraints(BaselineSealCircuit::blank(p.clone(), k))?;
    let (pk, pvk, setup) = setup(BaselineSealCircuit::blank(p.clone(), k))?;
    let t = Instant::now();
    let (sealed, work) = baseline::seal_poseidon(&p, &data, &[1; 32], 0, &[2; 32])?;
    let label_commit = t.elapsed();
    let t = Instant::now();
    let c = BaselineSealCircuit::prove_with_work(&p, k, &sealed, &work)?;
    let proof = Groth16::<Bn254>::prove(&pk, c, rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let prove = t.elapsed();
    let inputs = baseline::public_inputs(&p, k, sealed.replica_id, sealed.comm_d, sealed.comm_r);
    if !Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs, &proof).unwrap_or(false) {
        bail!("a baseline seal proof made here does not verify");
    }
    Ok(SealRun {
        bytes: p.capacity(),
        label_commit,
        prove,
        cons,
        setup,
    })
}

fn seal_bench(
    sector: usize,
    baseline_sector: usize,
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
    let cons = constraints(SealCircuit::blank(p.clone(), k))?;
    let (pk, pvk, setup_time) = setup(SealCircuit::blank(p.clone(), k))?;
    // the labels alone, for the breakdown (sealing labels again below)
    let t = Instant::now();
    let rid = Fr::from(12345u64);
    drop(sdr::label_bytes(&p, rid)?);
    let labels_only = t.elapsed();
    let t = Instant::now();
    let (sealed, work) = sdr::seal_keeping_work(&p, &data, &[1; 32], 0, &[2; 32])?;
    let label_commit = t.elapsed();
    let t = Instant::now();
    let (c, revealed) = SealCircuit::prove_with_work(&p, k, &sealed, &work)?;
    drop(work);
    let proof = Groth16::<Bn254>::prove(&pk, c, rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let prove = t.elapsed();
    let t = Instant::now();
    let digest = porep::check_revealed(&p, k, sealed.replica_id, sealed.comm_r, &revealed)?;
    let inputs = porep::public_inputs(sealed.replica_id, sealed.comm_d, sealed.comm_r, digest);
    let ok = Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs, &proof).unwrap_or(false);
    let verify = t.elapsed();
    if !ok {
        bail!("a seal proof made here does not verify");
    }
    let t = Instant::now();
    let back = sdr::unseal(&p, &sealed.replica, sealed.replica_id, data.len())?;
    let unseal = t.elapsed();
    if back != data {
        bail!("unsealing did not give the data back");
    }
    // a seal check: labels and trees rebuilt from the replica alone, then the proof over
    // challenges seeded by an auditor's nonce (docs/proofs.md, "Grinding, and seal checks")
    let t = Instant::now();
    let seed = porep::check_seed(&[7; 32]);
    let (again, work) = sdr::rework(&p, sealed.replica_id, &sealed.replica)?;
    if again.comm_r != sealed.comm_r {
        bail!("the replica reworked does not give its comm_r");
    }
    let (c, check_revealed) = SealCircuit::prove_check(&p, k, &again, &work, seed)?;
    drop(work);
    let check_proof = Groth16::<Bn254>::prove(&pk, c, rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let check = t.elapsed();
    let digest = porep::check_revealed_for(
        &p,
        k,
        sealed.replica_id,
        sealed.comm_r,
        Some(seed),
        &check_revealed,
    )?;
    let inputs = porep::public_inputs(sealed.replica_id, sealed.comm_d, sealed.comm_r, digest);
    if !Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs, &check_proof).unwrap_or(false) {
        bail!("a seal check answered here does not verify");
    }
    let ours = SealRun {
        bytes: p.capacity(),
        label_commit,
        prove,
        cons,
        setup: setup_time,
    };
    let base = baseline_seal(baseline_sector, k, rng)?;
    let (mine, theirs) = (ours.mb_per_core(threads), base.mb_per_core(threads));
    let unseal_mb = data.len() as f64 / unseal.as_secs_f64() / 1e6;
    let proof_bytes = encode_proof(&proof).len() + 32 * revealed.len();
    report(
        json,
        "proofs-seal",
        json!({"sector_bytes": sector, "layers": 2, "challenges": k, "threads": threads,
            "constraints": cons, "setup_s": setup_time.as_secs_f64(),
            "labels_s": labels_only.as_secs_f64(), "label_and_commit_s": label_commit.as_secs_f64(),
            "prove_s": prove.as_secs_f64(), "verify_ms": ms(verify),
            "seal_proof_bytes": proof_bytes, "revealed_labels": revealed.len(),
            "mb_per_s_per_core": mine, "target_mb_per_s_per_core": 1.0,
            "unseal_mb_per_s": unseal_mb, "seal_check_s": check.as_secs_f64(),
            "baseline": {"sector_bytes": baseline_sector, "constraints": base.cons,
                "setup_s": base.setup.as_secs_f64(),
                "label_and_commit_s": base.label_commit.as_secs_f64(),
                "prove_s": base.prove.as_secs_f64(), "mb_per_s_per_core": theirs},
            "ratio_vs_baseline": mine / theirs,
            "supraseal_mb_per_s_per_core": SUPRASEAL_MB_PER_CORE}),
        format!(
            "seal, {} MiB sector, 2 layers, {k} challenges, end to end on {threads} threads: labels {:.2} s, \
             labels + commitments {:.2} s, seal proof {:.2} s ({cons} constraints; setup {:.1} s, not counted); \
             {mine:.2} MB/s per core (target >= 1: {}); verify {:.2} ms; proof {proof_bytes} bytes (128 + {} revealed labels); \
             unseal {unseal_mb:.0} MB/s; seal check (labels and trees rebuilt from the replica, then the proof) {:.2} s\n\
             today's design (format 1: Poseidon labels checked in the circuit), {} KiB sector: labels + commitments {:.2} s, \
             seal proof {:.2} s ({} constraints): {theirs:.3} MB/s per core; ratio {:.1}x\n\
             SupraSeal PC1 (SHA-256 labelling only, 32-core Threadripper PRO): {SUPRASEAL_MB_PER_CORE} MB/s per core; \
             this design is {:.2}x of it",
            sector >> 20,
            labels_only.as_secs_f64(),
            label_commit.as_secs_f64(),
            prove.as_secs_f64(),
            setup_time.as_secs_f64(),
            verdict(mine >= 1.0),
            ms(verify),
            revealed.len(),
            check.as_secs_f64(),
            baseline_sector >> 10,
            base.label_commit.as_secs_f64(),
            base.prove.as_secs_f64(),
            base.cons,
            mine / theirs,
            mine / SUPRASEAL_MB_PER_CORE,
        ),
    );
    Ok(())
}
