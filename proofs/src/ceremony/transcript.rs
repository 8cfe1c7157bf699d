//! The ceremony directory and its commands: [`new`], [`contribute`], [`open_phase2`],
//! [`verify`] and [`finalize`].

use super::beacon::{proves, Beacon};
use super::group::Reader;
use super::phase1::{Accumulator, Contribution1};
use super::phase2::{self, Qap};
use super::CeremonyError;
use crate::audit::NetParams;
use crate::keys::pinned::{self, sha256_hex, PARAM_NAMES};
use crate::porep::SealCircuit;
use crate::post::PostCircuit;
use ark_bn254::{Bn254, Fr};
use ark_groth16::ProvingKey;
use std::path::{Path, PathBuf};

/// The two circuits a network needs keys for, in key-file order.
pub const CIRCUITS: [&str; 2] = ["seal", "post"];
const CONFIG: &str = "ceremony.txt";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CeremonyError + '_ {
    move |source| CeremonyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CeremonyError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Reads a file of exactly `len` bytes (the length is checked before reading).
fn read_exact_len(path: &Path, len: usize) -> Result<Vec<u8>, CeremonyError> {
    let got = std::fs::metadata(path).map_err(io(path))?.len();
    if got != len as u64 {
        return Err(CeremonyError::Malformed(format!(
            "{} has {got} bytes, expected {len}",
            path.display()
        )));
    }
    std::fs::read(path).map_err(io(path))
}

/// The network parameters and the phase-1 size of a ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// The network's proof parameters.
    pub params: NetParams,
    /// `log2` of the phase-1 size.
    pub power: u32,
}

impl Setup {
    fn encode(&self) -> String {
        let v = self.params.manifest_params();
        let mut s = String::from("cairn-ceremony 1\n");
        for (n, x) in PARAM_NAMES.iter().zip(v) {
            s.push_str(&format!("{n} {x}\n"));
        }
        s.push_str(&format!("power {}\n", self.power));
        s
    }

    fn read(dir: &Path) -> Result<Setup, CeremonyError> {
        let path = dir.join(CONFIG);
        if std::fs::metadata(&path).map_err(io(&path))?.len() > 4096 {
            return Err(CeremonyError::Malformed(format!("{CONFIG} is too large")));
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let bad = |why: &str| CeremonyError::Malformed(format!("{CONFIG}: {why}"));
        let mut lines = text.lines();
        if lines.next() != Some("cairn-ceremony 1") {
            return Err(bad("not a cairn-ceremony 1 file"));
        }
        let mut v = [0usize; 6];
        for (x, n) in v.iter_mut().zip(PARAM_NAMES.iter().chain(&["power"])) {
            let line = lines.next().ok_or_else(|| bad("ends early"))?;
            *x = match line.split_once(' ') {
                Some((k, val)) if k == *n => val.parse().map_err(|_| bad(n))?,
                _ => return Err(bad(&format!("expected {n}"))),
            };
        }
        let params = NetParams {
            sector_size: v[0],
            layers: v[1],
            challenges: v[2],
            batch: v[3],
            seal_challenges: v[4],
        };
        params
            .check()
            .map_err(|e| bad(&format!("parameters: {e}")))?;
        let power = u32::try_from(v[5]).map_err(|_| bad("power"))?;
        Ok(Setup { params, power })
    }
}

/// The circuits' R1CS, in [`CIRCUITS`] order.
pub fn circuits(params: &NetParams) -> Result<[Qap; 2], CeremonyError> {
    params
        .check()
        .map_err(|e| CeremonyError::State(format!("parameters: {e}")))?;
    let seal = Qap::of(SealCircuit::blank(params.sector(), params.seal_challenges))?;
    let post = Qap::of(PostCircuit::blank(params.post_shape()))?;
    Ok([seal, post])
}

fn context(label: &str, prev: &[u8]) -> Vec<u8> {
    format!("cairn ceremony v1 {label} after {}", sha256_hex(prev)).into_bytes()
}

fn file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{i:04}.bin"))
}

