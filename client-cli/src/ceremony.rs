//! `cairn ceremony`: the multi-party setup of a network's Groth16 keys (Powers of Tau, then the
//! circuit-specific phase 2), run by passing one directory from contributor to contributor.
//! The keys it finalizes are sound if one contributor of each phase destroyed their secrets.

use anyhow::Result;
use cairn_proofs::audit::NetParams;
use cairn_proofs::ceremony::{self, beacon::Beacon};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// Ceremony commands.
#[derive(Subcommand)]
pub enum CeremonyCmd {
    /// Start a ceremony in DIR for the network's proof parameters (phase 1 opens).
    New {
        /// Ceremony directory (created; must not hold a ceremony).
        #[arg(long)]
        dir: PathBuf,
        /// Sector size in bytes (a power of two), as in the nodes' `[proofs] sector_size`.
        #[arg(long, default_value_t = 256 << 10)]
        sector_size: usize,
        /// Labelling layers (`[proofs] layers`).
        #[arg(long, default_value_t = 2)]
        layers: usize,
        /// PoSt challenges per sector (`[proofs] challenges`).
        #[arg(long, default_value_t = 10)]
        challenges: usize,
        /// Sectors per window proof (`[proofs] batch`).
        #[arg(long, default_value_t = 2)]
        batch: usize,
        /// Seal challenges per seal proof (nodes use 2; smaller only for tests).
        #[arg(long, default_value_t = cairn_storage_node::config::SEAL_CHALLENGES)]
        seal_challenges: usize,
    },
    /// Add your contribution (fresh secret randomness from the OS, never written anywhere) to
    /// the open phase; prints the hash of each file written.
    Contribute {
        /// Ceremony directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// End the open phase with a random beacon: a last step whose secrets anyone recomputes
    /// from VALUE (announce in advance which public randomness it will be: a drand round, a
    /// block hash), hashed 2^E times with SHA-256 first.
    Beacon {
        /// Ceremony directory.
        #[arg(long)]
        dir: PathBuf,
        /// The beacon's public random value, hex.
        #[arg(long)]
        value: String,
        /// SHA-256 is iterated 2^E times over the value (2^30 takes about a minute).
        #[arg(long, default_value_t = 30)]
        iterations_exp: u32,
    },
    /// Close phase 1 and open phase 2 (the coordinator, once phase 1 has its contributors and
    /// its beacon).
    Phase2 {
        /// Ceremony directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Check every contribution of the transcript: exit 0 if all check, 1 if not.
    Verify {
        /// Ceremony directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Verify, then write the key files and their manifest to OUT; prints the manifest's
    /// SHA-256, which the network pins (`[proofs] keys_sha256`).
    Finalize {
        /// Ceremony directory.
        #[arg(long)]
        dir: PathBuf,
        /// Key directory to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a ceremony command.
pub fn run(cmd: &CeremonyCmd) -> Result<ExitCode> {
    match cmd {
        CeremonyCmd::New {
            dir,
            sector_size,
            layers,
            challenges,
            batch,
            seal_challenges,
        } => {
            let params = NetParams {
                sector_size: *sector_size,
                layers: *layers,
                challenges: *challenges,
                batch: *batch,
                seal_challenges: *seal_challenges,
            };
            let c = ceremony::new(dir, params)?;
            println!(
                "ceremony started in {}: phase 1 of 2^{} powers (seal circuit {} constraints, \
                 window circuit {})",
                dir.display(),
                c.setup.power,
                c.constraints[0],
                c.constraints[1]
            );
        }
        CeremonyCmd::Contribute { dir } => {
            let c = ceremony::contribute(dir)?;
            println!("contribution {} to phase {}", c.index, c.phase);
            for (path, hash) in &c.hashes {
                println!("{hash}  {}", path.display());
            }
        }
        CeremonyCmd::Beacon {
            dir,
            value,
            iterations_exp,
        } => {
            let bytes = cairn_proofs::audit::from_hex(value)
                .ok_or_else(|| anyhow::anyhow!("--value must be hex"))?;
            let b = Beacon::new(bytes, *iterations_exp)?;
            let c = ceremony::beacon(dir, &b)?;
            println!("beacon step {} of phase {}", c.index, c.phase);
            for (path, hash) in &c.hashes {
                println!("{hash}  {}", path.display());
            }
        }
        CeremonyCmd::Phase2 { dir } => {
            ceremony::open_phase2(dir)?;
            println!("phase 1 closed; phase 2 open in {}", dir.display());
        }
        CeremonyCmd::Verify { dir } => match ceremony::verify(dir) {
            Ok(v) => {
                let show = |phase: u8, steps: &[ceremony::Step]| {
                    for (i, s) in steps.iter().enumerate() {
                        let what = if s.beacon { "beacon" } else { "contribution" };
                        println!("phase {phase} {what} {}: {}", i + 1, s.sha256.join(" "));
                    }
                };
                show(1, &v.phase1);
                match &v.phase2 {
                    Some(p2) => show(2, p2),
                    None => println!("phase 2 not open"),
                }
                println!("valid");
            }
            Err(e) => {
                eprintln!("invalid: {e}");
                return Ok(ExitCode::from(1));
            }
        },
        CeremonyCmd::Finalize { dir, out } => {
            let pin = ceremony::finalize(dir, out)?;
            eprintln!(
                "keys written to {}; pin them in every node's config: [proofs] dev = false, \
                 keys = \"{}\", keys_sha256 = \"{pin}\"",
                out.display(),
                out.display()
            );
            println!("{pin}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
