//! `cairn proofs`: seal a file into a sector, prove a PoSt window, and verify proofs, for tests
//! and auditors. Keys come from a ceremony with `--keys KEYS` (`cairn ceremony finalize`, whose
//! parameters then apply), else from the deterministic development setup, cached by digest in
//! `$CAIRN_KEYS` (default `~/.cache/cairn/keys`), under which anyone can forge proofs.

use anyhow::{anyhow, bail, Context, Result};
use ark_bn254::{Bn254, Fr};
use ark_ff::PrimeField;
use ark_groth16::{Groth16, Proof};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use ark_snark::SNARK;
use cairn_proofs::audit::{fr_bytes, fr_from_bytes, from_hex, graph_seed, to_hex, NetParams};
use cairn_proofs::keys::{default_dir, pinned, Keys};
use cairn_proofs::porep::{self, SealCircuit};
use cairn_proofs::post::{self, PostCircuit, DEFAULT_CHALLENGES};
use cairn_proofs::sdr::{self, Sealed};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Labelling layers of CLI sectors.
const LAYERS: usize = 2;
/// Seal challenges per proof.
const SEAL_CHALLENGES: usize = 2;

/// Proof commands.
#[derive(Subcommand)]
pub enum ProofsCmd {
    /// Seal a file into a sector: writes DIR/replica.bin, DIR/commitments.json, DIR/seal.proof
    /// (the 128-byte Groth16 proof, then the revealed labels, 32 bytes each).
    Seal {
        /// Input file (at most 31/32 of the sector size).
        #[arg(long)]
        input: PathBuf,
        /// Sector size in bytes (a power of two, at least 64).
        #[arg(long)]
        sector_size: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Sector number.
        #[arg(long, default_value_t = 0)]
        sector: u64,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Prove window N of a sealed sector against an auditor's nonce.
    Post {
        /// Directory written by `seal`.
        #[arg(long)]
        sealed: PathBuf,
        /// Auditor nonce, 64 hex digits.
        #[arg(long)]
        nonce: String,
        /// Window number.
        #[arg(long)]
        window: u64,
        /// Proof output file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Verify a PoSt proof: exit 0 valid, 1 invalid, 2 malformed input.
    Verify {
        /// commitments.json of the sector.
        #[arg(long)]
        commitments: PathBuf,
        /// Auditor nonce, 64 hex digits.
        #[arg(long)]
        nonce: String,
        /// Window number.
        #[arg(long)]
        window: u64,
        /// Proof file.
        #[arg(long)]
        proof: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Verify a seal proof: exit 0 valid, 1 invalid, 2 malformed input.
    VerifySeal {
        /// commitments.json of the sector.
        #[arg(long)]
        commitments: PathBuf,
        /// Proof file.
        #[arg(long)]
        proof: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

/// Which keys to prove and verify with.
#[derive(clap::Args, Clone, Default)]
pub struct KeyArgs {
    /// Key directory written by `cairn ceremony finalize` (its parameters apply: layers,
    /// challenges, batch); without it, the development keys (anyone can forge proofs under
    /// them).
    #[arg(long)]
    pub(crate) keys: Option<PathBuf>,
    /// The SHA-256 its manifest must have (what the network pins); without it the manifest
    /// found is used and its SHA-256 printed to stderr.
    #[arg(long, requires = "keys")]
    pub(crate) keys_sha256: Option<String>,
}

/// The circuit a command proves or verifies.
#[derive(Clone, Copy)]
enum Circuit {
    Seal,
    Post,
}

/// The parameters and keys for sectors of `sector_size`: the pinned keys' parameters, or the
/// development ones (layers [`LAYERS`], [`SEAL_CHALLENGES`], [`DEFAULT_CHALLENGES`], one
/// sector per window).
fn setup(args: &KeyArgs, sector_size: usize, which: Circuit) -> Result<(NetParams, Keys)> {
    params(sector_size)?;
    let Some(dir) = &args.keys else {
        let net = NetParams {
            sector_size,
            layers: LAYERS,
            challenges: DEFAULT_CHALLENGES,
            batch: 1,
            seal_challenges: SEAL_CHALLENGES,
        };
        let keys = match which {
            Circuit::Seal => net.seal_keys(&default_dir())?,
            Circuit::Post => net.post_keys(&default_dir())?,
        };
        return Ok((net, keys));
    };
    let k = pinned::load(dir, args.keys_sha256.as_deref())
        .with_context(|| format!("loading the keys in {}", dir.display()))?;
    if args.keys_sha256.is_none() {
        let m = std::fs::read(dir.join(pinned::MANIFEST))?;
        eprintln!("keys manifest sha256 {}", pinned::sha256_hex(&m));
    }
    let [size, layers, challenges, batch, seal_challenges] = k.manifest.params;
    let net = NetParams {
        sector_size: size as usize,
        layers: layers as usize,
        challenges: challenges as usize,
        batch: batch as usize,
        seal_challenges: seal_challenges as usize,
    };
    net.check()?;
    if net.sector_size != sector_size {
        bail!(
            "the keys in {} are for sectors of {} bytes, not {sector_size}",
            dir.display(),
            net.sector_size
        );
    }
    let keys = match which {
        Circuit::Seal => k.seal,
        Circuit::Post => k.post,
    };
    Ok((net, keys))
}

/// `commitments.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Commitments {
    version: u64,
    sector_size: usize,
    layers: usize,
    graph_seed: String,
    sector: u64,
    data_len: usize,
    replica_id: String,
    comm_d: String,
    comm_c: String,
    comm_r_last: String,
    comm_r: String,
}

fn fr_hex(x: &Fr) -> String {
    to_hex(&fr_bytes(x))
}

fn hex32(s: &str, what: &str) -> Result<[u8; 32]> {
    from_hex(s)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| anyhow!("{what} must be 64 hex digits"))
}

fn fr_from_hex(s: &str, what: &str) -> Result<Fr> {
    fr_from_bytes(&hex32(s, what)?).map_err(|_| anyhow!("{what} is not a canonical field element"))
}

fn params(sector_size: usize) -> Result<()> {
    if sector_size < 64 || !sector_size.is_power_of_two() || sector_size > 1 << 30 {
        bail!("--sector-size must be a power of two between 64 bytes and 1 GiB");
    }
    Ok(())
}

fn write_proof(proof: &Proof<Bn254>, out: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    proof.serialize_compressed(&mut bytes)?;
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))
}

/// Reads commitments; every error is "malformed input". The sector parameters are checked
/// against the keys' ([`check_commitments`]).
fn read_commitments(path: &Path) -> Result<(Commitments, [Fr; 5])> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if text.len() > 64 << 10 {
        bail!("{} is too large for a commitments file", path.display());
    }
    let c: Commitments = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a commitments file", path.display()))?;
    if c.version != sdr::VERSION {
        bail!("commitments version {} is not supported", c.version);
    }
    params(c.sector_size)?;
    if hex32(&c.graph_seed, "graph_seed")? != graph_seed() {
        bail!("commitments use another labelling graph than this build");
    }
    let f = [
        fr_from_hex(&c.replica_id, "replica_id")?,
        fr_from_hex(&c.comm_d, "comm_d")?,
        fr_from_hex(&c.comm_c, "comm_c")?,
        fr_from_hex(&c.comm_r_last, "comm_r_last")?,
        fr_from_hex(&c.comm_r, "comm_r")?,
    ];
    Ok((c, f))
}