/// Files `0000.bin ..` of a phase directory: how many, checked to be contiguous.
fn count(dir: &Path) -> Result<usize, CeremonyError> {
    let mut n = 0;
    while file(dir, n).exists() {
        n += 1;
    }
    if n == 0 {
        return Err(CeremonyError::State(format!(
            "{} has no state",
            dir.display()
        )));
    }
    Ok(n)
}

fn phase2_dir(dir: &Path, circuit: &str) -> PathBuf {
    dir.join("phase2").join(circuit)
}

/// What [`new`] set up.
#[derive(Debug, Clone)]
pub struct Created {
    /// The setup written.
    pub setup: Setup,
    /// Constraints of each circuit, in [`CIRCUITS`] order.
    pub constraints: [usize; 2],
}

/// Starts a ceremony in `dir` (which must not hold one) for `params`: phase 1 sized for the
/// larger circuit.
pub fn new(dir: &Path, params: NetParams) -> Result<Created, CeremonyError> {
    if dir.join(CONFIG).exists() {
        return Err(CeremonyError::State(format!(
            "{} already holds a ceremony",
            dir.display()
        )));
    }
    let qaps = circuits(&params)?;
    let power = qaps.iter().map(Qap::power).max().unwrap_or(1).max(1);
    let setup = Setup { params, power };
    let mut bytes = Vec::with_capacity(Accumulator::encoded_len(power));
    Accumulator::initial(power)?.put(&mut bytes);
    write_atomic(&file(&dir.join("phase1"), 0), &bytes)?;
    write_atomic(&dir.join(CONFIG), setup.encode().as_bytes())?;
    Ok(Created {
        setup,
        constraints: [qaps[0].num_constraints, qaps[1].num_constraints],
    })
}

/// One contribution made by [`contribute`].
#[derive(Debug, Clone)]
pub struct Contributed {
    /// 1 or 2.
    pub phase: u8,
    /// The contribution's number in its phase (from 1).
    pub index: usize,
    /// SHA-256 (hex) of each file written.
    pub hashes: Vec<(PathBuf, String)>,
}

fn read_acc(
    dir: &Path,
    setup: &Setup,
    i: usize,
) -> Result<(Vec<u8>, Accumulator, Option<Contribution1>), CeremonyError> {
    let base = Accumulator::encoded_len(setup.power);
    let len = if i == 0 {
        base
    } else {
        base + Contribution1::LEN
    };
    let bytes = read_exact_len(&file(&dir.join("phase1"), i), len)?;
    let mut r = Reader::new(&bytes);
    let acc = Accumulator::read(&mut r, setup.power)?;
    let c = if i == 0 {
        None
    } else {
        Some(Contribution1::read(&mut r)?)
    };
    r.finish()?;
    Ok((bytes, acc, c))
}

type Key2 = (Vec<u8>, ProvingKey<Bn254>, Option<phase2::Contribution2>);

fn read_key(dir: &Path, qap: &Qap, i: usize) -> Result<Key2, CeremonyError> {
    let base = phase2::encoded_len(qap);
    let len = if i == 0 {
        base
    } else {
        base + phase2::CONTRIBUTION_LEN
    };
    let bytes = read_exact_len(&file(dir, i), len)?;
    let mut r = Reader::new(&bytes);
    let pk = phase2::read_key(&mut r, qap)?;
    let c = if i == 0 {
        None
    } else {
        Some(super::group::Pok::read(&mut r)?)
    };
    r.finish()?;
    Ok((bytes, pk, c))
}

/// Adds a contribution with fresh secrets from the OS to the open phase (phase 2 once
/// [`open_phase2`] ran, phase 1 before).
pub fn contribute(dir: &Path) -> Result<Contributed, CeremonyError> {
    step(dir, None)
}

/// Ends the open phase with the random beacon `b`: a contribution whose secrets anyone
/// recomputes from the beacon ([`Beacon`]), recorded beside it in `NNNN.beacon` (phase 1) or
/// `phase2/NNNN.beacon` (both circuits). Phase 2 opens, and keys are finalized, only after one.
pub fn beacon(dir: &Path, b: &Beacon) -> Result<Contributed, CeremonyError> {
    step(dir, Some(b))
}