/// Fails unless the commitments were made with the keys' layers.
fn check_commitments(c: &Commitments, net: &NetParams) -> Result<()> {
    if c.layers != net.layers {
        bail!(
            "the sector was sealed with {} layers, these keys are for {}",
            c.layers,
            net.layers
        );
    }
    Ok(())
}

fn read_proof(path: &Path) -> Result<Proof<Bn254>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > 1024 {
        bail!("{} is too large for a proof", path.display());
    }
    Proof::<Bn254>::deserialize_compressed(&bytes[..])
        .map_err(|e| anyhow::anyhow!("{} is not a Groth16 proof: {e}", path.display()))
}

/// Writes a seal proof file: the compressed Groth16 proof, then the revealed labels.
fn write_seal_proof(proof: &Proof<Bn254>, revealed: &[Fr], out: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    proof.serialize_compressed(&mut bytes)?;
    for x in revealed {
        bytes.extend_from_slice(&fr_bytes(x));
    }
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))
}

/// Reads a seal proof file; every error is "malformed input".
fn read_seal_proof(path: &Path) -> Result<(Proof<Bn254>, Vec<Fr>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let len = cairn_proofs::audit::PROOF_LEN;
    if bytes.len() < len
        || !(bytes.len() - len).is_multiple_of(32)
        || (bytes.len() - len) / 32 > cairn_proofs::audit::MAX_REVEALED
    {
        bail!(
            "{} is not a seal proof (128 bytes, then at most {} labels of 32 bytes)",
            path.display(),
            cairn_proofs::audit::MAX_REVEALED
        );
    }
    let proof = Proof::<Bn254>::deserialize_compressed(&bytes[..len])
        .map_err(|e| anyhow::anyhow!("{} is not a Groth16 proof: {e}", path.display()))?;
    let revealed = bytes[len..]
        .chunks_exact(32)
        .map(|c| {
            let mut b = [0u8; 32];
            b.copy_from_slice(c);
            cairn_proofs::audit::fr_from_bytes(&b)
                .map_err(|e| anyhow::anyhow!("{}: a revealed label: {e}", path.display()))
        })
        .collect::<Result<_>>()?;
    Ok((proof, revealed))
}

fn malformed(e: anyhow::Error) -> ExitCode {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    eprintln!("malformed: {}", chain.join(": "));
    ExitCode::from(2)
}

/// Runs a proofs command.
pub fn run(cmd: &ProofsCmd) -> Result<ExitCode> {
    match cmd {
        ProofsCmd::Seal {
            input,
            sector_size,
            out,
            sector,
            keys,
        } => {
            let (net, keys) = setup(keys, *sector_size, Circuit::Seal)?;
            let p = net.sector();
            let data =
                std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
            let node = [0u8; 32];
            let ticket = *blake3::hash(&data).as_bytes();
            let (s, work) = sdr::seal_keeping_work(&p, &data, &node, *sector, &ticket)?;
            std::fs::create_dir_all(out)?;
            let mut rep = Vec::with_capacity(p.nodes * 32);
            for x in &s.replica {
                rep.extend_from_slice(&fr_bytes(x));
            }
            std::fs::write(out.join("replica.bin"), rep)?;
            let c = Commitments {
                version: sdr::VERSION,
                sector_size: *sector_size,
                layers: p.layers,
                graph_seed: to_hex(&p.graph_seed),
                sector: *sector,
                data_len: data.len(),
                replica_id: fr_hex(&s.replica_id),
                comm_d: fr_hex(&s.comm_d),
                comm_c: fr_hex(&s.comm_c),
                comm_r_last: fr_hex(&s.comm_r_last),
                comm_r: fr_hex(&s.comm_r),
            };
            std::fs::write(out.join("commitments.json"), serde_json::to_vec_pretty(&c)?)?;
            let (circuit, revealed) =
                SealCircuit::prove_with_work(&p, net.seal_challenges, &s, &work)?;
            drop(work);
            let proof = Groth16::<Bn254>::prove(&keys.pk, circuit, &mut ark_std::rand::rngs::OsRng)
                .map_err(|e| anyhow::anyhow!("proving: {e}"))?;
            write_seal_proof(&proof, &revealed, &out.join("seal.proof"))?;
            println!("{}", c.comm_r);
            Ok(ExitCode::SUCCESS)
        }
        ProofsCmd::Post {
            sealed,
            nonce,
            window,
            out,
            keys,
        } => {
            let (c, f) = read_commitments(&sealed.join("commitments.json"))?;
            let (net, keys) = setup(keys, c.sector_size, Circuit::Post)?;
            check_commitments(&c, &net)?;
            let p = net.sector();
            let nonce = hex32(nonce, "--nonce")?;
            let bytes = std::fs::read(sealed.join("replica.bin"))
                .with_context(|| format!("reading {}", sealed.join("replica.bin").display()))?;
            if bytes.len() != p.nodes * 32 {
                bail!(
                    "replica.bin has {} bytes, the sector {}",
                    bytes.len(),
                    p.nodes * 32
                );
            }
            let replica: Vec<Fr> = bytes.chunks(32).map(Fr::from_le_bytes_mod_order).collect();
            let s = Sealed {
                replica,
                replica_id: f[0],
                comm_d: f[1],
                comm_c: f[2],
                comm_r_last: f[3],
                comm_r: f[4],
            };
            // a window proves `batch` sectors; one sealed sector fills each slot
            let sectors = vec![(c.sector, &s); net.batch];
            let circuit = PostCircuit::prove_for(net.post_shape(), &nonce, *window, &sectors)?;
            let proof = Groth16::<Bn254>::prove(&keys.pk, circuit, &mut ark_std::rand::rngs::OsRng)
                .map_err(|e| anyhow::anyhow!("proving: {e}"))?;
            write_proof(&proof, out)?;
            Ok(ExitCode::SUCCESS)
        }
        ProofsCmd::Verify {
            commitments,
            nonce,
            window,
            proof,
            keys,
        } => {
            let parsed = (|| {
                let (c, f) = read_commitments(commitments)?;
                let nonce = hex32(nonce, "--nonce")?;
                let proof = read_proof(proof)?;
                Ok::<_, anyhow::Error>((c, f, nonce, proof))
            })();
            let (c, f, nonce, proof) = match parsed {
                Ok(x) => x,
                Err(e) => return Ok(malformed(e)),
            };
            let (net, keys) = setup(keys, c.sector_size, Circuit::Post)?;
            if let Err(e) = check_commitments(&c, &net) {
                return Ok(malformed(e));
            }
            let sectors = vec![(c.sector, f[4]); net.batch];
            let inputs = post::public_inputs(net.post_shape(), &nonce, *window, &sectors);
            verdict(Groth16::<Bn254>::verify_with_processed_vk(
                &keys.pvk, &inputs, &proof,
            ))
        }
        ProofsCmd::VerifySeal {
            commitments,
            proof,
            keys,
        } => {
            let parsed = (|| {
                let (c, f) = read_commitments(commitments)?;
                let proof = read_seal_proof(proof)?;
                Ok::<_, anyhow::Error>((c, f, proof))
            })();
            let (c, f, (proof, revealed)) = match parsed {
                Ok(x) => x,
                Err(e) => return Ok(malformed(e)),
            };
            let (net, keys) = setup(keys, c.sector_size, Circuit::Seal)?;
            if let Err(e) = check_commitments(&c, &net) {
                return Ok(malformed(e));
            }
            // the revealed labels first (SHA-256, natively), then the Groth16 proof
            let digest = match porep::check_revealed(
                &net.sector(),
                net.seal_challenges,
                f[0],
                f[4],
                &revealed,
            ) {
                Ok(d) => d,
                Err(e @ porep::RevealError::Length { .. }) => {
                    return Ok(malformed(anyhow::anyhow!(e)))
                }
                Err(e) => {
                    eprintln!("invalid: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let inputs = porep::public_inputs(f[0], f[1], f[4], digest);
            verdict(Groth16::<Bn254>::verify_with_processed_vk(
                &keys.pvk, &inputs, &proof,
            ))
        }
    }
}

fn verdict<E: std::fmt::Display>(r: Result<bool, E>) -> Result<ExitCode> {
    match r {
        Ok(true) => {
            println!("valid");
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            eprintln!("invalid: the proof does not verify against these public values");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("malformed: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