/// The secrets of a beacon step: `tau, alpha, beta` in phase 1, each circuit's `delta` in
/// phase 2.
fn beacon_secrets(seed: &[u8; 32], phase2: bool) -> Vec<Fr> {
    let labels: &[&str] = if phase2 {
        &["delta seal", "delta post"]
    } else {
        &["tau", "alpha", "beta"]
    };
    labels.iter().map(|l| Beacon::secret(seed, l)).collect()
}

fn beacon_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{i:04}.beacon"))
}

/// Reads the beacon of step `i` in `dir`, if that step is one: its secrets.
fn beacon_at(dir: &Path, i: usize, phase2: bool) -> Result<Option<Vec<Fr>>, CeremonyError> {
    let path = beacon_path(dir, i);
    if !path.exists() {
        return Ok(None);
    }
    if std::fs::metadata(&path).map_err(io(&path))?.len() > 4096 {
        return Err(CeremonyError::Malformed(format!(
            "{} is too large",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let b = Beacon::decode(&text)?;
    Ok(Some(beacon_secrets(&b.seed(), phase2)))
}

fn step(dir: &Path, beacon: Option<&Beacon>) -> Result<Contributed, CeremonyError> {
    let setup = Setup::read(dir)?;
    let phase2 = dir.join("phase2").exists();
    let secrets = beacon.map(|b| beacon_secrets(&b.seed(), phase2));
    let mut staged = Vec::new();
    let mut index = 0;
    if phase2 {
        let qaps = circuits(&setup.params)?;
        for (k, (name, qap)) in CIRCUITS.iter().zip(&qaps).enumerate() {
            let d = phase2_dir(dir, name);
            let n = count(&d)?;
            let (prev, pk, _) = read_key(&d, qap, n - 1)?;
            let ctx = context(&format!("phase2 {name}"), &prev);
            let (next, c) = match &secrets {
                Some(x) => phase2::contribute_with(&pk, x[k], &ctx),
                None => phase2::contribute(&pk, &ctx),
            };
            let mut bytes = Vec::with_capacity(prev.len() + phase2::CONTRIBUTION_LEN);
            phase2::put_key(&mut bytes, &next, qap);
            c.put(&mut bytes);
            if k > 0 && n != index {
                return Err(CeremonyError::State(
                    "the circuits' phase 2 have different numbers of contributions".into(),
                ));
            }
            index = n;
            staged.push((file(&d, n), bytes));
        }
    } else {
        let d = dir.join("phase1");
        let n = count(&d)?;
        let (prev, acc, _) = read_acc(dir, &setup, n - 1)?;
        let ctx = context("phase1", &prev);
        let (next, c) = match &secrets {
            Some(x) => acc.contribute_with(x[0], x[1], x[2], &ctx),
            None => acc.contribute(&ctx),
        };
        let mut bytes = Vec::with_capacity(prev.len() + Contribution1::LEN);
        next.put(&mut bytes);
        c.put(&mut bytes);
        index = n;
        staged.push((file(&d, n), bytes));
    }
    let mut hashes = Vec::new();
    for (path, bytes) in staged {
        write_atomic(&path, &bytes)?;
        hashes.push((path, sha256_hex(&bytes)));
    }
    if let Some(b) = beacon {
        // after the states: a beacon file never names a step that is not there
        let d = if phase2 {
            dir.join("phase2")
        } else {
            dir.join("phase1")
        };
        write_atomic(&beacon_path(&d, index), b.encode().as_bytes())?;
    }
    Ok(Contributed {
        phase: if phase2 { 2 } else { 1 },
        index,
        hashes,
    })
}

fn initial_keys(setup: &Setup, acc: &Accumulator) -> Result<Vec<Vec<u8>>, CeremonyError> {
    let mut out = Vec::new();
    for qap in circuits(&setup.params)? {
        let pk = phase2::initial(acc, &qap)?;
        let mut bytes = Vec::with_capacity(phase2::encoded_len(&qap));
        phase2::put_key(&mut bytes, &pk, &qap);
        out.push(bytes);
    }
    Ok(out)
}

/// Closes phase 1 (it needs at least one contribution, then a beacon) and computes phase 2's starting keys
/// from its last state; later contributions go to phase 2.
pub fn open_phase2(dir: &Path) -> Result<(), CeremonyError> {
    let setup = Setup::read(dir)?;
    if dir.join("phase2").exists() {
        return Err(CeremonyError::State("phase 2 is already open".into()));
    }
    let n = count(&dir.join("phase1"))?;
    if n < 2 {
        return Err(CeremonyError::State(
            "phase 1 has no contribution yet: run `cairn ceremony contribute` first".into(),
        ));
    }
    if !beacon_path(&dir.join("phase1"), n - 1).exists() {
        return Err(CeremonyError::State(
            "phase 1 does not end with a random beacon yet: run `cairn ceremony beacon`".into(),
        ));
    }
    let (_, acc, _) = read_acc(dir, &setup, n - 1)?;
    for (name, bytes) in CIRCUITS.iter().zip(initial_keys(&setup, &acc)?) {
        write_atomic(&file(&phase2_dir(dir, name), 0), &bytes)?;
    }
    Ok(())
}

/// One checked step of the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// SHA-256 (hex) of each file of the step (one in phase 1, seal then post in phase 2).
    pub sha256: Vec<String>,
    /// Whether the step is a random beacon (its secrets checked against the beacon's).
    pub beacon: bool,
}

/// What [`verify`] checked.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The ceremony's setup.
    pub setup: Setup,
    /// Contributions to phase 1.
    pub phase1: Vec<Step>,
    /// Contributions to phase 2, if open.
    pub phase2: Option<Vec<Step>>,
}

fn beacon_mismatch(path: &Path) -> CeremonyError {
    CeremonyError::Invalid(format!(
        "{}: the step was not made with its beacon's secrets",
        path.display()
    ))
}

/// Checks every step of the transcript: phase 1 starts from the generators, each
/// contribution multiplies in the secrets it proves knowledge of (bound to the file before
/// it), phase 2 starts from the last phase-1 state, and each phase-2 contribution only
/// randomizes delta.
pub fn verify(dir: &Path) -> Result<Verified, CeremonyError> {
    let setup = Setup::read(dir)?;
    let qaps = circuits(&setup.params)?;
    if qaps.iter().map(Qap::power).max().unwrap_or(1).max(1) != setup.power {
        return Err(CeremonyError::Invalid(
            "the phase-1 size does not fit the circuits".into(),
        ));
    }
    let d1 = dir.join("phase1");
    let n1 = count(&d1)?;
    let mut start = Vec::new();
    Accumulator::initial(setup.power)?.put(&mut start);
    let first = read_exact_len(&file(&d1, 0), start.len())?;
    if first != start {
        return Err(CeremonyError::Invalid(
            "phase 1 does not start from the generators".into(),
        ));
    }
    let mut prev_bytes = first;
    let mut prev = Accumulator::initial(setup.power)?;
    let mut phase1 = Vec::new();
    for i in 1..n1 {
        let (bytes, acc, c) = read_acc(dir, &setup, i)?;
        let c = c.ok_or(CeremonyError::Shape("contribution"))?;
        let ctx = context("phase1", &prev_bytes);
        prev.verify_step(&acc, &c, &ctx)
            .map_err(|e| at(&file(&d1, i), e))?;
        let beacon = beacon_at(&d1, i, false)?;
        if let Some(x) = &beacon {
            let pairs = [
                c.tau.check(&[&ctx[..], b"tau"].concat()),
                c.alpha.check(&[&ctx[..], b"alpha"].concat()),
                c.beta.check(&[&ctx[..], b"beta"].concat()),
            ];
            for (pair, x) in pairs.into_iter().zip(x) {
                if !pair.is_some_and(|p| proves(p, *x)) {
                    return Err(beacon_mismatch(&file(&d1, i)));
                }
            }
        }
        phase1.push(Step {
            sha256: vec![sha256_hex(&bytes)],
            beacon: beacon.is_some(),
        });
        prev_bytes = bytes;
        prev = acc;
    }
    if !dir.join("phase2").exists() {
        return Ok(Verified {
            setup,
            phase1,
            phase2: None,
        });
    }
    if !phase1.last().is_some_and(|s| s.beacon) {
        return Err(CeremonyError::Invalid(
            "phase 2 was opened before a random beacon ended phase 1".into(),
        ));
    }
    let d2 = dir.join("phase2");
    let mut counts = Vec::new();
    let mut hashes: Vec<Vec<String>> = Vec::new();
    for (k, (name, qap)) in CIRCUITS.iter().zip(&qaps).enumerate() {
        let d = phase2_dir(dir, name);
        let n = count(&d)?;
        counts.push(n);
        let (mut prev_bytes, mut prev_pk, _) = read_key(&d, qap, 0)?;
        phase2::check_initial(&prev, qap, &prev_pk).map_err(|e| {
            CeremonyError::Invalid(format!(
                "phase 2 of {name} does not start from the last phase-1 state ({e})"
            ))
        })?;
        let mut hs = Vec::new();
        for i in 1..n {
            let (bytes, pk, c) = read_key(&d, qap, i)?;
            let c = c.ok_or(CeremonyError::Shape("contribution"))?;
            let ctx = context(&format!("phase2 {name}"), &prev_bytes);
            phase2::verify_step(&prev_pk, &pk, &c, &ctx).map_err(|e| at(&file(&d, i), e))?;
            if let Some(x) = beacon_at(&d2, i, true)? {
                let pair = c.check(&[&ctx[..], b"delta"].concat());
                if !pair.is_some_and(|p| proves(p, x[k])) {
                    return Err(beacon_mismatch(&file(&d, i)));
                }
            }
            hs.push(sha256_hex(&bytes));
            prev_bytes = bytes;
            prev_pk = pk;
        }
        hashes.push(hs);
    }
    if counts[0] != counts[1] {
        return Err(CeremonyError::Invalid(
            "the circuits' phase 2 have different numbers of contributions".into(),
        ));
    }
    let mut phase2 = Vec::new();
    for (i, (a, b)) in hashes[0].iter().zip(&hashes[1]).enumerate() {
        phase2.push(Step {
            sha256: vec![a.clone(), b.clone()],
            beacon: beacon_path(&d2, i + 1).exists(),
        });
    }
    Ok(Verified {
        setup,
        phase1,
        phase2: Some(phase2),
    })
}

fn at(path: &Path, e: CeremonyError) -> CeremonyError {
    match e {
        CeremonyError::Invalid(m) => CeremonyError::Invalid(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Verifies the ceremony, then writes the key files and their manifest to `out`: the
/// SHA-256 (hex) of the manifest, which a network pins.
pub fn finalize(dir: &Path, out: &Path) -> Result<String, CeremonyError> {
    let v = verify(dir)?;
    if v.phase1.iter().all(|s| s.beacon) {
        return Err(CeremonyError::State("phase 1 has no contribution".into()));
    }
    let Some(p2) = &v.phase2 else {
        return Err(CeremonyError::State(
            "phase 2 is not open: run `cairn ceremony phase2`".into(),
        ));
    };
    if p2.iter().all(|s| s.beacon) {
        return Err(CeremonyError::State("phase 2 has no contribution".into()));
    }
    if !p2.last().is_some_and(|s| s.beacon) {
        return Err(CeremonyError::State(
            "phase 2 does not end with a random beacon yet: run `cairn ceremony beacon`".into(),
        ));
    }
    let qaps = circuits(&v.setup.params)?;
    let mut keys = Vec::new();
    for (name, qap) in CIRCUITS.iter().zip(&qaps) {
        let d = phase2_dir(dir, name);
        keys.push(read_key(&d, qap, count(&d)? - 1)?.1);
    }
    Ok(pinned::write(
        out,
        v.setup.params.manifest_params(),
        &keys[0],
        &keys[1],
    )?)
}
